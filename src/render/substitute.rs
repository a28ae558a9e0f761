//! Placeholder scanner: splits one string into literal text and `${VAR}` placeholders, then fills them.
//!
//! This works on one already-parsed YAML scalar, never on raw file text, which is what keeps a
//! value from changing the YAML structure. Supported syntax (a subset of Flux post-build
//! substitution):
//!
//! - `${NAME}`: the value of `NAME`;
//! - `${NAME:-default}` and `${NAME:=default}`: the value, or `default` when `NAME` is unset or
//!   empty (`:=` does not assign anything: there is nothing to assign to);
//! - `$${NAME}`: the escape for a literal `${NAME}`;
//! - a bare `$NAME` or `$(NAME)` is plain text (Kubernetes uses `$(NAME)` itself).
//!
//! A default is literal text up to the first `}`: nested placeholders inside a default are not
//! supported and are refused rather than half-expanded.

use std::collections::BTreeMap;

/// One part of a scanned string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text copied as it is (an escaped `$${` contributes its `${`).
    Literal(&'a str),
    /// A `${...}` to fill.
    Var(Placeholder<'a>),
}

/// A parsed `${NAME}`, `${NAME:-default}` or `${NAME:=default}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder<'a> {
    /// The variable name, matching `^[_A-Za-z][_A-Za-z0-9]*$`.
    pub name: &'a str,
    /// The default text, used when the variable is unset or empty.
    pub default: Option<&'a str>,
    /// The placeholder exactly as written, for error messages.
    pub raw: &'a str,
    /// The 1-based line in the file, when known exactly (see `protect`).
    pub line: Option<usize>,
}

/// Why a string could not be scanned. Positions are added by the caller, which knows the scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError<'a> {
    /// `${` followed by something that is not a supported placeholder.
    Invalid { raw: &'a str, reason: &'static str },
    /// `${` with no closing `}` in the rest of the string.
    Unterminated { raw: &'a str },
}

/// Splits `text` into pieces. A string without `${` yields at most one literal piece.
pub fn scan(text: &str) -> Result<Vec<Piece<'_>>, ScanError<'_>> {
    let mut pieces = Vec::new();
    let mut literal_start = 0;
    let mut cursor = 0;
    while let Some(found) = text.get(cursor..).and_then(|rest| rest.find('$')) {
        let dollar = cursor + found;
        let rest = text.get(dollar..).unwrap_or_default();
        if rest.starts_with("$${") {
            // Escape: keep the text before, drop one `$`, and skip the `${` so it is not scanned.
            push_literal(&mut pieces, text.get(literal_start..dollar));
            literal_start = dollar + 1;
            cursor = dollar + 3;
        } else if rest.starts_with("${") {
            push_literal(&mut pieces, text.get(literal_start..dollar));
            let placeholder = parse_placeholder(rest)?;
            cursor = dollar + placeholder.raw.len();
            literal_start = cursor;
            pieces.push(Piece::Var(placeholder));
        } else {
            cursor = dollar + 1;
        }
    }
    push_literal(&mut pieces, text.get(literal_start..));
    Ok(pieces)
}

/// Finds the well-formed placeholders of raw file text with their byte offsets, leniently:
/// escapes are skipped, and so is anything malformed (left for [`scan`] to report if it turns
/// out to be inside a scalar, or ignored if it is in a comment). A placeholder never spans lines.
pub fn find_placeholders(text: &str) -> Vec<(usize, Placeholder<'_>)> {
    let mut found = Vec::new();
    let mut cursor = 0;
    while let Some(offset) = text.get(cursor..).and_then(|rest| rest.find('$')) {
        let dollar = cursor + offset;
        let rest = text.get(dollar..).unwrap_or_default();
        cursor = if rest.starts_with("$${") {
            dollar + 3
        } else if rest.starts_with("${") {
            // Only up to the first `}` or line end: looking further for every `$` would make a
            // long line of placeholders quadratic.
            let end = rest.find(['}', '\n', '\r']);
            let line = match end {
                Some(at) if rest.as_bytes().get(at) == Some(&b'}') => rest.get(..=at),
                Some(at) => rest.get(..at),
                None => Some(rest),
            };
            match parse_placeholder(line.unwrap_or_default()) {
                Ok(placeholder) => {
                    let next = dollar + placeholder.raw.len();
                    found.push((dollar, placeholder));
                    next
                }
                // Skip the whole `${...}` so that no placeholder is found inside a bad one.
                Err(ScanError::Invalid { raw, .. }) => dollar + raw.len(),
                // No `}` before the line ends: nothing later on this line closes either.
                Err(ScanError::Unterminated { raw }) => dollar + raw.len().max(2),
            }
        } else {
            dollar + 1
        };
    }
    found
}

/// Parses the placeholder at the start of `rest`, which begins with `${`.
fn parse_placeholder(rest: &str) -> Result<Placeholder<'_>, ScanError<'_>> {
    let Some(close) = rest.find('}') else {
        return Err(ScanError::Unterminated { raw: rest });
    };
    let raw = rest.get(..=close).unwrap_or(rest);
    let body = rest.get(2..close).unwrap_or_default();
    let name_len = body.find(|c: char| !(c == '_' || c.is_ascii_alphanumeric())).unwrap_or(body.len());
    let (name, after) = body.split_at(name_len);
    if !is_valid_name(name) {
        return Err(ScanError::Invalid { raw, reason: "variable names must match ^[_A-Za-z][_A-Za-z0-9]*$" });
    }
    let default = if after.is_empty() {
        None
    } else if let Some(default) = after.strip_prefix(":-").or_else(|| after.strip_prefix(":=")) {
        if default.contains("${") {
            return Err(ScanError::Invalid { raw, reason: "nested placeholders in defaults are not supported" });
        }
        Some(default)
    } else {
        return Err(ScanError::Invalid { raw, reason: "expected \"}\", \":-\" or \":=\" after the variable name" });
    };
    Ok(Placeholder { name, default, raw, line: None })
}

fn push_literal<'a>(pieces: &mut Vec<Piece<'a>>, text: Option<&'a str>) {
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        pieces.push(Piece::Literal(text));
    }
}

/// Whether `name` matches `^[_A-Za-z][_A-Za-z0-9]*$`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Whether the pieces are exactly one placeholder and nothing else: the only case that is
/// re-typed (`replicas: ${N}` can become a number, `name: app-${N}` never does).
pub fn is_single_placeholder(pieces: &[Piece<'_>]) -> bool {
    matches!(pieces, [Piece::Var(_)])
}

/// Fills the pieces from `vars`.
///
/// A set, non-empty value wins; otherwise the default; otherwise an empty value stays empty; an
/// unset variable without default is empty, or `Err(placeholder)` in strict mode.
pub fn fill<'p, 'a>(
    pieces: &'p [Piece<'a>],
    vars: &BTreeMap<String, String>,
    strict: bool,
) -> Result<String, &'p Placeholder<'a>> {
    let mut out = String::with_capacity(filled_len(pieces, vars));
    for piece in pieces {
        match piece {
            Piece::Literal(text) => out.push_str(text),
            Piece::Var(placeholder) => match chosen(placeholder, vars) {
                Some(text) => out.push_str(text),
                None if strict && !vars.contains_key(placeholder.name) => return Err(placeholder),
                None => {}
            },
        }
    }
    Ok(out)
}

/// The length [`fill`] would produce, known before anything is allocated (a long value
/// behind many placeholders is checked against the render budget first).
pub fn filled_len(pieces: &[Piece<'_>], vars: &BTreeMap<String, String>) -> usize {
    pieces
        .iter()
        .map(|piece| match piece {
            Piece::Literal(text) => text.len(),
            Piece::Var(placeholder) => chosen(placeholder, vars).map_or(0, str::len),
        })
        .fold(0, usize::saturating_add)
}

/// The text a placeholder becomes: a set, non-empty value, else its default; `None` for
/// nothing (an empty value, or unset without default).
fn chosen<'a>(placeholder: &Placeholder<'a>, vars: &'a BTreeMap<String, String>) -> Option<&'a str> {
    match (vars.get(placeholder.name).map(String::as_str), placeholder.default) {
        (Some(value), _) if !value.is_empty() => Some(value),
        (_, Some(default)) => Some(default),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn scans_pieces() {
        let pieces = scan("a${B}c${D:-x}").unwrap();
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[0], Piece::Literal("a"));
        assert!(matches!(&pieces[3], Piece::Var(p) if p.name == "D" && p.default == Some("x")));
    }

    #[test]
    fn escape_is_literal() {
        let text = fill(&scan("$${X} and $$${Y}").unwrap(), &vars(&[("Y", "v")]), true).unwrap();
        assert_eq!(text, "${X} and $${Y}");
    }

    #[test]
    fn errors() {
        assert!(matches!(scan("${"), Err(ScanError::Unterminated { raw: "${" })));
        assert!(matches!(scan("${1A}"), Err(ScanError::Invalid { .. })));
        assert!(matches!(scan("${A-b}"), Err(ScanError::Invalid { .. })));
        assert!(matches!(scan("${A:-${B}}"), Err(ScanError::Invalid { .. })));
        assert!(matches!(scan("${}"), Err(ScanError::Invalid { .. })));
    }

    #[test]
    fn finds_placeholders_leniently() {
        let found = find_placeholders("a: ${A} # ${1}\nb: $${C} ${D:-x ${E}} ${F\n${G:-g}");
        let names: Vec<_> = found.iter().map(|(_, p)| p.name).collect();
        assert_eq!(names, ["A", "G"]);
        assert_eq!(found[0].0, 3);
    }

    #[test]
    fn multibyte_text_is_safe() {
        let text = fill(&scan("é${A:-ü}€$").unwrap(), &vars(&[]), true).unwrap();
        assert_eq!(text, "éü€$");
    }
}
