//! The Git egress guard and the cache bound against real servers (no cluster): refused
//! addresses are never contacted, git connects to the address that was checked (HTTP and ssh),
//! and the least recently used repository is evicted and fetched again when needed.

use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener};
use std::time::Duration;

use tugboat::egress::{Blocked, EgressPolicy};
use tugboat::source::{CacheOptions, Credentials, GitCache, GitReference, Revision, SourceError, SourceSpec};

mod support;

use support::git_repo::{TempDir, Workdir, init_bare};
use support::git_server::{GitServer, loopback_cache_options};
use support::ssh_server::SshServer;

fn branch_of(url: String) -> SourceSpec {
    SourceSpec { url, reference: GitReference::Branch("main".into()), credentials: None }
}

/// A name no DNS knows, mapped to `address` for tugboat only: if git can reach the server by
/// it, git used the address the guard checked, not a lookup of its own.
fn pinned_name(address: &str, allow_loopback: bool) -> CacheOptions {
    let address: IpAddr = address.parse().expect("ip");
    let allow = if allow_loopback { vec!["127.0.0.0/8".parse().expect("cidr")] } else { Vec::new() };
    CacheOptions {
        egress: EgressPolicy::for_git(allow, false),
        static_hosts: BTreeMap::from([("git.test".to_owned(), vec![address])]),
        ..CacheOptions::default()
    }
}

#[tokio::test]
async fn refused_addresses_get_a_clear_error_and_are_never_contacted() {
    // A listener that counts as contacted if anyone connects: `localhost` resolves to it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = TempDir::new("tugboat-guard").unwrap();
    let cache = GitCache::new(dir.path().join("cache"), CacheOptions::default());

    let spec = branch_of(format!("http://localhost:{port}/team/app.git"));
    let err = cache.resolve(&spec).await.unwrap_err();
    let SourceError::EgressRefused { host, address, blocked, .. } = &err else { panic!("{err}") };
    assert_eq!((host.as_str(), *blocked), ("localhost", Blocked::Loopback), "{err}");
    assert!(address.is_loopback() && err.to_string().contains(&address.to_string()), "{err}");
    assert_eq!(err.reason().as_str(), "EgressRefused");
    assert!(!err.is_transient(), "a refusal needs a change, not a retry");
    let revision = Revision::of_ref("main", "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(cache.ensure(&spec, &revision).await.unwrap_err().reason().as_str(), "EgressRefused");

    // Cloud metadata in every spelling and transport; a private range once it is denied.
    let cases = [
        ("http://169.254.169.254/latest/meta-data.git", "link-local (cloud metadata)"),
        ("https://[fe80::1]/x.git", "link-local (cloud metadata)"),
        ("ssh://git@169.254.169.254/x.git", "link-local (cloud metadata)"),
        ("git@169.254.169.254:team/x.git", "link-local (cloud metadata)"),
        ("http://[fd00:ec2::254]/x.git", "a cloud metadata endpoint"),
        ("http://[::ffff:169.254.169.254]/x.git", "link-local (cloud metadata)"),
        ("http://0.0.0.0:8080/x.git", "unspecified"),
    ];
    for (url, why) in cases {
        let err = cache.resolve(&branch_of(url.to_owned())).await.unwrap_err();
        assert_eq!(err.reason().as_str(), "EgressRefused", "{url}: {err}");
        assert!(err.to_string().contains(why) && err.to_string().contains("--git-egress-allow"), "{err}");
    }
    let strict = GitCache::new(
        dir.path().join("strict"),
        CacheOptions { egress: EgressPolicy::for_git(Vec::new(), true), ..CacheOptions::default() },
    );
    let err = strict.resolve(&branch_of("https://10.20.30.40/team/app.git".into())).await.unwrap_err();
    assert!(err.to_string().contains("private") && err.to_string().contains("--git-egress-deny-private"), "{err}");

    assert_eq!(cache.fetch_count() + strict.fetch_count(), 0);
    assert!(listener.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "git connected");
}

#[tokio::test]
async fn http_git_connects_to_the_checked_address() {
    let root = TempDir::new("tugboat-guard-root").unwrap();
    init_bare(root.path(), "team/app.git").unwrap();
    let server = GitServer::start(root.path(), None).unwrap();
    let writer = Workdir::clone_from(&server.url("team/app.git")).unwrap();
    writer.write("deploy/a.yaml", "a: 1\n").unwrap();
    writer.commit("one").unwrap();
    writer.push().unwrap();
    let url = server.url("team/app.git").replace("127.0.0.1", "git.test");
    let dir = TempDir::new("tugboat-guard-cache").unwrap();

    let cache = GitCache::new(dir.path().join("ok"), pinned_name("127.0.0.1", true));
    let spec = branch_of(url.clone());
    let revision = cache.resolve(&spec).await.unwrap();
    cache.ensure(&spec, &revision).await.unwrap();
    assert_eq!(cache.read_files(&spec, &revision, "deploy").await.unwrap()[0].content, "a: 1\n");
    assert_eq!(server.fetch_count("team/app.git"), 1);

    // What the name stands for is checked, not the name: the same name for a loopback address
    // without the allow, or for the metadata address, is refused before git starts.
    for (address, allow) in [("127.0.0.1", false), ("169.254.169.254", true)] {
        let refused = GitCache::new(dir.path().join(address), pinned_name(address, allow));
        let err = refused.resolve(&spec).await.unwrap_err();
        assert!(matches!(&err, SourceError::EgressRefused { host, .. } if host == "git.test"), "{err}");
    }
}

#[tokio::test]
async fn ssh_git_connects_to_the_checked_address_and_checks_the_host_key_under_the_name() {
    let Some(server) = SshServer::start() else { return };
    let root = TempDir::new("tugboat-guard-ssh").unwrap();
    let bare = init_bare(root.path(), "team/app.git").unwrap();
    let writer = Workdir::clone_from(bare.to_str().unwrap()).unwrap();
    writer.write("a.yaml", "a: 1\n").unwrap();
    writer.commit("one").unwrap();
    writer.push().unwrap();
    let dir = TempDir::new("tugboat-guard-ssh-cache").unwrap();
    let cache = GitCache::new(dir.path().join("cache"), pinned_name("127.0.0.1", true));
    let spec = |known_hosts: String| SourceSpec {
        url: server.url(&bare).replace("@127.0.0.1:", "@git.test:"),
        reference: GitReference::Branch("main".into()),
        credentials: Some(Credentials::Ssh { identity: server.client_identity(), known_hosts }),
    };

    let by_name = spec(server.known_hosts().replace("[127.0.0.1]", "[git.test]"));
    let revision = cache.resolve(&by_name).await.unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", server.log()));
    cache.ensure(&by_name, &revision).await.unwrap();
    assert_eq!(cache.read_files(&by_name, &revision, "").await.unwrap()[0].content, "a: 1\n");

    // A key known only for the address does not vouch for the name the application wrote.
    let err = cache.resolve(&spec(server.known_hosts())).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "HostKeyVerificationFailed", "{err}");
}

/// The URLs of the repositories in the cache (each keeps its URL in a `url` file).
fn cached(cache: &GitCache) -> Vec<String> {
    let mut urls: Vec<String> = std::fs::read_dir(cache.dir())
        .unwrap()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("url")).ok())
        .map(|url| url.trim().rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    urls.sort();
    urls
}

/// Bytes of the files below `path`, as the cache measures them.
fn size_of(path: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() { size_of(&entry.path()) } else { meta.len() };
    }
    total
}

#[tokio::test]
async fn the_least_recently_used_repository_is_evicted_and_comes_back() {
    let root = TempDir::new("tugboat-evict-root").unwrap();
    let server = GitServer::start(root.path(), None).unwrap();
    for name in ["a", "b", "c"] {
        init_bare(root.path(), &format!("{name}.git")).unwrap();
        let writer = Workdir::clone_from(&server.url(&format!("{name}.git"))).unwrap();
        writer.write("cm.yaml", format!("name: {name}\n")).unwrap();
        writer.commit(name).unwrap();
        writer.push().unwrap();
    }
    let spec = |name: &str| branch_of(server.url(&format!("{name}.git")));
    let dir = TempDir::new("tugboat-evict-cache").unwrap();

    // One repository's size, from an unbounded cache: the bound holds two and a half of them.
    let probe = GitCache::new(dir.path().join("probe"), CacheOptions { max_bytes: 0, ..loopback_cache_options() });
    let revision = probe.resolve(&spec("a")).await.unwrap();
    probe.ensure(&spec("a"), &revision).await.unwrap();
    let one = size_of(probe.dir());
    let options = CacheOptions { max_bytes: one * 5 / 2, ..loopback_cache_options() };
    let cache = GitCache::new(dir.path().join("bounded"), options);

    let mut revisions = std::collections::HashMap::new();
    for name in ["a", "b"] {
        let revision = cache.resolve(&spec(name)).await.unwrap();
        cache.ensure(&spec(name), &revision).await.unwrap();
        revisions.insert(name, revision);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reading a makes it more recent than b.
    cache.read_files(&spec("a"), &revisions["a"], "").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(cached(&cache), ["a.git", "b.git"]);

    let revision = cache.resolve(&spec("c")).await.unwrap();
    cache.ensure(&spec("c"), &revision).await.unwrap();
    assert_eq!(cached(&cache), ["a.git", "c.git"], "b was the least recently used");
    assert!(size_of(cache.dir()) <= one * 5 / 2);
    assert_eq!(cache.cached_revision(&spec("b")).await, None);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // b is fetched again when needed; now a is the least recently used.
    let fetches = cache.fetch_count();
    let files = cache.read_files(&spec("b"), &revisions["b"], "").await.unwrap();
    assert_eq!(files[0].content, "name: b\n");
    assert_eq!(cache.fetch_count(), fetches + 1);
    assert_eq!(cached(&cache), ["b.git", "c.git"]);

    // A bound smaller than one repository keeps the one just fetched: it is in use.
    let tiny = GitCache::new(dir.path().join("tiny"), CacheOptions { max_bytes: 1, ..loopback_cache_options() });
    for name in ["a", "b"] {
        let revision = tiny.resolve(&spec(name)).await.unwrap();
        tiny.read_files(&spec(name), &revision, "").await.unwrap();
    }
    assert_eq!(cached(&tiny), ["b.git"]);
}
