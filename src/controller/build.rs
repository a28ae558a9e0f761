//! Building what a deployment applies: the revision's files, rendered with the variables in
//! force, then planned (labelled, ordered). Pure apart from reading the files: a bad manifest
//! fails here and nothing is applied.

use std::collections::BTreeMap;

use super::Context;
use super::decide::Validated;
use super::inputs::Work;
use super::pipeline::{Phase, Run};
use super::report::Failure;
use crate::api::GitOpsApplicationStatus;
use crate::conditions::Reason;
use crate::deploy::plan;
use crate::render;

/// Render and plan (pure): a bad manifest fails here and applies nothing. The failure is
/// reported by the caller, which also ends a deployment recorded as started.
pub(super) async fn render_and_plan(
    run: &mut Run<'_>,
    context: &Context,
    work: &Work,
    checked: &Validated,
) -> Phase<Result<Vec<plan::PlannedObject>, Failure>> {
    let (app, revision, interval) = (run.app, &work.revision, checked.interval);
    run.status.last_attempted_revision = Some(revision.name.clone());
    let path = app.spec.source.path.as_deref().unwrap_or("");
    let files = match context.git.read_files(&work.source, revision, path).await {
        Ok(files) => with_repository_paths(path, files),
        Err(error) => return Ok(Err(Failure::source(&error, interval))),
    };
    let render_span = tracing::info_span!("render", revision = %revision.name, files = files.len());
    let strict = app.spec.strict_variables;
    let budget = context.settings.render_budget;
    let rendered = match render_span
        .in_scope(|| render_with_overrides(&files, &work.variables, &run.status, strict, budget))
    {
        Ok(Checked::Rendered(rendered, variable_names)) => {
            run.status.variable_names = variable_names;
            rendered
        }
        Ok(Checked::CallSetsIdentity { variable, place }) => {
            // Dropped, so the next deployment does not fail on it again.
            run.status.variables.remove(&variable);
            let message = format!(
                "revision {}: variable {variable} was set by a trigger call, but it sets {place}; values from a call never choose an object's apiVersion, kind, name or namespace, so nothing was applied and the call's value is dropped",
                revision.name
            );
            return Ok(Err(Failure::of_content(Reason::VariableNotAllowed, message, interval)));
        }
        Err(error) => {
            let reason = match error {
                render::RenderError::OverBudget { .. } => Reason::RenderBudgetExceeded,
                _ => Reason::RenderFailed,
            };
            let message = format!("revision {}: {error}", revision.name);
            return Ok(Err(Failure::of_content(reason, message, interval)));
        }
    };
    Ok(plan::plan(&rendered.objects, &run.owner().map_err(Err)?).map_err(|error| {
        Failure::of_content(Reason::PlanFailed, format!("revision {}: {error}", revision.name), interval)
    }))
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

/// What rendering gave, once checked against what the calls set.
enum Checked {
    /// The objects, and the variable names a call may set.
    Rendered(render::Rendered, Vec<String>),
    /// A variable a call set (`status.variables`) reaches an identity field.
    CallSetsIdentity { variable: String, place: String },
}

/// Renders, then applies webhook env overrides and the image tag to workload templates.
/// Also returns the variable names a call may set: placeholders and workload env vars, but
/// never a variable that reaches an identity field (`render::IDENTITY_FIELDS`).
fn render_with_overrides(
    files: &[render::ManifestFile],
    variables: &BTreeMap<String, String>,
    status: &GitOpsApplicationStatus,
    strict: bool,
    budget: render::Budget,
) -> Result<Checked, render::RenderError> {
    let mut names = render::placeholders(files)?;
    let identity = render::identity_variables_of(files, &names, budget)?;
    if let Some((variable, place)) = status.variables.keys().find_map(|name| identity.get_key_value(name)) {
        return Ok(Checked::CallSetsIdentity { variable: variable.clone(), place: place.clone() });
    }
    let mut rendered = render::render_within(files, variables, strict, budget)?;
    names.extend(render::env_var_names(rendered.values()));
    names.retain(|name| !identity.contains_key(name));
    render::apply_env_overrides(rendered.values_mut(), &status.variables);
    if let Some(tag) = &status.image_tag {
        render::apply_image_tag(rendered.values_mut(), tag)?;
    }
    Ok(Checked::Rendered(rendered, names.into_iter().collect()))
}
