//! The custom resources (`compute.gallery.dev/v1alpha1`): types only, no I/O.

pub mod common;
pub mod gallery;
pub mod image_definition;
pub mod image_version;
mod rules;
pub mod virtual_machine;

pub use common::{
    AzureResourceOptions, CommonStatus, DeletionPolicy, LocalRef, SecretKeyRef, SecretRef,
};
pub use gallery::{Gallery, GallerySpec, GalleryStatus};
pub use image_definition::{ImageDefinition, ImageDefinitionSpec, ImageDefinitionStatus};
pub use image_version::{ImageVersion, ImageVersionSpec, ImageVersionStatus};
pub use virtual_machine::{VirtualMachine, VirtualMachineSpec, VirtualMachineStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;

/// The longest `metadata.name` Kubernetes accepts (a DNS subdomain).
const MAX_OBJECT_NAME: i64 = 253;

/// Every CRD this operator serves, in dependency order (parents first).
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        Gallery::crd(),
        ImageDefinition::crd(),
        ImageVersion::crd(),
        VirtualMachine::crd(),
    ];
    crds.iter_mut().for_each(bound_object_name);
    crds
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
