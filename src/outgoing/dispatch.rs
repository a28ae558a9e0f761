//! The dispatcher: queues events durably on the hooks that want them, delivers them as a
//! kube-runtime controller on OutgoingWebhook (retries and waits survive restarts), asks
//! deployment gates, and keeps each hook's status (Ready, the last 20 deliveries, what is
//! pending).
//!
//! Durability: an event becomes a `status.pending` entry of each hook that wants it, under a
//! delivery id derived from the hook, the application, the event and the occurrence, so the
//! same occurrence emitted twice (a re-run reconcile, a restart) is queued once. Each attempt
//! is counted in status *before* it is sent; a restarted operator therefore continues with
//! the next attempt under the same `webhook-id` and never sends a second first attempt.
//!
//! Gates are deliveries like any other: a deployment asks ([`Outgoing::ask`]), the controller
//! here sends, and the deployment reads the hook's answer ([`Outgoing::answers`]) when woken
//! ([`Outgoing::gate_moves`]) or on its own requeue. Nothing waits on a receiver but the
//! attempt itself.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};

use super::deliver::{self, Step};
use super::event;
use super::hook;
use super::send::Sender;
use crate::FIELD_MANAGER;
use crate::api::{
    DeliveryRecord, DeliveryResult, DeliverySummary, EventData, EventType, GitOpsApplication, HookGate, InventoryEntry,
    OutgoingWebhook, OutgoingWebhookStatus, PendingDelivery,
};
use crate::conditions::{self, READY, Reason};
use crate::shared_watch::SharedWatch;
use crate::status_patch::{self, Precondition, Written};

/// Deliveries kept in `status.deliveries`.
pub const KEEP_DELIVERIES: usize = 20;
/// Pending deliveries kept per hook; beyond it the oldest are dropped (and logged).
pub const MAX_PENDING: usize = 100;
/// How long a claimed attempt keeps others off it (it is persisted before sending): one
/// attempt's timeout plus time to record it. After a crash the series resumes after this.
const CLAIM: Duration = Duration::from_secs(15);
/// Default key of the signing secret.
pub const DEFAULT_SECRET_KEY: &str = "secret";
/// A hook with nothing pending is looked at again after this (its spec check, a missed event).
const IDLE_RESYNC: Duration = Duration::from_secs(300);

/// What a gate hook's status says about one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateAnswer {
    /// Being delivered (retrying or waiting for completion); the progress it reported.
    Pending(Option<String>),
    Passed,
    /// Failed, canceled, terminal, timed out, or the hook is gone: why, naming the hook.
    Refused(String),
    /// Not in the hook's status (yet, or any more).
    Unseen,
}

/// The outgoing-webhook service shared by the controllers and the trigger endpoint.
pub struct Outgoing {
    client: Client,
    hooks: Store<OutgoingWebhook>,
    sender: Sender,
    metrics: Arc<crate::metrics::Metrics>,
    /// Serialises status writes per hook (`namespace/name`): events are queued by the
    /// endpoint and the application controller while the hook controller records attempts.
    locks: crate::keyed_lock::KeyedLocks<String>,
    /// Where to say that a gate hook recorded a step for an application (see [`Outgoing::gate_moves`]).
    gate_moves: Mutex<Option<mpsc::UnboundedSender<ObjectRef<GitOpsApplication>>>>,
}

impl Outgoing {
    /// The service over the hooks in `hooks` (a shared watch, see [`crate::shared_watch`]).
    pub fn new(
        client: Client,
        sender: Sender,
        hooks: Store<OutgoingWebhook>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self { client, hooks, sender, metrics, locks: Default::default(), gate_moves: Mutex::default() })
    }

    /// Waits until the hook cache has synced (at most `timeout`), so early events are not lost.
    pub async fn wait_ready(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.hooks.wait_until_ready()).await;
    }

    /// Applications whose gate hooks just recorded a step: the application controller
    /// reconciles them to read the answer. One subscriber (the latest) at a time.
    pub fn gate_moves(&self) -> mpsc::UnboundedReceiver<ObjectRef<GitOpsApplication>> {
        let (sender, receiver) = mpsc::unbounded();
        *self.gate_moves.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
        receiver
    }

    /// Queues `data` on every hook that wants it from `app`; `occurrence` names this occurrence
    /// (a deployment id, a trigger id, ...). Failures are logged: an event never fails a deployment.
    pub async fn emit(&self, app: &GitOpsApplication, data: EventData, occurrence: &str) {
        for hook in self.hooks.state() {
            if hook::wants(&hook, app, &data) {
                self.queue(&hook, app, data.clone(), occurrence).await;
            }
        }
    }

    /// The hooks gating `app` at `gate`, by name, as a deployment records what it awaits.
    pub fn gate_hooks(&self, app: &GitOpsApplication, gate: HookGate) -> Vec<InventoryEntry> {
        let mut hooks: Vec<InventoryEntry> = self
            .hooks
            .state()
            .iter()
            .filter(|h| h.spec.gate == gate && hook::selects(h, app))
            .map(|h| InventoryEntry {
                api_version: OutgoingWebhook::api_version(&()).into_owned(),
                kind: OutgoingWebhook::kind(&()).into_owned(),
                namespace: h.namespace(),
                name: h.name_any(),
            })
            .collect();
        hooks.sort();
        hooks
    }

    /// Asks every hook in `hooks` (see [`Outgoing::gate_hooks`]): a durable delivery of `data`
    /// on each, sent by the hook controller with its retries and waiting. `Err` names a hook
    /// that could not be asked.
    pub async fn ask(
        &self,
        app: &GitOpsApplication,
        hooks: &[InventoryEntry],
        data: EventData,
        occurrence: &str,
    ) -> Result<(), String> {
        for entry in hooks {
            let namespace = entry.namespace.clone().unwrap_or_default();
            let found = self.hooks.get(&ObjectRef::new(&entry.name).within(&namespace));
            let Some(hook) = found else {
                return Err(format!("OutgoingWebhook/{} was deleted before it was asked", entry.name));
            };
            if !self.queue(&hook, app, data.clone(), &gate_occurrence(occurrence)).await {
                return Err(format!("cannot queue the gate delivery on OutgoingWebhook/{}", entry.name));
            }
        }
        Ok(())
    }

    /// What each hook asked says now about `occurrence`, read fresh from the API server.
    pub async fn answers(
        &self,
        app: &GitOpsApplication,
        hooks: &[InventoryEntry],
        event: EventType,
        occurrence: &str,
    ) -> Result<Vec<(String, GateAnswer)>, kube::Error> {
        let mut answers = Vec::with_capacity(hooks.len());
        for entry in hooks {
            let label = format!("OutgoingWebhook/{}", entry.name);
            let api: Api<OutgoingWebhook> =
                Api::namespaced(self.client.clone(), entry.namespace.as_deref().unwrap_or_default());
            let answer = match api.get_opt(&entry.name).await? {
                None => GateAnswer::Refused(format!("{label} was deleted while the deployment waited for it")),
                Some(hook) => {
                    let id = event::delivery_id(
                        &hook.uid().unwrap_or_default(),
                        &app.uid().unwrap_or_default(),
                        event,
                        &gate_occurrence(occurrence),
                    );
                    answer_of(&label, hook.status.as_ref(), &id)
                }
            };
            answers.push((label, answer));
        }
        Ok(answers)
    }

    /// Queues one delivery of `data` on `hook` unless its id is already pending or delivered.
    /// `false` when the status could not be written.
    async fn queue(&self, hook: &OutgoingWebhook, app: &GitOpsApplication, data: EventData, occurrence: &str) -> bool {
        let id =
            event::delivery_id(&hook.uid().unwrap_or_default(), &app.uid().unwrap_or_default(), data.event, occurrence);
        let event_name = event::name(data.event);
        let pending = PendingDelivery {
            id: id.clone(),
            attempt: 0,
            next_at: Time(jiff::Timestamp::now()),
            status_url: None,
            wait_until: None,
            progress: None,
            data,
        };
        let queued = self
            .update(hook, |status| {
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
            Ok(_) => {
                tracing::debug!(hook = %hook.name_any(), %id, event = event_name, "event queued");
                true
            }
            Err(error) => {
                tracing::warn!(hook = %hook.name_any(), %error, "cannot queue an event");
                false
            }
        }
    }

    /// Delivers what is due, hook by hook, until `shutdown` resolves: a kube-runtime controller
    /// on OutgoingWebhook that requeues each hook at its next due delivery.
    pub async fn run(
        self: Arc<Self>,
        hooks: &SharedWatch<OutgoingWebhook>,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) {
        Controller::for_shared_stream(hooks.subscribe(), self.hooks.clone())
            .graceful_shutdown_on(shutdown)
            .run(reconcile, |_, _: &std::convert::Infallible, _| Action::requeue(Duration::from_secs(5)), self)
            .for_each(|_| async {})
            .await;
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
        self.record(&fresh, id, &step, pending).await;
        if fresh.spec.gate != HookGate::None {
            let moved = ObjectRef::new(&step.record.application).within(&fresh.namespace().unwrap_or_default());
            if let Some(sender) = self.gate_moves.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                let _ = sender.unbounded_send(moved);
            }
        }
    }

    /// Writes a step's outcome: the record, the pending entry (kept or removed), Ready, lastDelivery.
    async fn record(&self, hook: &OutgoingWebhook, id: &str, step: &Step, pending: PendingDelivery) {
        self.metrics.delivery(step.record.result);
        tracing::info!(
            hook = %hook.name_any(), %id, attempt = step.record.attempt, result = %step.record.result,
            http_status = ?step.record.http_status, error = ?step.record.error, "outgoing delivery"
        );
        let generation = hook.metadata.generation;
        let result = self
            .update(hook, |status| {
                if step.done {
                    status.pending.retain(|p| p.id != id);
                } else if let Some(slot) = status.pending.iter_mut().find(|p| p.id == id) {
                    *slot = pending.clone();
                }
                push_record(&mut status.deliveries, step.record.clone());
                status.last_delivery = Some(DeliverySummary {
                    id: step.record.id.clone(),
                    at: step.record.at.clone(),
                    result: step.record.result.to_string(),
                    http_status: step.record.http_status.unwrap_or(0),
                });
                if step.done {
                    let (ok, reason, message) = ready_after(id, step);
                    conditions::set(&mut status.conditions, READY, ok, reason, message, generation, &now());
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
                // A delivery of this generation already reported (it may have come first).
                let reported =
                    conditions::get(&status.conditions, READY).is_some_and(|c| c.observed_generation == generation);
                if verdict.is_ok() && reported {
                    return true;
                }
                let (ok, reason, message) = match &verdict {
                    Ok(()) => (true, Reason::Valid, "ready to deliver".to_owned()),
                    Err(message) => (false, Reason::InvalidSpec, message.clone()),
                };
                conditions::set(&mut status.conditions, READY, ok, reason, message, generation, &now());
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
            let precondition = Precondition::Unchanged(fresh.metadata.resource_version.as_deref());
            match status_patch::apply(&api, &name, &status, FIELD_MANAGER, precondition).await? {
                Written::Applied(_) => return Ok(Some(fresh)),
                Written::Conflict if tries < 5 => continue,
                Written::Conflict => {
                    return Err(kube::Error::Service("status kept changing: five conflicts in a row".into()));
                }
            }
        }
    }
}

/// Adds a record, keeping the last [`KEEP_DELIVERIES`]; successive polls of one delivery
/// replace each other, so a long wait does not push older deliveries out.
fn push_record(records: &mut Vec<DeliveryRecord>, record: DeliveryRecord) {
    if record.result != DeliveryResult::Retrying
        && let Some(last) = records.last_mut()
        && last.id == record.id
        && last.attempt == record.attempt
        && last.result == DeliveryResult::Waiting
    {
        *last = record;
        return;
    }
    records.push(record);
    let excess = records.len().saturating_sub(KEEP_DELIVERIES);
    records.drain(..excess);
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Gate deliveries have an occurrence of their own, so a hook's event and its gate never share an id.
fn gate_occurrence(occurrence: &str) -> String {
    format!("{occurrence}/gate")
}

/// One hook reconcile: Ready from the spec, then every delivery due now, side by side; the
/// hook comes back at its next due delivery (its own writes wake it for the rest).
async fn reconcile(hook: Arc<OutgoingWebhook>, service: Arc<Outgoing>) -> Result<Action, std::convert::Infallible> {
    service.check_spec(&hook).await;
    let pending = hook.status.as_ref().map(|s| s.pending.as_slice()).unwrap_or_default();
    let now = jiff::Timestamp::now();
    let due = due(pending, now);
    futures::future::join_all(due.iter().map(|id| service.advance(&hook, id))).await;
    let later = pending.iter().filter(|p| !due.contains(&p.id)).map(|p| p.next_at.0).min();
    Ok(match later {
        Some(at) => {
            let wait = jiff::Timestamp::now().duration_until(at).as_secs_f64().max(0.0);
            Action::requeue(Duration::from_secs_f64(wait) + Duration::from_millis(10))
        }
        None => Action::requeue(IDLE_RESYNC),
    })
}

/// The pending deliveries due at `now`, in order. Events of one application go out in order:
/// a first attempt waits until the application's earlier deliveries were each sent once
/// (their retries do not hold it up).
fn due(pending: &[PendingDelivery], now: jiff::Timestamp) -> Vec<String> {
    let mut unsent_apps = HashSet::new();
    let mut due = Vec::new();
    for delivery in pending {
        let blocked = unsent_apps.contains(&delivery.data.app_id);
        if delivery.attempt == 0 {
            unsent_apps.insert(delivery.data.app_id.clone());
        }
        if delivery.next_at.0 <= now && !blocked {
            due.push(delivery.id.clone());
        }
    }
    due
}

/// A gate delivery's answer in a hook's status: pending while queued, else its last record.
fn answer_of(label: &str, status: Option<&OutgoingWebhookStatus>, id: &str) -> GateAnswer {
    let Some(status) = status else { return GateAnswer::Unseen };
    if let Some(pending) = status.pending.iter().find(|p| p.id == id) {
        return GateAnswer::Pending(pending.progress.clone());
    }
    match status.deliveries.iter().rev().find(|d| d.id == id) {
        None => GateAnswer::Unseen,
        Some(record) if record.result == DeliveryResult::Succeeded => GateAnswer::Passed,
        Some(record) => {
            let why = record.error.clone().unwrap_or_else(|| record.result.to_string());
            GateAnswer::Refused(format!("{label} {}: {why}", record.result))
        }
    }
}

/// Ready after a finished delivery: its result, and one sentence saying so.
fn ready_after(id: &str, step: &Step) -> (bool, Reason, String) {
    let (ok, reason) = match (step.record.result, step.config_error) {
        (DeliveryResult::Succeeded, _) => (true, Reason::Delivered),
        (_, true) => (false, Reason::ConfigurationError),
        _ => (false, Reason::DeliveryFailed),
    };
    let event = event::name(step.record.event);
    let (result, attempt) = (&step.record.result, step.record.attempt);
    let message = match &step.record.error {
        Some(error) => format!("delivery {id} ({event}): {result} after attempt {attempt}: {error}"),
        None => format!("delivery {id} ({event}): {result} after attempt {attempt}"),
    };
    (ok, reason, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EventType;

    fn record(id: &str, attempt: i32, result: DeliveryResult) -> DeliveryRecord {
        DeliveryRecord {
            id: id.into(),
            event: EventType::DeploymentStarted,
            application: "a".into(),
            at: Time(jiff::Timestamp::UNIX_EPOCH),
            attempt,
            http_status: None,
            duration_ms: None,
            result,
            error: None,
            progress: None,
        }
    }

    #[test]
    fn records_keep_twenty_and_polls_replace_each_other() {
        let mut records = Vec::new();
        for i in 0..25 {
            push_record(&mut records, record(&format!("m{i}"), 1, DeliveryResult::Succeeded));
        }
        assert_eq!(records.len(), KEEP_DELIVERIES);
        assert_eq!(records[0].id, "m5");
        push_record(&mut records, record("w", 1, DeliveryResult::Waiting));
        push_record(&mut records, record("w", 1, DeliveryResult::Waiting));
        push_record(&mut records, record("w", 1, DeliveryResult::Succeeded));
        assert_eq!(records.iter().filter(|r| r.id == "w").count(), 1);
        assert_eq!(records.last().map(|r| r.result), Some(DeliveryResult::Succeeded));
        push_record(&mut records, record("r", 1, DeliveryResult::Retrying));
        push_record(&mut records, record("r", 2, DeliveryResult::Retrying));
        push_record(&mut records, record("r", 3, DeliveryResult::Succeeded));
        assert_eq!(records.iter().filter(|r| r.id == "r").count(), 3, "each attempt is kept");
    }

    fn pending(id: &str, app: &str, attempt: i32, next_at: jiff::Timestamp) -> PendingDelivery {
        let data: EventData = serde_json::from_value(serde_json::json!({
            "event": "deployment.started", "triggered_at": "2026-01-01T00:00:00Z", "triggered_by": "git",
            "app_id": app, "env_id": "team",
        }))
        .expect("event data");
        PendingDelivery {
            id: id.into(),
            attempt,
            next_at: Time(next_at),
            status_url: None,
            wait_until: None,
            progress: None,
            data,
        }
    }

    #[test]
    fn what_is_due_keeps_each_applications_events_in_order() {
        let now = jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(1000);
        let earlier = now - jiff::SignedDuration::from_secs(1);
        let later = now + jiff::SignedDuration::from_secs(30);
        let queue = [
            pending("a1", "shop", 0, earlier),
            pending("a2", "shop", 0, earlier), // waits: shop's a1 has not been sent once
            pending("b1", "cart", 3, earlier), // a retry, due
            pending("b2", "cart", 0, earlier), // due: a retry does not hold later events up
            pending("c1", "api", 1, later),    // not due yet
        ];
        assert_eq!(due(&queue, now), ["a1", "b1", "b2"]);
        assert!(due(&[], now).is_empty());
    }

    #[test]
    fn a_gate_answer_is_read_from_pending_then_from_the_last_record() {
        let mut status = OutgoingWebhookStatus::default();
        assert_eq!(answer_of("OutgoingWebhook/g", None, "m1"), GateAnswer::Unseen);
        assert_eq!(answer_of("OutgoingWebhook/g", Some(&status), "m1"), GateAnswer::Unseen);
        let mut queued = pending("m1", "shop", 1, jiff::Timestamp::UNIX_EPOCH);
        queued.progress = Some("40%".into());
        status.pending.push(queued);
        status.deliveries.push(record("m1", 1, DeliveryResult::Waiting));
        assert_eq!(answer_of("OutgoingWebhook/g", Some(&status), "m1"), GateAnswer::Pending(Some("40%".into())));
        status.pending.clear();
        status.deliveries.push(record("m1", 1, DeliveryResult::Succeeded));
        assert_eq!(answer_of("OutgoingWebhook/g", Some(&status), "m1"), GateAnswer::Passed);
        let mut terminal = record("m2", 1, DeliveryResult::Terminal);
        terminal.error = Some("state TERMINAL".into());
        status.deliveries.push(terminal);
        assert_eq!(
            answer_of("OutgoingWebhook/g", Some(&status), "m2"),
            GateAnswer::Refused("OutgoingWebhook/g terminal: state TERMINAL".into())
        );
    }
}
