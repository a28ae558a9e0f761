//! Building what a deployment applies: the revision's files (or what Kustomize or Helm build
//! from them), rendered with the variables in force, then planned (labelled, ordered). Pure
//! apart from reading the files and running the build tools: a bad manifest fails here and
//! nothing is applied.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracing::Instrument;

use super::Context;
use super::decide::Validated;
use super::inputs::Work;
use super::pipeline::{Phase, Run};
use super::report::Failure;
use crate::api::GitOpsApplicationStatus;
use crate::build::{self, BuildError, Method};
use crate::conditions::Reason;
use crate::deploy::plan;
use crate::render;
use crate::source::SourceError;

/// What a deployment applies: the planned objects, and whether they are a Helm chart's output
/// (only there do `helm.sh/hook` annotations make hooks, see `deploy::hooks`).
pub(super) struct Planned {
    pub objects: Vec<plan::PlannedObject>,
    pub chart: bool,
}

/// Render and plan (pure): a bad manifest fails here and applies nothing. The failure is
/// reported by the caller, which also ends a deployment recorded as started.
pub(super) async fn render_and_plan(
    run: &mut Run<'_>,
    context: &Context,
    work: &Work,
    checked: &Validated,
) -> Phase<Result<Planned, Failure>> {
    let (app, revision, interval) = (run.app, &work.revision, checked.interval);
    run.status.last_attempted_revision = Some(revision.name.clone());
    let owner = run.owner().map_err(Err)?;
    let manifests = match manifests(run, context, work, &owner).await {
        Ok(manifests) => manifests,
        Err(error) => {
            if let ManifestsError::CallValue { variable } = &error {
                // Dropped, so the next deployment does not fail on it again.
                run.status.variables.remove(variable);
            }
            return Ok(Err(error.failure(&revision.name, interval)));
        }
    };
    let files = manifests.files();
    let render_span = tracing::info_span!("render", revision = %revision.name, files = files.len());
    let strict = app.spec.strict_variables;
    let budget = context.settings.render_budget;
    let rendered = match render_span
        .in_scope(|| render_with_overrides(&manifests, &work.variables, &run.status, strict, budget))
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
    let chart = manifests.chart;
    Ok(plan::plan(&rendered.objects, &owner).map(|objects| Planned { objects, chart }).map_err(|error| {
        Failure::of_content(Reason::PlanFailed, format!("revision {}: {error}", revision.name), interval)
    }))
}

/// What rendering starts from: the files at the path, or what Kustomize or Helm built.
struct Manifests {
    plain: Vec<render::ManifestFile>,
    built: Option<Arc<build::Built>>,
    /// A Helm chart's output.
    chart: bool,
    /// Variables that only Helm values reference (a call may set them too).
    value_variables: BTreeSet<String>,
    /// Those of them that reach an identity field through the chart's templates.
    value_identity: BTreeMap<String, String>,
}

impl Manifests {
    fn files(&self) -> &[render::ManifestFile] {
        self.built.as_ref().map_or(&self.plain, |built| &built.files)
    }
}

/// Why the manifests could not be had.
enum ManifestsError {
    Source(SourceError),
    Build(BuildError),
    /// A trigger call set a variable of the Helm values to a value that is not plain text
    /// ([`build::helm::SAFE_CALL_VALUE`]).
    CallValue {
        variable: String,
    },
}

impl ManifestsError {
    fn failure(self, revision: &str, retry: std::time::Duration) -> Failure {
        match self {
            ManifestsError::Source(error) => Failure::source(&error, retry),
            ManifestsError::Build(error) => Failure::build(&error, revision, retry),
            ManifestsError::CallValue { variable } => {
                let message = format!(
                    "revision {revision}: variable {variable} was set by a trigger call and fills a Helm value, but its value holds characters a chart's template could turn into YAML structure; a call's value for Helm values must match {}, so nothing was applied and the call's value is dropped",
                    build::helm::SAFE_CALL_VALUE
                );
                Failure::of_content(Reason::VariableNotAllowed, message, retry)
            }
        }
    }
}

/// The revision's manifests. A Kustomize or Helm build whose output is cached (same revision,
/// path and inputs) reads nothing and starts no process.
async fn manifests(
    run: &Run<'_>,
    context: &Context,
    work: &Work,
    owner: &plan::Owner,
) -> Result<Manifests, ManifestsError> {
    let path = run.app.spec.source.path.as_deref().unwrap_or("");
    let method = match method(run, context, work, path).await? {
        Ok(method) => method,
        Err(plain) => {
            let plain = with_repository_paths(path, plain);
            let (value_variables, value_identity) = (BTreeSet::new(), BTreeMap::new());
            return Ok(Manifests { plain, built: None, chart: false, value_variables, value_identity });
        }
    };
    let capabilities = match method {
        Method::Helm(_) => context.capabilities().await.map_err(|e| {
            let what = "read the cluster's version and APIs (Helm's .Capabilities)".to_owned();
            ManifestsError::Build(BuildError::Io { what, message: e.to_string() })
        })?,
        Method::Kustomize => Default::default(),
    };
    let namespace = run.app.spec.target_namespace.clone().unwrap_or_else(|| owner.namespace.clone());
    let release = match &method {
        Method::Helm(helm) => helm.release_name.clone().unwrap_or_else(|| owner.name.clone()),
        Method::Kustomize => String::new(),
    };
    let request = build::Request {
        url: &work.source.url,
        sha: &work.revision.sha,
        path,
        method: &method,
        release: &release,
        namespace: &namespace,
        variables: &work.variables,
        strict: run.app.spec.strict_variables,
        capabilities: &capabilities,
    };
    let mut repository = None;
    let built = cached_or_built(context, work, &request, &mut repository).await?;
    let from_calls = run.status.variables.iter().filter(|(name, _)| built.value_variables.contains(*name));
    if let Some((variable, _)) = from_calls.into_iter().find(|(_, value)| !build::helm::is_safe_call_value(value)) {
        return Err(ManifestsError::CallValue { variable: variable.clone() });
    }
    let value_identity = value_identity(context, work, &request, &built, &mut repository).await?;
    let value_variables = built.value_variables.clone();
    let chart = matches!(method, Method::Helm(_));
    Ok(Manifests { plain: Vec::new(), built: Some(built), chart, value_variables, value_identity })
}

/// How the path is built: the spec says, or an earlier look at this revision, or the files
/// directly at the path (which are the manifests when they show no build: `Err`).
async fn method(
    run: &Run<'_>,
    context: &Context,
    work: &Work,
    path: &str,
) -> Result<Result<Method, Vec<render::ManifestFile>>, ManifestsError> {
    let source = &run.app.spec.source;
    let (url, sha) = (work.source.url.as_str(), work.revision.sha.as_str());
    if let Some(method) = Method::of(source, std::iter::empty()).or_else(|| context.builder.detected(url, sha, path)) {
        return Ok(Ok(method));
    }
    let files = context.git.read_files(&work.source, &work.revision, path).await.map_err(ManifestsError::Source)?;
    // Only names directly in a directory count (not a single file the path names).
    let top_level = files.iter().map(|f| f.path.as_str()).filter(|name| !name.contains('/') && !path.ends_with(*name));
    match Method::of(source, top_level) {
        Some(method) => {
            context.builder.remember(url, sha, path, method.clone());
            Ok(Ok(method))
        }
        None => Ok(Err(files)),
    }
}

/// The variables of Helm values that reach an identity field through the chart's templates,
/// so a call is refused them up front: the chart is built once more with markers as their
/// values ([`render::identity_markers`]), once per revision (the markers never change, so the
/// build is cached like any other). A chart that does not render with markers (it compares
/// or types such a value) gets every one of them refused: what cannot be checked is not allowed.
async fn value_identity(
    context: &Context,
    work: &Work,
    request: &build::Request<'_>,
    built: &build::Built,
    repository: &mut Option<Vec<crate::source::RepoFile>>,
) -> Result<BTreeMap<String, String>, ManifestsError> {
    if built.value_variables.is_empty() {
        return Ok(BTreeMap::new());
    }
    let markers = render::identity_markers(&built.value_variables);
    let marked_request = build::Request { variables: &markers, strict: false, ..*request };
    let unchecked = |why: String| {
        let place = format!("a Helm value whose use could not be checked ({why})");
        Ok(built.value_variables.iter().map(|name| (name.clone(), place.clone())).collect())
    };
    let marked = match cached_or_built(context, work, &marked_request, repository).await {
        Ok(marked) => marked,
        Err(ManifestsError::Build(error)) => return unchecked(error.to_string()),
        Err(other) => return Err(other),
    };
    match render::identity_variables_of(&marked.files, &built.value_variables, context.settings.render_budget) {
        Ok(found) => Ok(found),
        Err(error) => unchecked(error.to_string()),
    }
}

/// The cached output of `request`, else a build (reading the repository once per reconcile).
async fn cached_or_built(
    context: &Context,
    work: &Work,
    request: &build::Request<'_>,
    repository: &mut Option<Vec<crate::source::RepoFile>>,
) -> Result<Arc<build::Built>, ManifestsError> {
    if let Some(built) = context.builder.cached(request) {
        return Ok(built);
    }
    // The repository's files count against memory too: read them in a build slot.
    let _slot = context.builder.slot().await;
    if repository.is_none() {
        let files = context.git.read_repository(&work.source, &work.revision).await.map_err(ManifestsError::Source)?;
        *repository = Some(files);
    }
    let files = repository.as_deref().unwrap_or_default();
    let span = tracing::info_span!("build", tool = request.method.tool(), revision = %work.revision.name);
    context.builder.build(request, files).instrument(span).await.map_err(ManifestsError::Build)
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
    manifests: &Manifests,
    variables: &BTreeMap<String, String>,
    status: &GitOpsApplicationStatus,
    strict: bool,
    budget: render::Budget,
) -> Result<Checked, render::RenderError> {
    let files = manifests.files();
    let mut names = render::placeholders(files)?;
    let mut identity = render::identity_variables_of(files, &names, budget)?;
    names.extend(manifests.value_variables.iter().cloned());
    identity.extend(manifests.value_identity.clone());
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
