//! The pure decisions of a reconcile: is the spec usable, is there anything to do, and what a
//! finished deployment means for the application's conditions. No I/O: table-tested below.

use std::time::Duration;

use crate::conditions::reasons;
use crate::deploy::{DeployError, Outcome};
use crate::window::Windows;

/// Retry delay for failures that may go away by themselves (network, API server).
pub const TRANSIENT_RETRY: Duration = Duration::from_secs(15);

/// The spec, checked once: what later phases need from it, parsed.
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

/// What asks for this reconcile, beyond the passing of time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked {
    /// A reconcile request or a recorded trigger not handled yet.
    pub request_pending: bool,
    /// `metadata.generation` moved since the last reconcile.
    pub spec_changed: bool,
    /// The application polls its repository (`spec.updates.mechanism: Polling`).
    pub polling: bool,
    /// Nothing was ever applied.
    pub never_applied: bool,
}

impl Asked {
    /// Must the remote be asked for the ref, or may the cached commit be used?
    pub fn ask_remote(self) -> bool {
        self.polling || self.request_pending || self.spec_changed || self.never_applied
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

/// How a deployment ended, before it is reported.
pub enum Carried {
    /// A BeforeDeployment gate refused: nothing was applied.
    GateRefused(String),
    /// Applying failed (nothing, or not everything, was applied).
    Failed(DeployError),
    /// Everything was applied. `after_gates` is the AfterDeployment gates' answer, asked only
    /// once every changed workload rolled out.
    Applied { outcome: Outcome, after_gates: Option<Result<(), String>> },
}

/// What a finished deployment sets: Ready (and Healthy when a rollout was judged), the
/// message recorded everywhere, and when to look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conclusion {
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
    pub retry: Duration,
    /// Healthy condition: `Some((healthy, reason, message))` when workloads were judged.
    pub healthy: Option<(bool, &'static str, String)>,
}

/// The report of one deployment of `revision`.
pub fn conclude(revision: &str, carried: &Carried, interval: Duration) -> Conclusion {
    let failed = |reason, message, retry| Conclusion { ok: false, reason, message, retry, healthy: None };
    match carried {
        Carried::GateRefused(why) => {
            failed(reasons::GATE_FAILED, format!("revision {revision}: {why}; nothing was applied"), interval)
        }
        Carried::Failed(error) => {
            let retry = if error.is_transient() { TRANSIENT_RETRY } else { interval };
            failed(error.reason(), format!("revision {revision}: {error}"), retry)
        }
        Carried::Applied { outcome, after_gates } => {
            let summary = applied_summary(revision, outcome);
            match (&outcome.unhealthy, after_gates) {
                (Some(why), _) => Conclusion {
                    ok: false,
                    reason: reasons::HEALTH_CHECK_FAILED,
                    message: format!("{summary}, but {why}"),
                    retry: interval,
                    healthy: Some((false, reasons::HEALTH_CHECK_FAILED, why.clone())),
                },
                (None, Some(Err(why))) => Conclusion {
                    ok: false,
                    reason: reasons::GATE_FAILED,
                    message: format!("{summary}, but {why}"),
                    retry: interval,
                    healthy: Some(rolled_out()),
                },
                (None, _) => Conclusion {
                    ok: true,
                    reason: reasons::SUCCEEDED,
                    message: summary,
                    retry: interval,
                    healthy: Some(rolled_out()),
                },
            }
        }
    }
}

fn rolled_out() -> (bool, &'static str, String) {
    (true, reasons::HEALTHY, "Every changed workload rolled out".to_owned())
}

fn applied_summary(revision: &str, outcome: &Outcome) -> String {
    let mut summary = format!("Applied revision {revision}");
    if !outcome.pruned.is_empty() {
        summary.push_str(&format!("; pruned {}", outcome.pruned.join(", ")));
    }
    if !outcome.paused.is_empty() {
        summary.push_str(&format!("; paused, so not restarted: {}", outcome.paused.join(", ")));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    const REV: &str = "main@sha1:abc";
    const INTERVAL: Duration = Duration::from_secs(60);

    fn applied(unhealthy: Option<&str>, after_gates: Option<Result<(), String>>) -> Carried {
        let outcome = Outcome {
            pruned: vec!["ConfigMap/old".into()],
            paused: vec!["Deployment/held".into()],
            unhealthy: unhealthy.map(str::to_owned),
            ..Outcome::default()
        };
        Carried::Applied { outcome, after_gates }
    }

    #[test]
    fn every_way_a_deployment_ends_has_its_reason_message_and_retry() {
        let summary = "Applied revision main@sha1:abc; pruned ConfigMap/old; paused, so not restarted: Deployment/held";
        // case, how it ended, Ready, reason, message, retry, Healthy
        type Row = (&'static str, Carried, bool, &'static str, String, Duration, Option<bool>);
        let table: Vec<Row> = vec![
            ("healthy, no gates", applied(None, None), true, reasons::SUCCEEDED, summary.into(), INTERVAL, Some(true)),
            (
                "healthy, gates passed",
                applied(None, Some(Ok(()))),
                true,
                reasons::SUCCEEDED,
                summary.into(),
                INTERVAL,
                Some(true),
            ),
            (
                "healthy, an AfterDeployment gate failed",
                applied(None, Some(Err("gate g answered 500".into()))),
                false,
                reasons::GATE_FAILED,
                format!("{summary}, but gate g answered 500"),
                INTERVAL,
                Some(true),
            ),
            (
                "unhealthy",
                applied(Some("Deployment/web: timed out"), None),
                false,
                reasons::HEALTH_CHECK_FAILED,
                format!("{summary}, but Deployment/web: timed out"),
                INTERVAL,
                Some(false),
            ),
            (
                "a BeforeDeployment gate refused",
                Carried::GateRefused("gate g answered 403".into()),
                false,
                reasons::GATE_FAILED,
                "revision main@sha1:abc: gate g answered 403; nothing was applied".into(),
                INTERVAL,
                None,
            ),
        ];
        for (case, carried, ok, reason, message, retry, healthy) in table {
            let c = conclude(REV, &carried, INTERVAL);
            assert_eq!((c.ok, c.reason, c.message.as_str()), (ok, reason, message.as_str()), "{case}");
            assert_eq!(c.retry, retry, "{case}");
            assert_eq!(c.healthy.map(|(h, _, _)| h), healthy, "{case}");
        }
    }

    #[test]
    fn a_failed_apply_is_retried_soon_only_when_the_failure_may_pass_by_itself() {
        let transient = DeployError::Transport(kube::Error::Service("connection reset".into()));
        let c = conclude(REV, &Carried::Failed(transient), INTERVAL);
        assert_eq!((c.ok, c.reason, c.retry), (false, "ApiServerUnreachable", TRANSIENT_RETRY));
        assert!(c.message.starts_with("revision main@sha1:abc: "), "{}", c.message);
        let refused = DeployError::Invalid {
            origin: "deploy/web.yaml".into(),
            object: "Deployment/web".into(),
            message: "spec.replicas: must be an integer".into(),
        };
        let c = conclude(REV, &Carried::Failed(refused), INTERVAL);
        assert_eq!((c.ok, c.reason, c.retry), (false, "ValidationFailed", INTERVAL), "waits for a new commit or spec");
        assert!(c.healthy.is_none(), "no workload was judged");
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
            Asked { never_applied: true, ..Asked::default() },
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
