//! Resource types the simulator serves: their api-versions and operation timings, and the
//! per-provider rules (validation of PUT bodies, read-time views, delete checks, cascades).

mod authorization;
mod compute;
mod gallery;
mod network;
mod scale_sets;
mod security;
mod sharing;
mod soft_delete;

pub use scale_sets::{BATCH_MS as MANUAL_UPGRADE_MS, instance_view, manual_upgrade};
pub use sharing::share;
pub use soft_delete::{restorable, soft_deleted_versions};

use serde_json::{Map, Value, json};

use super::{
    errors::ArmError,
    faults::Faults,
    identity::Principal,
    lro::Family,
    store::{Meta, Resource, State},
    world::World,
};

const GALLERY_VERSIONS: &[&str] = &["2024-03-03", "2025-03-03", "2025-12-03", "2026-03-03"];
const COMPUTE_VERSIONS: &[&str] = &[
    "2024-07-01",
    "2024-11-01",
    "2025-04-01",
    "2025-11-01",
    "2026-04-01",
];
/// Disks and snapshots belong to the disk service, whose versions differ (the SDK sends
/// 2026-03-02); the compute versions are accepted too as arm-reference §1 lists them.
const DISK_VERSIONS: &[&str] = &[
    "2024-03-02",
    "2025-01-02",
    "2026-03-02",
    "2024-07-01",
    "2024-11-01",
    "2025-04-01",
    "2026-04-01",
];
const NETWORK_VERSIONS: &[&str] = &[
    "2024-05-01",
    "2024-07-01",
    "2024-10-01",
    "2025-01-01",
    "2025-03-01",
    "2025-05-01",
    "2025-07-01",
    "2026-01-01",
    "2026-03-01",
];
const AUTHORIZATION_VERSIONS: &[&str] = &["2022-04-01"];
pub const RESOURCES_VERSIONS: &[&str] = &["2021-04-01", "2022-09-01", "2024-03-01", "2025-04-01"];

/// A resource type: canonical ARM type, api-versions, status-URL family and base durations
/// (ms at speed 1; 0 = synchronous).
pub struct Kind {
    pub arm_type: &'static str,
    pub versions: &'static [&'static str],
    pub family: Family,
    pub create_ms: i64,
    pub delete_ms: i64,
    /// Tracked resources carry a location.
    pub tracked: bool,
}

/// Types whose create answers 202 Accepted, never 201: the disk service's Disks and Snapshots
/// CreateOrUpdate list only 200 and 202 (DiskRP 2025-01-02 disk.json / snapshot.json; the
/// Python SDK's azure-mgmt-compute 39.0.0 accepts exactly [200, 202] there).
const ACCEPTED_ON_CREATE: &[&str] = &["Microsoft.Compute/disks", "Microsoft.Compute/snapshots"];

impl Kind {
    /// The status of a PUT that creates: 201 Created where the type's spec lists it.
    pub fn created_status(&self) -> axum::http::StatusCode {
        if ACCEPTED_ON_CREATE.contains(&self.arm_type) {
            axum::http::StatusCode::ACCEPTED
        } else {
            axum::http::StatusCode::CREATED
        }
    }
}

pub const RESOURCE_GROUP: Kind = Kind {
    arm_type: "Microsoft.Resources/resourceGroups",
    versions: RESOURCES_VERSIONS,
    family: Family::Resources,
    create_ms: 0,
    delete_ms: 3000,
    tracked: true,
};

pub const KINDS: &[Kind] = &[
    Kind {
        arm_type: "Microsoft.Compute/galleries",
        versions: GALLERY_VERSIONS,
        family: Family::Caps,
        create_ms: 3000,
        delete_ms: 3000,
        tracked: true,
    },
    Kind {
        arm_type: "Microsoft.Compute/galleries/images",
        versions: GALLERY_VERSIONS,
        family: Family::Caps,
        create_ms: 3000,
        delete_ms: 3000,
        tracked: true,
    },
    Kind {
        arm_type: "Microsoft.Compute/galleries/images/versions",
        versions: GALLERY_VERSIONS,
        family: Family::Caps,
        create_ms: 5000,
        delete_ms: 3000,
        tracked: true,
    },
    Kind {
        arm_type: "Microsoft.Compute/images",
        versions: COMPUTE_VERSIONS,
        family: Family::Compute,
        create_ms: 2000,
        delete_ms: 2000,
        tracked: true,
    },
    Kind {
        arm_type: "Microsoft.Compute/snapshots",
        versions: DISK_VERSIONS,
        family: Family::Compute,
        create_ms: 2000,
        delete_ms: 2000,
        tracked: true,
    },
    Kind {
        arm_type: "Microsoft.Compute/disks",
        versions: DISK_VERSIONS,
        family: Family::Compute,
        create_ms: 2000,
        delete_ms: 2000,
        tracked: true,
    },
    Kind {
        arm_type: "Microsoft.Compute/virtualMachines",
        versions: COMPUTE_VERSIONS,
        family: Family::Compute,
        create_ms: 10000,
        delete_ms: 3000,
        tracked: true,
    },
    Kind {
        arm_type: scale_sets::SCALE_SET,
        versions: COMPUTE_VERSIONS,
        family: Family::Compute,
        create_ms: 10000,
        delete_ms: 5000,
        tracked: true,
    },
    Kind {
        arm_type: scale_sets::SCALE_SET_VM,
        versions: COMPUTE_VERSIONS,
        family: Family::Compute,
        create_ms: 10000,
        delete_ms: 3000,
        tracked: true,
    },
    Kind {
        arm_type: "Microsoft.Network/virtualNetworks",
        versions: NETWORK_VERSIONS,
        family: Family::Network,
        create_ms: 1000,
        delete_ms: 1000,
        tracked: true,
    },
    Kind {
        arm_type: "Microsoft.Network/virtualNetworks/subnets",
        versions: NETWORK_VERSIONS,
        family: Family::Network,
        create_ms: 1000,
        delete_ms: 1000,
        tracked: false,
    },
    Kind {
        arm_type: "Microsoft.Network/networkInterfaces",
        versions: NETWORK_VERSIONS,
        family: Family::Network,
        create_ms: 1000,
        delete_ms: 1000,
        tracked: true,
    },
    Kind {
        arm_type: "Microsoft.Network/publicIPAddresses",
        versions: NETWORK_VERSIONS,
        family: Family::Network,
        create_ms: 1000,
        delete_ms: 1000,
        tracked: true,
    },
    Kind {
        arm_type: "Microsoft.Network/networkSecurityGroups",
        versions: NETWORK_VERSIONS,
        family: Family::Network,
        create_ms: 1000,
        delete_ms: 1000,
        tracked: true,
    },
    Kind {
        arm_type: "Microsoft.Authorization/roleAssignments",
        versions: AUTHORIZATION_VERSIONS,
        family: Family::Sync,
        create_ms: 0,
        delete_ms: 0,
        tracked: false,
    },
];

/// The kind of a (case-insensitive) ARM type.
pub fn kind(arm_type: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.arm_type.eq_ignore_ascii_case(arm_type))
}

/// Every api-version of a provider namespace (for operation-status URLs).
pub fn namespace_versions(namespace: &str) -> Vec<&'static str> {
    let mut v: Vec<&str> = KINDS
        .iter()
        .filter(|k| {
            k.arm_type
                .split('/')
                .next()
                .is_some_and(|ns| ns.eq_ignore_ascii_case(namespace))
        })
        .flat_map(|k| k.versions.iter().copied())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Everything a PUT validator may look at.
pub struct PutCtx<'a> {
    pub world: &'a World,
    pub state: &'a State,
    pub faults: &'a mut Faults,
    pub now: i64,
    pub speed: f64,
    pub kind: &'static Kind,
    pub id: String,
    pub key: String,
    pub name: String,
    pub subscription: String,
    pub resource_group: Option<String>,
    pub parent: Option<&'a Resource>,
    pub existing: Option<&'a Resource>,
    pub principal: &'a Principal,
    pub aux: &'a [Principal],
    pub method: &'a str,
    /// The request's api-version (defaults that changed between versions follow it).
    pub api_version: &'a str,
    /// The canonical location of the request (set once the envelope is validated).
    pub location: Option<String>,
}

impl PutCtx<'_> {
    /// A base duration in ms scaled by `--speed`.
    pub fn scaled(&self, base_ms: i64) -> i64 {
        (base_ms as f64 / self.speed).round() as i64
    }

    pub fn old_props(&self) -> Option<&Value> {
        self.existing.map(|r| &r.body["properties"])
    }
}

/// What a valid PUT does: the stored body, bookkeeping, changes to other resources, and how
/// long its operation runs (ms, already scaled).
pub struct Plan {
    pub body: Value,
    pub meta: Meta,
    pub upserts: Vec<Resource>,
    pub removals: Vec<String>,
    pub duration_ms: i64,
    pub failure: Option<super::lro::Failure>,
}

/// Validates a PUT (or a PATCH already merged onto the resource) and plans its effect.
pub fn plan_put(ctx: &mut PutCtx<'_>, request: Value) -> Result<Plan, ArmError> {
    if !request.is_object() {
        return Err(ArmError::new(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        ));
    }
    let mut body = envelope(ctx, &request)?;
    ctx.location = body
        .get("location")
        .and_then(Value::as_str)
        .map(String::from);
    let props = request
        .get("properties")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if !props.is_object() {
        return Err(ArmError::new(
            400,
            "InvalidRequestContent",
            "The request content was invalid: 'properties' must be an object.",
        ));
    }
    let mut plan = Plan {
        body: Value::Null,
        meta: ctx.existing.map(|r| r.meta.clone()).unwrap_or(Meta {
            created_ms: ctx.now,
            ..Meta::default()
        }),
        upserts: Vec::new(),
        removals: Vec::new(),
        duration_ms: ctx.scaled(if ctx.existing.is_some() {
            ctx.kind.create_ms / 2
        } else {
            ctx.kind.create_ms
        }),
        failure: None,
    };
    let props = match ctx.kind.arm_type {
        "Microsoft.Compute/galleries" => gallery::gallery(ctx, props, &mut plan)?,
        "Microsoft.Compute/galleries/images" => gallery::definition(ctx, props)?,
        "Microsoft.Compute/galleries/images/versions" => gallery::version(ctx, props, &mut plan)?,
        "Microsoft.Compute/images" => compute::managed_image(ctx, props, &mut plan)?,
        "Microsoft.Compute/snapshots" | "Microsoft.Compute/disks" => compute::disk(ctx, props)?,
        "Microsoft.Compute/virtualMachines" => compute::vm(ctx, props, &request, &mut plan)?,
        scale_sets::SCALE_SET => scale_sets::scale_set(ctx, props, &mut body, &mut plan)?,
        scale_sets::SCALE_SET_VM => return Err(scale_sets::refuse_instance_put()),
        "Microsoft.Network/virtualNetworks" => network::vnet(ctx, props, &mut plan)?,
        "Microsoft.Network/virtualNetworks/subnets" => network::subnet(ctx, props)?,
        "Microsoft.Network/networkInterfaces" => network::nic(ctx, props)?,
        "Microsoft.Network/publicIPAddresses" => network::public_ip(ctx, props)?,
        "Microsoft.Network/networkSecurityGroups" => network::nsg(ctx, props)?,
        "Microsoft.Authorization/roleAssignments" => authorization::role_assignment(ctx, props)?,
        other => unreachable!("no rules for {other}"),
    };
    body["properties"] = props;
    if ctx.kind.arm_type.starts_with("Microsoft.Network/") {
        body["etag"] = json!(format!("W/\"{}\"", uuid::Uuid::new_v4()));
    }
    plan.body = body;
    Ok(plan)
}

/// `{id, name, type, location, tags, …}` of a stored resource from the request's top level.
fn envelope(ctx: &PutCtx<'_>, request: &Value) -> Result<Value, ArmError> {
    let mut out = Map::new();
    out.insert("id".into(), json!(ctx.id));
    out.insert("name".into(), json!(ctx.name));
    out.insert("type".into(), json!(ctx.kind.arm_type));
    if ctx.kind.tracked {
        let given = request.get("location").and_then(Value::as_str);
        let Some(given) = given else {
            return Err(ArmError::new(
                400,
                "LocationRequired",
                "The location property is required for this definition.",
            ));
        };
        let location = ctx.world.region(given).ok_or_else(|| {
            ArmError::new(
                400,
                "LocationNotAvailableForResourceType",
                format!(
                    "The provided location '{given}' is not available for resource type '{}'. List of available regions for the resource type is '{}'.",
                    ctx.kind.arm_type,
                    ctx.world.region_list()
                ),
            )
        })?;
        if let Some(old) = ctx.existing.and_then(|r| r.location())
            && old != location
        {
            return Err(ArmError::new(
                400,
                "InvalidResourceLocation",
                format!(
                    "The resource '{}' already exists in location '{old}' in resource group '{}'. A resource with the same name cannot be created in location '{location}'. Please select a new resource name.",
                    ctx.name,
                    ctx.resource_group.as_deref().unwrap_or_default()
                ),
            ));
        }
        out.insert("location".into(), json!(location));
    }
    if let Some(tags) = request.get("tags") {
        if !tags.is_object() && !tags.is_null() {
            return Err(
                ArmError::invalid("The tags must be an object of string values.").target("tags"),
            );
        }
        if tags.is_object() {
            out.insert("tags".into(), tags.clone());
        }
    }
    for extra in [
        "zones",
        "sku",
        "identity",
        "plan",
        "extendedLocation",
        "managedBy",
    ] {
        if let Some(v) = request.get(extra) {
            out.insert(extra.into(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

/// The resource as a GET answers it (read-time views: replication status, instance view,
/// inline subnets, a gallery's sharing groups with `$select=Permissions`).
pub fn render(
    state: &State,
    r: &Resource,
    expand: Option<&str>,
    select: Option<&str>,
    now: i64,
) -> Value {
    match r.rtype.as_str() {
        "Microsoft.Compute/galleries" => sharing::render_gallery(r, expand, select, now),
        "Microsoft.Compute/galleries/images/versions" => gallery::render_version(r, expand, now),
        "Microsoft.Compute/virtualMachines" => compute::render_vm(r, expand),
        "Microsoft.Network/virtualNetworks" => network::render_vnet(state, r),
        _ => r.body.clone(),
    }
}

/// Refusals of a DELETE (children exist, resource in use, deletion blocked, still shared).
pub fn check_delete(state: &State, r: &Resource, now: i64) -> Result<(), ArmError> {
    match r.rtype.as_str() {
        t if t.starts_with("Microsoft.Compute/galleries") => gallery::check_delete(state, r, now),
        t if t.starts_with("Microsoft.Network/") => network::check_delete(state, r),
        _ => Ok(()),
    }
}

/// Cascades once a resource is gone: eventual-consistency blocks on its parent, soft-deleted
/// versions, VM dependents, NIC attachments.
pub fn after_delete(state: &mut State, removed: &Resource, end_ms: i64) {
    if removed.rtype == "Microsoft.Compute/galleries/images/versions" {
        soft_delete::after_version_delete(state, removed, end_ms);
    }
    match removed.rtype.as_str() {
        "Microsoft.Compute/galleries/images" | "Microsoft.Compute/galleries/images/versions" => {
            if let Some(parent) = super::store::parent_key(&super::store::key(&removed.id)) {
                state.last_child_deleted.insert(parent, end_ms);
            }
        }
        "Microsoft.Compute/virtualMachines" => {
            compute::after_vm_delete(state, removed);
            scale_sets::after_instance_delete(state, removed);
        }
        scale_sets::SCALE_SET_VM => scale_sets::after_instance_delete(state, removed),
        scale_sets::SCALE_SET => scale_sets::after_delete(state, removed),
        _ => {}
    }
}

/// Applies due scale-set instance upgrades (called whenever the state is read).
pub fn advance_upgrades(state: &mut State, now: i64) -> bool {
    scale_sets::advance(state, now)
}

/// Refusals of a list before it is read (the scale-set VM list of a Flexible set).
pub fn check_list(state: &State, arm_type: &str, scope_key: &str) -> Result<(), ArmError> {
    if arm_type == scale_sets::SCALE_SET_VM {
        return scale_sets::check_list(state, scope_key);
    }
    Ok(())
}

/// Whether a listed resource passes the list's `$filter` where the type defines one (VMs:
/// `'virtualMachineScaleSet/id' eq '{id}'`).
pub fn list_filter(r: &Resource, filter: &str) -> bool {
    if r.rtype == "Microsoft.Compute/virtualMachines"
        && let Some(id) = scale_sets::vm_filter(filter)
    {
        return scale_sets::in_scale_set(r, &id);
    }
    true
}

/// A string property compared case-insensitively, as ARM compares enum values.
pub fn same_str(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a.and_then(Value::as_str), b.and_then(Value::as_str)) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

/// Canonical casing of an enum value, or 400 naming the allowed values.
pub fn enum_value(
    value: Option<&Value>,
    allowed: &[&str],
    target: &str,
) -> Result<Option<String>, ArmError> {
    let Some(v) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let s = v.as_str().unwrap_or_default();
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(s))
        .map(|a| Some(a.to_string()))
        .ok_or_else(|| {
            ArmError::invalid(format!(
                "The value '{s}' of parameter '{target}' is not allowed. Allowed values are '{}'.",
                allowed.join("', '")
            ))
            .target(target)
        })
}

/// `Required parameter '…' is missing (null).`
pub fn required(target: &str) -> ArmError {
    ArmError::invalid(format!("Required parameter '{target}' is missing (null).")).target(target)
}

/// The `/subscriptions/{s}` segment of an id, lower-cased.
pub fn subscription_of(id: &str) -> Option<String> {
    let mut segs = id.split('/').filter(|s| !s.is_empty());
    (segs.next()?.eq_ignore_ascii_case("subscriptions")).then_some(())?;
    segs.next().map(str::to_ascii_lowercase)
}
