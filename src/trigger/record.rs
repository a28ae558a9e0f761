//! Durable triggers: how a webhook call is recorded on an application, and how calls coalesce.
//!
//! The endpoint writes the trigger into the annotation [`TRIGGER_ANNOTATION`] (with optimistic
//! concurrency) before it answers 202, so a crash after the answer loses nothing; the
//! controller has handled it once `status.lastTrigger.sequence` reached its `sequence`.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::api::{GitOpsApplication, RestartTarget, TriggerRecord};

/// Ids of merged calls listed in a record; more are counted in `coalesced_count` only. Every id
/// makes each write of the application bigger (this annotation and `status.lastTrigger` are
/// sent and stored whole on every trigger write), so the list stays short; a caller follows its
/// call by the `sequences` of its 202 answer instead.
pub const MAX_LISTED_IDS: usize = 20;

/// Annotation holding the latest trigger (JSON of [`TriggerRecord`]).
pub const TRIGGER_ANNOTATION: &str = "tugboat.dev/trigger";

/// The recorded trigger, if the annotation holds a readable one.
pub fn recorded(annotations: &BTreeMap<String, String>) -> Option<TriggerRecord> {
    annotations.get(TRIGGER_ANNOTATION).and_then(|json| serde_json::from_str(json).ok())
}

/// Sequence of the last trigger the controller handled.
pub fn handled_sequence(app: &GitOpsApplication) -> i64 {
    app.status.as_ref().and_then(|s| s.last_trigger.as_ref()).map_or(0, |t| t.sequence)
}

/// The trigger waiting for the controller, if any.
pub fn pending(app: &GitOpsApplication) -> Option<TriggerRecord> {
    recorded(app.annotations()).filter(|t| t.sequence > handled_sequence(app))
}

/// Annotation whose change requests an immediate reconcile (`kubectl annotate`, tests, tools).
pub const RECONCILE_REQUESTED_ANNOTATION: &str = "tugboat.dev/reconcile-requested-at";

/// A reconcile request that has not been handled yet.
pub fn reconcile_requested(app: &GitOpsApplication) -> bool {
    let requested = app.annotations().get(RECONCILE_REQUESTED_ANNOTATION);
    requested.is_some() && requested != app.status.as_ref().and_then(|s| s.last_handled_reconcile_at.as_ref())
}

/// Is anything asked of this application that it has not done yet: a recorded call or a
/// reconcile request? (The reconcile and the queue-depth metric ask the same question.)
pub fn work_pending(app: &GitOpsApplication) -> bool {
    pending(app).is_some() || reconcile_requested(app)
}

/// The record to store when `incoming` arrives: merged into a still-pending one (later
/// variables win, restart sets union, the first id stays and later ids are listed), or on
/// its own with the next sequence number.
pub fn coalesce(current: Option<TriggerRecord>, handled: i64, mut incoming: TriggerRecord) -> TriggerRecord {
    let last = current.as_ref().map_or(0, |c| c.sequence).max(handled);
    match current {
        Some(mut merged) if merged.sequence > handled => {
            merged.sequence = last + 1;
            // The annotation must stay small however many calls pile up while one waits.
            if merged.coalesced_ids.len() < MAX_LISTED_IDS {
                merged.coalesced_ids.push(incoming.id);
            }
            merged.coalesced_count += 1;
            merged.variables.extend(incoming.variables);
            merged.rollout_restart = union(merged.rollout_restart, incoming.rollout_restart);
            merged.tag = incoming.tag.or(merged.tag);
            merged.override_window |= incoming.override_window;
            merged
        }
        _ => {
            incoming.sequence = last + 1;
            incoming
        }
    }
}

fn union(a: Vec<RestartTarget>, b: Vec<RestartTarget>) -> Vec<RestartTarget> {
    if a.iter().chain(&b).any(|e| *e == RestartTarget::All) {
        return vec![RestartTarget::All];
    }
    let mut all: Vec<RestartTarget> = a.into_iter().chain(b).collect();
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn trigger(id: &str, vars: &[(&str, &str)], restart: &[&str]) -> TriggerRecord {
        TriggerRecord {
            id: id.into(),
            sequence: 0,
            at: Time(jiff::Timestamp::UNIX_EPOCH),
            source: "Webhook/ci (generic)".into(),
            variables: vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            rollout_restart: restart
                .iter()
                .map(|r| RestartTarget::try_from((*r).to_owned()).expect("target"))
                .collect(),
            tag: None,
            coalesced_ids: vec![],
            coalesced_count: 0,
            override_window: false,
            next_window_start: None,
        }
    }

    #[test]
    fn a_call_while_one_is_pending_merges_into_it() {
        let first = coalesce(None, 0, trigger("a", &[("TAG", "1"), ("X", "x")], &["deployment/web"]));
        assert_eq!(first.sequence, 1);
        let merged = coalesce(Some(first), 0, trigger("b", &[("TAG", "2")], &["statefulset/db", "deployment/web"]));
        assert_eq!(merged.id, "a");
        assert_eq!(merged.coalesced_ids, ["b"]);
        assert_eq!(merged.coalesced_count, 1);
        assert_eq!(merged.sequence, 2);
        assert_eq!(merged.variables.get("TAG").map(String::as_str), Some("2"), "later variables win");
        assert_eq!(merged.variables.get("X").map(String::as_str), Some("x"));
        let entries: Vec<String> = merged.rollout_restart.iter().map(ToString::to_string).collect();
        assert_eq!(entries, ["deployment/web", "statefulset/db"]);
        let all = coalesce(Some(merged), 0, trigger("c", &[], &["all"]));
        assert_eq!(all.rollout_restart, [RestartTarget::All]);
    }

    #[test]
    fn a_flood_of_calls_is_counted_but_lists_a_bounded_number_of_ids() {
        let mut record = coalesce(None, 0, trigger("first", &[], &[]));
        for i in 0..MAX_LISTED_IDS + 500 {
            record = coalesce(Some(record), 0, trigger(&format!("call-{i}"), &[], &[]));
        }
        assert_eq!(record.coalesced_ids.len(), MAX_LISTED_IDS);
        assert_eq!(record.coalesced_count, (MAX_LISTED_IDS + 500) as i64);
        assert!(serde_json::to_string(&record).unwrap().len() < 64 * 1024, "fits an annotation easily");
    }

    #[test]
    fn a_call_after_the_last_was_handled_starts_afresh() {
        let first = coalesce(None, 0, trigger("a", &[("TAG", "1")], &["all"]));
        let next = coalesce(Some(first), 1, trigger("b", &[], &[]));
        assert_eq!(next.id, "b");
        assert_eq!(next.sequence, 2);
        assert!(next.rollout_restart.is_empty() && next.variables.is_empty() && next.coalesced_ids.is_empty());
    }
}
