//! A local directory as the repository a build runs on (`tugboat render`): the enclosing Git
//! work tree (the nearest parent with `.git`), else the directory itself, read as the operator
//! reads a commit: regular files only, `.git` left out, within a size limit.

use std::fs;
use std::path::{Path, PathBuf};

use super::BuildError;
use crate::source::RepoFile;

/// The repository's files and `path` relative to its root (`/` separated).
pub fn read(path: &Path, limit: u64) -> Result<(Vec<RepoFile>, String), BuildError> {
    let io = |what: &Path, e: std::io::Error| BuildError::Io {
        what: format!("read {}", what.display()),
        message: e.to_string(),
    };
    let full = fs::canonicalize(path).map_err(|e| io(path, e))?;
    let start = if full.is_dir() { full.clone() } else { full.parent().map(Path::to_path_buf).unwrap_or_default() };
    let root = start.ancestors().find(|dir| dir.join(".git").exists()).unwrap_or(&start).to_path_buf();
    let relative = full.strip_prefix(&root).unwrap_or(Path::new("")).to_string_lossy().replace('\\', "/");
    let names = match git_files(&root) {
        Some(names) => names,
        None => walk(&root).map_err(|e| io(&root, e))?,
    };
    let mut files = Vec::new();
    let mut total = 0u64;
    for name in names {
        let full = root.join(&name);
        // Regular files only, as from a commit: a symbolic link is left out.
        if !fs::symlink_metadata(&full).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let bytes = fs::read(&full).map_err(|e| io(&full, e))?;
        total += bytes.len() as u64;
        if total > limit {
            let message = format!("{} holds more than {limit} bytes of files (--render-max-bytes)", root.display());
            return Err(BuildError::Refused { message });
        }
        files.push(RepoFile { path: name, bytes });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, relative))
}

/// The files of the work tree at `root` that a commit could hold: tracked, or new and not ignored.
fn git_files(root: &Path) -> Option<Vec<String>> {
    if !root.join(".git").exists() {
        return None;
    }
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let names = output.stdout.split(|b| *b == 0).filter(|n| !n.is_empty());
    Some(names.filter_map(|name| String::from_utf8(name.to_vec()).ok()).collect())
}

/// Every file below `root` but `.git`, `/` separated and relative to it.
fn walk(root: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() && entry.file_name() != ".git" {
                pending.push(entry.path());
            } else if kind.is_file() {
                let relative =
                    entry.path().strip_prefix(root).unwrap_or(Path::new("")).to_string_lossy().replace('\\', "/");
                names.push(relative);
            }
        }
    }
    Ok(names)
}
