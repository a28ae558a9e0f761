//! Repository URLs, in one place: which transports git may use, the cache key (one bare
//! repository per transport and user), credential redaction, and the identity of a repository
//! (`host/owner/repo`), which matches the spellings push payloads use.

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
    /// The host git connects to, lower-cased, IPv6 brackets removed (empty for `file://`).
    pub host: String,
    /// The port, the transport's default filled in (0 for `file://`).
    pub port: u16,
    /// Where `host` is written in `raw`, so the Git egress guard can put a checked address there.
    host_span: std::ops::Range<usize>,
}

impl RepoUrl {
    /// `raw` with the host name replaced by `address` (in brackets if IPv6): what git connects
    /// to, while everything else of the URL, credentials included, stays as written.
    pub fn raw_at(&self, address: std::net::IpAddr) -> String {
        let (before, after) = (&self.raw[..self.host_span.start], &self.raw[self.host_span.end..]);
        let bracketed = before.ends_with('[');
        match address {
            std::net::IpAddr::V6(v6) if !bracketed => format!("{before}[{v6}]{after}"),
            address => format!("{before}{address}{after}"),
        }
    }
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
        let no_host = host_of_authority(authority).is_none_or(|h| h.trim_matches(['[', ']']).is_empty());
        if transport != Transport::File && no_host {
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
        let (host, port, host_span) = match transport {
            Transport::File => (String::new(), 0, 0..0),
            _ => {
                let start = scheme.len() + 3 + userinfo.map_or(0, |u| u.len() + 1);
                let default = if scheme == "https" {
                    443
                } else if scheme == "http" {
                    80
                } else {
                    22
                };
                host_and_port(&host, start, default).ok_or_else(unsupported)?
            }
        };
        return Ok(RepoUrl { raw: raw.to_owned(), display, normalized, transport, host, port, host_span });
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
    Ok(RepoUrl {
        raw: raw.to_owned(),
        display: normalized.clone(),
        normalized,
        transport: Transport::Ssh,
        host: host.to_ascii_lowercase(),
        port: 22,
        host_span: user.len() + 1..login.len(),
    })
}

/// Splits `host[:port]` or `[v6][:port]` (an authority without userinfo, at byte `start` of
/// the URL): the host without brackets, the port (`default` if none), the host's span.
/// `None` if the port is not a number from 1 to 65535 or something follows the brackets.
fn host_and_port(host_port: &str, start: usize, default: u16) -> Option<(String, u16, std::ops::Range<usize>)> {
    let (host, port, offset) = match host_port.strip_prefix('[') {
        Some(inner) => {
            let (host, after) = inner.split_once(']')?;
            let port = if after.is_empty() { "" } else { after.strip_prefix(':')? };
            (host, port, 1)
        }
        None => {
            let (host, port) = host_port.split_once(':').unwrap_or((host_port, ""));
            (host, port, 0)
        }
    };
    let port = if port.is_empty() { default } else { port.parse().ok().filter(|p| *p != 0)? };
    let begin = start + offset;
    Some((host.to_ascii_lowercase(), port, begin..begin + host.len()))
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

// The identity of a repository: what push payloads are matched on.

/// Whether `app_repo_url` names the same repository as any of `payload_urls`.
///
/// Both sides are reduced to `host/path` by [`normalize_repo_url`]; an unparseable URL
/// matches nothing, so a bad spec never triggers on every push.
pub fn repo_matches(app_repo_url: &str, payload_urls: &[String]) -> bool {
    let Some(app) = normalize_repo_url(app_repo_url) else { return false };
    payload_urls.iter().any(|url| normalize_repo_url(url).as_deref() == Some(app.as_str()))
}

/// `host/owner/repo`, lowercased, without scheme, user, port, query, trailing `/` or `.git`.
///
/// The port is dropped because SSH and HTTPS reach one repository on different ports
/// (`ssh://git@host:7999/…` vs `https://host/…`). The path is lowercased too, not only the
/// host: GitHub, GitLab, Gitea and Bitbucket all resolve owner and repository names
/// case-insensitively, and a spec typed as `Org/Repo` must match the payload's `org/repo`.
pub fn normalize_repo_url(url: &str) -> Option<String> {
    let url = url.trim();
    let (authority, path) = match url.split_once("://") {
        Some((scheme, rest)) => {
            if !matches!(scheme.to_ascii_lowercase().as_str(), "https" | "http" | "ssh" | "git" | "git+ssh" | "ssh+git")
            {
                return None;
            }
            match rest.find('/') {
                Some(slash) => (rest.get(..slash)?, rest.get(slash..)?),
                None => (rest, ""),
            }
        }
        // scp-like: `[user@]host:path`, where the part before ':' has no '/'.
        None => {
            let (authority, path) = url.split_once(':')?;
            if authority.contains('/') {
                return None;
            }
            (authority, path)
        }
    };
    let host = host_of_authority(authority)?;
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path).trim_end_matches('/');
    if path.is_empty() {
        return None;
    }
    Some(format!("{}/{}", host.to_ascii_lowercase(), path.to_lowercase()))
}

/// The host of a URL (scheme or scp-like), as written.
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url.trim().split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    host_of_authority(authority)
}

/// Strips `user[:password]@` and `:port` from an authority (IPv6 brackets kept whole).
fn host_of_authority(authority: &str) -> Option<&str> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next()?
    } else {
        host_port.split(':').next()?
    };
    if host.is_empty() { None } else { Some(host) }
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
    fn knows_host_and_port_and_can_point_git_at_an_address() {
        let v4: std::net::IpAddr = "10.0.0.7".parse().unwrap();
        let v6: std::net::IpAddr = "fd00::7".parse().unwrap();
        let cases = [
            ("https://tok:x@Git.Example.com/a.git", "git.example.com", 443, "https://tok:x@10.0.0.7/a.git"),
            ("http://git.example.com:8080/a.git", "git.example.com", 8080, "http://10.0.0.7:8080/a.git"),
            ("ssh://git@git.example.com/a.git", "git.example.com", 22, "ssh://git@10.0.0.7/a.git"),
            ("ssh://git:pw@git.example.com:2222/a.git", "git.example.com", 2222, "ssh://git:pw@10.0.0.7:2222/a.git"),
            ("git@GitHub.com:team/a.git", "github.com", 22, "git@10.0.0.7:team/a.git"),
        ];
        for (url, host, port, at) in cases {
            let parsed = parse(url, false).unwrap();
            assert_eq!((parsed.host.as_str(), parsed.port, parsed.raw_at(v4).as_str()), (host, port, at), "{url}");
        }
        let literal = parse("http://[FD00::1]:3000/a.git", false).unwrap();
        assert_eq!((literal.host.as_str(), literal.port), ("fd00::1", 3000));
        assert_eq!(parse("git@host:team/a.git", false).unwrap().raw_at(v6), "git@[fd00::7]:team/a.git");
        assert_eq!(parse("ssh://git@host:2222/a.git", false).unwrap().raw_at(v6), "ssh://git@[fd00::7]:2222/a.git");
        for url in ["http://host:http/a.git", "http://host:0/a", "http://host:70000/a", "ssh://[::1]x/a"] {
            assert!(matches!(parse(url, false), Err(SourceError::UnsupportedUrl { .. })), "{url}");
        }
        let file = parse("file:///srv/a.git", true).unwrap();
        assert_eq!((file.host.as_str(), file.port), ("", 0));
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

#[cfg(test)]
mod identity_tests {
    use super::*;

    #[test]
    fn matches_equivalent_spellings() {
        let payload = vec!["https://github.com/Octo/Hello-World.git".to_owned()];
        let table = [
            ("https://github.com/octo/hello-world", true),
            ("https://GitHub.com/Octo/Hello-World/", true),
            ("http://github.com/octo/hello-world.git", true),
            ("ssh://git@github.com/octo/hello-world.git", true),
            ("ssh://git@github.com:22/octo/hello-world.git", true),
            ("git@github.com:octo/hello-world.git", true),
            ("git@github.com:octo/hello-world", true),
            ("https://user:token@github.com/octo/hello-world.git", true),
            ("https://github.com/octo/hello-world.git?ref=x", true),
            ("https://github.com/octo/hello", false),
            ("https://github.com/octo/hello-world-2", false),
            ("https://gitlab.com/octo/hello-world", false),
            ("https://github.com/other/hello-world", false),
            ("https://github.com", false),
            ("", false),
            ("not a url", false),
            ("file:///srv/octo/hello-world.git", false),
        ];
        for (app, expected) in table {
            assert_eq!(repo_matches(app, &payload), expected, "{app}");
        }
    }

    #[test]
    fn any_payload_url_may_match() {
        let payload =
            vec!["https://gitlab.example.com/mike/diaspora".to_owned(), "git@example.com:mike/diaspora.git".to_owned()];
        assert!(repo_matches("ssh://git@example.com/mike/diaspora.git", &payload));
        assert!(!repo_matches("https://example.com/mike/other.git", &payload));
        assert!(!repo_matches("https://example.com/mike/diaspora", &[]));
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        assert_eq!(normalize_repo_url("ssh://git@[::1]:2222/a/b.git").as_deref(), Some("[::1]/a/b"));
        assert_eq!(host_of("https://bitbucket.org/team/repo"), Some("bitbucket.org"));
    }
}
