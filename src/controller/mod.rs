//! The GitOpsApplication controller: watches applications and runs the deployment pipeline for each.

mod build;
mod claim;
mod credentials;
mod decide;
mod dependencies;
mod deployment;
mod error;
mod events;
mod hooks;
mod inputs;
#[cfg(test)]
mod mock_api;
mod notify;
mod pipeline;
mod report;
mod status;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::core::{NamespaceResourceScope, PartialObjectMeta};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::utils::WatchStreamExt;
use kube::runtime::watcher;
use kube::runtime::{predicates, utils::PredicateConfig};
use kube::{Api, Client, Resource, ResourceExt};

pub use error::Error;

use crate::api::GitOpsApplication;
use crate::deploy::{Deployer, plan};
use crate::shared_watch::SharedWatch;
use crate::source::GitCache;

/// Finalizer that lets tugboat delete what an application created (with `prune: true`).
pub const FINALIZER: &str = "tugboat.dev/cleanup";
pub use crate::trigger::record::RECONCILE_REQUESTED_ANNOTATION;

/// Operator-wide settings the controller needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Allow `file://` repository URLs.
    pub allow_file_sources: bool,
    /// Applications fetched, rendered and applied at once (work slots). No reconcile waits for
    /// a rollout or a gate (those are persisted phases, looked at again when woken); looking
    /// at one takes no slot, so checks never queue behind deployments.
    pub concurrency: u16,
    /// Wait this long for more changes before reconciling.
    pub debounce: Duration,
    /// Only watch this namespace.
    pub namespace: Option<String>,
    /// Change windows for applications that set none (`--default-change-window`).
    pub default_windows: Vec<crate::api::ChangeWindow>,
    /// The ServiceAccount of its own namespace an application without `serviceAccountName`
    /// acts as (`--default-service-account`). `None` only with `--apply-as-operator`: such
    /// applications then apply with the operator's own rights (single-team installs).
    pub default_service_account: Option<String>,
    /// How much one application's manifests may render to (`--render-max-bytes`,
    /// `--render-max-objects`); over it the application stalls and nothing is applied.
    pub render_budget: crate::render::Budget,
    /// How Kustomize overlays and Helm charts are built (`--kustomize-bin`, `--helm-bin`, …).
    pub build: crate::build::Settings,
    /// `spec.dependsOn` may name applications of other namespaces
    /// (`--allow-cross-namespace-dependencies`; off: a tenant learns nothing of other namespaces).
    pub allow_cross_namespace_dependencies: bool,
}

impl Settings {
    /// The ServiceAccount (of the application's namespace) an application acts as when it
    /// applies, reads its rollouts and prunes; `None`: the operator's own identity.
    pub fn acting_account<'a>(&'a self, app: &'a GitOpsApplication) -> Option<&'a str> {
        app.spec.service_account_name.as_deref().or(self.default_service_account.as_deref())
    }
}

/// Shared state of every reconcile.
pub struct Context {
    pub client: Client,
    pub git: GitCache,
    pub deployer: Deployer,
    pub recorder: Recorder,
    pub settings: Settings,
    /// Outgoing webhooks: events and deployment gates.
    pub outgoing: Arc<crate::outgoing::dispatch::Outgoing>,
    /// What reconciles and deployments count (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Deployments this process has started or taken up; one it meets for the first time was
    /// left by another process (a restart, a new leader) and is announced as resumed.
    known_deployments: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The last status written per application (a reconcile never acts on an older copy).
    written: status::LastWritten,
    /// Kustomize and Helm builds, and their output.
    pub builder: crate::build::Builder,
    /// The cluster's version and APIs, for Helm's `.Capabilities` (read when a chart first needs them).
    capabilities: tokio::sync::Mutex<Option<(std::time::Instant, Arc<crate::build::Capabilities>)>>,
    /// Fetching, rendering and applying at once: `--concurrency`.
    work_slots: Arc<tokio::sync::Semaphore>,
    /// Every application, as the shared watch sees it: dependencies are judged from it.
    applications: Store<GitOpsApplication>,
}

/// Reconciles run at once per work slot: the others only look at a rollout or a gate (a read
/// or two), so they need no slot, and a storm of rollouts does not delay new deployments.
const RECONCILES_PER_SLOT: u16 = 8;

/// How long the cluster's version and API list are reused for Helm's `.Capabilities`.
const CAPABILITIES_TTL: std::time::Duration = std::time::Duration::from_secs(600);

impl Context {
    /// The cluster's version and APIs (for Helm charts), read at most every ten minutes.
    pub(crate) async fn capabilities(&self) -> Result<Arc<crate::build::Capabilities>, kube::Error> {
        let mut cached = self.capabilities.lock().await;
        if let Some((_, capabilities)) = cached.as_ref().filter(|(at, _)| at.elapsed() < CAPABILITIES_TTL) {
            return Ok(capabilities.clone());
        }
        let read = async {
            let version = self.client.apiserver_version().await?.git_version;
            let mut api_versions = self.client.list_core_api_versions().await?.versions;
            for group in self.client.list_api_groups().await?.groups {
                api_versions.extend(group.versions.into_iter().map(|v| v.group_version));
            }
            Ok::<_, kube::Error>(crate::build::Capabilities { kube_version: version, api_versions })
        };
        // Unreadable: the build fails (and is retried), rather than rendering a chart for
        // Helm's default cluster, whose capability checks could drop objects.
        let capabilities = Arc::new(read.await?);
        *cached = Some((std::time::Instant::now(), capabilities.clone()));
        Ok(capabilities)
    }

    pub fn new(
        client: Client,
        config: kube::Config,
        git: GitCache,
        settings: Settings,
        outgoing: Arc<crate::outgoing::dispatch::Outgoing>,
        metrics: Arc<crate::metrics::Metrics>,
        applications: Store<GitOpsApplication>,
    ) -> Self {
        let work_slots = Arc::new(tokio::sync::Semaphore::new(usize::from(settings.concurrency.max(1))));
        let builder = crate::build::Builder::new(settings.build.clone(), metrics.clone());
        let reporter = Reporter { controller: "tugboat".into(), instance: std::env::var("POD_NAME").ok() };
        Self {
            deployer: Deployer::new(client.clone(), config),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            git,
            settings,
            outgoing,
            metrics,
            builder,
            capabilities: Default::default(),
            known_deployments: Default::default(),
            written: Default::default(),
            work_slots,
            applications,
        }
    }

    /// Notes a deployment as carried on by this process; `true` the first time.
    fn remember(&self, id: &str) -> bool {
        self.known_deployments.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned())
    }

    /// A work slot: held while fetching, rendering and applying. The semaphore is never
    /// closed, so `None` cannot happen; it would only mean working without a slot.
    async fn work_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.work_slots.clone().acquire_owned().await.ok()
    }

    /// A finished deployment is no longer tracked.
    fn forget(&self, id: &str) {
        self.known_deployments.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// What makes an application worth reconciling again: its spec, a reconcile request, deletion.
fn reconcile_key(app: &GitOpsApplication) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    predicates::generation(app).hash(&mut hasher);
    app.annotations().get(RECONCILE_REQUESTED_ANNOTATION).hash(&mut hasher);
    app.annotations().get(crate::trigger::record::TRIGGER_ANNOTATION).hash(&mut hasher);
    app.meta().deletion_timestamp.is_some().hash(&mut hasher);
    app.finalizers().hash(&mut hasher);
    Some(hasher.finish())
}

/// Runs the controller until `shutdown` resolves, finishing in-flight reconciles.
///
/// Reconciles come from the shared application watch (`applications`, filtered to what is
/// worth a reconcile), from the workloads tugboat applied (their rollouts), and from the
/// outgoing dispatcher when a gate hook recorded a step.
pub async fn run(
    context: Arc<Context>,
    applications: &SharedWatch<GitOpsApplication>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let reader = applications.store.clone();
    context.metrics.watch_applications(reader.clone());
    let changes = applications
        .subscribe()
        .map(|app| {
            tracing::trace!(application = %app.name_any(), "application changed");
            Ok::<_, watcher::Error>(GitOpsApplication::clone(&app))
        })
        .predicate_filter(reconcile_key, PredicateConfig::default())
        .filter_map(|app| std::future::ready(app.ok().map(Arc::new)));
    let reconciles = context.settings.concurrency.max(1).saturating_mul(RECONCILES_PER_SLOT);
    let config = controller::Config::default().debounce(context.settings.debounce).concurrency(reconciles);
    let namespace = context.settings.namespace.clone();
    let gate_moves = context.outgoing.gate_moves();
    let client = context.client.clone();
    Controller::for_shared_stream(changes, reader)
        .with_config(config)
        .watches_stream(rollouts::<Deployment>(&client, namespace.as_deref()), owner_of)
        .watches_stream(rollouts::<StatefulSet>(&client, namespace.as_deref()), owner_of)
        .watches_stream(rollouts::<DaemonSet>(&client, namespace.as_deref()), owner_of)
        .reconcile_on(gate_moves)
        .reconcile_on(dependents_woken(applications))
        .graceful_shutdown_on(shutdown)
        .run(pipeline::reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(application = %object, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile ended with an error"),
            }
        })
        .await;
}

/// The applications that depend on one whose readiness changed (`spec.dependsOn`): a held
/// deployment goes ahead as soon as its dependency is ready, not at its next recheck.
fn dependents_woken(
    applications: &SharedWatch<GitOpsApplication>,
) -> impl futures::Stream<Item = ObjectRef<GitOpsApplication>> + Send + 'static {
    let store = applications.store.clone();
    applications
        .subscribe()
        .map(|app| Ok::<_, watcher::Error>(GitOpsApplication::clone(&app)))
        .predicate_filter(dependencies::readiness_key, PredicateConfig::default())
        .filter_map(|app| std::future::ready(app.ok()))
        .flat_map(move |changed| {
            let all = store.state();
            let woken = dependencies::dependents(&changed, all.iter().map(AsRef::as_ref));
            futures::stream::iter(woken.into_iter().map(|(namespace, name)| ObjectRef::new(&name).within(&namespace)))
        })
}

/// Changes to the workloads tugboat applied (metadata only: a rollout's progress changes the
/// resourceVersion, and the reconcile reads the workload itself).
fn rollouts<K>(
    client: &Client,
    namespace: Option<&str>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K: Resource<Scope = NamespaceResourceScope>,
{
    let api: Api<PartialObjectMeta<K>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let selector = format!("{}={}", plan::MANAGED_BY_LABEL, plan::MANAGED_BY);
    // Errors are logged here rather than handed to the controller: its trigger streams are
    // better kept to objects (errors routed through them stalled the application stream
    // after an API server restart).
    watcher(api, watcher::Config::default().labels(&selector)).default_backoff().touched_objects().filter_map(|event| {
        std::future::ready(match event {
            Ok(workload) => Some(Ok(workload)),
            Err(error) => {
                tracing::debug!(%error, kind = %K::kind(&()), "workload watch failed; retrying");
                None
            }
        })
    })
}

/// The application a workload belongs to, by the labels tugboat applied to it.
fn owner_of<K: Resource>(workload: PartialObjectMeta<K>) -> Option<ObjectRef<GitOpsApplication>> {
    let labels = workload.labels();
    let name = labels.get(plan::APPLICATION_LABEL)?;
    let namespace = labels.get(plan::APPLICATION_NAMESPACE_LABEL)?;
    Some(ObjectRef::new(name).within(namespace))
}

/// Unexpected errors (the API server going away, a conflict) retry with a short backoff;
/// expected failures are handled in the pipeline and written to status instead.
fn error_policy(app: Arc<GitOpsApplication>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(application = %app.name_any(), namespace = app.namespace().unwrap_or_default(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}
