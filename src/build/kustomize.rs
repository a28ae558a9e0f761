//! Kustomize builds: which files a kustomization may reach, checked before `kustomize build`
//! runs, and how it runs.
//!
//! `kustomize build` with its default load restrictor (`LoadRestrictionsRootOnly`) reads files
//! only inside the kustomization's own directory, but a base or component is a directory of
//! its own and may sit anywhere on the machine: `resources: [../../../other-tenant/app]` would
//! build another tenant's files. So every path a kustomization names is resolved here first,
//! and the build is refused when one leaves the repository or names a remote base (unless the
//! operator allows those). Plugins stay off: tugboat never passes `--enable-alpha-plugins`,
//! `--enable-exec` or `--enable-helm`, so exec and KRM-function plugins and Helm inflation are
//! refused by kustomize itself.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::BuildError;
use crate::render::{ManifestFile, parse_data};
use crate::source::RepoFile;

/// File names kustomize looks for in a directory, in its order.
pub const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields that name other kustomizations (directories) or remote bases.
const DIRECTORY_FIELDS: [&str; 6] = ["resources", "bases", "components", "generators", "transformers", "validators"];
/// Fields that are lists of file paths.
const FILE_LIST_FIELDS: [&str; 3] = ["crds", "configurations", "patchesStrategicMerge"];
/// Fields that are lists of objects with a `path`.
const PATH_OBJECT_FIELDS: [&str; 3] = ["patches", "patchesJson6902", "replacements"];

/// The arguments of `kustomize build` for the kustomization at `dir` (a path on disk).
pub fn args(dir: &str) -> Vec<String> {
    ["build", dir, "--load-restrictor", "LoadRestrictionsRootOnly"].map(str::to_owned).to_vec()
}

/// Checks the kustomization at `root` (a directory of the repository, "" for its root) and
/// every kustomization it reaches: each path must stay inside the repository; remote bases
/// are refused unless `allow_remote`, and returned (for the egress check) when allowed.
pub fn confine(files: &[RepoFile], root: &str, allow_remote: bool) -> Result<Vec<String>, BuildError> {
    let index = Index::new(files);
    let mut remote = Vec::new();
    let mut seen = BTreeSet::new();
    let mut pending = vec![root.to_owned()];
    if index.kustomization(root).is_none() {
        let at = if root.is_empty() { "the repository root".to_owned() } else { root.to_owned() };
        return Err(BuildError::Refused {
            message: format!("{at} holds no kustomization.yaml, kustomization.yml or Kustomization"),
        });
    }
    while let Some(dir) = pending.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some((file, bytes)) = index.kustomization(&dir) else { continue };
        // kustomize also reads UTF-16; what this check cannot read is not built.
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Err(BuildError::Refused { message: format!("{file}: a kustomization must be UTF-8 text") });
        };
        let manifest = ManifestFile { path: file.clone(), content: text.to_owned() };
        // Placeholders are not filled here (Flux substitutes after the build, so do we).
        let parsed = parse_data(&manifest, &Default::default(), false)
            .map_err(|e| BuildError::Failed { tool: "kustomize", message: e.to_string() })?;
        let Some(Value::Object(fields)) = parsed else { continue };
        for (field, reference) in references(&fields) {
            let place = || format!("{file}: {field}: {reference:?}");
            let not_allowed = || BuildError::Refused {
                message: format!("{}: remote bases are not allowed (the operator's --allow-remote-bases)", place()),
            };
            if is_remote(&reference) {
                if !allow_remote {
                    return Err(not_allowed());
                }
                remote.push(reference);
                continue;
            }
            let Some(target) = resolve(&dir, &reference) else {
                return Err(BuildError::Refused { message: format!("{} leads outside the repository", place()) });
            };
            if !DIRECTORY_FIELDS.contains(&field) {
                continue; // a file: kustomize's own load restrictor keeps it in the kustomization's directory
            }
            if index.is_dir(&target) {
                pending.push(target);
            } else if !index.is_file(&target) {
                // Not in the repository: kustomize would take it for a remote base and fetch it.
                if !allow_remote {
                    return Err(not_allowed());
                }
                remote.push(reference);
            }
        }
    }
    Ok(remote)
}

/// Every (field, path) a kustomization names. Field names are matched without regard to case,
/// as kustomize matches them. Entries of `resources`, `bases` and `components` are always
/// paths; elsewhere text with a newline is inline (a patch, a generator's config).
fn references(fields: &serde_json::Map<String, Value>) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let mut add = |field: &'static str, value: &Value| {
        let always_a_path = ["resources", "bases", "components"].contains(&field);
        if let Some(text) = value.as_str().filter(|t| always_a_path || !t.contains('\n')) {
            found.push((field, text.to_owned()));
        }
    };
    for field in DIRECTORY_FIELDS.iter().chain(&FILE_LIST_FIELDS) {
        items(fields, field).for_each(|item| add(field, item));
    }
    for field in PATH_OBJECT_FIELDS {
        items(fields, field).filter_map(Value::as_object).flat_map(|o| values(o, "path")).for_each(|p| add(field, p));
    }
    values(fields, "openapi")
        .filter_map(Value::as_object)
        .flat_map(|o| values(o, "path"))
        .for_each(|p| add("openapi", p));
    for field in ["configMapGenerator", "secretGenerator"] {
        for generator in items(fields, field).filter_map(Value::as_object) {
            let lists =
                ["files", "envs"].into_iter().flat_map(|key| values(generator, key)).filter_map(Value::as_array);
            for entry in lists.flatten().chain(values(generator, "env")) {
                // `files` entries may be `key=path`.
                if let Some(path) = entry.as_str().map(|e| e.split_once('=').map_or(e, |(_, path)| path)) {
                    add(field, &Value::String(path.to_owned()));
                }
            }
        }
    }
    found
}

/// The values of every key of `object` that is `name` but for case.
fn values<'a>(object: &'a serde_json::Map<String, Value>, name: &'a str) -> impl Iterator<Item = &'a Value> {
    object.iter().filter(move |(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value)
}

/// The items of every list under `name` (case aside).
fn items<'a>(object: &'a serde_json::Map<String, Value>, name: &'a str) -> impl Iterator<Item = &'a Value> {
    values(object, name).filter_map(Value::as_array).flatten()
}

/// A remote base as kustomize understands them: a URL, `git@host:…`, `git::…`, or
/// `host.tld/org/repo//dir?ref=…`.
fn is_remote(reference: &str) -> bool {
    let first = reference.split('/').next().unwrap_or_default();
    reference.contains("://")
        || reference.starts_with("git@")
        || reference.starts_with("git::")
        || (reference.contains("//") || reference.contains("?ref=")) && first.contains('.') && !first.starts_with('.')
}

/// The host a remote base names (`https://host/…`, `git::https://host/…`, `git@host:…`,
/// `host.tld/org/repo//dir?ref=…`), for the egress check.
pub fn remote_host(reference: &str) -> Option<&str> {
    let reference = reference.strip_prefix("git::").unwrap_or(reference);
    let rest = match reference.split_once("://") {
        Some((_, rest)) => rest,
        None => reference,
    };
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit('@').next()?;
    // `git@host:org/repo` and `host:port`.
    let host = host.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

/// `reference` relative to `dir`, lexically (the checkout has no symbolic links); `None` when
/// it is absolute or climbs above the repository's root.
fn resolve(dir: &str, reference: &str) -> Option<String> {
    if reference.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for segment in reference.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.join("/"))
}

/// The repository's files by path, and its directories.
struct Index<'a> {
    files: HashMap<&'a str, &'a [u8]>,
    dirs: BTreeSet<&'a str>,
}

impl<'a> Index<'a> {
    fn new(files: &'a [RepoFile]) -> Self {
        let mut dirs = BTreeSet::from([""]);
        for file in files {
            let mut path = file.path.as_str();
            while let Some((parent, _)) = path.rsplit_once('/') {
                dirs.insert(parent);
                path = parent;
            }
        }
        Index { files: files.iter().map(|f| (f.path.as_str(), f.bytes.as_slice())).collect(), dirs }
    }

    fn is_dir(&self, path: &str) -> bool {
        self.dirs.contains(path)
    }

    fn is_file(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// The kustomization file of `dir` and its bytes.
    fn kustomization(&self, dir: &str) -> Option<(String, &'a [u8])> {
        KUSTOMIZATION_FILES.iter().find_map(|name| {
            let path = if dir.is_empty() { (*name).to_owned() } else { format!("{dir}/{name}") };
            let bytes = *self.files.get(path.as_str())?;
            Some((path, bytes))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> Vec<RepoFile> {
        files.iter().map(|(path, text)| RepoFile { path: (*path).into(), bytes: text.as_bytes().to_vec() }).collect()
    }

    #[test]
    fn overlays_may_reach_bases_and_components_inside_the_repository() {
        let files = repo(&[
            ("base/kustomization.yaml", "resources: [web.yaml]\n"),
            ("base/web.yaml", "kind: x\n"),
            ("components/mon/kustomization.yaml", "kind: Component\n"),
            (
                "overlays/prod/kustomization.yaml",
                "resources: [../../base]\ncomponents: [../../components/mon]\npatches:\n  - path: p.yaml\nconfigMapGenerator:\n  - name: s\n    files: [k=conf.txt]\n",
            ),
        ]);
        assert_eq!(confine(&files, "overlays/prod", false).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn every_way_out_of_the_repository_is_refused() {
        for (field, kustomization) in [
            ("resources", "resources: [../../../../etc]\n"),
            ("resources", "resources: [/etc]\n"),
            ("components", "components: [../../x/../../..]\n"),
            ("configMapGenerator", "configMapGenerator:\n  - name: s\n    files: [../../../../etc/hostname]\n"),
            (
                "secretGenerator",
                "secretGenerator:\n  - name: s\n    envs: [/var/run/secrets/kubernetes.io/serviceaccount/token]\n",
            ),
            ("patches", "patches:\n  - path: ../../../p.yaml\n"),
            // kustomize matches field names without regard to case, and takes a newline in a
            // resource for part of its path.
            ("resources", "Resources: [../../outside]\n"),
            ("resources", "RESOURCES: [\"x\\n/../../../outside\"]\n"),
            ("configMapGenerator", "ConfigMapGenerator:\n  - name: s\n    FILES: [../../../etc/hostname]\n"),
        ] {
            let files = repo(&[("app/kustomization.yaml", kustomization)]);
            let error = confine(&files, "app", false).unwrap_err().to_string();
            assert!(error.contains("leads outside the repository") && error.contains(field), "{field}: {error}");
        }
        // Reached through a base: the base's own references are checked too.
        let files = repo(&[
            ("app/kustomization.yaml", "resources: [../base]\n"),
            ("base/kustomization.yaml", "resources: [../../outside]\n"),
        ]);
        let error = confine(&files, "app", false).unwrap_err().to_string();
        assert!(error.starts_with("base/kustomization.yaml: resources"), "{error}");
    }

    #[test]
    fn a_kustomization_this_check_cannot_read_is_refused() {
        let utf16 = [0xFF, 0xFE, b'r', 0, b':', 0];
        let files = vec![RepoFile { path: "app/kustomization.yaml".into(), bytes: utf16.to_vec() }];
        let error = confine(&files, "app", false).unwrap_err().to_string();
        assert_eq!(error, "app/kustomization.yaml: a kustomization must be UTF-8 text");
    }

    #[test]
    fn remote_bases_are_refused_unless_allowed() {
        for remote in [
            "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v1.0.6",
            "github.com/org/repo//deploy?ref=main",
            "git@github.com:org/repo.git",
            "ssh://git@host/org/repo.git",
            // Not in the repository: kustomize would try these as remote bases.
            "github.com/org/repo",
            "GITHUB.COM/org/repo",
            "github.com:org/repo",
            "foo@10.0.0.5:org/repo.git",
        ] {
            let files = repo(&[("kustomization.yaml", &format!("resources: [\"{remote}\"]\n"))]);
            let error = confine(&files, "", false).unwrap_err().to_string();
            assert!(error.contains("remote bases are not allowed"), "{remote}: {error}");
            assert_eq!(confine(&files, "", true).unwrap(), [remote]);
        }
    }

    #[test]
    fn the_host_of_a_remote_base() {
        for (reference, host) in [
            ("https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v1.0.6", "github.com"),
            ("git::https://user@git.example.com:8443/org/repo.git//base", "git.example.com"),
            ("git@github.com:org/repo.git", "github.com"),
            ("ssh://git@10.0.0.5/org/repo.git", "10.0.0.5"),
            ("github.com/org/repo//deploy?ref=main", "github.com"),
        ] {
            assert_eq!(remote_host(reference), Some(host), "{reference}");
        }
    }

    #[test]
    fn a_path_without_kustomization_is_named() {
        let error = confine(&repo(&[("app/a.yaml", "")]), "app", false).unwrap_err().to_string();
        assert_eq!(error, "app holds no kustomization.yaml, kustomization.yml or Kustomization");
    }
}
