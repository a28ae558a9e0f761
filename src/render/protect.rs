//! Hides placeholders from the YAML parser behind opaque tokens, so `{a: ${B}}` parses like `{a: b}`.
//!
//! Parsing first is what keeps values from changing structure, but a raw `${B}` is not valid
//! everywhere a value is: `{`/`}` end a plain scalar in flow collections (JSON files, `{a: b}`
//! mappings), and a default such as `${X:-a: b}` or `${X:-a #b}` would be read as YAML syntax.
//! So, before parsing, every well-formed placeholder of the file is replaced by a token made of
//! two private-use characters around its index, which YAML reads as ordinary scalar text. After
//! parsing, tokens inside scalars turn back into their placeholders; tokens in comments simply
//! vanish with the comment. Consequences:
//!
//! - a default is literal text: it is never YAML-unescaped (`"${X:-a\nb}"` keeps the backslash);
//! - only the placeholder text is hidden, never a value: values are filled after parsing;
//! - line numbers are unchanged (a token replaces text of a single line) and each placeholder
//!   knows its exact line;
//! - a file that already contains the token character is parsed as it is (no hiding).

use std::borrow::Cow;

use super::substitute::{Piece, Placeholder, ScanError, find_placeholders, scan};

const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// A file's text with placeholders replaced by tokens, and the placeholders by token index.
#[derive(Debug)]
pub struct Protected<'a> {
    /// The text to give the YAML parser (spans and lines refer to it).
    pub source: Cow<'a, str>,
    placeholders: Vec<Placeholder<'a>>,
}

/// Replaces the placeholders of `content` by tokens.
pub fn protect(content: &str) -> Protected<'_> {
    if !content.contains("${") || content.contains(OPEN) {
        return Protected { source: Cow::Borrowed(content), placeholders: Vec::new() };
    }
    let mut source = String::with_capacity(content.len());
    let mut placeholders = Vec::new();
    let mut copied = 0;
    let mut line = 1;
    for (start, placeholder) in find_placeholders(content) {
        let before = content.get(copied..start).unwrap_or_default();
        line += before.matches('\n').count();
        source.push_str(before);
        source.push(OPEN);
        source.push_str(&placeholders.len().to_string());
        source.push(CLOSE);
        copied = start + placeholder.raw.len();
        placeholders.push(Placeholder { line: Some(line), ..placeholder });
    }
    source.push_str(content.get(copied..).unwrap_or_default());
    Protected { source: Cow::Owned(source), placeholders }
}

impl Protected<'_> {
    /// Splits a parsed scalar into pieces: tokens give back their placeholder, the text between
    /// tokens is scanned as usual (escapes, and placeholders the protection did not take).
    pub fn pieces<'s>(&'s self, scalar: &'s str) -> Result<Vec<Piece<'s>>, ScanError<'s>> {
        if self.placeholders.is_empty() || !scalar.contains(OPEN) {
            return scan(scalar);
        }
        let mut pieces = Vec::new();
        let mut rest = scalar;
        while let Some(open) = rest.find(OPEN) {
            let before = rest.get(..open).unwrap_or_default();
            let after = rest.get(open + OPEN.len_utf8()..).unwrap_or_default();
            let token = after.find(CLOSE).and_then(|close| {
                let index: usize = after.get(..close)?.parse().ok()?;
                Some((close, self.placeholders.get(index)?))
            });
            match token {
                Some((close, placeholder)) => {
                    pieces.extend(scan(before)?);
                    pieces.push(Piece::Var(placeholder.clone()));
                    rest = after.get(close + CLOSE.len_utf8()..).unwrap_or_default();
                }
                // Not one of our tokens (YAML escapes can spell anything): plain text.
                None => {
                    pieces.extend(scan(rest.get(..open + OPEN.len_utf8()).unwrap_or_default())?);
                    rest = after;
                }
            }
        }
        pieces.extend(scan(rest)?);
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_tokens() {
        let protected = protect("a: {b: ${B:-x: y}}\n# ${C}\nc: \"${D}\"\n");
        assert!(!protected.source.contains("${"));
        assert_eq!(protected.placeholders.len(), 3);
        assert_eq!(protected.placeholders[2].line, Some(3));
        let token = format!("{OPEN}0{CLOSE}");
        let pieces = protected.pieces(&token).unwrap();
        assert!(matches!(&pieces[..], [Piece::Var(p)] if p.name == "B" && p.default == Some("x: y")));
    }

    #[test]
    fn foreign_tokens_are_text() {
        let protected = protect("a: ${A}");
        let text = format!("{OPEN}9{CLOSE}{OPEN}");
        let pieces = protected.pieces(&text).unwrap();
        assert!(pieces.iter().all(|p| matches!(p, Piece::Literal(_))));
    }
}
