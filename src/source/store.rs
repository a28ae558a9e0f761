//! Local operations on one bare cache repository: look up commits, move refs, create it, clean up after a killed git.

use std::path::Path;

use super::SourceError;
use super::error::shorten;
use super::git::Runner;
use super::refs;

/// What timeouts of local commands report as their target.
const LOCAL: &str = "the local cache";

/// One bare repository of the cache and the runner for git in it. No network here.
pub(crate) struct Store<'a> {
    pub runner: &'a Runner,
    pub path: &'a Path,
}

impl Store<'_> {
    /// Whether the repository exists (it is created under a temporary name, so HEAD means done).
    pub fn exists(&self) -> bool {
        self.path.join("HEAD").is_file()
    }

    pub async fn has_commit(&self, sha: &str) -> bool {
        self.lookup(&[format!("{sha}^{{commit}}")]).await.first().is_some_and(Option::is_some)
    }

    /// Resolves revision expressions with one `cat-file --batch-check`: for each, the object id
    /// it names, or `None` (missing, ambiguous, no repository yet).
    pub async fn lookup(&self, revs: &[String]) -> Vec<Option<String>> {
        let none = vec![None; revs.len()];
        if !self.exists() {
            return none;
        }
        let mut cmd = self.runner.command(Some(self.path));
        cmd.args(["cat-file", "--batch-check=%(objectname)"]);
        let input: String = revs.iter().map(|rev| format!("{rev}\n")).collect();
        match self.runner.run(cmd, Some(input.into_bytes()), LOCAL).await {
            Ok(output) if output.status.success() => {
                let stdout = String::from_utf8_lossy(&output.stdout);
                let found: Vec<_> = stdout.lines().map(|l| refs::is_full_sha(l).then(|| l.to_owned())).collect();
                if found.len() == revs.len() { found } else { none }
            }
            _ => none,
        }
    }

    /// The full commit id `rev` names, if it names exactly one commit.
    pub async fn rev_parse(&self, rev: &str) -> Option<String> {
        if !self.exists() {
            return None;
        }
        let mut cmd = self.runner.command(Some(self.path));
        cmd.args(["rev-parse", "--verify", "--quiet", rev]);
        let output = self.runner.run(cmd, None, LOCAL).await.ok()?;
        let sha = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        (output.status.success() && refs::is_full_sha(&sha)).then_some(sha)
    }

    /// Points `refname` at `sha` if it is missing or behind (an ancestor of `sha`); never moves
    /// it backwards, so one application's older revision cannot hide another's newer one.
    /// Best effort: the ref only serves `cached_revision`.
    pub async fn advance_ref(&self, refname: &str, sha: &str, current: Option<&str>) {
        if let Some(current) = current {
            if current == sha {
                return;
            }
            let mut cmd = self.runner.command(Some(self.path));
            cmd.args(["merge-base", "--is-ancestor", current, sha]);
            if !self.runner.run(cmd, None, LOCAL).await.is_ok_and(|o| o.status.success()) {
                return;
            }
        }
        let mut cmd = self.runner.command(Some(self.path));
        cmd.args(["update-ref", "-m", "tugboat: ensured revision", refname, sha]);
        // The expected old value makes the update atomic with respect to what was just checked.
        cmd.arg(current.unwrap_or("0000000000000000000000000000000000000000"));
        match self.runner.run(cmd, None, LOCAL).await {
            Ok(output) if output.status.success() => {}
            Ok(output) => {
                tracing::warn!(refname, stderr = %shorten(&String::from_utf8_lossy(&output.stderr)), "cannot record the ensured revision")
            }
            Err(error) => tracing::warn!(refname, %error, "cannot record the ensured revision"),
        }
    }

    /// Cached tags with their commits (annotated tags peeled).
    pub async fn tags(&self) -> Vec<(String, String)> {
        if !self.exists() {
            return Vec::new();
        }
        let mut cmd = self.runner.command(Some(self.path));
        cmd.args(["for-each-ref", "--format=%(objectname)\t%(*objectname)\t%(refname:strip=2)", "refs/tags"]);
        let Ok(output) = self.runner.run(cmd, None, LOCAL).await else {
            return Vec::new();
        };
        let listing = String::from_utf8_lossy(&output.stdout);
        let tags = listing.lines().filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let (direct, peeled, tag) = (fields.next()?, fields.next()?, fields.next()?);
            Some((tag.to_owned(), if peeled.is_empty() { direct } else { peeled }.to_owned()))
        });
        tags.collect()
    }

    /// Creates the repository if missing: initialized under a temporary name and renamed into
    /// place, so a crash never leaves a half-made repository behind. `display` (the redacted
    /// URL) goes into a `url` file, so people looking at the cache know which repository it is.
    pub async fn init(&self, display: &str) -> Result<(), SourceError> {
        if self.exists() {
            return Ok(());
        }
        let io =
            |e: std::io::Error| SourceError::io(format!("create the cache repository {}", self.path.display()), &e);
        let parent = self.path.parent().unwrap_or(self.path);
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let staging = parent.join(format!(".init-{name}-{}", std::process::id()));
        let _ = tokio::fs::remove_dir_all(&staging).await;
        let mut cmd = self.runner.command(None);
        cmd.args(["init", "--quiet", "--bare", "--initial-branch=main"]).arg(&staging);
        let output = self.runner.run(cmd, None, LOCAL).await?;
        if !output.status.success() {
            let message = shorten(&String::from_utf8_lossy(&output.stderr));
            return Err(SourceError::Git { message: format!("cannot create the cache repository: {message}") });
        }
        tokio::fs::write(staging.join("url"), format!("{display}\n")).await.map_err(io)?;
        if let Err(error) = tokio::fs::rename(&staging, self.path).await {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            if !self.exists() {
                return Err(io(error));
            }
        }
        Ok(())
    }

    /// Deletes `*.lock` files a killed git (timeout, operator restart) left behind, which would
    /// fail every later fetch with "Unable to create '….lock': File exists". Safe only because
    /// the caller holds the repository's lock and one process owns the cache.
    pub async fn remove_stale_locks(&self) {
        let repo = self.path.to_path_buf();
        let sweep = move || {
            for name in ["packed-refs.lock", "HEAD.lock", "config.lock", "shallow.lock", "index.lock"] {
                let _ = std::fs::remove_file(repo.join(name));
            }
            let mut pending = vec![repo.join("refs")];
            while let Some(dir) = pending.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let path = entry.path();
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        pending.push(path);
                    } else if path.extension().is_some_and(|e| e == "lock") {
                        tracing::warn!(path = %path.display(), "removing a stale git lock file");
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
        };
        let _ = tokio::task::spawn_blocking(sweep).await;
    }
}
