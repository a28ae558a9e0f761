//! An end-to-end fixture: a namespace, a private Git repository on the real Git server, and a running operator.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tugboat::api::GitOpsApplication;

use super::cluster::{self, TestNamespace, eventually};
use super::git_repo::{TempDir, Workdir, init_bare};
use super::git_server::GitServer;
use super::operator::Operator;

pub const REPO: &str = "team/app.git";
pub const USER: &str = "deployer";
pub const PASSWORD: &str = "correct-horse";

/// How long end-to-end waits may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(60);

pub struct Fixture {
    pub client: Client,
    pub ns: TestNamespace,
    pub server: GitServer,
    pub work: Workdir,
    pub operator: Operator,
    _root: TempDir,
}

/// A Deployment available only after its pod has been ready for 45 s: a rollout that takes
/// that long (on kwok nodes).
pub const SLOW_ROLLOUT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: slow
spec:
  replicas: 1
  minReadySeconds: 45
  selector:
    matchLabels: {app: slow}
  template:
    metadata:
      labels: {app: slow}
    spec:
      containers:
        - {name: app, image: registry.example.com/slow:1}
"#;

/// A Deployment, a Service and a ConfigMap using `${SERVICE_TAG:-stable}`.
pub fn demo_manifests() -> Vec<(&'static str, String)> {
    vec![
        (
            "deploy/web.yaml",
            r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: ${REPLICAS:-2}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.com/web:${SERVICE_TAG:-stable}
          env:
            - name: SERVICE_TAG
              value: ${SERVICE_TAG:-stable}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#
            .to_owned(),
        ),
        (
            "deploy/config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  tag: ${SERVICE_TAG:-stable}\n"
                .to_owned(),
        ),
        ("README.md", "not a manifest\n".to_owned()),
    ]
}

impl Fixture {
    /// `None` only when no control plane is expected (see `cluster::client`).
    pub async fn start(prefix: &str, files: &[(&str, String)], operator_flags: &[&str]) -> Option<Self> {
        let client = cluster::client().await?;
        cluster::install_crds(&client).await;
        let ns = TestNamespace::create(&client, prefix).await;
        let root = TempDir::new("tugboat-git").expect("git root");
        init_bare(root.path(), REPO).expect("bare repo");
        let server = GitServer::start(root.path(), Some((USER.into(), PASSWORD.into()))).expect("git server");
        let work = Workdir::clone_from(&server.url_with_credentials(REPO)).expect("clone");
        for (path, content) in files {
            work.write(path, content).expect("write");
        }
        work.commit("initial manifests").expect("commit");
        work.push().expect("push");
        let operator = Operator::start(&ns.name, operator_flags).await;
        let fixture = Self { client, ns, server, work, operator, _root: root };
        fixture.create_secret("git-auth", &[("username", USER), ("password", PASSWORD)]).await;
        Some(fixture)
    }

    pub fn url(&self) -> String {
        self.server.url(REPO)
    }

    /// Writes (Some) or removes (None) files, commits, pushes; returns the commit SHA.
    pub fn commit(&self, changes: &[(&str, Option<&str>)], message: &str) -> String {
        for (path, content) in changes {
            match content {
                Some(content) => self.work.write(path, content).expect("write"),
                None => self.work.remove(path).expect("remove"),
            }
        }
        let sha = self.work.commit(message).expect("commit");
        self.work.push().expect("push");
        sha
    }

    pub fn head(&self) -> String {
        self.work.head().expect("head")
    }

    pub async fn create_secret(&self, name: &str, data: &[(&str, &str)]) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns.name);
        let string_data: serde_json::Map<String, Value> =
            data.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": string_data})).expect("secret");
        secrets.create(&PostParams::default(), &secret).await.expect("create secret");
    }

    pub fn apps(&self) -> Api<GitOpsApplication> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    /// The usual application spec for this fixture's repository, with `overrides` merged in.
    pub fn app_spec(&self, overrides: Value) -> Value {
        let mut spec = json!({
            "source": {"repoURL": self.url(), "ref": {"branch": "main"}, "path": "deploy", "secretRef": {"name": "git-auth"}},
            "healthTimeout": "60s",
        });
        merge(&mut spec, overrides);
        spec
    }

    pub async fn create_app(&self, name: &str, spec: Value) -> GitOpsApplication {
        let app: GitOpsApplication = serde_json::from_value(json!({
            "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication",
            "metadata": {"name": name}, "spec": spec
        }))
        .expect("application");
        self.apps().create(&PostParams::default(), &app).await.expect("create application")
    }

    /// Creates a Webhook and returns its path once the operator assigned one.
    pub async fn create_webhook(&self, name: &str, spec: Value) -> String {
        let api: Api<tugboat::api::Webhook> = Api::namespaced(self.client.clone(), &self.ns.name);
        let webhook: tugboat::api::Webhook = serde_json::from_value(json!({
            "apiVersion": "tugboat.dev/v1alpha1", "kind": "Webhook", "metadata": {"name": name}, "spec": spec
        }))
        .expect("webhook");
        api.create(&PostParams::default(), &webhook).await.expect("create webhook");
        let path =
            eventually("webhook path assigned", WAIT, || async { api.get(name).await.ok()?.status?.webhook_path })
                .await;
        // The endpoint's cache sees the path shortly after the status is written.
        tokio::time::sleep(Duration::from_millis(300)).await;
        path
    }

    /// Asks for an immediate reconcile, as the trigger endpoint does.
    pub async fn request_reconcile(&self, name: &str) {
        use kube::api::{Patch, PatchParams};
        let at = jiff::Timestamp::now().to_string();
        let patch = json!({"metadata": {"annotations": {"tugboat.dev/reconcile-requested-at": at}}});
        self.apps().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("request reconcile");
    }

    /// Waits until `check` holds for the application; the message names what was awaited.
    pub async fn wait_app(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&GitOpsApplication) -> bool,
    ) -> GitOpsApplication {
        let apps = self.apps();
        let mut last = None;
        let result = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(app) = apps.get(name).await {
                    if check(&app) {
                        return app;
                    }
                    last = app.status.clone();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        match result {
            Ok(app) => app,
            Err(_) => panic!("timed out waiting for {name}: {what}; last status: {last:#?}"),
        }
    }

    pub async fn eventually<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        eventually(what, WAIT, check).await
    }
}

/// The Ready condition as (status, reason, message).
pub fn ready(app: &GitOpsApplication) -> Option<(String, String, String)> {
    let status = app.status.as_ref()?;
    let c = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn is_ready_at(app: &GitOpsApplication, sha: &str) -> bool {
    let applied = app.status.as_ref().and_then(|s| s.last_applied_revision.clone()).unwrap_or_default();
    ready(app).is_some_and(|(s, _, _)| s == "True") && applied == format!("main@sha1:{sha}")
}

pub fn app_name(app: &GitOpsApplication) -> String {
    app.name_any()
}

/// Deep-merges `patch` into `base` (objects merge, everything else replaces).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}
