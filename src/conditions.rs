//! Condition types, reasons and the rules for updating them, in one place so code, docs and tests agree.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub use crate::api::condition_types::*;

/// Every reason a condition of a tugboat kind gives, in one place (CamelCase, as Kubernetes
/// conventions want). Reasons of failures come from their errors (`SourceError::reason` in
/// `source`, `DeployError::reason` in `deploy`).
macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $name),*
        }

        impl Reason {
            /// Every reason, for tests and docs.
            pub const ALL: &'static [Reason] = &[$(Reason::$name),*];

            /// The reason as conditions show it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name)),*
                }
            }
        }
    };
}

reasons! {
    // GitOpsApplication: the pipeline.
    /// Reasons, CamelCase as Kubernetes conventions want.
    Succeeded,
    /// Reconciling: a deployment started and is being applied.
    Deploying,
    /// Reconciling: `BeforeDeployment` or `AfterDeployment` hooks were asked and have not answered.
    AwaitingGates,
    /// Reconciling: applied; the changed and restarted workloads are rolling out.
    RollingOut,
    /// Reconciling: a chart's pre- or post-deployment hooks (Helm hooks) are running.
    RunningHooks,
    /// A Helm hook's Job failed (a pre hook: nothing else was applied).
    HookFailed,
    Suspended,
    InvalidSpec,
    SecretNotFound,
    RenderFailed,
    /// `kustomize build` or `helm template` failed, or refused content that reaches outside
    /// the repository.
    BuildFailed,
    /// The kustomize or helm binary cannot be run: the operator's flags or image are wrong.
    BuildToolMissing,
    /// The manifests render to more bytes or objects than the render budget allows.
    RenderBudgetExceeded,
    /// A variable set by a trigger call reaches an object's apiVersion, kind, name or namespace.
    VariableNotAllowed,
    PlanFailed,
    HealthCheckFailed,
    Healthy,
    OutsideChangeWindow,
    /// An application of `spec.dependsOn` is not Ready and Healthy at its current revision yet.
    DependencyNotReady,
    /// An application of `spec.dependsOn` does not exist.
    DependencyNotFound,
    /// `spec.dependsOn` leads back to the application itself.
    DependencyCycle,
    /// A deployment record in status names no revision tugboat can read (edited by hand?).
    RecordUnreadable,
    /// An outgoing webhook gate (BeforeDeployment/AfterDeployment) did not succeed.
    GateFailed,
    // GitOpsApplication: the source (see `SourceError::reason`).
    AuthenticationFailed,
    HostKeyVerificationFailed,
    RepositoryNotFound,
    RefNotFound,
    NoMatchingTag,
    InvalidSemverRange,
    InvalidReference,
    Unreachable,
    Timeout,
    PathNotFound,
    NotUtf8,
    TooLarge,
    FileSourcesDisabled,
    UnsupportedUrl,
    /// The Git egress guard refused an address the repository's host resolves to.
    EgressRefused,
    /// The Git server answered with an HTTP redirect, which is not followed.
    Redirected,
    GitFailed,
    CacheIOFailed,
    // GitOpsApplication: applying (see `DeployError::reason`).
    ValidationFailed,
    Forbidden,
    ApplyFailed,
    PruneFailed,
    RestartFailed,
    ImpersonationFailed,
    /// An object of the set was applied by another application: it is not taken over.
    OwnedByAnotherApplication,
    ApiServerUnreachable,
    // Webhook.
    Ready,
    TargetNotFound,
    // OutgoingWebhook.
    Valid,
    Delivered,
    DeliveryFailed,
    ConfigurationError,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sets (or replaces) the condition of `type_`, keeping `lastTransitionTime` when the status did not change.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: Reason,
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
        reason: reason.as_str().to_owned(),
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
        set(&mut conditions, READY, false, Reason::Deploying, "working", Some(1), &at(10));
        set(&mut conditions, READY, false, Reason::RenderFailed, "bad", Some(1), &at(20));
        assert_eq!(conditions[0].last_transition_time, at(10));
        assert_eq!(conditions[0].reason, "RenderFailed");
        set(&mut conditions, READY, true, Reason::Succeeded, "ok", Some(2), &at(30));
        assert_eq!(conditions[0].last_transition_time, at(30));
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn conditions_are_kept_in_a_stable_order_and_long_messages_are_cut() {
        let mut conditions = Vec::new();
        set(&mut conditions, HEALTHY, true, Reason::Healthy, "x".repeat(2000), None, &at(1));
        set(&mut conditions, READY, true, Reason::Succeeded, "ok", None, &at(1));
        let types: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, HEALTHY]);
        assert!(conditions[1].message.len() <= 1024 + '…'.len_utf8());
    }

    #[test]
    fn every_reason_is_camel_case_and_named_once() {
        let names: std::collections::BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for name in names {
            assert!(
                name.starts_with(|c: char| c.is_ascii_uppercase()) && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name}"
            );
        }
    }
}
