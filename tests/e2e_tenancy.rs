//! Many tenants, one operator: what a tenant's repository or a webhook caller tries against
//! another tenant or the cluster, on the real control plane, with the operator under the
//! chart's RBAC and watching every namespace. Each tenant namespace is prepared as the chart's
//! `tenancy.namespaces` and docs/install.md do: its applications act as its own
//! `tugboat-deployer` ServiceAccount, bound there to the chart's deployer ClusterRole.
//!
//! Every attack is refused with a condition that says why, and nothing of the other tenant
//! (or the cluster) changes.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tugboat::api::GitOpsApplication;

use support::cluster::{self, TestNamespace};
use support::fixture::ready;
use support::git_repo::{TempDir, Workdir, init_bare};
use support::git_server::GitServer;
use support::operator::Operator;

const WAIT: Duration = Duration::from_secs(90);

/// Each test runs an operator for every namespace: two at once would both act on every
/// application, so the tests of this file take turns.
static ONE_OPERATOR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A tenant: its namespace, its own Git server (its own credentials) and repository.
struct Tenant {
    ns: TestNamespace,
    server: GitServer,
    work: Workdir,
    _root: TempDir,
}

impl Tenant {
    async fn new(client: &Client, prefix: &str, user: &str, files: &[(&str, String)]) -> Self {
        let ns = TestNamespace::create(client, prefix).await;
        support::restricted::allow_deploys(client, &ns.name, &ns.name).await;
        let root = TempDir::new("tugboat-tenant-git").expect("git root");
        init_bare(root.path(), "team/repo.git").expect("bare repo");
        let server = GitServer::start(root.path(), Some((user.into(), format!("{user}-password")))).expect("server");
        let work = Workdir::clone_from(&server.url_with_credentials("team/repo.git")).expect("clone");
        for (path, content) in files {
            work.write(path, content).expect("write");
        }
        work.commit("tenant manifests").expect("commit");
        work.push().expect("push");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
        let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "git-auth"},
            "stringData": {"username": user, "password": format!("{user}-password")}}))
        .expect("secret");
        secrets.create(&PostParams::default(), &secret).await.expect("create secret");
        Self { ns, server, work, _root: root }
    }

    fn url(&self) -> String {
        self.server.url("team/repo.git")
    }

    fn apps(&self, client: &Client) -> Api<GitOpsApplication> {
        Api::namespaced(client.clone(), &self.ns.name)
    }

    async fn create_app(&self, client: &Client, name: &str, path: &str) {
        let app: GitOpsApplication = serde_json::from_value(json!({
            "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication", "metadata": {"name": name},
            "spec": {"source": {"repoURL": self.url(), "ref": {"branch": "main"}, "path": path,
                                "secretRef": {"name": "git-auth"}},
                     "updates": {"mechanism": "Webhook", "interval": "5s"}, "healthTimeout": "60s"}
        }))
        .expect("application");
        self.apps(client).create(&PostParams::default(), &app).await.expect("create application");
    }
}

async fn wait_ready(
    api: &Api<GitOpsApplication>,
    name: &str,
    what: &str,
    check: impl Fn(&str, &str) -> bool,
) -> String {
    let mut last = None;
    let found = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(app) = api.get_opt(name).await.ok().flatten() {
                if let Some((status, reason, message)) = ready(&app) {
                    if check(&status, &reason) {
                        return format!("{reason}: {message}");
                    }
                    last = Some(format!("{status} {reason}: {message}"));
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("{name}: timed out waiting for {what}; last Ready: {last:?}"))
}

fn config_map(name: &str, namespace: Option<&str>, owner: &str) -> String {
    let namespace = namespace.map(|ns| format!("\n  namespace: {ns}")).unwrap_or_default();
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{namespace}\ndata:\n  owner: {owner}\n")
}

async fn owner_of(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name).await.expect("read ConfigMap")?.data?.get("owner").cloned()
}

#[tokio::test]
async fn a_tenant_reaches_neither_another_tenant_nor_the_cluster() {
    let Some(client) = cluster::client().await else { return };
    let _turn = ONE_OPERATOR.lock().await;
    cluster::install_crds(&client).await;
    let lease = TestNamespace::create(&client, "tenancy-lease").await;
    let a = Tenant::new(&client, "tenant-a", "alice", &[("own/cm.yaml", config_map("shared", None, "a"))]).await;
    let release = support::restricted::RELEASE_NAMESPACE;
    let operator_deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: thief\n  namespace: {release}\nspec:\n  selector: {{matchLabels: {{app: thief}}}}\n  template:\n    metadata: {{labels: {{app: thief}}}}\n    spec:\n      serviceAccountName: tugboat-e2e\n      containers: [{{name: c, image: registry.example.com/steal:1}}]\n"
    );
    let cluster_admin = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: tenancy-escalation\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: tugboat-deployer, namespace: default}]\n";
    let b_files = [
        ("own/cm.yaml", config_map("b-config", None, "b")),
        ("cross/cm.yaml", config_map("shared", Some(&a.ns.name), "b")),
        ("operator/deploy.yaml", operator_deployment),
        ("cluster/crb.yaml", cluster_admin.to_owned()),
    ];
    let b = Tenant::new(&client, "tenant-b", "bob", &b_files).await;
    let operator = Operator::start_for_all_namespaces(&lease.name, &[]).await;

    // Tenant A deploys its own object, as its own ServiceAccount.
    a.create_app(&client, "first", "own").await;
    wait_ready(&a.apps(&client), "first", "Ready", |s, _| s == "True").await;
    assert_eq!(owner_of(&client, &a.ns.name, "shared").await.as_deref(), Some("a"));

    // B's repository names A's namespace, the operator's namespace, a cluster-wide binding.
    for (name, path, into) in [
        ("cross", "cross", "ConfigMap/shared"),
        ("operator", "operator", "Deployment/thief"),
        ("cluster", "cluster", "ClusterRoleBinding/tenancy-escalation"),
    ] {
        b.create_app(&client, name, path).await;
        let message =
            wait_ready(&b.apps(&client), name, "Ready=False Forbidden", |s, r| s == "False" && r == "Forbidden").await;
        assert!(message.contains(into), "{name}: names the object: {message}");
        let account = format!("system:serviceaccount:{}:tugboat-deployer", b.ns.name);
        assert!(message.contains(&account), "{name}: names who was refused: {message}");
    }
    assert_eq!(owner_of(&client, &a.ns.name, "shared").await.as_deref(), Some("a"), "A's object is A's");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), release);
    assert!(deployments.get_opt("thief").await.expect("get").is_none(), "nothing in the operator's namespace");
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    assert!(bindings.get_opt("tenancy-escalation").await.expect("get").is_none(), "no cluster-wide binding");

    // A second application of A's own namespace never takes over the first one's object.
    a.work.write("takeover/cm.yaml", config_map("shared", None, "second")).expect("write");
    a.work.commit("a second application's copy").expect("commit");
    a.work.push().expect("push");
    a.create_app(&client, "second", "takeover").await;
    let message = wait_ready(&a.apps(&client), "second", "Ready=False OwnedByAnotherApplication", |s, r| {
        s == "False" && r == "OwnedByAnotherApplication"
    })
    .await;
    assert!(message.contains(&format!("{}/first", a.ns.name)), "names the owner: {message}");
    assert_eq!(owner_of(&client, &a.ns.name, "shared").await.as_deref(), Some("a"), "not taken over");

    // A namespace nobody prepared: its applications can change nothing.
    let c = TestNamespace::create(&client, "tenant-c").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &c.name);
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "git-auth"},
        "stringData": {"username": "bob", "password": "bob-password"}}))
    .expect("secret");
    secrets.create(&PostParams::default(), &secret).await.expect("create secret");
    let apps_c: Api<GitOpsApplication> = Api::namespaced(client.clone(), &c.name);
    let app: GitOpsApplication = serde_json::from_value(json!({
        "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication", "metadata": {"name": "unprepared"},
        "spec": {"source": {"repoURL": b.url(), "ref": {"branch": "main"}, "path": "own", "secretRef": {"name": "git-auth"}}}
    }))
    .expect("application");
    apps_c.create(&PostParams::default(), &app).await.expect("create");
    let message =
        wait_ready(&apps_c, "unprepared", "Ready=False Forbidden", |s, r| s == "False" && r == "Forbidden").await;
    assert!(message.contains(&format!("system:serviceaccount:{}:tugboat-deployer", c.name)), "{message}");

    drop(operator);
}

#[tokio::test]
async fn a_cached_commit_is_never_served_to_a_tenant_whose_credentials_cannot_read_it() {
    let Some(client) = cluster::client().await else { return };
    let _turn = ONE_OPERATOR.lock().await;
    cluster::install_crds(&client).await;
    let lease = TestNamespace::create(&client, "tenancy-cache").await;
    let a = Tenant::new(&client, "private-a", "alice", &[("own/cm.yaml", config_map("a-private", None, "a"))]).await;
    let b = Tenant::new(&client, "private-b", "bob", &[("own/cm.yaml", config_map("b-config", None, "b"))]).await;
    let operator = Operator::start_for_all_namespaces(&lease.name, &[]).await;

    // A's private commit is in the shared cache; B deploys its own repository first.
    a.create_app(&client, "private", "own").await;
    wait_ready(&a.apps(&client), "private", "Ready", |s, _| s == "True").await;
    b.create_app(&client, "mine", "own").await;
    wait_ready(&b.apps(&client), "mine", "Ready", |s, _| s == "True").await;

    // B points its application at A's repository, with B's credentials (A's server refuses them).
    let patch = json!({"spec": {"source": {"repoURL": a.url()}}});
    b.apps(&client).patch("mine", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    let message = wait_ready(&b.apps(&client), "mine", "Ready=False AuthenticationFailed", |s, r| {
        s == "False" && r == "AuthenticationFailed"
    })
    .await;
    assert!(!message.contains("alice-password") && !message.contains("bob-password"), "{message}");
    // The retries (every 5 s) must ask the remote again with B's credentials, never take the
    // commit A's credentials fetched into the cache.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let app = b.apps(&client).get("mine").await.expect("get");
    let (status, reason, _) = ready(&app).expect("Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "AuthenticationFailed"), "{:?}", app.status);
    assert_eq!(owner_of(&client, &b.ns.name, "a-private").await, None, "A's objects never reach B");
    let a_head = a.work.head().expect("head");
    let revision = app.status.and_then(|s| s.last_applied_revision).unwrap_or_default();
    assert!(!revision.contains(&a_head), "B never applied A's commit: {revision}");
    drop(operator);
}

#[tokio::test]
async fn a_call_never_chooses_where_an_object_goes() {
    let Some(client) = cluster::client().await else { return };
    let _turn = ONE_OPERATOR.lock().await;
    cluster::install_crds(&client).await;
    let placed = |namespace: Option<&str>| {
        let namespace = namespace.map(|ns| format!("\n  namespace: \"{ns}\"")).unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: placed{namespace}\ndata:\n  ns: \"${{NS:-none}}\"\n  tag: \"${{TAG:-a}}\"\n"
        )
    };
    let t = Tenant::new(&client, "tenant-vars", "carol", &[("vars/cm.yaml", placed(None))]).await;
    let own = t.ns.name.clone();
    let operator = Operator::start_for_all_namespaces(&own, &[]).await;
    t.create_app(&client, "placed", "vars").await;
    wait_ready(&t.apps(&client), "placed", "Ready", |s, _| s == "True").await;
    let webhooks: Api<tugboat::api::Webhook> = Api::namespaced(client.clone(), &own);
    let hook: tugboat::api::Webhook =
        serde_json::from_value(json!({"apiVersion": "tugboat.dev/v1alpha1", "kind": "Webhook",
        "metadata": {"name": "deploy"}, "spec": {"provider": "generic", "targets": [{"name": "placed"}]}}))
        .expect("webhook");
    webhooks.create(&PostParams::default(), &hook).await.expect("create webhook");
    let path =
        cluster::eventually("webhook path", WAIT, || async { webhooks.get("deploy").await.ok()?.status?.webhook_path })
            .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let call = |query: &'static str| {
        let target = format!("{path}?{query}");
        let port = operator.trigger_port;
        async move { support::http::post(port, &target, &[], b"").await }
    };
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &own);
    let data = |key: &'static str| {
        let configmaps = configmaps.clone();
        async move { configmaps.get_opt("placed").await.ok().flatten()?.data?.get(key).cloned() }
    };

    // NS only sets a value: a call may set it.
    assert_eq!(call("NS=kube-system").await.status, 202);
    cluster::eventually("NS in the data", WAIT, || async {
        (data("ns").await.as_deref() == Some("kube-system")).then_some(())
    })
    .await;

    // The next commit uses NS for the namespace: the value the call left must not move it.
    t.work.write("vars/cm.yaml", placed(Some(&format!("${{NS:-{own}}}")))).expect("write");
    t.work.commit("NS now places the object").expect("commit");
    t.work.push().expect("push");
    assert_eq!(call("TAG=b").await.status, 202);
    let message = wait_ready(&t.apps(&client), "placed", "Ready=False VariableNotAllowed", |s, r| {
        s == "False" && r == "VariableNotAllowed"
    })
    .await;
    assert!(message.contains("NS") && message.contains("metadata.namespace"), "names variable and field: {message}");
    let system: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    assert!(system.get_opt("placed").await.expect("get").is_none(), "nothing in kube-system");

    // The value was dropped: the next call deploys into the tenant's own namespace.
    assert_eq!(call("TAG=c").await.status, 202);
    cluster::eventually("TAG=c applied", WAIT, || async { (data("tag").await.as_deref() == Some("c")).then_some(()) })
        .await;
    assert_eq!(data("ns").await.as_deref(), Some("none"), "NS is no longer set");
    let app = t.apps(&client).get("placed").await.expect("get");
    let names = app.status.expect("status").variable_names;
    assert!(names.contains(&"TAG".to_owned()) && !names.contains(&"NS".to_owned()), "{names:?}");

    // And a call may no longer set it at all.
    let refused = call("NS=kube-system").await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("NS"), "{}", refused.body);
    assert!(system.get_opt("placed").await.expect("get").is_none(), "nothing in kube-system");
}
