//! Git references: validation (they end up in refspecs), `ls-remote` parsing and semver tag selection.

use semver::{Version, VersionReq};

use super::SourceError;

/// Refuses names git would reject and anything that could change a refspec's meaning
/// (`a:b`, `+x`, globs) or be read as an option; `what` is "branch" or "tag".
pub(crate) fn validate_ref_name(what: &str, name: &str) -> Result<(), SourceError> {
    let invalid = |message: &str| SourceError::InvalidReference {
        reference: format!("{what} {name}"),
        message: message.to_owned(),
    };
    if name.is_empty() || name.len() > 255 {
        return Err(invalid("must be 1 to 255 characters"));
    }
    if name.bytes().any(|b| b.is_ascii_control() || b" ~^:?*[\\".contains(&b)) {
        return Err(invalid("must not contain spaces, control characters or any of ~^:?*[\\"));
    }
    let bad_component = name.split('/').any(|c| c.is_empty() || c.starts_with('.') || c.ends_with(".lock"));
    if bad_component || name.starts_with('-') || name.starts_with('+') || name.contains("..") || name.contains("@{") {
        return Err(invalid("is not a valid git reference name"));
    }
    if name.ends_with('.') || name == "@" {
        return Err(invalid("is not a valid git reference name"));
    }
    Ok(())
}

/// Lower-cased commit id: 7 to 40 hex digits (an abbreviation is expanded later).
pub(crate) fn validate_commit(commit: &str) -> Result<String, SourceError> {
    let ok = (7..=40).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(SourceError::InvalidReference {
            reference: format!("commit {commit}"),
            message: "must be 7 to 40 hexadecimal digits".to_owned(),
        });
    }
    Ok(commit.to_ascii_lowercase())
}

/// A full 40-digit lower-case SHA-1, as in a `Revision`.
pub(crate) fn is_full_sha(sha: &str) -> bool {
    sha.len() == 40 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `ls-remote` output as `(refname, object id)` pairs; peeled tags keep their `^{}` suffix.
pub(crate) fn parse_ls_remote(output: &str) -> Vec<(&str, &str)> {
    output
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(sha, _)| is_full_sha(sha))
        .map(|(sha, name)| (name.trim(), sha))
        .collect()
}

/// The commit `refname` points at: the peeled `^{}` entry for annotated tags, else its own id.
pub(crate) fn commit_of<'a>(refs: &[(&str, &'a str)], refname: &str) -> Option<&'a str> {
    let peeled = format!("{refname}^{{}}");
    let find = |wanted: &str| refs.iter().find(|(name, _)| *name == wanted).map(|(_, sha)| *sha);
    find(&peeled).or_else(|| find(refname))
}

/// A semver range: `||`-separated alternatives of comparators.
#[derive(Debug, Clone)]
pub(crate) struct Range(Vec<VersionReq>);

impl Range {
    /// Parses Cargo syntax (`>=1.2, <2`) and the npm/Flux spellings users copy from other tools:
    /// space-separated comparators (`>=1.2.0 <2.0.0`), `>= 1.2`, hyphen ranges (`1.2 - 1.4`), `||`.
    pub fn parse(range: &str) -> Result<Range, SourceError> {
        let invalid = |message: String| SourceError::InvalidSemverRange { range: range.to_owned(), message };
        if range.trim().is_empty() {
            return Err(invalid("the range is empty".to_owned()));
        }
        let mut alternatives = Vec::new();
        for alternative in range.split("||") {
            let cargo = to_cargo_syntax(alternative);
            let req = VersionReq::parse(&cargo).map_err(|e| invalid(e.to_string()))?;
            alternatives.push(req);
        }
        Ok(Range(alternatives))
    }

    pub fn matches(&self, version: &Version) -> bool {
        self.0.iter().any(|req| req.matches(version))
    }
}

/// Rewrites one `||` alternative into `semver`'s comma-separated syntax.
fn to_cargo_syntax(alternative: &str) -> String {
    let tokens: Vec<&str> =
        alternative.split(|c: char| c.is_whitespace() || c == ',').filter(|t| !t.is_empty()).collect();
    if let [low, "-", high] = tokens[..] {
        return format!(">={low}, <={high}");
    }
    let mut comparators: Vec<String> = Vec::new();
    let mut pending_op = String::new();
    for token in tokens {
        if token.bytes().all(|b| b"<>=~^".contains(&b)) {
            pending_op.push_str(token);
        } else {
            comparators.push(format!("{}{token}", std::mem::take(&mut pending_op)));
        }
    }
    if !pending_op.is_empty() {
        comparators.push(pending_op); // let the parser report the dangling operator
    }
    comparators.join(", ")
}

/// The version a tag names: `v1.2.3` or `1.2.3` (pre-release and build metadata allowed).
pub(crate) fn tag_version(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix(['v', 'V']).unwrap_or(tag)).ok()
}

/// The newest `(tag, commit)` whose version matches `range`; ties (`v1.0.0` and `1.0.0`) go to
/// the greater name so the choice never depends on listing order.
pub(crate) fn newest_matching<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    range: &Range,
) -> Option<(&'a str, &'a str)> {
    tags.into_iter()
        .filter_map(|(tag, sha)| Some((tag_version(tag)?, tag, sha)))
        .filter(|(version, _, _)| range.matches(version))
        .max_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)))
        .map(|(_, tag, sha)| (tag, sha))
}

/// Tags with their commits from `ls-remote --tags` pairs (annotated tags peeled).
pub(crate) fn tags_with_commits<'a>(refs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    refs.iter()
        .filter_map(|(name, _)| name.strip_prefix("refs/tags/").filter(|t| !t.ends_with("^{}")))
        .filter_map(|tag| Some((tag, commit_of(refs, &format!("refs/tags/{tag}"))?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::Reason;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const C: &str = "3333333333333333333333333333333333333333";

    #[test]
    fn ref_names_that_could_change_a_refspec_are_refused() {
        for good in ["main", "release/1.x", "feature-2", "v1.2.3"] {
            validate_ref_name("branch", good).unwrap();
        }
        for bad in ["", "a:b", "+main", "-x", "a..b", "a b", "x*", ".hidden", "a/.b", "x.lock", "a//b", "a@{1}", "a/"] {
            assert_eq!(validate_ref_name("branch", bad).unwrap_err().reason(), Reason::InvalidReference, "{bad:?}");
        }
        assert_eq!(validate_commit("ABCDEF1").unwrap(), "abcdef1");
        assert!(validate_commit("abc").is_err() && validate_commit("xyz1234").is_err());
    }

    #[test]
    fn annotated_tags_are_peeled() {
        let out = format!("{A}\trefs/tags/v1.0.0\n{B}\trefs/tags/v1.0.0^{{}}\n{C}\trefs/tags/v2.0.0\n");
        let refs = parse_ls_remote(&out);
        assert_eq!(commit_of(&refs, "refs/tags/v1.0.0"), Some(B));
        assert_eq!(tags_with_commits(&refs), vec![("v1.0.0", B), ("v2.0.0", C)]);
    }

    #[test]
    fn semver_ranges_in_common_spellings() {
        let tags = [("v1.2.0", A), ("1.4.1", B), ("v2.0.0", C), ("v1.5.0-rc.1", A), ("latest", A)];
        let pick = |r: &str| newest_matching(tags, &Range::parse(r).unwrap()).map(|(t, _)| t);
        assert_eq!(pick(">=1.2.0 <2.0.0"), Some("1.4.1"));
        assert_eq!(pick(">= 1.2.0, < 2.0.0"), Some("1.4.1"));
        assert_eq!(pick("~1.2"), Some("v1.2.0"));
        assert_eq!(pick("^1"), Some("1.4.1"));
        assert_eq!(pick("1.2.0 - 1.3.0"), Some("v1.2.0"));
        assert_eq!(pick("~1.2 || >=2"), Some("v2.0.0"));
        assert_eq!(pick("*"), Some("v2.0.0"));
        assert_eq!(pick(">=3"), None);
        assert_eq!(pick(">=1.5.0-rc.0, <1.6.0"), Some("v1.5.0-rc.1"));
        for bad in ["", "not a range", ">=", "1.2.3.4.5"] {
            assert_eq!(Range::parse(bad).unwrap_err().reason(), Reason::InvalidSemverRange, "{bad:?}");
        }
    }
}
