//! The build phase, between the source and rendering: a Kustomize overlay or a Helm chart
//! becomes one stream of manifests, which is then rendered (`${VAR}`), overridden and planned
//! like a directory of plain YAML.
//!
//! There is no mature Rust engine for either, so this does what Argo CD does: it runs pinned
//! `kustomize` and `helm` binaries, hermetically ([`process`]), on the repository's files
//! written to a private directory ([`checkout`]), after checking what a kustomization may
//! reach ([`kustomize::confine`]). Output is cached by every input ([`cache`]).

#![forbid(unsafe_code)]

mod cache;
mod checkout;
pub mod helm;
pub mod kustomize;
pub mod local;
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

pub use helm::Capabilities;
pub use process::Tool;

use crate::api::{GitSource, HelmBuild};
use crate::keyed_lock::KeyedLocks;
use crate::render::ManifestFile;
use crate::source::RepoFile;

/// How `spec.source.path` is built.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    Kustomize,
    Helm(HelmBuild),
}

impl Method {
    /// The method the spec asks for, else the one the files directly in `path` show
    /// (`top_level`: their names); `None`: plain manifests.
    pub fn of<'a>(source: &GitSource, mut top_level: impl Iterator<Item = &'a str>) -> Option<Method> {
        if let Some(helm) = &source.helm {
            return Some(Method::Helm(helm.clone()));
        }
        if source.kustomize.is_some() {
            return Some(Method::Kustomize);
        }
        let names: BTreeSet<&str> = top_level.by_ref().collect();
        if kustomize::KUSTOMIZATION_FILES.iter().any(|name| names.contains(name)) {
            Some(Method::Kustomize)
        } else if names.contains("Chart.yaml") {
            let helm = HelmBuild { release_name: None, values: None, values_files: Vec::new(), include_crds: true };
            Some(Method::Helm(helm))
        } else {
            None
        }
    }

    /// The tool's name, as messages and the output's file name show it.
    pub fn tool(&self) -> &'static str {
        match self {
            Method::Kustomize => "kustomize",
            Method::Helm(_) => "helm",
        }
    }
}

/// Why a build failed. Messages start with what failed, so they read well after the revision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The tool ran and refused the kustomization or chart: its own message.
    #[error("{tool} failed: {message}")]
    Failed { tool: &'static str, message: String },
    /// tugboat refused to run the tool on this content (it reaches outside the repository, or
    /// a remote base that is not allowed).
    #[error("{message}")]
    Refused { message: String },
    /// Helm values that cannot be read or filled.
    #[error("helm values: {0}")]
    Values(String),
    #[error("{tool} did not finish within {seconds}s (--render-timeout)")]
    Timeout { tool: &'static str, seconds: u64 },
    #[error("{tool} printed more than {limit} bytes (--render-max-bytes); nothing was applied")]
    OutputTooLarge { tool: &'static str, limit: u64 },
    /// The operator is set up wrong, not the application.
    #[error("the {tool} binary {program:?} cannot be run: set {flag}, or use the tugboat image, which ships it")]
    ToolMissing { tool: &'static str, program: String, flag: &'static str },
    #[error("cannot {what}: {message}")]
    Io { what: String, message: String },
}

/// What a build gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The tool's output, as one file named after the tool and path.
    pub files: Vec<ManifestFile>,
    /// Variables the Helm values reference (filled before templating).
    pub value_variables: BTreeSet<String>,
}

impl Built {
    fn size(&self) -> u64 {
        self.files.iter().map(|f| (f.content.len() + f.path.len()) as u64).sum()
    }
}

/// Where and how the tools run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kustomize: Tool,
    pub helm: Tool,
    /// Let kustomizations name remote bases (`--allow-remote-bases`).
    pub allow_remote_bases: bool,
    /// The addresses a remote base's host may resolve to (the Git egress guard's policy).
    pub egress: crate::egress::EgressPolicy,
    /// Parent of the private build directories.
    pub work_dir: PathBuf,
    /// Bytes of built output kept for reuse.
    pub cache_bytes: u64,
}

impl Default for Settings {
    /// The operator's defaults: the tools on PATH, 60 s, 64 MiB of output, 256 MiB of memory.
    fn default() -> Self {
        let tool = |name: &'static str, flag| Tool {
            name,
            program: PathBuf::from(name),
            flag,
            timeout: std::time::Duration::from_secs(60),
            max_output: 64 << 20,
            max_memory: 256 << 20,
        };
        Settings {
            kustomize: tool("kustomize", "--kustomize-bin"),
            helm: tool("helm", "--helm-bin"),
            allow_remote_bases: false,
            egress: crate::egress::EgressPolicy::for_git(Vec::new(), false),
            work_dir: std::env::temp_dir().join("tugboat-builds"),
            cache_bytes: 64 << 20,
        }
    }
}

/// One build: the revision, the path, and everything else the output depends on.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub url: &'a str,
    pub sha: &'a str,
    pub path: &'a str,
    pub method: &'a Method,
    /// The Helm release name (`.Release.Name`).
    pub release: &'a str,
    /// The target namespace (`.Release.Namespace`, `kustomize` ignores it).
    pub namespace: &'a str,
    pub variables: &'a BTreeMap<String, String>,
    pub strict: bool,
    pub capabilities: &'a Capabilities,
}

/// Build tools run at once: two at `--build-max-memory` (256 MiB) fit the chart's 512 MiB
/// limit beside the operator itself.
pub const PARALLEL_BUILDS: usize = 2;

/// Runs builds and keeps their output.
pub struct Builder {
    settings: Settings,
    outputs: Mutex<cache::Outputs>,
    /// Per build without variables: the variables its Helm values reference.
    value_variables: Mutex<lru::LruCache<cache::Key, BTreeSet<String>>>,
    /// Per revision and path: the method its files showed (so a cached build reads no files).
    detected: Mutex<lru::LruCache<cache::Key, Method>>,
    /// One build of the same inputs at a time: the others take its output.
    locks: KeyedLocks<cache::Key>,
    /// Builds at once ([`PARALLEL_BUILDS`], taken by the caller: [`Builder::slot`]): each tool
    /// may use `--build-max-memory`, and they share the operator's memory limit.
    running: tokio::sync::Semaphore,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Builder {
    pub fn new(settings: Settings, metrics: Arc<crate::metrics::Metrics>) -> Self {
        let outputs = Mutex::new(cache::Outputs::new(settings.cache_bytes));
        let entries = std::num::NonZeroUsize::new(4096).unwrap_or(std::num::NonZeroUsize::MIN);
        Builder {
            settings,
            outputs,
            value_variables: Mutex::new(lru::LruCache::new(entries)),
            detected: Mutex::new(lru::LruCache::new(entries)),
            locks: KeyedLocks::default(),
            running: tokio::sync::Semaphore::new(PARALLEL_BUILDS),
            metrics,
        }
    }

    /// The method the files at `path` of commit `sha` showed before ([`Builder::remember`]).
    pub fn detected(&self, url: &str, sha: &str, path: &str) -> Option<Method> {
        let key = hash(&[url, sha, path].join("\0"));
        self.detected.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned()
    }

    pub fn remember(&self, url: &str, sha: &str, path: &str, method: Method) {
        let key = hash(&[url, sha, path].join("\0"));
        self.detected.lock().unwrap_or_else(PoisonError::into_inner).put(key, method);
    }

    /// The output of an earlier build of exactly these inputs, without reading the repository.
    pub fn cached(&self, request: &Request<'_>) -> Option<Arc<Built>> {
        let shape = shape_key(request);
        let names = self.value_variables.lock().unwrap_or_else(PoisonError::into_inner).get(&shape).cloned()?;
        let key = output_key(&shape, request, &names);
        self.outputs.lock().unwrap_or_else(PoisonError::into_inner).get(&key)
    }

    /// Builds `request` from the revision's `files` (or takes the output of the same build).
    pub async fn build(&self, request: &Request<'_>, files: &[RepoFile]) -> Result<Arc<Built>, BuildError> {
        let path = crate::source::normalize_path(request.path).unwrap_or_default();
        let values = match request.method {
            Method::Helm(options) => Some(helm::values_sources(files, &chart(request, &path, options))?),
            Method::Kustomize => None,
        };
        let names = match &values {
            Some(sources) => helm::value_placeholders(sources)?,
            None => BTreeSet::new(),
        };
        let shape = shape_key(request);
        self.value_variables.lock().unwrap_or_else(PoisonError::into_inner).put(shape.clone(), names.clone());
        let key = output_key(&shape, request, &names);
        let _one_at_a_time = self.locks.lock(key.clone()).await;
        if let Some(built) = self.outputs.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(built);
        }
        if let Method::Kustomize = request.method {
            for reference in kustomize::confine(files, &path, self.settings.allow_remote_bases)? {
                self.check_egress(&reference).await?;
            }
        }
        let checkout = checkout::Checkout::write(&self.settings.work_dir, files)?;
        let (tool, args) = self.invocation(request, &path, &checkout, values.as_deref())?;
        let content = self.run(tool, &args, &checkout).await?;
        let shown = if path.is_empty() { "." } else { path.as_str() };
        let file = ManifestFile { path: format!("{shown} ({} output)", tool.name), content };
        let built = Arc::new(Built { files: vec![file], value_variables: names });
        self.outputs.lock().unwrap_or_else(PoisonError::into_inner).put(key, built.clone());
        Ok(built)
    }

    /// The tool and its arguments for `request` on `checkout` (Helm values filled and written).
    fn invocation(
        &self,
        request: &Request<'_>,
        path: &str,
        checkout: &checkout::Checkout,
        values: Option<&[ManifestFile]>,
    ) -> Result<(&Tool, Vec<String>), BuildError> {
        let dir = checkout.repo().join(path).to_string_lossy().into_owned();
        let Method::Helm(options) = request.method else {
            return Ok((&self.settings.kustomize, kustomize::args(&dir)));
        };
        let filled = helm::filled_values(values.unwrap_or_default(), request.variables, request.strict)?;
        let mut written = Vec::new();
        for (n, text) in filled.iter().enumerate() {
            let file = checkout.inputs().join(format!("values-{n}.json"));
            std::fs::write(&file, text)
                .map_err(|e| BuildError::Io { what: "write the values".into(), message: e.to_string() })?;
            written.push(file.to_string_lossy().into_owned());
        }
        let args = helm::args(&chart(request, path, options), &dir, &written, request.capabilities);
        Ok((&self.settings.helm, args))
    }

    /// One of the [`PARALLEL_BUILDS`] build slots, held while a build reads the repository and
    /// runs its tool (`None` only once the builder is gone).
    pub async fn slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.running.acquire().await.ok()
    }

    /// Runs `tool`; its output, counted in the metrics.
    async fn run(&self, tool: &Tool, args: &[String], checkout: &checkout::Checkout) -> Result<String, BuildError> {
        let started = std::time::Instant::now();
        let output = process::run(tool, args, &checkout.repo(), &checkout.home()).await;
        self.metrics.build_finished(tool.name, output.is_ok(), started.elapsed());
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(tool = tool.name, elapsed_ms, ok = output.is_ok(), "build");
        let output = output.map_err(|error| readable(error, &checkout.repo().to_string_lossy()))?;
        String::from_utf8(output)
            .map_err(|_| BuildError::Failed { tool: tool.name, message: "the output is not valid utf-8".into() })
    }
}

fn chart<'a>(request: &Request<'a>, path: &'a str, options: &'a HelmBuild) -> helm::Chart<'a> {
    helm::Chart { chart: path, options, release: request.release, namespace: request.namespace }
}

impl Builder {
    /// A remote base (allowed by `--allow-remote-bases`) must pass the Git egress guard: every
    /// address its host resolves to is checked. kustomize's own git then connects; it resolves
    /// again, so this stops plain mistakes and hostile names, not a DNS server that answers
    /// differently a moment later (use a proxy or a NetworkPolicy for that).
    async fn check_egress(&self, reference: &str) -> Result<(), BuildError> {
        let refused = |why: String| BuildError::Refused { message: format!("remote base {reference:?}: {why}") };
        let host = kustomize::remote_host(reference).ok_or_else(|| refused("names no host".into()))?;
        let addresses: Vec<std::net::IpAddr> = match host.parse() {
            Ok(address) => vec![address],
            Err(_) => {
                let lookup = tokio::net::lookup_host((host, 443));
                match tokio::time::timeout(std::time::Duration::from_secs(10), lookup).await {
                    Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                    _ => return Err(refused(format!("{host} does not resolve"))),
                }
            }
        };
        for address in addresses {
            if let Err(blocked) = self.settings.egress.check(address) {
                return Err(refused(format!(
                    "{host} resolves to {address}, {} (the Git egress guard, --git-egress-allow)",
                    blocked.describe()
                )));
            }
        }
        tracing::info!(reference, "building with a remote base (--allow-remote-bases)");
        Ok(())
    }
}

/// Entry point for fuzz targets (`cargo fuzz`): what a repository gives the build phase before
/// any tool runs must never panic. The input is split on NUL bytes: a kustomization, Helm
/// values, then `NAME=value` variables.
pub fn fuzz_build(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let kustomization = parts.next().unwrap_or_default().as_bytes().to_vec();
    let values = parts.next().unwrap_or_default().as_bytes().to_vec();
    let vars: BTreeMap<String, String> =
        parts.filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let files = vec![
        RepoFile { path: "app/kustomization.yaml".into(), bytes: kustomization.clone() },
        RepoFile { path: "base/kustomization.yaml".into(), bytes: kustomization },
        RepoFile { path: "chart/values-prod.yaml".into(), bytes: values },
    ];
    for allow in [false, true] {
        if let Ok(remote) = kustomize::confine(&files, "app", allow) {
            remote.iter().for_each(|r| {
                let _ = kustomize::remote_host(r);
            });
        }
    }
    let options = HelmBuild {
        release_name: None,
        values: Some(serde_json::json!({"image": {"tag": "${TAG:-1}"}})),
        values_files: vec!["values-prod.yaml".into()],
        include_crds: true,
    };
    let chart = helm::Chart { chart: "chart", options: &options, release: "r", namespace: "n" };
    if let Ok(sources) = helm::values_sources(&files, &chart) {
        let _ = helm::value_placeholders(&sources);
        let _ = helm::filled_values(&sources, &vars, false);
        let _ = helm::filled_values(&sources, &vars, true);
    }
}

/// Tools name files by their place on disk: messages name them by their place in the repository.
fn readable(error: BuildError, repo: &str) -> BuildError {
    match error {
        BuildError::Failed { tool, message } => {
            let message = message.replace(&format!("{repo}/"), "").replace(repo, ".");
            BuildError::Failed { tool, message: crate::source::shorten(&message) }
        }
        other => other,
    }
}

/// Everything the output depends on but variables.
fn shape_key(request: &Request<'_>) -> cache::Key {
    let method = match request.method {
        Method::Kustomize => "kustomize".to_owned(),
        Method::Helm(options) => serde_json::to_string(options).unwrap_or_default(),
    };
    // A kustomization's output depends on neither release, namespace nor the cluster.
    let (release, namespace, capabilities) = match request.method {
        Method::Helm(_) => {
            let capabilities = request.capabilities;
            let seen = format!("{}|{}", capabilities.kube_version, capabilities.api_versions.join(","));
            (request.release, request.namespace, seen)
        }
        Method::Kustomize => ("", "", String::new()),
    };
    let parts = [request.url, request.sha, request.path, &method, release, namespace, &capabilities];
    hash(&parts.join("\0"))
}

/// The shape plus the values of the variables the build reads.
fn output_key(shape: &str, request: &Request<'_>, names: &BTreeSet<String>) -> cache::Key {
    let mut text = format!("{shape}\0{}", request.strict);
    for name in names {
        let value = request.variables.get(name).map(String::as_str).unwrap_or("\u{1}unset");
        text.push_str(&format!("\0{name}={value}"));
    }
    hash(&text)
}

fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}
