//! YAML to JSON with substitution inside parsed scalars: structure first, then values, with positions.
//!
//! The file is parsed by `granit-parser` (the event parser under `serde-saphyr`), which reports
//! each scalar's style (plain or quoted) and span. Placeholders are hidden from the parser as
//! opaque tokens (see [`super::protect`]) and filled only inside scalar text after parsing, so a
//! value can never add keys, documents or comments, and placeholders in comments are never seen.
//! Plain scalars are typed afterwards (see [`super::scalar`]).

use std::collections::{BTreeMap, BTreeSet};

use granit_parser::{Event, Options, Parser, ScalarStyle, Span, StrInput};
use serde_json::Value;

use super::budget::Remaining;
use super::error::{Location, RenderError};
use super::files::ManifestFile;
use super::protect::{Protected, protect};
use super::scalar::{collection_tag_ok, resolve_plain, resolve_tagged};
use super::substitute::{Piece, ScanError, fill, filled_len, is_single_placeholder};
use super::tree::{Tree, TreeError};

/// One non-empty document of a file, before Kubernetes checks.
#[derive(Debug)]
pub struct Document {
    /// 1-based document number in the file (empty documents count).
    pub number: usize,
    /// Line of the document's root node.
    pub line: usize,
    pub value: Value,
    /// Lines of the elements of a root-level `items` sequence, for `kind: List`.
    pub item_lines: Vec<usize>,
}

/// What substitution needs: where we are (for errors) and the variables.
struct Context<'a> {
    file: &'a ManifestFile,
    protected: &'a Protected<'a>,
    document: usize,
    vars: &'a BTreeMap<String, String>,
    strict: bool,
}

impl Context<'_> {
    fn at(&self, line: usize) -> Location {
        Location { file: self.file.path.clone(), document: self.document.max(1), line }
    }

    /// Scans a scalar; errors point at the line of the offending `${` inside the scalar.
    fn scan<'t>(&'t self, text: &'t str, span: &Span) -> Result<Vec<Piece<'t>>, RenderError> {
        let source = &self.protected.source;
        self.protected.pieces(text).map_err(|e| match e {
            ScanError::Invalid { raw, reason } => RenderError::InvalidPlaceholder {
                at: self.at(line_in_scalar(source, span, raw)),
                text: shorten(raw),
                reason: reason.to_owned(),
            },
            ScanError::Unterminated { raw } => RenderError::UnterminatedPlaceholder {
                at: self.at(line_in_scalar(source, span, raw)),
                text: shorten(raw),
            },
        })
    }

    /// Substitutes a scalar; the flag says whether the result may be typed (no mixed text).
    /// The result's size is checked against the tree's budget before it is built.
    fn fill(&self, text: &str, span: &Span, tree: &Tree) -> Result<(String, bool), RenderError> {
        let pieces = self.scan(text, span)?;
        tree.check_room(filled_len(&pieces, self.vars) as u64)
            .map_err(|e| RenderError::OverBudget { at: self.at(span.start.line()), message: e.message })?;
        let whole = is_single_placeholder(&pieces) || pieces.iter().all(|p| matches!(p, Piece::Literal(_)));
        let filled = fill(&pieces, self.vars, self.strict).map_err(|missing| RenderError::MissingVariable {
            at: self.at(missing.line.unwrap_or_else(|| line_in_scalar(&self.protected.source, span, missing.raw))),
            variable: missing.name.to_owned(),
        })?;
        Ok((filled, whole))
    }
}

/// Parses every document of `file`, substituting `vars`; empty documents are left out. What
/// the documents produce is charged to `budget`, which the caller carries across files.
pub(crate) fn parse_documents(
    file: &ManifestFile,
    vars: &BTreeMap<String, String>,
    strict: bool,
    budget: &mut Remaining,
) -> Result<Vec<Document>, RenderError> {
    let protected = protect(&file.content);
    let mut ctx = Context { file, protected: &protected, document: 0, vars, strict };
    let mut documents = Vec::new();
    let mut tree: Option<(Tree, Option<usize>)> = None;
    let mut parser = new_parser(&protected.source);
    while let Some(next) = parser.next_event() {
        let (event, span) =
            next.map_err(|e| RenderError::Syntax { at: ctx.at(e.marker().line()), message: e.info() })?;
        let line = span.start.line();
        match event {
            Event::DocumentStart(..) => {
                ctx.document += 1;
                tree = Some((Tree::new(*budget), None));
            }
            Event::DocumentEnd => {
                if let Some((mut done, root_line)) = tree.take() {
                    *budget = done.budget();
                    let item_lines = std::mem::take(&mut done.item_lines);
                    let value = done.finish().map_err(|message| RenderError::Invalid { at: ctx.at(line), message })?;
                    if let Some(value) = value {
                        let line = root_line.unwrap_or(line);
                        documents.push(Document { number: ctx.document, line, value, item_lines });
                    }
                }
            }
            event => {
                if let Some((current, root_line)) = tree.as_mut() {
                    root_line.get_or_insert(line);
                    build(current, event, &span, &ctx)?;
                }
            }
        }
    }
    Ok(documents)
}

/// Feeds one node event to the tree; structural problems become errors at the event's line.
fn build(tree: &mut Tree, event: Event<'_>, span: &Span, ctx: &Context<'_>) -> Result<(), RenderError> {
    let line = span.start.line();
    let invalid = |e: TreeError| {
        let at = ctx.at(e.line.unwrap_or(line));
        if e.over_budget {
            RenderError::OverBudget { at, message: e.message }
        } else {
            RenderError::Invalid { at, message: e.message }
        }
    };
    let result = match event {
        Event::Scalar(text, style, anchor, tag) => {
            tree.note_start(line);
            if tree.expects_key() {
                // Keys are substituted but never typed: JSON keys are strings.
                let merge = style == ScalarStyle::Plain && tag.is_none() && text == "<<";
                let key = if merge { String::new() } else { ctx.fill(&text, span, tree)?.0 };
                tree.key(key, line, merge, anchor)
            } else {
                let (filled, whole) = ctx.fill(&text, span, tree)?;
                let value = match tag {
                    Some(tag) => resolve_tagged(filled, &tag),
                    None if style == ScalarStyle::Plain && whole => Ok(resolve_plain(filled)),
                    None => Ok(Value::String(filled)),
                };
                value.map_err(TreeError::from).and_then(|value| tree.scalar(value, anchor))
            }
        }
        Event::SequenceStart(_, anchor, tag) => {
            tree.note_start(line);
            collection_tag_ok(tag.as_deref(), "seq").map_err(TreeError::from).and_then(|()| tree.start_seq(anchor))
        }
        Event::MappingStart(_, anchor, tag) => {
            tree.note_start(line);
            collection_tag_ok(tag.as_deref(), "map").map_err(TreeError::from).and_then(|()| tree.start_map(anchor))
        }
        Event::Alias(id) => {
            tree.note_start(line);
            tree.alias(id)
        }
        Event::SequenceEnd | Event::MappingEnd => tree.end(),
        // Stream markers, comments and anchor metadata carry no data.
        _ => Ok(()),
    };
    result.map_err(invalid)
}

/// Every variable name referenced by `file`, keys included; comments are not looked at.
pub fn collect_placeholders(file: &ManifestFile, names: &mut BTreeSet<String>) -> Result<(), RenderError> {
    let vars = BTreeMap::new();
    let protected = protect(&file.content);
    let mut ctx = Context { file, protected: &protected, document: 0, vars: &vars, strict: false };
    let mut parser = new_parser(&protected.source);
    while let Some(next) = parser.next_event() {
        let (event, span) =
            next.map_err(|e| RenderError::Syntax { at: ctx.at(e.marker().line()), message: e.info() })?;
        match event {
            Event::DocumentStart(..) => ctx.document += 1,
            Event::Scalar(text, ..) => {
                for piece in ctx.scan(&text, &span)? {
                    if let Piece::Var(placeholder) = piece {
                        names.insert(placeholder.name.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn new_parser(content: &str) -> Parser<'_, StrInput<'_>> {
    let mut options = Options::default();
    // Comments are never data here; not buffering them is faster.
    options.set_emit_comments(false);
    Parser::new_from_str_with_options(content, options)
}

/// The line of `needle` (a placeholder as written) inside the scalar's source text, falling back
/// to the scalar's first line when the parser folded or unescaped the text so it is not found.
fn line_in_scalar(source: &str, span: &Span, needle: &str) -> usize {
    let start = span.start.line();
    let needle = needle.split(char::is_whitespace).next().unwrap_or(needle);
    let slice = span.start.byte_offset().zip(span.end.byte_offset()).and_then(|(from, to)| source.get(from..to));
    match slice.and_then(|s| s.find(needle).map(|pos| s.get(..pos).unwrap_or_default())) {
        Some(before) => start + before.matches('\n').count(),
        None => start,
    }
}

/// Keeps error messages short when an unterminated `${` swallows the rest of a long scalar.
fn shorten(raw: &str) -> String {
    const MAX_CHARS: usize = 60;
    match raw.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", raw.get(..cut).unwrap_or_default()),
        None => raw.to_owned(),
    }
}
