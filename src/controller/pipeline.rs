//! One reconcile of an application, as a named pipeline: check → source → render → plan → deploy → status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::claim::{self, Claim};
use super::{Context, Error, FINALIZER, RECONCILE_REQUESTED_ANNOTATION, credentials, events, notify, status};
use crate::api::{DeploymentRecord, DeploymentResult, GitOpsApplication, GitOpsApplicationStatus, UpdateMechanism};
use crate::conditions::{self, DEFERRED, HEALTHY, READY, RECONCILING, STALLED, reasons};
use crate::deploy::plan::{self, Owner};
use crate::deploy::{DeployRequest, RestartSelection};
use crate::render;
use crate::source::{GitReference, Revision, SourceSpec};
use crate::window::Windows;

/// How many deployments `status.deployments` keeps.
const KEEP_DEPLOYMENTS: usize = 10;
/// Retry delay for failures that may go away by themselves (network, API server).
const TRANSIENT_RETRY: Duration = Duration::from_secs(15);

#[tracing::instrument(skip_all, fields(application = %app.name_any(), namespace = app.namespace().unwrap_or_default()))]
pub async fn reconcile(app: Arc<GitOpsApplication>, context: Arc<Context>) -> Result<Action, Error> {
    // A work slot (`--concurrency`); a deployment hands it back while it waits for its rollout.
    // The semaphore is never closed, so `None` cannot happen in practice; it would only mean
    // working without a slot.
    let work_slot = context.work_slots.clone().acquire_owned().await.ok();
    let started = std::time::Instant::now();
    let _in_flight = crate::metrics::global().reconcile_started();
    let namespace = app.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<GitOpsApplication> = Api::namespaced(context.client.clone(), &namespace);
    let (api_ref, context_ref) = (&api, &context);
    let result = finalizer(&api, FINALIZER, app, move |event| async move {
        match event {
            Finalizer::Apply(app) => apply(&app, api_ref, context_ref, work_slot).await,
            Finalizer::Cleanup(app) => cleanup(&app, context_ref).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    crate::metrics::global().reconcile_finished(result.is_ok(), started.elapsed());
    tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, ok = result.is_ok(), "reconcile finished");
    result
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// The running status of one reconcile, written once at the end of each path.
struct Run<'a> {
    app: &'a GitOpsApplication,
    api: &'a Api<GitOpsApplication>,
    status: GitOpsApplicationStatus,
    generation: Option<i64>,
}

impl Run<'_> {
    fn condition(&mut self, type_: &str, ok: bool, reason: &str, message: impl Into<String>) {
        conditions::set(&mut self.status.conditions, type_, ok, reason, message, self.generation, &now());
    }

    /// Ready=False with `reason`; Reconciling cleared.
    async fn fail(mut self, reason: &str, message: String, retry: Duration) -> Result<Action, Error> {
        tracing::info!(application = %self.app.name_any(), reason, %message, "not ready");
        self.condition(READY, false, reason, message);
        conditions::clear(&mut self.status.conditions, RECONCILING);
        status::write(self.api, self.app, &self.status).await?;
        Ok(Action::requeue(retry))
    }
}

async fn apply(
    app: &GitOpsApplication,
    api: &Api<GitOpsApplication>,
    context: &Context,
    work_slot: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<Action, Error> {
    let namespace = app.namespace().ok_or(Error::NoNamespace)?;
    let spec = &app.spec;
    let mut run = Run { app, api, status: app.status.clone().unwrap_or_default(), generation: app.metadata.generation };
    if app.status.as_ref().and_then(|s| s.observed_generation).is_none() {
        notify::created(context, app).await;
    }
    run.status.observed_generation = run.generation;

    // Check: a spec that can never work stalls until it changes (no hot loop).
    let (interval, windows) = match check_spec(app, context) {
        Ok(checked) => checked,
        Err(message) => {
            run.condition(STALLED, true, reasons::INVALID_SPEC, message.clone());
            run.fail(reasons::INVALID_SPEC, message, Duration::ZERO).await?;
            return Ok(Action::await_change());
        }
    };
    conditions::clear(&mut run.status.conditions, STALLED);
    if spec.suspend {
        run.condition(READY, false, reasons::SUSPENDED, "Deployments are suspended (spec.suspend is true)");
        status::write(api, app, &run.status).await?;
        return Ok(Action::await_change());
    }

    // Source: ask the remote only when something asks for it; otherwise reuse the cache.
    let credentials = match &spec.source.secret_ref {
        Some(secret) => match credentials::load(&context.client, &namespace, &secret.name).await {
            Ok(credentials) => Some(credentials),
            Err(error) => {
                return run
                    .fail(reasons::SECRET_NOT_FOUND, error.to_string(), interval.min(Duration::from_secs(60)))
                    .await;
            }
        },
        None => None,
    };
    let source = source_spec(app, credentials);
    let requested = app.annotations().get(RECONCILE_REQUESTED_ANNOTATION).cloned();
    let trigger = crate::trigger::record::pending(app);
    let request_pending =
        (requested.is_some() && requested != run.status.last_handled_reconcile_at) || trigger.is_some();
    let spec_changed = app.status.as_ref().and_then(|s| s.observed_generation) != run.generation;
    let ask_remote = spec.updates.mechanism == UpdateMechanism::Polling
        || request_pending
        || spec_changed
        || run.status.last_applied_revision.is_none();
    let cached = if ask_remote { None } else { context.git.cached_revision(&source).await };
    let revision = match cached {
        Some(revision) => revision,
        None => match context.git.resolve(&source).instrument(tracing::info_span!("fetch", url = %source.url)).await {
            Ok(revision) => revision,
            Err(error) => {
                let retry = if error.is_transient() { TRANSIENT_RETRY } else { interval.min(Duration::from_secs(60)) };
                return run.fail(error.reason(), error.to_string(), retry).await;
            }
        },
    };
    run.status.last_handled_reconcile_at = requested;
    // The call's variables and tag persist once it runs, so later polls and drift corrections keep them.
    let mut overrides = run.status.variables.clone();
    let mut image_tag = run.status.image_tag.clone();
    if let Some(trigger) = &trigger {
        overrides.extend(trigger.variables.clone());
        image_tag = trigger.tag.clone().or(image_tag);
    }

    // Skip everything when revision, variables and spec are unchanged and no drift check is due.
    let variables = merged_variables(&spec.variables, &overrides);
    let fingerprint = fingerprint(&revision, &variables, image_tag.as_deref(), app);
    let drift_due = last_finished(&run.status).is_none_or(|at| elapsed_since(&at) >= interval);
    if run.status.last_applied_fingerprint.as_deref() == Some(fingerprint.as_str()) && !request_pending && !drift_due {
        if app.status.as_ref() != Some(&run.status) {
            status::write(api, app, &run.status).await?;
        }
        tracing::debug!(revision = %revision.name, "nothing changed: no fetch, no apply");
        return Ok(Action::requeue(interval));
    }

    // Change windows: what a closed window gates is held back (the trigger stays recorded).
    let restarts = trigger.as_ref().is_some_and(|t| !t.rollout_restart.is_empty());
    let forced = trigger.as_ref().is_some_and(|t| t.override_window);
    if let Some(next_open) = crate::window::held_until(&windows, jiff::Timestamp::now(), restarts, forced) {
        return defer(run, context, trigger, next_open).await;
    }
    // Claim the trigger on a fresh read (see `claim`): the calls in it are carried out once.
    let (trigger, overrides, image_tag) = match trigger {
        None => (None, overrides, image_tag),
        Some(_) => {
            let held = |t: &crate::api::TriggerRecord| {
                let restarts = !t.rollout_restart.is_empty();
                crate::window::held_until(&windows, jiff::Timestamp::now(), restarts, t.override_window)
            };
            match claim::claim(api, app, held).await? {
                Claim::Claimed(trigger, claimed) => (Some(trigger), claimed.variables, claimed.image_tag),
                Claim::Held(trigger, next_open) => return defer(run, context, Some(trigger), next_open).await,
                Claim::Nothing => (None, overrides, image_tag),
                Claim::Busy => return Ok(Action::requeue(Duration::from_millis(200))),
            }
        }
    };
    let variables = merged_variables(&spec.variables, &overrides);
    let fingerprint = self::fingerprint(&revision, &variables, image_tag.as_deref(), app);
    conditions::clear(&mut run.status.conditions, DEFERRED);
    run.status.pending_trigger = None;
    run.status.variables = overrides;
    run.status.image_tag = image_tag;
    if trigger.is_some() {
        run.status.last_trigger = trigger.clone();
    }
    if let Err(error) =
        context.git.ensure(&source, &revision).instrument(tracing::info_span!("fetch", revision = %revision.name)).await
    {
        let retry = if error.is_transient() { TRANSIENT_RETRY } else { interval };
        return run.fail(error.reason(), error.to_string(), retry).await;
    }

    // Render and plan (pure): a bad manifest fails here and applies nothing.
    run.status.last_attempted_revision = Some(revision.name.clone());
    let path = spec.source.path.as_deref().unwrap_or("");
    let files = match context.git.read_files(&source, &revision, path).await {
        Ok(files) => with_repository_paths(path, files),
        Err(error) => return run.fail(error.reason(), error.to_string(), interval).await,
    };
    let owner = Owner { namespace: namespace.clone(), name: app.name_any() };
    let render_span = tracing::info_span!("render", revision = %revision.name, files = files.len());
    let rendered =
        match render_span.in_scope(|| render_with_overrides(&files, &variables, &run.status, spec.strict_variables)) {
            Ok((rendered, variable_names)) => {
                run.status.variable_names = variable_names;
                rendered
            }
            Err(error) => {
                let message = format!("revision {}: {error}", revision.name);
                events::publish(context, app, true, reasons::RENDER_FAILED, message.clone()).await;
                return run.fail(reasons::RENDER_FAILED, message, interval).await;
            }
        };
    let planned = match plan::plan(&rendered.objects, &owner) {
        Ok(planned) => planned,
        Err(error) => {
            return run.fail(reasons::PLAN_FAILED, format!("revision {}: {error}", revision.name), interval).await;
        }
    };

    // Deploy. A deployment a previous process started and never finished (SIGKILL, lost
    // lease) is resumed under its own id, so one deployment is recorded once.
    let resumed = interrupted(&run.status, &revision.name, trigger.as_ref());
    let restart_trigger = trigger.clone().or_else(|| {
        let resumed = resumed.as_ref()?;
        run.status.last_trigger.clone().filter(|t| resumed.trigger_id.as_deref() == Some(t.id.as_str()))
    });
    let deploy_id = match &resumed {
        Some(record) => record.id.clone(),
        None => format!("{}-{}", revision.sha.get(..8).unwrap_or(&revision.sha), jiff::Timestamp::now().as_second()),
    };
    if resumed.is_none() {
        abandon_unfinished(&mut run.status);
        push_deployment(
            &mut run.status,
            DeploymentRecord {
                id: deploy_id.clone(),
                revision: revision.name.clone(),
                trigger_id: trigger.as_ref().map(|t| t.id.clone()),
                started_at: now(),
                finished_at: None,
                result: DeploymentResult::Running,
                message: None,
                restarted: Vec::new(),
            },
        );
    }
    let previous_revision = run.status.last_applied_revision.clone();
    let mut hook_event =
        notify::deployment(app, &deploy_id, &revision.name, previous_revision, restart_trigger.as_ref(), &variables);
    run.condition(RECONCILING, true, reasons::DEPLOYING, format!("Deploying revision {}", revision.name));
    status::write(api, app, &run.status).await?;
    let (event, verb) =
        if resumed.is_some() { ("DeploymentResumed", "Resuming") } else { ("DeploymentStarted", "Deploying") };
    events::publish_in_background(context, app, event, format!("{verb} revision {} ({deploy_id})", revision.name));

    let health_timeout = spec.health_timeout.parse().unwrap_or(Duration::from_secs(300));
    let default_namespace = spec.target_namespace.clone().unwrap_or_else(|| namespace.clone());
    let request = DeployRequest {
        owner: &owner,
        default_namespace: &default_namespace,
        service_account: spec.service_account_name.as_deref(),
        objects: planned,
        previous_inventory: &run.status.inventory.clone(),
        prune: spec.prune,
        restart: restart_trigger
            .as_ref()
            .map_or(RestartSelection::None, |t| RestartSelection::from_entries(&t.rollout_restart)),
        health_timeout,
        work_slot,
    };
    // BeforeDeployment gates decide whether anything is applied at all.
    let gate = notify::started(context, app, hook_event.clone()).await;
    let result = match &gate {
        Ok(()) => Some(
            context.deployer.deploy(request).instrument(tracing::info_span!("apply", deploy_id = %deploy_id)).await,
        ),
        Err(_) => None,
    };
    conditions::clear(&mut run.status.conditions, RECONCILING);
    let finished = now();
    let (ok, reason, message, retry) = match result {
        None => {
            let why = gate.err().unwrap_or_default();
            (false, reasons::GATE_FAILED, format!("revision {}: {why}; nothing was applied", revision.name), interval)
        }
        Some(Ok(outcome)) => {
            run.status.inventory = outcome.inventory;
            run.status.last_applied_revision = Some(revision.name.clone());
            run.status.last_applied_fingerprint = Some(fingerprint);
            let mut summary = format!("Applied revision {}", revision.name);
            if !outcome.pruned.is_empty() {
                summary.push_str(&format!("; pruned {}", outcome.pruned.join(", ")));
            }
            if !outcome.paused.is_empty() {
                summary.push_str(&format!("; paused, so not restarted: {}", outcome.paused.join(", ")));
            }
            if let Some(deployment) = run.status.deployments.last_mut() {
                deployment.restarted = outcome.restarted;
            }
            match outcome.unhealthy {
                None => {
                    run.condition(HEALTHY, true, reasons::HEALTHY, "Every changed workload rolled out");
                    hook_event.restarted =
                        run.status.deployments.last().map(|d| d.restarted.clone()).unwrap_or_default();
                    match notify::after_gates(context, app, hook_event.clone()).await {
                        Ok(()) => (true, reasons::SUCCEEDED, summary, interval),
                        Err(why) => (false, reasons::GATE_FAILED, format!("{summary}, but {why}"), interval),
                    }
                }
                Some(why) => {
                    run.condition(HEALTHY, false, reasons::HEALTH_CHECK_FAILED, why.clone());
                    (false, reasons::HEALTH_CHECK_FAILED, format!("{summary}, but {why}"), interval)
                }
            }
        }
        Some(Err(error)) => {
            let retry = if error.is_transient() { TRANSIENT_RETRY } else { interval };
            (false, error.reason(), format!("revision {}: {error}", revision.name), retry)
        }
    };
    crate::metrics::global().deployment_finished(ok);
    if let Some(deployment) = run.status.deployments.last_mut() {
        deployment.finished_at = Some(finished);
        deployment.result = if ok { DeploymentResult::Succeeded } else { DeploymentResult::Failed };
        deployment.message = Some(message.clone());
    }
    run.condition(READY, ok, reason, message.clone());
    status::write(api, app, &run.status).await?;
    let event_reason = if ok { "DeploymentSucceeded" } else { "DeploymentFailed" };
    events::publish(context, app, !ok, event_reason, message.clone()).await;
    notify::finished(context, app, hook_event, ok, &message).await;
    Ok(Action::requeue(retry))
}

/// Deletion: with `prune: true`, delete every object the application created.
async fn cleanup(app: &GitOpsApplication, context: &Context) -> Result<Action, Error> {
    notify::deleted(context, app).await;
    if !app.spec.prune {
        return Ok(Action::await_change());
    }
    let namespace = app.namespace().ok_or(Error::NoNamespace)?;
    let owner = Owner { namespace, name: app.name_any() };
    let inventory = app.status.as_ref().map(|s| s.inventory.clone()).unwrap_or_default();
    match context.deployer.delete_all(&owner, app.spec.service_account_name.as_deref(), &inventory).await {
        Ok(deleted) => {
            tracing::info!(application = %owner.name, ?deleted, "deleted the application's objects");
            Ok(Action::await_change())
        }
        Err(error) => {
            events::publish(context, app, true, "CleanupFailed", error.to_string()).await;
            Err(error.into())
        }
    }
}

/// Holds the deployment back: Deferred with the next window start, the trigger kept pending.
async fn defer(
    mut run: Run<'_>,
    context: &Context,
    trigger: Option<crate::api::TriggerRecord>,
    next_open: Option<jiff::Timestamp>,
) -> Result<Action, Error> {
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
    run.condition(DEFERRED, true, reasons::DEFERRED, message.clone());
    status::write(run.api, run.app, &run.status).await?;
    if newly {
        events::publish(context, run.app, false, "DeploymentDeferred", message).await;
    }
    let wait = next_open
        .map(|t| jiff::Timestamp::now().duration_until(t).as_secs_f64().max(0.0))
        .map_or(Duration::from_secs(3600), |s| Duration::from_secs_f64(s) + Duration::from_millis(200));
    Ok(Action::requeue(wait))
}

/// Checks what the API server cannot: operator flags and parse-ability. Returns the interval
/// and the compiled change windows.
fn check_spec(app: &GitOpsApplication, context: &Context) -> Result<(Duration, Windows), String> {
    let spec = &app.spec;
    if spec.source.repo_url.starts_with("file://") && !context.settings.allow_file_sources {
        return Err(
            "spec.source.repoURL: file:// repositories are disabled (start the operator with --allow-file-sources)"
                .into(),
        );
    }
    if let Some(range) = &spec.source.reference.semver {
        semver::VersionReq::parse(range)
            .map_err(|e| format!("spec.source.ref.semver: {range:?} is not a semver range: {e}"))?;
    }
    spec.health_timeout.parse().map_err(|e| format!("spec.healthTimeout: {e}"))?;
    let windows = crate::window::for_application(&spec.change_windows, &context.settings.default_windows)
        .map_err(|e| format!("spec.{e}"))?;
    let interval = spec.updates.interval.parse().map_err(|e| format!("spec.updates.interval: {e}"))?;
    Ok((interval, windows))
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

/// Names files by their path in the repository, so messages point where users look.
fn with_repository_paths(path: &str, mut files: Vec<render::ManifestFile>) -> Vec<render::ManifestFile> {
    let base = path.trim_matches('/');
    if base.is_empty() || base == "." {
        return files;
    }
    for file in &mut files {
        let single_file = base == file.path || base.ends_with(&format!("/{}", file.path));
        file.path = if single_file { base.to_owned() } else { format!("{base}/{}", file.path) };
    }
    files
}

/// Webhook overrides (status) win over the spec's defaults.
fn merged_variables(
    defaults: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut variables = defaults.clone();
    variables.extend(overrides.clone());
    variables
}

/// Renders, then applies webhook env overrides and the image tag to workload templates.
/// Also returns the variable names a call may set (placeholders and workload env vars).
fn render_with_overrides(
    files: &[render::ManifestFile],
    variables: &BTreeMap<String, String>,
    status: &GitOpsApplicationStatus,
    strict: bool,
) -> Result<(render::Rendered, Vec<String>), render::RenderError> {
    let mut rendered = render::render(files, variables, strict)?;
    let mut names = render::placeholders(files)?;
    names.extend(render::env_var_names(rendered.values()));
    render::apply_env_overrides(rendered.values_mut(), &status.variables);
    if let Some(tag) = &status.image_tag {
        render::apply_image_tag(rendered.values_mut(), tag)?;
    }
    Ok((rendered, names.into_iter().collect()))
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

fn last_finished(status: &GitOpsApplicationStatus) -> Option<Time> {
    status.deployments.iter().rev().find_map(|d| d.finished_at.clone())
}

fn elapsed_since(at: &Time) -> Duration {
    let seconds = jiff::Timestamp::now().duration_since(at.0).as_secs_f64().max(0.0);
    Duration::from_secs_f64(seconds)
}

/// The last deployment, if a previous process started it for this revision and trigger and
/// never finished it. kube-runtime never reconciles one object twice at once, so a `Running`
/// record seen at this point belongs to a process that is gone.
fn interrupted(
    status: &GitOpsApplicationStatus,
    revision: &str,
    trigger: Option<&crate::api::TriggerRecord>,
) -> Option<DeploymentRecord> {
    let last = status.deployments.last()?;
    let same_trigger = trigger.is_none_or(|t| last.trigger_id.as_deref() == Some(t.id.as_str()));
    (last.result == DeploymentResult::Running
        && last.finished_at.is_none()
        && last.revision == revision
        && same_trigger)
        .then(|| last.clone())
}

/// Unfinished deployments that will not be resumed (the revision or trigger moved on) are
/// recorded as failed rather than left `Running` for ever.
fn abandon_unfinished(status: &mut GitOpsApplicationStatus) {
    for record in status.deployments.iter_mut().filter(|d| d.result == DeploymentResult::Running) {
        record.result = DeploymentResult::Failed;
        record.finished_at = Some(now());
        record.message = Some("interrupted: the operator stopped before it finished; superseded".to_owned());
    }
}

fn push_deployment(status: &mut GitOpsApplicationStatus, record: DeploymentRecord) {
    status.deployments.push(record);
    let excess = status.deployments.len().saturating_sub(KEEP_DEPLOYMENTS);
    status.deployments.drain(..excess);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, revision: &str, trigger: Option<&str>, result: DeploymentResult) -> DeploymentRecord {
        DeploymentRecord {
            id: id.into(),
            revision: revision.into(),
            trigger_id: trigger.map(str::to_owned),
            started_at: now(),
            finished_at: (result != DeploymentResult::Running).then(now),
            result,
            message: None,
            restarted: vec![],
        }
    }

    fn trigger(id: &str) -> crate::api::TriggerRecord {
        serde_json::from_value(
            serde_json::json!({"id": id, "sequence": 1, "at": "2026-01-01T00:00:00Z", "source": "t"}),
        )
        .expect("trigger")
    }

    #[test]
    fn an_unfinished_deployment_of_the_same_revision_and_trigger_is_resumed() {
        let mut status = GitOpsApplicationStatus::default();
        status.deployments.push(record("d1", "main@sha1:a", Some("t1"), DeploymentResult::Running));
        assert_eq!(interrupted(&status, "main@sha1:a", None).map(|d| d.id), Some("d1".into()));
        assert_eq!(interrupted(&status, "main@sha1:a", Some(&trigger("t1"))).map(|d| d.id), Some("d1".into()));
        assert!(interrupted(&status, "main@sha1:b", None).is_none(), "a newer revision starts afresh");
        assert!(interrupted(&status, "main@sha1:a", Some(&trigger("t2"))).is_none(), "a newer call starts afresh");
        abandon_unfinished(&mut status);
        assert_eq!(status.deployments[0].result, DeploymentResult::Failed);
        assert!(status.deployments[0].finished_at.is_some());
    }

    #[test]
    fn a_finished_deployment_is_never_resumed() {
        let mut status = GitOpsApplicationStatus::default();
        status.deployments.push(record("d1", "main@sha1:a", None, DeploymentResult::Succeeded));
        assert!(interrupted(&status, "main@sha1:a", None).is_none());
    }
}
