//! docs/reference.md is generated from the CRD schemas and lists every field.
//!
//! Regenerate with `make docs` (or `TUGBOAT_UPDATE_DOCS=1 cargo test --test reference`).

use std::path::PathBuf;

use serde_json::Value;

fn reference_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md")
}

#[test]
fn committed_reference_matches_the_crds() {
    let expected = tugboat::reference::markdown(&tugboat::crds::all());
    if std::env::var_os("TUGBOAT_UPDATE_DOCS").is_some() {
        std::fs::write(reference_path(), &expected).expect("write docs/reference.md");
        return;
    }
    let committed = std::fs::read_to_string(reference_path()).unwrap_or_default();
    assert!(committed == expected, "docs/reference.md is out of date: run `make docs` and commit the result");
}

/// Every property path of a schema, walked from the raw JSON (not by the generator's own walk).
fn paths(schema: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            out.push(path.clone());
            paths(child, &path, out);
        }
    }
    if let Some(items) = schema.get("items") {
        paths(items, &format!("{prefix}[]"), out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        paths(values, &format!("{prefix}.*"), out);
    }
}

#[test]
fn every_crd_field_appears_in_the_reference() {
    let reference = std::fs::read_to_string(reference_path()).expect("docs/reference.md");
    let mut missing = Vec::new();
    for (file, crd) in tugboat::crds::all() {
        let crd = serde_json::to_value(&crd).expect("CRD JSON");
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut all = Vec::new();
        paths(schema, "", &mut all);
        let section_start = reference.find(&format!("\n## {}\n", crd["spec"]["names"]["kind"].as_str().unwrap_or("?")));
        let section = section_start.map(|at| &reference[at..]).unwrap_or("");
        let section = section[1..].find("\n## ").map_or(section, |end| &section[..end + 1]);
        for path in all.into_iter().filter(|p| p.starts_with("spec") || p.starts_with("status")) {
            if !section.contains(&format!("| `{path}` |")) {
                missing.push(format!("{file}: {path}"));
            }
        }
    }
    assert!(missing.is_empty(), "fields missing from docs/reference.md: {missing:#?}");
}

#[test]
fn every_field_has_a_description() {
    let mut undocumented = Vec::new();
    for (file, crd) in tugboat::crds::all() {
        for field in tugboat::reference::fields(&crd) {
            if field.description.trim().is_empty() {
                undocumented.push(format!("{file}: {}", field.path));
            }
        }
    }
    assert!(undocumented.is_empty(), "add a doc comment to: {undocumented:#?}");
}
