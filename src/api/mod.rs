//! The custom resources (`compute.gallery.dev/v1alpha1`): types only, no I/O.

pub mod common;
pub mod gallery;
pub mod image_definition;
pub mod image_version;
pub mod machine;
pub mod references;
mod rules;
pub mod virtual_machine;
pub mod virtual_machine_scale_set;

pub use common::{
    AzureResourceOptions, CommonStatus, DeletionPolicy, LocalRef, SecretKeyRef, SecretRef,
};
pub use gallery::{Gallery, GallerySpec, GalleryStatus};
pub use image_definition::{ImageDefinition, ImageDefinitionSpec, ImageDefinitionStatus};
pub use image_version::{ImageVersion, ImageVersionSpec, ImageVersionStatus};
pub use references::{Reference, Refers};
pub use virtual_machine::{VirtualMachine, VirtualMachineSpec, VirtualMachineStatus};
pub use virtual_machine_scale_set::{
    VirtualMachineScaleSet, VirtualMachineScaleSetSpec, VirtualMachineScaleSetStatus,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

/// The longest `metadata.name` Kubernetes accepts (a DNS subdomain).
const MAX_OBJECT_NAME: i64 = 253;

/// The one list of kinds, parents first: `kinds!(callback)` expands to `callback!(T, …)` with
/// each kind's type, and `kinds!(callback, (args))` to `callback!((args); T, …)` for callbacks
/// that need tokens from their caller (a nested macro cannot repeat over its own list).
/// `crds()`, the controllers and their caches, the CRD check at start, the dependents a
/// deletion waits for, the sandbox and the tests all take their kinds from here, so a new kind
/// is one api file, one reconcile file and one line below.
#[macro_export]
macro_rules! kinds {
    (@each $callback:ident [$($before:tt)*]) => {
        $callback!(
            $($before)*
            $crate::api::Gallery,
            $crate::api::ImageDefinition,
            $crate::api::ImageVersion,
            $crate::api::VirtualMachine,
            $crate::api::VirtualMachineScaleSet
        )
    };
    ($callback:ident) => {
        $crate::kinds!(@each $callback [])
    };
    ($callback:ident, $args:tt) => {
        $crate::kinds!(@each $callback [$args;])
    };
}

/// The names of our kinds, parents first (from [`kinds!`]).
pub fn kind_names() -> Vec<String> {
    macro_rules! names {
        ($($kind:ty),*) => {
            vec![$(<$kind as kube::Resource>::kind(&()).into_owned()),*]
        };
    }
    crate::kinds!(names)
}

/// Every CRD this operator serves, in dependency order (parents first).
pub fn crds() -> Vec<CustomResourceDefinition> {
    macro_rules! crds_of {
        ($($kind:ty),*) => {
            vec![$(<$kind>::crd()),*]
        };
    }
    let mut crds = crate::kinds!(crds_of);
    for crd in &mut crds {
        bound_object_name(crd);
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                tidy(schema);
            }
        }
    }
    crds
}

/// What `kubectl explain` shows of the derived schema, cleaned up: descriptions are doc
/// comments, hard-wrapped at 100 columns, so their line breaks within a paragraph are joined
/// (explain wraps text itself); an `Option` of an enum is `nullable` already, so its `null`
/// enum member (explain's `<no value>`) is dropped.
fn tidy(schema: &mut JSONSchemaProps) {
    if let Some(text) = &mut schema.description {
        *text = unwrap_paragraphs(text);
    }
    if let Some(values) = &mut schema.enum_ {
        values.retain(|v| !v.0.is_null());
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        tidy(child);
    }
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of] {
        list.iter_mut().flatten().for_each(tidy);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => tidy(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(tidy),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = &mut schema.additional_properties {
        tidy(extra);
    }
    if let Some(not) = &mut schema.not {
        tidy(not);
    }
}

/// Joins the lines of each paragraph with spaces; blank lines still separate paragraphs, and
/// a line that starts a list item (`- `, `* `, `1. `) keeps its own line.
fn unwrap_paragraphs(text: &str) -> String {
    let list_item = |line: &str| {
        let l = line.trim_start();
        l.starts_with("- ")
            || l.starts_with("* ")
            || l.split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    text.split("\n\n")
        .map(|paragraph| {
            let mut out = String::new();
            for line in paragraph.lines() {
                if !out.is_empty() {
                    out.push(if list_item(line) { '\n' } else { ' ' });
                }
                out.push_str(line.trim());
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Declares `metadata.name` (and `generateName`) with their real bound. The API server already
/// enforces it, but declared bounds let it estimate our name rules' CEL cost from 253 characters
/// instead of the whole request size, which would exceed the cost budget. Structural schemas
/// allow exactly these two metadata properties.
fn bound_object_name(crd: &mut CustomResourceDefinition) {
    let name = JSONSchemaProps {
        type_: Some("string".into()),
        max_length: Some(MAX_OBJECT_NAME),
        ..Default::default()
    };
    for version in &mut crd.spec.versions {
        let root = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .expect("derived CRDs have a schema");
        let metadata = root
            .properties
            .get_or_insert_default()
            .entry("metadata".into())
            .or_insert_with(|| JSONSchemaProps {
                type_: Some("object".into()),
                ..Default::default()
            });
        let props = metadata.properties.get_or_insert_default();
        props.insert("name".into(), name.clone());
        props.insert("generateName".into(), name.clone());
    }
}

/// Each CRD as a YAML document starting with `---`, named as in `crds/`
/// (`{group}_{plural}.yaml`, which also sorts parents first).
pub fn crd_documents() -> Vec<(String, String)> {
    crds()
        .iter()
        .map(|crd| {
            let file = format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural);
            let yaml = serde_yaml::to_string(crd).expect("CRDs serialize to YAML");
            (file, format!("---\n{yaml}"))
        })
        .collect()
}

/// The CRDs as the multi-document YAML that `azure-gallery-operator crds` prints: the files of
/// `crds/` concatenated.
pub fn crds_yaml() -> String {
    crd_documents().into_iter().map(|(_, yaml)| yaml).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_are_unwrapped_and_kept_apart() {
        assert_eq!(
            unwrap_paragraphs(
                "A virtual machine created from a gallery\nimage, with its NIC.\n\nSecond paragraph\nhere."
            ),
            "A virtual machine created from a gallery image, with its NIC.\n\nSecond paragraph here."
        );
        assert_eq!(
            unwrap_paragraphs("Exactly one of:\n- managedImageId\n- snapshots, which\n  continue"),
            "Exactly one of:\n- managedImageId\n- snapshots, which continue"
        );
    }

    /// Every description reads as `kubectl explain` should show it, and no enum lists `null`.
    #[test]
    fn the_crds_have_no_hard_wrapped_descriptions_or_null_enum_members() {
        fn walk(path: &str, s: &JSONSchemaProps, out: &mut Vec<String>) {
            if let Some(d) = &s.description
                && d.split("\n\n")
                    .any(|p| p.contains('\n') && !p.contains("\n- "))
            {
                out.push(format!("{path}: description {d:?}"));
            }
            if s.enum_.iter().flatten().any(|v| v.0.is_null()) {
                out.push(format!("{path}: enum with null"));
            }
            for (k, v) in s.properties.iter().flatten() {
                walk(&format!("{path}.{k}"), v, out);
            }
            if let Some(JSONSchemaPropsOrArray::Schema(item)) = &s.items {
                walk(&format!("{path}[]"), item, out);
            }
        }
        let mut found = Vec::new();
        for crd in crds() {
            for v in &crd.spec.versions {
                let schema = v
                    .schema
                    .as_ref()
                    .unwrap()
                    .open_api_v3_schema
                    .as_ref()
                    .unwrap();
                walk(&crd.spec.names.kind, schema, &mut found);
            }
        }
        assert!(found.is_empty(), "{found:#?}");
    }
}
