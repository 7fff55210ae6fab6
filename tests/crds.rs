//! `crds/` is generated from the Rust types and checked in; this fails when it is stale.
//! Regenerate with `UPDATE_CRDS=1 cargo test --test crds`.

use std::{fs, path::Path};

use azure_gallery_operator::api;

#[test]
fn checked_in_crds_match_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let expected = api::crd_documents();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        fs::create_dir_all(&dir).unwrap();
        for (file, yaml) in &expected {
            fs::write(dir.join(file), yaml).unwrap();
        }
    }
    let mut on_disk: Vec<String> = fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let names: Vec<&String> = expected.iter().map(|(file, _)| file).collect();
    assert_eq!(
        on_disk.iter().collect::<Vec<_>>(),
        names,
        "crds/ holds exactly one file per CRD"
    );
    for (file, yaml) in &expected {
        let checked_in = fs::read_to_string(dir.join(file)).unwrap();
        assert!(
            &checked_in == yaml,
            "crds/{file} is stale: regenerate with `UPDATE_CRDS=1 cargo test --test crds`"
        );
    }
}

#[test]
fn the_crds_command_prints_the_files_of_crds_in_order() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_azure-gallery-operator"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let concatenated: String = files
        .iter()
        .map(|f| fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), concatenated);
}

#[test]
fn every_crd_has_status_printer_columns_short_name_and_category() {
    for crd in api::crds() {
        let names = &crd.spec.names;
        assert_eq!(crd.spec.group, "compute.gallery.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            names.categories.as_deref(),
            Some(&["azure-gallery".to_string()][..]),
            "{}",
            names.kind
        );
        assert_eq!(
            names.short_names.as_ref().map(|s| s.len()),
            Some(1),
            "{}",
            names.kind
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{} has a status subresource",
            names.kind
        );
        let columns: Vec<&str> = version
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(&columns[..2], ["Ready", "Reason"], "{}", names.kind);
        assert_eq!(columns.last(), Some(&"Age"), "{}", names.kind);
    }
}

#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    for (kind, schema) in api::crds().into_iter().map(|c| {
        let s = c.spec.versions[0]
            .schema
            .clone()
            .unwrap()
            .open_api_v3_schema
            .unwrap();
        (c.spec.names.kind, serde_json::to_value(s).unwrap())
    }) {
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{kind}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"]),
            "{kind}"
        );
    }
}
