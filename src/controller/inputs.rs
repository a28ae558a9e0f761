//! The inputs of a deployment: the source's credentials, the revision (from the cache unless
//! the remote must be asked), and the recorded trigger, claimed once and held back while a
//! change window is closed. Ends the reconcile early when nothing is to be done.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::claim::{self, Claim};
use super::decide::{self, Asked, Freshness, Validated};
use super::dependencies::{self, Gate};
use super::pipeline::{Exit, Phase, Run};
use super::report::{Failure, Stop};
use super::{Context, Error, RECONCILE_REQUESTED_ANNOTATION, credentials, deployment, notify};
use crate::api::{DeploymentRecord, GitOpsApplication, GitOpsApplicationStatus, UpdateMechanism};
use crate::conditions::{self, DEFERRED, Reason};
use crate::source::{GitReference, Revision, SourceSpec};

/// The revision to deploy and what it is deployed with, once the trigger (if any) is claimed.
pub(super) struct Work {
    pub source: SourceSpec,
    pub revision: Revision,
    pub trigger: Option<crate::api::TriggerRecord>,
    pub variables: BTreeMap<String, String>,
    pub fingerprint: String,
    /// The deployment's record is in status already (written with the trigger's claim, or
    /// being carried on).
    pub already_recorded: bool,
}

/// The revision (asking the remote only when something asks for it), then the recorded
/// trigger, claimed once and held back while a change window is closed.
pub(super) async fn source_and_trigger(run: &mut Run<'_>, context: &Context, checked: &Validated) -> Phase<Work> {
    let app = run.app;
    let interval = checked.interval;
    let source = source_spec(app, load_credentials(run, context, interval).await?);
    let requested = app.annotations().get(RECONCILE_REQUESTED_ANNOTATION).cloned();
    let trigger = crate::trigger::record::pending(app);
    let asked = Asked {
        request_pending: crate::trigger::record::work_pending(app),
        spec_changed: app.status.as_ref().and_then(|s| s.observed_generation) != run.generation,
        polling: app.spec.updates.mechanism == UpdateMechanism::Polling,
        source_unproven: run.status.last_applied_source.as_deref() != Some(source_digest(app).as_str()),
    };
    let revision = resolve(run, context, &source, asked, interval).await?;
    run.status.last_handled_reconcile_at = requested;
    // The call's variables and tag persist once it runs, so later polls and drift corrections keep them.
    let mut overrides = run.status.variables.clone();
    let mut image_tag = run.status.image_tag.clone();
    if let Some(trigger) = &trigger {
        overrides.extend(trigger.variables.clone());
        image_tag = trigger.tag.clone().or(image_tag);
    }
    let variables = merged_variables(&app.spec.variables, &overrides);
    let fingerprint = fingerprint(&revision, &variables, image_tag.as_deref(), app);
    let unchanged = run.status.last_applied_fingerprint.as_deref() == Some(fingerprint.as_str());
    let drift_due = last_finished(&run.status).is_none_or(|at| elapsed_since(&at) >= interval);
    if decide::freshness(unchanged, asked, drift_due) == Freshness::UpToDate {
        if app.status.as_ref() != Some(&run.status) {
            run.write().await.map_err(Err)?;
        }
        tracing::debug!(revision = %revision.name, "nothing changed: no fetch, no apply");
        return Err(Ok(Action::requeue(interval)));
    }
    hold_for_dependencies(run, context).await?;
    let (trigger, overrides, image_tag) =
        claim_trigger(run, context, checked, &revision, trigger, overrides, image_tag).await?;
    let already_recorded = trigger.is_some();
    let variables = merged_variables(&app.spec.variables, &overrides);
    let fingerprint = self::fingerprint(&revision, &variables, image_tag.as_deref(), app);
    conditions::clear(&mut run.status.conditions, DEFERRED);
    run.status.pending_trigger = None;
    run.status.variables = overrides;
    run.status.image_tag = image_tag;
    if trigger.is_some() {
        run.status.last_trigger = trigger.clone();
    }
    let fetch = context.git.ensure(&source, &revision);
    if let Err(error) = fetch.instrument(tracing::info_span!("fetch", revision = %revision.name)).await {
        return Err(fetch_failed(run, context, error, interval).await);
    }
    Ok(Work { source, revision, trigger, variables, fingerprint, already_recorded })
}

/// The revision's objects could not be fetched. A deployment recorded as started (a claimed
/// trigger) is retried while the failure may pass, so the call is not lost; otherwise it ends.
async fn fetch_failed(
    run: &mut Run<'_>,
    context: &Context,
    error: crate::source::SourceError,
    interval: Duration,
) -> Exit {
    let failure = Failure::source(&error, interval);
    if error.is_transient() {
        run.fail(context, failure).await
    } else {
        deployment::abandon(run, context, failure).await
    }
}

async fn load_credentials(
    run: &mut Run<'_>,
    context: &Context,
    interval: Duration,
) -> Phase<Option<crate::source::Credentials>> {
    let Some(secret) = &run.app.spec.source.secret_ref else { return Ok(None) };
    let namespace = run.app.namespace().ok_or(Err(Error::NoNamespace))?;
    match credentials::load(&context.client, &namespace, &secret.name).await {
        Ok(credentials) => Ok(Some(credentials)),
        Err(error) => {
            let retry = interval.min(Duration::from_secs(60));
            Err(run.fail(context, Failure::new(Reason::SecretNotFound, error.to_string(), false, retry)).await)
        }
    }
}

/// The commit the ref points at: from the cache unless the remote must be asked.
async fn resolve(
    run: &mut Run<'_>,
    context: &Context,
    source: &SourceSpec,
    asked: Asked,
    interval: Duration,
) -> Phase<Revision> {
    let cached = if asked.ask_remote() { None } else { context.git.cached_revision(source).await };
    if let Some(revision) = cached {
        return Ok(revision);
    }
    match context
        .git
        .resolve(source)
        .instrument(tracing::info_span!("fetch", url = %crate::source::url::redact_text(&source.url)))
        .await
    {
        Ok(revision) => Ok(revision),
        Err(error) => Err(run.fail(context, Failure::source(&error, interval.min(Duration::from_secs(60)))).await),
    }
}

/// A dependency that is not ready is looked at again this often even when its change did not
/// wake us (as Flux's default `--requeue-dependency`).
const DEPENDENCY_RECHECK: Duration = Duration::from_secs(30);

/// `spec.dependsOn`: while a dependency is not ready the deployment waits and its trigger stays
/// recorded (a dependency's change wakes it); dependencies that can never be met stall.
async fn hold_for_dependencies(run: &mut Run<'_>, context: &Context) -> Phase<()> {
    let store = &context.applications;
    let cross_namespace = context.settings.allow_cross_namespace_dependencies;
    let lookup = |(namespace, name): &dependencies::Key| store.get(&ObjectRef::new(name).within(namespace));
    match dependencies::judge(run.app, cross_namespace, lookup) {
        Gate::Open => Ok(()),
        Gate::Waiting(message) => {
            let failure = Failure::new(Reason::DependencyNotReady, message, false, DEPENDENCY_RECHECK);
            Err(run.fail(context, failure).await)
        }
        Gate::Stalled { reason, message } => Err(run.report(context, Stop::Stalled(reason, message)).await),
    }
}

type Overrides = (Option<crate::api::TriggerRecord>, BTreeMap<String, String>, Option<String>);

/// Change windows hold back what they gate (the trigger stays recorded); otherwise the trigger
/// is claimed on a fresh read (see `claim`), so the calls in it are carried out once.
async fn claim_trigger(
    run: &mut Run<'_>,
    context: &Context,
    checked: &Validated,
    revision: &crate::source::Revision,
    trigger: Option<crate::api::TriggerRecord>,
    overrides: BTreeMap<String, String>,
    image_tag: Option<String>,
) -> Phase<Overrides> {
    let held = |t: &crate::api::TriggerRecord| {
        let restarts = !t.rollout_restart.is_empty();
        crate::window::held_until(&checked.windows, jiff::Timestamp::now(), restarts, t.override_window)
    };
    let Some(recorded) = &trigger else {
        return match crate::window::held_until(&checked.windows, jiff::Timestamp::now(), false, false) {
            Some(next_open) => Err(defer(run, context, None, next_open).await),
            None => Ok((None, overrides, image_tag)),
        };
    };
    if let Some(next_open) = held(recorded) {
        return Err(defer(run, context, trigger, next_open).await);
    }
    let previous = run.status.last_applied_revision.clone();
    let start = |t: &crate::api::TriggerRecord| {
        deployment::new_record(context, run.app, revision, Some(t.id.clone()), previous.clone())
    };
    match claim::claim(run.api, run.app, held, start, &context.written).await.map_err(Err)? {
        Claim::Claimed(trigger, claimed) => {
            if let Some(record) = claimed.deployments.last() {
                deployment::push_deployment(&mut run.status, record.clone());
            }
            Ok((Some(trigger), claimed.variables, claimed.image_tag))
        }
        Claim::Held(trigger, next_open) => Err(defer(run, context, Some(trigger), next_open).await),
        Claim::Nothing => Ok((None, overrides, image_tag)),
        Claim::Busy => Err(Ok(Action::requeue(Duration::from_millis(200)))),
    }
}

/// The inputs of a deployment already started (its gates passed, or a previous process
/// stopped while applying): the revision and trigger it recorded, the variables in status.
/// No trigger is claimed: calls that arrived meanwhile wait for it to finish.
pub(super) async fn recorded_work(
    run: &mut Run<'_>,
    context: &Context,
    checked: &Validated,
    record: &DeploymentRecord,
) -> Phase<Work> {
    let app = run.app;
    let source = source_spec(app, load_credentials(run, context, checked.interval).await?);
    let Some(revision) = Revision::from_name(&record.revision) else {
        let message = format!("deployment {}: cannot read its revision {:?}", record.id, record.revision);
        return Err(run.fail(context, Failure::new(Reason::RecordUnreadable, message, false, checked.interval)).await);
    };
    let trigger = run.status.last_trigger.clone().filter(|t| record.trigger_id.as_deref() == Some(t.id.as_str()));
    let variables = merged_variables(&app.spec.variables, &run.status.variables);
    let fingerprint = fingerprint(&revision, &variables, run.status.image_tag.as_deref(), app);
    if let Err(error) = context.git.ensure(&source, &revision).await {
        return Err(fetch_failed(run, context, error, checked.interval).await);
    }
    Ok(Work { source, revision, trigger, variables, fingerprint, already_recorded: true })
}

/// Holds the deployment back: Deferred with the next window start, the trigger kept pending.
async fn defer(
    run: &mut Run<'_>,
    context: &Context,
    trigger: Option<crate::api::TriggerRecord>,
    opening: crate::window::Opening,
) -> Exit {
    let next_open = opening.at();
    let when = next_open.map_or_else(|| "no opening within 400 days".to_owned(), |t| t.to_string());
    let message = format!("Held until {when}: outside the change window");
    let newly = run.status.pending_trigger.as_ref().map(|t| t.sequence) != trigger.as_ref().map(|t| t.sequence)
        || conditions::get(&run.status.conditions, DEFERRED).is_none();
    if newly {
        notify::deferred(context, run.app, trigger.as_ref(), &message).await;
    }
    run.status.pending_trigger = trigger.map(|mut t| {
        t.next_window_start = next_open.map(Time);
        t
    });
    let wait = next_open
        .map(|t| jiff::Timestamp::now().duration_until(t).as_secs_f64().max(0.0))
        .map_or(Duration::from_secs(3600), |s| Duration::from_secs_f64(s) + Duration::from_millis(200));
    run.report(context, Stop::Deferred { message, wait, newly }).await
}

fn source_spec(app: &GitOpsApplication, credentials: Option<crate::source::Credentials>) -> SourceSpec {
    let r = &app.spec.source.reference;
    let reference = if let Some(branch) = &r.branch {
        GitReference::Branch(branch.clone())
    } else if let Some(tag) = &r.tag {
        GitReference::Tag(tag.clone())
    } else if let Some(commit) = &r.commit {
        GitReference::Commit(commit.clone())
    } else if let Some(range) = &r.semver {
        GitReference::Semver(range.clone())
    } else {
        GitReference::Branch("main".into())
    };
    SourceSpec { url: app.spec.source.repo_url.clone(), reference, credentials }
}

/// Webhook overrides (status) win over the spec's defaults.
pub(super) fn merged_variables(
    defaults: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut variables = defaults.clone();
    variables.extend(overrides.clone());
    variables
}

/// Digest of everything a deployment depends on; equal digests mean nothing to do.
fn fingerprint(
    revision: &Revision,
    variables: &BTreeMap<String, String>,
    tag: Option<&str>,
    app: &GitOpsApplication,
) -> String {
    let input = serde_json::json!({"revision": revision.sha, "variables": variables, "tag": tag, "spec": app.spec});
    let digest = Sha256::digest(input.to_string().as_bytes());
    hex::encode(digest)
}

/// Digest of what says where the revision comes from and who reads it (`lastAppliedSource`).
pub(super) fn source_digest(app: &GitOpsApplication) -> String {
    let source = &app.spec.source;
    let secret = source.secret_ref.as_ref().map(|s| s.name.as_str());
    let input = serde_json::json!({"url": source.repo_url, "ref": source.reference, "secret": secret});
    hex::encode(Sha256::digest(input.to_string().as_bytes()))
}

fn last_finished(status: &GitOpsApplicationStatus) -> Option<Time> {
    status.deployments.iter().rev().find_map(|d| d.finished_at.clone())
}

fn elapsed_since(at: &Time) -> Duration {
    let seconds = jiff::Timestamp::now().duration_since(at.0).as_secs_f64().max(0.0);
    Duration::from_secs_f64(seconds)
}
