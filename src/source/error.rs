//! `SourceError`: what went wrong with a Git source, classified so conditions and retries can act on it.

use std::net::IpAddr;

use crate::conditions::Reason;
use crate::egress::Blocked;

use super::url::redact_text;

/// Longest piece of git's stderr kept in a message: enough to diagnose, short enough for a status.
const MAX_MESSAGE: usize = 500;

/// Every failure of the Git source. Messages are lower-case, never contain credentials, and say
/// what to check; [`SourceError::reason`] gives the matching Kubernetes condition reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error(
        "authentication failed for {url}: check the username/password, bearer token or ssh identity in spec.source.secretRef"
    )]
    AuthenticationFailed { url: String },
    #[error(
        "the ssh host key of {url} could not be verified: add the server's key to known_hosts in spec.source.secretRef"
    )]
    HostKeyVerificationFailed { url: String },
    #[error("repository {url} not found (or not visible with the given credentials): check spec.source.repoURL")]
    RepositoryNotFound { url: String },
    #[error("{reference} not found in {url}: check spec.source.ref")]
    RefNotFound { url: String, reference: String },
    #[error("no tag in {url} matches the semver range {range:?}: check spec.source.ref.semver or push a matching tag")]
    NoMatchingTag { url: String, range: String },
    #[error("invalid semver range {range:?} in spec.source.ref.semver: {message}")]
    InvalidSemverRange { range: String, message: String },
    #[error("invalid reference {reference:?} in spec.source.ref: {message}")]
    InvalidReference { reference: String, message: String },
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("git gave up on {url} after {seconds}s (command timeout); the next attempt starts over")]
    Timeout { url: String, seconds: u64 },
    #[error(
        "path {path:?} not found at {revision} (symbolic links and submodules are not followed): check spec.source.path"
    )]
    PathNotFound { path: String, revision: String },
    #[error("file {path:?} at {revision} is not UTF-8 text")]
    NotUtf8 { path: String, revision: String },
    #[error(
        "manifests at {path:?} in {revision} add up to more than {limit} bytes: point spec.source.path at a smaller directory"
    )]
    TooLarge { path: String, revision: String, limit: u64 },
    #[error("file:// repositories are disabled ({url}): start the operator with --allow-file-sources to use them")]
    FileSourcesDisabled { url: String },
    #[error(
        "unsupported repository URL {url:?} in spec.source.repoURL: use https://, http://, ssh:// or user@host:path"
    )]
    UnsupportedUrl { url: String },
    #[error("the Git egress guard refused {host} of {url}: its address {address} is {}; {}", .blocked.describe(), egress_hint(*.blocked))]
    EgressRefused { url: String, host: String, address: IpAddr, blocked: Blocked },
    #[error(
        "{url} answered with a redirect, which is not followed (its target would escape the Git egress guard): set spec.source.repoURL to the repository's final URL, e.g. ending in .git"
    )]
    Redirected { url: String },
    #[error("git failed: {message}")]
    Git { message: String },
    #[error("cannot {action}: {message}")]
    Io { action: String, message: String },
}

impl SourceError {
    /// CamelCase reason for a Kubernetes condition.
    pub fn reason(&self) -> Reason {
        match self {
            SourceError::AuthenticationFailed { .. } => Reason::AuthenticationFailed,
            SourceError::HostKeyVerificationFailed { .. } => Reason::HostKeyVerificationFailed,
            SourceError::RepositoryNotFound { .. } => Reason::RepositoryNotFound,
            SourceError::RefNotFound { .. } => Reason::RefNotFound,
            SourceError::NoMatchingTag { .. } => Reason::NoMatchingTag,
            SourceError::InvalidSemverRange { .. } => Reason::InvalidSemverRange,
            SourceError::InvalidReference { .. } => Reason::InvalidReference,
            SourceError::Unreachable { .. } => Reason::Unreachable,
            SourceError::Timeout { .. } => Reason::Timeout,
            SourceError::PathNotFound { .. } => Reason::PathNotFound,
            SourceError::NotUtf8 { .. } => Reason::NotUtf8,
            SourceError::TooLarge { .. } => Reason::TooLarge,
            SourceError::FileSourcesDisabled { .. } => Reason::FileSourcesDisabled,
            SourceError::UnsupportedUrl { .. } => Reason::UnsupportedUrl,
            SourceError::EgressRefused { .. } => Reason::EgressRefused,
            SourceError::Redirected { .. } => Reason::Redirected,
            SourceError::Git { .. } => Reason::GitFailed,
            SourceError::Io { .. } => Reason::CacheIOFailed,
        }
    }

    /// Whether retrying soon may help (network, timeouts, unknown git failures, local I/O);
    /// everything else needs a change to the spec, the Secret or the repository.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SourceError::Unreachable { .. }
                | SourceError::Timeout { .. }
                | SourceError::Git { .. }
                | SourceError::Io { .. }
        )
    }

    pub(crate) fn io(action: impl Into<String>, error: &std::io::Error) -> SourceError {
        SourceError::Io { action: action.into(), message: error.to_string() }
    }
}

/// What to do about a refused address: private ones are refused only on request.
fn egress_hint(blocked: Blocked) -> &'static str {
    match blocked {
        Blocked::Private => {
            "private addresses are refused because the operator runs with --git-egress-deny-private; --git-egress-allow CIDR admits a range"
        }
        _ => "if this server is intended, the operator's --git-egress-allow CIDR admits its range",
    }
}

/// Turns a failed git command into the most specific error its stderr allows.
///
/// Git is run with `LC_ALL=C`, so these English phrases are stable across git versions
/// (they have been for years); anything unrecognised stays a transient `Git` error.
/// `reference` describes what was asked for, for `RefNotFound`.
pub(crate) fn classify(stderr: &str, url: &str, reference: &str) -> SourceError {
    let text = redact_text(stderr.trim());
    let lower = text.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    let url = url.to_owned();
    if has(&[
        "could not resolve host",
        "could not resolve hostname",
        "failed to connect",
        "couldn't connect to server",
        "connection refused",
        "connection timed out",
        "network is unreachable",
        "no route to host",
        "connection reset",
        "operation timed out",
        "temporary failure in name resolution",
        "connection closed by remote host",
        "empty reply from server",
        "returned error: 502",
        "returned error: 503",
        "returned error: 504",
    ]) {
        return SourceError::Unreachable { url, message: shorten(&text) };
    }
    // Redirects are not followed (`http.followRedirects=false`, see `guard`).
    if has(&[
        "returned error: 301",
        "returned error: 302",
        "returned error: 303",
        "returned error: 307",
        "returned error: 308",
    ]) {
        return SourceError::Redirected { url };
    }
    if has(&["host key verification failed", "no matching host key", "remote host identification has changed"]) {
        return SourceError::HostKeyVerificationFailed { url };
    }
    if has(&[
        "authentication failed",
        "could not read username",
        "could not read password",
        "returned error: 401",
        "returned error: 403",
        "permission denied (publickey",
        "permission denied (password",
        "permission denied, please try again",
        "terminal prompts disabled",
        "invalid username or password",
    ]) {
        return SourceError::AuthenticationFailed { url };
    }
    if has(&["couldn't find remote ref", "not our ref", "no such remote ref", "unadvertised object"]) {
        return SourceError::RefNotFound { url, reference: reference.to_owned() };
    }
    if has(&["returned error: 404", "not found", "does not appear to be a git repository", "no such repository"]) {
        return SourceError::RepositoryNotFound { url };
    }
    let message = if text.is_empty() { "git exited without an error message".to_owned() } else { shorten(&text) };
    SourceError::Git { message }
}

/// Joins lines with `; ` and cuts at `MAX_MESSAGE` characters (on a char boundary).
pub(crate) fn shorten(text: &str) -> String {
    let joined = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    match joined.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:4711/team/app.git";

    #[test]
    fn classifies_git_stderr() {
        let cases = [
            ("fatal: unable to access 'x': Failed to connect to 127.0.0.1 port 1: Connection refused", "Unreachable"),
            ("fatal: unable to access 'x': Could not resolve host: nope.invalid", "Unreachable"),
            ("fatal: Authentication failed for 'http://127.0.0.1/x'", "AuthenticationFailed"),
            ("fatal: could not read Username for 'http://h': terminal prompts disabled", "AuthenticationFailed"),
            ("fatal: unable to access 'x': The requested URL returned error: 403", "AuthenticationFailed"),
            (
                "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.",
                "AuthenticationFailed",
            ),
            (
                "Host key verification failed.\nfatal: Could not read from remote repository.",
                "HostKeyVerificationFailed",
            ),
            ("fatal: repository 'http://h/x.git/' not found", "RepositoryNotFound"),
            ("fatal: '/srv/x' does not appear to be a git repository", "RepositoryNotFound"),
            ("fatal: couldn't find remote ref refs/heads/nope", "RefNotFound"),
            ("fatal: unable to access 'x': The requested URL returned error: 301", "Redirected"),
            ("fatal: bad object deadbeef", "GitFailed"),
        ];
        for (stderr, reason) in cases {
            assert_eq!(classify(stderr, URL, "branch nope").reason().as_str(), reason, "{stderr}");
        }
    }

    #[test]
    fn messages_are_helpful_short_and_secret_free() {
        let auth = SourceError::AuthenticationFailed { url: URL.into() };
        assert_eq!(
            auth.to_string(),
            "authentication failed for http://127.0.0.1:4711/team/app.git: check the username/password, bearer token or ssh identity in spec.source.secretRef"
        );
        let err = classify(&format!("fatal: https://u:pw@h/x {}", "y".repeat(2000)), URL, "");
        let SourceError::Git { message } = &err else { panic!("{err:?}") };
        assert!(message.chars().count() <= MAX_MESSAGE + 1 && !message.contains("pw"), "{message}");
        assert!(err.is_transient() && !auth.is_transient());
        let refused = SourceError::EgressRefused {
            url: "http://metadata.example/x.git".into(),
            host: "metadata.example".into(),
            address: "169.254.169.254".parse().unwrap(),
            blocked: Blocked::LinkLocal,
        };
        assert_eq!(
            refused.to_string(),
            "the Git egress guard refused metadata.example of http://metadata.example/x.git: its address 169.254.169.254 is link-local (cloud metadata); if this server is intended, the operator's --git-egress-allow CIDR admits its range"
        );
        assert!(!refused.is_transient() && refused.reason().as_str() == "EgressRefused");
        let private = SourceError::EgressRefused {
            url: URL.into(),
            host: "127.0.0.1".into(),
            address: "10.0.0.1".parse().unwrap(),
            blocked: Blocked::Private,
        };
        assert!(private.to_string().contains("--git-egress-deny-private"), "{private}");
    }
}
