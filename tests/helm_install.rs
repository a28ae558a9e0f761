//! tugboat the way users run it: its own image (built from the Dockerfile by testenv/image.sh),
//! installed by `helm install charts/tugboat`, as a pod on the real node. It must start as
//! non-root with a read-only root file system, pass its probes, take the Lease, deploy an
//! application from a Git server onto the real node, and redeploy it — with a variable and a
//! rolling restart of real containers — when a webhook is called through the chart's Service.
//! `helm upgrade` to two replicas keeps it working; `helm uninstall` leaves the workloads.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tugboat::api::{DeploymentResult, GitOpsApplication, Webhook};

use support::cluster::{self, TestNamespace, eventually, kubeconfig_path, testenv_tool};
use support::git_repo::{TempDir, Workdir, init_bare};
use support::git_server::GitServer;
use support::realnode::{self, BUSYBOX, NODE, NODE_IP, PLACEMENT};

const WAIT: Duration = Duration::from_secs(120);
const RELEASE: &str = "tugboat";

/// A Deployment of two busybox web servers on the real node whose pods print the tag they run
/// with; ready only once httpd answers.
fn web_manifest() -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  strategy: {{rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      {PLACEMENT}
      containers:
        - name: web
          image: {BUSYBOX}
          imagePullPolicy: Never
          command: [sh, -c, 'echo "serving tag $SERVICE_TAG"; echo "$SERVICE_TAG" >/tmp/index.html; exec httpd -f -p 8080 -h /tmp']
          env:
            - name: SERVICE_TAG
              value: ${{SERVICE_TAG:-stable}}
          ports: [{{containerPort: 8080}}]
          readinessProbe:
            httpGet: {{path: /index.html, port: 8080}}
            periodSeconds: 1
"#
    )
}

struct Helm {
    helm: PathBuf,
    namespace: String,
}

impl Helm {
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(&self.helm)
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .args(["--namespace", &self.namespace])
            .output()
            .expect("run helm");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "helm {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }
}

/// The operator's pods once `want` of them run on the real node, all Ready.
async fn operator_pods(client: &Client, namespace: &str, want: usize) -> Vec<Pod> {
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    realnode::wait_ready_pods(client, namespace, &selector, want, WAIT).await
}

/// Calls the webhook through the chart's trigger Service (ClusterIP, through kube-proxy).
async fn call_webhook(client: &Client, namespace: &str, path: &str, query: &str) -> Value {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let service = services.get(&format!("{RELEASE}-trigger")).await.expect("trigger Service");
    let ip = service.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP");
    let url = format!("http://{ip}:9292{path}?{query}");
    eventually("202 from the trigger Service", WAIT, || {
        let url = url.clone();
        async move {
            let output = Command::new("curl")
                .args(["-s", "--max-time", "5", "-X", "POST", "-w", "\n%{http_code}", &url])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            let (body, code) = text.rsplit_once('\n')?;
            (code == "202").then(|| serde_json::from_str(body).unwrap_or(Value::Null))
        }
    })
    .await
}

async fn wait_ready_at(apps: &Api<GitOpsApplication>, sha: &str) {
    let revision = format!("main@sha1:{sha}");
    eventually(&format!("shop Ready at {revision}"), WAIT, || async {
        let app = apps.get("shop").await.ok()?;
        let status = app.status?;
        let ready = status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && status.last_applied_revision.as_deref() == Some(revision.as_str())).then_some(())
    })
    .await;
}

/// What each running `web` container printed when it started.
async fn web_logs(client: &Client, namespace: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut logs = Vec::new();
    for pod in pods.list(&ListParams::default().labels("app=web")).await.expect("pods").items {
        if pod.metadata.deletion_timestamp.is_none() {
            logs.push(pods.logs(&pod.name_any(), &Default::default()).await.unwrap_or_default().trim().to_owned());
        }
    }
    logs
}

#[tokio::test]
async fn helm_installed_image_deploys_to_a_real_node_and_a_webhook_call_restarts_real_pods() {
    let Some(helm) = testenv_tool("helm") else { return };
    let Some(client) = cluster::client().await else { return };
    if !realnode::available(&client).await {
        return;
    }
    let image = realnode::operator_image();
    let (repository, tag) = image.rsplit_once(':').expect("image with a tag");
    cluster::install_crds(&client).await;
    let ns = TestNamespace::create(&client, "helm-real").await;
    let helm = Helm { helm, namespace: ns.name.clone() };

    // A private repository on a Git server the operator's pod reaches at the node's address.
    let root = TempDir::new("tugboat-git").expect("git root");
    init_bare(root.path(), "team/shop.git").expect("bare repository");
    let server =
        GitServer::start_on(NODE_IP, root.path(), Some(("deployer".into(), "s3cret".into()))).expect("git server");
    let work = Workdir::clone_from(&server.url_with_credentials("team/shop.git")).expect("clone");
    work.write("deploy/web.yaml", web_manifest()).expect("write");
    // A kustomization: the image's own pinned kustomize builds it.
    work.write("deploy/kustomization.yaml", "resources: [web.yaml]\nlabels: [{pairs: {built-by: kustomize}}]\n")
        .expect("write");
    let first = work.commit("web").expect("commit");
    work.push().expect("push");

    // helm install: the image from the Dockerfile, on the real node.
    let placement = [
        "--set",
        &format!("image.repository={repository}"),
        "--set",
        &format!("image.tag={tag}"),
        "--set",
        "image.pullPolicy=Never",
        "--set",
        "rbac.scope=namespace",
        "--set",
        &format!("nodeSelector.kubernetes\\.io/hostname={NODE}"),
        "--set",
        "tolerations[0].key=tugboat.dev/real-node",
        "--set",
        "tolerations[0].operator=Exists",
        "--set",
        "tolerations[0].effect=NoSchedule",
    ];
    let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/tugboat");
    let chart = chart.to_str().expect("chart path");
    let mut install = vec!["install", RELEASE, chart];
    install.extend(placement);
    let out = helm.run(&install);
    assert!(out.contains("STATUS: deployed"), "{out}");

    // The pod starts from the image, non-root, read-only root file system, and passes its probes.
    let pods = operator_pods(&client, &ns.name, 1).await;
    let pod = &pods[0];
    let status = pod.status.as_ref().expect("pod status");
    let container = &status.container_statuses.as_ref().expect("container statuses")[0];
    assert_eq!(container.image, image, "runs the image built from the Dockerfile");
    assert!(container.container_id.as_deref().is_some_and(|id| id.starts_with("containerd://")));
    let security = pod.spec.as_ref().and_then(|s| s.containers[0].security_context.clone()).expect("securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let kubectl = support::cluster::testenv_bin("kubectl");
    let exec = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(["-n", &ns.name, "exec", &pod.name_any(), "--", "sh", "-c"])
        .arg("id -u; touch /root-is-writable 2>/dev/null || echo read-only; touch /var/cache/tugboat/ok && echo cache-writable; kustomize version; helm version --short")
        .output()
        .expect("kubectl exec");
    let out = String::from_utf8_lossy(&exec.stdout);
    assert!(exec.status.success(), "kubectl exec: {out}{}", String::from_utf8_lossy(&exec.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["65532", "read-only", "cache-writable"], "{out}");
    assert!(lines.get(3).is_some_and(|l| l.starts_with("v5.")), "the image ships kustomize: {out}");
    assert!(lines.get(4).is_some_and(|l| l.starts_with("v3.")), "the image ships helm: {out}");

    // It takes the Lease.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let holder = eventually("the Lease held by the operator pod", WAIT, || async {
        leases.get("tugboat").await.ok()?.spec?.holder_identity
    })
    .await;
    assert_eq!(holder, pod.name_any());

    // An application and a webhook, as a tenant would create them.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "git-auth"}, "stringData": {"username": "deployer", "password": "s3cret"}
    }))
    .expect("secret");
    secrets.create(&PostParams::default(), &secret).await.expect("create secret");
    let apps: Api<GitOpsApplication> = Api::namespaced(client.clone(), &ns.name);
    let app: GitOpsApplication = serde_json::from_value(json!({
        "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication", "metadata": {"name": "shop"},
        "spec": {"source": {"repoURL": server.url("team/shop.git"), "ref": {"branch": "main"}, "path": "deploy",
                            "secretRef": {"name": "git-auth"}},
                 "healthTimeout": "90s"}
    }))
    .expect("application");
    apps.create(&PostParams::default(), &app).await.expect("create application");
    let webhooks: Api<Webhook> = Api::namespaced(client.clone(), &ns.name);
    let webhook: Webhook = serde_json::from_value(json!({
        "apiVersion": "tugboat.dev/v1alpha1", "kind": "Webhook", "metadata": {"name": "deploy"},
        "spec": {"provider": "generic", "targets": [{"name": "shop"}]}
    }))
    .expect("webhook");
    webhooks.create(&PostParams::default(), &webhook).await.expect("create webhook");

    wait_ready_at(&apps, &first).await;
    let built: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let labels = built.get("web").await.expect("web").metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("built-by").map(String::as_str), Some("kustomize"), "built by the image's kustomize");
    let before = realnode::wait_ready_pods(&client, &ns.name, "app=web", 2, WAIT).await;
    assert_eq!(before.len(), 2);
    let ids_before = realnode::container_ids(&client, &ns.name, "app=web").await;
    assert_eq!(web_logs(&client, &ns.name).await, vec!["serving tag stable"; 2]);

    // A webhook call through the Service: a variable and a rolling restart of real containers.
    let path =
        eventually("the webhook path", WAIT, || async { webhooks.get("deploy").await.ok()?.status?.webhook_path })
            .await;
    let answer = call_webhook(&client, &ns.name, &path, "SERVICE_TAG=development&rollout-restart=all").await;
    assert_eq!(answer["applications"], json!(["shop"]), "{answer}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let ids_after = eventually("new web containers serving tag development", WAIT, || async {
        let deployment = deployments.get("web").await.ok()?;
        let env = deployment.spec?.template.spec?.containers[0].env.clone()?;
        let tag = env.iter().find(|e| e.name == "SERVICE_TAG")?.value.clone()?;
        if tag != "development" {
            return None;
        }
        realnode::ready_pods(&client, &ns.name, "app=web", 2).await?;
        let logs = web_logs(&client, &ns.name).await;
        (logs == vec!["serving tag development"; 2]).then_some(())?;
        Some(realnode::container_ids(&client, &ns.name, "app=web").await)
    })
    .await;
    let old: Vec<&String> = ids_before.values().flatten().collect();
    assert!(
        ids_after.values().flatten().all(|id| !old.contains(&id)),
        "every container was replaced: before {ids_before:?}, after {ids_after:?}"
    );
    eventually("the deployment recorded as Succeeded", WAIT, || async {
        let status = apps.get("shop").await.ok()?.status?;
        let last = status.deployments.last()?;
        (last.result == DeploymentResult::Succeeded).then_some(())
    })
    .await;

    // helm upgrade to two replicas: both serve, one leads, the next call still deploys.
    let mut upgrade = vec!["upgrade", RELEASE, chart, "--reuse-values", "--set", "replicaCount=2"];
    upgrade.extend(placement);
    helm.run(&upgrade);
    let two = operator_pods(&client, &ns.name, 2).await;
    let names: Vec<String> = two.iter().map(ResourceExt::name_any).collect();
    let holder = eventually("the Lease held by one of the two pods", WAIT, || async {
        let holder = leases.get("tugboat").await.ok()?.spec?.holder_identity?;
        names.contains(&holder).then_some(holder)
    })
    .await;
    assert!(names.contains(&holder));
    call_webhook(&client, &ns.name, &path, "SERVICE_TAG=v3").await;
    eventually("web serving v3 after the upgrade", WAIT, || async {
        realnode::ready_pods(&client, &ns.name, "app=web", 2).await?;
        (web_logs(&client, &ns.name).await == vec!["serving tag v3"; 2]).then_some(())
    })
    .await;

    // helm uninstall: the operator goes, the application's workload stays.
    helm.run(&["uninstall", RELEASE, "--wait"]);
    eventually("no operator pods", WAIT, || async {
        let selector = format!("app.kubernetes.io/instance={RELEASE}");
        let list = pods_api.list(&ListParams::default().labels(&selector)).await.ok()?;
        list.items.is_empty().then_some(())
    })
    .await;
    let web = deployments.get("web").await.expect("Deployment web is left in place");
    assert_eq!(web.status.and_then(|s| s.ready_replicas), Some(2), "its pods still run");
    assert!(apps.get_opt("shop").await.expect("get").is_some(), "the application object stays");
    // No operator is left to finish its finalizer: let the test namespace go.
    let release = json!({"metadata": {"finalizers": null}});
    apps.patch("shop", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&release)).await.expect("patch");
    drop(server);
}
