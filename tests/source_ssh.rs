//! The Git source over SSH against a real OpenSSH server: resolve, ensure (fetch counting), read_files, host key and key errors.
//!
//! Why: `Credentials::Ssh` becomes a key file, a `known_hosts` file and a `GIT_SSH_COMMAND`;
//! only a genuine sshd shows that they are used, that a wrong host key is refused before any
//! authentication, and that the resulting errors are classified and never echo the key.

use tugboat::render::ManifestFile;
use tugboat::source::{Credentials, GitCache, GitReference, Revision, SourceError, SourceSpec};

mod support;

use support::git_repo::{TempDir, Workdir, init_bare};
use support::git_server::loopback_cache_options;
use support::ssh_server::{SshServer, keypair, known_hosts_line};

const REPO: &str = "team/app.git";

/// An sshd, a bare repository with one pushed commit, and an empty cache.
struct Fixture {
    server: SshServer,
    root: TempDir,
    cache_dir: TempDir,
    cache: GitCache,
    /// The commit on `main`.
    sha: String,
}

impl Fixture {
    /// `None` when sshd is not installed and not required (the test is skipped, loudly).
    fn new() -> Option<Fixture> {
        let server = SshServer::start()?;
        let root = TempDir::new("tugboat-ssh-root").unwrap();
        let bare = init_bare(root.path(), REPO).unwrap();
        // Commits reach the bare repository over a local path: the SSH side is what is tested.
        let writer = Workdir::clone_from(bare.to_str().unwrap()).unwrap();
        writer.write("deploy/app.yaml", "kind: ConfigMap\nmetadata: {name: app}\n").unwrap();
        writer.write("deploy/nested/svc.yaml", "kind: Service\nmetadata: {name: svc}\n").unwrap();
        writer.write("README.md", "not a manifest\n").unwrap();
        let sha = writer.commit("first").unwrap();
        writer.push().unwrap();
        let cache_dir = TempDir::new("tugboat-ssh-cache").unwrap();
        let cache = GitCache::new(cache_dir.path().join("cache"), loopback_cache_options());
        Some(Fixture { server, root, cache_dir, cache, sha })
    }

    fn spec(&self, identity: String, known_hosts: String) -> SourceSpec {
        SourceSpec {
            url: self.server.url(&self.root.path().join(REPO)),
            reference: GitReference::Branch("main".into()),
            credentials: Some(Credentials::Ssh { identity, known_hosts }),
        }
    }

    /// The spec a correct Secret gives: the server's client key and host key.
    fn good_spec(&self) -> SourceSpec {
        self.spec(self.server.client_identity(), self.server.known_hosts())
    }

    /// A freshly generated key pair nobody trusts: (private key, public key line).
    fn stranger_key(&self, name: &str) -> (String, String) {
        keypair(self.cache_dir.path(), name).unwrap()
    }
}

fn names(files: &[ManifestFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

/// Neither the message nor the debug form may contain any line of the private key.
fn assert_no_key(err: &SourceError, identity: &str) {
    let shown = format!("{err} {err:?}");
    for line in identity.lines().filter(|l| !l.starts_with("-----") && !l.trim().is_empty()) {
        assert!(!shown.contains(line), "error shows the private key: {shown}");
    }
}

#[tokio::test]
async fn resolves_fetches_once_and_reads_over_ssh() {
    let Some(f) = Fixture::new() else { return };
    let spec = f.good_spec();

    let revision = f.cache.resolve(&spec).await.unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", f.server.log()));
    assert_eq!(revision, Revision { name: format!("main@sha1:{}", f.sha), sha: f.sha.clone() });
    assert_eq!(f.cache.fetch_count(), 0, "resolving a branch only lists refs");

    f.cache.ensure(&spec, &revision).await.unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", f.server.log()));
    assert_eq!(f.cache.fetch_count(), 1);

    let files = f.cache.read_files(&spec, &revision, "deploy").await.unwrap();
    assert_eq!(names(&files), ["app.yaml", "nested/svc.yaml"], "paths are relative to the manifest root");
    assert!(files[0].content.contains("name: app"), "{:?}", files[0].content);

    f.cache.ensure(&spec, &revision).await.unwrap();
    assert_eq!(f.cache.fetch_count(), 1, "a cached commit is not fetched again");
    assert_eq!(f.cache.cached_revision(&spec).await, Some(revision));

    // The key files exist only while git runs: nothing is left in the cache directory.
    let leftovers: Vec<_> = std::fs::read_dir(f.cache.dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".ssh-"))
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "ssh key directories left behind: {leftovers:?}");
}

#[tokio::test]
async fn an_unknown_host_key_is_refused() {
    let Some(f) = Fixture::new() else { return };
    let (_, other_host_key) = f.stranger_key("other_host");
    let identity = f.server.client_identity();
    let spec = f.spec(identity.clone(), known_hosts_line(f.server.port(), &other_host_key));
    let url = spec.url.clone();

    let err = f.cache.resolve(&spec).await.unwrap_err();
    assert_eq!(err, SourceError::HostKeyVerificationFailed { url: url.clone() }, "sshd log:\n{}", f.server.log());
    assert_no_key(&err, &identity);

    // Fetching a known commit is refused the same way, and nothing lands in the cache.
    let revision = Revision::of_ref("main", &f.sha);
    let err = f.cache.ensure(&spec, &revision).await.unwrap_err();
    assert_eq!(err, SourceError::HostKeyVerificationFailed { url });
    assert_no_key(&err, &identity);
    assert_eq!(f.cache.cached_revision(&spec).await, None);

    // No known_hosts entry at all is refused too (StrictHostKeyChecking=yes, never trust on first use).
    let spec = f.spec(identity.clone(), String::new());
    let err = f.cache.resolve(&spec).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "HostKeyVerificationFailed", "{err}");
    assert_no_key(&err, &identity);
}

#[tokio::test]
async fn a_wrong_client_key_fails_authentication() {
    let Some(f) = Fixture::new() else { return };
    let (wrong_identity, _) = f.stranger_key("other_client");
    let spec = f.spec(wrong_identity.clone(), f.server.known_hosts());
    let url = spec.url.clone();

    let err = f.cache.resolve(&spec).await.unwrap_err();
    assert_eq!(err, SourceError::AuthenticationFailed { url: url.clone() }, "sshd log:\n{}", f.server.log());
    assert_no_key(&err, &wrong_identity);

    let err = f.cache.ensure(&spec, &Revision::of_ref("main", &f.sha)).await.unwrap_err();
    assert_eq!(err, SourceError::AuthenticationFailed { url });
    assert_no_key(&err, &wrong_identity);
    assert!(!err.is_transient(), "a wrong key needs a new Secret, not a retry");
}
