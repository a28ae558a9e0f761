//! `${...}` templates in outgoing webhook URLs, headers and payloads.
//!
//! The syntax is the manifests' (DESIGN §3): `${name}`, `${name:-default}` and
//! `${name:=default}` (default when unset or empty), `$${` for a literal `${`; a bare `$name`
//! stays as it is. A variable with no value and no default is an error, so a typo such as
//! `${appid}` is reported instead of sending an empty string. Errors name the field.

use std::collections::BTreeMap;

use serde_json::Value;

/// Longest template accepted, so a hostile spec cannot make parsing expensive.
pub const MAX_TEMPLATE_LEN: usize = 64 * 1024;

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Variable { name: String, default: Option<String> },
}

/// Why a template cannot be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed ${{ at byte {0}")]
    Unclosed(usize),
    #[error("{name:?} at byte {at} is not a variable name (^[_A-Za-z][_A-Za-z0-9]*$)")]
    BadName { name: String, at: usize },
    #[error("template longer than {MAX_TEMPLATE_LEN} bytes")]
    TooLong,
    #[error("${{{0}}} has no value and no default (known: {1})")]
    Unknown(String, String),
}

/// A template error and the field it is in, e.g. `spec.headers.X-Env`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {error}")]
pub struct FieldError {
    pub field: String,
    pub error: TemplateError,
}

impl Template {
    /// Parses `text`.
    ///
    /// # Errors
    /// An unclosed `${`, a bad variable name, or text over [`MAX_TEMPLATE_LEN`].
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLong);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            let after = &rest[dollar..];
            if let Some(tail) = after.strip_prefix("$${") {
                literal.push_str("${");
                rest = tail;
                offset += dollar + 3;
            } else if let Some(body) = after.strip_prefix("${") {
                let close = body.find('}').ok_or(TemplateError::Unclosed(offset + dollar))?;
                let inner = &body[..close];
                let (name, default) = match [inner.find(":-"), inner.find(":=")].into_iter().flatten().min() {
                    Some(at) => (&inner[..at], Some(inner[at + 2..].to_owned())),
                    None => (inner, None),
                };
                if !crate::render::is_valid_variable_name(name) {
                    return Err(TemplateError::BadName { name: name.to_owned(), at: offset + dollar });
                }
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Variable { name: name.to_owned(), default });
                rest = &body[close + 1..];
                offset += dollar + 2 + close + 1;
            } else {
                literal.push('$');
                rest = &after[1..];
                offset += dollar + 1;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// Fills in the variables.
    ///
    /// # Errors
    /// [`TemplateError::Unknown`] for a variable with no value (or an empty one) and no default.
    pub fn render(&self, variables: &BTreeMap<String, String>) -> Result<String, TemplateError> {
        self.render_with(variables, str::to_owned)
    }

    /// Fills in the variables, each value passed through `encode` (defaults, written by the
    /// hook's author, are kept as they are).
    fn render_with(
        &self,
        variables: &BTreeMap<String, String>,
        encode: impl Fn(&str) -> String,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Variable { name, default } => match (variables.get(name), default) {
                    (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                    (Some(value), _) => out.push_str(&encode(value)),
                    (None, Some(default)) => out.push_str(default),
                    (None, None) => {
                        let known: Vec<&str> = variables.keys().map(String::as_str).collect();
                        return Err(TemplateError::Unknown(name.clone(), known.join(", ")));
                    }
                },
            }
        }
        Ok(out)
    }
}

/// Parses and renders one string field.
///
/// # Errors
/// A [`FieldError`] naming `field`.
pub fn render_field(field: &str, text: &str, variables: &BTreeMap<String, String>) -> Result<String, FieldError> {
    Template::parse(text)
        .and_then(|t| t.render(variables))
        .map_err(|error| FieldError { field: field.to_owned(), error })
}

/// Renders a URL template: every substituted value is percent-encoded as one URL component,
/// so a value (set by a trigger call, say) can never add a path segment, a query parameter or
/// a fragment: `?TAG=../../admin` stays inside its segment as `..%2F..%2Fadmin`.
///
/// # Errors
/// A [`FieldError`] naming `field`.
pub fn render_url_field(field: &str, text: &str, variables: &BTreeMap<String, String>) -> Result<String, FieldError> {
    /// Everything but RFC 3986's unreserved characters.
    const COMPONENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    let encode = |value: &str| percent_encoding::utf8_percent_encode(value, COMPONENT).to_string();
    Template::parse(text)
        .and_then(|t| t.render_with(variables, encode))
        .map_err(|error| FieldError { field: field.to_owned(), error })
}

/// Renders every string (values, not keys) of a JSON payload template; the structure never
/// changes, and a value stays a string whatever it contains.
///
/// # Errors
/// A [`FieldError`] naming the path, e.g. `spec.payload.items[0].name`.
pub fn render_json(field: &str, value: &Value, variables: &BTreeMap<String, String>) -> Result<Value, FieldError> {
    Ok(match value {
        Value::String(text) => Value::String(render_field(field, text, variables)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| render_json(&format!("{field}[{i}]"), item, variables))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| Ok((key.clone(), render_json(&format!("{field}.{key}"), item, variables)?)))
                .collect::<Result<_, FieldError>>()?,
        ),
        other => other.clone(),
    })
}

/// Checks that every string of a payload template parses (without rendering it).
///
/// # Errors
/// The first [`FieldError`] found.
pub fn check_json(field: &str, value: &Value) -> Result<(), FieldError> {
    match value {
        Value::String(text) => {
            Template::parse(text).map(|_| ()).map_err(|error| FieldError { field: field.to_owned(), error })
        }
        Value::Array(items) => {
            items.iter().enumerate().try_for_each(|(i, item)| check_json(&format!("{field}[{i}]"), item))
        }
        Value::Object(map) => map.iter().try_for_each(|(key, item)| check_json(&format!("{field}.{key}"), item)),
        _ => Ok(()),
    }
}

/// Parses and renders arbitrary bytes as a template; for the fuzz target (never panics).
pub fn fuzz_parse_and_render(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let variables = BTreeMap::from([("app_id".to_owned(), "shop".to_owned()), ("empty".to_owned(), String::new())]);
    if let Ok(template) = Template::parse(&text) {
        let _ = template.render(&variables);
    }
    if let Ok(value) = serde_json::from_str::<Value>(&text) {
        let _ = render_json("spec.payload", &value, &variables);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_in_a_url_stay_inside_their_component_and_defaults_stay_as_written() {
        let mut variables = vars();
        variables.insert("SERVICE_TAG".into(), "../../script?admin=1#x y".into());
        let url = render_url_field(
            "spec.url",
            "https://ci.example.com/job/${app_id}/${SERVICE_TAG}?env=${env_id}&p=${none:-a/b}",
            &variables,
        )
        .expect("renders");
        assert_eq!(url, "https://ci.example.com/job/shop/..%2F..%2Fscript%3Fadmin%3D1%23x%20y?env=prod&p=a/b");
        let parsed = reqwest::Url::parse(&url).expect("a URL");
        assert_eq!(parsed.path(), "/job/shop/..%2F..%2Fscript%3Fadmin%3D1%23x%20y", "the path did not move");
        assert_eq!(parsed.query(), Some("env=prod&p=a/b"));
        assert_eq!(parsed.fragment(), None);
    }

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app_id".to_owned(), "shop".to_owned()),
            ("env_id".to_owned(), "prod".to_owned()),
            ("empty".to_owned(), String::new()),
        ])
    }

    #[test]
    fn table() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("", Ok("")),
            ("${app_id}", Ok("shop")),
            ("https://x/run?app=${app_id}&env=${env_id}", Ok("https://x/run?app=shop&env=prod")),
            ("${missing:-dflt}", Ok("dflt")),
            ("${missing:=dflt}", Ok("dflt")),
            ("${empty:-dflt}", Ok("dflt")),
            ("${empty}", Ok("")),
            ("${app_id:-dflt}", Ok("shop")),
            ("${missing:-}", Ok("")),
            ("$${app_id}", Ok("${app_id}")),
            ("$app_id", Ok("$app_id")),
            ("cost $5", Ok("cost $5")),
            ("$", Ok("$")),
            ("a${app_id}b${env_id}c", Ok("ashopbprodc")),
            ("${default:-a:-b}", Ok("a:-b")),
            ("${default:=a:-b}", Ok("a:-b")),
            ("ünïcode ${app_id} ✓", Ok("ünïcode shop ✓")),
            ("${missing}", Err("${missing} has no value and no default")),
            ("${app_id", Err("unclosed ${ at byte 0")),
            ("ab${", Err("unclosed ${ at byte 2")),
            ("${}", Err("\"\" at byte 0 is not a variable name")),
            ("x ${1abc}", Err("\"1abc\" at byte 2 is not a variable name")),
            ("${a b}", Err("\"a b\" at byte 0 is not a variable name")),
        ];
        for (input, expected) in cases {
            let got = Template::parse(input).and_then(|t| t.render(&vars())).map_err(|e| e.to_string());
            match (expected, &got) {
                (Ok(want), Ok(got)) => assert_eq!(got, want, "{input:?}"),
                (Err(want), Err(got)) => assert!(got.contains(want), "{input:?}: {got:?} lacks {want:?}"),
                _ => panic!("{input:?}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn too_long_is_refused() {
        let long = "x".repeat(MAX_TEMPLATE_LEN + 1);
        assert_eq!(Template::parse(&long), Err(TemplateError::TooLong));
    }

    #[test]
    fn json_keeps_structure_and_names_the_failing_path() {
        let payload = json!({"app": "${app_id}", "n": 3, "list": ["${env_id}", {"deep": "a: ${app_id}\nb: c"}]});
        let out = render_json("spec.payload", &payload, &vars()).expect("renders");
        assert_eq!(out, json!({"app": "shop", "n": 3, "list": ["prod", {"deep": "a: shop\nb: c"}]}));
        let bad = json!({"list": [1, {"x": "${nope}"}]});
        let error = render_json("spec.payload", &bad, &vars()).expect_err("unknown");
        assert_eq!(error.field, "spec.payload.list[1].x");
        assert!(error.to_string().starts_with("spec.payload.list[1].x: ${nope} has no value"), "{error}");
        assert!(check_json("spec.payload", &json!({"a": ["${ok}", "${bad"]})).is_err());
        assert!(check_json("spec.payload", &json!({"a": ["${ok}"]})).is_ok());
    }

    #[test]
    fn field_errors_name_the_field() {
        let error = render_field("spec.headers.X-Env", "${", &vars()).expect_err("unclosed");
        assert_eq!(error.to_string(), "spec.headers.X-Env: unclosed ${ at byte 0");
    }

    #[test]
    fn fuzz_entry_point_survives_odd_input() {
        for input in ["${", "$${${", "${a:-${b}}", "\u{0}${\u{0}}", "{\"a\":\"${x\"}", "$$$$"] {
            fuzz_parse_and_render(input.as_bytes());
        }
    }
}
