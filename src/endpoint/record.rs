//! Recording triggers on applications, with the writes of concurrent calls grouped.
//!
//! Every call waits until its trigger is stored in the API server before it answers 202. Calls
//! that arrive while a write to the same application is under way queue up and are written
//! together by the next write (one read and one patch for the whole group, merged with
//! [`coalesce`]), so 64 concurrent callers cost a few API round trips, not 64 × 2.
//!
//! The same patch remembers each call's delivery id ([`crate::trigger::deliveries`]): a
//! delivery already remembered is not recorded again, and an id is remembered only together
//! with its trigger.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use tokio::sync::oneshot;

use crate::api::{GitOpsApplication, TriggerRecord};
use crate::trigger::deliveries::{DELIVERIES_ANNOTATION, DeliveryKey, Remembered};
use crate::trigger::record::{TRIGGER_ANNOTATION, coalesce, handled_sequence, recorded};

/// Largest trigger record an application holds (its annotation, in bytes). The API server
/// takes 256 KiB of annotations per object; this leaves room for everyone else's.
pub const MAX_TRIGGER_BYTES: usize = 64 * 1024;

/// Attempts of one group write when concurrent writers (another replica) changed the object.
const ATTEMPTS: usize = 8;

/// Why a trigger could not be recorded (the caller answers 503 and may retry).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read application {name:?}: {message}")]
    Read { name: String, message: String },
    #[error("cannot record the trigger on {name:?}: {message}")]
    Write { name: String, message: String },
    #[error("too many concurrent triggers on {0:?}; retry")]
    Contended(String),
    #[error("the operator is shutting down; retry")]
    Stopped,
    #[error(
        "the trigger held for {name:?} would grow to {size} bytes with this call's variables, more than the {limit} an application holds; the held trigger is kept: call again once it has run, or send fewer or shorter variables"
    )]
    TooLarge { name: String, size: usize, limit: usize },
}

/// What became of one call on one application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored in the record with this sequence.
    Stored(i64),
    /// The application already holds this delivery: nothing was written for it.
    Duplicate,
}

/// One call waiting to be written.
struct Pending {
    trigger: TriggerRecord,
    delivery: Option<DeliveryKey>,
    waiter: Waiter,
}

/// Answers a caller with the sequence its trigger was stored under.
type Waiter = oneshot::Sender<Result<Recorded, RecordError>>;

#[derive(Default)]
struct Queue {
    /// Triggers waiting for the next write, each with its caller.
    waiting: Vec<Pending>,
    /// Whether a writer task is draining this queue.
    writing: bool,
}

/// Groups the trigger writes of concurrent calls per application.
pub struct TriggerWriter {
    client: Client,
    queues: Mutex<HashMap<(String, String), Queue>>,
}

impl TriggerWriter {
    pub fn new(client: Client) -> Arc<Self> {
        Arc::new(Self { client, queues: Mutex::default() })
    }

    /// Stores `trigger` on the application, unless it already holds `delivery`; returns once
    /// it is durable, with the sequence of the record that holds it (the call is carried out
    /// once `status.lastTrigger.sequence` reaches it).
    pub async fn record(
        self: &Arc<Self>,
        namespace: &str,
        name: &str,
        trigger: TriggerRecord,
        delivery: Option<DeliveryKey>,
    ) -> Result<Recorded, RecordError> {
        let (done, wait) = oneshot::channel();
        let key = (namespace.to_owned(), name.to_owned());
        let start_writer = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            let queue = queues.entry(key.clone()).or_default();
            queue.waiting.push(Pending { trigger, delivery, waiter: done });
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            let writer = self.clone();
            tokio::spawn(async move { writer.drain(key).await });
        }
        wait.await.unwrap_or(Err(RecordError::Stopped))
    }

    /// Writes groups for one application until nobody is waiting.
    async fn drain(self: Arc<Self>, key: (String, String)) {
        let api: Api<GitOpsApplication> = Api::namespaced(self.client.clone(), &key.0);
        let mut latest: Option<GitOpsApplication> = None;
        loop {
            let group = {
                let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
                let Some(queue) = queues.get_mut(&key) else { return };
                if queue.waiting.is_empty() {
                    queues.remove(&key);
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let calls: Vec<_> = group.iter().map(|p| (&p.trigger, p.delivery.as_ref())).collect();
            let outcomes = write_group(&api, &key.1, &calls, &mut latest).await;
            for (pending, outcome) in group.into_iter().zip(outcomes) {
                let _ = pending.waiter.send(outcome);
            }
        }
    }
}

/// One read (skipped when this writer's last patch returned the object) and one patch for a
/// group of calls, retried on a conflict; returns what became of each call, in order.
async fn write_group(
    api: &Api<GitOpsApplication>,
    name: &str,
    calls: &[(&TriggerRecord, Option<&DeliveryKey>)],
    latest: &mut Option<GitOpsApplication>,
) -> Vec<Result<Recorded, RecordError>> {
    let all = |error: RecordError| calls.iter().map(|_| Err(error.clone())).collect();
    for _ in 0..ATTEMPTS {
        let app = match latest.take() {
            Some(app) => app,
            None => match api.get(name).await {
                Ok(app) => app,
                Err(e) => return all(RecordError::Read { name: name.to_owned(), message: e.to_string() }),
            },
        };
        let merge = merge_calls(&app, name, calls);
        if !merge.changed {
            *latest = Some(app);
            return merge.outcomes;
        }
        let sequence = merge.record.as_ref().map_or(0, |record| record.sequence);
        let value = match serde_json::to_string(&merge.record) {
            Ok(value) => value,
            Err(e) => return all(RecordError::Write { name: name.to_owned(), message: e.to_string() }),
        };
        let mut annotations = serde_json::json!({TRIGGER_ANNOTATION: value});
        if calls.iter().any(|(_, delivery)| delivery.is_some()) {
            annotations[DELIVERIES_ANNOTATION] = merge.remembered.to_annotation().into();
        }
        let patch =
            serde_json::json!({"metadata": {"resourceVersion": app.resource_version(), "annotations": annotations}});
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(written) => {
                *latest = Some(written);
                return merge
                    .outcomes
                    .into_iter()
                    .map(|outcome| match outcome {
                        Ok(Recorded::Stored(_)) => Ok(Recorded::Stored(sequence)),
                        other => other,
                    })
                    .collect();
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(error) => return all(RecordError::Write { name: name.to_owned(), message: error.to_string() }),
        }
    }
    all(RecordError::Contended(name.to_owned()))
}

/// Whether `trigger` can be held by `app` as it is now (checked on the cached object before
/// any write, so a call too large for one target changes none; the write checks again).
pub fn fits(app: &GitOpsApplication, trigger: &TriggerRecord) -> Result<(), RecordError> {
    let merged = coalesce(recorded(app.annotations()), handled_sequence(app), trigger.clone());
    within_limit(&app.name_any(), merged).map(drop)
}

fn within_limit(name: &str, record: TriggerRecord) -> Result<TriggerRecord, RecordError> {
    let size = serde_json::to_vec(&record).map_or(usize::MAX, |json| json.len());
    if size > MAX_TRIGGER_BYTES {
        return Err(RecordError::TooLarge { name: name.to_owned(), size, limit: MAX_TRIGGER_BYTES });
    }
    Ok(record)
}

/// The record and deliveries to write for `calls` on `app` as read, and each call's outcome
/// (stored ones get the written sequence once the patch succeeds).
struct Merge {
    record: Option<TriggerRecord>,
    remembered: Remembered,
    outcomes: Vec<Result<Recorded, RecordError>>,
    /// Whether anything is to be written.
    changed: bool,
}

/// Pure: merges the calls one by one into the held record, skipping deliveries already
/// remembered and refusing a call that would make the record too large (the held one stays).
fn merge_calls(app: &GitOpsApplication, name: &str, calls: &[(&TriggerRecord, Option<&DeliveryKey>)]) -> Merge {
    let handled = handled_sequence(app);
    let mut record = recorded(app.annotations());
    let mut remembered = Remembered::from_annotation(app.annotations().get(DELIVERIES_ANNOTATION));
    let mut outcomes = Vec::with_capacity(calls.len());
    let mut changed = false;
    for (trigger, delivery) in calls {
        if delivery.is_some_and(|key| remembered.contains(key)) {
            outcomes.push(Ok(Recorded::Duplicate));
            continue;
        }
        let merged = match within_limit(name, coalesce(record.clone(), handled, (*trigger).clone())) {
            Ok(merged) => merged,
            Err(refused) => {
                outcomes.push(Err(refused));
                continue;
            }
        };
        record = Some(merged);
        if let Some(key) = delivery {
            remembered.remember(key);
        }
        outcomes.push(Ok(Recorded::Stored(0)));
        changed = true;
    }
    Merge { record, remembered, outcomes, changed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(annotations: serde_json::Value) -> GitOpsApplication {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "tugboat.dev/v1alpha1", "kind": "GitOpsApplication",
            "metadata": {"name": "shop", "namespace": "team", "annotations": annotations},
            "spec": {"source": {"repoURL": "https://git.example/shop.git", "ref": {"branch": "main"}}},
        }))
        .expect("application")
    }

    fn call(id: &str, variables: &[(&str, String)]) -> TriggerRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "at": "2026-01-01T00:00:00Z", "source": "Webhook/ci (github)",
            "variables": variables.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        }))
        .expect("trigger")
    }

    #[test]
    fn a_delivery_is_recorded_once_and_remembered_with_its_trigger() {
        let key = DeliveryKey::new("github", "72d3162e");
        let (first, again) = (call("a", &[]), call("b", &[]));
        let merge = merge_calls(&app(serde_json::json!({})), "shop", &[(&first, Some(&key)), (&again, Some(&key))]);
        assert!(merge.changed);
        assert!(merge.remembered.contains(&key));
        assert_eq!(merge.record.as_ref().map(|r| r.id.as_str()), Some("a"));
        assert!(
            matches!(merge.outcomes[..], [Ok(Recorded::Stored(_)), Ok(Recorded::Duplicate)]),
            "{:?}",
            merge.outcomes
        );

        // Read back (another replica, or a retry after a 503 that was in fact stored).
        let written = app(serde_json::json!({
            TRIGGER_ANNOTATION: serde_json::to_string(&merge.record).expect("json"),
            DELIVERIES_ANNOTATION: merge.remembered.to_annotation(),
        }));
        let retry = merge_calls(&written, "shop", &[(&again, Some(&key))]);
        assert!(!retry.changed, "nothing to write");
        assert!(matches!(retry.outcomes[..], [Ok(Recorded::Duplicate)]));
        // The same id sent to another Webhook is another delivery.
        let other = DeliveryKey::new("gitlab", "72d3162e");
        assert!(merge_calls(&written, "shop", &[(&again, Some(&other))]).changed);
    }

    #[test]
    fn a_call_that_would_outgrow_the_held_trigger_is_refused_and_the_held_one_kept() {
        let half = "x".repeat(MAX_TRIGGER_BYTES / 2 + 1);
        let held = call("held", &[("A", half.clone())]);
        let merge = merge_calls(&app(serde_json::json!({})), "shop", &[(&held, None)]);
        let written = app(serde_json::json!({TRIGGER_ANNOTATION: serde_json::to_string(&merge.record).expect("json")}));
        let key = DeliveryKey::new("ci", "big");
        let more = call("more", &[("B", half)]);
        assert!(matches!(fits(&written, &more), Err(RecordError::TooLarge { .. })));
        let refused = merge_calls(&written, "shop", &[(&more, Some(&key))]);
        assert!(!refused.changed, "the held trigger is not replaced");
        assert!(!refused.remembered.contains(&key), "a refused delivery may be sent again");
        match &refused.outcomes[..] {
            [Err(error @ RecordError::TooLarge { size, limit, .. })] => {
                assert!(size > limit);
                assert!(error.to_string().contains("the held trigger is kept"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(refused.record.map(|r| r.id), Some("held".into()));
    }
}
