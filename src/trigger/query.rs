//! The trigger URL's query (DESIGN §2): `rollout-restart`, `tag`, `override-window`, and
//! every other `NAME=value` as a variable; plus HTML form bodies.
//!
//! Decoding is strict (a bad `%` escape or invalid UTF-8 is a 400 naming the parameter,
//! unlike WHATWG's lossy decoding) so a mangled value never silently reaches a manifest.

use std::collections::BTreeMap;

/// Most variables one call may set.
pub const MAX_VARIABLES: usize = 64;
/// Longest decoded value, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;
/// Longest parameter name (matches `allowedVariables` items).
pub const MAX_NAME_LEN: usize = 128;
/// Most fields an HTML form body may have.
pub const MAX_FORM_FIELDS: usize = 64;

/// What a call asks for besides redeploying.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TriggerParams {
    /// `rollout-restart`: which workloads to restart after applying.
    pub rollout_restart: Option<RolloutRestart>,
    /// `tag`: image tag for the application's workload containers.
    pub tag: Option<String>,
    /// `override-window`: act outside the change window (only if the Webhook allows it).
    pub override_window: bool,
    /// Every other parameter.
    pub variables: BTreeMap<String, String>,
}

/// `rollout-restart=all` or a list of workloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutRestart {
    All,
    /// Deduplicated, in the order given.
    Workloads(Vec<Workload>),
}

pub use crate::api::WorkloadKind;
/// One `kind/name` of `rollout-restart`.
pub use crate::api::WorkloadRef as Workload;

/// A bad query or form (400); each names the parameter or entry at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("parameter {name:?} is not correctly percent-encoded UTF-8")]
    BadEncoding { name: String },
    #[error("parameter {0:?} is given more than once")]
    Repeated(String),
    #[error("parameter {0:?} is not a variable name (^[_A-Za-z][_A-Za-z0-9]*$, at most 128 characters)")]
    BadName(String),
    #[error("rollout-restart entry {0:?} is not all, or deployment|daemonset|statefulset/<name>")]
    BadRestart(String),
    #[error("tag {0:?} is not a valid image tag")]
    BadTag(String),
    #[error("override-window must be true or false, not {0:?}")]
    BadOverride(String),
    #[error("at most {MAX_VARIABLES} variables may be set")]
    TooManyVariables,
    #[error("at most {MAX_FORM_FIELDS} form fields are accepted")]
    TooManyFields,
    #[error("parameter {0:?} is longer than {MAX_VALUE_LEN} bytes")]
    ValueTooLong(String),
    #[error(
        "query parameter {parameter:?} is not covered by the signature (it signs the body only); list it in spec.{field} to accept it from the query"
    )]
    Unsigned { parameter: String, field: &'static str },
}

/// For a provider that signs only the body: refuses what the query sets unless the Webhook
/// lists it (`allowQueryParameters`, or `allowedVariables` for variables). Form fields and
/// payload variables come from the signed body and are not looked at here.
pub fn check_unsigned_query(
    params: &TriggerParams,
    allowed_variables: Option<&[String]>,
    allowed_parameters: &[crate::api::QueryParameter],
) -> Result<(), QueryError> {
    use crate::api::QueryParameter;
    let given = [
        (QueryParameter::Tag, params.tag.is_some()),
        (QueryParameter::RolloutRestart, params.rollout_restart.is_some()),
        (QueryParameter::OverrideWindow, params.override_window),
    ];
    if let Some((parameter, _)) = given.iter().find(|(p, set)| *set && !allowed_parameters.contains(p)) {
        return Err(QueryError::Unsigned { parameter: parameter.as_str().to_owned(), field: "allowQueryParameters" });
    }
    let listed = |name: &String| allowed_variables.is_some_and(|list| list.contains(name));
    match params.variables.keys().find(|name| !listed(name)) {
        Some(name) => Err(QueryError::Unsigned { parameter: name.clone(), field: "allowedVariables" }),
        None => Ok(()),
    }
}

/// Parses the raw query string (without `?`); `None` or empty means no parameters.
pub fn parse_query(raw: Option<&str>) -> Result<TriggerParams, QueryError> {
    let mut params = TriggerParams::default();
    let (mut seen_restart, mut seen_tag, mut seen_override) = (false, false, false);
    for (name, value) in pairs(raw.unwrap_or("").as_bytes())? {
        let first = |seen: &mut bool| {
            if std::mem::replace(seen, true) { Err(QueryError::Repeated(name.clone())) } else { Ok(()) }
        };
        match name.as_str() {
            "rollout-restart" => {
                first(&mut seen_restart)?;
                params.rollout_restart = Some(parse_restart(&value)?);
            }
            "tag" => {
                first(&mut seen_tag)?;
                if !is_image_tag(&value) {
                    return Err(QueryError::BadTag(value));
                }
                params.tag = Some(value);
            }
            "override-window" => {
                first(&mut seen_override)?;
                params.override_window = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(QueryError::BadOverride(value)),
                };
            }
            _ => {
                if !is_variable_name(&name) {
                    return Err(QueryError::BadName(name));
                }
                if params.variables.contains_key(&name) {
                    return Err(QueryError::Repeated(name));
                }
                if params.variables.len() >= MAX_VARIABLES {
                    return Err(QueryError::TooManyVariables);
                }
                params.variables.insert(name, value);
            }
        }
    }
    Ok(params)
}

/// Parses an `application/x-www-form-urlencoded` body (an HTML form post). An empty body
/// is an empty map; names are not restricted, as forms carry fields like `submit`.
pub fn parse_form(body: &[u8]) -> Result<BTreeMap<String, String>, QueryError> {
    let mut fields = BTreeMap::new();
    for (name, value) in pairs(body)? {
        if fields.contains_key(&name) {
            return Err(QueryError::Repeated(name));
        }
        if fields.len() >= MAX_FORM_FIELDS {
            return Err(QueryError::TooManyFields);
        }
        fields.insert(name, value);
    }
    Ok(fields)
}

/// `all`, or comma-separated `kind/name` with kinds case-insensitive and names DNS-1123
/// subdomains (what Kubernetes accepts for these objects).
fn parse_restart(value: &str) -> Result<RolloutRestart, QueryError> {
    if value.trim().eq_ignore_ascii_case("all") {
        return Ok(RolloutRestart::All);
    }
    let mut workloads: Vec<Workload> = Vec::new();
    for entry in value.split(',') {
        let bad = || QueryError::BadRestart(entry.to_owned());
        let (kind, name) = entry.trim().split_once('/').ok_or_else(bad)?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
            "daemonset" | "daemonsets" | "ds" => WorkloadKind::DaemonSet,
            "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
            _ => return Err(bad()),
        };
        if !is_dns_subdomain(name) {
            return Err(bad());
        }
        let workload = Workload { kind, name: name.to_owned() };
        if !workloads.contains(&workload) {
            workloads.push(workload);
        }
    }
    Ok(RolloutRestart::Workloads(workloads))
}

/// `^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`, the OCI distribution tag grammar.
pub fn is_image_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let head_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    head_ok && tag.len() <= 128 && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `^[_A-Za-z][_A-Za-z0-9]*$`, at most [`MAX_NAME_LEN`] long.
pub fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let head_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    head_ok && name.len() <= MAX_NAME_LEN && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_dns_subdomain(name: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| alnum(b) || b == b'-' || b == b'.')
        && name
            .split('.')
            .all(|label| label.bytes().next().is_some_and(alnum) && label.bytes().next_back().is_some_and(alnum))
}

/// Splits on `&`, then the first `=`, decoding both sides; empty pairs (`a=1&&b=2`) are
/// skipped and a bare `name` has an empty value, as browsers and Go's `ParseQuery` do.
fn pairs(raw: &[u8]) -> Result<Vec<(String, String)>, QueryError> {
    let mut out = Vec::new();
    for pair in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (pair.get(..at).unwrap_or_default(), pair.get(at + 1..).unwrap_or_default()),
            None => (pair, &[][..]),
        };
        let shown = || String::from_utf8_lossy(name).chars().take(MAX_NAME_LEN).collect::<String>();
        let name = decode(name).ok_or_else(|| QueryError::BadEncoding { name: shown() })?;
        if name.len() > MAX_NAME_LEN {
            return Err(QueryError::BadName(shown()));
        }
        let value = decode(value).ok_or_else(|| QueryError::BadEncoding { name: name.clone() })?;
        if value.len() > MAX_VALUE_LEN {
            return Err(QueryError::ValueTooLong(name));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// `+` to space and `%XX` to a byte, then strict UTF-8; `None` on a bad escape or bytes.
fn decode(input: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter().copied();
    while let Some(byte) = bytes.next() {
        out.push(match byte {
            b'+' => b' ',
            b'%' => {
                let high = hex(bytes.next()?)?;
                let low = hex(bytes.next()?)?;
                high << 4 | low
            }
            other => other,
        });
    }
    String::from_utf8(out).ok()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).and_then(|d| u8::try_from(d).ok())
}
