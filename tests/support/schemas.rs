//! JSON schemas for kubeconform, made from the test API server's OpenAPI and tugboat's CRDs.
//!
//! kubeconform normally downloads its schemas; these machines have no internet, and the API
//! server we test against is the better source anyway. The conversion is what
//! `openapi2jsonschema` does: `$ref`s inlined (standalone), objects closed with
//! `additionalProperties: false` (strict), int-or-string as a `oneOf`.

use std::path::Path;

use serde_json::{Map, Value, json};

/// Writes `<dir>/<group>/<kind>_<version>.json` for every kind the API server serves and for
/// tugboat's CRDs; returns the `-schema-location` template that finds them.
pub async fn write_all(client: &kube::Client, dir: &Path) -> String {
    let request = http::Request::get("/openapi/v2").body(Vec::new()).expect("request");
    let text = client.request_text(request).await.expect("GET /openapi/v2");
    let openapi: Value = serde_json::from_str(&text).expect("OpenAPI v2 JSON");
    let definitions = openapi["definitions"].as_object().expect("definitions").clone();
    for (name, definition) in &definitions {
        let Some(gvks) = definition.get("x-kubernetes-group-version-kind").and_then(Value::as_array) else { continue };
        let mut stack = vec![name.clone()];
        let schema = strict(inline(definition, &definitions, &mut stack));
        for gvk in gvks {
            let group = gvk["group"].as_str().unwrap_or_default();
            let version = gvk["version"].as_str().unwrap_or_default();
            let kind = gvk["kind"].as_str().unwrap_or_default();
            write(dir, group, kind, version, &schema);
        }
    }
    for (_, crd) in tugboat::crds::all() {
        for version in &crd.spec.versions {
            let Some(schema) = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()) else { continue };
            let mut schema = serde_json::to_value(schema).expect("CRD schema");
            let properties = schema["properties"].as_object_mut().expect("CRD properties");
            properties.entry("apiVersion").or_insert(json!({"type": "string"}));
            properties.entry("kind").or_insert(json!({"type": "string"}));
            properties.entry("metadata").or_insert(json!({"type": "object"}));
            write(dir, &crd.spec.group, &crd.spec.names.kind, &version.name, &strict(schema));
        }
    }
    format!("{}/{{{{.Group}}}}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json", dir.display())
}

fn write(dir: &Path, group: &str, kind: &str, version: &str, schema: &Value) {
    // kubeconform's `.Group` of a core kind (apiVersion `v1`) is the version itself.
    let folder = dir.join(if group.is_empty() { version } else { group });
    std::fs::create_dir_all(&folder).expect("schema folder");
    let path = folder.join(format!("{}_{}.json", kind.to_lowercase(), version));
    std::fs::write(path, serde_json::to_vec(schema).expect("schema JSON")).expect("write schema");
}

/// Replaces `$ref`s by their definitions; a recursive reference becomes "anything".
fn inline(value: &Value, definitions: &Map<String, Value>, stack: &mut Vec<String>) -> Value {
    match value {
        Value::Object(object) => {
            if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
                let name = reference.trim_start_matches("#/definitions/").to_owned();
                if stack.contains(&name) {
                    return json!({});
                }
                let Some(target) = definitions.get(&name) else { return json!({}) };
                stack.push(name);
                let inlined = inline(target, definitions, stack);
                stack.pop();
                return inlined;
            }
            if object.get("format").and_then(Value::as_str) == Some("int-or-string") {
                return json!({"oneOf": [{"type": "string"}, {"type": "integer"}]});
            }
            Value::Object(object.iter().map(|(k, v)| (k.clone(), inline(v, definitions, stack))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| inline(v, definitions, stack)).collect()),
        other => other.clone(),
    }
}

/// Closes every object schema that lists its properties, as kubeconform's `-strict` expects.
fn strict(mut value: Value) -> Value {
    if let Value::Object(object) = &mut value {
        let open = object.contains_key("additionalProperties")
            || object.get("x-kubernetes-preserve-unknown-fields").is_some_and(|v| v == &json!(true));
        if object.contains_key("properties") && !open {
            object.insert("additionalProperties".into(), json!(false));
        }
        if object.get("x-kubernetes-int-or-string").is_some_and(|v| v == &json!(true)) {
            object.remove("type");
            object.insert("oneOf".into(), json!([{"type": "string"}, {"type": "integer"}]));
        }
        for child in object.values_mut() {
            *child = strict(std::mem::take(child));
        }
    } else if let Value::Array(items) = &mut value {
        for item in items {
            *item = strict(std::mem::take(item));
        }
    }
    value
}
