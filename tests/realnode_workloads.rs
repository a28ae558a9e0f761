//! Rollouts, restarts and health against real pods: a Deployment, a DaemonSet, a StatefulSet
//! and a Job on the test environment's real node (containerd + kubelet), whose containers
//! become ready only after their readiness probes pass. tugboat may report the application
//! healthy only once they are, and a `rollout-restart=all` call must replace the containers.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;

use support::fixture::{Fixture, is_ready_at};
use support::http::post;
use support::realnode::{self, BUSYBOX, NODE, PLACEMENT};

/// Ready only after a few seconds: a health check that trusted the API objects too early
/// would report the application healthy while these pods are still not ready.
fn container(name: &str) -> String {
    format!(
        r#"      containers:
        - name: {name}
          image: {BUSYBOX}
          imagePullPolicy: Never
          command: [sh, -c, 'echo "started with $SERVICE_TAG"; sleep 3; touch /tmp/ready; exec sleep 3600']
          env: [{{name: SERVICE_TAG, value: "${{SERVICE_TAG:-stable}}"}}]
          readinessProbe:
            exec: {{command: [test, -f, /tmp/ready]}}
            periodSeconds: 1"#
    )
}

fn manifests() -> Vec<(&'static str, String)> {
    let template = |app: &str| {
        format!(
            "  template:\n    metadata:\n      labels: {{app: {app}}}\n    spec:\n      {PLACEMENT}\n{}\n",
            container(app)
        )
    };
    vec![
        (
            "deploy/deployment.yaml",
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: web}}\n{}",
                template("web")
            ),
        ),
        (
            "deploy/daemonset.yaml",
            format!(
                "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels: {{app: agent}}\n{}",
                template("agent")
            ),
        ),
        (
            "deploy/statefulset.yaml",
            format!(
                "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  serviceName: db\n  replicas: 2\n  selector:\n    matchLabels: {{app: db}}\n{}",
                template("db")
            ),
        ),
        (
            "deploy/job.yaml",
            format!(
                r#"apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {{app: migrate}}
    spec:
      {PLACEMENT}
      restartPolicy: Never
      containers:
        - name: migrate
          image: {BUSYBOX}
          imagePullPolicy: Never
          command: [sh, -c, 'echo "migrating on $NODE_NAME"; sleep 1; echo done']
          env: [{{name: NODE_NAME, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}]
"#
            ),
        ),
    ]
}

/// The workloads and how many pods each has on the real node.
const WORKLOADS: &[(&str, usize)] = &[("app=web", 2), ("app=agent", 1), ("app=db", 2)];

async fn all_ready(f: &Fixture) -> Result<(), String> {
    for (selector, want) in WORKLOADS {
        if realnode::ready_pods(&f.client, &f.ns.name, selector, *want).await.is_none() {
            return Err(format!("{selector}: not {want} ready pods on {NODE}"));
        }
    }
    Ok(())
}

async fn ids(f: &Fixture) -> BTreeMap<&'static str, Vec<String>> {
    let mut all = BTreeMap::new();
    for (selector, _) in WORKLOADS {
        let ids = realnode::container_ids(&f.client, &f.ns.name, selector).await;
        all.insert(*selector, ids.into_values().flatten().collect());
    }
    all
}

#[tokio::test]
async fn deployments_daemonsets_statefulsets_and_jobs_roll_out_and_restart_on_a_real_node() {
    let Some(f) = Fixture::start("realnode", &manifests(), &[]).await else { return };
    if !realnode::available(&f.client).await {
        return;
    }
    let head = f.head();
    f.create_app("fleet", f.app_spec(json!({"healthTimeout": "90s"}))).await;

    // Healthy only once every real container passed its readiness probe.
    f.wait_app("fleet", "Ready at the first commit", |a| is_ready_at(a, &head)).await;
    all_ready(&f).await.unwrap_or_else(|e| panic!("reported Ready while {e}"));
    let before = ids(&f).await;
    for (selector, ids) in &before {
        assert!(ids.iter().all(|id| id.starts_with("containerd://")), "{selector}: real containers {ids:?}");
    }

    // The Job ran to completion in a real container.
    let jobs: Api<Job> = Api::namespaced(f.client.clone(), &f.ns.name);
    f.eventually("Job migrate complete", || async {
        (jobs.get("migrate").await.ok()?.status?.succeeded? == 1).then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), &f.ns.name);
    let job_pod = pods.list(&ListParams::default().labels("app=migrate")).await.expect("pods").items;
    let job_pod = job_pod.first().expect("the Job's pod");
    assert_eq!(job_pod.spec.as_ref().and_then(|s| s.node_name.as_deref()), Some(NODE));
    let log = pods.logs(&kube::ResourceExt::name_any(job_pod), &Default::default()).await.expect("Job log");
    assert_eq!(log.trim(), format!("migrating on {NODE}\ndone"));

    // A call restarts every workload: each container is replaced, health is awaited again.
    let path = f.create_webhook("restart", json!({"targets": [{"name": "fleet"}]})).await;
    let reply =
        post(f.operator.trigger_port, &format!("{path}?SERVICE_TAG=canary&rollout-restart=all"), &[], b"").await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let app = f
        .wait_app("fleet", "the restart deployment finished", |a| {
            a.status
                .as_ref()
                .and_then(|s| s.deployments.last())
                .is_some_and(|d| d.result == tugboat::api::DeploymentResult::Succeeded && !d.restarted.is_empty())
        })
        .await;
    all_ready(&f).await.unwrap_or_else(|e| panic!("the restart was reported done while {e}"));
    let restarted = &app.status.as_ref().and_then(|s| s.deployments.last()).expect("deployment").restarted;
    for kind in ["Deployment/web", "DaemonSet/agent", "StatefulSet/db"] {
        assert!(restarted.iter().any(|r| r == kind), "{kind} restarted: {restarted:?}");
    }
    let after = ids(&f).await;
    for (selector, old) in &before {
        let new = &after[selector];
        assert!(new.iter().all(|id| !old.contains(id)), "{selector}: containers replaced: {old:?} -> {new:?}");
    }
    for (selector, _) in WORKLOADS {
        for pod in pods.list(&ListParams::default().labels(selector)).await.expect("pods").items {
            let name = kube::ResourceExt::name_any(&pod);
            let log = pods.logs(&name, &Default::default()).await.unwrap_or_default();
            assert!(log.starts_with("started with canary"), "{name} runs with the call's variable: {log}");
        }
    }
}
