//! The single error type of rendering: every failure names where it happened in the manifests.

use std::fmt;

/// Where in the manifests something went wrong: file, 1-based document number and 1-based line.
///
/// Kept as a separate value so that callers (status conditions, CLI output) can show or match
/// on the position without parsing the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Relative display path of the file, `/` separated.
    pub file: String,
    /// 1-based number of the YAML document inside the file (every `---` counts, empty ones too).
    pub document: usize,
    /// 1-based line in the file.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}, line {}", self.file, self.document, self.line)
    }
}

/// Why rendering (or reading, or overriding) failed. Messages are lowercase so they can be
/// embedded in longer sentences, and always start with the position when there is one.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The manifest path could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A manifest file is not UTF-8 text.
    #[error("{path}: file is not valid utf-8")]
    NotUtf8 { path: String },
    /// Strict mode: a `${VAR}` without value and without default.
    #[error("{at}: variable \"{variable}\" has no value and no default (strict mode)")]
    MissingVariable { at: Location, variable: String },
    /// A `${...}` whose content is not `NAME`, `NAME:-default` or `NAME:=default`.
    #[error("{at}: invalid placeholder \"{text}\": {reason}")]
    InvalidPlaceholder { at: Location, text: String, reason: String },
    /// A `${` without its closing `}`.
    #[error("{at}: unterminated placeholder \"{text}\": missing \"}}\"")]
    UnterminatedPlaceholder { at: Location, text: String },
    /// The YAML parser refused the text.
    #[error("{at}: invalid yaml: {message}")]
    Syntax { at: Location, message: String },
    /// Valid YAML that is not an acceptable Kubernetes manifest (not a mapping, no kind, too
    /// deep, duplicate keys, unsupported tags, ...).
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
    /// The manifests render to more than the render budget allows ([`super::Budget`]); nothing
    /// of them is used.
    #[error("{at}: {message}")]
    OverBudget { at: Location, message: String },
    /// An image tag override that Docker would refuse.
    #[error("invalid image tag {tag:?}: must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")]
    InvalidImageTag { tag: String },
}

impl RenderError {
    /// The position of the error, when it is about a place in a manifest.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::MissingVariable { at, .. }
            | Self::InvalidPlaceholder { at, .. }
            | Self::UnterminatedPlaceholder { at, .. }
            | Self::Syntax { at, .. }
            | Self::Invalid { at, .. }
            | Self::OverBudget { at, .. } => Some(at),
            Self::Io { .. } | Self::NotUtf8 { .. } | Self::InvalidImageTag { .. } => None,
        }
    }

    /// The file the error is about, if any.
    pub fn file(&self) -> Option<&str> {
        match self {
            Self::Io { path, .. } | Self::NotUtf8 { path } => Some(path),
            _ => self.location().map(|at| at.file.as_str()),
        }
    }

    /// The 1-based document number, if the error is inside a document.
    pub fn document(&self) -> Option<usize> {
        self.location().map(|at| at.document)
    }

    /// The 1-based line, if the error is inside a document.
    pub fn line(&self) -> Option<usize> {
        self.location().map(|at| at.line)
    }

    /// The variable name, for a missing variable.
    pub fn variable(&self) -> Option<&str> {
        match self {
            Self::MissingVariable { variable, .. } => Some(variable),
            _ => None,
        }
    }
}
