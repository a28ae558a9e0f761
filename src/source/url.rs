//! Repository URL checks (which transports git may use), the cache key, and credential redaction.

use super::SourceError;

/// The git transport a URL selects; decides `GIT_ALLOW_PROTOCOL` and whether credentials apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Http,
    Ssh,
    File,
}

/// A repository URL that passed the checks below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepoUrl {
    /// What git is called with (trimmed, otherwise as given: it may embed credentials).
    pub raw: String,
    /// Safe for messages and logs: HTTP userinfo replaced by `***`.
    pub display: String,
    /// The cache key: scheme and host lower-cased, HTTP userinfo and trailing slashes dropped,
    /// so one repository gets one bare repo whatever credentials or spelling the specs use.
    pub normalized: String,
    pub transport: Transport,
}

/// Accepts `https://`, `http://`, `ssh://`, `user@host:path`, and `file://` when `allow_file`.
///
/// Everything else is refused up front, above all git's `<transport>::<address>` syntax
/// (`ext::sh -c …` runs commands) and anything that could be read as a command-line option.
/// `GIT_ALLOW_PROTOCOL` enforces the same again inside git, including for redirects.
pub(crate) fn parse(url: &str, allow_file: bool) -> Result<RepoUrl, SourceError> {
    let raw = url.trim();
    let unsupported = || SourceError::UnsupportedUrl { url: redact_text(raw) };
    if raw.is_empty() || raw.starts_with('-') || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(unsupported());
    }
    if let Some((scheme, rest)) = raw.split_once("://") {
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => Transport::Http,
            "ssh" => Transport::Ssh,
            "file" if allow_file => Transport::File,
            "file" => return Err(SourceError::FileSourcesDisabled { url: redact_text(raw) }),
            _ => return Err(unsupported()),
        };
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if transport != Transport::File && host_of(authority).is_empty() {
            return Err(unsupported());
        }
        let (userinfo, host) = authority.rsplit_once('@').map_or((None, authority), |(u, h)| (Some(u), h));
        let scheme = scheme.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        let path = path.trim_end_matches('/');
        // HTTP userinfo is credentials (often a token as the user name): never shown, not part of
        // the key. An ssh user name is part of the address; a password after it is not.
        let (display, normalized) = match (transport, userinfo) {
            (Transport::Http, Some(_)) => {
                (format!("{scheme}://***@{host}/{path}"), format!("{scheme}://{host}/{path}"))
            }
            (_, Some(userinfo)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                let shown = if userinfo.contains(':') { format!("{user}:***") } else { user.to_owned() };
                (format!("{scheme}://{shown}@{host}/{path}"), format!("{scheme}://{user}@{host}/{path}"))
            }
            (_, None) => {
                let url = format!("{scheme}://{host}/{path}");
                (url.clone(), url)
            }
        };
        let display = display.trim_end_matches('/').to_owned();
        return Ok(RepoUrl { raw: raw.to_owned(), display, normalized, transport });
    }
    if raw.contains("::") {
        return Err(unsupported());
    }
    // scp-like `user@host:path`: the part before the first ':' has an '@' and no '/'.
    let Some((login, path)) = raw.split_once(':') else {
        return Err(unsupported());
    };
    let Some((user, host)) = login.split_once('@') else {
        return Err(unsupported());
    };
    let user_ok = !user.is_empty() && user.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let host_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b));
    if !user_ok || !host_ok || path.is_empty() || path.starts_with('-') {
        return Err(unsupported());
    }
    let normalized = format!("{user}@{}:{}", host.to_ascii_lowercase(), path.trim_end_matches('/'));
    Ok(RepoUrl { raw: raw.to_owned(), display: normalized.clone(), normalized, transport: Transport::Ssh })
}

/// The host of an authority (`user:pw@host:port`), without userinfo and port.
fn host_of(authority: &str) -> &str {
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| h).trim_start_matches('[');
    }
    host.split(':').next().unwrap_or("")
}

/// Replaces the userinfo of every `scheme://userinfo@host` in `text` with `***`.
///
/// Applied to git's stderr too: git usually strips credentials from URLs it prints, but
/// "usually" is not good enough for a message that ends up in a Kubernetes status.
pub(crate) fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail.find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"').unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str("***");
                rest = &tail[userinfo_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_supported_urls_and_normalizes_them() {
        let u = parse(" https://User:Secret@Example.COM/team/app.git/ ", false).unwrap();
        assert_eq!(u.raw, "https://User:Secret@Example.COM/team/app.git/");
        assert_eq!(u.display, "https://***@example.com/team/app.git");
        assert_eq!(u.normalized, "https://example.com/team/app.git");
        assert_eq!(parse("https://example.com/team/app.git", false).unwrap().normalized, u.normalized);
        assert_eq!(parse("ssh://git@host:2222/x.git", false).unwrap().transport, Transport::Ssh);
        let ssh = parse("ssh://git:pw@host/x.git", false).unwrap();
        assert_eq!(
            (ssh.display.as_str(), ssh.normalized.as_str()),
            ("ssh://git:***@host/x.git", "ssh://git@host/x.git")
        );
        let scp = parse("git@GitHub.com:team/app.git", false).unwrap();
        assert_eq!((scp.transport, scp.normalized.as_str()), (Transport::Ssh, "git@github.com:team/app.git"));
        assert_eq!(parse("file:///srv/repo.git", true).unwrap().transport, Transport::File);
    }

    #[test]
    fn refuses_dangerous_or_unknown_urls() {
        for url in [
            "ext::sh -c touch% /tmp/pwned",
            "ext::sh",
            "fd::3",
            "--upload-pack=touch /tmp/x",
            "ftp://host/repo",
            "/srv/repo.git",
            "host:path",
            "http:///nohost",
            "",
            "https://host/a b",
            "git@host:-oProxyCommand=x",
        ] {
            assert!(matches!(parse(url, true), Err(SourceError::UnsupportedUrl { .. })), "{url}");
        }
        assert!(matches!(parse("file:///srv/r", false), Err(SourceError::FileSourcesDisabled { .. })));
    }

    #[test]
    fn redacts_userinfo_everywhere() {
        let text = "fatal: unable to access 'https://bob:hunter2@host/r.git/': 401\nhttp://tok@h x";
        let redacted = redact_text(text);
        assert!(!redacted.contains("hunter2") && !redacted.contains("tok@"), "{redacted}");
        assert!(redacted.contains("https://***@host/r.git/"), "{redacted}");
        assert_eq!(redact_text("see https://host/x"), "see https://host/x");
        assert!(
            matches!(parse("ftp://u:pw@h/r", false), Err(SourceError::UnsupportedUrl { url }) if !url.contains("pw"))
        );
    }
}
