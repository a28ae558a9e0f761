//! Compares a GitOpsApplication's repository URL with the URLs a push payload offers, so
//! `https://`, `ssh://` and scp-like `git@host:owner/repo.git` spellings of one repository
//! all match.

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
