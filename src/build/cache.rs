//! Built output, kept by everything it depends on, so a reconcile that changes nothing starts
//! no process, and many applications of one repository, path and inputs build once.
//!
//! Bounded by bytes: least recently used outputs go first.

use std::sync::Arc;

use lru::LruCache;

use super::Built;

/// Hex SHA-256 of every input of a build.
pub type Key = String;

pub struct Outputs {
    entries: LruCache<Key, Arc<Built>>,
    bytes: u64,
    max_bytes: u64,
}

impl Outputs {
    pub fn new(max_bytes: u64) -> Self {
        Outputs { entries: LruCache::unbounded(), bytes: 0, max_bytes }
    }

    pub fn get(&mut self, key: &str) -> Option<Arc<Built>> {
        self.entries.get(key).cloned()
    }

    pub fn put(&mut self, key: Key, built: Arc<Built>) {
        let size = built.size();
        if size > self.max_bytes {
            return;
        }
        if let Some(old) = self.entries.put(key, built) {
            self.bytes -= old.size();
        }
        self.bytes += size;
        while self.bytes > self.max_bytes {
            let Some((_, evicted)) = self.entries.pop_lru() else { break };
            self.bytes -= evicted.size();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::ManifestFile;

    fn built(bytes: usize) -> Arc<Built> {
        let files = vec![ManifestFile { path: "x".into(), content: "a".repeat(bytes) }];
        Arc::new(Built { files, value_variables: Default::default() })
    }

    #[test]
    fn least_recently_used_outputs_go_first_when_over_the_byte_bound() {
        let mut outputs = Outputs::new(100);
        outputs.put("a".into(), built(40));
        outputs.put("b".into(), built(40));
        assert!(outputs.get("a").is_some());
        outputs.put("c".into(), built(40));
        assert!(outputs.get("b").is_none(), "b was the least recently used");
        assert!(outputs.get("a").is_some() && outputs.get("c").is_some());
        outputs.put("huge".into(), built(101));
        assert!(outputs.get("huge").is_none(), "never kept: larger than the bound");
        assert_eq!(outputs.bytes, 82, "two entries of 40 bytes and a 1-byte name");
    }
}
