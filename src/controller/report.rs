//! The pure end of a reconcile: from where the phases stopped (a [`Stop`]) to the
//! application's conditions, the Event to publish and when to look again. Every path of the
//! pipeline ends here, so what a user reads in `kubectl describe` is decided in one place;
//! `pipeline::Run::report` writes it. No I/O: every stop and every condition reason of a
//! GitOpsApplication is table-tested below.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::decide::{Conclusion, TRANSIENT_RETRY};
use crate::conditions::{self, DEFERRED, HEALTHY, READY, RECONCILING, Reason, STALLED};

/// Where a reconcile of an application stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The spec can never work as it stands (the message names the field, or the dependency):
    /// Stalled until it changes, with the reason (`InvalidSpec`, `DependencyCycle`, ...).
    Stalled(Reason, String),
    /// `spec.suspend`: nothing happens until it is unset.
    Suspended,
    /// An input or the build failed (credentials, source, render, plan, a record): Ready=False.
    Failed(Failure),
    /// A change window holds the deployment back; `newly` when it was not held before (only
    /// then is an Event published).
    Deferred { message: String, wait: Duration, newly: bool },
    /// A deployment waits in its phase (gates, rollout): Reconciling says for what.
    Waiting { reason: Reason, message: String, recheck: Duration },
    /// A deployment ended; `more_waiting` when a call or spec change arrived meanwhile (it goes
    /// next, not after the retry).
    Finished { conclusion: Conclusion, more_waiting: bool },
}

/// Why an input or the build failed, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
    pub retry: Duration,
    /// Also published as a warning Event (failures of the revision's content, which the
    /// application's owner must fix, are; transient ones are not, so they do not flood).
    pub event: bool,
    /// Also Stalled: the operator is set up wrong (a build tool is missing), so retrying soon
    /// cannot help; the message says which flag to fix.
    pub stalls: bool,
}

impl Failure {
    /// A failure retried after `retry`, or soon when it `transient`ly may pass by itself.
    pub fn new(reason: Reason, message: impl Into<String>, transient: bool, retry: Duration) -> Self {
        let retry = if transient { TRANSIENT_RETRY } else { retry };
        Failure { reason, message: message.into(), retry, event: false, stalls: false }
    }

    /// A failure of the revision's content (render, plan, variables): also an Event.
    pub fn of_content(reason: Reason, message: impl Into<String>, retry: Duration) -> Self {
        Failure { event: true, ..Failure::new(reason, message, false, retry) }
    }

    /// A failure of the operator's setup: Stalled too, and an Event.
    pub fn of_setup(reason: Reason, message: impl Into<String>, retry: Duration) -> Self {
        Failure { stalls: true, ..Failure::of_content(reason, message, retry) }
    }

    /// A Kustomize or Helm build that failed: the content's fault (an Event), a missing tool
    /// the operator's (Stalled), a local I/O error perhaps passing (retried soon).
    pub fn build(error: &crate::build::BuildError, revision: &str, retry: Duration) -> Self {
        use crate::build::BuildError;
        match error {
            BuildError::ToolMissing { .. } => Failure::of_setup(Reason::BuildToolMissing, error.to_string(), retry),
            BuildError::Io { .. } => {
                Failure::new(Reason::BuildFailed, format!("revision {revision}: {error}"), true, retry)
            }
            _ => Failure::of_content(Reason::BuildFailed, format!("revision {revision}: {error}"), retry),
        }
    }

    pub fn source(error: &crate::source::SourceError, retry: Duration) -> Self {
        Failure::new(error.reason(), error.to_string(), error.is_transient(), retry)
    }
}

/// What the report adds to the status write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// When to reconcile again; `None`: only a change of the application wakes it.
    pub requeue: Option<Duration>,
    pub event: Option<Event>,
}

/// A Kubernetes Event about the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Sets the conditions `stop` means and says what else to do.
pub fn report(conditions: &mut Vec<Condition>, stop: &Stop, generation: Option<i64>, now: &Time) -> Report {
    let set = |conditions: &mut Vec<Condition>, type_: &str, ok: bool, reason: Reason, message: &str| {
        conditions::set(conditions, type_, ok, reason, message, generation, now);
    };
    let (requeue, event) = match stop {
        Stop::Stalled(reason, message) => {
            set(conditions, STALLED, true, *reason, message);
            set(conditions, READY, false, *reason, message);
            conditions::clear(conditions, RECONCILING);
            (None, None)
        }
        Stop::Suspended => {
            set(conditions, READY, false, Reason::Suspended, "Deployments are suspended (spec.suspend is true)");
            conditions::clear(conditions, STALLED);
            (None, None)
        }
        Stop::Failed(failure) => {
            set(conditions, READY, false, failure.reason, &failure.message);
            if failure.stalls {
                set(conditions, STALLED, true, failure.reason, &failure.message);
            }
            conditions::clear(conditions, RECONCILING);
            let event = failure.event.then(|| Event {
                warning: true,
                reason: failure.reason.as_str(),
                message: failure.message.clone(),
            });
            (Some(failure.retry), event)
        }
        Stop::Deferred { message, wait, newly } => {
            set(conditions, DEFERRED, true, Reason::OutsideChangeWindow, message);
            let event = newly.then(|| Event { warning: false, reason: "DeploymentDeferred", message: message.clone() });
            (Some(*wait), event)
        }
        Stop::Waiting { reason, message, recheck } => {
            set(conditions, RECONCILING, true, *reason, message);
            (Some(*recheck), None)
        }
        Stop::Finished { conclusion, more_waiting } => {
            conditions::clear(conditions, RECONCILING);
            if let Some((healthy, reason, message)) = &conclusion.healthy {
                set(conditions, HEALTHY, *healthy, *reason, message);
            }
            set(conditions, READY, conclusion.ok, conclusion.reason, &conclusion.message);
            let reason = if conclusion.ok { "DeploymentSucceeded" } else { "DeploymentFailed" };
            let event = Event { warning: !conclusion.ok, reason, message: conclusion.message.clone() };
            let retry = if *more_waiting { Duration::from_millis(100) } else { conclusion.retry };
            (Some(retry), Some(event))
        }
    };
    Report { requeue, event }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::build::BuildError;
    use crate::controller::decide::{Ending, conclude};
    use crate::deploy::DeployError;
    use crate::source::SourceError;

    const INTERVAL: Duration = Duration::from_secs(300);
    const REV: &str = "main@sha1:abc";

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).expect("timestamp"))
    }

    /// The conditions after `stop`, as `Type=Status Reason: message`, over conditions a
    /// deployment under way left (Reconciling, Stalled from an older spec).
    fn after(stop: &Stop) -> (Vec<String>, Report) {
        let mut conditions = Vec::new();
        conditions::set(&mut conditions, RECONCILING, true, Reason::Deploying, "Deploying", Some(1), &at(1));
        conditions::set(&mut conditions, STALLED, true, Reason::InvalidSpec, "old", Some(1), &at(1));
        let report = report(&mut conditions, stop, Some(2), &at(2));
        assert!(conditions.iter().all(|c| c.observed_generation.is_some()), "{conditions:?}");
        let shown =
            conditions.iter().map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message)).collect();
        (shown, report)
    }

    fn failure(reason: Reason, message: &str, retry: Duration) -> Stop {
        Stop::Failed(Failure { reason, message: message.into(), retry, event: false, stalls: false })
    }

    #[test]
    fn every_stop_sets_its_conditions_event_and_requeue() {
        let finished = |ending: Ending, more_waiting: bool| Stop::Finished {
            conclusion: conclude(REV, Some("Applied revision main@sha1:abc"), &ending, INTERVAL),
            more_waiting,
        };
        let event = |warning, reason, message: &str| Some(Event { warning, reason, message: message.into() });
        let stalled = "Reconciling=True Deploying: Deploying";
        let missing_tool = BuildError::ToolMissing { tool: "helm", program: "/x/helm".into(), flag: "--helm-bin" };
        let build_failed =
            BuildError::Failed { tool: "helm", message: "parse error at (shop/templates/a.yaml:7)".into() };
        // case, stop, conditions after, requeue, event
        type Row = (&'static str, Stop, Vec<&'static str>, Option<Duration>, Option<Event>);
        let table: Vec<Row> = vec![
            (
                "an invalid spec stalls: no requeue, only a spec change wakes it",
                Stop::Stalled(Reason::InvalidSpec, "spec.healthTimeout: bad".into()),
                vec![
                    "Ready=False InvalidSpec: spec.healthTimeout: bad",
                    "Stalled=True InvalidSpec: spec.healthTimeout: bad",
                ],
                None,
                None,
            ),
            (
                "suspended: the deployment under way waits too",
                Stop::Suspended,
                vec!["Ready=False Suspended: Deployments are suspended (spec.suspend is true)", stalled],
                None,
                None,
            ),
            (
                "an input failed",
                failure(Reason::SecretNotFound, "secret git-auth not found", Duration::from_secs(60)),
                vec!["Ready=False SecretNotFound: secret git-auth not found", "Stalled=True InvalidSpec: old"],
                Some(Duration::from_secs(60)),
                None,
            ),
            (
                "the content failed: a warning Event too",
                Stop::Failed(Failure::of_content(Reason::RenderFailed, "deploy/a.yaml:3: bad", INTERVAL)),
                vec!["Ready=False RenderFailed: deploy/a.yaml:3: bad", "Stalled=True InvalidSpec: old"],
                Some(INTERVAL),
                event(true, "RenderFailed", "deploy/a.yaml:3: bad"),
            ),
            (
                "held by a change window for the first time",
                Stop::Deferred { message: "Held until 09:00".into(), wait: Duration::from_secs(30), newly: true },
                vec![stalled, "Stalled=True InvalidSpec: old", "Deferred=True OutsideChangeWindow: Held until 09:00"],
                Some(Duration::from_secs(30)),
                event(false, "DeploymentDeferred", "Held until 09:00"),
            ),
            (
                "still held: no second Event",
                Stop::Deferred { message: "Held until 09:00".into(), wait: Duration::from_secs(20), newly: false },
                vec![stalled, "Stalled=True InvalidSpec: old", "Deferred=True OutsideChangeWindow: Held until 09:00"],
                Some(Duration::from_secs(20)),
                None,
            ),
            (
                "rolling out",
                Stop::Waiting {
                    reason: Reason::RollingOut,
                    message: "Rolling out Deployment/web".into(),
                    recheck: Duration::from_secs(5),
                },
                vec!["Reconciling=True RollingOut: Rolling out Deployment/web", "Stalled=True InvalidSpec: old"],
                Some(Duration::from_secs(5)),
                None,
            ),
            (
                "awaiting gates",
                Stop::Waiting {
                    reason: Reason::AwaitingGates,
                    message: "Waiting for OutgoingWebhook/a".into(),
                    recheck: Duration::from_secs(10),
                },
                vec!["Reconciling=True AwaitingGates: Waiting for OutgoingWebhook/a", "Stalled=True InvalidSpec: old"],
                Some(Duration::from_secs(10)),
                None,
            ),
            (
                "succeeded: Ready and Healthy, Reconciling cleared",
                finished(Ending::Succeeded, false),
                vec![
                    "Ready=True Succeeded: Applied revision main@sha1:abc",
                    "Stalled=True InvalidSpec: old",
                    "Healthy=True Healthy: Every changed workload rolled out",
                ],
                Some(INTERVAL),
                event(false, "DeploymentSucceeded", "Applied revision main@sha1:abc"),
            ),
            (
                "succeeded while a call waited: it goes next",
                finished(Ending::Succeeded, true),
                vec![
                    "Ready=True Succeeded: Applied revision main@sha1:abc",
                    "Stalled=True InvalidSpec: old",
                    "Healthy=True Healthy: Every changed workload rolled out",
                ],
                Some(Duration::from_millis(100)),
                event(false, "DeploymentSucceeded", "Applied revision main@sha1:abc"),
            ),
            (
                "unhealthy",
                finished(Ending::Unhealthy("Deployment/web: timed out".into()), false),
                vec![
                    "Ready=False HealthCheckFailed: Applied revision main@sha1:abc, but Deployment/web: timed out",
                    "Stalled=True InvalidSpec: old",
                    "Healthy=False HealthCheckFailed: Deployment/web: timed out",
                ],
                Some(INTERVAL),
                event(true, "DeploymentFailed", "Applied revision main@sha1:abc, but Deployment/web: timed out"),
            ),
            (
                "a gate refused: nothing applied, no workload judged",
                finished(Ending::GateRefused("gate g answered 403".into()), false),
                vec![
                    "Ready=False GateFailed: revision main@sha1:abc: gate g answered 403; nothing was applied",
                    "Stalled=True InvalidSpec: old",
                ],
                Some(INTERVAL),
                event(true, "DeploymentFailed", "revision main@sha1:abc: gate g answered 403; nothing was applied"),
            ),
            (
                "a build tool is missing: the operator's setup, so Stalled says which flag",
                Stop::Failed(Failure::build(&missing_tool, REV, INTERVAL)),
                vec![
                    "Ready=False BuildToolMissing: the helm binary \"/x/helm\" cannot be run: set --helm-bin, or use the tugboat image, which ships it",
                    "Stalled=True BuildToolMissing: the helm binary \"/x/helm\" cannot be run: set --helm-bin, or use the tugboat image, which ships it",
                ],
                Some(INTERVAL),
                event(
                    true,
                    "BuildToolMissing",
                    "the helm binary \"/x/helm\" cannot be run: set --helm-bin, or use the tugboat image, which ships it",
                ),
            ),
            (
                "a build fails: the content's fault, an Event with the tool's message",
                Stop::Failed(Failure::build(&build_failed, REV, INTERVAL)),
                vec![
                    "Ready=False BuildFailed: revision main@sha1:abc: helm failed: parse error at (shop/templates/a.yaml:7)",
                    "Stalled=True InvalidSpec: old",
                ],
                Some(INTERVAL),
                event(
                    true,
                    "BuildFailed",
                    "revision main@sha1:abc: helm failed: parse error at (shop/templates/a.yaml:7)",
                ),
            ),
        ];
        for (case, stop, conditions, requeue, event) in table {
            let (shown, report) = after(&stop);
            assert_eq!(shown, conditions, "{case}");
            assert_eq!(report, Report { requeue, event }, "{case}");
        }
    }

    #[test]
    fn a_transient_failure_is_retried_soon_and_others_wait_for_a_change() {
        let transient = SourceError::Unreachable { url: "https://e.com/a.git".into(), message: "refused".into() };
        assert_eq!(Failure::source(&transient, INTERVAL).retry, TRANSIENT_RETRY);
        let refused = SourceError::RepositoryNotFound { url: "https://e.com/a.git".into() };
        let failure = Failure::source(&refused, INTERVAL);
        assert_eq!((failure.reason, failure.retry, failure.event), (Reason::RepositoryNotFound, INTERVAL, false));
        assert!(failure.message.contains("spec.source.repoURL"), "{}", failure.message);
    }

    /// Every failure the phases can meet, as the error types classify them.
    fn every_failure() -> Vec<Stop> {
        let url = || "https://e.com/a.git".to_owned();
        let revision = || REV.to_owned();
        let sources = [
            SourceError::AuthenticationFailed { url: url() },
            SourceError::HostKeyVerificationFailed { url: url() },
            SourceError::RepositoryNotFound { url: url() },
            SourceError::RefNotFound { url: url(), reference: "branch x".into() },
            SourceError::NoMatchingTag { url: url(), range: "^2".into() },
            SourceError::InvalidSemverRange { range: "x".into(), message: "bad".into() },
            SourceError::InvalidReference { reference: "x".into(), message: "bad".into() },
            SourceError::Unreachable { url: url(), message: "refused".into() },
            SourceError::Timeout { url: url(), seconds: 60 },
            SourceError::PathNotFound { path: "deploy".into(), revision: revision() },
            SourceError::NotUtf8 { path: "deploy/a.yaml".into(), revision: revision() },
            SourceError::TooLarge { path: "deploy".into(), revision: revision(), limit: 1 },
            SourceError::FileSourcesDisabled { url: "file:///r".into() },
            SourceError::UnsupportedUrl { url: "ftp://x".into() },
            SourceError::EgressRefused {
                url: url(),
                host: "e.com".into(),
                address: std::net::IpAddr::from([10, 0, 0, 1]),
                blocked: crate::egress::Blocked::Private,
            },
            SourceError::Redirected { url: url() },
            SourceError::Git { message: "fatal".into() },
            SourceError::Io { action: "write the cache".into(), message: "disk full".into() },
        ];
        let object = || "Deployment/web".to_owned();
        let origin = || "deploy/a.yaml".to_owned();
        let message = || "no".to_owned();
        let deploys = [
            DeployError::Invalid { origin: origin(), object: object(), message: message() },
            DeployError::Forbidden { origin: origin(), object: object(), message: message() },
            DeployError::OwnedByAnother { origin: origin(), object: object(), owner: "shop/other".into() },
            DeployError::ApplyFailed { origin: origin(), object: object(), message: message() },
            DeployError::PruneFailed { object: object(), message: message() },
            DeployError::RestartFailed { object: object(), message: message() },
            DeployError::Impersonation {
                user: "system:serviceaccount:shop:tugboat-deployer".into(),
                message: message(),
            },
            DeployError::Transport(kube::Error::Service("connection reset".into())),
        ];
        let content =
            [Reason::RenderFailed, Reason::RenderBudgetExceeded, Reason::VariableNotAllowed, Reason::PlanFailed];
        let inputs = [Reason::SecretNotFound, Reason::RecordUnreadable];
        let mut stops: Vec<Stop> = sources.iter().map(|e| Stop::Failed(Failure::source(e, INTERVAL))).collect();
        stops.extend(deploys.into_iter().map(|error| Stop::Finished {
            conclusion: conclude(REV, None, &Ending::ApplyFailed(error), INTERVAL),
            more_waiting: false,
        }));
        stops.extend(content.map(|reason| Stop::Failed(Failure::of_content(reason, "bad", INTERVAL))));
        stops.extend(inputs.map(|reason| Stop::Failed(Failure::new(reason, "missing", false, INTERVAL))));
        let builds = [
            BuildError::Failed { tool: "helm", message: "parse error at (shop/templates/a.yaml:7)".into() },
            BuildError::Refused {
                message: "kustomization.yaml: resources: \"../..\" leads outside the repository".into(),
            },
            BuildError::Values("spec.source.helm.values: bad".into()),
            BuildError::Timeout { tool: "helm", seconds: 60 },
            BuildError::OutputTooLarge { tool: "helm", limit: 1 },
            BuildError::ToolMissing { tool: "helm", program: "helm".into(), flag: "--helm-bin" },
            BuildError::Io { what: "write".into(), message: "disk full".into() },
        ];
        stops.extend(builds.iter().map(|error| Stop::Failed(Failure::build(error, REV, INTERVAL))));
        stops
    }

    #[test]
    fn every_reason_of_an_application_comes_from_a_stop_and_reaches_ready() {
        let mut stops = every_failure();
        stops.extend([
            Stop::Stalled(Reason::InvalidSpec, "spec.x: bad".into()),
            Stop::Stalled(Reason::DependencyCycle, "dependency cycle: t/a → t/b → t/a".into()),
            Stop::Stalled(
                Reason::DependencyNotFound,
                "spec.dependsOn[0]: GitOpsApplication t/db does not exist".into(),
            ),
            Stop::Failed(Failure::new(Reason::DependencyNotReady, "Waiting for t/db is deploying", false, INTERVAL)),
            Stop::Suspended,
            Stop::Deferred { message: "held".into(), wait: INTERVAL, newly: true },
            Stop::Waiting { reason: Reason::AwaitingGates, message: "gates".into(), recheck: INTERVAL },
            Stop::Waiting { reason: Reason::RollingOut, message: "web".into(), recheck: INTERVAL },
            Stop::Waiting { reason: Reason::RunningHooks, message: "Job/migrate".into(), recheck: INTERVAL },
            // What `deployment::start` sets while it applies, before any stop.
            Stop::Waiting { reason: Reason::Deploying, message: "Deploying".into(), recheck: INTERVAL },
        ]);
        let hook_failed = Ending::HookFailed(crate::deploy::hooks::Stage::Pre, "x".into());
        for ending in [Ending::Succeeded, Ending::Unhealthy("x".into()), Ending::GateRefused("x".into()), hook_failed] {
            stops.push(Stop::Finished { conclusion: conclude(REV, None, &ending, INTERVAL), more_waiting: false });
        }
        let mut reached = BTreeSet::new();
        for stop in &stops {
            let mut conditions = Vec::new();
            let report = report(&mut conditions, stop, Some(1), &at(1));
            assert!(!conditions.is_empty(), "{stop:?} sets no condition");
            if let Stop::Failed(failure) = stop {
                let ready = conditions::get(&conditions, READY).expect("Ready");
                assert_eq!(ready.reason, failure.reason.as_str(), "{stop:?}");
                assert_eq!(report.requeue, Some(failure.retry), "a failure is retried, never dropped: {stop:?}");
            }
            reached.extend(conditions.iter().map(|c| c.reason.clone()));
        }
        // The other kinds' reasons are set by their own controllers (tested there).
        let other_kinds: BTreeSet<&str> = [
            Reason::Ready,
            Reason::TargetNotFound,
            Reason::Valid,
            Reason::Delivered,
            Reason::DeliveryFailed,
            Reason::ConfigurationError,
        ]
        .iter()
        .map(|r| r.as_str())
        .collect();
        let missing: Vec<&str> = Reason::ALL
            .iter()
            .map(|r| r.as_str())
            .filter(|r| !reached.contains(*r) && !other_kinds.contains(r))
            .collect();
        assert!(missing.is_empty(), "reasons no stop of an application reaches: {missing:?}");
    }
}
