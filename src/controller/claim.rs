//! Taking a recorded trigger for a deployment, exactly once.
//!
//! The endpoint merges a new call into the recorded trigger while it is still pending. If a
//! reconcile consumed the record it had *read* while a call was being merged into it, the
//! merged record would stay pending and the calls in it would be carried out twice. So the
//! trigger is claimed on a fresh read, and `status.lastTrigger` is written with that read's
//! `resourceVersion` as a precondition: either the claim or the endpoint's merge wins, and the
//! loser reads again. The window between the read and the write is one round trip, so the
//! retries end even under a steady stream of calls. The first attempt uses the object the
//! reconcile already holds: the precondition refuses it if it is stale, so reading it fresh
//! first would only add a round trip to every deployment.

use kube::{Api, ResourceExt};

use super::{Error, status};
use crate::api::{DeploymentRecord, GitOpsApplication, GitOpsApplicationStatus, TriggerRecord};
use crate::window::Opening;

/// Attempts before giving up for this reconcile (it is requeued at once).
const ATTEMPTS: usize = 8;

pub enum Claim {
    /// Ours to carry out; the status as written (last trigger, its variables and tag, and the
    /// deployment started for it).
    Claimed(TriggerRecord, Box<GitOpsApplicationStatus>),
    /// A change window holds the freshest record back until the given time (or no opening).
    Held(TriggerRecord, Opening),
    /// Nothing pending any more.
    Nothing,
    /// Calls kept arriving between read and write: try again shortly.
    Busy,
}

/// Claims the pending trigger of `cached` (the application as the reconcile read it); `held`
/// says whether a change window holds a record back. Only a claim is decided on `cached`;
/// "nothing pending" and "held" are decided on a fresh read. The claim writes the deployment
/// `start` makes for the trigger in the same status: from then on the call is carried out (or
/// resumed after a crash) by that deployment.
pub async fn claim(
    api: &Api<GitOpsApplication>,
    cached: &GitOpsApplication,
    held: impl Fn(&TriggerRecord) -> Option<Opening>,
    start: impl Fn(&TriggerRecord) -> DeploymentRecord,
    written: &status::LastWritten,
) -> Result<Claim, Error> {
    let name = cached.name_any();
    let mut candidate = Some(cached.clone());
    for _ in 0..ATTEMPTS {
        let (fresh, is_cached) = match candidate.take() {
            Some(app) => (app, true),
            None => (api.get(&name).await?, false),
        };
        let Some(trigger) = crate::trigger::record::pending(&fresh) else {
            if is_cached {
                continue;
            }
            return Ok(Claim::Nothing);
        };
        if let Some(next_open) = held(&trigger) {
            if is_cached {
                continue;
            }
            return Ok(Claim::Held(trigger, next_open));
        }
        let mut status = fresh.status.clone().unwrap_or_default();
        status.last_trigger = Some(trigger.clone());
        status.variables.extend(trigger.variables.clone());
        if trigger.tag.is_some() {
            status.image_tag = trigger.tag.clone();
        }
        super::deployment::push_deployment(&mut status, start(&trigger));
        if status::write_if_unchanged(api, &fresh, &status, written).await? {
            tracing::debug!(application = %fresh.name_any(), trigger = %trigger.id, sequence = trigger.sequence, "claimed the trigger");
            return Ok(Claim::Claimed(trigger, Box::new(status)));
        }
    }
    Ok(Claim::Busy)
}
