//! Runs a build tool (`kustomize`, `helm`) hermetically: a cleared environment, a private HOME,
//! its own process group killed on timeout, a cap on what it may print and on its memory.
//! The tool sees the repository's files and nothing of the operator's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::BuildError;

/// How much of a failing tool's stderr is kept for the message.
const MAX_STDERR: usize = 16 << 10;

/// One build tool and the limits it runs within.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// `kustomize` or `helm`, for messages.
    pub name: &'static str,
    /// The binary; a bare name is looked up on `PATH`.
    pub program: PathBuf,
    /// The operator flag that sets [`Tool::program`], named when the binary is missing.
    pub flag: &'static str,
    pub timeout: Duration,
    /// Output beyond this many bytes kills the tool: the build is refused.
    pub max_output: u64,
    /// The tool's data segment limit (`RLIMIT_DATA`: Go's heap counts): a chart that would
    /// allocate more dies alone instead of taking the operator's memory. 0: no limit.
    pub max_memory: u64,
}

/// Runs `tool args` in `dir` with `home` as HOME (and every XDG directory below it); returns
/// stdout. A non-zero exit becomes [`BuildError::Failed`] with the tool's stderr.
pub async fn run(tool: &Tool, args: &[String], dir: &Path, home: &Path) -> Result<Vec<u8>, BuildError> {
    let mut cmd = Command::new(&tool.program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECONFIG", "/dev/null")
        .env("LC_ALL", "C")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if tool.max_memory > 0 {
        // Go's garbage collector works to stay below this; the rlimit is the hard stop.
        cmd.env("GOMEMLIMIT", (tool.max_memory / 10 * 8).to_string());
    }
    let mut child = cmd.spawn().map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            BuildError::ToolMissing { tool: tool.name, program: tool.program.display().to_string(), flag: tool.flag }
        }
        _ => BuildError::Io { what: format!("start {}", tool.name), message: error.to_string() },
    })?;
    let pid = child.id();
    if let (Some(pid), true) = (pid, tool.max_memory > 0) {
        limit_memory(pid, tool.max_memory);
    }
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let (out, err) = tokio::join!(read_capped(stdout, tool.max_output), read_capped(stderr, MAX_STDERR as u64));
        (out, err, child.wait().await)
    };
    let (out, err, status) = match tokio::time::timeout(tool.timeout, work).await {
        Ok(done) => done,
        Err(_elapsed) => {
            kill(pid).await;
            return Err(BuildError::Timeout { tool: tool.name, seconds: tool.timeout.as_secs() });
        }
    };
    let Some(out) = out else {
        kill(pid).await;
        return Err(BuildError::OutputTooLarge { tool: tool.name, limit: tool.max_output });
    };
    let status =
        status.map_err(|e| BuildError::Io { what: format!("wait for {}", tool.name), message: e.to_string() })?;
    if status.success() {
        return Ok(out);
    }
    let stderr = String::from_utf8_lossy(&err.unwrap_or_default()).trim().to_owned();
    let message = match (stderr.is_empty(), status.code()) {
        (false, _) => stderr,
        (true, Some(code)) => format!("exited with status {code}"),
        (true, None) => "was killed (out of memory? see --build-max-memory)".to_owned(),
    };
    Err(BuildError::Failed { tool: tool.name, message })
}

/// Everything `pipe` gives, or `None` once it passes `cap` bytes (the caller kills the tool).
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, cap: u64) -> Option<Vec<u8>> {
    let mut buffer = Vec::new();
    let Some(pipe) = pipe else { return Some(buffer) };
    let mut limited = pipe.take(cap + 1);
    if limited.read_to_end(&mut buffer).await.is_err() {
        return Some(buffer);
    }
    (buffer.len() as u64 <= cap).then_some(buffer)
}

fn limit_memory(pid: u32, bytes: u64) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if let Err(error) = rlimit::prlimit(pid, rlimit::Resource::DATA, Some((bytes, bytes)), None) {
        tracing::warn!(%error, "could not limit a build tool's memory");
    }
}

async fn kill(pid: Option<u32>) {
    if let Some(pid) = pid {
        crate::source::kill_process_group(pid).await;
    }
}
