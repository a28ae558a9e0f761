//! The GitOpsApplication controller: watches applications and runs the deployment pipeline for each.

mod claim;
mod credentials;
mod decide;
mod error;
mod events;
mod notify;
mod pipeline;
mod status;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::utils::WatchStreamExt;
use kube::runtime::watcher;
use kube::runtime::{predicates, utils::PredicateConfig};
use kube::{Api, Client, Resource, ResourceExt};

pub use error::Error;

use crate::api::GitOpsApplication;
use crate::deploy::Deployer;
use crate::source::GitCache;

/// Finalizer that lets tugboat delete what an application created (with `prune: true`).
pub const FINALIZER: &str = "tugboat.dev/cleanup";
pub use crate::trigger::record::RECONCILE_REQUESTED_ANNOTATION;

/// Operator-wide settings the controller needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Allow `file://` repository URLs.
    pub allow_file_sources: bool,
    /// Applications fetched, rendered and applied at once; up to [`WAITING_PER_SLOT`] times as
    /// many more may be waiting for their rollouts meanwhile.
    pub concurrency: u16,
    /// Wait this long for more changes before reconciling.
    pub debounce: Duration,
    /// Only watch this namespace.
    pub namespace: Option<String>,
    /// Change windows for applications that set none (`--default-change-window`).
    pub default_windows: Vec<crate::api::ChangeWindow>,
}

/// Reconciles that may wait for rollouts per slot of `--concurrency`.
pub const WAITING_PER_SLOT: u16 = 8;

/// Shared state of every reconcile.
pub struct Context {
    pub client: Client,
    pub git: GitCache,
    pub deployer: Deployer,
    pub recorder: Recorder,
    pub settings: Settings,
    /// Reconciles doing work (fetch, render, dry run, apply) at once: `--concurrency`. A
    /// deployment gives its slot back while it waits for its rollout, so a hundred applications
    /// rolling out at once do not queue behind each other's rollouts.
    pub work_slots: Arc<tokio::sync::Semaphore>,
    /// Outgoing webhooks: events and deployment gates.
    pub outgoing: Arc<crate::outgoing::dispatch::Outgoing>,
}

impl Context {
    pub fn new(
        client: Client,
        config: kube::Config,
        git: GitCache,
        settings: Settings,
        outgoing: Arc<crate::outgoing::dispatch::Outgoing>,
    ) -> Self {
        let reporter = Reporter { controller: "tugboat".into(), instance: std::env::var("POD_NAME").ok() };
        Self {
            deployer: Deployer::new(client.clone(), config),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            git,
            work_slots: Arc::new(tokio::sync::Semaphore::new(usize::from(settings.concurrency.max(1)))),
            settings,
            outgoing,
        }
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
pub async fn run(context: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<GitOpsApplication> = match &context.settings.namespace {
        Some(ns) => Api::namespaced(context.client.clone(), ns),
        None => Api::all(context.client.clone()),
    };
    let (reader, writer) = reflector::store();
    crate::metrics::global().watch_applications(reader.clone());
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(reconcile_key, PredicateConfig::default());
    // The work itself is bounded by `work_slots`; these reconciles also include those that
    // only wait for a rollout, which costs a watch and no CPU.
    let reconciles = context.settings.concurrency.saturating_mul(WAITING_PER_SLOT);
    let config = controller::Config::default().debounce(context.settings.debounce).concurrency(reconciles);
    Controller::for_stream(stream, reader)
        .with_config(config)
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

/// Unexpected errors (the API server going away, a conflict) retry with a short backoff;
/// expected failures are handled in the pipeline and written to status instead.
fn error_policy(app: Arc<GitOpsApplication>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(application = %app.name_any(), namespace = app.namespace().unwrap_or_default(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}
