//! `variablesFromPayload` evaluation.

use std::collections::BTreeMap;

use serde_json::json;
use tugboat::trigger::event::PayloadError;
use tugboat::trigger::variables::variables_from_payload;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn scalars_are_read_and_stringified() {
    let body = json!({"push_data": {"tag": "1.4.2", "pushed_at": 1417566161, "ratio": 0.5, "ok": true}});
    let got = variables_from_payload(
        &map(&[
            ("TAG", "$.push_data.tag"),
            ("AT", "$.push_data.pushed_at"),
            ("R", "$.push_data.ratio"),
            ("OK", "$['push_data']['ok']"),
        ]),
        &body,
    );
    let want = map(&[("TAG", "1.4.2"), ("AT", "1417566161"), ("R", "0.5"), ("OK", "true")]);
    assert_eq!(got.ok(), Some(want));
    let harbor = json!({"event_data": {"resources": [{"tag": "v2"}]}});
    assert_eq!(
        variables_from_payload(&map(&[("T", "$.event_data.resources[0].tag")]), &harbor).ok(),
        Some(map(&[("T", "v2")]))
    );
}

#[test]
fn unusable_paths_and_values_name_the_variable() {
    let body = json!({"a": {"b": [1, 2]}, "n": null, "s": "x"});
    let err = |path: &str| variables_from_payload(&map(&[("V", path)]), &body).err();
    assert!(
        matches!(err("$.missing"), Some(PayloadError::NoMatch { variable, path }) if variable == "V" && path == "$.missing")
    );
    assert!(matches!(err("$.a"), Some(PayloadError::NotScalar { found: "an object", .. })));
    assert!(matches!(err("$.a.b"), Some(PayloadError::NotScalar { found: "an array", .. })));
    assert!(matches!(err("$.n"), Some(PayloadError::NotScalar { found: "null", .. })));
    assert!(matches!(err("$.a.b[*]"), Some(PayloadError::Ambiguous { count: 2, .. })));
    assert!(matches!(err("push_data.tag"), Some(PayloadError::BadPath { variable, .. }) if variable == "V"));
    assert!(matches!(err("$[?"), Some(PayloadError::BadPath { .. })));
    let long = json!({"s": "x".repeat(5000)});
    assert!(matches!(variables_from_payload(&map(&[("V", "$.s")]), &long), Err(PayloadError::TooLong { .. })));
}
