//! `GitCache`: one bare repository per repository URL, fetched only when a wanted commit is missing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::evict::{self, Usage};
use super::git::Runner;
use super::guard::Route;
use super::refs::{self, Range};
use super::store::Store;
use super::tree::RepoFile;
use super::url::{self, RepoUrl};
use super::{CacheOptions, GitReference, Revision, SourceError, SourceSpec, tree};
use crate::keyed_lock::KeyedLocks;
use crate::render::ManifestFile;

/// The Git cache shared by all applications. Cheap to clone; all clones share one state.
///
/// Concurrency: writes to a repository (init, fetch) happen under a per-repository async mutex,
/// and whoever gets it re-checks for the commit first, so concurrent `ensure`s of one new
/// revision cause a single fetch. Reads (`cat-file`, `ls-tree`) need no lock: git writes
/// objects before refs and never changes an object in place. Every operation on a repository
/// counts as a use of it while it runs, so eviction (`--cache-max-bytes`) never deletes a
/// repository that is being read or fetched. One process owns a cache directory.
#[derive(Clone)]
pub struct GitCache {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    runner: Runner,
    options: super::CacheOptions,
    fetches: AtomicU64,
    locks: KeyedLocks<PathBuf>,
    usage: Usage,
    /// One eviction at a time: each measures what the previous one left.
    evicting: tokio::sync::Mutex<()>,
    listings: Mutex<HashMap<ListingKey, Arc<tokio::sync::Mutex<Option<Listing>>>>>,
}

/// One `ls-remote` question: the same URL, arguments and credentials get the same answer.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ListingKey {
    url: String,
    args: Vec<String>,
    credentials: Option<super::Credentials>,
}

/// The answer of the latest `ls-remote` for a key, and when it was asked.
struct Listing {
    started: Instant,
    result: Result<String, SourceError>,
}

impl std::fmt::Debug for GitCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCache").field("dir", &self.inner.dir).field("options", &self.inner.options).finish()
    }
}

impl GitCache {
    /// A cache in `dir` (created on first use). `dir` is also git's HOME, so no configuration
    /// of the machine or the operator's user leaks into git.
    pub fn new(dir: PathBuf, options: CacheOptions) -> Self {
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let runner =
            Runner { home: dir.clone(), timeout: options.command_timeout, allow_file: options.allow_file_sources };
        let inner = Inner {
            dir,
            runner,
            options,
            fetches: AtomicU64::new(0),
            locks: KeyedLocks::default(),
            usage: Usage::default(),
            evicting: tokio::sync::Mutex::default(),
            listings: Mutex::default(),
        };
        GitCache { inner: Arc::new(inner) }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Asks the remote which commit the reference points at (`git ls-remote`; no fetch).
    ///
    /// Semver picks the newest matching tag. A full commit id is returned as is, but only after
    /// a cheap `ls-remote` proves these credentials can read the repository: the cache is shared,
    /// and an application must not deploy a commit another application's credentials fetched.
    /// An abbreviated commit is expanded from the cache, fetching branches and tags if needed.
    pub async fn resolve(&self, spec: &SourceSpec) -> Result<Revision, SourceError> {
        let url = self.url(spec)?;
        match &spec.reference {
            GitReference::Branch(name) | GitReference::Tag(name) => {
                let (kind, prefix) = match &spec.reference {
                    GitReference::Branch(_) => ("branch", "refs/heads"),
                    _ => ("tag", "refs/tags"),
                };
                refs::validate_ref_name(kind, name)?;
                let refname = format!("{prefix}/{name}");
                // The `^{}` pattern asks for the peeled entry: an annotated tag's commit.
                let peeled = format!("{refname}^{{}}");
                let listing = self.ls_remote(spec, &url, &[], &[&refname, &peeled]).await?;
                let listed = refs::parse_ls_remote(&listing);
                let sha = refs::commit_of(&listed, &refname).ok_or_else(|| SourceError::RefNotFound {
                    url: url.display.clone(),
                    reference: spec.reference.to_string(),
                })?;
                Ok(Revision::of_ref(name, sha))
            }
            GitReference::Semver(range_text) => {
                let range = Range::parse(range_text)?;
                let listing = self.ls_remote(spec, &url, &["--tags"], &[]).await?;
                let listed = refs::parse_ls_remote(&listing);
                let tags = refs::tags_with_commits(&listed);
                let (tag, sha) = refs::newest_matching(tags, &range).ok_or_else(|| SourceError::NoMatchingTag {
                    url: url.display.clone(),
                    range: range_text.clone(),
                })?;
                Ok(Revision::of_ref(tag, sha))
            }
            GitReference::Commit(commit) => {
                let commit = refs::validate_commit(commit)?;
                self.ls_remote(spec, &url, &[], &["HEAD"]).await?;
                if refs::is_full_sha(&commit) {
                    return Ok(Revision::of_commit(&commit));
                }
                self.expand_commit(spec, &url, &commit).await.map(|sha| Revision::of_commit(&sha))
            }
        }
    }

    /// Makes sure the revision's commit is in the cache; does nothing (no network) if it is.
    ///
    /// Otherwise fetches only the reference the revision came from (`--no-tags` except for tags),
    /// falling back to fetching the commit itself (for commit references, or a branch that was
    /// force-pushed since the revision was resolved).
    pub async fn ensure(&self, spec: &SourceSpec, revision: &Revision) -> Result<(), SourceError> {
        let url = self.url(spec)?;
        let sha = full_sha(revision)?;
        let repo = self.repo_dir(&url);
        let _use = self.inner.usage.enter(&repo);
        let local = local_ref(spec, revision)?;
        let wanted =
            [Some(format!("{sha}^{{commit}}")), local.as_ref().map(|(refname, _)| format!("{refname}^{{commit}}"))];
        let wanted: Vec<String> = wanted.into_iter().flatten().collect();
        let found = self.store(&repo).lookup(&wanted).await;
        let ref_current = local.is_none() || found.get(1).is_some_and(|r| r.as_deref() == Some(sha));
        if found.first().is_some_and(Option::is_some) && ref_current {
            return Ok(()); // the hot path: one local `cat-file`, no lock, no network
        }
        let _guard = self.inner.locks.lock(repo.clone()).await;
        let found = self.store(&repo).lookup(&wanted).await;
        if found.first().is_some_and(Option::is_some) {
            // Present (fetched by another application, or while we waited): no network, but
            // the local ref must show it, or `cached_revision` would return an older revision.
            if let Some((refname, _)) = &local {
                self.store(&repo).advance_ref(refname, sha, found.get(1).cloned().flatten().as_deref()).await;
            }
            return Ok(());
        }
        self.store(&repo).init(&url.display).await?;
        if let Some((refname, tags)) = &local {
            let reference = spec_reference(spec, revision);
            let refspec = format!("+{refname}:{refname}");
            match self.fetch(spec, &url, &repo, &[&refspec], *tags, &reference).await {
                Ok(()) if self.store(&repo).has_commit(sha).await => return Ok(()),
                Ok(()) | Err(SourceError::RefNotFound { .. }) => {} // moved or gone: try the commit itself
                Err(error) => return Err(error),
            }
        }
        // Keeping a ref to the commit stops `git gc` from pruning it as unreachable.
        let refspec = format!("{sha}:refs/tugboat/commits/{sha}");
        let reference = format!("commit {sha}");
        self.fetch(spec, &url, &repo, &[&refspec], false, &reference).await?;
        if self.store(&repo).has_commit(sha).await {
            Ok(())
        } else {
            Err(SourceError::RefNotFound { url: url.display, reference })
        }
    }

    /// Reads the manifests at `path` (a directory, recursively, or one file; "" or "." is the
    /// root) of the revision's commit, straight from the object store: no work tree to keep in
    /// sync, and concurrent readers of different revisions never interfere. Calls `ensure` first,
    /// which costs one local `cat-file` when the commit is already cached.
    pub async fn read_files(
        &self,
        spec: &SourceSpec,
        revision: &Revision,
        path: &str,
    ) -> Result<Vec<ManifestFile>, SourceError> {
        let root = tree::normalize_path(path)
            .ok_or_else(|| SourceError::PathNotFound { path: path.to_owned(), revision: revision.name.clone() })?;
        let repo = self.repo_dir(&self.url(spec)?);
        let _use = self.inner.usage.enter(&repo);
        self.ensure(spec, revision).await?;
        let limit = self.inner.options.max_read_bytes;
        tree::read(&self.inner.runner, &repo, &revision.sha, &root, &revision.name, limit).await
    }

    /// Every regular file of the revision's commit (symbolic links and submodules left out),
    /// within the read limit: what Kustomize and Helm builds write to disk to run on.
    pub async fn read_repository(&self, spec: &SourceSpec, revision: &Revision) -> Result<Vec<RepoFile>, SourceError> {
        let repo = self.repo_dir(&self.url(spec)?);
        let _use = self.inner.usage.enter(&repo);
        self.ensure(spec, revision).await?;
        let limit = self.inner.options.max_read_bytes;
        tree::read_all(&self.inner.runner, &repo, &revision.sha, &revision.name, limit).await
    }

    /// The newest revision of this spec already in the cache, without any network access: lets
    /// drift correction re-apply without asking the remote. `None` if nothing is cached (or the
    /// spec is invalid). It reflects what the last fetch by any application saw.
    pub async fn cached_revision(&self, spec: &SourceSpec) -> Option<Revision> {
        let url = self.url(spec).ok()?;
        let repo = self.repo_dir(&url);
        let _use = self.inner.usage.enter(&repo);
        if !self.store(&repo).exists() {
            return None;
        }
        match &spec.reference {
            GitReference::Branch(name) => {
                refs::validate_ref_name("branch", name).ok()?;
                let sha = self.store(&repo).rev_parse(&format!("refs/heads/{name}^{{commit}}")).await?;
                Some(Revision::of_ref(name, &sha))
            }
            GitReference::Tag(name) => {
                refs::validate_ref_name("tag", name).ok()?;
                let sha = self.store(&repo).rev_parse(&format!("refs/tags/{name}^{{commit}}")).await?;
                Some(Revision::of_ref(name, &sha))
            }
            GitReference::Semver(range) => {
                let range = Range::parse(range).ok()?;
                let tags = self.store(&repo).tags().await;
                let tags = tags.iter().map(|(tag, sha)| (tag.as_str(), sha.as_str()));
                let (tag, sha) = refs::newest_matching(tags, &range)?;
                Some(Revision::of_ref(tag, sha))
            }
            GitReference::Commit(commit) => {
                let commit = refs::validate_commit(commit).ok()?;
                let sha = self.store(&repo).rev_parse(&format!("{commit}^{{commit}}")).await?;
                Some(Revision::of_commit(&sha))
            }
        }
    }

    /// How many network fetches this cache ran, failed ones included (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    fn url(&self, spec: &SourceSpec) -> Result<RepoUrl, SourceError> {
        url::parse(&spec.url, self.inner.options.allow_file_sources)
    }

    /// `<dir>/<hex sha256 of the normalized URL>`: stable, collision-free, and safe as a file name.
    fn repo_dir(&self, url: &RepoUrl) -> PathBuf {
        let digest = Sha256::digest(url.normalized.as_bytes());
        self.inner.dir.join(hex::encode(digest))
    }

    fn store<'a>(&'a self, repo: &'a Path) -> Store<'a> {
        Store { runner: &self.inner.runner, path: repo }
    }

    /// `git ls-remote [flags] -- <url> [patterns]`'s stdout, shared by concurrent askers.
    ///
    /// When many applications follow one repository, a push makes them all ask at once. An
    /// answer is reused only by those who asked before that `ls-remote` started, so nobody
    /// gets an answer older than their question: a burst costs one or two `ls-remote`s, not
    /// one per application.
    async fn ls_remote(
        &self,
        spec: &SourceSpec,
        url: &RepoUrl,
        flags: &[&str],
        patterns: &[&str],
    ) -> Result<String, SourceError> {
        let asked = Instant::now();
        let key = ListingKey {
            url: url.raw.clone(),
            args: flags.iter().chain(patterns).map(|s| (*s).to_owned()).collect(),
            credentials: spec.credentials.clone(),
        };
        let slot = {
            let mut listings = self.inner.listings.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(listings.entry(key).or_default())
        };
        let mut latest = slot.lock().await;
        if let Some(listing) = latest.as_ref()
            && listing.started >= asked
        {
            return listing.result.clone();
        }
        let started = Instant::now();
        let result = self.run_ls_remote(spec, url, flags, patterns).await;
        // Kept only for those already waiting (the map holds one handle, this call another).
        *latest = (Arc::strong_count(&slot) > 2).then(|| Listing { started, result: result.clone() });
        result
    }

    /// Runs `git ls-remote [flags] -- <url> [patterns]`; returns its stdout.
    async fn run_ls_remote(
        &self,
        spec: &SourceSpec,
        url: &RepoUrl,
        flags: &[&str],
        patterns: &[&str],
    ) -> Result<String, SourceError> {
        let dir = &self.inner.dir;
        tokio::fs::create_dir_all(dir).await.map_err(|e| SourceError::io(format!("create {}", dir.display()), &e))?;
        let route = self.route(url).await?;
        let runner = &self.inner.runner;
        let mut cmd = runner.command(None);
        let _ssh = runner.remote(&mut cmd, url, &route, spec.credentials.as_ref())?;
        cmd.arg("ls-remote").args(flags).arg("--").arg(&route.url).args(patterns);
        let output = runner.run(cmd, None, &url.display).await?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(super::error::classify(&stderr, &url.display, &spec.reference.to_string()));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Fetches `refspecs` from the remote into `repo`; the caller holds the repository's lock.
    async fn fetch(
        &self,
        spec: &SourceSpec,
        url: &RepoUrl,
        repo: &Path,
        refspecs: &[&str],
        tags: bool,
        reference: &str,
    ) -> Result<(), SourceError> {
        let route = self.route(url).await?;
        self.store(repo).remove_stale_locks().await;
        let runner = &self.inner.runner;
        let mut cmd = runner.command(Some(repo));
        let _ssh = runner.remote(&mut cmd, url, &route, spec.credentials.as_ref())?;
        cmd.args(["fetch", "--quiet", "--no-write-fetch-head", "--no-recurse-submodules"]);
        if !tags {
            cmd.arg("--no-tags");
        }
        cmd.arg("--").arg(&route.url).args(refspecs);
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let output = runner.run(cmd, None, &url.display).await?;
        let elapsed_ms = started.elapsed().as_millis();
        if !output.status.success() {
            let error = super::error::classify(&String::from_utf8_lossy(&output.stderr), &url.display, reference);
            tracing::warn!(url = %url.display, reference, elapsed_ms, %error, "git fetch failed");
            return Err(error);
        }
        tracing::info!(url = %url.display, reference, elapsed_ms, "fetched");
        self.bound_size(repo).await;
        Ok(())
    }

    /// The egress guard's verdict on `url`, and how git is pinned to what it checked.
    async fn route(&self, url: &RepoUrl) -> Result<Route, SourceError> {
        let options = &self.inner.options;
        let route = Route::to(url, &options.egress, &options.static_hosts, options.command_timeout).await;
        if let Err(error @ SourceError::EgressRefused { .. }) = &route {
            tracing::warn!(url = %url.display, %error, "git egress refused");
        }
        route
    }

    /// Records the fetch into `repo` as its latest use, then evicts least recently used
    /// repositories beyond `max_bytes` (`repo` is in use by the caller, so it stays).
    async fn bound_size(&self, repo: &Path) {
        let max_bytes = self.inner.options.max_bytes;
        let _one = self.inner.evicting.lock().await;
        let (cache, repo) = (self.clone(), repo.to_path_buf());
        let bound = move || {
            evict::mark_used(&repo);
            evict::bound(&cache.inner.dir, max_bytes, &cache.inner.usage)
        };
        for name in tokio::task::spawn_blocking(bound).await.unwrap_or_default() {
            tracing::info!(repository = %name, max_bytes, "evicted from the Git cache (least recently used)");
        }
    }

    /// Expands an abbreviated commit id, from the cache or after fetching all branches and tags.
    async fn expand_commit(&self, spec: &SourceSpec, url: &RepoUrl, commit: &str) -> Result<String, SourceError> {
        let repo = self.repo_dir(url);
        let _use = self.inner.usage.enter(&repo);
        let rev = format!("{commit}^{{commit}}");
        if let Some(sha) = self.store(&repo).rev_parse(&rev).await {
            return Ok(sha);
        }
        let _guard = self.inner.locks.lock(repo.clone()).await;
        self.store(&repo).init(&url.display).await?;
        if let Some(sha) = self.store(&repo).rev_parse(&rev).await {
            return Ok(sha);
        }
        let all = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
        let reference = format!("commit {commit}");
        self.fetch(spec, url, &repo, &all, true, &reference).await?;
        self.store(&repo).rev_parse(&rev).await.ok_or(SourceError::RefNotFound { url: url.display.clone(), reference })
    }
}

/// The local ref a spec's revisions live under (`refs/heads/<branch>`, `refs/tags/<tag>`) and
/// whether its fetch should follow tags; `None` for commits. Names are validated: they end up
/// in refspecs.
fn local_ref(spec: &SourceSpec, revision: &Revision) -> Result<Option<(String, bool)>, SourceError> {
    let (kind, name, tags) = match &spec.reference {
        GitReference::Branch(name) => ("branch", name.as_str(), false),
        GitReference::Tag(name) => ("tag", name.as_str(), true),
        GitReference::Semver(_) => match revision.reference() {
            Some(tag) => ("tag", tag, true),
            None => return Ok(None),
        },
        GitReference::Commit(_) => return Ok(None),
    };
    refs::validate_ref_name(kind, name)?;
    let prefix = if kind == "branch" { "refs/heads" } else { "refs/tags" };
    Ok(Some((format!("{prefix}/{name}"), tags)))
}

/// "branch main", "tag v1.2.0": what a fetch was for, in messages.
fn spec_reference(spec: &SourceSpec, revision: &Revision) -> String {
    match (&spec.reference, revision.reference()) {
        (GitReference::Semver(_), Some(tag)) => format!("tag {tag}"),
        (reference, _) => reference.to_string(),
    }
}

/// The revision's commit id, which ends up in git arguments: it must be exactly 40 hex digits.
fn full_sha(revision: &Revision) -> Result<&str, SourceError> {
    if refs::is_full_sha(&revision.sha) {
        Ok(&revision.sha)
    } else {
        Err(SourceError::InvalidReference {
            reference: revision.name.clone(),
            message: "a revision needs the full 40-digit lower-case commit id".to_owned(),
        })
    }
}
