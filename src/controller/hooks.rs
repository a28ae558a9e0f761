//! Helm hooks as phases of a deployment (the rules: `deploy::hooks`). Pre hooks are applied
//! before anything else and the deployment waits in `RunningPreHooks` until their Jobs
//! complete; post hooks are applied once the rest rolled out and it waits in
//! `RunningPostHooks`. Like a rollout, no reconcile waits: each looks at the Jobs once.

use tracing::Instrument;

use super::Context;
use super::decide::{self, Ending, Progress, Validated};
use super::deployment::{self, ROLLOUT_RECHECK, after, recorded, until};
use super::pipeline::{Exit, Run};
use crate::api::{DeploymentPhase, InventoryEntry};
use crate::conditions::Reason;
use crate::deploy::hooks::{self, DeletePolicy, Stage};
use crate::deploy::plan::PlannedObject;
use crate::deploy::{DeployRequest, RestartSelection};

/// Applies `objects`, the hooks of `stage`: first deletes the previous objects of those whose
/// delete policy is `before-hook-creation`, then applies them, then waits for their Jobs.
pub(super) async fn run(
    run: &mut Run<'_>,
    context: &Context,
    checked: &Validated,
    stage: Stage,
    objects: Vec<PlannedObject>,
) -> Exit {
    let app = run.app;
    let owner = run.owner()?;
    let account = context.settings.acting_account(app);
    let default_namespace = app.spec.target_namespace.clone().unwrap_or_else(|| owner.namespace.clone());
    let replaced: Vec<InventoryEntry> = objects
        .iter()
        .filter(|object| DeletePolicy::of(&object.value).before_creation)
        .map(|object| InventoryEntry {
            api_version: object.gvk.api_version(),
            kind: object.gvk.kind.clone(),
            namespace: Some(object.namespace.clone().unwrap_or_else(|| default_namespace.clone())),
            name: object.name.clone(),
        })
        .collect();
    if let Err(error) = context.deployer.delete_all(&owner, account, &replaced).await {
        return deployment::finish(run, context, checked, Ending::HookFailed(stage, error.to_string())).await;
    }
    let request = DeployRequest {
        owner: &owner,
        default_namespace: &default_namespace,
        service_account: account,
        objects,
        previous_inventory: &[],
        prune: false,
        restart: RestartSelection::None,
    };
    let id = recorded(run).id.clone();
    let span = tracing::info_span!("hooks", deploy_id = %id, ?stage);
    let outcome = match context.deployer.deploy(request).instrument(span).await {
        Ok(outcome) => outcome,
        Err(error) => {
            return deployment::finish(run, context, checked, Ending::HookFailed(stage, error.to_string())).await;
        }
    };
    // Hooks that are neither Jobs nor Pods are done once applied.
    let (jobs, others): (Vec<InventoryEntry>, Vec<InventoryEntry>) =
        outcome.inventory.into_iter().partition(hooks::is_awaited);
    let _ = context.deployer.clean_up_hooks(&owner, account, &others, true).await;
    let record = recorded(run);
    record.phase = Some(phase_of(stage));
    record.awaiting = jobs;
    record.deadline = Some(after(checked.health_timeout));
    progress(run, context, checked, stage).await
}

/// Reads each awaited hook Job once: all complete (on with the deployment), one failed (the
/// deployment fails), or still running.
pub(super) async fn progress(run: &mut Run<'_>, context: &Context, checked: &Validated, stage: Stage) -> Exit {
    let record = recorded(run).clone();
    let owner = run.owner()?;
    let account = context.settings.acting_account(run.app);
    let states = match context.deployer.rollouts(&owner, account, &record.awaiting).await {
        Ok(states) => states,
        Err(error) => {
            let message = format!("Cannot read the hook Jobs: {error}");
            return deployment::wait(run, context, Reason::RunningHooks, message, ROLLOUT_RECHECK).await;
        }
    };
    let left = record.deadline.as_ref().map_or(std::time::Duration::ZERO, until);
    match decide::rollout(&states, left.is_zero(), checked.health_timeout) {
        Progress::Done => {
            let _ = context.deployer.clean_up_hooks(&owner, account, &record.awaiting, true).await;
            let record = recorded(run);
            record.awaiting.clear();
            record.deadline = None;
            match stage {
                Stage::Pre => {
                    record.pre_hooks_done = true;
                    record.phase = Some(DeploymentPhase::Applying);
                    let record = record.clone();
                    // Boxed: applying can come back here (a recursion of async functions).
                    Box::pin(deployment::reapply(run, context, checked, &record)).await
                }
                Stage::Post => {
                    record.post_hooks_pending = false;
                    Box::pin(deployment::after_rollout(run, context, checked)).await
                }
            }
        }
        Progress::Failed(why) => {
            let _ = context.deployer.clean_up_hooks(&owner, account, &record.awaiting, false).await;
            deployment::finish(run, context, checked, Ending::HookFailed(stage, why)).await
        }
        Progress::Waiting(what) => {
            let message = format!("Waiting for the {} hooks: {what}", name(stage));
            let recheck = ROLLOUT_RECHECK.min(left + std::time::Duration::from_millis(50));
            deployment::wait(run, context, Reason::RunningHooks, message, recheck).await
        }
    }
}

/// Rolled out, with post hooks to run: the revision is built again (its output is cached) for them.
pub(super) async fn run_post(run: &mut Run<'_>, context: &Context, checked: &Validated) -> Exit {
    run.take_slot(context).await;
    let record = recorded(run).clone();
    let work = match super::inputs::recorded_work(run, context, checked, &record).await {
        Ok(work) => work,
        Err(exit) => return exit,
    };
    let planned = match super::build::render_and_plan(run, context, &work, checked).await {
        Ok(Ok(planned)) => planned,
        Ok(Err(failure)) => return deployment::abandon(run, context, failure).await,
        Err(exit) => return exit,
    };
    let post = hooks::split(planned.objects, is_install(&record)).post;
    if post.is_empty() {
        recorded(run).post_hooks_pending = false;
        return Box::pin(deployment::after_rollout(run, context, checked)).await;
    }
    self::run(run, context, checked, Stage::Post, post).await
}

/// The application's first deployment (Helm's install): nothing was live before it.
pub(super) fn is_install(record: &crate::api::DeploymentRecord) -> bool {
    record.previous_revision.is_none()
}

fn phase_of(stage: Stage) -> DeploymentPhase {
    match stage {
        Stage::Pre => DeploymentPhase::RunningPreHooks,
        Stage::Post => DeploymentPhase::RunningPostHooks,
    }
}

fn name(stage: Stage) -> &'static str {
    match stage {
        Stage::Pre => "pre-deployment",
        Stage::Post => "post-deployment",
    }
}
