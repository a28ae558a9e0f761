//! YAML 1.2 core-schema typing of scalars: decides whether text becomes a number, bool, null or string.
//!
//! Only plain (unquoted) scalars are typed, with the YAML 1.2 core schema (not YAML 1.1: `yes`,
//! `on` and `0777`-as-octal stay strings/decimal), so `"3"` stays a string and `3` is a number.
//! Values JSON cannot hold exactly become strings instead of being silently changed: `.inf`,
//! `.nan`, and integers beyond 64 bits (think of a long numeric build id).

use granit_parser::Tag;
use serde_json::{Number, Value};

/// Types the text of a plain scalar with the core schema; anything unrecognised is a string.
pub fn resolve_plain(text: String) -> Value {
    if is_null(&text) {
        Value::Null
    } else if let Some(b) = parse_bool(&text) {
        Value::Bool(b)
    } else if let Some(n) = parse_int(&text) {
        Value::Number(n)
    } else if looks_like_int(&text) {
        // An integer beyond 64 bits: as a float it would silently lose digits.
        Value::String(text)
    } else if let Some(n) = parse_float(&text) {
        Value::Number(n)
    } else {
        Value::String(text)
    }
}

/// Applies an explicit tag (`!!str 3`, `!!int "3"`). `!` and `!!str` force a string; `!!int`,
/// `!!float`, `!!bool`, `!!null` must match their text. Anything else is refused: Kubernetes has
/// no use for custom tags, and silently dropping one would hide a mistake.
pub fn resolve_tagged(text: String, tag: &Tag) -> Result<Value, String> {
    let suffix = match (tag.core_suffix(), tag.handle(), tag.suffix()) {
        (Some(suffix), _, _) => suffix.to_owned(),
        (None, "!", "") => "str".to_owned(),
        _ => return Err(format!("unsupported tag {:?}", tag.original())),
    };
    let mismatch = || Err(format!("{text:?} is not a valid !!{suffix}"));
    match suffix.as_str() {
        "str" => Ok(Value::String(text)),
        "null" if is_null(&text) => Ok(Value::Null),
        "bool" => parse_bool(&text).map(Value::Bool).map_or_else(mismatch, Ok),
        "int" => parse_int(&text).map(Value::Number).map_or_else(mismatch, Ok),
        "float" => parse_float(&text)
            .or_else(|| parse_int(&text).and_then(|n| n.as_f64()).and_then(Number::from_f64))
            .map(Value::Number)
            .map_or_else(mismatch, Ok),
        "null" => mismatch(),
        _ => Err(format!("unsupported tag {:?}", tag.original())),
    }
}

/// Whether a collection tag is acceptable (`!!map` on mappings, `!!seq` on sequences).
pub fn collection_tag_ok(tag: Option<&Tag>, expected: &str) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(tag) if tag.core_suffix() == Some(expected) => Ok(()),
        Some(tag) => Err(format!("unsupported tag {:?}", tag.original())),
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`; `None` also when it does not fit in 64 bits.
fn parse_int(text: &str) -> Option<Number> {
    if let Some(octal) = text.strip_prefix("0o") {
        return digits_in_radix(octal, 8).then(|| u64::from_str_radix(octal, 8).ok())?.map(Number::from);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return digits_in_radix(hex, 16).then(|| u64::from_str_radix(hex, 16).ok())?.map(Number::from);
    }
    if !looks_like_int(text) {
        return None;
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    text.parse::<i64>()
        .ok()
        .map(Number::from)
        .or_else(|| unsigned.parse::<u64>().ok().filter(|_| !text.starts_with('-')).map(Number::from))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`; infinities and NaN are not JSON.
fn parse_float(text: &str) -> Option<Number> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits_in_radix(frac, 10),
        Some((int, frac)) => digits_in_radix(int, 10) && (frac.is_empty() || digits_in_radix(frac, 10)),
        None => digits_in_radix(mantissa, 10),
    };
    let exponent_ok = exponent.is_none_or(|e| digits_in_radix(e.strip_prefix(['-', '+']).unwrap_or(e), 10));
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

fn looks_like_int(text: &str) -> bool {
    digits_in_radix(text.strip_prefix(['-', '+']).unwrap_or(text), 10)
}

fn digits_in_radix(text: &str, radix: u32) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_digit(radix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn core_schema() {
        let cases = [
            ("2", json!(2)),
            ("-7", json!(-7)),
            ("+7", json!(7)),
            ("0x1F", json!(31)),
            ("0o17", json!(15)),
            ("017", json!(17)),
            ("1.5", json!(1.5)),
            ("1.", json!(1.0)),
            (".5", json!(0.5)),
            ("1e3", json!(1000.0)),
            ("true", json!(true)),
            ("FALSE", json!(false)),
            ("~", json!(null)),
            ("", json!(null)),
            ("yes", json!("yes")),
            ("0x", json!("0x")),
            ("1_000", json!("1_000")),
            (".inf", json!(".inf")),
            ("nan", json!("nan")),
            ("inf", json!("inf")),
            ("18446744073709551615", json!(18446744073709551615u64)),
            ("123456789012345678901234", json!("123456789012345678901234")),
            ("1e400", json!("1e400")),
            ("e3", json!("e3")),
            ("1.2.3", json!("1.2.3")),
        ];
        for (text, expected) in cases {
            assert_eq!(resolve_plain(text.to_owned()), expected, "{text}");
        }
    }
}
