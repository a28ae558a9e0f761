//! The pure decisions of a reconcile: is the spec usable, is there anything to do, and what a
//! finished deployment means for the application's conditions. No I/O: table-tested below.

use std::time::Duration;

use crate::api::{DeploymentPhase, DeploymentRecord, DeploymentResult};
use crate::conditions::Reason;
use crate::deploy::health::Rollout;
use crate::deploy::{DeployError, Outcome};
use crate::outgoing::dispatch::GateAnswer;
use crate::window::Windows;

/// Retry delay for failures that may go away by themselves (network, API server).
pub const TRANSIENT_RETRY: Duration = Duration::from_secs(15);

/// The spec, checked once: what later phases need from it, parsed.
#[derive(Debug)]
pub struct Validated {
    /// `spec.updates.interval`: polls and drift correction.
    pub interval: Duration,
    pub windows: Windows,
    pub health_timeout: Duration,
}

/// Operator settings a spec is checked against.
pub struct Limits<'a> {
    pub allow_file_sources: bool,
    pub default_windows: &'a [crate::api::ChangeWindow],
}

/// Checks what the API server cannot: operator flags and parse-ability. The message names the
/// field.
pub fn validate(spec: &crate::api::GitOpsApplicationSpec, limits: &Limits<'_>) -> Result<Validated, String> {
    // The Git layer decides which URLs it takes; a disabled transport never starts working by
    // itself, so it stalls here. (Other refusals are reported by the source phase.)
    let url = crate::source::url::parse(&spec.source.repo_url, limits.allow_file_sources);
    if let Err(error @ crate::source::SourceError::FileSourcesDisabled { .. }) = url {
        return Err(format!("spec.source.repoURL: {error}"));
    }
    if let Some(range) = &spec.source.reference.semver {
        semver::VersionReq::parse(range)
            .map_err(|e| format!("spec.source.ref.semver: {range:?} is not a semver range: {e}"))?;
    }
    let health_timeout = spec.health_timeout.parse().map_err(|e| format!("spec.healthTimeout: {e}"))?;
    let windows = crate::window::for_application(&spec.change_windows, limits.default_windows)
        .map_err(|e| format!("spec.{e}"))?;
    let interval = spec.updates.interval.parse().map_err(|e| format!("spec.updates.interval: {e}"))?;
    Ok(Validated { interval, windows, health_timeout })
}

/// What a reconcile does, decided from the checked spec and the newest deployment record
/// before anything is fetched.
#[derive(Debug)]
pub enum Plan {
    /// The spec can never work: Stalled until it changes (no retry loop).
    Stall(String),
    /// `spec.suspend`: nothing happens until it is unset (a deployment under way waits too).
    Suspend,
    /// A deployment is under way: the next step of its phase. New calls and commits wait.
    CarryOn(Validated, Box<DeploymentRecord>),
    /// Look at the inputs: up to date, deferred by a change window, or a new deployment.
    Inputs(Validated),
}

/// See [`Plan`]. A `Running` record without a phase was written by an older tugboat that
/// stopped mid-deployment: it is applied again, like an interrupted `Applying`.
pub fn plan(checked: Result<Validated, String>, suspend: bool, last: Option<&DeploymentRecord>) -> Plan {
    let checked = match checked {
        Ok(checked) => checked,
        Err(message) => return Plan::Stall(message),
    };
    if suspend {
        return Plan::Suspend;
    }
    match last {
        Some(record) if record.result == DeploymentResult::Running && record.finished_at.is_none() => {
            let mut record = record.clone();
            record.phase.get_or_insert(DeploymentPhase::Applying);
            Plan::CarryOn(checked, Box::new(record))
        }
        _ => Plan::Inputs(checked),
    }
}

/// What asks for this reconcile, beyond the passing of time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked {
    /// A reconcile request or a recorded trigger not handled yet.
    pub request_pending: bool,
    /// `metadata.generation` moved since the last reconcile.
    pub spec_changed: bool,
    /// The application polls its repository (`spec.updates.mechanism: Polling`).
    pub polling: bool,
    /// Nothing was applied from the current source (URL, reference, credentials Secret) yet:
    /// this application's credentials have not shown they can read it, so no commit another
    /// application fetched into the shared cache may be used for it.
    pub source_unproven: bool,
}

impl Asked {
    /// Must the remote be asked for the ref, or may the cached commit be used?
    pub fn ask_remote(self) -> bool {
        self.polling || self.request_pending || self.spec_changed || self.source_unproven
    }
}

/// Whether a deployment is needed once the revision is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Revision, variables and spec as last applied, no request, no drift check due.
    UpToDate,
    Stale,
}

pub fn freshness(fingerprint_unchanged: bool, asked: Asked, drift_check_due: bool) -> Freshness {
    if fingerprint_unchanged && !asked.request_pending && !drift_check_due {
        Freshness::UpToDate
    } else {
        Freshness::Stale
    }
}

/// Where a phase that waits stands, once what it waits for has been looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Still waiting; what for, in one sentence.
    Waiting(String),
    Done,
    Failed(String),
}

/// A rollout from the state of each awaited workload: failed as soon as one failed, done when
/// every one completed (or is paused), failed at the deadline with what it still waited for.
///
/// While waiting, the sentence names the workloads only: it goes into status, and a count of
/// replicas would rewrite the status at every step of every rollout (the API server's and
/// etcd's work, in a storm of deployments). How far each one got is in the failure message,
/// the debug log, and `kubectl rollout status`.
pub fn rollout(states: &[(String, Rollout)], deadline_passed: bool, timeout: Duration) -> Progress {
    let mut waiting = Vec::new();
    for (workload, state) in states {
        match state {
            Rollout::Failed(why) => return Progress::Failed(format!("{workload}: {why}")),
            Rollout::Progressing(why) => waiting.push((workload.as_str(), why.as_str())),
            Rollout::Complete | Rollout::Paused => {}
        }
    }
    match (waiting.is_empty(), deadline_passed) {
        (true, _) => Progress::Done,
        (false, true) => {
            let details: Vec<String> = waiting.iter().map(|(workload, why)| format!("{workload}: {why}")).collect();
            Progress::Failed(format!("health timeout after {timeout:?}: {}", details.join("; ")))
        }
        (false, false) => {
            let names: Vec<&str> = waiting.iter().map(|(workload, _)| *workload).collect();
            Progress::Waiting(names.join(", "))
        }
    }
}

/// Gates from each asked hook's answer: refused as soon as one refused, passed when every one
/// passed. A hook that never shows the delivery by the deadline counts as refused.
pub fn gates(answers: &[(String, GateAnswer)], deadline_passed: bool) -> Progress {
    let mut waiting = Vec::new();
    for (hook, answer) in answers {
        match answer {
            GateAnswer::Refused(why) => return Progress::Failed(why.clone()),
            GateAnswer::Passed => {}
            GateAnswer::Pending(Some(progress)) => waiting.push(format!("{hook}: {progress}")),
            GateAnswer::Pending(None) => waiting.push(hook.clone()),
            GateAnswer::Unseen if deadline_passed => {
                return Progress::Failed(format!("{hook} never showed the delivery in its status"));
            }
            GateAnswer::Unseen => waiting.push(hook.clone()),
        }
    }
    if waiting.is_empty() { Progress::Done } else { Progress::Waiting(waiting.join("; ")) }
}

/// How a deployment ended, before it is reported.
#[derive(Debug)]
pub enum Ending {
    /// A BeforeDeployment gate refused: nothing was applied.
    GateRefused(String),
    /// Applying failed (nothing, or not everything, was applied).
    ApplyFailed(DeployError),
    /// Applied, but a workload did not roll out.
    Unhealthy(String),
    /// Applied and rolled out, but an AfterDeployment gate refused.
    AfterGateRefused(String),
    /// A Helm hook failed: a pre hook before anything else was applied, a post hook after
    /// the rest rolled out.
    HookFailed(crate::deploy::hooks::Stage, String),
    /// Applied, rolled out, and every AfterDeployment gate passed.
    Succeeded,
}

/// What a finished deployment sets: Ready (and Healthy when a rollout was judged), the
/// message recorded everywhere, and when to look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conclusion {
    pub ok: bool,
    pub reason: Reason,
    pub message: String,
    pub retry: Duration,
    /// Healthy condition: `Some((healthy, reason, message))` when workloads were judged.
    pub healthy: Option<(bool, Reason, String)>,
}

/// The report of one deployment of `revision`; `summary` says what the apply did (see
/// [`applied_summary`]), when it did.
pub fn conclude(revision: &str, summary: Option<&str>, ending: &Ending, interval: Duration) -> Conclusion {
    let summary = summary.map_or_else(|| format!("Applied revision {revision}"), str::to_owned);
    let failed = |reason, message, retry| Conclusion { ok: false, reason, message, retry, healthy: None };
    match ending {
        Ending::GateRefused(why) => {
            failed(Reason::GateFailed, format!("revision {revision}: {why}; nothing was applied"), interval)
        }
        Ending::ApplyFailed(error) => {
            let retry = if error.is_transient() { TRANSIENT_RETRY } else { interval };
            failed(error.reason(), format!("revision {revision}: {error}"), retry)
        }
        Ending::Unhealthy(why) => Conclusion {
            ok: false,
            reason: Reason::HealthCheckFailed,
            message: format!("{summary}, but {why}"),
            retry: interval,
            healthy: Some((false, Reason::HealthCheckFailed, why.clone())),
        },
        Ending::AfterGateRefused(why) => Conclusion {
            ok: false,
            reason: Reason::GateFailed,
            message: format!("{summary}, but {why}"),
            retry: interval,
            healthy: Some(rolled_out()),
        },
        Ending::HookFailed(crate::deploy::hooks::Stage::Pre, why) => failed(
            Reason::HookFailed,
            format!("revision {revision}: a pre-deployment hook failed: {why}; nothing else was applied"),
            interval,
        ),
        Ending::HookFailed(crate::deploy::hooks::Stage::Post, why) => Conclusion {
            ok: false,
            reason: Reason::HookFailed,
            message: format!("{summary}, but a post-deployment hook failed: {why}"),
            retry: interval,
            healthy: Some(rolled_out()),
        },
        Ending::Succeeded => Conclusion {
            ok: true,
            reason: Reason::Succeeded,
            message: summary,
            retry: interval,
            healthy: Some(rolled_out()),
        },
    }
}

fn rolled_out() -> (bool, Reason, String) {
    (true, Reason::Healthy, "Every changed workload rolled out".to_owned())
}

/// What an apply did, in one sentence: recorded when it happened, reported when it finishes.
pub fn applied_summary(revision: &str, outcome: &Outcome, skipped_hooks: &[String]) -> String {
    let mut summary = format!("Applied revision {revision}");
    if !outcome.pruned.is_empty() {
        summary.push_str(&format!("; pruned {}", outcome.pruned.join(", ")));
    }
    if !outcome.paused.is_empty() {
        summary.push_str(&format!("; paused, so not restarted: {}", outcome.paused.join(", ")));
    }
    if !skipped_hooks.is_empty() {
        summary.push_str(&format!("; Helm hooks not run: {}", skipped_hooks.join(", ")));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    const REV: &str = "main@sha1:abc";
    const INTERVAL: Duration = Duration::from_secs(60);

    fn summary() -> String {
        let outcome = Outcome {
            pruned: vec!["ConfigMap/old".into()],
            paused: vec!["Deployment/held".into()],
            ..Outcome::default()
        };
        applied_summary(REV, &outcome, &["Pod/smoke-test".into()])
    }

    #[test]
    fn every_way_a_deployment_ends_has_its_reason_message_and_retry() {
        let summary = summary();
        assert_eq!(
            summary,
            "Applied revision main@sha1:abc; pruned ConfigMap/old; paused, so not restarted: Deployment/held; Helm hooks not run: Pod/smoke-test"
        );
        // case, how it ended, Ready, reason, message, Healthy
        type Row = (&'static str, Ending, bool, Reason, String, Option<bool>);
        let table: Vec<Row> = vec![
            ("healthy, gates passed or none", Ending::Succeeded, true, Reason::Succeeded, summary.clone(), Some(true)),
            (
                "healthy, an AfterDeployment gate failed",
                Ending::AfterGateRefused("gate g answered 500".into()),
                false,
                Reason::GateFailed,
                format!("{summary}, but gate g answered 500"),
                Some(true),
            ),
            (
                "a pre-deployment hook failed: nothing else applied",
                Ending::HookFailed(crate::deploy::hooks::Stage::Pre, "Job/migrate: backoff limit".into()),
                false,
                Reason::HookFailed,
                format!(
                    "revision {REV}: a pre-deployment hook failed: Job/migrate: backoff limit; nothing else was applied"
                ),
                None,
            ),
            (
                "a post-deployment hook failed, after the rollout",
                Ending::HookFailed(crate::deploy::hooks::Stage::Post, "Job/notify: failed".into()),
                false,
                Reason::HookFailed,
                format!("{summary}, but a post-deployment hook failed: Job/notify: failed"),
                Some(true),
            ),
            (
                "unhealthy",
                Ending::Unhealthy("Deployment/web: timed out".into()),
                false,
                Reason::HealthCheckFailed,
                format!("{summary}, but Deployment/web: timed out"),
                Some(false),
            ),
            (
                "a BeforeDeployment gate refused",
                Ending::GateRefused("gate g answered 403".into()),
                false,
                Reason::GateFailed,
                "revision main@sha1:abc: gate g answered 403; nothing was applied".into(),
                None,
            ),
        ];
        for (case, ending, ok, reason, message, healthy) in table {
            let c = conclude(REV, Some(&summary), &ending, INTERVAL);
            assert_eq!((c.ok, c.reason, c.message.as_str()), (ok, reason, message.as_str()), "{case}");
            assert_eq!(c.retry, INTERVAL, "{case}");
            assert_eq!(c.healthy.map(|(h, _, _)| h), healthy, "{case}");
        }
    }

    #[test]
    fn a_rollout_fails_at_once_waits_while_progressing_and_fails_at_its_deadline() {
        let timeout = Duration::from_secs(90);
        let web = |state: Rollout| ("Deployment/web".to_owned(), state);
        let db = |state: Rollout| ("StatefulSet/db".to_owned(), state);
        let progressing = || Rollout::Progressing("1 of 2 updated replicas available".into());
        // case, states, deadline passed, progress
        type Row = (&'static str, Vec<(String, Rollout)>, bool, Progress);
        let table: Vec<Row> = vec![
            ("nothing to wait for", vec![], false, Progress::Done),
            ("all complete or paused", vec![web(Rollout::Complete), db(Rollout::Paused)], false, Progress::Done),
            (
                "one progressing",
                vec![web(progressing()), db(Rollout::Complete)],
                false,
                Progress::Waiting("Deployment/web".into()),
            ),
            (
                "two progressing: named, no counts (those would rewrite status at every step)",
                vec![web(progressing()), db(progressing())],
                false,
                Progress::Waiting("Deployment/web, StatefulSet/db".into()),
            ),
            (
                "one failed while another progresses",
                vec![web(progressing()), db(Rollout::Failed("progress deadline exceeded".into()))],
                false,
                Progress::Failed("StatefulSet/db: progress deadline exceeded".into()),
            ),
            (
                "still progressing at the deadline",
                vec![web(progressing())],
                true,
                Progress::Failed("health timeout after 90s: Deployment/web: 1 of 2 updated replicas available".into()),
            ),
            ("complete at the deadline", vec![web(Rollout::Complete)], true, Progress::Done),
        ];
        for (case, states, deadline_passed, want) in table {
            assert_eq!(rollout(&states, deadline_passed, timeout), want, "{case}");
        }
    }

    #[test]
    fn gates_pass_only_when_every_hook_passed_and_a_refusal_ends_them_at_once() {
        let a = |answer: GateAnswer| ("OutgoingWebhook/a".to_owned(), answer);
        let b = |answer: GateAnswer| ("OutgoingWebhook/b".to_owned(), answer);
        let refused = || GateAnswer::Refused("OutgoingWebhook/b terminal: state TERMINAL".into());
        // case, answers, deadline passed, progress
        type Row = (&'static str, Vec<(String, GateAnswer)>, bool, Progress);
        let table: Vec<Row> = vec![
            ("all passed", vec![a(GateAnswer::Passed), b(GateAnswer::Passed)], false, Progress::Done),
            (
                "one refused while another waits",
                vec![a(GateAnswer::Pending(None)), b(refused())],
                false,
                Progress::Failed("OutgoingWebhook/b terminal: state TERMINAL".into()),
            ),
            (
                "one waiting with progress",
                vec![a(GateAnswer::Passed), b(GateAnswer::Pending(Some("40%".into())))],
                false,
                Progress::Waiting("OutgoingWebhook/b: 40%".into()),
            ),
            ("not seen yet", vec![a(GateAnswer::Unseen)], false, Progress::Waiting("OutgoingWebhook/a".into())),
            (
                "never seen by the deadline",
                vec![a(GateAnswer::Unseen)],
                true,
                Progress::Failed("OutgoingWebhook/a never showed the delivery in its status".into()),
            ),
            (
                "pending past the deadline still waits",
                vec![a(GateAnswer::Pending(None))],
                true,
                Progress::Waiting("OutgoingWebhook/a".into()),
            ),
        ];
        for (case, answers, deadline_passed, want) in table {
            assert_eq!(gates(&answers, deadline_passed), want, "{case}");
        }
    }

    #[test]
    fn a_failed_apply_is_retried_soon_only_when_the_failure_may_pass_by_itself() {
        let transient = DeployError::Transport(kube::Error::Service("connection reset".into()));
        let c = conclude(REV, None, &Ending::ApplyFailed(transient), INTERVAL);
        assert_eq!((c.ok, c.reason, c.retry), (false, Reason::ApiServerUnreachable, TRANSIENT_RETRY));
        assert!(c.message.starts_with("revision main@sha1:abc: "), "{}", c.message);
        let refused = DeployError::Invalid {
            origin: "deploy/web.yaml".into(),
            object: "Deployment/web".into(),
            message: "spec.replicas: must be an integer".into(),
        };
        let c = conclude(REV, None, &Ending::ApplyFailed(refused), INTERVAL);
        assert_eq!(
            (c.ok, c.reason, c.retry),
            (false, Reason::ValidationFailed, INTERVAL),
            "waits for a new commit or spec"
        );
        assert!(c.healthy.is_none(), "no workload was judged");
    }

    #[test]
    fn the_plan_follows_the_spec_then_the_deployment_under_way() {
        let valid = || Ok(Validated { interval: INTERVAL, windows: Default::default(), health_timeout: INTERVAL });
        let record = |result: &str, phase: Option<&str>, finished: bool| -> DeploymentRecord {
            let mut json =
                serde_json::json!({"id": "d1", "revision": REV, "startedAt": "2026-01-01T00:00:00Z", "result": result});
            if let Some(phase) = phase {
                json["phase"] = serde_json::json!(phase);
            }
            if finished {
                json["finishedAt"] = serde_json::json!("2026-01-01T00:01:00Z");
            }
            serde_json::from_value(json).expect("record")
        };
        let rolling = record("Running", Some("RollingOut"), false);
        // What a plan says, for comparing: its name and the phase carried on.
        let summary = |plan: Plan| match plan {
            Plan::Stall(message) => format!("stall: {message}"),
            Plan::Suspend => "suspend".to_owned(),
            Plan::CarryOn(_, record) => format!("carry on {:?}", record.phase),
            Plan::Inputs(_) => "inputs".to_owned(),
        };
        // case, spec check, suspend, newest record, plan
        type Row = (&'static str, Result<Validated, String>, bool, Option<DeploymentRecord>, &'static str);
        let table: Vec<Row> = vec![
            (
                "an invalid spec stalls",
                Err("spec.healthTimeout: bad".into()),
                false,
                None,
                "stall: spec.healthTimeout: bad",
            ),
            ("an invalid spec stalls even mid-rollout", Err("x".into()), false, Some(rolling.clone()), "stall: x"),
            ("suspended", valid(), true, Some(rolling.clone()), "suspend"),
            ("nothing ever deployed", valid(), false, None, "inputs"),
            ("the last one finished", valid(), false, Some(record("Succeeded", None, true)), "inputs"),
            ("a failed one is not carried on", valid(), false, Some(record("Failed", None, true)), "inputs"),
            ("rolling out", valid(), false, Some(rolling), "carry on Some(RollingOut)"),
            (
                "awaiting gates",
                valid(),
                false,
                Some(record("Running", Some("AwaitingGates"), false)),
                "carry on Some(AwaitingGates)",
            ),
            (
                "awaiting after gates",
                valid(),
                false,
                Some(record("Running", Some("AwaitingAfterGates"), false)),
                "carry on Some(AwaitingAfterGates)",
            ),
            (
                "interrupted while applying",
                valid(),
                false,
                Some(record("Running", Some("Applying"), false)),
                "carry on Some(Applying)",
            ),
            (
                "an older tugboat's record",
                valid(),
                false,
                Some(record("Running", None, false)),
                "carry on Some(Applying)",
            ),
        ];
        for (case, checked, suspend, last, want) in table {
            assert_eq!(summary(plan(checked, suspend, last.as_ref())), want, "{case}");
        }
    }

    #[test]
    fn nothing_is_done_only_when_nothing_changed_nothing_asked_and_no_drift_check_is_due() {
        let quiet = Asked::default();
        let requested = Asked { request_pending: true, ..Asked::default() };
        assert_eq!(freshness(true, quiet, false), Freshness::UpToDate);
        assert_eq!(freshness(false, quiet, false), Freshness::Stale, "revision, variables or spec moved");
        assert_eq!(freshness(true, requested, false), Freshness::Stale, "a call or reconcile request");
        assert_eq!(freshness(true, quiet, true), Freshness::Stale, "the drift check is due");
    }

    #[test]
    fn the_remote_is_asked_only_when_something_may_have_moved_there() {
        assert!(!Asked::default().ask_remote(), "a resync of an applied, unpolled application uses the cache");
        for asked in [
            Asked { polling: true, ..Asked::default() },
            Asked { request_pending: true, ..Asked::default() },
            Asked { spec_changed: true, ..Asked::default() },
            Asked { source_unproven: true, ..Asked::default() },
        ] {
            assert!(asked.ask_remote(), "{asked:?}");
        }
    }

    #[test]
    fn a_spec_that_can_never_work_is_named_by_its_field() {
        let spec = |patch: serde_json::Value| -> crate::api::GitOpsApplicationSpec {
            let mut base =
                serde_json::json!({"source": {"repoURL": "https://example.com/a.git", "ref": {"branch": "main"}}});
            if let (Some(base), Some(patch)) = (base.as_object_mut(), patch.as_object()) {
                base.extend(patch.clone());
            }
            serde_json::from_value(base).expect("spec")
        };
        let limits = Limits { allow_file_sources: false, default_windows: &[] };
        let checked = validate(&spec(serde_json::json!({"healthTimeout": "90s"})), &limits).expect("valid");
        assert_eq!(checked.health_timeout, Duration::from_secs(90));
        let cases = [
            (
                serde_json::json!({"source": {"repoURL": "file:///repo", "ref": {"branch": "main"}}}),
                "spec.source.repoURL",
            ),
            (
                serde_json::json!({"source": {"repoURL": "https://e.com/a.git", "ref": {"semver": "not a range"}}}),
                "spec.source.ref.semver",
            ),
            (serde_json::json!({"healthTimeout": "soon"}), "spec.healthTimeout"),
            (serde_json::json!({"updates": {"interval": "often"}}), "spec.updates.interval"),
        ];
        for (patch, field) in cases {
            let error = validate(&spec(patch.clone()), &limits).err().unwrap_or_default();
            assert!(error.starts_with(field), "{patch}: {error}");
        }
    }
}
