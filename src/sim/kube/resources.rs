//! The resource types the emulator serves: built-in kinds and those defined by CRDs.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::validation::CrdSchema;

/// One served group/version/resource and what discovery, tables and validation need of it.
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    /// Custom resources and CRDs count `metadata.generation`; most built-in kinds do not.
    pub has_generation: bool,
    /// Present for custom resources: schema, CEL rules, printer columns.
    pub crd: Option<CrdSchema>,
    /// Subresources other than status that discovery lists (`namespaces/finalize`).
    pub extra_subresources: Vec<&'static str>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (`secrets` for the core group), as the API server names resources in errors.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage key: one store per group/resource, whatever the version. `events.k8s.io`
    /// Events are core Events in another shape, stored once as kube-apiserver does.
    pub fn storage_key(&self) -> StorageKey {
        StorageKey {
            group: if self.is_events_v1() {
                String::new()
            } else {
                self.group.clone()
            },
            plural: self.plural.clone(),
        }
    }

    pub fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io" && self.plural == "events"
    }

    pub fn is_core_event(&self) -> bool {
        self.group.is_empty() && self.plural == "events"
    }

    /// A stored object as this resource type shows it: Events have two shapes, and fields a
    /// typed Go struct always serializes (`firstTimestamp: null`, `source: {}`).
    pub fn view(&self, obj: &Arc<Value>) -> Arc<Value> {
        let (mut shown, always) = if self.is_events_v1() {
            let shown = if obj["apiVersion"] == "v1" {
                convert_event(
                    obj,
                    EVENT_FIELDS.iter().map(|(c, e)| (*c, *e)),
                    "events.k8s.io/v1",
                )
            } else {
                (**obj).clone()
            };
            (
                shown,
                [
                    "deprecatedFirstTimestamp",
                    "deprecatedLastTimestamp",
                    "deprecatedSource",
                ],
            )
        } else if self.is_core_event() {
            (
                (**obj).clone(),
                ["firstTimestamp", "lastTimestamp", "source"],
            )
        } else {
            return obj.clone();
        };
        if let Some(m) = shown.as_object_mut() {
            m.entry(always[0]).or_insert(Value::Null);
            m.entry(always[1]).or_insert(Value::Null);
            m.entry(always[2])
                .or_insert_with(|| Value::Object(Default::default()));
        }
        Arc::new(shown)
    }

    /// An object of this type in its stored shape: Events in their core v1 shape; Secrets
    /// as [`Self::decode_defaults`] leaves them.
    pub fn to_storage(&self, mut obj: Value) -> Value {
        if self.is_events_v1() && obj["apiVersion"] == "events.k8s.io/v1" {
            return convert_event(&obj, EVENT_FIELDS.iter().map(|(c, e)| (*e, *c)), "v1");
        }
        self.decode_defaults(&mut obj);
        obj
    }

    /// What decoding a written object does before anything else sees it: a Secret's
    /// write-only `stringData` merged into `data` (base64), and its `type` defaulted to `Opaque`.
    pub fn decode_defaults(&self, obj: &mut Value) {
        if !(self.group.is_empty() && self.plural == "secrets") {
            return;
        }
        if let Some(Value::Object(strings)) =
            obj.as_object_mut().and_then(|m| m.remove("stringData"))
        {
            use base64::Engine as _;
            if !obj["data"].is_object() {
                obj["data"] = Value::Object(Default::default());
            }
            for (k, v) in strings {
                let text = v.as_str().unwrap_or_default();
                obj["data"][k] =
                    Value::String(base64::engine::general_purpose::STANDARD.encode(text));
            }
        }
        if obj["type"].as_str().unwrap_or_default().is_empty() {
            obj["type"] = Value::String("Opaque".into());
        }
    }

    pub fn is_crd_definition(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.plural == "customresourcedefinitions"
    }

    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }
}

/// Core v1 Event fields and their events.k8s.io/v1 names (k8s.io/kubernetes
/// pkg/apis/events/v1/conversion.go); the other fields have the same name in both.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn convert_event<'a>(
    obj: &Value,
    renames: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    api_version: &str,
) -> Value {
    let Some(map) = obj.as_object() else {
        return obj.clone();
    };
    let out = map
        .iter()
        .map(|(k, v)| {
            let key = renames
                .clone()
                .find(|(from, _)| from == k)
                .map_or(k.as_str(), |(_, to)| to);
            (key.to_string(), v.clone())
        })
        .collect::<serde_json::Map<_, _>>();
    let mut out = Value::Object(out);
    out["apiVersion"] = Value::String(api_version.into());
    out
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey {
    pub group: String,
    pub plural: String,
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short_names: &[&str],
    status: bool,
    has_generation: bool,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        status_subresource: status,
        has_generation,
        crd: None,
        extra_subresources: Vec::new(),
    }
}

/// The built-in kinds the operator, kubectl, Helm and the lease manager touch.
pub fn builtins() -> Vec<ResourceType> {
    let mut namespaces = builtin(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        true,
        false,
    );
    namespaces.extra_subresources.push("finalize");
    let mut crds = builtin(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
        true,
    );
    crds.categories.push("api-extensions".into());
    vec![
        namespaces,
        builtin("", "v1", "Secret", "secrets", true, &[], false, false),
        builtin(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            false,
            false,
        ),
        builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            false,
            false,
        ),
        builtin("", "v1", "Event", "events", true, &["ev"], false, false),
        builtin(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            false,
            false,
        ),
        crds,
    ]
}

/// The schema of a built-in kind as kube-apiserver publishes it (k8s-openapi's, generated from
/// the same OpenAPI), with its `$ref`s into `$defs`: its fields, and their descriptions.
pub fn builtin_schema(group: &str, plural: &str) -> Option<&'static Value> {
    static SCHEMAS: OnceLock<Vec<(&str, &str, Value)>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        use k8s_openapi::{
            api::{coordination::v1 as coordination, core::v1 as core, events::v1 as events},
            apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions,
        };
        vec![
            ("", "secrets", schema::<core::Secret>()),
            ("", "configmaps", schema::<core::ConfigMap>()),
            ("", "namespaces", schema::<core::Namespace>()),
            ("", "serviceaccounts", schema::<core::ServiceAccount>()),
            ("", "events", schema::<core::Event>()),
            ("events.k8s.io", "events", schema::<events::Event>()),
            (
                "coordination.k8s.io",
                "leases",
                schema::<coordination::Lease>(),
            ),
            (
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                schema::<apiextensions::CustomResourceDefinition>(),
            ),
        ]
    });
    schemas
        .iter()
        .find(|(g, p, _)| *g == group && *p == plural)
        .map(|(.., s)| s)
}

/// `ObjectMeta`'s schema: what `metadata` of any kind may hold.
pub fn object_meta_schema() -> &'static Value {
    static META: OnceLock<Value> = OnceLock::new();
    META.get_or_init(schema::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>)
}

fn schema<T: schemars::JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).expect("schemas serialize")
}

/// The description of the field at `path` in a k8s-openapi schema (following `$ref`s).
pub fn field_doc(schema: &Value, path: &[&str]) -> String {
    let defs = &schema["$defs"];
    let mut node = schema;
    for field in path {
        while let Some(target) = node["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|name| defs.get(name))
        {
            node = target;
        }
        node = &node["properties"][field];
    }
    node["description"].as_str().unwrap_or_default().to_string()
}

/// The resource types a CRD object defines (one per served version), or an error message.
pub fn from_crd(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().ok_or("spec.group missing")?;
    let names = &spec["names"];
    let kind = names["kind"].as_str().ok_or("spec.names.kind missing")?;
    let plural = names["plural"]
        .as_str()
        .ok_or("spec.names.plural missing")?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for version in spec["versions"].as_array().into_iter().flatten() {
        if version["served"] != Value::Bool(true) {
            continue;
        }
        let name = version["name"].as_str().ok_or("version name missing")?;
        let schema = version["schema"]["openAPIV3Schema"].clone();
        let columns = version["additionalPrinterColumns"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        out.push(ResourceType {
            group: group.into(),
            version: name.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: names["singular"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_lowercase()),
            namespaced: spec["scope"] != "Cluster",
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            status_subresource: version["subresources"]["status"].is_object(),
            has_generation: true,
            crd: Some(CrdSchema::new(group, name, kind, schema, columns)?),
            extra_subresources: Vec::new(),
        });
    }
    Ok(out)
}

/// Registry of served types, looked up by group/version/plural (or short name for discovery).
#[derive(Default)]
pub struct Registry {
    pub types: Vec<Arc<ResourceType>>,
}

impl Registry {
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// Any served version of a group/resource (for garbage collection and namespace cleanup).
    pub fn any_version(&self, key: &StorageKey) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == key.group && t.plural == key.plural)
            .cloned()
    }

    /// Replaces the types of one CRD's group/resource (CRD create, update or delete).
    pub fn replace(&mut self, key: &StorageKey, types: Vec<ResourceType>) {
        self.types
            .retain(|t| !(t.group == key.group && t.plural == key.plural));
        self.types.extend(types.into_iter().map(Arc::new));
    }

    /// Groups in first-registration order, each with its versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            if t.group.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }
}
