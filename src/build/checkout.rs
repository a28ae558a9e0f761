//! The repository's files written out for a build tool: a private directory (0700) that holds
//! only regular files and directories (no symbolic links: see `source::RepoFile`), so every path
//! that stays inside it lexically stays inside it on disk. Deleted when dropped.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::BuildError;
use crate::source::RepoFile;

#[derive(Debug)]
pub struct Checkout {
    dir: PathBuf,
}

impl Checkout {
    /// Writes `files` below a new directory in `parent`: `repo/` holds the repository, `home/`
    /// is the tool's HOME, `inputs/` the values files tugboat writes.
    pub fn write(parent: &Path, files: &[RepoFile]) -> Result<Checkout, BuildError> {
        let io = |what: &str, e: std::io::Error| BuildError::Io { what: what.to_owned(), message: e.to_string() };
        DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(parent)
            .map_err(|e| io("create the build directory", e))?;
        // Random, so no build can name another's directory (they all run as one user).
        let dir = parent.join(format!("build-{}", uuid::Uuid::new_v4().simple()));
        DirBuilder::new().mode(0o700).create(&dir).map_err(|e| io("create the build directory", e))?;
        let checkout = Checkout { dir };
        for sub in ["repo", "home", "inputs"] {
            fs::create_dir(checkout.dir.join(sub)).map_err(|e| io("create the build directory", e))?;
        }
        let repo = checkout.repo();
        for file in files {
            // Paths come from git's tree, which never holds `..` or absolute names; checked anyway.
            if file.path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
                continue;
            }
            let target = repo.join(&file.path);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| io(&format!("write {}", file.path), e))?;
            }
            fs::write(&target, &file.bytes).map_err(|e| io(&format!("write {}", file.path), e))?;
        }
        Ok(checkout)
    }

    /// The repository's root.
    pub fn repo(&self) -> PathBuf {
        self.dir.join("repo")
    }

    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    pub fn inputs(&self) -> PathBuf {
        self.dir.join("inputs")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
