//! Runs a build tool (`kustomize`, `helm`) hermetically: a cleared environment, a private HOME,
//! its own process group killed on timeout, a cap on what it may print and on its memory.
//! The tool sees the repository's files and nothing of the operator's.

use std::os::unix::process::ExitStatusExt;
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
        // kustomize runs git for remote bases (when allowed): never a prompt, no machine config.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
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
        let (out, err) = tokio::join!(read_capped(stdout, tool.max_output), read_head(stderr, MAX_STDERR));
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
    let stderr = String::from_utf8_lossy(&err).trim().to_owned();
    let mut message = match (stderr.is_empty(), status.code(), status.signal()) {
        (false, _, _) => stderr,
        (true, Some(code), _) => format!("exited with status {code}"),
        (true, None, signal) => format!("was killed by signal {}", signal.unwrap_or_default()),
    };
    if message.contains("out of memory") || status.signal() == Some(9) || status.signal() == Some(11) {
        message.push_str(" (the build tool's memory limit: --build-max-memory)");
    }
    Err(BuildError::Failed { tool: tool.name, message })
}

/// The first `keep` bytes of `pipe`, reading (and dropping) the rest so the tool never blocks
/// or dies on a full pipe while it explains itself.
async fn read_head(pipe: Option<impl AsyncRead + Unpin>, keep: usize) -> Vec<u8> {
    let mut head = Vec::new();
    let Some(mut pipe) = pipe else { return head };
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return head,
            Ok(n) => head.extend_from_slice(&chunk[..n.min(keep.saturating_sub(head.len()))]),
        }
    }
}

/// Everything `pipe` gives, or `None` once it passes `cap` bytes (the caller kills the tool).
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, cap: u64) -> Option<Vec<u8>> {
    let mut buffer = Vec::new();
    let Some(pipe) = pipe else { return Some(buffer) };
    let mut limited = pipe.take(cap.saturating_add(1));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> (Tool, Vec<String>) {
        let tool = Tool {
            name: "helm",
            program: PathBuf::from("sh"),
            flag: "--helm-bin",
            timeout: Duration::from_secs(10),
            max_output: 1 << 20,
            max_memory: 0,
        };
        (tool, vec!["-c".to_owned(), script.to_owned()])
    }

    fn dirs() -> (PathBuf, PathBuf) {
        let base = std::env::temp_dir().join(format!("tugboat-process-unit-{}", std::process::id()));
        let home = base.join("home");
        std::fs::create_dir_all(&home).unwrap();
        (base, home)
    }

    #[tokio::test]
    async fn the_tool_sees_a_private_home_and_nothing_of_the_operators_environment() {
        let (dir, home) = dirs();
        // `cargo test` sets CARGO_MANIFEST_DIR for this process: the tool must not see it.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let (tool, args) = sh("echo \"$HOME|${CARGO_MANIFEST_DIR:-unset}|$HELM_CACHE_HOME|$KUBECONFIG\"");
        let out = run(&tool, &args, &dir, &home).await.unwrap();
        let expected = format!("{}|unset|{}|/dev/null\n", home.display(), home.join("cache").display());
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[tokio::test]
    async fn failures_timeouts_floods_and_missing_binaries_are_told_apart() {
        let (dir, home) = dirs();
        let (tool, args) = sh("echo 'Error: parse error at (shop/templates/a.yaml:7)' >&2; exit 1");
        let failed = run(&tool, &args, &dir, &home).await.unwrap_err();
        assert_eq!(
            failed,
            BuildError::Failed { tool: "helm", message: "Error: parse error at (shop/templates/a.yaml:7)".into() }
        );

        let (tool, args) = sh("yes 0123456789abcdef");
        let flood = run(&tool, &args, &dir, &home).await.unwrap_err();
        assert_eq!(flood, BuildError::OutputTooLarge { tool: "helm", limit: 1 << 20 });

        let (mut tool, args) = sh("sleep 30 & sleep 30; wait");
        tool.timeout = Duration::from_millis(300);
        let started = std::time::Instant::now();
        assert_eq!(run(&tool, &args, &dir, &home).await.unwrap_err(), BuildError::Timeout { tool: "helm", seconds: 0 });
        assert!(started.elapsed() < Duration::from_secs(5), "killed, not waited for");

        let (mut tool, args) = sh("true");
        tool.program = PathBuf::from("/nonexistent/helm");
        let missing = run(&tool, &args, &dir, &home).await.unwrap_err().to_string();
        assert_eq!(
            missing,
            "the helm binary \"/nonexistent/helm\" cannot be run: set --helm-bin, or use the tugboat image, which ships it"
        );
    }

    #[tokio::test]
    async fn a_long_error_is_kept_from_its_start_and_the_tool_is_not_cut_off() {
        let (dir, home) = dirs();
        // 100 KiB of stderr (helm's include recursion prints 130 KB), then a normal exit 1.
        let (tool, args) = sh("echo 'Error: recursion.self: first line' >&2; yes nested | head -c 100000 >&2; exit 1");
        let BuildError::Failed { message, .. } = run(&tool, &args, &dir, &home).await.unwrap_err() else {
            panic!("not a failure")
        };
        assert!(message.starts_with("Error: recursion.self: first line"), "{}", &message[..80]);
        assert!(message.len() <= MAX_STDERR, "{}", message.len());
    }

    #[tokio::test]
    async fn a_tool_over_its_memory_limit_dies_alone() {
        let (dir, home) = dirs();
        let (mut tool, args) = sh("x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}");
        tool.max_memory = 32 << 20;
        let error = run(&tool, &args, &dir, &home).await.unwrap_err().to_string();
        assert!(error.starts_with("helm failed: ") && error.contains("--build-max-memory"), "{error}");
    }
}
