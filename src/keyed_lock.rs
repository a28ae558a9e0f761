//! One async lock per key (a repository, a Secret, a hook), for work that must not run twice
//! at once for the same key. An entry lives only while someone holds or waits for its lock,
//! so the map stays as small as the work in flight, however many keys pass through.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

type Locks<K> = Arc<Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>>;

/// Per-key async locks whose entries are removed once unused.
pub struct KeyedLocks<K> {
    locks: Locks<K>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self { locks: Arc::default() }
    }
}

/// Holds the lock of one key; dropping it releases the lock and forgets the key when nobody
/// else waits for it.
pub struct KeyedGuard<K: Eq + Hash> {
    key: Option<K>,
    guard: Option<OwnedMutexGuard<()>>,
    locks: Locks<K>,
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    /// Waits for the lock of `key`.
    pub async fn lock(&self, key: K) -> KeyedGuard<K> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(key.clone()).or_default())
        };
        let guard = lock.lock_owned().await;
        KeyedGuard { key: Some(key), guard: Some(guard), locks: Arc::clone(&self.locks) }
    }

    /// Keys with a lock held or awaited (for tests and metrics).
    pub fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash> Drop for KeyedGuard<K> {
    fn drop(&mut self) {
        // Release first: the guard holds a reference to the lock of the entry.
        drop(self.guard.take());
        let Some(key) = self.key.take() else { return };
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the map's own reference left: nobody holds or waits (a new asker would need
        // the map's lock, which is held here).
        if locks.get(&key).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            locks.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_key_and_no_entry_left_afterwards() {
        let locks = Arc::new(KeyedLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (locks, inside, most) = (Arc::clone(&locks), Arc::clone(&inside), Arc::clone(&most));
            tasks.push(tokio::spawn(async move {
                let _guard = locks.lock(format!("key-{}", i % 4)).await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        assert!(most.load(Ordering::SeqCst) <= 4, "at most one holder per key, four keys");
        assert!(locks.is_empty(), "every entry is removed once unused");
    }

    #[tokio::test]
    async fn a_waiter_keeps_the_entry_until_it_is_done() {
        let locks = Arc::new(KeyedLocks::default());
        let first = locks.lock("repo").await;
        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                let _second = locks.lock("repo").await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert_eq!(locks.len(), 1, "the waiter still needs the entry");
        waiter.await.expect("waiter");
        assert!(locks.is_empty());
    }
}
