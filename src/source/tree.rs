//! Reads manifests straight from a commit in the bare cache (`ls-tree` + `cat-file --batch`), no work tree.

use std::path::Path;

use super::SourceError;
use super::git::Runner;
use crate::render::{ManifestFile, is_manifest_name};

/// One blob chosen for reading: where it shows up in messages, its id and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pick {
    /// Relative to the requested path (for a single file: its name); what errors in rendering show.
    pub display: String,
    /// Path in the repository, for errors about the file itself.
    pub full: String,
    pub sha: String,
    pub size: u64,
}

/// One `ls-tree -r -l -z` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub mode: String,
    pub kind: String,
    pub sha: String,
    pub size: u64,
    pub path: Vec<u8>,
}

/// `path` with `.`/empty segments and outer slashes dropped; `None` if it climbs out with `..`.
pub(crate) fn normalize_path(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for segment in path.trim().split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// Parses `<mode> SP <type> SP <id> SP+ <size> TAB <path> NUL` records.
pub(crate) fn parse_ls_tree(output: &[u8]) -> Result<Vec<Entry>, SourceError> {
    let bad = || SourceError::Git { message: "unexpected `git ls-tree` output".to_owned() };
    let mut entries = Vec::new();
    for record in output.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let tab = record.iter().position(|b| *b == b'\t').ok_or_else(bad)?;
        let meta = std::str::from_utf8(&record[..tab]).map_err(|_| bad())?;
        let [mode, kind, sha, size] = meta.split_whitespace().collect::<Vec<_>>()[..] else {
            return Err(bad());
        };
        let size = if size == "-" { 0 } else { size.parse().map_err(|_| bad())? };
        entries.push(Entry {
            mode: mode.into(),
            kind: kind.into(),
            sha: sha.into(),
            size,
            path: record[tab + 1..].to_vec(),
        });
    }
    Ok(entries)
}

/// Chooses the files to read below `root` ("" = repository root) from the entries of that path.
///
/// A single file is taken whatever its name (the user named it); in a directory only manifest
/// names count, and hidden files and directories (any segment starting with `.` below `root`),
/// symbolic links (which could point outside the repository) and submodules are skipped.
/// `None` when `root` names nothing readable.
pub(crate) fn pick(entries: &[Entry], root: &str) -> Result<Option<Vec<Pick>>, SourceError> {
    let readable = |e: &Entry| e.kind == "blob" && e.mode != "120000";
    if root.is_empty() && entries.is_empty() {
        return Ok(Some(Vec::new())); // an empty commit: no manifests, but nothing missing either
    }
    if !root.is_empty() {
        if let Some(file) = entries.iter().find(|e| e.path == root.as_bytes()) {
            let name = root.rsplit('/').next().unwrap_or(root).to_owned();
            let single = Pick { display: name, full: root.to_owned(), sha: file.sha.clone(), size: file.size };
            return Ok(readable(file).then(|| vec![single]));
        }
    }
    let prefix = if root.is_empty() { Vec::new() } else { format!("{root}/").into_bytes() };
    let mut found = false;
    let mut picks = Vec::new();
    for entry in entries {
        let Some(relative) = entry.path.strip_prefix(prefix.as_slice()) else {
            continue;
        };
        found = true;
        let lossy = String::from_utf8_lossy(relative);
        let hidden = lossy.split('/').any(|segment| segment.starts_with('.'));
        // `Kustomization` (no extension) is read so that the build can recognise the directory.
        let manifest = is_manifest_name(&lossy) || lossy == "Kustomization";
        if !readable(entry) || hidden || !manifest {
            continue;
        }
        let full = String::from_utf8_lossy(&entry.path).into_owned();
        let Ok(display) = String::from_utf8(relative.to_vec()) else {
            return Err(SourceError::NotUtf8 { path: full, revision: String::new() });
        };
        picks.push(Pick { display, full, sha: entry.sha.clone(), size: entry.size });
    }
    picks.sort_by(|a, b| a.display.cmp(&b.display));
    Ok(found.then_some(picks))
}

/// Lists `root` at `sha` and reads the picked blobs, at most `limit` bytes in total.
pub(crate) async fn read(
    runner: &Runner,
    repo: &Path,
    sha: &str,
    root: &str,
    revision: &str,
    limit: u64,
) -> Result<Vec<ManifestFile>, SourceError> {
    let entries = list(runner, repo, sha, root).await?;
    let not_found = || SourceError::PathNotFound { path: root.to_owned(), revision: revision.to_owned() };
    let picks = match pick(&entries, root) {
        Ok(Some(picks)) => picks,
        Ok(None) => return Err(not_found()),
        Err(SourceError::NotUtf8 { path, .. }) => return Err(SourceError::NotUtf8 { path, revision: revision.into() }),
        Err(e) => return Err(e),
    };
    let total: u64 = picks.iter().map(|p| p.size).sum();
    if total > limit {
        return Err(SourceError::TooLarge { path: root.to_owned(), revision: revision.to_owned(), limit });
    }
    let contents = blobs(runner, repo, picks.iter().map(|p| p.sha.as_str())).await?;
    picks
        .into_iter()
        .zip(contents)
        .map(|(pick, blob)| match String::from_utf8(blob) {
            Ok(content) => Ok(ManifestFile { path: pick.display, content }),
            Err(_) => Err(SourceError::NotUtf8 { path: pick.full, revision: revision.to_owned() }),
        })
        .collect()
}

/// `ls-tree -r -l -z` of `sha`, below `root` ("": everything).
async fn list(runner: &Runner, repo: &Path, sha: &str, root: &str) -> Result<Vec<Entry>, SourceError> {
    let mut cmd = runner.command(Some(repo));
    cmd.args(["--literal-pathspecs", "ls-tree", "-r", "-l", "-z", sha, "--"]);
    if !root.is_empty() {
        cmd.arg(root);
    }
    let listing = runner.run(cmd, None, "the local cache").await?;
    if !listing.status.success() {
        return Err(local_failure(&listing.stderr));
    }
    parse_ls_tree(&listing.stdout)
}

/// The contents of the blobs `shas`, in their order (one `cat-file --batch`).
async fn blobs<'a>(
    runner: &Runner,
    repo: &Path,
    shas: impl Iterator<Item = &'a str>,
) -> Result<Vec<Vec<u8>>, SourceError> {
    let request: String = shas.map(|sha| format!("{sha}\n")).collect();
    let count = request.lines().count();
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut cmd = runner.command(Some(repo));
    cmd.args(["cat-file", "--batch"]);
    let output = runner.run(cmd, Some(request.into_bytes()), "the local cache").await?;
    if !output.status.success() {
        return Err(local_failure(&output.stderr));
    }
    Ok(parse_batch(&output.stdout, count)?.into_iter().map(<[u8]>::to_vec).collect())
}

fn local_failure(stderr: &[u8]) -> SourceError {
    SourceError::Git { message: super::error::shorten(&String::from_utf8_lossy(stderr)) }
}

/// One regular file of a commit, for tools that need the repository on disk (Kustomize, Helm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Path in the repository, `/` separated.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Every regular file of `sha`, at most `limit` bytes in total. Symbolic links (which could
/// point anywhere on the machine once written out) and submodules are left out, so a tree
/// written from these files holds nothing that leads outside it.
pub(crate) async fn read_all(
    runner: &Runner,
    repo: &Path,
    sha: &str,
    revision: &str,
    limit: u64,
) -> Result<Vec<RepoFile>, SourceError> {
    let mut picks = Vec::new();
    for entry in list(runner, repo, sha, "").await? {
        if entry.kind != "blob" || entry.mode == "120000" {
            continue;
        }
        let Ok(path) = String::from_utf8(entry.path) else { continue };
        picks.push((path, entry.sha, entry.size));
    }
    let total: u64 = picks.iter().map(|(_, _, size)| size).sum();
    if total > limit {
        let path = "the repository (all of it is read to build)".to_owned();
        return Err(SourceError::TooLarge { path, revision: revision.to_owned(), limit });
    }
    let contents = blobs(runner, repo, picks.iter().map(|(_, sha, _)| sha.as_str())).await?;
    Ok(picks.into_iter().zip(contents).map(|((path, _, _), bytes)| RepoFile { path, bytes }).collect())
}

/// Splits `cat-file --batch` output (`<id> blob <size>\n<bytes>\n` per object) into contents.
pub(crate) fn parse_batch(mut out: &[u8], count: usize) -> Result<Vec<&[u8]>, SourceError> {
    let bad = |what: &str| SourceError::Git { message: format!("unexpected `git cat-file` output: {what}") };
    let mut blobs = Vec::with_capacity(count);
    for _ in 0..count {
        let newline = out.iter().position(|b| *b == b'\n').ok_or_else(|| bad("truncated header"))?;
        let header = std::str::from_utf8(&out[..newline]).map_err(|_| bad("header"))?;
        let [_, kind, size] = header.split(' ').collect::<Vec<_>>()[..] else {
            return Err(bad(header));
        };
        let size: usize = size.parse().map_err(|_| bad(header))?;
        if kind != "blob" {
            return Err(bad(header));
        }
        let start = newline + 1;
        let blob = out.get(start..start + size).ok_or_else(|| bad("truncated content"))?;
        blobs.push(blob);
        out = out.get(start + size + 1..).unwrap_or_default();
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mode: &str, kind: &str, path: &str) -> Entry {
        Entry { mode: mode.into(), kind: kind.into(), sha: path.into(), size: 1, path: path.as_bytes().to_vec() }
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize_path("./deploy//base/").as_deref(), Some("deploy/base"));
        assert_eq!(normalize_path(".").as_deref(), Some(""));
        assert_eq!(normalize_path("/").as_deref(), Some(""));
        assert_eq!(normalize_path("a/../../etc"), None);
    }

    #[test]
    fn picks_manifests_sorted_and_skips_the_rest() {
        let entries = [
            entry("100644", "blob", "deploy/b.yaml"),
            entry("100644", "blob", "deploy/a/z.YML"),
            entry("100644", "blob", "deploy/.hidden.yaml"),
            entry("100644", "blob", "deploy/.git-crypt/x.yaml"),
            entry("100644", "blob", "deploy/README.md"),
            entry("120000", "blob", "deploy/link.yaml"),
            entry("160000", "commit", "deploy/sub"),
            entry("100755", "blob", "deploy/c.json"),
        ];
        let names: Vec<_> = pick(&entries, "deploy").unwrap().unwrap().into_iter().map(|p| p.display).collect();
        assert_eq!(names, ["a/z.YML", "b.yaml", "c.json"]);
        let root: Vec<_> = pick(&entries, "").unwrap().unwrap().into_iter().map(|p| p.display).collect();
        assert_eq!(root, ["deploy/a/z.YML", "deploy/b.yaml", "deploy/c.json"]);
        let single = pick(&entries, "deploy/README.md").unwrap().unwrap();
        assert_eq!(single[0].display, "README.md");
        assert_eq!(pick(&entries, "deploy/link.yaml").unwrap(), None);
        assert_eq!(pick(&entries, "nope").unwrap(), None);
    }

    #[test]
    fn parses_git_output() {
        let listing = b"100644 blob aaaa       12\tdeploy/a.yaml\x00100644 blob bbbb        0\tb c.yaml\0";
        let entries = parse_ls_tree(listing).unwrap();
        assert_eq!(
            entries[1],
            Entry {
                mode: "100644".into(),
                kind: "blob".into(),
                sha: "bbbb".into(),
                size: 0,
                path: b"b c.yaml".to_vec()
            }
        );
        let batch = b"aaaa blob 3\nx\ny\nbbbb blob 0\n\n";
        assert_eq!(parse_batch(batch, 2).unwrap(), [&b"x\ny"[..], &b""[..]]);
        assert!(parse_batch(b"aaaa missing\n", 1).is_err());
    }
}
