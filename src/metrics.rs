//! Prometheus metrics, served at `/metrics` on the probe server.
//!
//! One set per operator process, made at start and handed to the controllers, the trigger
//! endpoint and the outgoing-webhook deliveries in their contexts (tests make their own, so
//! they never see each other's counts). Gauges about queued and deferred triggers are
//! computed from the applications' cache when scraped, so they are right after a restart too.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::GitOpsApplication;
use kube::runtime::reflector::Store;

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    tool: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    provider: String,
    code: String,
}

/// Every metric tugboat exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    reconcile_duration: Family<ResultLabel, Histogram, fn() -> Histogram>,
    reconciles_in_flight: Gauge,
    deployments: Family<ResultLabel, Counter>,
    triggers: Family<TriggerLabels, Counter>,
    deliveries: Family<ResultLabel, Counter>,
    builds: Family<BuildLabels, Counter>,
    build_duration: Family<BuildLabels, Histogram, fn() -> Histogram>,
    queued_triggers: Gauge,
    deferred_triggers: Gauge,
    applications: OnceLock<Store<GitOpsApplication>>,
}

fn duration_histogram() -> Histogram {
    // 5 ms … ~80 s: a no-change reconcile is milliseconds, a deployment waits for rollouts.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh, registered set.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tugboat");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register("reconciles", "Application reconciles by result (success | error)", reconciles.clone());
        let reconcile_duration =
            Family::<ResultLabel, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "reconcile_duration",
            "Time one application reconcile took, by result",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        let reconciles_in_flight = Gauge::default();
        registry.register("reconciles_in_flight", "Application reconciles running now", reconciles_in_flight.clone());
        let deployments = Family::<ResultLabel, Counter>::default();
        registry.register(
            "deployments",
            "Deployments (apply, prune, restart, health) by result (succeeded | failed)",
            deployments.clone(),
        );
        let triggers = Family::<TriggerLabels, Counter>::default();
        registry.register(
            "triggers",
            "Calls of the trigger endpoint by Webhook provider and HTTP status code",
            triggers.clone(),
        );
        let deliveries = Family::<ResultLabel, Counter>::default();
        registry.register("deliveries", "Outgoing webhook delivery attempts by result", deliveries.clone());
        let builds = Family::<BuildLabels, Counter>::default();
        registry.register(
            "builds",
            "Runs of kustomize and helm by tool and result (succeeded | failed); cached output starts none",
            builds.clone(),
        );
        let build_duration =
            Family::<BuildLabels, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "build_duration",
            "Time one kustomize build or helm template took, by tool and result",
            prometheus_client::registry::Unit::Seconds,
            build_duration.clone(),
        );
        let queued_triggers = Gauge::default();
        registry.register(
            "queued_triggers",
            "Applications with a recorded trigger or reconcile request not handled yet (the work queue)",
            queued_triggers.clone(),
        );
        let deferred_triggers = Gauge::default();
        registry.register(
            "deferred_triggers",
            "Applications whose trigger is held back by a closed change window",
            deferred_triggers.clone(),
        );
        // Known label values start at 0, so rates and alerts work before the first event.
        for result in ["success", "error"] {
            let label = ResultLabel { result: result.to_owned() };
            drop(reconciles.get_or_create(&label));
            drop(reconcile_duration.get_or_create(&label));
        }
        for result in ["succeeded", "failed"] {
            drop(deployments.get_or_create(&ResultLabel { result: result.to_owned() }));
        }
        Self {
            registry,
            reconciles,
            reconcile_duration,
            reconciles_in_flight,
            deployments,
            triggers,
            deliveries,
            builds,
            build_duration,
            queued_triggers,
            deferred_triggers,
            applications: OnceLock::new(),
        }
    }

    /// Counts one finished reconcile and its duration.
    pub fn reconcile_finished(&self, ok: bool, elapsed: Duration) {
        let label = ResultLabel { result: if ok { "success" } else { "error" }.to_owned() };
        self.reconciles.get_or_create(&label).inc();
        self.reconcile_duration.get_or_create(&label).observe(elapsed.as_secs_f64());
    }

    /// Marks a reconcile as running until the returned guard is dropped.
    pub fn reconcile_started(&self) -> InFlight<'_> {
        self.reconciles_in_flight.inc();
        InFlight(&self.reconciles_in_flight)
    }

    /// Counts one finished deployment.
    pub fn deployment_finished(&self, succeeded: bool) {
        let result = if succeeded { "succeeded" } else { "failed" };
        self.deployments.get_or_create(&ResultLabel { result: result.to_owned() }).inc();
    }

    /// Counts one call of the trigger endpoint; `provider` is `unknown` when no Webhook matched.
    pub fn trigger_answered(&self, provider: &str, code: u16) {
        let labels = TriggerLabels { provider: provider.to_owned(), code: code.to_string() };
        self.triggers.get_or_create(&labels).inc();
    }

    /// Counts one outgoing webhook delivery attempt by its result.
    pub fn delivery(&self, result: crate::api::DeliveryResult) {
        self.deliveries.get_or_create(&ResultLabel { result: result.as_str().to_owned() }).inc();
    }

    /// Counts one run of a build tool (`kustomize`, `helm`) and its duration.
    pub fn build_finished(&self, tool: &str, succeeded: bool, elapsed: Duration) {
        let result = if succeeded { "succeeded" } else { "failed" };
        let labels = BuildLabels { tool: tool.to_owned(), result: result.to_owned() };
        self.builds.get_or_create(&labels).inc();
        self.build_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// Lets the queue gauges read the application cache (called once by the controller).
    pub fn watch_applications(&self, store: Store<GitOpsApplication>) {
        let _ = self.applications.set(store);
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        if let Some(store) = self.applications.get() {
            let apps = store.state();
            let depth = queue_depth(apps.iter().map(|a| a.as_ref()));
            self.queued_triggers.set(depth.queued as i64);
            self.deferred_triggers.set(depth.deferred as i64);
        }
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(%error, "cannot encode the metrics");
        }
        text
    }
}

/// Decrements the in-flight gauge when dropped (also when a reconcile is cancelled).
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// How many applications wait for work, and how many of those a change window holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    pub queued: usize,
    pub deferred: usize,
}

/// Counts applications with unhandled triggers or reconcile requests, and deferred ones.
pub fn queue_depth<'a>(apps: impl IntoIterator<Item = &'a GitOpsApplication>) -> QueueDepth {
    let mut depth = QueueDepth::default();
    for app in apps {
        let deferred = app.status.as_ref().is_some_and(|s| s.pending_trigger.is_some());
        if deferred {
            depth.deferred += 1;
        }
        if crate::trigger::record::work_pending(app) {
            depth.queued += 1;
        }
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_text_format_with_their_labels() {
        let metrics = Metrics::new();
        metrics.reconcile_finished(true, Duration::from_millis(20));
        metrics.deployment_finished(false);
        metrics.trigger_answered("github", 202);
        metrics.delivery(crate::api::DeliveryResult::Succeeded);
        let text = metrics.encode();
        assert!(text.contains("tugboat_reconciles_total{result=\"success\"} 1"), "{text}");
        assert!(text.contains("tugboat_reconcile_duration_seconds_count{result=\"success\"} 1"), "{text}");
        assert!(text.contains("tugboat_deployments_total{result=\"failed\"} 1"), "{text}");
        assert!(text.contains("tugboat_triggers_total{provider=\"github\",code=\"202\"} 1"), "{text}");
        assert!(text.contains("tugboat_deliveries_total{result=\"succeeded\"} 1"), "{text}");
        assert!(text.contains("tugboat_reconciles_in_flight 0"), "{text}");
    }

    #[test]
    fn in_flight_gauge_follows_the_guard() {
        let metrics = Metrics::new();
        let guard = metrics.reconcile_started();
        assert!(metrics.encode().contains("tugboat_reconciles_in_flight 1"));
        drop(guard);
        assert!(metrics.encode().contains("tugboat_reconciles_in_flight 0"));
    }

    #[test]
    fn queue_depth_counts_pending_requests_and_deferred_triggers() {
        let app = |annotations: serde_json::Value, status: serde_json::Value| -> GitOpsApplication {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication",
                "metadata": {"name": "a", "namespace": "n", "annotations": annotations},
                "spec": {"source": {"repoURL": "https://example.com/r.git", "ref": {"branch": "main"}}},
                "status": status,
            }))
            .expect("application")
        };
        let idle = app(serde_json::json!({}), serde_json::json!({}));
        let requested = app(serde_json::json!({"tugboat.dev/reconcile-requested-at": "t1"}), serde_json::json!({}));
        let handled = app(
            serde_json::json!({"tugboat.dev/reconcile-requested-at": "t1"}),
            serde_json::json!({"lastHandledReconcileAt": "t1"}),
        );
        let deferred = app(
            serde_json::json!({}),
            serde_json::json!({"pendingTrigger": {"id": "x", "at": "2026-01-01T00:00:00Z", "source": "generic", "sequence": 1}}),
        );
        let depth = queue_depth([&idle, &requested, &handled, &deferred]);
        assert_eq!(depth, QueueDepth { queued: 1, deferred: 1 });
    }
}
