//! The exact requests of the status writer and of one full reconcile, against a mock API
//! server (tower-test, as controller-rs tests its reconciler). The end-to-end suites test
//! the same paths against a real API server; these pin down what goes over the wire.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::{Api, Client};
use serde_json::{Value, json};

use super::{Context, Settings, pipeline};
use crate::api::{DeploymentResult, GitOpsApplication, GitOpsApplicationStatus};
use crate::status_patch::{self, Precondition, Written};

/// One request as the mock API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query, e.g. `/api/v1/namespaces/team/configmaps/web?dryRun=All&…`.
    uri: String,
    content_type: Option<String>,
    body: Value,
}

impl Seen {
    fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    fn query(&self) -> BTreeMap<String, String> {
        let query = self.uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        query.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
    }

    /// `METHOD path` with `(dry run)` for dry runs: what the sequence assertions compare.
    fn line(&self) -> String {
        let dry = if self.query().contains_key("dryRun") { " (dry run)" } else { "" };
        format!("{} {}{dry}", self.method, self.path())
    }
}

type Answer = Box<dyn Fn(&Seen) -> (StatusCode, Value) + Send + Sync>;

/// A client whose every request is recorded and answered by `answer`.
fn mock(answer: Answer) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some((request, reply)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let request = Seen {
                method: parts.method.to_string(),
                uri: parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default(),
                content_type: parts.headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (status, answer) = answer(&request);
            log.lock().unwrap_or_else(|e| e.into_inner()).push(request);
            let body = Body::from(serde_json::to_vec(&answer).unwrap_or_default());
            reply.send_response(Response::builder().status(status).body(body).expect("response"));
        }
    });
    (Client::new(service, "default"), seen)
}

fn application(status: Option<GitOpsApplicationStatus>, repo: &str) -> GitOpsApplication {
    let mut app: GitOpsApplication = serde_json::from_value(json!({
        "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication",
        "metadata": {"name": "shop", "namespace": "team", "uid": "u-1", "resourceVersion": "7", "generation": 1,
                     "finalizers": [super::FINALIZER]},
        "spec": {"source": {"repoURL": repo, "ref": {"branch": "main"}}},
    }))
    .expect("application");
    app.status = status;
    app
}

fn conflict() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
           "message": "the object has been modified"})
}

#[tokio::test]
async fn the_status_writer_applies_the_status_subresource_under_the_field_manager() {
    let (client, seen) = mock(Box::new(|request: &Seen| match request.body["metadata"]["resourceVersion"].as_str() {
        Some("6") => (StatusCode::CONFLICT, conflict()),
        _ => (StatusCode::OK, serde_json::to_value(application(None, "https://example.com/a.git")).expect("json")),
    }));
    let api: Api<GitOpsApplication> = Api::namespaced(client, "team");
    let status = GitOpsApplicationStatus { last_applied_revision: Some("main@sha1:abc".into()), ..Default::default() };

    let written = status_patch::apply(&api, "shop", &status, crate::FIELD_MANAGER, Precondition::Unchanged(Some("7")));
    assert!(matches!(written.await, Ok(Written::Applied(_))));
    let stale = status_patch::apply(&api, "shop", &status, crate::FIELD_MANAGER, Precondition::Unchanged(Some("6")));
    assert!(matches!(stale.await, Ok(Written::Conflict)), "a precondition's conflict is an answer, not an error");
    let unconditional = status_patch::apply(&api, "shop", &status, "tugboat-endpoint", Precondition::None);
    assert!(matches!(unconditional.await, Ok(Written::Applied(_))));

    let seen = seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 3);
    let first = &seen[0];
    assert_eq!(first.line(), "PATCH /apis/tugboat.dev/v1alpha1/namespaces/team/gitopsapplications/shop/status");
    assert_eq!(first.content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!(first.query().get("fieldManager").map(String::as_str), Some("tugboat"));
    assert_eq!(first.query().get("force").map(String::as_str), Some("true"));
    assert_eq!(
        first.body,
        json!({"apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication",
               "metadata": {"name": "shop", "resourceVersion": "7"},
               "status": {"lastAppliedRevision": "main@sha1:abc"}})
    );
    assert_eq!(seen[2].query().get("fieldManager").map(String::as_str), Some("tugboat-endpoint"));
    assert!(seen[2].body["metadata"].get("resourceVersion").is_none(), "no precondition: {}", seen[2].body);
}

/// A Git repository on disk with one commit of `files`.
fn repository(dir: &std::path::Path, files: &[(&str, &str)]) -> String {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").args(args).current_dir(dir).output().expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q", "-b", "main"]);
    for (path, content) in files {
        std::fs::write(dir.join(path), content).expect("write");
    }
    git(&["add", "."]);
    git(&["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one"]);
    format!("file://{}", dir.display())
}

/// The API server's side of one deployment of a ConfigMap and a Deployment.
fn cluster(state: &Arc<Mutex<GitOpsApplicationStatus>>) -> Answer {
    let state = state.clone();
    let deployment_applied = std::sync::atomic::AtomicBool::new(false);
    Box::new(move |request: &Seen| {
        let resources = |group_version: &str, list: Value| json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list});
        let resource = |name: &str, kind: &str| {
            json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": true, "kind": kind,
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]})
        };
        let applied = |body: &Value, generation: i64| {
            let mut object = body.clone();
            object["metadata"]["namespace"] = json!("team");
            object["metadata"]["generation"] = json!(generation);
            object["metadata"]["resourceVersion"] = json!("10");
            object
        };
        match (request.method.as_str(), request.path()) {
            ("GET", "/api/v1") => (StatusCode::OK, resources("v1", json!([resource("configmaps", "ConfigMap")]))),
            ("GET", "/apis/apps/v1") => {
                (StatusCode::OK, resources("apps/v1", json!([resource("deployments", "Deployment")])))
            }
            // Before the apply it does not exist yet; after it, it has rolled out.
            ("GET", "/apis/apps/v1/namespaces/team/deployments/web") => {
                let rolled_out = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": "team", "generation": 1},
                    "spec": {"replicas": 1},
                    "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}});
                if deployment_applied.load(std::sync::atomic::Ordering::SeqCst) {
                    (StatusCode::OK, rolled_out)
                } else {
                    (
                        StatusCode::NOT_FOUND,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": "deployments.apps \"web\" not found"}),
                    )
                }
            }
            ("PATCH", path) if path.ends_with("/gitopsapplications/shop/status") => {
                let status: GitOpsApplicationStatus =
                    serde_json::from_value(request.body["status"].clone()).expect("a status tugboat can read");
                *state.lock().expect("state") = status.clone();
                (StatusCode::OK, serde_json::to_value(application(Some(status), "file:///repo")).expect("json"))
            }
            ("PATCH", path) => {
                if path.ends_with("/deployments/web") && !request.query().contains_key("dryRun") {
                    deployment_applied.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                (StatusCode::OK, applied(&request.body, 1))
            }
            ("POST", "/apis/events.k8s.io/v1/namespaces/team/events") => (StatusCode::CREATED, request.body.clone()),
            _ => (
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "apiVersion": "v1", "code": 404, "message": "unexpected"}),
            ),
        }
    })
}

#[tokio::test]
async fn one_reconcile_of_a_new_revision_makes_exactly_these_requests() {
    let dir = tempdir();
    let repo_dir = dir.join("repo");
    std::fs::create_dir_all(&repo_dir).expect("repo dir");
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata: {a: b}\n";
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - {name: web, image: nginx}\n";
    let repo = repository(&repo_dir, &[("config.yaml", config_map), ("web.yaml", deployment)]);
    let state: Arc<Mutex<GitOpsApplicationStatus>> = Arc::default();
    let (client, seen) = mock(cluster(&state));
    let context = context(client, &dir);

    let action = pipeline::reconcile(Arc::new(application(None, &repo)), context).await.expect("reconcile");
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(300)), "next: the drift check interval");

    // Events go out beside the deployment (one in the background); everything else in order.
    let seen = seen.lock().expect("seen").clone();
    let events: Vec<&Seen> = seen.iter().filter(|s| s.path().ends_with("/events")).collect();
    let reasons: Vec<&str> = events.iter().filter_map(|e| e.body["reason"].as_str()).collect();
    assert_eq!(events.len(), 2, "{reasons:?}");
    assert!(reasons.contains(&"DeploymentStarted") && reasons.contains(&"DeploymentSucceeded"), "{reasons:?}");
    let calls: Vec<String> = seen.iter().filter(|s| !s.path().ends_with("/events")).map(Seen::line).collect();
    let status = "PATCH /apis/tugboat.dev/v1alpha1/namespaces/team/gitopsapplications/shop/status";
    let (cm, deploy) = ("/api/v1/namespaces/team/configmaps/web", "/apis/apps/v1/namespaces/team/deployments/web");
    // No trigger and no gate: nothing to resume after a crash before applying, so the
    // deployment is first written with what it applied, at its end.
    assert_eq!(calls.last().map(String::as_str), Some(status), "one write at the end: {calls:#?}");
    assert_eq!(calls.iter().filter(|c| c.as_str() == status).count(), 1, "one status write in all: {calls:#?}");
    // Discovery, the dry runs and the generation read run side by side: compare them as a set.
    let n = calls.len();
    assert_eq!(n, 9, "{calls:#?}");
    let middle: std::collections::BTreeSet<&str> = calls[..n - 4].iter().map(String::as_str).collect();
    let expected: std::collections::BTreeSet<String> = [
        "GET /api/v1".to_owned(),
        "GET /apis/apps/v1".to_owned(),
        format!("PATCH {cm} (dry run)"),
        format!("PATCH {deploy} (dry run)"),
        format!("GET {deploy}"),
    ]
    .into_iter()
    .collect();
    assert_eq!(middle, expected.iter().map(String::as_str).collect(), "{calls:#?}");
    // Then the applies in file order, then one read of the rollout (complete: no waiting).
    assert_eq!(
        calls[n - 4..n - 1],
        [format!("PATCH {cm}"), format!("PATCH {deploy}"), format!("GET {deploy}")],
        "{calls:#?}"
    );
    for apply in seen.iter().filter(|s| s.method == "PATCH" && !s.path().ends_with("/status")) {
        assert_eq!(apply.query().get("fieldManager").map(String::as_str), Some("tugboat/team/shop"), "{apply:?}");
        assert_eq!(apply.body["metadata"]["labels"]["tugboat.dev/application"], "shop", "{apply:?}");
    }

    // The status write: finished, with what was applied.
    let writes: Vec<GitOpsApplicationStatus> = seen
        .iter()
        .filter(|s| s.line() == status)
        .map(|s| serde_json::from_value(s.body["status"].clone()).expect("status"))
        .collect();
    let finished = &writes[0];
    assert_eq!(finished.deployments.len(), 1, "{finished:?}");
    let record = finished.deployments.last().expect("a deployment");
    assert_eq!((record.result, record.phase), (DeploymentResult::Succeeded, None));
    assert_eq!(finished.inventory.len(), 2);
    assert!(finished.last_applied_revision.as_deref().is_some_and(|r| r.starts_with("main@sha1:")));
    let ready = crate::conditions::get(&finished.conditions, crate::conditions::READY).expect("Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Succeeded"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The context of a reconcile against the mock: the default Git egress guard, file sources allowed.
fn context(client: Client, dir: &std::path::Path) -> Arc<Context> {
    let settings = Settings {
        allow_file_sources: true,
        concurrency: 1,
        debounce: std::time::Duration::ZERO,
        namespace: None,
        default_windows: Vec::new(),
        // As the operator itself: an impersonating client is a new connection the mock cannot see.
        default_service_account: None,
        render_budget: crate::render::Budget::DEFAULT,
        build: crate::build::Settings::default(),
        allow_cross_namespace_dependencies: false,
    };
    let git = crate::source::GitCache::new(
        dir.join("cache"),
        crate::source::CacheOptions { allow_file_sources: true, ..Default::default() },
    );
    let sender = crate::outgoing::send::Sender::new(crate::egress::EgressPolicy::new(Vec::new())).expect("sender");
    let (hooks, _writer) = kube::runtime::reflector::store();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let outgoing = crate::outgoing::dispatch::Outgoing::new(client.clone(), sender, hooks, metrics.clone());
    let config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
    let (applications, _writer) = kube::runtime::reflector::store();
    Arc::new(Context::new(client, config, git, settings, outgoing, metrics, applications))
}

#[tokio::test]
async fn a_repository_at_the_metadata_address_is_refused_into_the_ready_condition() {
    let dir = tempdir();
    let state: Arc<Mutex<GitOpsApplicationStatus>> = Arc::default();
    let (client, seen) = mock(cluster(&state));
    let context = context(client, &dir);
    let app = application(None, "http://169.254.169.254/latest/meta-data.git");

    let action = pipeline::reconcile(Arc::new(app), context.clone()).await.expect("reconcile");
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(60)), "no fast retry: the spec must change");
    assert_eq!(context.git.fetch_count(), 0);
    let status = state.lock().expect("state").clone();
    let ready = crate::conditions::get(&status.conditions, crate::conditions::READY).expect("Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "EgressRefused"), "{ready:?}");
    for part in ["169.254.169.254", "link-local (cloud metadata)", "--git-egress-allow"] {
        assert!(ready.message.contains(part), "{part}: {}", ready.message);
    }
    let calls: Vec<String> = seen.lock().expect("seen").iter().map(Seen::line).collect();
    assert!(calls.iter().all(|c| !c.contains("/configmaps") && !c.contains("/deployments")), "{calls:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tugboat-mock-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
