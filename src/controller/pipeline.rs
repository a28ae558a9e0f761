//! One reconcile of an application, as a named pipeline of phases, each a function with a
//! typed output: check → source and trigger → render and plan → start → gates and deploy →
//! finish. The decisions are pure (`decide`); the phases do the I/O and write the status.

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
use super::decide::{self, Asked, Carried, Conclusion, Freshness, TRANSIENT_RETRY, Validated};
use super::{Context, Error, FINALIZER, RECONCILE_REQUESTED_ANNOTATION, credentials, events, notify, status};
use crate::api::{DeploymentRecord, DeploymentResult, GitOpsApplication, GitOpsApplicationStatus, UpdateMechanism};
use crate::conditions::{self, DEFERRED, HEALTHY, READY, RECONCILING, STALLED, reasons};
use crate::deploy::plan::{self, Owner};
use crate::deploy::{DeployRequest, RestartSelection};
use crate::render;
use crate::source::{GitReference, Revision, SourceSpec};

/// How many deployments `status.deployments` keeps.
const KEEP_DEPLOYMENTS: usize = 10;

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

/// How a reconcile ends before a deployment finishes: the action to return, once the status
/// saying why has been written.
type Exit = Result<Action, Error>;
/// What a phase gives the next one, or the reconcile's early end.
type Phase<T> = Result<T, Exit>;

impl Run<'_> {
    fn condition(&mut self, type_: &str, ok: bool, reason: &str, message: impl Into<String>) {
        conditions::set(&mut self.status.conditions, type_, ok, reason, message, self.generation, &now());
    }

    async fn write(&self) -> Result<(), Error> {
        status::write(self.api, self.app, &self.status).await
    }

    /// Ready=False with `reason`; Reconciling cleared.
    async fn fail(&mut self, reason: &str, message: String, retry: Duration) -> Exit {
        tracing::info!(application = %self.app.name_any(), reason, %message, "not ready");
        self.condition(READY, false, reason, message);
        conditions::clear(&mut self.status.conditions, RECONCILING);
        self.write().await?;
        Ok(Action::requeue(retry))
    }
}

/// The revision to deploy and what it is deployed with, once the trigger (if any) is claimed.
struct Work {
    source: SourceSpec,
    revision: Revision,
    trigger: Option<crate::api::TriggerRecord>,
    variables: BTreeMap<String, String>,
    fingerprint: String,
}

/// A deployment that has been recorded as started.
struct Started {
    id: String,
    resumed: bool,
    /// The trigger whose restarts and variables this deployment carries out.
    trigger: Option<crate::api::TriggerRecord>,
    event: crate::api::EventData,
}

async fn apply(
    app: &GitOpsApplication,
    api: &Api<GitOpsApplication>,
    context: &Context,
    work_slot: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<Action, Error> {
    let mut run = Run { app, api, status: app.status.clone().unwrap_or_default(), generation: app.metadata.generation };
    if app.status.as_ref().and_then(|s| s.observed_generation).is_none() {
        notify::created(context, app).await;
    }
    run.status.observed_generation = run.generation;
    match phases(&mut run, context, work_slot).await {
        Ok(action) | Err(Ok(action)) => Ok(action),
        Err(Err(error)) => Err(error),
    }
}

/// check → source → trigger → render and plan → start → gates and deploy → finish.
async fn phases(
    run: &mut Run<'_>,
    context: &Context,
    work_slot: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Phase<Action> {
    let checked = check(run, context).await?;
    let work = source_and_trigger(run, context, &checked).await?;
    let planned = render_and_plan(run, context, &work, &checked).await?;
    let started = start(run, context, &work).await.map_err(Err)?;
    let (carried, finished_at) = carry_out(run, context, &checked, &started, planned, work_slot).await;
    finish(run, context, &work, started, carried, finished_at, checked.interval).await.map_err(Err)
}

/// A spec that can never work stalls until it changes (no hot loop); a suspended one waits.
async fn check(run: &mut Run<'_>, context: &Context) -> Phase<Validated> {
    let limits = decide::Limits {
        allow_file_sources: context.settings.allow_file_sources,
        default_windows: &context.settings.default_windows,
    };
    let checked = match decide::validate(&run.app.spec, &limits) {
        Ok(checked) => checked,
        Err(message) => {
            run.condition(STALLED, true, reasons::INVALID_SPEC, message.clone());
            run.fail(reasons::INVALID_SPEC, message, Duration::ZERO).await.map_err(Err)?;
            return Err(Ok(Action::await_change()));
        }
    };
    conditions::clear(&mut run.status.conditions, STALLED);
    if run.app.spec.suspend {
        run.condition(READY, false, reasons::SUSPENDED, "Deployments are suspended (spec.suspend is true)");
        run.write().await.map_err(Err)?;
        return Err(Ok(Action::await_change()));
    }
    Ok(checked)
}

/// The revision (asking the remote only when something asks for it), then the recorded
/// trigger, claimed once and held back while a change window is closed.
async fn source_and_trigger(run: &mut Run<'_>, context: &Context, checked: &Validated) -> Phase<Work> {
    let app = run.app;
    let interval = checked.interval;
    let source = source_spec(app, load_credentials(run, context, interval).await?);
    let requested = app.annotations().get(RECONCILE_REQUESTED_ANNOTATION).cloned();
    let trigger = crate::trigger::record::pending(app);
    let asked = Asked {
        request_pending: crate::trigger::record::work_pending(app),
        spec_changed: app.status.as_ref().and_then(|s| s.observed_generation) != run.generation,
        polling: app.spec.updates.mechanism == UpdateMechanism::Polling,
        never_applied: run.status.last_applied_revision.is_none(),
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
    let (trigger, overrides, image_tag) = claim_trigger(run, context, checked, trigger, overrides, image_tag).await?;
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
        let retry = if error.is_transient() { TRANSIENT_RETRY } else { interval };
        return Err(run.fail(error.reason(), error.to_string(), retry).await);
    }
    Ok(Work { source, revision, trigger, variables, fingerprint })
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
            Err(run.fail(reasons::SECRET_NOT_FOUND, error.to_string(), retry).await)
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
    match context.git.resolve(source).instrument(tracing::info_span!("fetch", url = %source.url)).await {
        Ok(revision) => Ok(revision),
        Err(error) => {
            let retry = if error.is_transient() { TRANSIENT_RETRY } else { interval.min(Duration::from_secs(60)) };
            Err(run.fail(error.reason(), error.to_string(), retry).await)
        }
    }
}

type Overrides = (Option<crate::api::TriggerRecord>, BTreeMap<String, String>, Option<String>);

/// Change windows hold back what they gate (the trigger stays recorded); otherwise the trigger
/// is claimed on a fresh read (see `claim`), so the calls in it are carried out once.
async fn claim_trigger(
    run: &mut Run<'_>,
    context: &Context,
    checked: &Validated,
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
    match claim::claim(run.api, run.app, held).await.map_err(Err)? {
        Claim::Claimed(trigger, claimed) => Ok((Some(trigger), claimed.variables, claimed.image_tag)),
        Claim::Held(trigger, next_open) => Err(defer(run, context, Some(trigger), next_open).await),
        Claim::Nothing => Ok((None, overrides, image_tag)),
        Claim::Busy => Err(Ok(Action::requeue(Duration::from_millis(200)))),
    }
}

/// Render and plan (pure): a bad manifest fails here and applies nothing.
async fn render_and_plan(
    run: &mut Run<'_>,
    context: &Context,
    work: &Work,
    checked: &Validated,
) -> Phase<Vec<plan::PlannedObject>> {
    let (app, revision, interval) = (run.app, &work.revision, checked.interval);
    run.status.last_attempted_revision = Some(revision.name.clone());
    let path = app.spec.source.path.as_deref().unwrap_or("");
    let files = match context.git.read_files(&work.source, revision, path).await {
        Ok(files) => with_repository_paths(path, files),
        Err(error) => return Err(run.fail(error.reason(), error.to_string(), interval).await),
    };
    let render_span = tracing::info_span!("render", revision = %revision.name, files = files.len());
    let strict = app.spec.strict_variables;
    let rendered = match render_span.in_scope(|| render_with_overrides(&files, &work.variables, &run.status, strict)) {
        Ok((rendered, variable_names)) => {
            run.status.variable_names = variable_names;
            rendered
        }
        Err(error) => {
            let message = format!("revision {}: {error}", revision.name);
            events::publish(context, app, true, reasons::RENDER_FAILED, message.clone()).await;
            return Err(run.fail(reasons::RENDER_FAILED, message, interval).await);
        }
    };
    match plan::plan(&rendered.objects, &owner(app).map_err(Err)?) {
        Ok(planned) => Ok(planned),
        Err(error) => {
            let message = format!("revision {}: {error}", revision.name);
            Err(run.fail(reasons::PLAN_FAILED, message, interval).await)
        }
    }
}

fn owner(app: &GitOpsApplication) -> Result<Owner, Error> {
    Ok(Owner { namespace: app.namespace().ok_or(Error::NoNamespace)?, name: app.name_any() })
}

/// Records the deployment as started (status, Event). One a previous process started and
/// never finished (SIGKILL, lost lease) is resumed under its own id, so it is recorded once.
async fn start(run: &mut Run<'_>, context: &Context, work: &Work) -> Result<Started, Error> {
    let (app, revision) = (run.app, &work.revision);
    let resumed = interrupted(&run.status, &revision.name, work.trigger.as_ref());
    let trigger = work.trigger.clone().or_else(|| {
        let resumed = resumed.as_ref()?;
        run.status.last_trigger.clone().filter(|t| resumed.trigger_id.as_deref() == Some(t.id.as_str()))
    });
    let id = match &resumed {
        Some(record) => record.id.clone(),
        None => format!("{}-{}", revision.sha.get(..8).unwrap_or(&revision.sha), jiff::Timestamp::now().as_second()),
    };
    if resumed.is_none() {
        abandon_unfinished(&mut run.status);
        let record = DeploymentRecord {
            id: id.clone(),
            revision: revision.name.clone(),
            trigger_id: work.trigger.as_ref().map(|t| t.id.clone()),
            started_at: now(),
            finished_at: None,
            result: DeploymentResult::Running,
            message: None,
            restarted: Vec::new(),
        };
        push_deployment(&mut run.status, record);
    }
    let previous = run.status.last_applied_revision.clone();
    let event = notify::deployment(app, &id, &revision.name, previous, trigger.as_ref(), &work.variables);
    run.condition(RECONCILING, true, reasons::DEPLOYING, format!("Deploying revision {}", revision.name));
    run.write().await?;
    let (reason, verb) =
        if resumed.is_some() { ("DeploymentResumed", "Resuming") } else { ("DeploymentStarted", "Deploying") };
    events::publish_in_background(context, app, reason, format!("{verb} revision {} ({id})", revision.name));
    Ok(Started { id, resumed: resumed.is_some(), trigger, event })
}

/// BeforeDeployment gates decide whether anything is applied at all; then the deploy layer
/// applies, restarts, prunes and waits for health; then the AfterDeployment gates. Also
/// returns when the deployment itself ended (before the AfterDeployment gates).
async fn carry_out(
    run: &Run<'_>,
    context: &Context,
    checked: &Validated,
    started: &Started,
    objects: Vec<plan::PlannedObject>,
    work_slot: Option<tokio::sync::OwnedSemaphorePermit>,
) -> (Carried, Time) {
    let app = run.app;
    // A gate may wait on another system for as long as its timeout: it waits without a work
    // slot, so slow gates never stop other applications' deployments.
    let gated = context.outgoing.has_gate(app, crate::api::HookGate::BeforeDeployment);
    let work_slot = if gated {
        drop(work_slot);
        None
    } else {
        work_slot
    };
    if let Err(why) = notify::started(context, app, started.event.clone()).await {
        return (Carried::GateRefused(why), now());
    }
    let work_slot = match work_slot {
        Some(slot) => Some(slot),
        None => context.work_slots.clone().acquire_owned().await.ok(),
    };
    let Ok(owner) = owner(app) else {
        return (Carried::GateRefused("the application has no namespace".into()), now());
    };
    let default_namespace = app.spec.target_namespace.clone().unwrap_or_else(|| owner.namespace.clone());
    let request = DeployRequest {
        owner: &owner,
        default_namespace: &default_namespace,
        service_account: app.spec.service_account_name.as_deref(),
        objects,
        previous_inventory: &run.status.inventory,
        prune: app.spec.prune,
        restart: started
            .trigger
            .as_ref()
            .map_or(RestartSelection::None, |t| RestartSelection::from_entries(&t.rollout_restart)),
        health_timeout: checked.health_timeout,
        work_slot,
    };
    let deployed = context.deployer.deploy(request).instrument(tracing::info_span!("apply", deploy_id = %started.id));
    let deployed = deployed.await;
    let finished_at = now();
    let carried = match deployed {
        Err(error) => Carried::Failed(error),
        Ok(outcome) => {
            let after_gates = match outcome.unhealthy {
                Some(_) => None,
                None => {
                    let mut event = started.event.clone();
                    event.restarted = outcome.restarted.clone();
                    Some(notify::after_gates(context, app, event).await)
                }
            };
            Carried::Applied { outcome, after_gates }
        }
    };
    (carried, finished_at)
}

/// Reports how the deployment ended: status (one write), Event, metrics, outgoing event.
async fn finish(
    run: &mut Run<'_>,
    context: &Context,
    work: &Work,
    started: Started,
    carried: Carried,
    finished_at: Time,
    interval: Duration,
) -> Result<Action, Error> {
    let (app, revision) = (run.app, &work.revision);
    let conclusion = decide::conclude(&revision.name, &carried, interval);
    conditions::clear(&mut run.status.conditions, RECONCILING);
    if let Carried::Applied { outcome, .. } = carried {
        run.status.inventory = outcome.inventory;
        run.status.last_applied_revision = Some(revision.name.clone());
        run.status.last_applied_fingerprint = Some(work.fingerprint.clone());
        if let Some(deployment) = run.status.deployments.last_mut() {
            deployment.restarted = outcome.restarted;
        }
    }
    if let Some((healthy, reason, message)) = &conclusion.healthy {
        run.condition(HEALTHY, *healthy, reason, message.clone());
    }
    let rolled_out = conclusion.healthy.as_ref().is_some_and(|(healthy, _, _)| *healthy);
    let Conclusion { ok, reason, message, retry, .. } = conclusion;
    crate::metrics::global().deployment_finished(ok);
    if let Some(deployment) = run.status.deployments.last_mut() {
        deployment.finished_at = Some(finished_at);
        deployment.result = if ok { DeploymentResult::Succeeded } else { DeploymentResult::Failed };
        deployment.message = Some(message.clone());
    }
    run.condition(READY, ok, reason, message.clone());
    run.write().await?;
    tracing::debug!(deploy_id = %started.id, resumed = started.resumed, ok, "deployment finished");
    let event_reason = if ok { "DeploymentSucceeded" } else { "DeploymentFailed" };
    events::publish(context, app, !ok, event_reason, message.clone()).await;
    let mut event = started.event;
    if rolled_out {
        event.restarted = run.status.deployments.last().map(|d| d.restarted.clone()).unwrap_or_default();
    }
    notify::finished(context, app, event, ok, &message).await;
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
    run: &mut Run<'_>,
    context: &Context,
    trigger: Option<crate::api::TriggerRecord>,
    next_open: Option<jiff::Timestamp>,
) -> Exit {
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
    run.write().await?;
    if newly {
        events::publish(context, run.app, false, "DeploymentDeferred", message).await;
    }
    let wait = next_open
        .map(|t| jiff::Timestamp::now().duration_until(t).as_secs_f64().max(0.0))
        .map_or(Duration::from_secs(3600), |s| Duration::from_secs_f64(s) + Duration::from_millis(200));
    Ok(Action::requeue(wait))
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
