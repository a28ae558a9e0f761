//! The real node of the test environment (`testenv/node-up.sh`): containerd, runc and a
//! kubelet, so pods there really run. It is tainted, so only pods that ask for it go there:
//! [`PLACEMENT`] in a pod template. Images come from `testenv/images.sh` (never pulled).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::cluster::{kubeconfig_path, required};

/// The node's name and address (the CNI bridge's gateway: pods reach the host there).
pub const NODE: &str = "realnode-0";
pub const NODE_IP: &str = "10.244.0.1";
/// busybox-static: sh, httpd, nc, sleep …
pub const BUSYBOX: &str = "localhost/busybox:local";

/// What a pod spec needs to run on the real node (YAML, indented for a pod template's `spec:`).
pub const PLACEMENT: &str = r#"nodeSelector: {kubernetes.io/hostname: realnode-0}
      tolerations: [{key: tugboat.dev/real-node, operator: Exists, effect: NoSchedule}]
      terminationGracePeriodSeconds: 2"#;

/// `true` when the real node is there and Ready. When it is not: a failure if the test
/// environment is required (CI, `make test`), else a loud skip.
///
/// # Panics
/// When the node is required but missing or not Ready.
pub async fn available(client: &Client) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    let ready = match nodes.get_opt(NODE).await {
        Ok(Some(node)) => node
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        _ => false,
    };
    if !ready {
        assert!(!required(), "the real node {NODE} is not Ready: `make testenv-up` starts it (it needs root)");
        eprintln!("SKIPPED: no real node {NODE} (run `make testenv-up` as root)");
    }
    ready
}

/// The operator's image, built from the Dockerfile and imported into the node:
/// `TUGBOAT_TEST_IMAGE` (set by `make test`), else built now by `testenv/image.sh`.
pub fn operator_image() -> String {
    if let Some(image) = std::env::var("TUGBOAT_TEST_IMAGE").ok().filter(|i| !i.is_empty()) {
        return image;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let state = kubeconfig_path().parent().map(PathBuf::from).unwrap_or_else(|| root.join("target/testenv"));
    let output = Command::new(root.join("testenv/image.sh")).arg(state).output().expect("run testenv/image.sh");
    assert!(output.status.success(), "testenv/image.sh failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Container IDs (`containerd://…`) of the running pods matching `selector`, by pod name.
pub async fn container_ids(client: &Client, namespace: &str, selector: &str) -> BTreeMap<String, Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default().labels(selector)).await.expect("list pods");
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let ids = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|cs| cs.iter().filter_map(|c| c.container_id.clone()).collect())
                .unwrap_or_default();
            (p.name_any(), ids)
        })
        .collect()
}

/// Waits for [`ready_pods`]; on timeout, fails with what stands in the way: each pod's phase
/// and conditions, and the node's taints (a full disk shows as `disk-pressure`).
///
/// # Panics
/// When the pods are not ready within `timeout`.
pub async fn wait_ready_pods(
    client: &Client,
    namespace: &str,
    selector: &str,
    want: usize,
    timeout: std::time::Duration,
) -> Vec<Pod> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(pods) = ready_pods(client, namespace, selector, want).await {
            return pods;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "{want} pods {selector} not ready on {NODE} after {timeout:?}:\n{}",
                describe(client, namespace, selector).await
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Each matching pod's phase and conditions, and the real node's taints.
async fn describe(client: &Client, namespace: &str, selector: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut out = String::new();
    for pod in pods.list(&ListParams::default().labels(selector)).await.map(|l| l.items).unwrap_or_default() {
        let status = pod.status.clone().unwrap_or_default();
        let conditions: Vec<String> = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| format!("{}={} {}", c.type_, c.status, c.message.unwrap_or_default()))
            .collect();
        out.push_str(&format!("  pod {}: {:?} {conditions:?}\n", pod.name_any(), status.phase));
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let taints = nodes.get_opt(NODE).await.ok().flatten().and_then(|n| n.spec?.taints).unwrap_or_default();
    let taints: Vec<String> = taints.into_iter().map(|t| format!("{}:{}", t.key, t.effect)).collect();
    out.push_str(&format!("  node {NODE} taints: {taints:?}"));
    out
}

/// The pods matching `selector` when every one runs on the real node with all containers
/// ready, `want` of them; `None` otherwise.
pub async fn ready_pods(client: &Client, namespace: &str, selector: &str, want: usize) -> Option<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default().labels(selector)).await.ok()?;
    let live: Vec<Pod> = list.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    let all_ready = live.iter().all(|p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(NODE)
            && p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.ready))
    });
    (live.len() == want && all_ready).then_some(live)
}
