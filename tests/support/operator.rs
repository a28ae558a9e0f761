//! Runs the real `tugboat` binary against the test control plane, one process per test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::git_repo::TempDir;

/// A running `tugboat run`, killed when dropped. Its log is kept in a file and printed on drop
/// when the test panicked, so a failing end-to-end test shows what the operator did.
pub struct Operator {
    child: Child,
    /// `POD_NAME` of the process: its identity in the leader Lease.
    pub name: String,
    pub probe_port: u16,
    pub trigger_port: u16,
    log: PathBuf,
    _cache: TempDir,
}

impl Operator {
    /// Starts the operator watching only `namespace`, with extra flags, and waits until it is ready.
    ///
    /// Leader election stays on (the default), with its Lease in `namespace`, so that tests
    /// running side by side never compete for one Lease. The identity is the same for every
    /// start in one namespace, as for a container restarted in its pod: a restarted operator
    /// renews its own Lease at once instead of waiting for it to expire.
    pub async fn start(namespace: &str, extra: &[&str]) -> Self {
        Self::start_named(namespace, &format!("tugboat-{namespace}"), extra).await
    }

    /// Like [`Operator::start`], as replica `name` (its `POD_NAME` and Lease identity).
    pub async fn start_named(namespace: &str, name: &str, extra: &[&str]) -> Self {
        Self::launch(Some(namespace), namespace, name, extra).await
    }

    /// An operator for every namespace (as the chart installs it by default), its Lease in
    /// `lease_namespace`: what a test of several tenants on one operator needs. Every
    /// namespace a test gives it applications in must be prepared as a tenant
    /// (`restricted::allow_deploys`).
    pub async fn start_for_all_namespaces(lease_namespace: &str, extra: &[&str]) -> Self {
        Self::launch(None, lease_namespace, &format!("tugboat-{lease_namespace}"), extra).await
    }

    async fn launch(watch: Option<&str>, namespace: &str, name: &str, extra: &[&str]) -> Self {
        let cache = TempDir::new("tugboat-cache").expect("cache dir");
        let probe_port = free_port();
        let trigger_port = free_port();
        let log = cache.path().join("operator.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        // Only the Helm chart's RBAC, unless TUGBOAT_E2E_ADMIN is set (see `restricted`).
        let client = super::cluster::client().await.expect("an operator needs the test control plane");
        let kubeconfig = super::restricted::kubeconfig_for(&client, namespace).await;
        let child = Command::new(env!("CARGO_BIN_EXE_tugboat"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(watch.map(|ns| ["--namespace", ns]).into_iter().flatten())
            .arg("--probe-addr")
            .arg(format!("127.0.0.1:{probe_port}"))
            .arg("--trigger-addr")
            .arg(format!("127.0.0.1:{trigger_port}"))
            .arg("--cache-dir")
            .arg(cache.path().join("git"))
            .arg("--leader-election-namespace")
            .arg(namespace)
            // The test Git and ssh servers listen on 127.0.0.1, which the Git egress guard
            // refuses unless allowed.
            .arg("--git-egress-allow")
            .arg("127.0.0.0/8")
            // The pinned build tools of the test environment (the image ships the same versions).
            .arg("--kustomize-bin")
            .arg(super::cluster::testenv_bin("kustomize"))
            .arg("--helm-bin")
            .arg(super::cluster::testenv_bin("helm"))
            .args(extra)
            .env("POD_NAME", name)
            // TUGBOAT_TEST_OPERATOR_LOG overrides the filter when a failing test needs more.
            .env(
                "RUST_LOG",
                std::env::var("TUGBOAT_TEST_OPERATOR_LOG").unwrap_or_else(|_| "info,tugboat=debug,kube=warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start tugboat");
        let operator = Self { child, name: name.to_owned(), probe_port, trigger_port, log, _cache: cache };
        operator.wait_ready().await;
        operator
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.probe_port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
                let mut response = String::new();
                let _ = stream.read_to_string(&mut response).await;
                if response.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("tugboat did not become ready; log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, once the process has exited by itself.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Peak and current resident memory in KiB (`VmHWM`, `VmRSS` from /proc), while it runs.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let field = |name: &str| {
            status.lines().find_map(|l| l.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        };
        Some((field("VmHWM:")?, field("VmRSS:")?))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- tugboat operator log ----\n{}\n---- end of operator log ----", self.log_text());
        }
    }
}

/// A free loopback port, chosen by the kernel.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}
