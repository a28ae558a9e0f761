//! Recording triggers on applications, with the writes of concurrent calls grouped.
//!
//! Every call waits until its trigger is stored in the API server before it answers 202. Calls
//! that arrive while a write to the same application is under way queue up and are written
//! together by the next write (one read and one patch for the whole group, merged with
//! [`coalesce`]), so 64 concurrent callers cost a few API round trips, not 64 × 2.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use tokio::sync::oneshot;

use crate::api::{GitOpsApplication, TriggerRecord};
use crate::trigger::record::{TRIGGER_ANNOTATION, coalesce, handled_sequence, recorded};

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
}

/// Answers a caller with the sequence its trigger was stored under.
type Waiter = oneshot::Sender<Result<i64, RecordError>>;

#[derive(Default)]
struct Queue {
    /// Triggers waiting for the next write, each with its caller.
    waiting: Vec<(TriggerRecord, Waiter)>,
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

    /// Stores `trigger` on the application; returns once it is durable, with the sequence of
    /// the record that holds it (the call is carried out once `status.lastTrigger.sequence`
    /// reaches it).
    pub async fn record(
        self: &Arc<Self>,
        namespace: &str,
        name: &str,
        trigger: TriggerRecord,
    ) -> Result<i64, RecordError> {
        let (done, wait) = oneshot::channel();
        let key = (namespace.to_owned(), name.to_owned());
        let start_writer = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            let queue = queues.entry(key.clone()).or_default();
            queue.waiting.push((trigger, done));
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
            let (triggers, waiters): (Vec<_>, Vec<_>) = group.into_iter().unzip();
            let result = write_group(&api, &key.1, triggers, &mut latest).await;
            for waiter in waiters {
                let _ = waiter.send(result.clone());
            }
        }
    }
}

/// One read (skipped when this writer's last patch returned the object) and one patch for a
/// group of triggers, retried on a conflict; returns the sequence of the stored record.
async fn write_group(
    api: &Api<GitOpsApplication>,
    name: &str,
    triggers: Vec<TriggerRecord>,
    latest: &mut Option<GitOpsApplication>,
) -> Result<i64, RecordError> {
    for _ in 0..ATTEMPTS {
        let app = match latest.take() {
            Some(app) => app,
            None => {
                api.get(name).await.map_err(|e| RecordError::Read { name: name.to_owned(), message: e.to_string() })?
            }
        };
        let handled = handled_sequence(&app);
        let merged = triggers
            .iter()
            .cloned()
            .fold(recorded(app.annotations()), |current, incoming| Some(coalesce(current, handled, incoming)));
        let sequence = merged.as_ref().map_or(0, |record| record.sequence);
        let value = serde_json::to_string(&merged)
            .map_err(|e| RecordError::Write { name: name.to_owned(), message: e.to_string() })?;
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": app.resource_version(),
            "annotations": {TRIGGER_ANNOTATION: value},
        }});
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(written) => {
                *latest = Some(written);
                return Ok(sequence);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(error) => return Err(RecordError::Write { name: name.to_owned(), message: error.to_string() }),
        }
    }
    Err(RecordError::Contended(name.to_owned()))
}
