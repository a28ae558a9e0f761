//! End to end: `spec.dependsOn` — a chain of three applications deploys in order, a missing
//! dependency and a cycle stall naming them, a held webhook call runs once its dependency is
//! ready, and dependencies on other namespaces need the operator's opt-in.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tugboat::api::{DeploymentResult, GitOpsApplication};

use support::fixture::{Fixture, is_ready_at, ready};
use support::http::post;

/// A Deployment `name` of one replica; available only `ready_after` seconds after its pod is
/// ready, so its application is Ready that much later than it applied.
fn workload(name: &str, ready_after: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  minReadySeconds: {ready_after}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: registry.example.com/{name}:${{TAG:-1}}
"#
    )
}

fn files() -> Vec<(&'static str, String)> {
    vec![
        ("db/deploy.yaml", workload("db", 4)),
        ("api/deploy.yaml", workload("api", 4)),
        ("web/deploy.yaml", workload("web", 0)),
        ("x/deploy.yaml", workload("x", 0)),
        ("y/deploy.yaml", workload("y", 0)),
    ]
}

fn spec(f: &Fixture, path: &str, depends_on: &[&str]) -> serde_json::Value {
    let depends_on: Vec<_> = depends_on.iter().map(|name| json!({"name": name})).collect();
    f.app_spec(json!({"source": {"path": path}, "dependsOn": depends_on}))
}

/// The reason and message of the Ready condition, if it is False.
fn not_ready(app: &GitOpsApplication) -> Option<(String, String)> {
    ready(app).filter(|(status, _, _)| status == "False").map(|(_, reason, message)| (reason, message))
}

fn stalled(app: &GitOpsApplication) -> Option<(String, String)> {
    let c = app.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Stalled" && c.status == "True")?;
    Some((c.reason.clone(), c.message.clone()))
}

/// When the application's first deployment started and finished (it succeeded).
fn first_deployment(app: &GitOpsApplication) -> (jiff::Timestamp, jiff::Timestamp) {
    let record = app.status.as_ref().and_then(|s| s.deployments.first()).expect("a deployment");
    assert_eq!(record.result, DeploymentResult::Succeeded, "{record:?}");
    (record.started_at.0, record.finished_at.as_ref().expect("finished").0)
}

#[tokio::test]
async fn a_chain_of_three_deploys_in_order_and_a_missing_dependency_waits_for_its_creation() {
    let Some(f) = Fixture::start("depends", &files(), &[]).await else { return };
    let sha = f.head();
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);

    // The last of the chain first: its dependency does not exist yet.
    f.create_app("web", spec(&f, "web", &["api"])).await;
    let web = f.wait_app("web", "Stalled: api missing", |a| stalled(a).is_some()).await;
    let (reason, message) = stalled(&web).expect("stalled");
    assert_eq!(reason, "DependencyNotFound");
    assert!(message.contains("spec.dependsOn[0]") && message.contains("/api does not exist"), "{message}");

    // api appears, itself waiting for db (missing): web now waits for api.
    f.create_app("api", spec(&f, "api", &["db"])).await;
    f.wait_app("api", "Stalled: db missing", |a| stalled(a).is_some_and(|(r, _)| r == "DependencyNotFound")).await;
    let web = f
        .wait_app("web", "waiting for api", |a| {
            stalled(a).is_none() && not_ready(a).is_some_and(|(r, _)| r == "DependencyNotReady")
        })
        .await;
    assert!(not_ready(&web).expect("not ready").1.contains("/api"), "the message names the dependency: {web:?}");
    assert!(deployments.get_opt("web").await.expect("read").is_none(), "nothing of web applied yet");

    // db appears: db, then api, then web deploy, each once the one before is Ready.
    f.create_app("db", spec(&f, "db", &[])).await;
    let db = f.wait_app("db", "Ready", |a| is_ready_at(a, &sha)).await;
    let api = f.wait_app("api", "Ready", |a| is_ready_at(a, &sha)).await;
    let web = f.wait_app("web", "Ready", |a| is_ready_at(a, &sha)).await;
    let (db_started, db_done) = first_deployment(&db);
    let (api_started, api_done) = first_deployment(&api);
    let (web_started, _) = first_deployment(&web);
    assert!(
        api_started >= db_done,
        "api started {api_started}, before db was done at {db_done} (db started {db_started})"
    );
    assert!(web_started >= api_done, "web started {web_started}, before api was done at {api_done}");
    assert_eq!(web.status.as_ref().expect("status").deployments.len(), 1, "web deployed once");

    // While db redeploys (a call), a call for api and web waits for the chain and is not lost.
    let db_hook = f.create_webhook("db-release", json!({"targets": [{"name": "db"}]})).await;
    let hook = f.create_webhook("release", json!({"targets": [{"name": "api"}, {"name": "web"}]})).await;
    let reply = post(f.operator.trigger_port, &format!("{db_hook}?TAG=2"), &[], b"").await;
    assert_eq!(reply.status, 202, "{reply:?}");
    f.wait_app("db", "redeploying", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.deployments.len() == 2 && s.deployments[1].result == DeploymentResult::Running)
    })
    .await;
    let reply = post(f.operator.trigger_port, &format!("{hook}?TAG=2"), &[], b"").await;
    assert_eq!(reply.status, 202, "{reply:?}");
    for name in ["db", "api", "web"] {
        f.wait_app(name, "Ready after the calls", |a| {
            ready(a).is_some_and(|(s, _, _)| s == "True")
                && a.status.as_ref().is_some_and(|s| {
                    s.deployments.len() == 2 && s.variables.get("TAG").map(String::as_str) == Some("2")
                })
        })
        .await;
        let live = deployments.get(name).await.expect("deployment");
        let image =
            live.spec.and_then(|s| s.template.spec).and_then(|p| p.containers.first().and_then(|c| c.image.clone()));
        assert_eq!(image, Some(format!("registry.example.com/{name}:2")));
    }
    let second = |app: &GitOpsApplication| {
        let record = &app.status.as_ref().expect("status").deployments[1];
        (record.started_at.0, record.finished_at.as_ref().expect("finished").0)
    };
    let (db2, api2, web2) = (
        second(&f.apps().get("db").await.expect("db")),
        second(&f.apps().get("api").await.expect("api")),
        second(&f.apps().get("web").await.expect("web")),
    );
    assert!(
        api2.0 >= db2.1 && web2.0 >= api2.1,
        "the call ran in dependency order: db {db2:?}, api {api2:?}, web {web2:?}"
    );
}

#[tokio::test]
async fn a_cycle_is_refused_naming_it_until_it_is_broken_and_other_namespaces_need_the_flag() {
    let Some(f) = Fixture::start("depends-cycle", &files(), &[]).await else { return };
    let sha = f.head();
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), &f.ns.name);
    f.create_app("x", spec(&f, "x", &["y"])).await;
    f.create_app("y", spec(&f, "y", &["x"])).await;
    for (name, other) in [("x", "y"), ("y", "x")] {
        let app = f.wait_app(name, "Stalled: cycle", |a| stalled(a).is_some_and(|(r, _)| r == "DependencyCycle")).await;
        let message = stalled(&app).expect("stalled").1;
        let (own, them) = (format!("{}/{name}", f.ns.name), format!("{}/{other}", f.ns.name));
        assert_eq!(message, format!("dependency cycle: {own} → {them} → {own}"));
        assert_eq!(not_ready(&app).map(|(r, _)| r).as_deref(), Some("DependencyCycle"));
    }
    assert!(deployments.get_opt("x").await.expect("read").is_none(), "nothing applied");
    assert!(deployments.get_opt("y").await.expect("read").is_none(), "nothing applied");

    // Breaking the cycle lets both deploy, y first.
    let patch = json!({"spec": {"dependsOn": null}});
    f.apps().patch("y", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("break the cycle");
    let y = f.wait_app("y", "Ready", |a| is_ready_at(a, &sha)).await;
    let x = f.wait_app("x", "Ready", |a| is_ready_at(a, &sha)).await;
    assert!(first_deployment(&x).0 >= first_deployment(&y).1, "x deployed after y");
    assert!(stalled(&x).is_none(), "Stalled cleared: {:?}", x.status);

    // Another namespace's application: refused by default, naming the field and the flag.
    let mut foreign = spec(&f, "web", &[]);
    foreign["dependsOn"] = json!([{"name": "db", "namespace": "kube-system"}]);
    f.create_app("foreign", foreign).await;
    let app = f.wait_app("foreign", "Stalled: cross-namespace", |a| stalled(a).is_some()).await;
    let (reason, message) = stalled(&app).expect("stalled");
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.starts_with("spec.dependsOn[0].namespace:") && message.contains("--allow-cross-namespace-dependencies"),
        "{message}"
    );
}
