//! Every manifest in examples/ is a valid object of our CRDs: it passes the schema and CEL
//! rules, and deserializes into our types without a field being dropped (so a misspelt field
//! in an example cannot go unnoticed).

mod schema;

use std::{fs, path::Path};

use serde_json::Value;

fn examples() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
        .flat_map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            schema::yaml_documents(&fs::read_to_string(&f).unwrap())
                .into_iter()
                .map(move |doc| (name.clone(), doc))
        })
        .collect()
}

/// Re-serializes `doc` through our type for its kind.
fn round_trip(doc: &Value) -> Value {
    fn via<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> Value {
        serde_json::to_value(
            serde_json::from_value::<T>(doc.clone()).expect("deserializes into our type"),
        )
        .unwrap()
    }
    macro_rules! each {
        (($doc:expr); $($kind:ty),*) => {{
            let kind = $doc["kind"].as_str().unwrap();
            $(
                if kind == <$kind as kube::Resource>::kind(&()) {
                    return via::<$kind>($doc);
                }
            )*
            panic!("examples hold only our kinds, found {kind}")
        }};
    }
    azure_gallery_operator::kinds!(each, (doc))
}

/// Every field of `part` is present, with the same value, in `whole`.
fn missing_fields(part: &Value, whole: &Value, path: &str) -> Vec<String> {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p
            .iter()
            .flat_map(|(k, v)| match w.get(k) {
                Some(wv) => missing_fields(v, wv, &format!("{path}.{k}")),
                None => vec![format!("{path}.{k}")],
            })
            .collect(),
        (Value::Array(p), Value::Array(w)) if p.len() == w.len() => p
            .iter()
            .zip(w)
            .enumerate()
            .flat_map(|(i, (pv, wv))| missing_fields(pv, wv, &format!("{path}[{i}]")))
            .collect(),
        _ if part == whole => vec![],
        _ => vec![path.to_string()],
    }
}

#[test]
fn there_are_examples_and_the_quickstart_has_all_four_kinds() {
    let kinds: Vec<String> = examples()
        .into_iter()
        .filter(|(file, _)| file == "quickstart.yaml")
        .map(|(_, doc)| doc["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "Gallery",
            "ImageDefinition",
            "ImageVersion",
            "VirtualMachine"
        ]
    );
}

#[test]
fn every_example_passes_the_schema_and_cel_rules() {
    for (file, doc) in examples() {
        let errors = schema::create_errors(&doc);
        assert!(
            errors.is_empty(),
            "{file}: {} {}: {errors:#?}",
            doc["kind"],
            doc["metadata"]["name"]
        );
    }
}

#[test]
fn every_example_deserializes_into_our_types_without_losing_a_field() {
    for (file, doc) in examples() {
        let missing = missing_fields(&doc, &round_trip(&doc), "");
        assert!(
            missing.is_empty(),
            "{file}: {} {}: fields unknown to our types: {missing:?}",
            doc["kind"],
            doc["metadata"]["name"]
        );
    }
}

#[test]
fn a_misspelt_field_is_noticed() {
    let mut doc = examples().into_iter().next().unwrap().1;
    doc["spec"]["resourceGroupp"] = Value::from("typo");
    assert_eq!(
        missing_fields(&doc, &round_trip(&doc), ""),
        [".spec.resourceGroupp"]
    );
}
