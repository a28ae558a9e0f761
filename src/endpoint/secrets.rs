//! Webhook secrets, cached briefly so a flood of calls does not become a flood of Secret reads.
//!
//! A cached value is used for [`FRESH_FOR`]; after that the next call reads the Secret again.
//! A signature that does not verify with a cached value is checked once more against a fresh
//! read (at most once per [`RECHECK_AFTER`]), so a rotated secret works from its first call,
//! while bad signatures cannot turn into one API read each. Concurrent calls that need a read
//! of the same Secret share one: under a flood, an expired or doubted value costs one read, not
//! one per connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// How long a read value is used without asking the API server again.
pub const FRESH_FOR: Duration = Duration::from_secs(10);
/// Minimum age of a cached value before a failed verification re-reads it.
pub const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// Which value of which Secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretKey {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

/// Why a secret value is not available.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretError {
    #[error("the webhook's secret does not exist")]
    Missing,
    #[error("the webhook's secret has no key {0:?}")]
    NoKey(String),
    #[error("cannot read the webhook's secret: {0}")]
    Unavailable(String),
}

struct Entry {
    value: Arc<Vec<u8>>,
    read_at: Instant,
}

/// Values read recently, by Secret and key.
#[derive(Default)]
pub struct SecretCache {
    entries: Mutex<HashMap<SecretKey, Entry>>,
    /// One read at a time per key; those who queued behind it take its result.
    reads: crate::keyed_lock::KeyedLocks<SecretKey>,
}

/// A value and whether it came from the cache (and may be stale).
pub struct Lookup {
    pub value: Arc<Vec<u8>>,
    pub cached_for: Option<Duration>,
}

impl SecretCache {
    /// The value, from the cache when fresh, else read from the API server.
    pub async fn get(&self, client: &Client, key: &SecretKey) -> Result<Lookup, SecretError> {
        if let Some((value, age)) = self.cached(key)
            && age < FRESH_FOR
        {
            return Ok(Lookup { value, cached_for: Some(age) });
        }
        self.read(client, key).await.map(|value| Lookup { value, cached_for: None })
    }

    /// Reads the Secret again if the cached value is old enough to be worth doubting.
    pub async fn recheck(&self, client: &Client, key: &SecretKey) -> Option<Arc<Vec<u8>>> {
        match self.cached(key) {
            Some((_, age)) if age < RECHECK_AFTER => None,
            _ => self.read(client, key).await.ok(),
        }
    }

    fn cached(&self, key: &SecretKey) -> Option<(Arc<Vec<u8>>, Duration)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).map(|entry| (entry.value.clone(), entry.read_at.elapsed()))
    }

    async fn read(&self, client: &Client, key: &SecretKey) -> Result<Arc<Vec<u8>>, SecretError> {
        let asked = Instant::now();
        let _reading = self.reads.lock(key.clone()).await;
        if let Some((value, age)) = self.cached(key)
            && age <= asked.elapsed()
        {
            return Ok(value); // read by someone else after this call asked
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &key.namespace);
        let read_at = Instant::now();
        let result = match secrets.get_opt(&key.name).await {
            Ok(Some(secret)) => secret
                .data
                .and_then(|mut data| data.remove(&key.key))
                .map(|bytes| Arc::new(bytes.0))
                .ok_or_else(|| SecretError::NoKey(key.key.clone())),
            Ok(None) => Err(SecretError::Missing),
            Err(error) => Err(SecretError::Unavailable(error.to_string())),
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(value) => {
                entries.insert(key.clone(), Entry { value: value.clone(), read_at });
            }
            // A deleted or emptied Secret stops working at once.
            Err(SecretError::Missing | SecretError::NoKey(_)) => {
                entries.remove(key);
            }
            Err(SecretError::Unavailable(_)) => {}
        }
        result
    }
}
