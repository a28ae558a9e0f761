//! Runs end-to-end operators with only the Helm chart's RBAC: a token of the chart's
//! ServiceAccount, whose Roles come from `helm template` of `charts/tugboat`.
//!
//! Once per test process: render the chart's ServiceAccount and RBAC for a release in the
//! namespace `tugboat-e2e`, apply them, request a token for the ServiceAccount and write a
//! kubeconfig that uses it. Per test namespace: the chart's Role and binding for its own
//! namespace (its Lease and Webhook path key),
//! placed where the test operator keeps its Lease (its own namespace, so tests side by side
//! never compete for one Lease). `e2e-values.yaml` adds to the chart's default deploy rules
//! the cluster-wide kinds the tests deploy. Set `TUGBOAT_E2E_ADMIN=1` to run operators as
//! cluster admin.

use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::cluster::{kubeconfig_path, testenv_bin};

/// Namespace and ServiceAccount of the chart release the tests' operators run as.
pub const RELEASE_NAMESPACE: &str = "tugboat-e2e";
pub const SERVICE_ACCOUNT: &str = "tugboat-e2e";
const FIELD_MANAGER: &str = "tugboat-e2e-rbac";

/// The chart's RBAC as rendered for the test release.
struct Rendered {
    kubeconfig: PathBuf,
    leader_election: Vec<Value>,
}

static RENDERED: OnceCell<Option<Rendered>> = OnceCell::const_new();

fn admin_requested() -> bool {
    std::env::var("TUGBOAT_E2E_ADMIN").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The ServiceAccount applications act as by default (`--default-service-account`).
pub const TENANT_ACCOUNT: &str = "tugboat-deployer";
/// The chart's ClusterRole of what applications may deploy, for the test release.
const DEPLOYER_ROLE: &str = "tugboat-e2e-deployer";

/// The kubeconfig an operator for `namespace` runs with: the chart ServiceAccount's token (the
/// default), or the admin kubeconfig when `TUGBOAT_E2E_ADMIN` is set or helm is not built.
/// The namespace is prepared as a tenant, as the chart's `tenancy.namespaces` does: its
/// applications act as its `tugboat-deployer` ServiceAccount.
pub async fn kubeconfig_for(client: &Client, namespace: &str) -> PathBuf {
    if admin_requested() {
        allow_deploys(client, namespace, namespace).await;
        return kubeconfig_path();
    }
    let rendered = RENDERED.get_or_init(|| install(client.clone())).await;
    allow_deploys(client, namespace, namespace).await;
    let Some(rendered) = rendered else { return kubeconfig_path() };
    for object in &rendered.leader_election {
        let mut object = object.clone();
        object["metadata"]["namespace"] = json!(namespace);
        apply(client, &object).await;
    }
    rendered.kubeconfig.clone()
}

/// Lets the applications of `tenant` deploy into `into` (docs/install.md, "Tenants"): the
/// tenant's default ServiceAccount, bound in `into` to the chart's deployer ClusterRole (the
/// built-in `admin` when the chart is not installed: operators then run as admin).
pub async fn allow_deploys(client: &Client, tenant: &str, into: &str) {
    let chart = !admin_requested() && RENDERED.get_or_init(|| install(client.clone())).await.is_some();
    let role = if chart { DEPLOYER_ROLE } else { "admin" };
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": TENANT_ACCOUNT, "namespace": tenant}});
    apply(client, &account).await;
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("{TENANT_ACCOUNT}-{tenant}"), "namespace": into},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": TENANT_ACCOUNT, "namespace": tenant}],
    });
    apply(client, &binding).await;
}

async fn install(client: Client) -> Option<Rendered> {
    let helm = testenv_bin("helm");
    if !helm.exists() {
        assert!(
            !super::cluster::required(),
            "{} is missing: the RBAC-restricted e2e run needs it (make testenv-build)",
            helm.display()
        );
        eprintln!("NOTICE: {} is missing: operators run as cluster admin", helm.display());
        return None;
    }
    let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/tugboat");
    let output = Command::new(&helm)
        .args(["template", "tugboat"])
        .arg(&chart)
        .args(["--namespace", RELEASE_NAMESPACE, "--kube-version", "1.35.0"])
        .args(["--set", &format!("fullnameOverride={SERVICE_ACCOUNT}")])
        .arg("--values")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/e2e-values.yaml"))
        .args(["--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml"])
        .output()
        .expect("run helm template");
    assert!(output.status.success(), "helm template: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let objects: Vec<Value> = text
        .split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .filter(Value::is_object)
        .collect();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NAMESPACE}});
    namespaces
        .patch(RELEASE_NAMESPACE, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&namespace))
        .await
        .expect("create the release namespace");
    let mut leader_election = Vec::new();
    for object in &objects {
        apply(&client, object).await;
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        if name.ends_with("-own-namespace") {
            leader_election.push(object.clone());
        }
    }
    assert_eq!(leader_election.len(), 2, "the chart has a Role and RoleBinding for its own namespace: {text}");

    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 6 * 3600}})).expect("token request");
    let token = accounts
        .create_token_request(SERVICE_ACCOUNT, &PostParams::default(), &request)
        .await
        .expect("token for the chart's ServiceAccount")
        .status
        .expect("token status")
        .token;
    Some(Rendered { kubeconfig: write_kubeconfig(&token), leader_election })
}

/// The admin kubeconfig's cluster with the ServiceAccount's token as the only user.
fn write_kubeconfig(token: &str) -> PathBuf {
    let admin = std::fs::read_to_string(kubeconfig_path()).expect("read the admin kubeconfig");
    let admin: Value = serde_saphyr::from_str(&admin).expect("kubeconfig YAML");
    let cluster = admin["clusters"][0]["cluster"].clone();
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": cluster}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "chart-rbac", "context": {"cluster": "testenv", "user": SERVICE_ACCOUNT}}],
        "current-context": "chart-rbac",
    });
    let path = std::env::temp_dir().join(format!("tugboat-e2e-{}.kubeconfig", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("kubeconfig JSON")).expect("write kubeconfig");
    path
}

/// Server-side applies one rendered object.
async fn apply(client: &Client, object: &Value) {
    let object: DynamicObject = serde_json::from_value(object.clone()).expect("rendered object");
    let types = object.types.clone().expect("apiVersion and kind");
    let (group, version) = types.api_version.split_once('/').unwrap_or(("", types.api_version.as_str()));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, &types.kind);
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk).await.expect("kind served");
    let api: Api<DynamicObject> = match (&capabilities.scope, object.namespace()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), &ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    };
    api.patch(&object.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
        .await
        .unwrap_or_else(|e| panic!("apply {} {}: {e}", types.kind, object.name_any()));
}
