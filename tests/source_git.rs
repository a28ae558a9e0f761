//! The Git source against the real smart-HTTP test server: resolve, ensure (fetch counting), read_files, errors.

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use tugboat::render::ManifestFile;
use tugboat::source::{CacheOptions, Credentials, GitCache, GitReference, Revision, SourceError, SourceSpec};

mod support;

use support::git_repo::{TempDir, Workdir, init_bare};
use support::git_server::{GitServer, loopback_cache_options};

const REPO: &str = "team/app.git";
const USER: &str = "tugboat";
const PASS: &str = "s3cret";

/// A server with `team/app.git`, a writer clone of it and an empty cache.
struct Fixture {
    root: TempDir,
    server: GitServer,
    writer: Workdir,
    cache_dir: TempDir,
    cache: GitCache,
}

impl Fixture {
    fn new(auth: bool) -> Fixture {
        Fixture::with_options(auth, loopback_cache_options())
    }

    fn with_options(auth: bool, options: CacheOptions) -> Fixture {
        let root = TempDir::new("tugboat-src-root").unwrap();
        init_bare(root.path(), REPO).unwrap();
        let credentials = auth.then(|| (USER.to_owned(), PASS.to_owned()));
        let server = GitServer::start(root.path(), credentials).unwrap();
        let writer = Workdir::clone_from(&server.url_with_credentials(REPO)).unwrap();
        let cache_dir = TempDir::new("tugboat-src-cache").unwrap();
        let cache = GitCache::new(cache_dir.path().join("cache"), options);
        Fixture { root, server, writer, cache_dir, cache }
    }

    fn spec(&self, reference: GitReference) -> SourceSpec {
        SourceSpec { url: self.server.url(REPO), reference, credentials: None }
    }

    fn basic(&self, reference: GitReference, password: &str) -> SourceSpec {
        let credentials = Credentials::Basic { username: USER.into(), password: password.into() };
        SourceSpec { credentials: Some(credentials), ..self.spec(reference) }
    }

    /// Writes files, commits and pushes; returns the commit.
    fn push(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            self.writer.write(path, content).unwrap();
        }
        let sha = self.writer.commit(message).unwrap();
        self.writer.push().unwrap();
        sha
    }
}

fn branch(name: &str) -> GitReference {
    GitReference::Branch(name.into())
}

fn names(files: &[ManifestFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

#[tokio::test]
async fn resolves_branches_tags_semver_and_commits() {
    let f = Fixture::new(false);
    let c1 = f.push(&[("a.yaml", "a: 1\n")], "one");
    f.writer.tag("v1.0.0").unwrap();
    let c2 = f.push(&[("a.yaml", "a: 2\n")], "two");
    f.writer.annotated_tag("v1.1.0", "annotated").unwrap();
    let c3 = f.push(&[("a.yaml", "a: 3\n")], "three");
    f.writer.annotated_tag("2.0.0", "no v prefix").unwrap();
    f.writer.tag("not-a-version").unwrap();
    f.writer.push_tags().unwrap();

    let resolve = |reference| {
        let spec = f.spec(reference);
        let cache = f.cache.clone();
        async move { cache.resolve(&spec).await }
    };
    let main = resolve(branch("main")).await.unwrap();
    assert_eq!(main, Revision { name: format!("main@sha1:{c3}"), sha: c3.clone() });
    assert_eq!(resolve(GitReference::Tag("v1.0.0".into())).await.unwrap().name, format!("v1.0.0@sha1:{c1}"));
    // Annotated tags resolve to the commit, not to the tag object.
    assert_eq!(resolve(GitReference::Tag("v1.1.0".into())).await.unwrap().sha, c2);
    let semver = resolve(GitReference::Semver(">=1.0.0 <2.0.0".into())).await.unwrap();
    assert_eq!(semver.name, format!("v1.1.0@sha1:{c2}"));
    assert_eq!(resolve(GitReference::Semver("^2".into())).await.unwrap().name, format!("2.0.0@sha1:{c3}"));
    assert_eq!(resolve(GitReference::Commit(c1.clone())).await.unwrap().name, format!("sha1:{c1}"));
    assert_eq!(f.cache.fetch_count(), 0, "resolving a branch, tag, range or full commit never fetches");
    assert_eq!(f.server.fetch_count(REPO), 0);

    // An abbreviated commit is expanded after fetching branches and tags.
    let short = resolve(GitReference::Commit(c2[..10].to_uppercase())).await.unwrap();
    assert_eq!(short, Revision { name: format!("sha1:{c2}"), sha: c2.clone() });

    let no_match = resolve(GitReference::Semver(">=3".into())).await.unwrap_err();
    assert_eq!(no_match, SourceError::NoMatchingTag { url: f.server.url(REPO), range: ">=3".into() });
    let invalid = resolve(GitReference::Semver("latest please".into())).await.unwrap_err();
    assert_eq!(invalid.reason().as_str(), "InvalidSemverRange");
    let bad_commit = resolve(GitReference::Commit("not-hex".into())).await.unwrap_err();
    assert_eq!(bad_commit.reason().as_str(), "InvalidReference");
    let injected = resolve(branch("main:refs/heads/evil")).await.unwrap_err();
    assert_eq!(injected.reason().as_str(), "InvalidReference");
}

#[tokio::test]
async fn ensure_fetches_once_and_again_only_for_a_new_commit() {
    let f = Fixture::new(false);
    let files: Vec<(String, String)> =
        (0..200).map(|i| (format!("deploy/cm-{i:03}.yaml"), format!("n: {i}\n"))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    f.push(&refs, "many files");
    let spec = f.spec(branch("main"));

    let first = f.cache.resolve(&spec).await.unwrap();
    f.cache.ensure(&spec, &first).await.unwrap();
    assert_eq!((f.cache.fetch_count(), f.server.fetch_count(REPO)), (1, 1));

    let requests = f.server.request_log().len();
    f.cache.ensure(&spec, &first).await.unwrap();
    assert_eq!((f.cache.fetch_count(), f.server.fetch_count(REPO)), (1, 1), "cached: no fetch");
    assert_eq!(f.server.request_log().len(), requests, "cached: no request at all");

    let new = f.push(&[("deploy/cm-000.yaml", "n: changed\n")], "change");
    let second = f.cache.resolve(&spec).await.unwrap();
    assert_eq!(second.sha, new);
    assert_ne!(second, first);
    f.cache.ensure(&spec, &second).await.unwrap();
    f.cache.ensure(&spec, &second).await.unwrap();
    assert_eq!((f.cache.fetch_count(), f.server.fetch_count(REPO)), (2, 2));
    let files = f.cache.read_files(&spec, &second, "deploy").await.unwrap();
    assert_eq!(files.len(), 200);
    assert_eq!(files[0], ManifestFile { path: "cm-000.yaml".into(), content: "n: changed\n".into() });
    let old = f.cache.read_files(&spec, &first, "deploy/cm-000.yaml").await.unwrap();
    assert_eq!(old, [ManifestFile { path: "cm-000.yaml".into(), content: "n: 0\n".into() }]);
    assert_eq!(f.server.fetch_count(REPO), 2, "reading old and new revisions needs no fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ensures_of_one_revision_fetch_once() {
    let f = Fixture::new(false);
    f.push(&[("a.yaml", "a: 1\n")], "one");
    // Two applications on the same repository, spelled slightly differently.
    let app1 = f.spec(branch("main"));
    let app2 = SourceSpec { url: format!("{}/", f.server.url(REPO)), ..app1.clone() };
    let revision = f.cache.resolve(&app1).await.unwrap();
    let (cache1, cache2) = (f.cache.clone(), f.cache.clone());
    let (r1, r2) = tokio::join!(cache1.ensure(&app1, &revision), cache2.ensure(&app2, &revision));
    r1.unwrap();
    r2.unwrap();
    assert_eq!(f.server.fetch_count(REPO), 1, "{:#?}", f.server.request_log());
    assert_eq!(f.cache.fetch_count(), 1);

    // Again from two spawned tasks, as two reconciles run (this also proves the futures are Send).
    f.push(&[("a.yaml", "a: 2\n")], "two");
    let next = f.cache.resolve(&app2).await.unwrap();
    let spawn = |cache: GitCache, spec: SourceSpec, revision: Revision| {
        tokio::spawn(async move { cache.ensure(&spec, &revision).await })
    };
    let t1 = spawn(cache1, app1, next.clone());
    let t2 = spawn(cache2, app2, next);
    t1.await.unwrap().unwrap();
    t2.await.unwrap().unwrap();
    assert_eq!((f.cache.fetch_count(), f.server.fetch_count(REPO)), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_resolves_shares_ls_remotes_but_never_answers_older_than_the_question() {
    let f = Fixture::new(false);
    let first = f.push(&[("a.yaml", "a: 1\n")], "one");
    let spec = f.spec(branch("main"));
    f.server.clear_log();
    // 40 applications on one repository ask at once, as after a push.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(40));
    let asks = (0..40).map(|_| {
        let (cache, spec, start) = (f.cache.clone(), spec.clone(), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            cache.resolve(&spec).await
        })
    });
    for answer in futures::future::join_all(asks).await {
        assert_eq!(answer.unwrap().unwrap().sha, first);
    }
    // Typically 2 (the first asker's, then one for everyone who asked while it ran); a
    // loaded machine can delay a task past both, so the bound leaves room for that.
    let listings = f.server.ls_remote_count(REPO);
    assert!((1..=5).contains(&listings), "40 concurrent resolves, {listings} ls-remotes");

    // A question asked after a push is never answered from a listing made before it.
    let second = f.push(&[("a.yaml", "a: 2\n")], "two");
    assert_eq!(f.cache.resolve(&spec).await.unwrap().sha, second);
}

#[tokio::test]
async fn read_files_walks_directories_sorted_and_skips_what_is_not_a_manifest() {
    let f = Fixture::new(false);
    f.push(
        &[
            ("deploy/b.yaml", "b: 1\n"),
            ("deploy/a/z.YML", "z: 1\n"),
            ("deploy/a/y.json", "{\"y\": 1}\n"),
            ("deploy/.hidden.yaml", "hidden: 1\n"),
            ("deploy/.github/ci.yaml", "hidden: 2\n"),
            ("deploy/README.md", "# not a manifest\n"),
            ("deploy/notes.txt", "no\n"),
            ("top.yaml", "top: 1\n"),
        ],
        "layout",
    );
    std::os::unix::fs::symlink("b.yaml", f.writer.path().join("deploy/link.yaml")).unwrap();
    f.writer.write("latin1.yaml", b"name: caf\xe9\n").unwrap();
    f.writer.commit("link and latin1").unwrap();
    f.writer.push().unwrap();
    let spec = f.spec(branch("main"));
    let revision = f.cache.resolve(&spec).await.unwrap();
    f.cache.ensure(&spec, &revision).await.unwrap();

    let deploy = f.cache.read_files(&spec, &revision, "deploy").await.unwrap();
    assert_eq!(names(&deploy), ["a/y.json", "a/z.YML", "b.yaml"]);
    assert_eq!(deploy[2].content, "b: 1\n");
    assert_eq!(f.cache.read_files(&spec, &revision, "./deploy/").await.unwrap(), deploy);

    let single = f.cache.read_files(&spec, &revision, "deploy/a/z.YML").await.unwrap();
    assert_eq!(single, [ManifestFile { path: "z.YML".into(), content: "z: 1\n".into() }]);

    let missing = f.cache.read_files(&spec, &revision, "nope").await.unwrap_err();
    assert_eq!(missing, SourceError::PathNotFound { path: "nope".into(), revision: revision.name.clone() });
    assert_eq!(missing.reason().as_str(), "PathNotFound");
    let escape = f.cache.read_files(&spec, &revision, "../etc").await.unwrap_err();
    assert_eq!(escape.reason().as_str(), "PathNotFound");

    // The root holds a non-UTF-8 manifest: the error names it.
    let root = f.cache.read_files(&spec, &revision, "").await.unwrap_err();
    assert_eq!(root, SourceError::NotUtf8 { path: "latin1.yaml".into(), revision: revision.name.clone() });
    assert!(root.to_string().contains("latin1.yaml"), "{root}");
    assert_eq!(f.server.fetch_count(REPO), 1);
}

#[tokio::test]
async fn read_files_caps_the_bytes_it_reads() {
    let options = CacheOptions { max_read_bytes: 1000, ..loopback_cache_options() };
    let f = Fixture::with_options(false, options);
    f.push(&[("big/a.yaml", &"x".repeat(600)), ("big/b.yaml", &"y".repeat(600)), ("small/c.yaml", "c: 1\n")], "big");
    let spec = f.spec(branch("main"));
    let revision = f.cache.resolve(&spec).await.unwrap();
    let err = f.cache.read_files(&spec, &revision, "big").await.unwrap_err();
    assert_eq!(err, SourceError::TooLarge { path: "big".into(), revision: revision.name.clone(), limit: 1000 });
    assert_eq!(f.cache.read_files(&spec, &revision, "small").await.unwrap().len(), 1);
}

#[tokio::test]
async fn credentials_are_checked_and_never_shown() {
    let f = Fixture::new(true);
    let sha = f.push(&[("a.yaml", "a: 1\n")], "one");
    let url = f.server.url(REPO);

    let wrong = f.cache.resolve(&f.basic(branch("main"), "wrong-password")).await.unwrap_err();
    assert_eq!(wrong, SourceError::AuthenticationFailed { url: url.clone() });
    assert!(!wrong.to_string().contains("wrong-password"));
    assert!(wrong.to_string().starts_with(&format!("authentication failed for {url}: check")), "{wrong}");
    assert!(!wrong.is_transient());
    let anonymous = f.cache.resolve(&f.spec(branch("main"))).await.unwrap_err();
    assert_eq!(anonymous, SourceError::AuthenticationFailed { url: url.clone() });
    // A full commit resolves without fetching, but not without access to the repository.
    let commit = f.cache.resolve(&f.spec(GitReference::Commit(sha.clone()))).await.unwrap_err();
    assert_eq!(commit.reason().as_str(), "AuthenticationFailed");

    let basic = f.basic(branch("main"), PASS);
    let revision = f.cache.resolve(&basic).await.unwrap();
    assert_eq!(revision.sha, sha);
    let bearer = SourceSpec { credentials: Some(Credentials::Bearer(PASS.into())), ..f.spec(branch("main")) };
    assert_eq!(f.cache.resolve(&bearer).await.unwrap(), revision);
    f.cache.ensure(&bearer, &revision).await.unwrap();
    assert_eq!(f.cache.read_files(&bearer, &revision, "").await.unwrap()[0].content, "a: 1\n");
    assert_eq!(f.server.fetch_count(REPO), 1);

    // Credentials embedded in the URL work, and are redacted from messages.
    let embedded = SourceSpec { url: f.server.url_with_credentials(REPO), ..f.spec(branch("nope")) };
    let err = f.cache.resolve(&embedded).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "RefNotFound");
    assert!(!err.to_string().contains(PASS), "{err}");
    // Nothing secret was written into the cache directory.
    let leaked = grep_dir(f.cache_dir.path(), PASS.as_bytes());
    assert!(leaked.is_empty(), "secret found in {leaked:?}");
}

#[tokio::test]
async fn missing_repository_branch_and_tag_are_told_apart() {
    let f = Fixture::new(false);
    f.push(&[("a.yaml", "a: 1\n")], "one");
    let missing_repo = SourceSpec { url: f.server.url("team/missing.git"), ..f.spec(branch("main")) };
    let err = f.cache.resolve(&missing_repo).await.unwrap_err();
    assert_eq!(err, SourceError::RepositoryNotFound { url: f.server.url("team/missing.git") });
    let err = f.cache.resolve(&f.spec(branch("nope"))).await.unwrap_err();
    assert_eq!(err, SourceError::RefNotFound { url: f.server.url(REPO), reference: "branch nope".into() });
    assert_eq!(err.to_string(), format!("branch nope not found in {}: check spec.source.ref", f.server.url(REPO)));
    let err = f.cache.resolve(&f.spec(GitReference::Tag("v9".into()))).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "RefNotFound");
    let unknown = "0123456789abcdef0123456789abcdef01234567";
    let spec = f.spec(GitReference::Commit(unknown.into()));
    let revision = f.cache.resolve(&spec).await.unwrap();
    let err = f.cache.ensure(&spec, &revision).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "RefNotFound", "{err}");
}

#[tokio::test]
async fn ensure_handles_commits_off_the_branch_tip_and_stale_revisions() {
    let f = Fixture::new(false);
    let c1 = f.push(&[("a.yaml", "a: 1\n")], "one");
    let spec = f.spec(branch("main"));
    let stale = f.cache.resolve(&spec).await.unwrap();
    f.push(&[("a.yaml", "a: 2\n")], "two");
    // The branch moved between resolve and ensure: fetching it still brings the old commit.
    f.cache.ensure(&spec, &stale).await.unwrap();
    assert_eq!(f.server.fetch_count(REPO), 1);
    assert_eq!(f.cache.read_files(&spec, &stale, "a.yaml").await.unwrap()[0].content, "a: 1\n");

    // A pinned commit that no ref points at any more is fetched by id, in a fresh cache.
    let other = GitCache::new(f.cache_dir.path().join("other"), loopback_cache_options());
    let pinned = f.spec(GitReference::Commit(c1.clone()));
    let revision = other.resolve(&pinned).await.unwrap();
    other.ensure(&pinned, &revision).await.unwrap();
    assert_eq!(other.read_files(&pinned, &revision, "").await.unwrap()[0].content, "a: 1\n");
    assert_eq!(other.cached_revision(&pinned).await, Some(revision));
}

#[tokio::test]
async fn cached_revision_needs_no_network() {
    let f = Fixture::new(false);
    f.push(&[("a.yaml", "a: 1\n")], "one");
    f.writer.annotated_tag("v1.0.0", "first").unwrap();
    f.writer.push_tags().unwrap();
    let main = f.spec(branch("main"));
    let semver = f.spec(GitReference::Semver("~1.0".into()));
    assert_eq!(f.cache.cached_revision(&main).await, None, "nothing cached yet");

    let rev_main = f.cache.resolve(&main).await.unwrap();
    f.cache.ensure(&main, &rev_main).await.unwrap();
    let rev_tag = f.cache.resolve(&semver).await.unwrap();
    f.cache.ensure(&semver, &rev_tag).await.unwrap();
    f.server.clear_log();

    assert_eq!(f.cache.cached_revision(&main).await, Some(rev_main.clone()));
    assert_eq!(f.cache.cached_revision(&semver).await, Some(rev_tag));
    assert_eq!(f.cache.cached_revision(&f.spec(branch("other"))).await, None);
    assert!(f.server.request_log().is_empty(), "{:#?}", f.server.request_log());

    // One application moves on; another still ensures the older revision: the newest stays.
    f.push(&[("a.yaml", "a: 2\n")], "two");
    let newer = f.cache.resolve(&main).await.unwrap();
    f.cache.ensure(&main, &newer).await.unwrap();
    f.cache.ensure(&main, &rev_main).await.unwrap();
    assert_eq!(f.cache.cached_revision(&main).await, Some(newer));
}

#[tokio::test]
async fn cache_layout_and_recovery_from_a_killed_git() {
    let f = Fixture::new(false);
    f.push(&[("a.yaml", "a: 1\n")], "one");
    let spec = f.spec(branch("main"));
    let first = f.cache.resolve(&spec).await.unwrap();
    f.cache.ensure(&spec, &first).await.unwrap();
    let repos: Vec<_> = std::fs::read_dir(f.cache.dir())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    assert_eq!(repos.len(), 1, "{repos:?}");
    let name = repos[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    assert_eq!(std::fs::read_to_string(repos[0].join("url")).unwrap(), format!("{}\n", f.server.url(REPO)));

    // A git killed mid-fetch leaves lock files behind; the next fetch must not trip over them.
    std::fs::write(repos[0].join("refs/heads/main.lock"), "").unwrap();
    std::fs::write(repos[0].join("packed-refs.lock"), "").unwrap();
    f.push(&[("a.yaml", "a: 2\n")], "two");
    let second = f.cache.resolve(&spec).await.unwrap();
    f.cache.ensure(&spec, &second).await.unwrap();
    assert_eq!(f.cache.read_files(&spec, &second, "").await.unwrap()[0].content, "a: 2\n");
    assert_eq!(f.cache.cached_revision(&spec).await, Some(second));
}

#[tokio::test]
async fn file_sources_only_when_allowed() {
    let f = Fixture::new(false);
    f.push(&[("a.yaml", "a: 1\n")], "one");
    let url = format!("file://{}/{REPO}", f.root.path().canonicalize().unwrap().display());
    let spec = SourceSpec { url: url.clone(), ..f.spec(branch("main")) };
    let err = f.cache.resolve(&spec).await.unwrap_err();
    assert_eq!(err, SourceError::FileSourcesDisabled { url });
    assert!(err.to_string().contains("--allow-file-sources"));

    let allowed = GitCache::new(
        f.cache_dir.path().join("files"),
        CacheOptions { allow_file_sources: true, ..loopback_cache_options() },
    );
    let revision = allowed.resolve(&spec).await.unwrap();
    allowed.ensure(&spec, &revision).await.unwrap();
    assert_eq!(names(&allowed.read_files(&spec, &revision, ".").await.unwrap()), ["a.yaml"]);

    for url in ["ext::sh -c touch% /tmp/tugboat-pwned", "fd::3", "/srv/repo.git", "ftp://host/repo.git"] {
        let spec = SourceSpec { url: url.into(), ..f.spec(branch("main")) };
        assert_eq!(allowed.resolve(&spec).await.unwrap_err().reason().as_str(), "UnsupportedUrl", "{url}");
    }
}

#[tokio::test]
async fn unreachable_and_hanging_remotes_are_transient() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = TempDir::new("tugboat-src-net").unwrap();
    let options = CacheOptions { command_timeout: Duration::from_secs(2), ..loopback_cache_options() };
    let cache = GitCache::new(dir.path().to_path_buf(), options);
    let spec = |url: String| SourceSpec { url, reference: branch("main"), credentials: None };

    let err = cache.resolve(&spec(format!("http://127.0.0.1:{port}/team/app.git"))).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "Unreachable", "{err}");
    assert!(err.is_transient());

    // A server that accepts and then says nothing: git must be stopped by the timeout.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hanging.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hanging.incoming().take(4).flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let mut conn = conn;
            let _ = conn.read(&mut [0u8; 1024]);
            held.push(conn); // keep it open, answer nothing
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let started = std::time::Instant::now();
    let err = cache.resolve(&spec(format!("http://{addr}/team/app.git"))).await.unwrap_err();
    assert_eq!(err, SourceError::Timeout { url: format!("http://{addr}/team/app.git"), seconds: 2 });
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(err.is_transient());
}

/// Files below `dir` whose bytes contain `needle`.
fn grep_dir(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)) {
                hits.push(path);
            }
        }
    }
    hits
}
