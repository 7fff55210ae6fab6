//! ARM paths: what a request points at ([`Target`]) and the query-string helpers.

use axum::http::Uri;

use crate::sim::arm::{
    errors::ArmError,
    resources::{self, Kind},
};

/// Where an ARM request points.
pub(super) enum Target {
    Subscription,
    /// `/subscriptions/{id}/locations`: the regions the subscription offers.
    Locations,
    ResourceGroups,
    ResourceGroup {
        name: String,
    },
    RgResources {
        rg: String,
    },
    Operation {
        namespace: String,
        op: String,
        monitor: bool,
    },
    Item(Item),
    List(List),
    /// `POST …/galleries/{g}/share`.
    Share(Item),
    /// `GET …/virtualMachineScaleSets/{n}/instanceView`, `POST …/manualupgrade`: the scale
    /// set and the action's lower-cased name.
    ScaleSetAction(Item, String),
    /// `GET …/galleries/{g}/softDeletedArtifactTypes/{type}/artifacts/{image}/versions`.
    SoftDeleted {
        gallery_key: String,
        artifact_type: String,
        image: String,
    },
}

pub(super) struct Item {
    pub(super) kind: &'static Kind,
    pub(super) key: String,
    /// Parent resource, resource group, or (role assignments) scope key.
    pub(super) scope_key: String,
    pub(super) nested: bool,
    pub(super) name: String,
    /// The parent's name as the request wrote it (ARM's ParentResourceNotFound names it so).
    pub(super) parent_name: String,
    pub(super) rg: Option<String>,
    /// `Microsoft.Compute/galleries/g/images/i` for not-found messages.
    pub(super) display: String,
}

pub(super) struct List {
    pub(super) kind: &'static Kind,
    pub(super) scope_key: String,
    pub(super) level: ListLevel,
    /// For lists under a parent: its name as the request wrote it.
    pub(super) parent_name: String,
}

#[derive(PartialEq)]
pub(super) enum ListLevel {
    Parent,
    ResourceGroup,
    Subscription,
    Scope,
}

pub(super) fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

pub(super) fn no_route(path: &str) -> ArmError {
    ArmError::new(
        404,
        "NotFound",
        format!("No HTTP resource was found that matches the request URI '{path}'."),
    )
}

pub(super) fn kind_of(namespace: &str, types: &[&str]) -> Result<&'static Kind, ArmError> {
    let arm_type = format!("{namespace}/{}", types.join("/"));
    resources::kind(&arm_type).ok_or_else(|| {
        ArmError::new(
            400,
            "InvalidResourceType",
            format!(
                "The resource type '{}' could not be found in the namespace '{namespace}'.",
                types.join("/")
            ),
        )
    })
}

pub(super) fn parse(path: &str) -> Result<(String, Target), ArmError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segs.len() < 2 || !eq(segs[0], "subscriptions") {
        return Err(no_route(path));
    }
    let sub = segs[1].to_ascii_lowercase();
    let lower = |s: &[&str]| format!("/{}", s.join("/")).to_ascii_lowercase();
    let rg = (segs.len() > 3 && eq(segs[2], "resourcegroups")).then(|| segs[3].to_string());

    if let Some(i) = (2..segs.len()).rev().find(|&i| {
        eq(segs[i], "providers")
            && segs
                .get(i + 1)
                .is_some_and(|s| eq(s, "Microsoft.Authorization"))
            && segs.get(i + 2).is_some_and(|s| eq(s, "roleAssignments"))
    }) {
        let kind = resources::kind("Microsoft.Authorization/roleAssignments").expect("registered");
        let scope_key = lower(&segs[..i]);
        return match segs.len() - i {
            3 => Ok((
                sub,
                Target::List(List {
                    kind,
                    scope_key,
                    level: ListLevel::Scope,
                    parent_name: String::new(),
                }),
            )),
            4 => Ok((
                sub,
                Target::Item(Item {
                    kind,
                    key: lower(&segs),
                    scope_key,
                    nested: true,
                    name: segs[i + 3].to_string(),
                    parent_name: String::new(),
                    rg,
                    display: format!("Microsoft.Authorization/roleAssignments/{}", segs[i + 3]),
                }),
            )),
            _ => Err(no_route(path)),
        };
    }

    let rest = &segs[2..];
    let target = match rest {
        [] => Target::Subscription,
        [l] if eq(l, "locations") => Target::Locations,
        [r] if eq(r, "resourcegroups") => Target::ResourceGroups,
        [o, op] if eq(o, "operationresults") => Target::Operation {
            namespace: "Microsoft.Resources".into(),
            op: op.to_string(),
            monitor: true,
        },
        [r, name] if eq(r, "resourcegroups") => Target::ResourceGroup {
            name: name.to_string(),
        },
        [r, name, x] if eq(r, "resourcegroups") && eq(x, "resources") => Target::RgResources {
            rg: name.to_string(),
        },
        [p, ns, l, _loc, k, op] if eq(p, "providers") && eq(l, "locations") => Target::Operation {
            namespace: ns.to_string(),
            op: op.to_string(),
            monitor: eq(k, "operationResults"),
        },
        [r, _rg, p, ns, g, name, action]
            if eq(r, "resourcegroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(g, "galleries")
                && eq(action, "share") =>
        {
            Target::Share(Item {
                kind: kind_of(ns, &["galleries"])?,
                key: lower(&segs[..8]),
                scope_key: lower(&segs[..4]),
                nested: false,
                name: name.to_string(),
                rg,
                display: format!("Microsoft.Compute/galleries/{name}"),
                parent_name: String::new(),
            })
        }
        [r, _rg, p, ns, v, name, action]
            if eq(r, "resourcegroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(v, "virtualMachineScaleSets")
                && (eq(action, "instanceView") || eq(action, "manualupgrade")) =>
        {
            Target::ScaleSetAction(
                Item {
                    kind: kind_of(ns, &["virtualMachineScaleSets"])?,
                    key: lower(&segs[..8]),
                    scope_key: lower(&segs[..4]),
                    nested: false,
                    name: name.to_string(),
                    rg,
                    display: format!("Microsoft.Compute/virtualMachineScaleSets/{name}"),
                    parent_name: String::new(),
                },
                action.to_ascii_lowercase(),
            )
        }
        [r, _rg, p, ns, g, _name, sd, t, a, image, v]
            if eq(r, "resourcegroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Compute")
                && eq(g, "galleries")
                && eq(sd, "softDeletedArtifactTypes")
                && eq(a, "artifacts")
                && eq(v, "versions") =>
        {
            Target::SoftDeleted {
                gallery_key: lower(&segs[..8]),
                artifact_type: t.to_string(),
                image: image.to_string(),
            }
        }
        [p, ns, t] if eq(p, "providers") => Target::List(List {
            kind: kind_of(ns, &[t])?,
            scope_key: lower(&segs[..2]),
            level: ListLevel::Subscription,
            parent_name: String::new(),
        }),
        [r, _rg, p, ns, typed @ ..]
            if eq(r, "resourcegroups") && eq(p, "providers") && !typed.is_empty() =>
        {
            let types: Vec<&str> = typed.iter().step_by(2).copied().collect();
            let kind = kind_of(ns, &types)?;
            let rg_key = lower(&segs[..4]);
            let nested = types.len() > 1;
            if typed.len() % 2 == 0 {
                let scope_key = if nested {
                    lower(&segs[..segs.len() - 2])
                } else {
                    rg_key
                };
                Target::Item(Item {
                    kind,
                    key: lower(&segs),
                    scope_key,
                    nested,
                    name: segs[segs.len() - 1].to_string(),
                    parent_name: if nested {
                        segs[segs.len() - 3].to_string()
                    } else {
                        String::new()
                    },
                    rg,
                    display: format!("{ns}/{}", typed.join("/")),
                })
            } else {
                let (scope_key, level) = if nested {
                    (lower(&segs[..segs.len() - 1]), ListLevel::Parent)
                } else {
                    (rg_key, ListLevel::ResourceGroup)
                };
                Target::List(List {
                    kind,
                    scope_key,
                    level,
                    parent_name: if nested {
                        segs[segs.len() - 2].to_string()
                    } else {
                        String::new()
                    },
                })
            }
        }
        _ => return Err(no_route(path)),
    };
    Ok((sub, target))
}

/// Query parameters, names lower-cased.
pub(super) fn query_map(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn query<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| eq(k, name)).map(|(_, v)| v.as_str())
}
