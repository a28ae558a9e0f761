//! A real OpenSSH server for tests: `/usr/sbin/sshd` on a free 127.0.0.1 port, as the current user, serving bare repositories by absolute path.
//!
//! Why a real sshd rather than a mock: tugboat's SSH transport is the git CLI driving the
//! OpenSSH client with a key and `known_hosts` written from a Secret; whether host key checking,
//! public key auth and error classification work can only be shown against the genuine server.
//! Everything it needs (config, host key, client key, authorized_keys, pid file, log) lives in
//! one temporary directory, so it touches nothing of the machine's own sshd setup.
//!
//! A test calls [`SshServer::start`]. When sshd is expected — in CI, or when
//! `TUGBOAT_REQUIRE_CLUSTER` is set — and missing, the test fails; only a plain local
//! `cargo test` on a machine without sshd skips, loudly (as `cluster::client` does).

use std::fs;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::cluster::required;
use super::git_repo::TempDir;

/// Where Debian, Ubuntu and most distributions install the server.
pub const SSHD: &str = "/usr/sbin/sshd";
/// How long sshd may take to listen: generous for a loaded CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts at picking a free port: another process may grab it between probe and bind.
const START_ATTEMPTS: usize = 3;

/// A running sshd; dropping it kills it and deletes its directory.
pub struct SshServer {
    child: Child,
    port: u16,
    user: String,
    client_identity: String,
    host_public_key: String,
    /// Kept for its `Drop`: config, keys and log go away with the server.
    dir: TempDir,
}

/// Generates an ed25519 key pair at `dir/name` (and `name.pub`) with `ssh-keygen`; returns
/// (private key in OpenSSH format, public key line). Tests use it for "wrong" keys too.
pub fn keypair(dir: &Path, name: &str) -> io::Result<(String, String)> {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tugboat-test", "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    let private = fs::read_to_string(&path)?;
    let public = fs::read_to_string(path.with_extension("pub"))?.trim().to_owned();
    Ok((private, public))
}

/// The current user's name: sshd only lets a non-root server log in as its own user.
fn current_user() -> io::Result<String> {
    let out = Command::new("id").arg("-un").stdin(Stdio::null()).output()?;
    let user = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || user.is_empty() {
        return Err(io::Error::other("`id -un` did not print the current user"));
    }
    Ok(user)
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl SshServer {
    /// Starts sshd, or returns `None` (with a message) when it is not installed and not required.
    ///
    /// # Panics
    /// When sshd is required (CI or `TUGBOAT_REQUIRE_CLUSTER`) but missing, or fails to start:
    /// an SSH test never passes by skipping in CI.
    pub fn start() -> Option<SshServer> {
        if !Path::new(SSHD).exists() {
            if required() {
                panic!(
                    "{SSHD} is required (CI or TUGBOAT_REQUIRE_CLUSTER) but not installed: \
                     `apt-get install openssh-server` (.ci/run does this)"
                );
            }
            eprintln!("SKIPPED: sshd not installed ({SSHD} is missing; `apt-get install openssh-server`)");
            return None;
        }
        Some(SshServer::try_start().unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}")))
    }

    fn try_start() -> io::Result<SshServer> {
        let dir = TempDir::new("tugboat-sshd")?;
        let user = current_user()?;
        let (_, host_public_key) = keypair(dir.path(), "host_ed25519")?;
        let (client_identity, client_public) = keypair(dir.path(), "client_ed25519")?;
        let authorized = dir.path().join("authorized_keys");
        fs::write(&authorized, format!("{client_public}\n"))?;
        if is_root() {
            // Root's sshd chroots its unprivileged pre-auth child into this directory and
            // refuses to start without it; a fresh container has no /run/sshd yet.
            fs::create_dir_all("/run/sshd")?;
        }
        let config = dir.path().join("sshd_config");
        let mut last_error = io::Error::other("sshd was not started");
        for attempt in 0..START_ATTEMPTS {
            // The probe listener is closed before sshd binds: another process may take the
            // port in between, so a failed start is retried on a new port.
            let port = free_port()?;
            fs::write(&config, sshd_config(dir.path(), &authorized, port))?;
            let log = dir.path().join(format!("sshd-{attempt}.log"));
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log)?)
                .spawn()?;
            match wait_listening(&mut child, port, &log) {
                Ok(()) => return Ok(SshServer { child, port, user, client_identity, host_public_key, dir }),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = e;
                }
            }
        }
        Err(last_error)
    }

    /// `ssh://<user>@127.0.0.1:<port><absolute path>` for the bare repository at `repo_path`.
    pub fn url(&self, repo_path: &Path) -> String {
        let path = std::path::absolute(repo_path).unwrap_or_else(|_| repo_path.to_path_buf());
        format!("ssh://{}@127.0.0.1:{}{}", self.user, self.port, path.display())
    }

    /// The private key (OpenSSH format) that `authorized_keys` accepts: what a Secret's `identity` holds.
    pub fn client_identity(&self) -> String {
        self.client_identity.clone()
    }

    /// The `known_hosts` line for this server: `[127.0.0.1]:<port> ssh-ed25519 AAAA…`.
    pub fn known_hosts(&self) -> String {
        known_hosts_line(self.port, &self.host_public_key)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's temporary directory (config, keys, log); tests may put extra keys here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything sshd logged so far (`-e` sends its log to stderr, which goes to files here).
    pub fn log(&self) -> String {
        let mut logs: Vec<PathBuf> = fs::read_dir(self.dir.path())
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
        logs.sort();
        logs.iter().map(|p| fs::read_to_string(p).unwrap_or_default()).collect()
    }
}

impl Drop for SshServer {
    /// Kills the listening sshd (by its pid only); per-connection children exit with their clients.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `known_hosts` line for a key on `127.0.0.1:<port>` (ssh writes non-22 ports in brackets).
pub fn known_hosts_line(port: u16, public_key: &str) -> String {
    // Only "type base64" matter; the comment ssh-keygen appended is dropped.
    let key: Vec<&str> = public_key.split_whitespace().take(2).collect();
    format!("[127.0.0.1]:{port} {}", key.join(" "))
}

/// Whether this process runs as uid 0 (whatever that user is called).
fn is_root() -> bool {
    let out = Command::new("id").arg("-u").stdin(Stdio::null()).output();
    out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A self-contained sshd configuration. Why each line:
/// - `PermitRootLogin prohibit-password`: tests and CI run as root; keys only.
/// - `StrictModes no`: the temp dir's permissions are whatever the umask made them.
/// - `UsePAM no`: PAM needs root and the machine's /etc/pam.d; a non-root sshd cannot use it.
/// - `PidFile` in the temp dir: never touches /run/sshd.pid of a system sshd.
/// - password and keyboard-interactive auth off: a wrong key must fail, not prompt.
fn sshd_config(dir: &Path, authorized_keys: &Path, port: u16) -> String {
    let lines = [
        format!("ListenAddress 127.0.0.1:{port}"),
        format!("HostKey {}", dir.join("host_ed25519").display()),
        format!("PidFile {}", dir.join("sshd.pid").display()),
        format!("AuthorizedKeysFile {}", authorized_keys.display()),
        "PermitRootLogin prohibit-password".to_owned(),
        "StrictModes no".to_owned(),
        "UsePAM no".to_owned(),
        "PubkeyAuthentication yes".to_owned(),
        "PasswordAuthentication no".to_owned(),
        "KbdInteractiveAuthentication no".to_owned(),
        "AuthenticationMethods publickey".to_owned(),
        "UseDNS no".to_owned(),
        "PrintMotd no".to_owned(),
        "PrintLastLog no".to_owned(),
        "X11Forwarding no".to_owned(),
        "AllowTcpForwarding no".to_owned(),
        "LogLevel VERBOSE".to_owned(),
    ];
    lines.join("\n") + "\n"
}

/// Polls `port` until it accepts; fails early, with sshd's log, if sshd exits or times out.
fn wait_listening(child: &mut Child, port: u16, log: &Path) -> io::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        let log_text = || fs::read_to_string(log).unwrap_or_default();
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!("sshd exited ({status}): {}", log_text().trim())));
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "sshd did not listen within {START_TIMEOUT:?}: {}",
                log_text().trim()
            )));
        }
        thread::sleep(Duration::from_millis(50));
    }
}
