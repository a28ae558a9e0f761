//! Building what a deployment applies: the revision's files, rendered with the variables in
//! force, then planned (labelled, ordered). Pure apart from reading the files: a bad manifest
//! fails here and nothing is applied.

use std::collections::BTreeMap;

use super::decide::Validated;
use super::inputs::Work;
use super::pipeline::{Phase, Run};
use super::{Context, events};
use crate::api::GitOpsApplicationStatus;
use crate::conditions::Reason;
use crate::deploy::plan;
use crate::render;

/// Render and plan (pure): a bad manifest fails here and applies nothing.
pub(super) async fn render_and_plan(
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
            events::publish(context, app, true, Reason::RenderFailed.as_str(), message.clone()).await;
            return Err(run.fail(Reason::RenderFailed, message, interval).await);
        }
    };
    match plan::plan(&rendered.objects, &run.owner().map_err(Err)?) {
        Ok(planned) => Ok(planned),
        Err(error) => {
            let message = format!("revision {}: {error}", revision.name);
            Err(run.fail(Reason::PlanFailed, message, interval).await)
        }
    }
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
