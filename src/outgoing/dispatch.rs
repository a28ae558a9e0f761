//! The dispatcher: queues events durably on the hooks that want them, delivers them in the
//! background (retries and waits survive restarts), runs deployment gates, and keeps each
//! hook's status (Ready, the last 20 deliveries, what is pending).
//!
//! Durability: an event becomes a `status.pending` entry of each hook that wants it, under a
//! delivery id derived from the hook, the application, the event and the occurrence, so the
//! same occurrence emitted twice (a re-run reconcile, a restart) is queued once. Each attempt
//! is counted in status *before* it is sent; a restarted operator therefore continues with
//! the next attempt under the same `webhook-id` and never sends a second first attempt.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::Notify;

use super::deliver::{self, Step, results};
use super::event;
use super::hook;
use super::send::Sender;
use crate::FIELD_MANAGER;
use crate::api::{
    DeliveryRecord, DeliverySummary, EventData, GitOpsApplication, HookGate, OutgoingWebhook, OutgoingWebhookStatus,
    PendingDelivery,
};
use crate::conditions::{self, READY};

/// Deliveries kept in `status.deliveries`.
pub const KEEP_DELIVERIES: usize = 20;
/// Pending deliveries kept per hook; beyond it the oldest are dropped (and logged).
pub const MAX_PENDING: usize = 100;
/// How long a claimed attempt keeps others off it (it is persisted before sending): one
/// attempt's timeout plus time to record it. After a crash the series resumes after this.
const CLAIM: Duration = Duration::from_secs(15);
/// Default key of the signing secret.
pub const DEFAULT_SECRET_KEY: &str = "secret";

/// Condition reasons of OutgoingWebhooks.
pub mod reasons {
    pub const VALID: &str = "Valid";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const DELIVERED: &str = "Delivered";
    pub const DELIVERY_FAILED: &str = "DeliveryFailed";
    pub const CONFIGURATION_ERROR: &str = "ConfigurationError";
}

/// The outgoing-webhook service shared by the controllers and the trigger endpoint.
pub struct Outgoing {
    client: Client,
    hooks: Store<OutgoingWebhook>,
    sender: Sender,
    wake: Notify,
    /// Serialises status writes per hook (`namespace/name`).
    locks: crate::keyed_lock::KeyedLocks<String>,
    /// Deliveries being worked on by this process.
    in_flight: Mutex<HashSet<String>>,
}

/// The reflector half the operator must run (see [`watch`]).
pub type HookWriter = reflector::store::Writer<OutgoingWebhook>;

impl Outgoing {
    pub fn new(client: Client, sender: Sender) -> (Arc<Self>, HookWriter) {
        let (hooks, writer) = reflector::store();
        let service =
            Self { client, hooks, sender, wake: Notify::new(), locks: Default::default(), in_flight: Mutex::default() };
        (Arc::new(service), writer)
    }

    /// Waits until the hook cache has synced (at most `timeout`), so early events are not lost.
    pub async fn wait_ready(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.hooks.wait_until_ready()).await;
    }

    /// Queues `data` on every hook that wants it from `app`; `occurrence` names this occurrence
    /// (a deployment id, a trigger id, ...). Failures are logged: an event never fails a deployment.
    pub async fn emit(&self, app: &GitOpsApplication, data: EventData, occurrence: &str) {
        let app_uid = app.uid().unwrap_or_default();
        for hook in self.hooks.state() {
            if !hook::wants(&hook, app, &data) {
                continue;
            }
            let id = event::delivery_id(&hook.uid().unwrap_or_default(), &app_uid, data.event, occurrence);
            let pending = PendingDelivery {
                id: id.clone(),
                attempt: 0,
                next_at: Time(jiff::Timestamp::now()),
                status_url: None,
                wait_until: None,
                progress: None,
                data: data.clone(),
            };
            let queued = self
                .update(&hook, |status| {
                    if status.pending.iter().any(|p| p.id == id) || status.deliveries.iter().any(|d| d.id == id) {
                        return false;
                    }
                    status.pending.push(pending.clone());
                    let excess = status.pending.len().saturating_sub(MAX_PENDING);
                    for dropped in status.pending.drain(..excess) {
                        tracing::warn!(hook = %hook.name_any(), id = %dropped.id, "too many pending deliveries: dropped the oldest");
                    }
                    true
                })
                .await;
            match queued {
                Ok(_) => tracing::debug!(hook = %hook.name_any(), %id, event = event::name(data.event), "event queued"),
                Err(error) => tracing::warn!(hook = %hook.name_any(), %error, "cannot queue an event"),
            }
        }
        self.wake.notify_one();
    }

    /// Runs the `gate` hooks selecting `app`, one after the other, each to its end (retries and
    /// waiting included). `Err` names the first hook that did not succeed and why.
    /// Does any hook gate this application at `gate`? (A reconcile waits for gates without
    /// its work slot.)
    pub fn has_gate(&self, app: &GitOpsApplication, gate: HookGate) -> bool {
        self.hooks.state().iter().any(|h| h.spec.gate == gate && hook::selects(h, app))
    }

    pub async fn gate(
        &self,
        app: &GitOpsApplication,
        gate: HookGate,
        data: EventData,
        occurrence: &str,
    ) -> Result<(), String> {
        let mut hooks: Vec<_> =
            self.hooks.state().into_iter().filter(|h| h.spec.gate == gate && hook::selects(h, app)).collect();
        hooks.sort_by_key(|h| h.name_any());
        let app_uid = app.uid().unwrap_or_default();
        for hook in hooks {
            let id = event::delivery_id(
                &hook.uid().unwrap_or_default(),
                &app_uid,
                data.event,
                &format!("{occurrence}/gate"),
            );
            let mut pending = PendingDelivery {
                id,
                attempt: 0,
                next_at: Time(jiff::Timestamp::now()),
                status_url: None,
                wait_until: None,
                progress: None,
                data: data.clone(),
            };
            loop {
                let wait = pending.next_at.0.duration_since(jiff::Timestamp::now()).as_secs_f64();
                if wait > 0.0 {
                    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                }
                if pending.status_url.is_none() {
                    pending.attempt += 1;
                }
                let secret = self.secret(&hook).await;
                let step = deliver::step(&self.sender, &hook, secret, &mut pending, rand::random()).await;
                self.record(&hook, &pending.id, &step, None).await;
                if step.done {
                    if step.record.result != results::SUCCEEDED {
                        let why = step.record.error.clone().unwrap_or_else(|| step.record.result.clone());
                        return Err(format!(
                            "{gate:?} hook OutgoingWebhook/{} {}: {why}",
                            hook.name_any(),
                            step.record.result
                        ));
                    }
                    break;
                }
            }
        }
        Ok(())
    }

    /// Delivers what is pending until `shutdown` resolves; also keeps each hook's Ready condition.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {},
                () = tokio::time::sleep(Duration::from_millis(500)) => {},
            }
            let now = jiff::Timestamp::now();
            for hook in self.hooks.state() {
                self.check_spec(&hook).await;
                let Some(status) = &hook.status else { continue };
                // Events of one application go out in order: a delivery's first attempt waits
                // until the earlier ones have been sent once (their retries do not hold it up).
                let mut unsent_apps = HashSet::new();
                for pending in &status.pending {
                    let key = format!("{}/{}", hook.namespace().unwrap_or_default(), pending.id);
                    let busy = self.in_flight.lock().map(|set| set.contains(&key)).unwrap_or(true);
                    let blocked = unsent_apps.contains(&pending.data.app_id);
                    if pending.attempt == 0 || busy {
                        unsent_apps.insert(pending.data.app_id.clone());
                    }
                    if pending.next_at.0 > now || blocked || busy {
                        continue;
                    }
                    let claimed = self.in_flight.lock().map(|mut set| set.insert(key.clone())).unwrap_or(false);
                    if claimed {
                        let service = self.clone();
                        let hook = hook.clone();
                        let id = pending.id.clone();
                        tokio::spawn(async move {
                            service.advance(&hook, &id).await;
                            if let Ok(mut set) = service.in_flight.lock() {
                                set.remove(&key);
                            }
                        });
                    }
                }
            }
        }
    }

    /// One step of a durable delivery: claim (count the attempt in status), step, record.
    async fn advance(&self, hook: &OutgoingWebhook, id: &str) {
        let mut claimed = None;
        let claim = self
            .update(hook, |status| {
                let Some(pending) = status.pending.iter_mut().find(|p| p.id == id) else { return false };
                if pending.next_at.0 > jiff::Timestamp::now() {
                    return false;
                }
                if pending.status_url.is_none() {
                    pending.attempt += 1;
                }
                let mut copy = pending.clone();
                pending.next_at =
                    Time(jiff::Timestamp::now() + jiff::SignedDuration::try_from(CLAIM).unwrap_or_default());
                copy.next_at = pending.next_at.clone();
                claimed = Some(copy);
                true
            })
            .await;
        let (Ok(Some(fresh)), Some(mut pending)) = (claim, claimed) else { return };
        let secret = self.secret(&fresh).await;
        let step = deliver::step(&self.sender, &fresh, secret, &mut pending, rand::random()).await;
        self.record(&fresh, id, &step, Some(pending)).await;
    }

    /// Writes a step's outcome: the record, the pending entry (kept or removed), Ready, lastDelivery.
    async fn record(&self, hook: &OutgoingWebhook, id: &str, step: &Step, pending: Option<PendingDelivery>) {
        crate::metrics::global().delivery(&step.record.result);
        tracing::info!(
            hook = %hook.name_any(), %id, attempt = step.record.attempt, result = %step.record.result,
            http_status = ?step.record.http_status, error = ?step.record.error, "outgoing delivery"
        );
        let generation = hook.metadata.generation;
        let result = self
            .update(hook, |status| {
                match (&pending, step.done) {
                    (Some(_), true) => status.pending.retain(|p| p.id != id),
                    (Some(next), false) => {
                        if let Some(slot) = status.pending.iter_mut().find(|p| p.id == id) {
                            *slot = next.clone();
                        }
                    }
                    (None, _) => {}
                }
                push_record(&mut status.deliveries, step.record.clone());
                status.last_delivery = Some(DeliverySummary {
                    id: step.record.id.clone(),
                    at: step.record.at.clone(),
                    result: step.record.result.clone(),
                    http_status: step.record.http_status.unwrap_or(0),
                });
                if step.done {
                    let now = Time(jiff::Timestamp::now());
                    let (ok, reason) = match (step.record.result.as_str(), step.config_error) {
                        (results::SUCCEEDED, _) => (true, reasons::DELIVERED),
                        (_, true) => (false, reasons::CONFIGURATION_ERROR),
                        _ => (false, reasons::DELIVERY_FAILED),
                    };
                    let message = match &step.record.error {
                        Some(error) => format!(
                            "delivery {id} ({}): {} after attempt {}: {error}",
                            event::name(step.record.event),
                            step.record.result,
                            step.record.attempt
                        ),
                        None => format!(
                            "delivery {id} ({}): {} after attempt {}",
                            event::name(step.record.event),
                            step.record.result,
                            step.record.attempt
                        ),
                    };
                    conditions::set(&mut status.conditions, READY, ok, reason, message, generation, &now);
                }
                true
            })
            .await;
        if let Err(error) = result {
            tracing::warn!(hook = %hook.name_any(), %error, "cannot record a delivery");
        }
    }

    /// Sets Ready from the spec once per generation: invalid specs are reported before any call.
    async fn check_spec(&self, hook: &OutgoingWebhook) {
        let generation = hook.metadata.generation;
        if hook.status.as_ref().and_then(|s| s.observed_generation) == generation && generation.is_some() {
            return;
        }
        let verdict = hook::check(&hook.spec);
        let result = self
            .update(hook, |status| {
                if status.observed_generation == generation {
                    return false;
                }
                status.observed_generation = generation;
                let now = Time(jiff::Timestamp::now());
                // A delivery of this generation already reported (it may have come first).
                let reported =
                    conditions::get(&status.conditions, READY).is_some_and(|c| c.observed_generation == generation);
                if verdict.is_ok() && reported {
                    return true;
                }
                match &verdict {
                    Ok(()) => conditions::set(
                        &mut status.conditions,
                        READY,
                        true,
                        reasons::VALID,
                        "ready to deliver",
                        generation,
                        &now,
                    ),
                    Err(message) => conditions::set(
                        &mut status.conditions,
                        READY,
                        false,
                        reasons::INVALID_SPEC,
                        message.clone(),
                        generation,
                        &now,
                    ),
                }
                true
            })
            .await;
        if let Err(error) = result {
            tracing::warn!(hook = %hook.name_any(), %error, "cannot write the hook's status");
        }
    }

    /// The signing secret, when `secretRef` is set.
    async fn secret(&self, hook: &OutgoingWebhook) -> Result<Option<Vec<u8>>, String> {
        let Some(reference) = &hook.spec.secret_ref else { return Ok(None) };
        let key = reference.key.as_deref().unwrap_or(DEFAULT_SECRET_KEY);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &hook.namespace().unwrap_or_default());
        match api.get_opt(&reference.name).await {
            Ok(Some(secret)) => secret
                .data
                .and_then(|mut data| data.remove(key))
                .map(|bytes| Some(bytes.0))
                .ok_or_else(|| format!("spec.secretRef: Secret {} has no key {key:?}", reference.name)),
            Ok(None) => Err(format!("spec.secretRef: Secret {} does not exist", reference.name)),
            Err(error) => Err(format!("spec.secretRef: cannot read Secret {}: {error}", reference.name)),
        }
    }

    /// Reads the hook fresh, lets `change` edit its status, and writes it (server-side apply)
    /// when `change` says it changed something. Writes to one hook are serialised here, and
    /// the apply names the resourceVersion it was computed from, so a concurrent write (another
    /// replica queuing an event) makes it run `change` again on a fresh read.
    /// Returns the hook as read (`None` when it is gone).
    async fn update(
        &self,
        hook: &OutgoingWebhook,
        mut change: impl FnMut(&mut OutgoingWebhookStatus) -> bool,
    ) -> Result<Option<OutgoingWebhook>, kube::Error> {
        let namespace = hook.namespace().unwrap_or_default();
        let name = hook.name_any();
        let _guard = self.locks.lock(format!("{namespace}/{name}")).await;
        let api: Api<OutgoingWebhook> = Api::namespaced(self.client.clone(), &namespace);
        let mut tries = 0;
        loop {
            tries += 1;
            let Some(fresh) = api.get_opt(&name).await? else { return Ok(None) };
            let mut status = fresh.status.clone().unwrap_or_default();
            if !change(&mut status) {
                return Ok(Some(fresh));
            }
            let patch = serde_json::json!({
                "apiVersion": OutgoingWebhook::api_version(&()),
                "kind": OutgoingWebhook::kind(&()),
                "metadata": {"name": name, "resourceVersion": fresh.resource_version()},
                "status": status,
            });
            match api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await {
                Ok(_) => return Ok(Some(fresh)),
                Err(kube::Error::Api(error)) if error.code == 409 && tries < 5 => continue,
                Err(error) => return Err(error),
            }
        }
    }
}

/// Adds a record, keeping the last [`KEEP_DELIVERIES`]; successive polls of one delivery
/// replace each other, so a long wait does not push older deliveries out.
fn push_record(records: &mut Vec<DeliveryRecord>, record: DeliveryRecord) {
    if record.result != results::RETRYING
        && let Some(last) = records.last_mut()
        && last.id == record.id
        && last.attempt == record.attempt
        && last.result == results::WAITING
    {
        *last = record;
        return;
    }
    records.push(record);
    let excess = records.len().saturating_sub(KEEP_DELIVERIES);
    records.drain(..excess);
}

/// Runs the hook watch (the reflector feeding [`Outgoing`]) until `shutdown` resolves.
pub async fn watch(
    client: Client,
    namespace: Option<String>,
    writer: HookWriter,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let api: Api<OutgoingWebhook> = match namespace {
        Some(ns) => Api::namespaced(client, &ns),
        None => Api::all(client),
    };
    let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer).applied_objects();
    tokio::pin!(stream);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            item = stream.next() => match item {
                Some(Ok(_)) => {}
                Some(Err(error)) => tracing::debug!(%error, "OutgoingWebhook watch error"),
                None => break,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EventType;

    fn record(id: &str, attempt: i32, result: &str) -> DeliveryRecord {
        DeliveryRecord {
            id: id.into(),
            event: EventType::DeploymentStarted,
            application: "a".into(),
            at: Time(jiff::Timestamp::UNIX_EPOCH),
            attempt,
            http_status: None,
            duration_ms: None,
            result: result.into(),
            error: None,
            progress: None,
        }
    }

    #[test]
    fn records_keep_twenty_and_polls_replace_each_other() {
        let mut records = Vec::new();
        for i in 0..25 {
            push_record(&mut records, record(&format!("m{i}"), 1, results::SUCCEEDED));
        }
        assert_eq!(records.len(), KEEP_DELIVERIES);
        assert_eq!(records[0].id, "m5");
        push_record(&mut records, record("w", 1, results::WAITING));
        push_record(&mut records, record("w", 1, results::WAITING));
        push_record(&mut records, record("w", 1, results::SUCCEEDED));
        assert_eq!(records.iter().filter(|r| r.id == "w").count(), 1);
        assert_eq!(records.last().map(|r| r.result.as_str()), Some(results::SUCCEEDED));
        push_record(&mut records, record("r", 1, results::RETRYING));
        push_record(&mut records, record("r", 2, results::RETRYING));
        push_record(&mut records, record("r", 3, results::SUCCEEDED));
        assert_eq!(records.iter().filter(|r| r.id == "r").count(), 3, "each attempt is kept");
    }
}
