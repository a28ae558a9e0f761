//! Git source: resolve a reference on the remote, fetch it into a shared bare-repository cache, read manifests from it.
//!
//! Why the git CLI rather than a Rust implementation: it speaks every transport, auth scheme and
//! server quirk users will meet, is what everyone debugs with, and its cost is a few
//! milliseconds of process start next to network round trips (see `benches/git_source.rs`).
//! The cache is shared by all applications: one bare repository per normalized URL, fetched only
//! when a revision's commit is missing, so many applications on one repository fetch once.

mod cache;
mod error;
mod evict;
mod git;
mod guard;
mod refs;
mod store;
mod tree;
pub mod url;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::egress::EgressPolicy;

pub use cache::GitCache;

/// Fuzz entry point: parsing and redacting a repository URL must never panic.
pub fn fuzz_url(text: &str) {
    let _ = url::parse(text, true);
    let _ = url::parse(text, false);
    let _ = url::redact_text(text);
}
pub use error::SourceError;
pub(crate) use error::shorten;
pub(crate) use git::kill_process_group;
pub use tree::RepoFile;
pub(crate) use tree::normalize_path;

/// What to deploy from a repository: exactly one kind of reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GitReference {
    /// Follow the head of this branch.
    Branch(String),
    /// This tag (lightweight or annotated).
    Tag(String),
    /// This commit: 40 hex digits, or an abbreviation of at least 7 that is expanded on resolve.
    Commit(String),
    /// The newest tag (`v1.2.3` or `1.2.3`) matching this semver range, e.g. `>=1.2.0 <2.0.0`.
    Semver(String),
}

impl fmt::Display for GitReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitReference::Branch(name) => write!(f, "branch {name}"),
            GitReference::Tag(name) => write!(f, "tag {name}"),
            GitReference::Commit(sha) => write!(f, "commit {sha}"),
            GitReference::Semver(range) => write!(f, "semver range {range}"),
        }
    }
}

/// Credentials from `spec.source.secretRef`. `Debug` never shows secrets.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Credentials {
    /// HTTP(S) basic auth, sent as an `Authorization` header.
    Basic { username: String, password: String },
    /// HTTP(S) bearer token, sent as an `Authorization` header.
    Bearer(String),
    /// SSH private key (OpenSSH format) and the `known_hosts` lines the server must match.
    Ssh { identity: String, known_hosts: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &"***").finish()
            }
            Credentials::Bearer(_) => f.debug_tuple("Bearer").field(&"***").finish(),
            Credentials::Ssh { known_hosts, .. } => {
                f.debug_struct("Ssh").field("identity", &"***").field("known_hosts", known_hosts).finish()
            }
        }
    }
}

/// A repository, a reference in it, and how to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub url: String,
    pub reference: GitReference,
    pub credentials: Option<Credentials>,
}

/// A resolved reference: the commit and its Flux-style name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision {
    /// `main@sha1:<sha>` for branches, `v1.2.0@sha1:<sha>` for tags (the commit, annotated tags
    /// peeled), `sha1:<sha>` for commits: what status fields and events show.
    pub name: String,
    /// Full lower-case SHA-1 of the commit.
    pub sha: String,
}

impl Revision {
    /// A revision of a branch or tag named `reference`.
    pub fn of_ref(reference: &str, sha: &str) -> Revision {
        Revision { name: format!("{reference}@sha1:{sha}"), sha: sha.to_owned() }
    }

    /// A revision that names only its commit.
    pub fn of_commit(sha: &str) -> Revision {
        Revision { name: format!("sha1:{sha}"), sha: sha.to_owned() }
    }

    /// The revision a name of [`Revision::of_ref`] or [`Revision::of_commit`] stands for (a
    /// deployment record keeps only the name); `None` unless it ends in a full SHA-1.
    pub fn from_name(name: &str) -> Option<Revision> {
        let (_, sha) = name.rsplit_once("sha1:")?;
        let full = sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        full.then(|| Revision { name: name.to_owned(), sha: sha.to_owned() })
    }

    /// The branch or tag part of the name (`v1.2.0` in `v1.2.0@sha1:…`), if any.
    pub fn reference(&self) -> Option<&str> {
        self.name.split_once("@sha1:").map(|(reference, _)| reference).filter(|r| !r.is_empty())
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Cache behaviour that the operator's flags decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// Allow `file://` repositories (`--allow-file-sources`): for tests and demos, since a
    /// file URL reads whatever the operator's file system holds.
    pub allow_file_sources: bool,
    /// Upper bound for one git command; the command and its helpers are killed after it.
    pub command_timeout: Duration,
    /// Upper bound for the bytes `read_files` reads in one call, so a huge directory cannot
    /// exhaust the operator's memory.
    pub max_read_bytes: u64,
    /// Which addresses git may connect to (`--git-egress-allow`, `--git-egress-deny-private`):
    /// by default everything but loopback, link-local, cloud metadata and reserved addresses.
    pub egress: EgressPolicy,
    /// Host names answered from this table instead of DNS, like `/etc/hosts` (for tests, which
    /// cannot change DNS); the guard checks these addresses like resolved ones.
    pub static_hosts: BTreeMap<String, Vec<IpAddr>>,
    /// Bound for the bare repositories of the cache (`--cache-max-bytes`; 0: none): after a
    /// fetch, least recently used ones not in use are deleted until the rest fit.
    pub max_bytes: u64,
}

/// `--cache-max-bytes` unless set: 2 GiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 2 << 30;

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            allow_file_sources: false,
            command_timeout: Duration::from_secs(120),
            max_read_bytes: 64 << 20,
            egress: EgressPolicy::for_git(Vec::new(), false),
            static_hosts: BTreeMap::new(),
            max_bytes: DEFAULT_CACHE_MAX_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_secrets() {
        let all = [
            Credentials::Basic { username: "bob".into(), password: "hunter2".into() },
            Credentials::Bearer("hunter2".into()),
            Credentials::Ssh { identity: "hunter2".into(), known_hosts: "host key".into() },
        ];
        for credentials in all {
            let spec = SourceSpec {
                url: "u".into(),
                reference: GitReference::Tag("t".into()),
                credentials: Some(credentials),
            };
            assert!(!format!("{spec:?}").contains("hunter2"), "{spec:?}");
        }
    }

    #[test]
    fn revision_names() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(Revision::of_ref("main", sha).name, format!("main@sha1:{sha}"));
        assert_eq!(Revision::of_ref("v1.2.0", sha).reference(), Some("v1.2.0"));
        assert_eq!(Revision::of_commit(sha).to_string(), format!("sha1:{sha}"));
        assert_eq!(Revision::of_commit(sha).reference(), None);
    }
}
