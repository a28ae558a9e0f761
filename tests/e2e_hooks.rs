//! End to end: a Helm chart's hooks on the real control plane. The pre-upgrade migration Job
//! runs on the real node (a real container that takes a few seconds) and must complete before
//! the rest of the chart is applied; a failing migration applies nothing else; post hooks come
//! after the rollout; hooks of other events are not run.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::Api;
use serde_json::json;

use support::fixture::{Fixture, is_ready_at, ready};
use support::realnode::{self, BUSYBOX, PLACEMENT};

const CHART: &str = "apiVersion: v2\nname: shop\nversion: 0.1.0\n";
const VALUES: &str = "tag: \"1\"\nmigration: {seconds: 4, fail: false}\n";

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - {name: web, image: "registry.example.com/web:{{ .Values.tag }}"}
"#;

/// The migration: a real container on the real node, `sleep`ing, then succeeding or failing.
fn migration() -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{{{ .Release.Name }}}}-migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      {PLACEMENT}
      containers:
        - name: migrate
          image: {BUSYBOX}
          imagePullPolicy: Never
          command: [sh, -c, "sleep {{{{ .Values.migration.seconds }}}}; echo migrated to {{{{ .Values.tag }}}}; {{{{ if .Values.migration.fail }}}}exit 1{{{{ end }}}}"]
"#
    )
}

/// A post hook that is not a Job: applied once the rest rolled out.
const POST_HOOK: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-deployed
  annotations:
    helm.sh/hook: post-install,post-upgrade
data:
  tag: "{{ .Values.tag }}"
"#;

/// A `pre-delete` hook: tugboat has no such event, so it is never applied, and the deployment
/// says so. (`test` hooks do not even reach tugboat: charts are rendered with `--skip-tests`.)
const DELETE_HOOK: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-goodbye
  annotations:
    helm.sh/hook: pre-delete
spec:
  containers:
    - {name: smoke, image: registry.example.com/smoke:1}
"#;

/// The deployment of `sha` finished and succeeded (Ready alone may still show the previous one).
fn finished_at(app: &tugboat::api::GitOpsApplication, sha: &str) -> bool {
    let last = app.status.as_ref().and_then(|s| s.deployments.last());
    is_ready_at(app, sha)
        && last.is_some_and(|d| {
            d.revision == format!("main@sha1:{sha}") && d.result == tugboat::api::DeploymentResult::Succeeded
        })
}

fn image(deployment: &Deployment) -> Option<String> {
    deployment.spec.as_ref()?.template.spec.as_ref()?.containers.first()?.image.clone()
}

#[tokio::test]
async fn a_pre_upgrade_migration_runs_to_completion_before_the_rest_is_applied() {
    let files = [
        ("chart/Chart.yaml", CHART.to_owned()),
        ("chart/values.yaml", VALUES.to_owned()),
        ("chart/templates/web.yaml", DEPLOYMENT.to_owned()),
        ("chart/templates/migrate.yaml", migration()),
        ("chart/templates/deployed.yaml", POST_HOOK.to_owned()),
        ("chart/templates/goodbye.yaml", DELETE_HOOK.to_owned()),
    ];
    let Some(f) = Fixture::start("hooks", &files, &[]).await else { return };
    if !realnode::available(&f.client).await {
        return;
    }
    let jobs: Api<Job> = Api::namespaced(f.client.clone(), &f.ns.name);
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    let config_maps: Api<ConfigMap> = Api::namespaced(f.client.clone(), &f.ns.name);
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), &f.ns.name);

    // Install: the migration (pre-install) ran, then the chart, then the post hook.
    let first = f.head();
    let spec = json!({"source": {"path": "chart", "helm": {"releaseName": "shop"}}, "healthTimeout": "90s"});
    f.create_app("shop", f.app_spec(spec)).await;
    let app = f.wait_app("shop", "the first revision deployed", |a| finished_at(a, &first)).await;
    let installed = jobs.get("shop-migrate").await.expect("the migration Job stays (before-hook-creation only)");
    assert_eq!(installed.status.as_ref().and_then(|s| s.succeeded), Some(1), "the migration completed");
    assert_eq!(image(&deployments.get("shop-web").await.expect("web")).as_deref(), Some("registry.example.com/web:1"));
    let deployed = config_maps.get("shop-deployed").await.expect("the post hook was applied");
    assert_eq!(deployed.data.unwrap_or_default().get("tag").map(String::as_str), Some("1"));
    assert!(pods.get_opt("shop-goodbye").await.expect("read").is_none(), "a pre-delete hook is never applied");
    let message = app.status.as_ref().and_then(|s| s.deployments.last()).and_then(|d| d.message.clone());
    assert!(message.unwrap_or_default().contains("Helm hooks not run: Pod/shop-goodbye"), "{:?}", ready(&app));
    let inventory = app.status.map(|s| s.inventory).unwrap_or_default();
    assert!(inventory.iter().all(|e| e.kind != "Job"), "hooks are not in the inventory: {inventory:?}");

    // Upgrade: while the new migration runs, the Deployment still runs the old image.
    let second =
        f.commit(&[("chart/values.yaml", Some("tag: \"2\"\nmigration: {seconds: 6, fail: false}\n"))], "tag 2");
    f.request_reconcile("shop").await;
    let running = f
        .eventually("a new migration Job running", || async {
            let job = jobs.get("shop-migrate").await.ok()?;
            let recreated = job.metadata.uid != installed.metadata.uid;
            (recreated && job.status.as_ref()?.active == Some(1)).then_some(job)
        })
        .await;
    let web = deployments.get("shop-web").await.expect("web");
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:1"), "nothing else applied before the migration");
    let app = f.apps().get("shop").await.expect("app");
    let reconciling = app.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Reconciling").cloned());
    assert_eq!(reconciling.map(|c| c.reason).as_deref(), Some("RunningHooks"), "{:?}", app.status);
    f.wait_app("shop", "the second revision deployed", |a| finished_at(a, &second)).await;
    let done = jobs.get("shop-migrate").await.expect("job");
    assert_eq!(done.metadata.uid, running.metadata.uid);
    let completed_at = done.status.as_ref().and_then(|s| s.completion_time.clone()).expect("completed");
    let web = deployments.get("shop-web").await.expect("web");
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:2"));
    let updated_at = web
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.manager.as_deref().is_some_and(|m| m.starts_with("tugboat/")))
        .filter_map(|m| m.time)
        .max()
        .expect("the apply's time");
    assert!(
        updated_at.0 >= completed_at.0,
        "applied at {updated_at:?}, before the migration completed at {completed_at:?}"
    );
    let deployed = config_maps.get("shop-deployed").await.expect("post hook");
    assert_eq!(deployed.data.unwrap_or_default().get("tag").map(String::as_str), Some("2"));

    // A failing migration: nothing else is applied, the application says why.
    let third = f.commit(&[("chart/values.yaml", Some("tag: \"3\"\nmigration: {seconds: 1, fail: true}\n"))], "tag 3");
    f.request_reconcile("shop").await;
    let app = f
        .wait_app("shop", "Ready=False HookFailed", |a| {
            ready(a).is_some_and(|(status, reason, _)| status == "False" && reason == "HookFailed")
        })
        .await;
    let (_, _, message) = ready(&app).expect("ready");
    assert!(
        message.contains(&format!("main@sha1:{third}")) && message.contains("nothing else was applied"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let web = deployments.get("shop-web").await.expect("web");
    assert_eq!(image(&web).as_deref(), Some("registry.example.com/web:2"), "the failed migration applied nothing");
    let applied = app.status.and_then(|s| s.last_applied_revision).unwrap_or_default();
    assert_eq!(applied, format!("main@sha1:{second}"), "the previous revision stays live");
}
