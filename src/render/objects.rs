//! Turns parsed documents into Kubernetes objects: checks the identity fields and flattens `kind: List`.

use serde_json::Value;

use super::RenderedObject;
use super::error::{Location, RenderError};
use super::yaml::Document;

/// Appends the object(s) of one document to `out`, refusing documents that are not objects.
///
/// A top-level `kind: List` with an `items` sequence (what `kubectl get -o yaml` writes) is
/// replaced by its items, each checked like a document of its own.
pub fn collect(file: &str, document: Document, out: &mut Vec<RenderedObject>) -> Result<(), RenderError> {
    let Document { number, line, value, item_lines } = document;
    let at = |line| Location { file: file.to_owned(), document: number, line };
    let is_list =
        value.get("kind").and_then(Value::as_str) == Some("List") && value.get("items").is_some_and(Value::is_array);
    if !is_list {
        check(&value).map_err(|message| RenderError::Invalid { at: at(line), message })?;
        out.push(RenderedObject { file: file.to_owned(), document: number, value });
        return Ok(());
    }
    let items = match value {
        Value::Object(mut map) => map.remove("items"),
        _ => None,
    };
    for (index, item) in items
        .into_iter()
        .flat_map(|items| match items {
            Value::Array(items) => items,
            _ => Vec::new(),
        })
        .enumerate()
    {
        let item_line = item_lines.get(index).copied().unwrap_or(line);
        check(&item).map_err(|message| RenderError::Invalid {
            at: at(item_line),
            message: format!("list item {}: {message}", index + 1),
        })?;
        out.push(RenderedObject { file: file.to_owned(), document: number, value: item });
    }
    Ok(())
}

/// A Kubernetes object needs `apiVersion`, `kind` and `metadata.name` (non-empty strings);
/// GitOps applies by name, so `generateName` alone is not enough.
fn check(value: &Value) -> Result<(), String> {
    if !value.is_object() {
        return Err(format!("document is not a mapping but {}", describe(value)));
    }
    for (pointer, field) in [("/apiVersion", "apiVersion"), ("/kind", "kind"), ("/metadata/name", "metadata.name")] {
        match value.pointer(pointer) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) => return Err(format!("{field} is empty")),
            Some(other) => {
                return Err(format!("{field} must be a string, not {}", describe(other)));
            }
            None => return Err(format!("{field} is missing")),
        }
    }
    Ok(())
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}
