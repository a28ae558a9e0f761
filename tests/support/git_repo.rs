//! Transport-independent Git fixtures for tests: bare repositories on disk and scratch work trees that commit and push.
//!
//! Why: every git invocation here is hermetic (no system/global config, no prompts, no inherited
//! `GIT_*` variables or proxies, a private HOME) so tests behave the same on a laptop and in CI.
//! Helpers take plain URLs, so the same code serves the HTTP server today and SSH or file URLs later.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Identity and defaults applied to every git command, so commits work without any user config.
const BASE_CONFIG: &[(&str, &str)] = &[
    ("user.name", "tugboat-test"),
    ("user.email", "test@tugboat.dev"),
    ("init.defaultBranch", "main"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("core.autocrlf", "false"),
];

/// Proxy variables are dropped so requests to 127.0.0.1 never detour through a proxy.
const PROXY_VARS: &[&str] =
    &["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "SSH_ASKPASS"];

/// A directory under the system temp dir, removed recursively on drop (std-only `tempfile` stand-in).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> io::Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A hermetic `git` command: HOME is `home`, no system config, no prompts, `BASE_CONFIG` applied
/// through `GIT_CONFIG_*` (so `-c` on the command line still overrides), plus `extra` config.
pub fn git_command(home: &Path, extra: &[(String, String)]) -> Command {
    let mut cmd = Command::new("git");
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("GIT_") || PROXY_VARS.contains(&k)) {
            cmd.env_remove(key);
        }
    }
    let config: Vec<(&str, &str)> =
        BASE_CONFIG.iter().copied().chain(extra.iter().map(|(k, v)| (k.as_str(), v.as_str()))).collect();
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (k, v)) in config.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), k).env(format!("GIT_CONFIG_VALUE_{i}"), v);
    }
    cmd
}

/// A hermetic `git` command with a shared, empty HOME; for one-off calls such as `ls-remote`.
pub fn git() -> Command {
    let home = std::env::temp_dir().join("tugboat-test-git-home");
    let _ = fs::create_dir_all(&home);
    git_command(&home, &[])
}

/// Runs `cmd`, returning trimmed stdout, or an error carrying stderr when git exits non-zero.
pub fn run(cmd: &mut Command) -> io::Result<String> {
    let out: Output = cmd.output()?;
    if !out.status.success() {
        let args: Vec<_> = cmd.get_args().map(OsStr::to_string_lossy).collect();
        return Err(io::Error::other(format!(
            "git {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Object id that `url` advertises for `refname` (e.g. `refs/heads/main`), via `git ls-remote`.
pub fn ls_remote(url: &str, refname: &str) -> io::Result<Option<String>> {
    let listing = run(git().args(["ls-remote", url, refname]))?;
    Ok(listing
        .lines()
        .find_map(|line| line.split_once('\t').filter(|(_, r)| *r == refname).map(|(sha, _)| sha.to_owned())))
}

/// Creates the bare repository `root/name` (e.g. `team/app.git`) with default branch `main`.
/// Pushes over HTTP are enabled even for anonymous servers via `http.receivepack`.
pub fn init_bare(root: &Path, name: &str) -> io::Result<PathBuf> {
    let path = root.join(name.trim_start_matches('/'));
    fs::create_dir_all(&path)?;
    run(git().args(["init", "--quiet", "--bare", "--initial-branch=main"]).arg(&path))?;
    run(git().arg("--git-dir").arg(&path).args(["config", "http.receivepack", "true"]))?;
    Ok(path)
}

/// A scratch clone with its own HOME; everything is deleted on drop.
#[derive(Debug)]
pub struct Workdir {
    tmp: TempDir,
    dir: PathBuf,
    config: Vec<(String, String)>,
}

impl Workdir {
    /// Clones `url` (which may embed credentials; they are kept as the `origin` URL for pushes).
    pub fn clone_from(url: &str) -> io::Result<Workdir> {
        Workdir::clone_with_config(url, &[])
    }

    /// Like `clone_from`, with extra git config (e.g. `protocol.version=0`) for this and later commands.
    pub fn clone_with_config(url: &str, config: &[(&str, &str)]) -> io::Result<Workdir> {
        let tmp = TempDir::new("tugboat-work")?;
        let home = tmp.path().join("home");
        fs::create_dir(&home)?;
        let config: Vec<_> = config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let dir = tmp.path().join("repo");
        run(git_command(&home, &config).args(["clone", "--quiet", url]).arg(&dir))?;
        Ok(Workdir { tmp, dir, config })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Runs `git <args>` in the work tree; returns trimmed stdout.
    pub fn git<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> io::Result<String> {
        run(git_command(&self.tmp.path().join("home"), &self.config).current_dir(&self.dir).args(args))
    }

    /// Writes a file relative to the work tree, creating parent directories.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> io::Result<()> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, content)
    }

    /// Removes a file or directory relative to the work tree.
    pub fn remove(&self, rel: &str) -> io::Result<()> {
        let path = self.dir.join(rel);
        if path.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) }
    }

    /// Stages everything and commits (empty commits allowed); returns the new HEAD sha.
    pub fn commit(&self, message: &str) -> io::Result<String> {
        self.git(["add", "--all"])?;
        self.git(["commit", "--quiet", "--allow-empty", "-m", message])?;
        self.head()
    }

    pub fn head(&self) -> io::Result<String> {
        self.rev_parse("HEAD")
    }

    pub fn rev_parse(&self, rev: &str) -> io::Result<String> {
        self.git(["rev-parse", "--verify", rev])
    }

    /// Pushes the current branch to the same name on `origin`.
    pub fn push(&self) -> io::Result<()> {
        self.git(["push", "--quiet", "origin", "HEAD"]).map(drop)
    }

    /// Creates a lightweight tag at HEAD.
    pub fn tag(&self, name: &str) -> io::Result<()> {
        self.git(["tag", name]).map(drop)
    }

    /// Creates an annotated tag at HEAD (a distinct tag object, peeled as `^{}` in ls-remote).
    pub fn annotated_tag(&self, name: &str, message: &str) -> io::Result<()> {
        self.git(["tag", "-a", name, "-m", message]).map(drop)
    }

    pub fn push_tags(&self) -> io::Result<()> {
        self.git(["push", "--quiet", "origin", "--tags"]).map(drop)
    }

    pub fn fetch(&self) -> io::Result<()> {
        self.git(["fetch", "--quiet", "origin"]).map(drop)
    }
}
