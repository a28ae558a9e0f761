//! Rendering: manifest files plus variables become Kubernetes objects (Flux-compatible `${VAR}` substitution).
//!
//! The order of work is what makes it safe: YAML is parsed first, then placeholders are filled
//! inside scalar strings only, so a variable value can never change the structure of a manifest
//! (no injected keys, documents or comments). Plain scalars made of one placeholder are typed
//! after substitution (`replicas: ${N:-2}` gives a number); quoted ones stay strings.
//!
//! Everything but [`read_manifests`] is pure and works on [`ManifestFile`]s, so the controller,
//! the CLI, tests and fuzzers all share one code path.
//!
//! Where this differs from Flux's text substitution, on purpose:
//! - a value is always one scalar: newlines, `key: x`, quotes, `---`, `{`, `#` stay inside it;
//! - `${VAR}` in YAML comments is ignored (Flux substitutes, or fails, there too);
//! - typing uses the YAML 1.2 core schema: `yes`/`on` stay strings, integers beyond 64 bits and
//!   `.inf`/`.nan` stay strings rather than losing precision;
//! - a default is literal text up to the first `}` (never YAML-unescaped); a nested placeholder
//!   in a default is an error; `:=` behaves like `:-` (nothing is assigned);
//! - bare `$VAR` is never substituted, and `${` that is not a valid placeholder is an error
//!   (write `$${` for a literal `${`).

#![forbid(unsafe_code)]

mod budget;
mod error;
mod files;
mod objects;
mod overrides;
mod protect;
mod scalar;
mod substitute;
mod tree;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

pub use budget::{Budget, Bytes};
pub use error::{Location, RenderError};
pub use files::{ManifestFile, is_manifest_name, read_manifests};
pub use overrides::{apply_env_overrides, apply_image_tag, env_var_names, is_valid_tag, with_tag};
pub use substitute::is_valid_name as is_valid_variable_name;
pub use tree::{MAX_ALIAS_NODES, MAX_DEPTH};

/// The result of rendering: objects in file order, then document order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rendered {
    pub objects: Vec<RenderedObject>,
}

impl Rendered {
    /// The objects' values, e.g. for [`env_var_names`].
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.objects.iter().map(|object| &object.value)
    }

    /// The objects' values, mutable, e.g. for [`apply_env_overrides`] and [`apply_image_tag`].
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Value> {
        self.objects.iter_mut().map(|object| &mut object.value)
    }
}

/// One Kubernetes object and where it came from (items of a `kind: List` share its document).
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedObject {
    /// Display path of the source file.
    pub file: String,
    /// 1-based document number in that file.
    pub document: usize,
    pub value: Value,
}

/// Renders `files` with `vars` (already merged by the caller from its layers), within the
/// default [`Budget`].
///
/// In `strict` mode a `${VAR}` with neither value nor default is an error; otherwise it becomes
/// the empty string (a plain scalar that is only that placeholder then becomes `null`, exactly
/// as the text-substituting Flux would produce). Empty documents are skipped; any other
/// document must be a Kubernetes object with `apiVersion`, `kind` and `metadata.name`.
pub fn render(files: &[ManifestFile], vars: &BTreeMap<String, String>, strict: bool) -> Result<Rendered, RenderError> {
    render_within(files, vars, strict, Budget::DEFAULT)
}

/// [`render`] within `budget`: over it, [`RenderError::OverBudget`] names the file, document
/// and line where it ran out, and no object is returned.
pub fn render_within(
    files: &[ManifestFile],
    vars: &BTreeMap<String, String>,
    strict: bool,
    budget: Budget,
) -> Result<Rendered, RenderError> {
    let mut objects = Vec::new();
    let mut left = budget::Remaining::new(budget);
    for file in files {
        for document in yaml::parse_documents(file, vars, strict, &mut left)? {
            let (number, line) = (document.number, document.line);
            objects::collect(&file.path, document, &mut objects)?;
            if objects.len() > budget.max_objects {
                let message = format!(
                    "the manifests hold more than {} objects (the render budget, --render-max-objects)",
                    budget.max_objects
                );
                let at = Location { file: file.path.clone(), document: number, line };
                return Err(RenderError::OverBudget { at, message });
            }
        }
    }
    Ok(Rendered { objects })
}

/// Every variable name referenced by a placeholder in `files` (with or without default), so
/// that a caller can refuse to set variables the manifests never use.
pub fn placeholders(files: &[ManifestFile]) -> Result<BTreeSet<String>, RenderError> {
    let mut names = BTreeSet::new();
    for file in files {
        yaml::collect_placeholders(file, &mut names)?;
    }
    Ok(names)
}

/// Parses one YAML document that is data, not a Kubernetes object (Helm values, a
/// kustomization), with `${VAR}` filled by the same structure-safe rules as [`render`]. An
/// empty file gives `None`; more than one document is an error naming the second.
pub fn parse_data(
    file: &ManifestFile,
    vars: &BTreeMap<String, String>,
    strict: bool,
) -> Result<Option<Value>, RenderError> {
    let mut left = budget::Remaining::new(Budget::DEFAULT);
    let mut documents = yaml::parse_documents(file, vars, strict, &mut left)?.into_iter();
    let first = documents.next().map(|document| document.value);
    if let Some(second) = documents.next() {
        let at = Location { file: file.path.clone(), document: second.number, line: second.line };
        return Err(RenderError::Invalid { at, message: "expected a single YAML document".to_owned() });
    }
    Ok(first)
}

/// The fields that say what an object is and where it goes. Values from a trigger call never
/// set them (a call may change how an application runs, never which objects it writes).
pub const IDENTITY_FIELDS: [&str; 4] = ["apiVersion", "kind", "metadata.name", "metadata.namespace"];

/// The variables whose placeholders reach an identity field ([`IDENTITY_FIELDS`]), each with
/// the first place it does so (`deploy/app.yaml#1 metadata.namespace`).
///
/// Found by rendering once with every variable set to a marker of its own name and looking
/// for the markers in those fields: the same parser and substitution as [`render`], so what
/// it finds is exactly what a value would change. Costs a render, only when there are
/// placeholders.
pub fn identity_variables(files: &[ManifestFile]) -> Result<BTreeMap<String, String>, RenderError> {
    identity_variables_of(files, &placeholders(files)?, Budget::DEFAULT)
}

/// The values [`identity_variables_of`] gives `names` to find where they land: text no
/// manifest holds (private-use characters around a number, so case changes such as a
/// template's `lower` keep it). A build that fills variables before it templates (Helm values)
/// is run with these values to find the same.
pub fn identity_markers(names: &BTreeSet<String>) -> BTreeMap<String, String> {
    names.iter().enumerate().map(|(n, name)| (name.clone(), format!("\u{E000}{n}\u{E001}"))).collect()
}

/// [`identity_variables`] when the caller already has the files' [`placeholders`].
pub fn identity_variables_of(
    files: &[ManifestFile],
    names: &BTreeSet<String>,
    budget: Budget,
) -> Result<BTreeMap<String, String>, RenderError> {
    let mut found = BTreeMap::new();
    if names.is_empty() {
        return Ok(found);
    }
    let markers = identity_markers(names);
    for object in render_within(files, &markers, false, budget)?.objects {
        for field in IDENTITY_FIELDS {
            let pointer = format!("/{}", field.replace('.', "/"));
            let Some(text) = object.value.pointer(&pointer).and_then(Value::as_str) else { continue };
            for (name, _) in markers.iter().filter(|(_, marker)| text.contains(marker.as_str())) {
                found.entry(name.clone()).or_insert_with(|| format!("{}#{} {field}", object.file, object.document));
            }
        }
    }
    Ok(found)
}

/// A multi-document YAML stream of the objects, for a CLI to print (`kubectl apply -f -` reads
/// it back). Each document is preceded by a `# source:` comment naming file and document.
pub fn to_yaml_stream(objects: &[RenderedObject]) -> String {
    let mut out = String::new();
    for object in objects {
        let file: String = object.file.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
        out.push_str(&format!("---\n# source: {file}, document {}\n", object.document));
        // JSON is valid YAML: a fallback that cannot lose data if the emitter ever refuses a value.
        let body = serde_saphyr::to_string(&object.value).unwrap_or_else(|_| object.value.to_string());
        out.push_str(&body);
        if !body.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Entry point for fuzz targets (`cargo fuzz`): must never panic, whatever the bytes.
///
/// The input is split on NUL bytes: the first part is a manifest file, each further part is a
/// `NAME=value` variable (values may hold newlines, quotes, `---`: injection material). The file
/// is rendered strict and non-strict, and successful output goes through the YAML emitter and
/// the overrides, so every public code path is exercised.
pub fn fuzz_render(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let content = parts.next().unwrap_or_default().to_owned();
    let vars: BTreeMap<String, String> = parts
        .filter_map(|part| part.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let files = [ManifestFile { path: "fuzz.yaml".to_owned(), content }];
    let _ = placeholders(&files);
    let _ = identity_variables(&files);
    for strict in [false, true] {
        if let Ok(mut rendered) = render(&files, &vars, strict) {
            let _ = to_yaml_stream(&rendered.objects);
            let _ = env_var_names(rendered.values());
            let _ = apply_env_overrides(rendered.values_mut(), &vars);
            let _ = apply_image_tag(rendered.values_mut(), "fuzz-1.0");
        }
    }
}
