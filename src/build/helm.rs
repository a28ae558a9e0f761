//! Helm builds: `helm template` semantics for a chart in the repository. Values are prepared
//! here (the chart's own `values.yaml` is Helm's): the application's values files and inline
//! values get their `${VAR}` placeholders filled first, by the same structure-safe rules as
//! manifests, so `?SERVICE_TAG=canary` reaches the chart, and a value can never add keys.

use std::collections::{BTreeMap, BTreeSet};

use super::BuildError;
use crate::api::HelmBuild;
use crate::render::{self, ManifestFile, parse_data};
use crate::source::RepoFile;

/// What a value a trigger call sets for Helm values may hold: a chart pastes values into YAML
/// text (`image: {{ .Values.tag }}`), so quotes, newlines, braces or `#` would let a call
/// change the structure of what it renders. Tags, versions, names, hosts and URLs fit.
pub const SAFE_CALL_VALUE: &str = "^[A-Za-z0-9._:/@+=~%^?-]*$";

/// Does `value` match [`SAFE_CALL_VALUE`]?
pub fn is_safe_call_value(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:/@+=~%^?-".contains(&b))
}

/// The cluster as the chart sees it in `.Capabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Capabilities {
    /// `v1.35.0`; empty: Helm's default.
    pub kube_version: String,
    /// Every `group/version` the API server serves (`v1` for the core group).
    pub api_versions: Vec<String>,
}

/// A chart at `chart` (a repository path) and how it is rendered.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    pub chart: &'a str,
    pub options: &'a HelmBuild,
    pub release: &'a str,
    pub namespace: &'a str,
}

/// The values layers as text (each values file, then the inline values), with the repository
/// paths they show in messages.
pub fn values_sources(files: &[RepoFile], chart: &Chart<'_>) -> Result<Vec<ManifestFile>, BuildError> {
    let mut sources = Vec::new();
    for name in &chart.options.values_files {
        let joined = if chart.chart.is_empty() { name.clone() } else { format!("{}/{name}", chart.chart) };
        let path = crate::source::normalize_path(&joined).ok_or_else(|| BuildError::Refused {
            message: format!("spec.source.helm.valuesFiles: {name:?} leads outside the repository"),
        })?;
        let file = files.iter().find(|f| f.path == path).ok_or_else(|| BuildError::Failed {
            tool: "helm",
            message: format!("spec.source.helm.valuesFiles: {path} is not in the repository"),
        })?;
        let content = String::from_utf8(file.bytes.clone())
            .map_err(|_| BuildError::Failed { tool: "helm", message: format!("{path}: file is not valid utf-8") })?;
        sources.push(ManifestFile { path, content });
    }
    if let Some(values) = &chart.options.values {
        sources.push(ManifestFile { path: "spec.source.helm.values".to_owned(), content: values.to_string() });
    }
    Ok(sources)
}

/// Every variable the values layers reference.
pub fn value_placeholders(sources: &[ManifestFile]) -> Result<BTreeSet<String>, BuildError> {
    render::placeholders(sources).map_err(|e| BuildError::Values(e.to_string()))
}

/// The values layers with placeholders filled, as JSON (valid YAML for `helm -f`).
pub fn filled_values(
    sources: &[ManifestFile],
    vars: &BTreeMap<String, String>,
    strict: bool,
) -> Result<Vec<String>, BuildError> {
    sources
        .iter()
        .map(|source| match parse_data(source, vars, strict) {
            Ok(Some(value)) if value.is_object() => Ok(value.to_string()),
            Ok(None) => Ok("{}".to_owned()),
            Ok(Some(_)) => Err(BuildError::Values(format!("{}: values must be a mapping", source.path))),
            Err(error) => Err(BuildError::Values(error.to_string())),
        })
        .collect()
}

/// The arguments of `helm template` for the chart at `chart_dir`, with the values files at
/// `values` (in order: later ones win).
pub fn args(chart: &Chart<'_>, chart_dir: &str, values: &[String], capabilities: &Capabilities) -> Vec<String> {
    // No schema validation: a values.schema.json `$ref` could read any file or URL.
    let fixed = ["--skip-tests", "--skip-schema-validation"];
    let mut args: Vec<String> = ["template", chart.release, chart_dir, "--namespace", chart.namespace]
        .iter()
        .chain(&fixed)
        .map(|a| (*a).to_owned())
        .collect();
    if chart.options.include_crds {
        args.push("--include-crds".to_owned());
    }
    if !capabilities.kube_version.is_empty() {
        args.extend(["--kube-version".to_owned(), capabilities.kube_version.clone()]);
    }
    for api_version in &capabilities.api_versions {
        args.extend(["--api-versions".to_owned(), api_version.clone()]);
    }
    for file in values {
        args.extend(["--values".to_owned(), file.clone()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(values: serde_json::Value, files: &[&str]) -> HelmBuild {
        HelmBuild {
            release_name: None,
            values: Some(values),
            values_files: files.iter().map(|f| (*f).to_owned()).collect(),
            include_crds: true,
        }
    }

    #[test]
    fn values_are_filled_before_templating_and_never_change_structure() {
        let files = [RepoFile {
            path: "chart/values-prod.yaml".into(),
            bytes: b"replicas: ${REPLICAS:-3}\nmode: prod\n".to_vec(),
        }];
        let helm = options(serde_json::json!({"image": {"tag": "${SERVICE_TAG:-stable}"}}), &["values-prod.yaml"]);
        let chart = Chart { chart: "chart", options: &helm, release: "shop", namespace: "ns" };
        let sources = values_sources(&files, &chart).unwrap();
        assert_eq!(value_placeholders(&sources).unwrap(), BTreeSet::from(["REPLICAS".into(), "SERVICE_TAG".into()]));
        let vars = BTreeMap::from([("SERVICE_TAG".to_owned(), "canary\nreplicas: 100".to_owned())]);
        let filled = filled_values(&sources, &vars, false).unwrap();
        assert_eq!(filled, [r#"{"mode":"prod","replicas":3}"#, r#"{"image":{"tag":"canary\nreplicas: 100"}}"#]);
    }

    #[test]
    fn a_call_may_fill_helm_values_with_plain_text_only() {
        for safe in ["1.2.3", "v2-rc.1", "registry.example.com:5000/team/web", "https://x.example/a?b=c%20d", ""] {
            assert!(is_safe_call_value(safe), "{safe}");
        }
        for unsafe_ in [
            "1\"\n---\nkind: RoleBinding",
            "a: b",
            "{privileged: true}",
            "[a]",
            "x # y",
            "a'b",
            "{{ .Release }}",
            "a\\b",
        ] {
            assert!(!is_safe_call_value(unsafe_), "{unsafe_}");
        }
    }

    #[test]
    fn values_files_must_exist_inside_the_repository() {
        let helm = options(serde_json::json!({}), &["../../etc/passwd"]);
        let chart = Chart { chart: "chart", options: &helm, release: "shop", namespace: "ns" };
        let error = values_sources(&[], &chart).unwrap_err().to_string();
        assert!(error.contains("leads outside the repository"), "{error}");
        let helm = options(serde_json::json!({}), &["missing.yaml"]);
        let error = values_sources(&[], &Chart { options: &helm, ..chart }).unwrap_err().to_string();
        assert!(error.contains("chart/missing.yaml is not in the repository"), "{error}");
    }

    #[test]
    fn template_arguments() {
        let helm = HelmBuild { include_crds: false, ..options(serde_json::json!({}), &[]) };
        let chart = Chart { chart: "chart", options: &helm, release: "shop", namespace: "team-a" };
        let capabilities = Capabilities { kube_version: "v1.35.0".into(), api_versions: vec!["apps/v1".into()] };
        let args = args(&chart, "/b/repo/chart", &["/b/inputs/0.json".into()], &capabilities);
        assert_eq!(
            args.join(" "),
            "template shop /b/repo/chart --namespace team-a --skip-tests --skip-schema-validation --kube-version v1.35.0 --api-versions apps/v1 --values /b/inputs/0.json"
        );
    }
}
