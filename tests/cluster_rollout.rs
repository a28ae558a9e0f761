//! The test control plane really rolls out workloads: restarts create new pods that become available.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use support::cluster::{self, TestNamespace, eventually};

const TIMEOUT: Duration = Duration::from_secs(90);

fn template(app: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}
    })
}

fn restart_patch() -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}})
}

async fn pod_names(client: &kube::Client, ns: &str, app: &str) -> Vec<String> {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
    let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await.expect("list pods");
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn deployment_restart_rolls_out_a_new_replicaset() {
    let Some(client) = cluster::client().await else { return };
    let ns = TestNamespace::create(&client, "rollout-deploy").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template("web")}
    }))
    .expect("deployment");
    api.create(&PostParams::default(), &deployment).await.expect("create deployment");

    let available = |generation_at_least: i64| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move {
                let d = api.get("web").await.ok()?;
                let status = d.status?;
                let done = status.observed_generation? >= generation_at_least
                    && status.updated_replicas == Some(2)
                    && status.available_replicas == Some(2)
                    && status.replicas == Some(2);
                done.then_some(())
            }
        }
    };
    eventually("deployment web available", TIMEOUT, available(1)).await;
    let before = pod_names(&client, &ns.name, "web").await;

    let patched = api.patch("web", &PatchParams::default(), &Patch::Merge(restart_patch())).await.expect("restart");
    let generation = patched.metadata.generation.expect("generation");
    eventually("restarted deployment web fully available", TIMEOUT, available(generation)).await;

    let replicasets: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    let sets = replicasets.list(&ListParams::default().labels("app=web")).await.expect("list replicasets");
    assert_eq!(sets.items.len(), 2, "a restart creates a second ReplicaSet");
    let full = sets.items.iter().filter(|rs| rs.status.as_ref().and_then(|s| s.available_replicas) == Some(2)).count();
    assert_eq!(full, 1, "exactly the new ReplicaSet is fully available");
    let after = eventually("old pods gone", TIMEOUT, || async {
        let names = pod_names(&client, &ns.name, "web").await;
        (names.len() == 2).then_some(names)
    })
    .await;
    assert!(after.iter().all(|p| !before.contains(p)), "all pods replaced: before {before:?}, after {after:?}");
}

#[tokio::test]
async fn statefulset_restart_replaces_its_pods() {
    let Some(client) = cluster::client().await else { return };
    let ns = TestNamespace::create(&client, "rollout-sts").await;
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": template("db")}
    }))
    .expect("statefulset");
    api.create(&PostParams::default(), &sts).await.expect("create statefulset");
    let rolled_out = |previous: Option<String>| {
        let api = api.clone();
        move || {
            let api = api.clone();
            let previous = previous.clone();
            async move {
                let s = api.get("db").await.ok()?;
                let generation = s.metadata.generation?;
                let status = s.status?;
                let done = status.observed_generation == Some(generation)
                    && status.ready_replicas == Some(2)
                    && status.updated_replicas == Some(2)
                    && status.current_revision.is_some()
                    && status.current_revision == status.update_revision
                    && status.update_revision != previous;
                done.then_some(status.update_revision)
            }
        }
    };
    let first = eventually("statefulset db ready", TIMEOUT, rolled_out(None)).await;
    api.patch("db", &PatchParams::default(), &Patch::Merge(restart_patch())).await.expect("restart");
    let second = eventually("restarted statefulset db rolled out", TIMEOUT, rolled_out(first.clone())).await;
    assert_ne!(first, second, "a restart produces a new controller revision");
}

#[tokio::test]
async fn daemonset_restart_replaces_its_pods() {
    let Some(client) = cluster::client().await else { return };
    let ns = TestNamespace::create(&client, "rollout-ds").await;
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), &ns.name);
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent")}
    }))
    .expect("daemonset");
    api.create(&PostParams::default(), &ds).await.expect("create daemonset");
    let rolled_out = |generation_at_least: i64| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move {
                let d = api.get("agent").await.ok()?;
                let status = d.status?;
                let done = status.observed_generation? >= generation_at_least
                    && status.desired_number_scheduled >= 1
                    && status.updated_number_scheduled == Some(status.desired_number_scheduled)
                    && status.number_available == Some(status.desired_number_scheduled)
                    && status.number_ready == status.desired_number_scheduled;
                done.then_some(status.desired_number_scheduled)
            }
        }
    };
    let nodes = eventually("daemonset agent available", TIMEOUT, rolled_out(1)).await;
    let before = pod_names(&client, &ns.name, "agent").await;
    let patched = api.patch("agent", &PatchParams::default(), &Patch::Merge(restart_patch())).await.expect("restart");
    eventually(
        "restarted daemonset agent available",
        TIMEOUT,
        rolled_out(patched.metadata.generation.expect("generation")),
    )
    .await;
    let after = eventually("old daemon pods gone", TIMEOUT, || async {
        let names = pod_names(&client, &ns.name, "agent").await;
        (names.len() as i32 == nodes && names.iter().all(|n| !before.contains(n))).then_some(names)
    })
    .await;
    assert_eq!(after.len() as i32, nodes);
}
