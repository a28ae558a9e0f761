//! Condition types, reasons and the rules for updating them, in one place so code, docs and tests agree.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub use crate::api::condition_types::*;

/// Reasons, CamelCase as Kubernetes conventions want.
pub mod reasons {
    pub const SUCCEEDED: &str = "Succeeded";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEPLOYING: &str = "Deploying";
    /// Reconciling: `BeforeDeployment` or `AfterDeployment` hooks were asked and have not answered.
    pub const AWAITING_GATES: &str = "AwaitingGates";
    /// Reconciling: applied; the changed and restarted workloads are rolling out.
    pub const ROLLING_OUT: &str = "RollingOut";
    pub const SUSPENDED: &str = "Suspended";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub const RENDER_FAILED: &str = "RenderFailed";
    pub const PLAN_FAILED: &str = "PlanFailed";
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    pub const HEALTHY: &str = "Healthy";
    pub const DEFERRED: &str = "OutsideChangeWindow";
    pub const IDLE: &str = "Idle";
    /// A deployment record in status names no revision tugboat can read (edited by hand?).
    pub const RECORD_UNREADABLE: &str = "RecordUnreadable";
    /// An outgoing webhook gate (BeforeDeployment/AfterDeployment) did not succeed.
    pub const GATE_FAILED: &str = "GateFailed";
}

/// Sets (or replaces) the condition of `type_`, keeping `lastTransitionTime` when the status did not change.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" }.to_owned();
    let message = message.into();
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: truncate(message, 1024),
        last_transition_time: transition,
        observed_generation: generation,
    });
    conditions.sort_by_key(|c| order(&c.type_));
}

/// Removes a condition that no longer applies.
pub fn clear(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of `type_`, if set.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn order(type_: &str) -> usize {
    [READY, RECONCILING, STALLED, DEFERRED, HEALTHY].iter().position(|t| *t == type_).unwrap_or(usize::MAX)
}

fn truncate(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).expect("timestamp"))
    }

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let mut conditions = Vec::new();
        set(&mut conditions, READY, false, reasons::PROGRESSING, "working", Some(1), &at(10));
        set(&mut conditions, READY, false, reasons::RENDER_FAILED, "bad", Some(1), &at(20));
        assert_eq!(conditions[0].last_transition_time, at(10));
        assert_eq!(conditions[0].reason, reasons::RENDER_FAILED);
        set(&mut conditions, READY, true, reasons::SUCCEEDED, "ok", Some(2), &at(30));
        assert_eq!(conditions[0].last_transition_time, at(30));
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn conditions_are_kept_in_a_stable_order_and_long_messages_are_cut() {
        let mut conditions = Vec::new();
        set(&mut conditions, HEALTHY, true, reasons::HEALTHY, "x".repeat(2000), None, &at(1));
        set(&mut conditions, READY, true, reasons::SUCCEEDED, "ok", None, &at(1));
        let types: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, HEALTHY]);
        assert!(conditions[1].message.len() <= 1024 + '…'.len_utf8());
    }
}
