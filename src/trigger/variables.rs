//! `variablesFromPayload`: variables read from a verified payload with JSONPath (RFC 9535),
//! e.g. `SERVICE_TAG: $.push_data.tag` for Docker Hub.

use std::collections::BTreeMap;

use serde_json::Value;
use serde_json_path::JsonPath;

use super::event::PayloadError;
use super::query::MAX_VALUE_LEN;

/// Evaluates each `name -> JSONPath` against `body`.
///
/// A path must match exactly one value, and it must be a string (used as is), a number or a
/// boolean (written as JSON writes them): a missing, ambiguous or structured value is an
/// error naming the variable, because deploying with a guessed value is worse than a 400.
pub fn variables_from_payload(
    map: &BTreeMap<String, String>,
    body: &Value,
) -> Result<BTreeMap<String, String>, PayloadError> {
    let mut out = BTreeMap::new();
    for (variable, path) in map {
        let named = |variable: &str| (variable.to_owned(), path.clone());
        let compiled = JsonPath::parse(path).map_err(|err| {
            let (variable, path) = named(variable);
            PayloadError::BadPath { variable, path, reason: err.to_string() }
        })?;
        let nodes = compiled.query(body).all();
        let value = match nodes.as_slice() {
            [] => {
                let (variable, path) = named(variable);
                return Err(PayloadError::NoMatch { variable, path });
            }
            [one] => *one,
            many => {
                let (variable, path) = named(variable);
                return Err(PayloadError::Ambiguous { variable, path, count: many.len() });
            }
        };
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            other => {
                let found = match other {
                    Value::Null => "null",
                    Value::Array(_) => "an array",
                    _ => "an object",
                };
                let (variable, path) = named(variable);
                return Err(PayloadError::NotScalar { variable, path, found });
            }
        };
        if text.len() > MAX_VALUE_LEN {
            return Err(PayloadError::TooLong { variable: variable.clone(), max: MAX_VALUE_LEN });
        }
        out.insert(variable.clone(), text);
    }
    Ok(out)
}
