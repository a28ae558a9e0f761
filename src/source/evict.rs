//! Keeps the Git cache under `--cache-max-bytes`: after a fetch, the least recently used bare
//! repositories that nobody is using are deleted until the rest fit.
//!
//! "In use" is counted in memory ([`Usage`]) by every cache operation on a repository, readers
//! and lock holders (fetches) alike, for as long as they touch its directory; so is the time of
//! its last use, so reads cost no file-system work. A fetch also writes the time to a marker
//! file in the repository, so the order survives a restart of the operator (the cache directory
//! may outlive the process). An evicted repository is simply fetched again by the next
//! application that needs it.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// The marker whose modification time is the repository's last fetch.
const MARKER: &str = "tugboat-last-used";
/// Prefix of a repository renamed away for deletion; leftovers of a crash are deleted later.
const EVICTED: &str = ".evicted-";

/// How many operations are using each repository right now, and when each was last used.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    repos: Arc<Mutex<HashMap<PathBuf, Use>>>,
}

#[derive(Debug, Clone, Copy)]
struct Use {
    count: usize,
    last: SystemTime,
}

/// One operation's use of a repository; dropping it ends the use.
#[derive(Debug)]
pub(crate) struct InUse {
    repos: Arc<Mutex<HashMap<PathBuf, Use>>>,
    repo: PathBuf,
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut repos = self.repos.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(used) = repos.get_mut(&self.repo) {
            used.count = used.count.saturating_sub(1);
        }
    }
}

impl Usage {
    /// Starts a use of `repo` and records it as the most recent. Must come before touching
    /// the directory.
    pub fn enter(&self, repo: &Path) -> InUse {
        let mut repos = self.repos.lock().unwrap_or_else(PoisonError::into_inner);
        let used = repos.entry(repo.to_path_buf()).or_insert(Use { count: 0, last: SystemTime::UNIX_EPOCH });
        used.count += 1;
        used.last = SystemTime::now();
        InUse { repos: Arc::clone(&self.repos), repo: repo.to_path_buf() }
    }

    /// Whether `repo` is in use, and when this process last used it.
    fn state(&self, repo: &Path) -> (bool, Option<SystemTime>) {
        let repos = self.repos.lock().unwrap_or_else(PoisonError::into_inner);
        repos.get(repo).map_or((false, None), |used| (used.count > 0, Some(used.last)))
    }

    /// Renames `repo` to `to` unless it is in use; the check and the rename happen under the
    /// lock [`Usage::enter`] takes, so no use can start in between.
    fn take_unused(&self, repo: &Path, to: &Path) -> bool {
        let mut repos = self.repos.lock().unwrap_or_else(PoisonError::into_inner);
        let unused = repos.get(repo).is_none_or(|used| used.count == 0);
        let taken = unused && fs::rename(repo, to).is_ok();
        if taken {
            repos.remove(repo);
        }
        taken
    }
}

/// Records a fetch into `repo` now, for the order after a restart (blocking; best effort).
pub(crate) fn mark_used(repo: &Path) {
    if let Ok(file) = fs::OpenOptions::new().create(true).append(true).open(repo.join(MARKER)) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// One cached repository as eviction sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    pub bytes: u64,
    pub last_used: SystemTime,
    pub in_use: bool,
}

/// The repositories to delete, least recently used first, until the total fits in `max_bytes`
/// (0: no bound), and the bytes that remain. Repositories in use are never chosen, so the
/// result may still be over the bound.
pub(crate) fn plan(entries: &[Entry], max_bytes: u64) -> (Vec<String>, u64) {
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    if max_bytes == 0 || total <= max_bytes {
        return (Vec::new(), total);
    }
    let mut candidates: Vec<&Entry> = entries.iter().filter(|e| !e.in_use).collect();
    candidates.sort_by(|a, b| a.last_used.cmp(&b.last_used).then_with(|| a.name.cmp(&b.name)));
    let mut chosen = Vec::new();
    for entry in candidates {
        if total <= max_bytes {
            break;
        }
        chosen.push(entry.name.clone());
        total -= entry.bytes;
    }
    (chosen, total)
}

/// Brings the cache in `dir` under `max_bytes` (see [`plan`]); blocking file-system work, for
/// `spawn_blocking`. Returns the names of the repositories deleted.
pub(crate) fn bound(dir: &Path, max_bytes: u64, usage: &Usage) -> Vec<String> {
    if max_bytes == 0 {
        return Vec::new();
    }
    let Ok(listing) = fs::read_dir(dir) else { return Vec::new() };
    let mut entries = Vec::new();
    for item in listing.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        let path = item.path();
        if name.starts_with(EVICTED) {
            let _ = fs::remove_dir_all(&path); // a deletion a crash interrupted
            continue;
        }
        let is_repo = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_repo || !item.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let (in_use, used_here) = usage.state(&path);
        let last_used = used_here.unwrap_or_else(|| {
            [path.join(MARKER), path.clone()]
                .iter()
                .find_map(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        });
        entries.push(Entry { bytes: size_of(&path), last_used, in_use, name });
    }
    let (chosen, remaining) = plan(&entries, max_bytes);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut evicted = Vec::new();
    for name in chosen {
        let repo = dir.join(&name);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let doomed = dir.join(format!("{EVICTED}{name}-{}-{n}", std::process::id()));
        if usage.take_unused(&repo, &doomed) {
            let _ = fs::remove_dir_all(&doomed);
            evicted.push(name);
        }
    }
    if remaining > max_bytes {
        tracing::warn!(
            remaining,
            max_bytes,
            "the Git cache stays over --cache-max-bytes: the repositories left are in use"
        );
    }
    evicted
}

/// Bytes of the files below `path` (symbolic links not followed).
fn size_of(path: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(listing) = fs::read_dir(&dir) else { continue };
        for item in listing.flatten() {
            match item.metadata() {
                Ok(meta) if meta.is_dir() => pending.push(item.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(name: &str, bytes: u64, age_secs: u64, in_use: bool) -> Entry {
        let last_used = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 - age_secs);
        Entry { name: name.to_owned(), bytes, last_used, in_use }
    }

    #[test]
    fn least_recently_used_go_first_and_used_ones_never() {
        let entries = [entry("old", 40, 300, false), entry("mid", 40, 200, false), entry("new", 40, 100, false)];
        let cases: &[(u64, &[&str], u64)] = &[
            (0, &[], 120),   // no bound
            (120, &[], 120), // fits exactly
            (100, &["old"], 80),
            (50, &["old", "mid"], 40),
            (10, &["old", "mid", "new"], 0),
        ];
        for (max, chosen, remaining) in cases {
            let (got, left) = plan(&entries, *max);
            let got: Vec<&str> = got.iter().map(String::as_str).collect();
            assert_eq!((got.as_slice(), left), (*chosen, *remaining), "max {max}");
        }
        let busy = [entry("old", 40, 300, true), entry("mid", 40, 200, false), entry("new", 40, 100, true)];
        assert_eq!(plan(&busy, 50), (vec!["mid".to_owned()], 80), "over the bound, but the rest is in use");
    }

    #[test]
    fn a_use_keeps_a_repository_and_marks_it_most_recent() {
        let dir = std::env::temp_dir().join(format!("tugboat-evict-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let names = ["a", "b", "c"].map(|c| c.repeat(64));
        for name in &names {
            fs::create_dir_all(dir.join(name).join("objects")).unwrap();
            fs::write(dir.join(name).join("objects/pack"), vec![0u8; 1000]).unwrap();
        }
        fs::create_dir_all(dir.join(format!("{EVICTED}zzz"))).unwrap();
        let usage = Usage::default();
        for name in &names {
            drop(usage.enter(&dir.join(name)));
            std::thread::sleep(Duration::from_millis(20));
        }
        let held = usage.enter(&dir.join(&names[0])); // oldest mark, but in use
        assert_eq!(bound(&dir, 2500, &usage), [names[1].clone()], "b is the least recent one not in use");
        assert!(dir.join(&names[0]).exists() && dir.join(&names[2]).exists());
        assert!(!dir.join(format!("{EVICTED}zzz")).exists(), "leftovers of an interrupted eviction go");
        drop(held);
        assert_eq!(bound(&dir, 1500, &usage), [names[2].clone()], "a's use made it the most recent");
        assert_eq!(bound(&dir, 0, &usage), Vec::<String>::new());
        let _ = fs::remove_dir_all(&dir);
    }
}
