//! Runs the git CLI hermetically: clean environment, secrets only in the child's environment, hard timeout.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::guard::Route;
use super::url::{RepoUrl, Transport};
use super::{Credentials, SourceError};

/// Passed as `-c` to every git command: command-line config beats every config file, so no
/// credential helper, askpass program or background gc can sneak in from the machine.
const BASE_CONFIG: &[&str] = &[
    "protocol.version=2",
    "credential.helper=",
    "core.askPass=",
    "gc.autoDetach=false",
    "core.fsmonitor=false",
    "fetch.recurseSubmodules=false",
];

/// The only variables inherited from the operator's environment: enough to find programs,
/// go through a corporate proxy and trust a custom CA; nothing `GIT_*`-shaped besides the CA.
const INHERITED_ENV: &[&str] = &[
    "PATH",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
];

/// How git is run for one cache: its HOME, its protocols and its patience.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    /// The cache directory: HOME for git, and where the short-lived ssh key directories go.
    pub home: PathBuf,
    pub timeout: Duration,
    pub allow_file: bool,
}

/// A private directory holding an ssh identity and known_hosts; deleted when dropped, so the
/// key exists on disk only while the git command that needs it runs.
#[derive(Debug)]
pub(crate) struct SshFiles {
    dir: PathBuf,
}

impl Drop for SshFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Runner {
    /// `git -c …` with a cleared environment, for the bare repository `git_dir` if given (set
    /// explicitly, so git never discovers, or reads the config of, a repository around the cache);
    /// the caller adds the subcommand.
    pub fn command(&self, git_dir: Option<&Path>) -> Command {
        let mut cmd = Command::new("git");
        cmd.env_clear();
        for key in INHERITED_ENV {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        if std::env::var_os("PATH").is_none() {
            cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
        }
        let protocols = if self.allow_file { "http:https:ssh:file" } else { "http:https:ssh" };
        if let Some(git_dir) = git_dir {
            cmd.env("GIT_DIR", git_dir);
        }
        if let Some(parent) = self.home.parent() {
            cmd.env("GIT_CEILING_DIRECTORIES", parent);
        }
        cmd.current_dir(&self.home)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "")
            .env("GIT_ALLOW_PROTOCOL", protocols)
            .env("LC_ALL", "C")
            .env("LANG", "C");
        for config in BASE_CONFIG {
            cmd.arg("-c").arg(config);
        }
        cmd
    }

    /// Adds what talking to `url` by `route` needs: the egress guard's pins (see `guard`),
    /// credentials (never in argv) and a non-interactive ssh.
    ///
    /// HTTP credentials become an `Authorization` header passed through `GIT_CONFIG_*`
    /// variables, which only the operator's own user can read; ssh keys go to a 0600 file in a
    /// 0700 directory that the returned guard deletes.
    pub fn remote(
        &self,
        cmd: &mut Command,
        url: &RepoUrl,
        route: &Route,
        credentials: Option<&Credentials>,
    ) -> Result<Option<SshFiles>, SourceError> {
        for config in &route.config {
            cmd.arg("-c").arg(config);
        }
        // The URL names the checked address: the host key is looked up under the name.
        let alias = route
            .host_key_alias
            .as_deref()
            .map(|alias| format!(" -o HostKeyAlias={} -o CheckHostIP=no", shell_quote(alias)))
            .unwrap_or_default();
        match (url.transport, credentials) {
            (Transport::Http, Some(Credentials::Basic { username, password })) => {
                let token = BASE64.encode(format!("{username}:{password}"));
                set_env_config(cmd, "http.extraHeader", &format!("Authorization: Basic {token}"));
            }
            (Transport::Http, Some(Credentials::Bearer(token))) => {
                set_env_config(cmd, "http.extraHeader", &format!("Authorization: Bearer {token}"));
            }
            (Transport::Ssh, Some(Credentials::Ssh { identity, known_hosts })) => {
                let files = self.write_ssh_files(identity, known_hosts)?;
                let key = files.dir.join("identity");
                let known = files.dir.join("known_hosts");
                // GlobalKnownHostsFile: only the Secret's known_hosts may vouch for a host, not
                // whatever /etc/ssh/ssh_known_hosts of the operator's image holds; `-F /dev/null`:
                // no ssh_config of the machine or user changes how we connect.
                let ssh = format!(
                    "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes{alias}",
                    shell_quote(&key.to_string_lossy()),
                    shell_quote(&known.to_string_lossy())
                );
                cmd.env("GIT_SSH_COMMAND", ssh);
                return Ok(Some(files));
            }
            (Transport::Ssh, _) => {
                cmd.env("GIT_SSH_COMMAND", format!("ssh -o StrictHostKeyChecking=yes -o BatchMode=yes{alias}"));
            }
            // Credentials of another kind than the URL's transport are simply not used.
            _ => {}
        }
        Ok(None)
    }

    fn write_ssh_files(&self, identity: &str, known_hosts: &str) -> Result<SshFiles, SourceError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = self.home.join(format!(".ssh-{}-{n}", std::process::id()));
        let failed = |e: std::io::Error| SourceError::io("write the ssh identity to the cache directory", &e);
        DirBuilder::new().mode(0o700).recursive(false).create(&dir).map_err(failed)?;
        let files = SshFiles { dir };
        // OpenSSH rejects a key file without its final newline, which Secrets often lack.
        let identity = if identity.ends_with('\n') { identity.to_owned() } else { format!("{identity}\n") };
        for (name, content) in [("identity", identity.as_str()), ("known_hosts", known_hosts)] {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(files.dir.join(name))
                .map_err(failed)?;
            file.write_all(content.as_bytes()).map_err(failed)?;
        }
        Ok(files)
    }

    /// Runs `cmd` to completion, feeding `stdin`, within the timeout; a non-zero exit is not an
    /// error here (callers classify stderr). On timeout git and its helpers (remote-https,
    /// ssh, index-pack) are killed: git runs in its own process group for exactly that.
    pub async fn run(&self, mut cmd: Command, stdin: Option<Vec<u8>>, target: &str) -> Result<Output, SourceError> {
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| SourceError::io("start git (is it installed?)", &e))?;
        let pid = child.id();
        let pipe = child.stdin.take();
        let work = async move {
            let feed = async move {
                if let (Some(mut pipe), Some(bytes)) = (pipe, stdin) {
                    // A write error means git exited early; its status and stderr say why.
                    let _ = pipe.write_all(&bytes).await;
                } // dropping the pipe sends EOF
            };
            tokio::join!(feed, child.wait_with_output()).1
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(output) => output.map_err(|e| SourceError::io("wait for git", &e)),
            Err(_elapsed) => {
                if let Some(pid) = pid {
                    kill_process_group(pid).await;
                }
                Err(SourceError::Timeout { url: target.to_owned(), seconds: self.timeout.as_secs() })
            }
        }
    }
}

/// Appends one `GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` pair (git ≥ 2.31): config that is
/// neither in argv (visible to every user via `ps`) nor in a file.
fn set_env_config(cmd: &mut Command, key: &str, value: &str) {
    let count = cmd
        .as_std()
        .get_envs()
        .find(|(k, _)| *k == "GIT_CONFIG_COUNT")
        .and_then(|(_, v)| v?.to_str()?.parse::<usize>().ok())
        .unwrap_or(0);
    cmd.env(format!("GIT_CONFIG_KEY_{count}"), key)
        .env(format!("GIT_CONFIG_VALUE_{count}"), value)
        .env("GIT_CONFIG_COUNT", (count + 1).to_string());
}

/// Kills every process left in git's group; `kill` avoids unsafe code for `killpg`.
pub(crate) async fn kill_process_group(pid: u32) {
    let mut kill = Command::new("kill");
    kill.arg("-KILL").arg("--").arg(format!("-{pid}"));
    kill.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), kill.status()).await;
}

/// Single-quotes a word (a path, a host key alias) for the shell git runs `GIT_SSH_COMMAND` with.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn runner(home: &Path) -> Runner {
        Runner { home: home.to_path_buf(), timeout: Duration::from_secs(5), allow_file: false }
    }

    fn envs(cmd: &Command) -> Vec<(String, String)> {
        let pairs =
            cmd.as_std().get_envs().filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())));
        pairs.collect()
    }

    fn temp_home(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tugboat-git-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn credentials_go_to_env_not_argv() {
        let home = temp_home("env");
        let r = runner(&home);
        let url = super::super::url::parse("https://host/r.git", false).unwrap();
        let mut cmd = r.command(None);
        let creds = Credentials::Basic { username: "bob".into(), password: "hunter2".into() };
        let route = super::super::guard::pin(&url, &["10.0.0.5".parse().unwrap()]);
        assert!(r.remote(&mut cmd, &url, &route, Some(&creds)).unwrap().is_none());
        let args: Vec<_> = cmd.as_std().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.iter().all(|a| !a.contains("hunter2") && !a.contains("Authorization")), "{args:?}");
        assert!(args.ends_with(&["-c".into(), "http.curloptResolve=host:443:10.0.0.5".into()]), "pinned: {args:?}");
        let env = envs(&cmd);
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("GIT_CONFIG_COUNT"), Some("1"));
        assert_eq!(get("GIT_CONFIG_KEY_0"), Some("http.extraHeader"));
        assert_eq!(get("GIT_CONFIG_VALUE_0"), Some("Authorization: Basic Ym9iOmh1bnRlcjI="));
        assert_eq!(get("GIT_ALLOW_PROTOCOL"), Some("http:https:ssh"));
        assert_eq!(get("GIT_TERMINAL_PROMPT"), Some("0"));
        fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn ssh_identity_is_private_and_removed_afterwards() {
        let home = temp_home("ssh");
        let r = runner(&home);
        let url = super::super::url::parse("git@host:team/app.git", false).unwrap();
        let mut cmd = r.command(None);
        let creds = Credentials::Ssh { identity: "KEY".into(), known_hosts: "host ssh-ed25519 AAAA".into() };
        let route = super::super::guard::pin(&url, &["10.0.0.5".parse().unwrap()]);
        let files = r.remote(&mut cmd, &url, &route, Some(&creds)).unwrap().unwrap();
        let key = files.dir.join("identity");
        assert_eq!(fs::read_to_string(&key).unwrap(), "KEY\n");
        assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&files.dir).unwrap().permissions().mode() & 0o777, 0o700);
        let ssh = envs(&cmd).into_iter().find(|(k, _)| k == "GIT_SSH_COMMAND").unwrap().1;
        assert!(ssh.contains("StrictHostKeyChecking=yes") && ssh.contains("BatchMode=yes") && !ssh.contains("KEY"));
        assert!(ssh.contains("GlobalKnownHostsFile=/dev/null"), "{ssh}");
        assert!(ssh.ends_with(" -o HostKeyAlias='host' -o CheckHostIP=no"), "{ssh}");
        let dir = files.dir.clone();
        drop(files);
        assert!(!dir.exists());
        fs::remove_dir_all(home).unwrap();
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let home = temp_home("timeout");
        let r = Runner { timeout: Duration::from_millis(300), ..runner(&home) };
        // A shell whose child hangs stands in for git waiting on a stalled remote helper.
        let pid_file = home.join("child.pid");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("sleep 30 & echo $! > '{}'; wait", pid_file.display()));
        let started = std::time::Instant::now();
        let err = r.run(cmd, None, "http://host/r.git").await.unwrap_err();
        assert_eq!(err, SourceError::Timeout { url: "http://host/r.git".into(), seconds: 0 });
        assert!(started.elapsed() < Duration::from_secs(5));
        let child = fs::read_to_string(&pid_file).unwrap();
        let proc_dir = PathBuf::from(format!("/proc/{}", child.trim()));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        // The killed child may linger as a zombie of the (also killed) shell for a moment.
        while proc_dir.exists() && !fs::read_to_string(proc_dir.join("stat")).unwrap_or_default().contains(") Z") {
            assert!(std::time::Instant::now() < deadline, "grandchild survived the timeout");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        fs::remove_dir_all(home).unwrap();
    }
}
