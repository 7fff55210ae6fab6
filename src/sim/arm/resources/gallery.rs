//! The gallery service: galleries, image definitions and image versions (arm-reference §3, §4).

use serde_json::{Value, json};

use super::{
    super::world::display_region,
    Plan, PutCtx, enum_value, required, same_str,
    security::{self, DefinitionType, SourceKind, SourceSecurity},
    sharing, soft_delete,
};
use crate::sim::arm::{
    errors::ArmError,
    faults::FaultKind,
    store::{RegionPlan, Resource, State, key},
    world::canonical_region,
};

/// Base ms each region takes to replicate at speed 1 (regions replicate one after another).
const REPLICATION_MS: i64 = 15_000;

fn alnum_edges(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

pub fn gallery(ctx: &mut PutCtx<'_>, mut props: Value, plan: &mut Plan) -> Result<Value, ArmError> {
    let name = &ctx.name;
    // Code unverified (arm-reference §4): InvalidParameter with target, like other name errors.
    if name.is_empty()
        || name.len() > 80
        || !alnum_edges(name)
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(ArmError::invalid(format!(
            "The gallery name '{name}' is invalid. It must be 1-80 characters of letters, digits, underscores and periods, start and end with a letter or digit, and cannot contain hyphens."
        ))
        .target("galleryName"));
    }
    let unique = ctx
        .old_props()
        .and_then(|p| p.pointer("/identifier/uniqueName"))
        .cloned()
        .unwrap_or_else(|| {
            json!(format!(
                "{}-{}",
                ctx.subscription,
                name.to_ascii_uppercase()
            ))
        });
    props["identifier"] = json!({"uniqueName": unique});
    props["sharingProfile"] =
        sharing::sharing_profile(ctx.old_props(), props.get("sharingProfile"))?;
    soft_delete::policy(ctx, &mut props, plan)?;
    props["provisioningState"] = json!(if ctx.existing.is_some() {
        "Updating"
    } else {
        "Creating"
    });
    Ok(props)
}

const IMMUTABLE_DEFINITION: &[&str] = &[
    "osType",
    "osState",
    "hyperVGeneration",
    "identifier",
    "eula",
    // Unverified (arm-reference §4): treated as immutable like the documented ones.
    "architecture",
    "purchasePlan",
];

pub fn definition(ctx: &mut PutCtx<'_>, mut props: Value) -> Result<Value, ArmError> {
    let name = &ctx.name;
    if name.is_empty()
        || name.len() > 80
        || !alnum_edges(name)
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ArmError::invalid(format!(
            "The gallery image name '{name}' is invalid. It must be 1-80 characters of letters, digits, hyphens, underscores and periods, and start and end with a letter or digit."
        ))
        .target("galleryImageName"));
    }
    let os_type = enum_value(
        props.get("osType"),
        &["Windows", "Linux"],
        "galleryImage.properties.osType",
    )?
    .ok_or_else(|| required("galleryImage.properties.osType"))?;
    let os_state = enum_value(
        props.get("osState"),
        &["Generalized", "Specialized"],
        "galleryImage.properties.osState",
    )?
    .ok_or_else(|| required("galleryImage.properties.osState"))?;
    props["osType"] = json!(os_type);
    props["osState"] = json!(os_state);
    if let Some(g) = enum_value(
        props.get("hyperVGeneration"),
        &["V1", "V2"],
        "galleryImage.properties.hyperVGeneration",
    )? {
        props["hyperVGeneration"] = json!(g);
    }
    let arch = enum_value(
        props.get("architecture"),
        &["x64", "Arm64"],
        "galleryImage.properties.architecture",
    )?
    .unwrap_or_else(|| "x64".into());
    props["architecture"] = json!(arch);
    for (field, max) in [("publisher", 128), ("offer", 64), ("sku", 64)] {
        let target = format!("galleryImage.properties.identifier.{field}");
        let v = props
            .pointer(&format!("/identifier/{field}"))
            .and_then(Value::as_str)
            .ok_or_else(|| required(&target))?;
        if v.is_empty() || v.len() > max {
            return Err(ArmError::invalid(format!(
                "The value of parameter '{target}' must be 1-{max} characters long."
            ))
            .target(target));
        }
    }
    if let Some(old) = ctx.old_props() {
        for prop in IMMUTABLE_DEFINITION {
            let (a, b) = (old.get(*prop), props.get(*prop));
            let changed = if *prop == "identifier" {
                ["publisher", "offer", "sku"]
                    .iter()
                    .any(|f| !same_str(a.and_then(|v| v.get(*f)), b.and_then(|v| v.get(*f))))
            } else if b.is_none() || b == Some(&Value::Null) {
                false
            } else if a.is_some_and(Value::is_string) {
                !same_str(a, b)
            } else {
                a != b
            };
            if changed {
                return Err(ArmError::property_change(&format!(
                    "galleryImage.properties.{prop}"
                )));
            }
            if let (Some(a), None | Some(Value::Null)) = (a, b) {
                props[*prop] = a.clone();
            }
        }
    }
    definition_security(ctx, &mut props)?;
    // Unverified code: the identifier must be unique within the gallery.
    if let Some(parent) = ctx.parent {
        let ident = |p: &Value| {
            ["publisher", "offer", "sku"].map(|f| {
                p.pointer(&format!("/identifier/{f}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            })
        };
        let mine = ident(&props);
        let parent_key = key(&parent.id);
        if let Some(other) = ctx
            .state
            .children(&parent_key, "images")
            .find(|r| key(&r.id) != ctx.key && ident(&r.body["properties"]) == mine)
        {
            return Err(ArmError::new(
                409,
                "GalleryImageIdentifierConflict",
                format!(
                    "Gallery image '{}' in gallery '{}' already has publisher '{}', offer '{}' and sku '{}'.",
                    other.name(),
                    parent.name(),
                    mine[0],
                    mine[1],
                    mine[2]
                ),
            ));
        }
    }
    props["provisioningState"] = json!(if ctx.existing.is_some() {
        "Updating"
    } else {
        "Creating"
    });
    Ok(props)
}

/// A definition's security: the GalleryRP 2025-03-03 defaults on creation, `features` kept when
/// a PUT leaves them out and changed only with `allowUpdateImage: true` (GalleryImage_UpdateFeatures.json;
/// the refusal is inferred), and TrustedLaunch / ConfidentialVM only in private galleries
/// (azure-today §A.2 "Private only"; refusal inferred).
fn definition_security(ctx: &PutCtx<'_>, props: &mut Value) -> Result<(), ArmError> {
    let allow_update = props
        .get("allowUpdateImage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(o) = props.as_object_mut() {
        o.remove("allowUpdateImage");
    }
    match ctx.old_props() {
        None => security::definition_defaults(ctx.api_version, props),
        Some(old) => {
            let old_features = old.get("features").cloned().unwrap_or_else(|| json!([]));
            match props.get("features").filter(|f| !f.is_null()).cloned() {
                None => {
                    if old.get("features").is_some() {
                        props["features"] = old_features;
                    }
                }
                Some(mut new) => {
                    // A SecurityType the request leaves out is the one the definition has.
                    let names = |fs: &Value| -> bool {
                        fs.as_array().into_iter().flatten().any(|f| {
                            f.get("name")
                                .and_then(Value::as_str)
                                .is_some_and(|n| n.eq_ignore_ascii_case("SecurityType"))
                        })
                    };
                    if !names(&new) && names(&old_features) && new.is_array() {
                        let kept: Vec<Value> = old_features
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|f| {
                                f.get("name")
                                    .and_then(Value::as_str)
                                    .is_some_and(|n| n.eq_ignore_ascii_case("SecurityType"))
                            })
                            .cloned()
                            .collect();
                        new.as_array_mut().expect("checked").extend(kept);
                    }
                    if !same_features(&old_features, &new) && !allow_update {
                        return Err(ArmError::new(
                            409,
                            "PropertyChangeNotAllowed",
                            "Changing property 'galleryImage.properties.features' is not allowed unless 'allowUpdateImage' is true.",
                        )
                        .target("galleryImage.properties.features"));
                    }
                    props["features"] = new;
                }
            }
        }
    }
    security::check_definition(props)?;
    let def_type = security::definition_type(props.get("features"), None);
    if let Some(gallery) = ctx.parent {
        let permissions = gallery
            .body
            .pointer("/properties/sharingProfile/permissions")
            .and_then(Value::as_str)
            .unwrap_or("Private");
        if def_type.private_only() && !permissions.eq_ignore_ascii_case("Private") {
            return Err(ArmError::invalid(format!(
                "Gallery image definitions with security type '{}' can only be created in private galleries; gallery '{}' is shared with permissions '{permissions}'.",
                def_type.as_str(),
                gallery.name()
            ))
            .target("galleryImage.properties.features"));
        }
    }
    Ok(())
}

/// Feature lists compared as sets of (name, value, startsAtVersion), case-insensitively.
fn same_features(a: &Value, b: &Value) -> bool {
    let set = |v: &Value| -> std::collections::BTreeSet<(String, String, String)> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let s = |k: &str| {
                    f.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                };
                (s("name"), s("value"), s("startsAtVersion"))
            })
            .collect()
    };
    set(a) == set(b)
}

fn parse_version(name: &str) -> Option<(i32, i32, i32)> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    let p = |s: &str| {
        (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<i32>().ok())
            .flatten()
    };
    Some((p(parts[0])?, p(parts[1])?, p(parts[2])?))
}

/// What a version's source is.
struct SourceFacts {
    id: String,
    rtype: String,
    os_type: Option<String>,
    os_state: Option<String>,
    security: SourceSecurity,
}

fn source_facts(ctx: &PutCtx<'_>, props: &Value) -> Result<Option<SourceFacts>, ArmError> {
    let candidates = [
        (
            "/storageProfile/source/id",
            "galleryImageVersion.properties.storageProfile.source.id",
        ),
        (
            "/storageProfile/source/virtualMachineId",
            "galleryImageVersion.properties.storageProfile.source.virtualMachineId",
        ),
        (
            "/storageProfile/osDiskImage/source/id",
            "galleryImageVersion.properties.storageProfile.osDiskImage.source.id",
        ),
    ];
    for (pointer, target) in candidates {
        let Some(id) = props
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        // Unverified: a missing source is a 400 InvalidParameter naming it.
        let r = ctx.state.get(id).ok_or_else(|| {
            ArmError::invalid(format!(
                "The source '{id}' of the gallery image version was not found."
            ))
            .target(target)
        })?;
        let p = &r.body["properties"];
        let str_at =
            |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_str).map(String::from);
        let security = |kind, generation: Option<String>, vm_type: Option<String>| SourceSecurity {
            kind,
            generation,
            vm_type: security::VmType::of_disk_or_vm(vm_type.as_deref()),
            definition: None,
        };
        let (os_type, os_state, sec) = match r.rtype.as_str() {
            // Managed images default to generation 1 when created without one.
            "Microsoft.Compute/images" => (
                p.pointer("/storageProfile/osDisk/osType"),
                p.pointer("/storageProfile/osDisk/osState")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .or(r.meta.os_state.clone()),
                security(
                    SourceKind::ManagedImage,
                    Some(str_at(p, "/hyperVGeneration").unwrap_or_else(|| "V1".into())),
                    None,
                ),
            ),
            "Microsoft.Compute/snapshots" | "Microsoft.Compute/disks" => (
                p.get("osType"),
                r.meta.os_state.clone(),
                security(
                    if r.rtype.ends_with("snapshots") {
                        SourceKind::Snapshot
                    } else {
                        SourceKind::Disk
                    },
                    str_at(p, "/hyperVGeneration"),
                    str_at(p, "/securityProfile/securityType"),
                ),
            ),
            "Microsoft.Compute/virtualMachines" => {
                let disk_gen = p
                    .pointer("/storageProfile/osDisk/managedDisk/id")
                    .and_then(Value::as_str)
                    .and_then(|d| ctx.state.get(d))
                    .and_then(|d| str_at(&d.body, "/properties/hyperVGeneration"));
                (
                    p.pointer("/storageProfile/osDisk/osType"),
                    Some(
                        r.meta
                            .os_state
                            .clone()
                            .unwrap_or_else(|| "Specialized".into()),
                    ),
                    security(
                        SourceKind::VirtualMachine,
                        disk_gen,
                        str_at(p, "/securityProfile/securityType"),
                    ),
                )
            }
            "Microsoft.Compute/galleries/images/versions" => {
                let def = super::super::store::parent_key(&key(&r.id))
                    .and_then(|k| ctx.state.resources.get(&k));
                let dp = def.map(|d| &d.body["properties"]);
                (
                    dp.and_then(|d| d.get("osType")),
                    dp.and_then(|d| d.get("osState"))
                        .and_then(Value::as_str)
                        .map(String::from),
                    SourceSecurity {
                        kind: SourceKind::GalleryVersion,
                        generation: dp.and_then(|d| str_at(d, "/hyperVGeneration")),
                        vm_type: security::VmType::Standard,
                        definition: Some(security::definition_type(
                            dp.and_then(|d| d.get("features")),
                            Some(r.name()),
                        )),
                    },
                )
            }
            other => {
                return Err(ArmError::invalid(format!(
                    "The source '{id}' is a {other}; a gallery image version can be created from a managed image, a virtual machine, a gallery image version, or a snapshot or disk."
                ))
                .target(target));
            }
        };
        return Ok(Some(SourceFacts {
            id: r.id.clone(),
            rtype: r.rtype.clone(),
            os_type: os_type.and_then(Value::as_str).map(String::from),
            os_state,
            security: sec,
        }));
    }
    Ok(None)
}

/// How replicas are stored: one account type for every region, or a strategy (azure-today §C.12,
/// GalleryImageVersion_Create_WithStorageAccountStrategy.json).
#[derive(Debug, Clone, PartialEq)]
enum Storage {
    Type(String),
    Strategy(String),
}

impl Storage {
    /// The account type of a region without its own `storageAccountType`: PreferStandard_ZRS is
    /// ZRS where the region has zones, LRS elsewhere; DefaultStandard_LRS is LRS.
    fn for_region(&self, zonal: bool) -> String {
        match self {
            Self::Type(t) => t.clone(),
            Self::Strategy(s) if s == "PreferStandard_ZRS" && zonal => "Standard_ZRS".into(),
            Self::Strategy(_) => "Standard_LRS".into(),
        }
    }

    /// Neither given: PreferStandard_ZRS from GalleryRP 2025-03-03, Standard_LRS before.
    fn default_for(api_version: &str) -> Self {
        if api_version >= "2025-03-03" {
            Self::Strategy("PreferStandard_ZRS".into())
        } else {
            Self::Type("Standard_LRS".into())
        }
    }

    fn of(pp: &Value) -> Option<Self> {
        let s = |k: &str| pp.get(k).and_then(Value::as_str).map(String::from);
        s("storageAccountStrategy")
            .map(Self::Strategy)
            .or_else(|| s("storageAccountType").map(Self::Type))
    }
}

const STORAGE_TYPES: &[&str] = &[
    "Standard_LRS",
    "Standard_ZRS",
    "Premium_LRS",
    "PremiumV2_LRS",
];
const PP: &str = "galleryImageVersion.properties.publishingProfile";

/// The storage choice of a version PUT: given as a type or a strategy (never both; refusal
/// inferred), kept from the stored version when left out, the api-version's default on
/// creation; fixed once created (409 PropertyChangeNotAllowed, as for storageAccountType).
fn storage_choice(ctx: &PutCtx<'_>, pp: &Value) -> Result<Storage, ArmError> {
    let given_type = enum_value(
        pp.get("storageAccountType"),
        STORAGE_TYPES,
        &format!("{PP}.storageAccountType"),
    )?;
    let given_strategy = enum_value(
        pp.get("storageAccountStrategy"),
        &["PreferStandard_ZRS", "DefaultStandard_LRS"],
        &format!("{PP}.storageAccountStrategy"),
    )?;
    let old = ctx
        .old_props()
        .and_then(|p| p.get("publishingProfile"))
        .and_then(Storage::of);
    let chosen = match (given_type, given_strategy) {
        (Some(_), Some(_)) => {
            return Err(ArmError::invalid(
                "The parameters 'storageAccountType' and 'storageAccountStrategy' cannot be specified together. Use targetRegions[].storageAccountType to override the strategy in a region.",
            )
            .target(format!("{PP}.storageAccountStrategy")));
        }
        (Some(t), None) => Storage::Type(t),
        (None, Some(s)) => Storage::Strategy(s),
        (None, None) => old
            .clone()
            .unwrap_or_else(|| Storage::default_for(ctx.api_version)),
    };
    if let Some(old) = old
        && old != chosen
    {
        return Err(ArmError::property_change(&format!(
            "{PP}.{}",
            match chosen {
                Storage::Type(_) => "storageAccountType",
                Storage::Strategy(_) => "storageAccountStrategy",
            }
        )));
    }
    Ok(chosen)
}

/// Deletion safety (azure-today §B.9, §B.10): `endOfLifeDate` and
/// `safetyProfile.blockDeletionBeforeEndOfLife` kept from the stored version when left out; on
/// creation at 2026-03-03 they default to publish + 6 months and true. A new or changed end of
/// life in the past is refused with Azure's message; a block without an end of life is refused
/// (inferred).
fn deletion_safety(ctx: &PutCtx<'_>, props: &mut Value) -> Result<(), ArmError> {
    let old = ctx.old_props();
    let old_eol = old
        .and_then(|p| p.pointer("/publishingProfile/endOfLifeDate"))
        .cloned();
    let old_block = old
        .and_then(|p| p.pointer("/safetyProfile/blockDeletionBeforeEndOfLife"))
        .cloned();
    let given_eol = props
        .pointer("/publishingProfile/endOfLifeDate")
        .filter(|v| !v.is_null())
        .cloned();
    let given_block = props
        .pointer("/safetyProfile/blockDeletionBeforeEndOfLife")
        .filter(|v| !v.is_null())
        .cloned();
    let defaults = old.is_none() && ctx.api_version >= "2026-03-03";
    let eol = given_eol.clone().or(old_eol.clone()).or_else(|| {
        defaults.then(|| {
            let at = chrono::DateTime::from_timestamp_millis(ctx.now).unwrap_or_default();
            json!(
                at.checked_add_months(chrono::Months::new(6))
                    .unwrap_or(at)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            )
        })
    });
    let block = given_block
        .or(old_block)
        .or_else(|| defaults.then_some(Value::Bool(true)));
    let target = format!("{PP}.endOfLifeDate");
    if let Some(e) = &eol {
        let at = e
            .as_str()
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .ok_or_else(|| {
                ArmError::invalid(format!(
                    "The value '{e}' of parameter '{target}' is not a valid date-time."
                ))
                .target(target.clone())
            })?;
        let changed = given_eol.is_some() && given_eol != old_eol;
        if changed && at.timestamp_millis() <= ctx.now {
            return Err(
                ArmError::invalid("EndOfLifeDate must be set to a future date.").target(target),
            );
        }
        props["publishingProfile"]["endOfLifeDate"] = e.clone();
    }
    if let Some(b) = block {
        if !b.is_boolean() {
            return Err(ArmError::invalid(
                "The value of parameter 'galleryImageVersion.properties.safetyProfile.blockDeletionBeforeEndOfLife' must be a boolean.",
            )
            .target("galleryImageVersion.properties.safetyProfile.blockDeletionBeforeEndOfLife"));
        }
        if b == true && eol.is_none() {
            return Err(ArmError::invalid(
                "An endOfLifeDate is required when safetyProfile.blockDeletionBeforeEndOfLife is true.",
            )
            .target(target));
        }
        props["safetyProfile"]["blockDeletionBeforeEndOfLife"] = b;
    }
    Ok(())
}

pub fn version(ctx: &mut PutCtx<'_>, mut props: Value, plan: &mut Plan) -> Result<Value, ArmError> {
    if parse_version(&ctx.name).is_none() {
        return Err(ArmError::invalid(
            "The image version name is invalid. The name should follow Major(int32).Minor(int32).Patch(int32) format, e.g. 1.0.0, 2018.12.31",
        )
        .target("galleryImageVersionName"));
    }
    let definition = ctx.parent.expect("versions always have a parent");
    let def_props = &definition.body["properties"];
    let own_location = ctx.location.clone().unwrap_or_default();
    let restore = props
        .get("restore")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let soft_deleted = ctx.state.soft_deleted.contains_key(&ctx.key);
    match (restore, soft_deleted, ctx.existing) {
        (true, true, Some(old)) => {
            // Restored as it was; the soft-deleted record goes.
            plan.removals.push(ctx.key.clone());
            let mut restored = old.body["properties"].clone();
            restored["provisioningState"] = json!("Updating");
            return Ok(restored);
        }
        (true, _, _) => {
            return Err(ArmError::invalid(format!(
                "There is no soft-deleted gallery image version '{}' to restore.",
                ctx.name
            ))
            .target("galleryImageVersion.properties.restore"));
        }
        (false, true, _) => {
            return Err(ArmError::new(
                409,
                "Conflict",
                format!(
                    "Gallery image version '{}' is soft-deleted; restore it with properties.restore set to true, or choose another version name.",
                    ctx.name
                ),
            ));
        }
        _ => {}
    }
    if let Some(o) = props.as_object_mut() {
        o.remove("restore");
    }
    if let Some(old) = ctx.existing {
        let old_props = &old.body["properties"];
        // Unverified code (arm-reference §4): source, data disk LUNs, replication mode and
        // storage type are fixed once published.
        for (pointer, prop) in [
            (
                "/storageProfile/source",
                "galleryImageVersion.properties.storageProfile.source",
            ),
            (
                "/storageProfile/osDiskImage/source",
                "galleryImageVersion.properties.storageProfile.osDiskImage.source",
            ),
            (
                "/publishingProfile/replicationMode",
                "galleryImageVersion.properties.publishingProfile.replicationMode",
            ),
        ] {
            let (a, b) = (old_props.pointer(pointer), props.pointer(pointer));
            let differs = match (a, b) {
                (Some(Value::Object(x)), Some(Value::Object(y))) => x
                    .iter()
                    .any(|(k, v)| y.get(k).is_some_and(|w| !same_str(Some(v), Some(w)))),
                (Some(_), Some(_)) => !same_str(a, b),
                _ => false,
            };
            if differs {
                return Err(ArmError::property_change(prop));
            }
        }
        let luns = |p: &Value| -> Vec<i64> {
            let mut v: Vec<i64> = p
                .pointer("/storageProfile/dataDiskImages")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.get("lun").and_then(Value::as_i64))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        if luns(old_props) != luns(&props) {
            return Err(ArmError::property_change(
                "galleryImageVersion.properties.storageProfile.dataDiskImages",
            ));
        }
    }

    // Source: exists and fits the definition.
    let Some(SourceFacts {
        id: source_id,
        rtype: source_type,
        os_type,
        os_state,
        security: source_security,
    }) = source_facts(ctx, &props)?
    else {
        return Err(required("galleryImageVersion.properties.storageProfile"));
    };
    let def_os_type = def_props
        .get("osType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let def_os_state = def_props
        .get("osState")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(t) = &os_type
        && !t.eq_ignore_ascii_case(def_os_type)
    {
        return Err(ArmError::invalid(format!(
            "The operating system type '{t}' of source '{source_id}' does not match the operating system type '{def_os_type}' of gallery image '{}'.",
            definition.name()
        ))
        .target("galleryImageVersion.properties.storageProfile"));
    }
    if let Some(s) = &os_state
        && !s.eq_ignore_ascii_case(def_os_state)
    {
        return Err(ArmError::invalid(format!(
            "The source '{source_id}' ({source_type}) is {s}, but gallery image '{}' has osState '{def_os_state}'.",
            definition.name()
        ))
        .target("galleryImageVersion.properties.storageProfile"));
    }
    if ctx.existing.is_none() {
        let def_type: DefinitionType =
            security::definition_type(def_props.get("features"), Some(&ctx.name));
        let def_gen = def_props
            .get("hyperVGeneration")
            .and_then(Value::as_str)
            .unwrap_or("V1");
        security::check_version_source(def_type, def_gen, &source_security, &source_id)?;
    }
    sharing::direct_sharing_limits(ctx, &props, &own_location)?;

    // Publishing profile defaults, as the recorded create echoes them.
    if !props["publishingProfile"].is_object() {
        props["publishingProfile"] = json!({});
    }
    if !props["safetyProfile"].is_object() {
        props["safetyProfile"] = json!({});
    }
    deletion_safety(ctx, &mut props)?;
    let storage = storage_choice(ctx, &props["publishingProfile"])?;
    let pp = &mut props["publishingProfile"];
    let replica_count = pp.get("replicaCount").and_then(Value::as_i64).unwrap_or(1);
    if !(1..=100).contains(&replica_count) {
        return Err(
            ArmError::invalid("The replica count must be between 1 and 100.")
                .target("galleryImageVersion.properties.publishingProfile.replicaCount"),
        );
    }
    pp["replicaCount"] = json!(replica_count);
    if let Some(o) = pp.as_object_mut() {
        o.remove("storageAccountType");
        o.remove("storageAccountStrategy");
        match &storage {
            Storage::Type(t) => o.insert("storageAccountType".into(), json!(t)),
            Storage::Strategy(s) => o.insert("storageAccountStrategy".into(), json!(s)),
        };
    }
    let exclude = pp
        .get("excludeFromLatest")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    pp["excludeFromLatest"] = json!(exclude);
    if let Some(mode) = enum_value(
        pp.get("replicationMode"),
        &["Full", "Shallow"],
        "galleryImageVersion.properties.publishingProfile.replicationMode",
    )? {
        pp["replicationMode"] = json!(mode);
    }
    let targets = match pp.get("targetRegions").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list.clone(),
        _ => vec![json!({"name": own_location})],
    };
    let mut regions: Vec<String> = Vec::new();
    let mut rendered = Vec::new();
    for t in targets {
        let given = t.get("name").and_then(Value::as_str).unwrap_or_default();
        let region = ctx.world.region(given).ok_or_else(|| {
            ArmError::invalid(format!(
                "The region '{given}' in targetRegions is not available. Available regions are '{}'.",
                ctx.world.region_list()
            ))
            .target("galleryImageVersion.properties.publishingProfile.targetRegions")
        })?;
        if regions.contains(&region) {
            return Err(ArmError::invalid(format!(
                "The region '{}' is listed more than once in targetRegions.",
                display_region(&region)
            ))
            .target("galleryImageVersion.properties.publishingProfile.targetRegions"));
        }
        let count = t
            .get("regionalReplicaCount")
            .and_then(Value::as_i64)
            .unwrap_or(replica_count);
        if !(1..=100).contains(&count) {
            return Err(
                ArmError::invalid("The regional replica count must be between 1 and 100.")
                    .target("galleryImageVersion.properties.publishingProfile.targetRegions"),
            );
        }
        let zonal = ctx.world.is_zonal(&region);
        let region_storage = enum_value(
            t.get("storageAccountType"),
            STORAGE_TYPES,
            "galleryImageVersion.properties.publishingProfile.targetRegions.storageAccountType",
        )?
        .unwrap_or_else(|| storage.for_region(zonal));
        // azure-today §C.12: the gallery service's message; code InvalidParameter inferred.
        if region_storage == "Standard_ZRS" && !zonal {
            return Err(ArmError::invalid(
                "ZRS storage account type is not supported in this region.",
            )
            .target(format!(
                "galleryImageVersion.properties.publishingProfile.targetRegions[{}]",
                display_region(&region)
            )));
        }
        let mut out = t.clone();
        out["name"] = json!(display_region(&region));
        out["regionalReplicaCount"] = json!(count);
        out["storageAccountType"] = json!(region_storage);
        out["excludeFromLatest"] = json!(
            t.get("excludeFromLatest")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        );
        rendered.push(out);
        regions.push(region);
    }
    if !regions.contains(&own_location) {
        return Err(ArmError::invalid(format!(
            "The target regions must include the gallery image version's location '{}'.",
            display_region(&own_location)
        ))
        .target("galleryImageVersion.properties.publishingProfile.targetRegions"));
    }
    pp["targetRegions"] = json!(rendered);
    let allow_delete = props
        .pointer("/safetyProfile/allowDeletionOfReplicatedLocations")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    props["safetyProfile"]["allowDeletionOfReplicatedLocations"] = json!(allow_delete);
    props["safetyProfile"]["reportedForPolicyViolation"] = json!(false);
    if props
        .pointer("/storageProfile/osDiskImage")
        .is_some_and(Value::is_object)
        && props
            .pointer("/storageProfile/osDiskImage/hostCaching")
            .is_none()
    {
        props["storageProfile"]["osDiskImage"]["hostCaching"] = json!("ReadWrite");
    }
    props.as_object_mut().map(|o| o.remove("replicationStatus"));

    let now = ctx.now;
    let repl_ms = ctx.scaled(REPLICATION_MS);
    if let Some(old) = ctx.existing {
        let old_props = &old.body["properties"];
        // Region removal needs the safety profile's permission. Code unverified; 400
        // OperationNotAllowed (a refusal the caller must fix, not retry).
        let removed: Vec<&RegionPlan> = old
            .meta
            .replication
            .iter()
            .filter(|p| !regions.contains(&p.region))
            .collect();
        if !removed.is_empty() && !allow_delete {
            return Err(ArmError::new(
                400,
                "OperationNotAllowed",
                format!(
                    "Removing target region(s) '{}' is not allowed because safetyProfile.allowDeletionOfReplicatedLocations is false for gallery image version '{}'.",
                    removed.iter().map(|p| display_region(&p.region)).collect::<Vec<_>>().join("', '"),
                    ctx.name
                ),
            )
            .target("galleryImageVersion.properties.publishingProfile.targetRegions"));
        }
        props["publishingProfile"]["publishedDate"] = old_props
            .pointer("/publishingProfile/publishedDate")
            .cloned()
            .unwrap_or(Value::Null);
        let mut kept: Vec<RegionPlan> = old
            .meta
            .replication
            .iter()
            .filter(|p| regions.contains(&p.region))
            .cloned()
            .collect();
        let mut next_start = now;
        let added: Vec<String> = regions
            .iter()
            .filter(|r| !kept.iter().any(|p| &p.region == *r))
            .cloned()
            .collect();
        for region in &added {
            let failure = replication_failure(ctx, region);
            kept.push(RegionPlan {
                region: region.clone(),
                start_ms: next_start,
                end_ms: next_start + repl_ms,
                failure,
            });
            next_start += repl_ms;
        }
        plan.meta.replication = kept;
    } else {
        props["publishingProfile"]["publishedDate"] = json!(
            chrono::DateTime::from_timestamp_millis(now)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        let mut start = now + plan.duration_ms;
        // The version's own region first, then the others in the order given.
        let mut ordered = vec![own_location.clone()];
        ordered.extend(regions.iter().filter(|r| **r != own_location).cloned());
        plan.meta.replication = ordered
            .iter()
            .map(|region| {
                let failure = replication_failure(ctx, region);
                let p = RegionPlan {
                    region: region.clone(),
                    start_ms: start,
                    end_ms: start + repl_ms,
                    failure,
                };
                start += repl_ms;
                p
            })
            .collect();
    }
    let last = plan
        .meta
        .replication
        .iter()
        .map(|p| p.end_ms)
        .max()
        .unwrap_or(now);
    plan.duration_ms = plan.duration_ms.max(last - now);
    if let Some(failed) = plan.meta.replication.iter().find(|p| p.failure.is_some()) {
        // Unverified: the version ends Failed with a replication error naming the region.
        plan.failure = Some(crate::sim::arm::lro::Failure {
            status: 500,
            code: "ReplicationFailed".into(),
            message: format!(
                "Replication of gallery image version '{}' to region '{}' failed: {}",
                ctx.name,
                display_region(&failed.region),
                failed.failure.clone().unwrap_or_default()
            ),
        });
    }
    props["provisioningState"] = json!(if ctx.existing.is_some() {
        "Updating"
    } else {
        "Creating"
    });
    Ok(props)
}

fn replication_failure(ctx: &mut PutCtx<'_>, region: &str) -> Option<String> {
    ctx.faults
        .fire_where(
            FaultKind::ReplicationFailure,
            ctx.method,
            ctx.kind.arm_type,
            |s| {
                s.region
                    .as_deref()
                    .is_none_or(|r| canonical_region(r) == region)
            },
        )
        .map(|s| {
            s.message.unwrap_or_else(|| {
                "Replication to the target region failed: the storage account is unavailable."
                    .into()
            })
        })
}

/// Replication status at `now`: per region Replicating/Completed/Failed with progress.
pub fn replication_status(r: &Resource, now: i64) -> Value {
    let summary: Vec<Value> = r
        .meta
        .replication
        .iter()
        .map(|p| {
            let (state, progress, details) = if now >= p.end_ms {
                match &p.failure {
                    Some(d) => (
                        "Failed",
                        ((now.min(p.end_ms) - p.start_ms) * 100 / (p.end_ms - p.start_ms).max(1))
                            .clamp(0, 99),
                        d.clone(),
                    ),
                    None => ("Completed", 100, String::new()),
                }
            } else if now < p.start_ms {
                ("Replicating", 0, String::new())
            } else {
                let span = (p.end_ms - p.start_ms).max(1);
                (
                    "Replicating",
                    ((now - p.start_ms) * 100 / span).clamp(0, 99),
                    String::new(),
                )
            };
            let mut v =
                json!({"region": display_region(&p.region), "state": state, "progress": progress});
            if !details.is_empty() {
                v["details"] = json!(details);
            }
            v
        })
        .collect();
    let states: Vec<&str> = summary.iter().filter_map(|s| s["state"].as_str()).collect();
    let aggregated = if states.contains(&"Failed") {
        "Failed"
    } else if !states.is_empty() && states.iter().all(|s| *s == "Completed") {
        "Completed"
    } else if states.is_empty() {
        "Unknown"
    } else {
        "InProgress"
    };
    json!({"aggregatedState": aggregated, "summary": summary})
}

pub fn render_version(r: &Resource, expand: Option<&str>, now: i64) -> Value {
    let mut body = r.body.clone();
    if expand.is_some_and(|e| {
        e.split(',')
            .any(|x| x.trim().eq_ignore_ascii_case("ReplicationStatus"))
    }) {
        body["properties"]["replicationStatus"] = replication_status(r, now);
    }
    body
}

/// Whether a version is replicated (Completed) in `region` at `now`.
pub fn replicated_in(r: &Resource, region: &str, now: i64) -> bool {
    r.meta
        .replication
        .iter()
        .any(|p| p.region == region && now >= p.end_ms && p.failure.is_none())
}

/// `latest` of a definition in a region: the highest Major.Minor.Patch among versions that
/// succeeded, are replicated there, are not excluded from latest (globally or in that region)
/// and are not past end of life (unverified: end of life treated as excluded).
pub fn latest_version<'a>(
    state: &'a State,
    definition_key: &'a str,
    region: &str,
    now: i64,
) -> Option<&'a Resource> {
    state
        .children(definition_key, "versions")
        .filter(|v| v.provisioning_state() == Some("Succeeded") && replicated_in(v, region, now))
        .filter(|v| {
            let pp = &v.body["properties"]["publishingProfile"];
            let excluded = pp
                .get("excludeFromLatest")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                || pp
                    .get("targetRegions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|t| {
                        t.get("name")
                            .and_then(Value::as_str)
                            .map(canonical_region)
                            .as_deref()
                            == Some(region)
                            && t.get("excludeFromLatest")
                                .and_then(Value::as_bool)
                                .unwrap_or(false)
                    });
            let eol = pp
                .get("endOfLifeDate")
                .and_then(Value::as_str)
                .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
                .is_some_and(|d| d.timestamp_millis() <= now);
            !excluded && !eol
        })
        .max_by_key(|v| parse_version(v.name()))
}

/// Refusals of a gallery, definition or version DELETE:
/// - a gallery with definitions or a definition with versions, also for the eventual-consistency
///   window after its last child went away, or with soft-deleted versions (azure-today §B.11;
///   message inferred): 409 CannotDeleteResource;
/// - a gallery whose sharing was not reset (§D.13, §D.14; 409 OperationNotAllowed inferred);
/// - a version with `blockDeletionBeforeEndOfLife` before its end of life, whatever api-version
///   the DELETE uses (§B.9, §B.10; 409 OperationNotAllowed inferred).
pub fn check_delete(state: &State, r: &Resource, now: i64) -> Result<(), ArmError> {
    let k = key(&r.id);
    if r.rtype == "Microsoft.Compute/galleries/images/versions" {
        return check_version_delete(r, now);
    }
    let child = if r.rtype == "Microsoft.Compute/galleries" {
        "images"
    } else {
        "versions"
    };
    let blocked = state
        .last_child_deleted
        .get(&k)
        .is_some_and(|at| now < at + state.settings.delete_block_ms);
    if state.children(&k, child).next().is_some() || blocked {
        return Err(ArmError::new(
            409,
            "CannotDeleteResource",
            "Can not delete resource before nested resources are deleted.",
        ));
    }
    let kept = state.soft_deleted_under(&k, now).count();
    if kept > 0 {
        return Err(ArmError::new(
            409,
            "CannotDeleteResource",
            format!(
                "Can not delete resource before nested resources are deleted: {kept} soft-deleted image version(s) are kept until their retention ends; restore them, or turn soft delete off on the gallery to delete them."
            ),
        ));
    }
    if r.rtype == "Microsoft.Compute/galleries" && sharing::sharing_active(&r.body["properties"]) {
        return Err(ArmError::new(
            409,
            "OperationNotAllowed",
            format!(
                "Gallery '{}' is shared; reset its sharing profile (POST .../share with operationType 'Reset') before deleting it.",
                r.name()
            ),
        ));
    }
    Ok(())
}

fn check_version_delete(r: &Resource, now: i64) -> Result<(), ArmError> {
    let p = &r.body["properties"];
    let block = p
        .pointer("/safetyProfile/blockDeletionBeforeEndOfLife")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let eol = p
        .pointer("/publishingProfile/endOfLifeDate")
        .and_then(Value::as_str);
    let before_eol = eol
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
        .is_none_or(|d| now < d.timestamp_millis());
    if block && before_eol {
        return Err(ArmError::new(
            409,
            "OperationNotAllowed",
            format!(
                "Gallery image version '{}' cannot be deleted before its end of life date '{}' because safetyProfile.blockDeletionBeforeEndOfLife is true.",
                r.name(),
                eol.unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_strategies_pick_zrs_only_where_the_region_has_zones() {
        let prefer = Storage::Strategy("PreferStandard_ZRS".into());
        assert_eq!(prefer.for_region(true), "Standard_ZRS");
        assert_eq!(prefer.for_region(false), "Standard_LRS");
        let lrs = Storage::Strategy("DefaultStandard_LRS".into());
        assert_eq!(lrs.for_region(true), "Standard_LRS");
        assert_eq!(
            Storage::Type("Premium_LRS".into()).for_region(false),
            "Premium_LRS"
        );
        assert_eq!(Storage::default_for("2025-03-03"), prefer);
        assert_eq!(
            Storage::default_for("2024-03-03"),
            Storage::Type("Standard_LRS".into())
        );
    }
}
