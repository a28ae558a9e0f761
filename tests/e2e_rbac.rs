//! The end-to-end operators run with only the Helm chart's RBAC (see tests/support/restricted.rs):
//! this checks that the identity they get is the chart's ServiceAccount and is really limited.

mod support;

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use support::cluster::{self, TestNamespace};

async fn allowed(client: &kube::Client, attributes: serde_json::Value) -> bool {
    let review: SelfSubjectAccessReview =
        serde_json::from_value(json!({"spec": {"resourceAttributes": attributes}})).expect("review");
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &review).await.expect("access review").status.expect("status").allowed
}

#[tokio::test]
async fn operators_in_the_e2e_tests_hold_only_the_chart_permissions() {
    if std::env::var("TUGBOAT_E2E_ADMIN").is_ok_and(|v| !v.is_empty() && v != "0") {
        eprintln!("TUGBOAT_E2E_ADMIN is set: operators run as admin");
        return;
    }
    let Some(admin) = cluster::client().await else { return };
    let ns = TestNamespace::create(&admin, "rbac").await;
    let path = support::restricted::kubeconfig_for(&admin, &ns.name).await;
    let kubeconfig = Kubeconfig::read_from(&path).expect("operator kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    let operator = kube::Client::try_from(config).expect("client");

    let n = ns.name.as_str();
    let can = [
        json!({"group": "tugboat.dev", "resource": "gitopsapplications", "verb": "watch"}),
        json!({"group": "tugboat.dev", "resource": "gitopsapplications", "subresource": "status", "verb": "patch", "namespace": n}),
        json!({"group": "tugboat.dev", "resource": "webhooks", "subresource": "status", "verb": "patch", "namespace": n}),
        json!({"group": "tugboat.dev", "resource": "outgoingwebhooks", "verb": "list"}),
        json!({"resource": "secrets", "verb": "get", "namespace": n}),
        json!({"group": "events.k8s.io", "resource": "events", "verb": "create", "namespace": n}),
        json!({"resource": "serviceaccounts", "verb": "impersonate", "namespace": n, "name": "deployer"}),
        json!({"group": "coordination.k8s.io", "resource": "leases", "verb": "update", "namespace": n, "name": "tugboat"}),
        json!({"group": "apps", "resource": "deployments", "verb": "patch", "namespace": n}),
    ];
    for attributes in can {
        assert!(allowed(&operator, attributes.clone()).await, "the chart grants {attributes}");
    }
    let cannot = [
        json!({"resource": "pods", "subresource": "exec", "verb": "create", "namespace": n}),
        json!({"group": "rbac.authorization.k8s.io", "resource": "rolebindings", "verb": "create", "namespace": n}),
        json!({"group": "tugboat.dev", "resource": "gitopsapplications", "verb": "delete", "namespace": n}),
        json!({"group": "coordination.k8s.io", "resource": "leases", "verb": "update", "namespace": "kube-system", "name": "x"}),
        json!({"group": "rbac.authorization.k8s.io", "resource": "clusterroles", "verb": "create"}),
        json!({"resource": "users", "verb": "impersonate", "name": "admin"}),
        json!({"resource": "groups", "verb": "impersonate", "name": "system:masters"}),
        json!({"resource": "nodes", "verb": "delete"}),
    ];
    for attributes in cannot {
        assert!(!allowed(&operator, attributes.clone()).await, "the chart must not grant {attributes}");
    }
}
