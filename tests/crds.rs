//! The committed `crds/` files are exactly what the Rust types generate.
//!
//! Regenerate with `make crds` (or `TUGBOAT_UPDATE_CRDS=1 cargo test --test crds`).

use std::path::PathBuf;

#[test]
fn committed_crds_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds");
    let update = std::env::var_os("TUGBOAT_UPDATE_CRDS").is_some();
    let mut drifted = Vec::new();
    for (file, crd) in tugboat::crds::all() {
        let expected = tugboat::crds::to_yaml(&crd).expect("CRD renders as YAML");
        let path = dir.join(file);
        if update {
            // The Helm chart ships the same files (tests/chart.rs checks them).
            let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/tugboat/crds");
            for dir in [&dir, &chart] {
                std::fs::create_dir_all(dir).expect("create the CRD folder");
                std::fs::write(dir.join(file), &expected).expect("write CRD");
            }
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != expected {
            drifted.push(file);
        }
    }
    assert!(drifted.is_empty(), "crds/ differs from src/api for {drifted:?}: run `make crds` and commit the result");
}

#[test]
fn every_kind_has_short_names_printer_columns_and_a_status_subresource() {
    for (file, crd) in tugboat::crds::all() {
        assert!(crd.spec.names.short_names.as_ref().is_some_and(|s| !s.is_empty()), "{file}: short names");
        let version = &crd.spec.versions[0];
        let columns: Vec<_> = version.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
        for column in ["Ready", "Age", "Message"] {
            assert!(columns.contains(&column), "{file}: printer column {column} missing in {columns:?}");
        }
        assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), "{file}: status subresource");
        assert_eq!(crd.spec.scope, "Namespaced", "{file}: scope");
    }
}
