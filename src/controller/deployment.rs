//! A deployment's phases, each persisted in its record (`status.deployments[].phase`) so that
//! no reconcile waits on the outside world:
//!
//! ```text
//! start ─▶ AwaitingGates? ─▶ RunningPreHooks? ─▶ Applying ─▶ RollingOut?
//!       ─▶ RunningPostHooks? ─▶ AwaitingAfterGates? ─▶ finish
//! ```
//!
//! (`*Hooks`: a Helm chart's hooks, see `hooks`.)
//!
//! A phase that waits writes what it waits for (`awaiting`, `deadline`) and requeues; the next
//! reconcile ([`carry_on`]) looks again: woken by the gate hook's controller, by the
//! workload's watch, or by the requeue. Work slots (`--concurrency`) are therefore only ever
//! held while fetching, rendering and applying.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tracing::Instrument;

use super::build::Planned;
use super::decide::{self, Ending, Progress, Validated};
use super::inputs::{self, Work};
use super::pipeline::{Exit, Run, now};
use super::report::{Failure, Stop};
use super::{Context, Error, build, events, notify};
use crate::api::{DeploymentPhase, DeploymentRecord, DeploymentResult, EventData, HookGate, InventoryEntry};
use crate::conditions::{RECONCILING, Reason};
use crate::deploy::hooks;
use crate::deploy::{DeployRequest, RestartSelection};

/// How many deployments `status.deployments` keeps.
const KEEP_DEPLOYMENTS: usize = 10;
/// A rollout is read again this often even without a watch event (a missed event must not
/// make it wait out its whole health timeout).
pub(super) const ROLLOUT_RECHECK: Duration = Duration::from_secs(5);
/// Gates are looked at again this often even when their hook's controller did not wake us.
const GATE_RECHECK: Duration = Duration::from_secs(10);
/// How long an asked hook may take to show the delivery in its status before the gate counts
/// as refused (its queue write failed, or the hook was recreated).
const GATE_VISIBLE: Duration = Duration::from_secs(60);

/// A deployment that has been recorded as started.
pub(super) struct Started {
    /// The outgoing-webhook data of `deployment.started`.
    event: EventData,
}

/// A new deployment's record: `AwaitingGates` when `BeforeDeployment` hooks gate the
/// application, else `Applying`.
pub(super) fn new_record(
    context: &Context,
    app: &crate::api::GitOpsApplication,
    revision: &crate::source::Revision,
    trigger_id: Option<String>,
    previous_revision: Option<String>,
) -> DeploymentRecord {
    let id = format!("{}-{}", revision.sha.get(..8).unwrap_or(&revision.sha), jiff::Timestamp::now().as_second());
    let gates = context.outgoing.gate_hooks(app, HookGate::BeforeDeployment);
    let phase = if gates.is_empty() { DeploymentPhase::Applying } else { DeploymentPhase::AwaitingGates };
    DeploymentRecord {
        id,
        revision: revision.name.clone(),
        trigger_id,
        started_at: now(),
        finished_at: None,
        result: DeploymentResult::Running,
        message: None,
        restarted: Vec::new(),
        restart_causes: Vec::new(),
        corrected: Vec::new(),
        deadline: (!gates.is_empty()).then(|| after(GATE_VISIBLE)),
        awaiting: gates,
        phase: Some(phase),
        previous_revision,
        pre_hooks_done: false,
        post_hooks_pending: false,
    }
}

/// Records a new deployment (status, Event), unless the trigger's claim already wrote it
/// (`Work::already_recorded`: the claim and the start are one write, so a crash after the
/// claim resumes the deployment with the call's restarts rather than losing them).
///
/// A gated deployment is written before anything is asked, so a crash in between resumes it
/// rather than skipping its gates. Any other is first written with what it applied (one write
/// less per deployment): a crash before that leaves no record, and the next reconcile deploys
/// the same inputs afresh.
pub(super) async fn start(run: &mut Run<'_>, context: &Context, work: &Work) -> Result<Started, Error> {
    let (app, revision) = (run.app, &work.revision);
    run.condition(RECONCILING, true, Reason::Deploying, format!("Deploying revision {}", revision.name));
    if !work.already_recorded {
        let previous = run.status.last_applied_revision.clone();
        let record = new_record(context, app, revision, work.trigger.as_ref().map(|t| t.id.clone()), previous);
        let gated = record.phase == Some(DeploymentPhase::AwaitingGates);
        push_deployment(&mut run.status, record);
        if gated {
            run.write().await?;
        }
    }
    let id = recorded(run).id.clone();
    context.remember(&id);
    events::publish_in_background(
        context,
        app,
        "DeploymentStarted",
        format!("Deploying revision {} ({id})", revision.name),
    );
    let event = notify::deployment(
        app,
        &id,
        &revision.name,
        run.status.deployments.last().and_then(|d| d.previous_revision.clone()),
        work.trigger.as_ref(),
        &work.variables,
    );
    Ok(Started { event })
}

/// Reports a failure to build a deployment's inputs (its revision's files, a render or plan
/// error) and ends the deployment if one was recorded as started, in the same write, so the
/// next reconcile does not carry it on.
pub(super) async fn abandon(run: &mut Run<'_>, context: &Context, failure: Failure) -> Exit {
    let running = run.status.deployments.last().is_some_and(|d| d.result == DeploymentResult::Running);
    if running {
        end_record(recorded(run), false, failure.message.clone());
    }
    run.fail(context, failure).await
}

/// A deployment just started: `deployment.started`, then its gates are asked, or it applies.
pub(super) async fn carry_out(
    run: &mut Run<'_>,
    context: &Context,
    checked: &Validated,
    work: &Work,
    started: Started,
    planned: Planned,
) -> Exit {
    notify::started(context, run.app, started.event.clone()).await;
    match recorded(run).phase {
        Some(DeploymentPhase::AwaitingGates) => ask_gates(run, context, checked, HookGate::BeforeDeployment).await,
        _ => apply(run, context, checked, work, planned).await,
    }
}

/// The next step of a deployment a previous reconcile (or process) left waiting or applying.
pub(super) async fn carry_on(
    run: &mut Run<'_>,
    context: &Context,
    checked: &Validated,
    record: DeploymentRecord,
) -> Exit {
    let phase = record.phase.unwrap_or(DeploymentPhase::Applying);
    if context.remember(&record.id) {
        let message = format!("Resuming revision {} ({}) in phase {phase:?}", record.revision, record.id);
        events::publish_in_background(context, run.app, "DeploymentResumed", message);
        if matches!(phase, DeploymentPhase::Applying | DeploymentPhase::AwaitingGates) {
            notify::started(context, run.app, event_of(run, &record)).await;
        }
    }
    match phase {
        DeploymentPhase::AwaitingGates => match gates(run, context, &record, HookGate::BeforeDeployment).await? {
            Progress::Waiting(what) => {
                wait(run, context, Reason::AwaitingGates, format!("Waiting for {what}"), GATE_RECHECK).await
            }
            Progress::Failed(why) => finish(run, context, checked, Ending::GateRefused(why)).await,
            Progress::Done => {
                recorded(run).phase = Some(DeploymentPhase::Applying);
                reapply(run, context, checked, &record).await
            }
        },
        DeploymentPhase::Applying => reapply(run, context, checked, &record).await,
        DeploymentPhase::RollingOut => rollout(run, context, checked).await,
        DeploymentPhase::RunningPreHooks => super::hooks::progress(run, context, checked, hooks::Stage::Pre).await,
        DeploymentPhase::RunningPostHooks => super::hooks::progress(run, context, checked, hooks::Stage::Post).await,
        DeploymentPhase::AwaitingAfterGates => match gates(run, context, &record, HookGate::AfterDeployment).await? {
            Progress::Waiting(what) => {
                wait(run, context, Reason::AwaitingGates, format!("Waiting for {what}"), GATE_RECHECK).await
            }
            Progress::Failed(why) => finish(run, context, checked, Ending::AfterGateRefused(why)).await,
            Progress::Done => finish(run, context, checked, Ending::Succeeded).await,
        },
    }
}

/// Applies a started deployment from what it recorded: its gates passed, or the process
/// that started it stopped while applying. A build that fails now ends the deployment.
pub(super) async fn reapply(
    run: &mut Run<'_>,
    context: &Context,
    checked: &Validated,
    record: &DeploymentRecord,
) -> Exit {
    run.take_slot(context).await;
    let work = match inputs::recorded_work(run, context, checked, record).await {
        Ok(work) => work,
        Err(exit) => return exit,
    };
    let planned = match build::render_and_plan(run, context, &work, checked).await {
        Ok(Ok(planned)) => planned,
        Ok(Err(failure)) => return abandon(run, context, failure).await,
        Err(exit) => return exit,
    };
    apply(run, context, checked, &work, planned).await
}

/// Dry run, apply, restarts and prune (the deploy layer; never waits for a rollout). What was
/// applied is recorded at once; then the rollout of what changed or restarted.
async fn apply(run: &mut Run<'_>, context: &Context, checked: &Validated, work: &Work, planned: Planned) -> Exit {
    let app = run.app;
    let owner = run.owner()?;
    let id = recorded(run).id.clone();
    let default_namespace = app.spec.target_namespace.clone().unwrap_or_else(|| owner.namespace.clone());
    // A chart's hooks run when its inputs changed, not on a re-apply that corrects drift.
    let changed = run.status.last_applied_fingerprint.as_deref() != Some(work.fingerprint.as_str());
    let chart = if planned.chart {
        hooks::split(planned.objects, super::hooks::is_install(recorded(run)))
    } else {
        hooks::Split { main: planned.objects, ..Default::default() }
    };
    if changed && !chart.pre.is_empty() && !recorded(run).pre_hooks_done {
        return super::hooks::run(run, context, checked, hooks::Stage::Pre, chart.pre).await;
    }
    recorded(run).post_hooks_pending = changed && !chart.post.is_empty();
    let request = DeployRequest {
        owner: &owner,
        default_namespace: &default_namespace,
        service_account: context.settings.acting_account(app),
        objects: chart.main,
        previous_inventory: &run.status.inventory,
        prune: app.spec.prune,
        restart: work
            .trigger
            .as_ref()
            .map_or(RestartSelection::None, |t| RestartSelection::from_targets(&t.rollout_restart)),
    };
    let deployed = context.deployer.deploy(request).instrument(tracing::info_span!("apply", deploy_id = %id)).await;
    let outcome = match deployed {
        Ok(outcome) => outcome,
        // A call's restarts must not be lost to a failure that may pass: the deployment stays
        // under way (its record, with the call, is in status) and is applied again.
        Err(error) if error.is_transient() && work.trigger.as_ref().is_some_and(|t| !t.rollout_restart.is_empty()) => {
            let message = format!("{error} (retrying: the call's rollout-restart is carried out once this passes)");
            return run.fail(context, Failure::new(error.reason(), message, true, decide::TRANSIENT_RETRY)).await;
        }
        Err(error) => return finish(run, context, checked, Ending::ApplyFailed(error)).await,
    };
    run.status.inventory = outcome.inventory.clone();
    run.status.last_applied_revision = Some(work.revision.name.clone());
    run.status.last_applied_fingerprint = Some(work.fingerprint.clone());
    run.status.last_applied_source = Some(inputs::source_digest(app));
    let record = recorded(run);
    record.restarted = outcome.restarted.clone();
    record.message = Some(decide::applied_summary(&work.revision.name, &outcome, &chart.skipped));
    if outcome.rolling_out.is_empty() {
        return after_rollout(run, context, checked).await;
    }
    record.phase = Some(DeploymentPhase::RollingOut);
    record.awaiting = outcome.rolling_out;
    record.deadline = Some(after(checked.health_timeout));
    rollout(run, context, checked).await
}

/// Reads each awaited workload once: rolled out (on to the AfterDeployment gates), failed, or
/// still progressing (the status says what it waits for; the watch or the requeue is next).
async fn rollout(run: &mut Run<'_>, context: &Context, checked: &Validated) -> Exit {
    let record = recorded(run).clone();
    let owner = run.owner()?;
    let service_account = context.settings.acting_account(run.app);
    let states = match context.deployer.rollouts(&owner, service_account, &record.awaiting).await {
        Ok(states) => states,
        Err(error) => {
            let message = format!("Cannot read the rollout: {error}");
            return wait(run, context, Reason::RollingOut, message, ROLLOUT_RECHECK).await;
        }
    };
    tracing::debug!(deploy_id = %record.id, ?states, "rollout read");
    let left = record.deadline.as_ref().map_or(Duration::ZERO, until);
    match decide::rollout(&states, left.is_zero(), checked.health_timeout) {
        Progress::Done => after_rollout(run, context, checked).await,
        Progress::Failed(why) => finish(run, context, checked, Ending::Unhealthy(why)).await,
        Progress::Waiting(what) => {
            // A workload that completed is not read again: the status changes only when one does.
            let still: Vec<InventoryEntry> = (record.awaiting.iter().zip(&states))
                .filter(|(_, (_, state))| matches!(state, crate::deploy::health::Rollout::Progressing(_)))
                .map(|(entry, _)| entry.clone())
                .collect();
            recorded(run).awaiting = still;
            let recheck = ROLLOUT_RECHECK.min(left + Duration::from_millis(50));
            wait(run, context, Reason::RollingOut, format!("Rolling out {what}"), recheck).await
        }
    }
}

/// Rolled out: the chart's post hooks run, then the AfterDeployment gates are asked, or the
/// deployment succeeded.
pub(super) async fn after_rollout(run: &mut Run<'_>, context: &Context, checked: &Validated) -> Exit {
    if recorded(run).post_hooks_pending {
        return super::hooks::run_post(run, context, checked).await;
    }
    let hooks = context.outgoing.gate_hooks(run.app, HookGate::AfterDeployment);
    if hooks.is_empty() {
        return finish(run, context, checked, Ending::Succeeded).await;
    }
    let record = recorded(run);
    record.phase = Some(DeploymentPhase::AwaitingAfterGates);
    record.awaiting = hooks;
    record.deadline = Some(after(GATE_VISIBLE));
    run.write().await?;
    ask_gates(run, context, checked, HookGate::AfterDeployment).await
}

/// Asks the hooks the record awaits (its phase was written first, so a crash before the ask
/// comes back here and asks again: the delivery id is the same, so it is queued once).
async fn ask_gates(run: &mut Run<'_>, context: &Context, checked: &Validated, gate: HookGate) -> Exit {
    let record = recorded(run).clone();
    let data = notify::gate_event(event_of(run, &record), gate);
    if let Err(why) = context.outgoing.ask(run.app, &record.awaiting, data, &record.id).await {
        let ending =
            if gate == HookGate::AfterDeployment { Ending::AfterGateRefused(why) } else { Ending::GateRefused(why) };
        return finish(run, context, checked, ending).await;
    }
    let names: Vec<String> = record.awaiting.iter().map(|h| format!("OutgoingWebhook/{}", h.name)).collect();
    wait(run, context, Reason::AwaitingGates, format!("Waiting for {gate:?} hooks: {}", names.join(", ")), GATE_RECHECK)
        .await
}

/// What the awaited gate hooks answered. A hook that does not show the delivery yet is asked
/// again (the same id: queued at most once).
async fn gates(
    run: &mut Run<'_>,
    context: &Context,
    record: &DeploymentRecord,
    gate: HookGate,
) -> Result<Progress, Error> {
    let data = notify::gate_event(event_of(run, record), gate);
    let answers = context.outgoing.answers(run.app, &record.awaiting, data.event, &record.id).await?;
    let unseen: Vec<InventoryEntry> = record
        .awaiting
        .iter()
        .zip(&answers)
        .filter(|(_, (_, answer))| *answer == crate::outgoing::dispatch::GateAnswer::Unseen)
        .map(|(hook, _)| hook.clone())
        .collect();
    if !unseen.is_empty() {
        let _ = context.outgoing.ask(run.app, &unseen, data, &record.id).await;
    }
    let deadline_passed = record.deadline.as_ref().is_some_and(|d| until(d).is_zero());
    Ok(decide::gates(&answers, deadline_passed))
}

/// Waits in the current phase: Reconciling says for what (written only when it changed).
pub(super) async fn wait(
    run: &mut Run<'_>,
    context: &Context,
    reason: Reason,
    message: String,
    recheck: Duration,
) -> Exit {
    run.report(context, Stop::Waiting { reason, message, recheck }).await
}

/// Reports how the deployment ended: status (one write), Event, metrics, outgoing event.
pub(super) async fn finish(run: &mut Run<'_>, context: &Context, checked: &Validated, ending: Ending) -> Exit {
    let app = run.app;
    let record = recorded(run).clone();
    let applied = !matches!(ending, Ending::GateRefused(_) | Ending::ApplyFailed(_));
    let summary = record.message.as_deref().filter(|_| applied);
    let conclusion = decide::conclude(&record.revision, summary, &ending, checked.interval);
    let rolled_out = conclusion.healthy.as_ref().is_some_and(|(healthy, _, _)| *healthy);
    let (ok, message) = (conclusion.ok, conclusion.message.clone());
    context.metrics.deployment_finished(ok);
    end_record(recorded(run), ok, message.clone());
    // What arrived while this deployment ran (a call, a spec change) goes next, not after the retry.
    let more_waiting = crate::trigger::record::work_pending(app) || run.status.observed_generation != run.generation;
    let action = run.report(context, Stop::Finished { conclusion, more_waiting }).await?;
    context.forget(&record.id);
    tracing::debug!(deploy_id = %record.id, ok, "deployment finished");
    let mut event = event_of(run, &record);
    if rolled_out {
        event.restarted = record.restarted.clone();
    }
    notify::finished(context, app, event, ok, &message).await;
    Ok(action)
}

/// The outgoing-webhook data of a recorded deployment (the trigger and variables it carries).
fn event_of(run: &Run<'_>, record: &DeploymentRecord) -> EventData {
    let trigger = run.status.last_trigger.as_ref().filter(|t| record.trigger_id.as_deref() == Some(t.id.as_str()));
    let variables = inputs::merged_variables(&run.app.spec.variables, &run.status.variables);
    let previous = record.previous_revision.clone();
    notify::deployment(run.app, &record.id, &record.revision, previous, trigger, &variables)
}

/// The deployment being carried out. Every caller comes after `start` or found an unfinished
/// record, so there is one; an empty list gets a placeholder rather than a panic.
pub(super) fn recorded<'r>(run: &'r mut Run<'_>) -> &'r mut DeploymentRecord {
    if run.status.deployments.is_empty() {
        run.status.deployments.push(DeploymentRecord {
            id: "unknown".into(),
            revision: String::new(),
            trigger_id: None,
            started_at: now(),
            finished_at: None,
            result: DeploymentResult::Running,
            message: None,
            restarted: Vec::new(),
            restart_causes: Vec::new(),
            corrected: Vec::new(),
            phase: None,
            awaiting: Vec::new(),
            deadline: None,
            previous_revision: None,
            pre_hooks_done: false,
            post_hooks_pending: false,
        });
    }
    let last = run.status.deployments.len() - 1;
    &mut run.status.deployments[last]
}

fn end_record(record: &mut DeploymentRecord, ok: bool, message: String) {
    record.finished_at = Some(now());
    record.result = if ok { DeploymentResult::Succeeded } else { DeploymentResult::Failed };
    record.message = Some(message);
    record.phase = None;
    record.awaiting.clear();
    record.deadline = None;
}

pub(super) fn push_deployment(status: &mut crate::api::GitOpsApplicationStatus, record: DeploymentRecord) {
    status.deployments.push(record);
    let excess = status.deployments.len().saturating_sub(KEEP_DEPLOYMENTS);
    status.deployments.drain(..excess);
}

pub(super) fn after(wait: Duration) -> Time {
    let span = jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::from_secs(3600));
    Time(jiff::Timestamp::now().checked_add(span).unwrap_or_else(|_| jiff::Timestamp::now()))
}

/// Time left until `deadline` (zero once it passed).
pub(super) fn until(deadline: &Time) -> Duration {
    let seconds = jiff::Timestamp::now().duration_until(deadline.0).as_secs_f64().max(0.0);
    Duration::from_secs_f64(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_record_keeps_no_phase_and_the_list_keeps_ten() {
        let mut status = crate::api::GitOpsApplicationStatus::default();
        for i in 0..12 {
            let mut run_record = serde_json::from_value::<DeploymentRecord>(serde_json::json!({
                "id": format!("d{i}"), "revision": "main@sha1:a", "startedAt": "2026-01-01T00:00:00Z",
                "result": "Running", "phase": "RollingOut", "deadline": "2026-01-01T00:05:00Z",
                "awaiting": [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "t", "name": "web"}],
            }))
            .expect("record");
            end_record(&mut run_record, i % 2 == 0, format!("ended {i}"));
            push_deployment(&mut status, run_record);
        }
        assert_eq!(status.deployments.len(), KEEP_DEPLOYMENTS);
        assert_eq!(status.deployments[0].id, "d2");
        let last = status.deployments.last().expect("last");
        assert_eq!(
            (last.result, last.phase, last.awaiting.len(), last.deadline.is_none()),
            (DeploymentResult::Failed, None, 0, true)
        );
        assert!(last.finished_at.is_some());
    }
}
