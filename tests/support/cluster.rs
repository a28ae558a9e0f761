//! Access to the test control plane started by `make testenv-up` (or `make test`).
//!
//! A cluster test calls [`client`]. When the control plane is expected — in CI, or when
//! `TUGBOAT_REQUIRE_CLUSTER=1` (set by `make test`) — and cannot be reached, the test fails.
//! Only a plain local `cargo test` without a control plane skips cluster tests, loudly.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Path of the kubeconfig the harness writes: `TUGBOAT_TEST_KUBECONFIG`, else `target/testenv/kubeconfig`.
pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os("TUGBOAT_TEST_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testenv/kubeconfig"))
}

/// Is the test environment expected (CI, or `TUGBOAT_REQUIRE_CLUSTER`)? Then a test that needs
/// it fails instead of skipping.
pub fn required() -> bool {
    let set = |name: &str| std::env::var(name).map(|v| !v.is_empty() && v != "0" && v != "false").unwrap_or(false);
    set("CI") || set("TUGBOAT_REQUIRE_CLUSTER")
}

/// A testenv binary (helm, kubeconform, kube-apiserver, …), or `None` with a notice when it is
/// not built and the test environment is not [`required`].
///
/// # Panics
/// When the binary is missing and the test environment is required.
pub fn testenv_tool(name: &str) -> Option<PathBuf> {
    let path = testenv_bin(name);
    if path.exists() {
        return Some(path);
    }
    assert!(!required(), "{} is missing: run `make testenv-build`", path.display());
    eprintln!("SKIPPED: {} is missing (run `make testenv-build`)", path.display());
    None
}

/// A client for the test control plane, or `None` (with a message) when none is expected.
///
/// # Panics
/// When the control plane is expected but missing or unreachable: a cluster test never
/// passes by skipping in CI.
pub async fn client() -> Option<Client> {
    let path = kubeconfig_path();
    let required = required();
    let config = match Kubeconfig::read_from(&path) {
        Ok(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {} is unusable: {e}", path.display())),
        Err(e) if required => panic!(
            "the test control plane is required (CI or TUGBOAT_REQUIRE_CLUSTER) but {} cannot be read: {e}; run `make testenv-up`",
            path.display()
        ),
        Err(_) => {
            eprintln!("SKIPPED: no test control plane at {} (run `make test` or `make testenv-up`)", path.display());
            return None;
        }
    };
    let client = Client::try_from(config).expect("client from kubeconfig");
    match tokio::time::timeout(Duration::from_secs(20), client.apiserver_version()).await {
        Ok(Ok(_)) => Some(client),
        Ok(Err(e)) => panic!("the test control plane at {} does not answer: {e}", path.display()),
        Err(_) => panic!("the test control plane at {} did not answer within 20s", path.display()),
    }
}

/// Path of a testenv binary (kubectl, helm, …) from the build cache.
pub fn testenv_bin(name: &str) -> PathBuf {
    let cache = std::env::var_os("TUGBOAT_TESTENV_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        base.join("tugboat/testenv")
    });
    cache.join("bin").join(name)
}

/// A fresh namespace for one test, deleted when dropped (best effort).
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{:08x}", rand_u32());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .expect("namespace object");
        namespaces.create(&PostParams::default(), &ns).await.expect("create test namespace");
        Self { name, client: client.clone() }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let client = self.client.clone();
        let name = self.name.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let namespaces: Api<Namespace> = Api::all(client);
                let _ = namespaces.delete(&name, &DeleteParams::background()).await;
            });
        }
    }
}

/// A random number from the OS, without another dependency.
pub fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish() as u32
}

/// Polls `check` every 200 ms until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Applies tugboat's CRDs (server-side apply) and waits until each is Established.
pub async fn install_crds(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in tugboat::crds::all() {
        let name = crd.metadata.name.clone().expect("crd name");
        crds.patch(&name, &PatchParams::apply("tugboat-tests").force(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        eventually(&format!("CRD {name} Established"), Duration::from_secs(30), || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await.ok()?;
                let established =
                    crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        })
        .await;
    }
}
