//! Reads manifest files from disk: the only I/O of rendering, kept thin so everything else is pure.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::RenderError;

/// One manifest file, as read from disk (or built by a test or a fuzz target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Display path relative to the manifest root, `/` separated: what errors show.
    pub path: String,
    pub content: String,
}

/// File extensions that are manifests; JSON is read as YAML (it is a subset).
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Reads `path`: a single file (whatever its extension), or a directory walked recursively.
///
/// In a directory only `*.yaml`, `*.yml` and `*.json` are read, hidden files and directories
/// (name starting with `.`, such as `.git`) are skipped, and files are sorted by relative path
/// so that the output order does not depend on the file system. Symbolic links to files are
/// followed; symbolic links to directories are not, which rules out loops.
pub fn read_manifests(path: &Path) -> Result<Vec<ManifestFile>, RenderError> {
    let display = |p: &Path| p.to_string_lossy().replace('\\', "/");
    let io = |p: &Path, source| RenderError::Io { path: display(p), source };
    let metadata = fs::metadata(path).map_err(|e| io(path, e))?;
    if !metadata.is_dir() {
        let name = path.file_name().map_or_else(|| display(path), |n| n.to_string_lossy().into_owned());
        return Ok(vec![read_one(path, name)?]);
    }
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let mut pending = vec![(path.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let relative = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            let file_type = entry.file_type().map_err(|e| io(&entry.path(), e))?;
            if file_type.is_dir() {
                pending.push((entry.path(), relative));
            } else if is_manifest_name(&name) && (file_type.is_file() || entry.path().is_file()) {
                found.push((relative, entry.path()));
            }
        }
    }
    found.sort();
    found.into_iter().map(|(relative, full)| read_one(&full, relative)).collect()
}

pub fn is_manifest_name(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|known| e.eq_ignore_ascii_case(known)))
}

fn read_one(full: &Path, display: String) -> Result<ManifestFile, RenderError> {
    let bytes = fs::read(full).map_err(|source| RenderError::Io { path: display.clone(), source })?;
    match String::from_utf8(bytes) {
        Ok(content) => Ok(ManifestFile { path: display, content }),
        Err(_) => Err(RenderError::NotUtf8 { path: display }),
    }
}
