//! Webhook paths: derived from the Webhook's uid with the operator's secret key, never read
//! back from `status.webhookPath`.
//!
//! The path is the capability of `generic` and `dockerhub` Webhooks, so nobody may choose it:
//! not a tenant who can write `webhooks/status`, not someone who read the Webhook's uid in an
//! Event. `HMAC-SHA256(key, uid)` is stable for the object's life, the same on every replica
//! (they share the key), and unguessable without the key. The key lives in a Secret in the
//! operator's namespace, created with 256 random bits by the first replica that finds none.
//! Deleting it (and restarting the operator) gives every Webhook a new path.

use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use sha2::Sha256;

use crate::api::{PATH_PREFIX, Webhook};

/// Name of the key's Secret in the operator's namespace, and its data key.
pub const KEY_SECRET: &str = "tugboat-webhook-path-key";
const KEY_FIELD: &str = "key";
/// Shortest key accepted from the Secret (someone may have written one by hand).
const MIN_KEY_BYTES: usize = 32;

/// The operator's key for Webhook paths (kept as the keyed HMAC, ready to clone per path).
#[derive(Clone)]
pub struct PathKey(Hmac<Sha256>);

impl std::fmt::Debug for PathKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PathKey(redacted)")
    }
}

/// Why the key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or create the Secret {namespace}/{KEY_SECRET} holding the Webhook path key: {source}")]
    Api {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the Secret {namespace}/{KEY_SECRET} has no usable data.{KEY_FIELD} (at least {MIN_KEY_BYTES} bytes): delete it and the operator creates a new one"
    )]
    Unusable { namespace: String },
}

impl PathKey {
    /// A key from bytes; `None` when too short to be a secret.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < MIN_KEY_BYTES {
            return None;
        }
        <Hmac<Sha256> as KeyInit>::new_from_slice(bytes).ok().map(Self)
    }

    /// The path of the Webhook with this uid: `/api/stacks/webhooks/<uuid>`, the uuid made of
    /// the HMAC's first 128 bits (with the version-4 bits set, so it reads as any uuid).
    pub fn path_for_uid(&self, uid: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(b"tugboat webhook path\0");
        mac.update(uid.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        format!("{PATH_PREFIX}{}", uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    /// The Webhook's path; `None` before the API server gave it a uid.
    pub fn path_for(&self, webhook: &Webhook) -> Option<String> {
        webhook.uid().map(|uid| self.path_for_uid(&uid))
    }

    /// Reads the key from its Secret in `namespace`, creating the Secret when there is none
    /// (two replicas starting at once: one creates, the other reads what it created).
    pub async fn load_or_create(client: &Client, namespace: &str) -> Result<Self, KeyError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let api_error = |source| KeyError::Api { namespace: namespace.to_owned(), source };
        for _ in 0..3 {
            if let Some(secret) = api.get_opt(KEY_SECRET).await.map_err(api_error)? {
                let bytes = secret.data.and_then(|mut data| data.remove(KEY_FIELD)).map(|b| b.0);
                let key = bytes.and_then(|bytes| Self::new(&bytes));
                return key.ok_or(KeyError::Unusable { namespace: namespace.to_owned() });
            }
            let bytes = rand::random::<[u8; 32]>().to_vec();
            let key = Self::new(&bytes).ok_or(KeyError::Unusable { namespace: namespace.to_owned() })?;
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(KEY_SECRET.to_owned()),
                    labels: Some([("app.kubernetes.io/managed-by".to_owned(), "tugboat".to_owned())].into()),
                    annotations: Some(
                        [(
                            "tugboat.dev/purpose".to_owned(),
                            "derives every Webhook's path; deleting it (then restarting tugboat) changes them all"
                                .to_owned(),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                },
                data: Some([(KEY_FIELD.to_owned(), ByteString(bytes))].into()),
                immutable: Some(true),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &secret).await {
                Ok(_) => {
                    tracing::info!(%namespace, secret = KEY_SECRET, "created the Webhook path key");
                    return Ok(key);
                }
                // Another replica created it first: read that one.
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(source) => return Err(api_error(source)),
            }
        }
        Err(KeyError::Unusable { namespace: namespace.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_stable_per_uid_and_key_and_looks_like_any_webhook_path() {
        let key = PathKey::new(&[7; 32]).expect("key");
        let path = key.path_for_uid("3f1c7e52-0b5e-4c1e-9b1e-2f0c9d7f1a01");
        assert_eq!(path, key.path_for_uid("3f1c7e52-0b5e-4c1e-9b1e-2f0c9d7f1a01"), "stable");
        let id = path.strip_prefix(PATH_PREFIX).expect("prefix");
        let parsed = uuid::Uuid::parse_str(id).expect("a uuid");
        assert_eq!(parsed.get_version_num(), 4);
        assert_ne!(path, key.path_for_uid("3f1c7e52-0b5e-4c1e-9b1e-2f0c9d7f1a02"), "per uid");
        let other = PathKey::new(&[8; 32]).expect("key");
        assert_ne!(path, other.path_for_uid("3f1c7e52-0b5e-4c1e-9b1e-2f0c9d7f1a01"), "per key");
        assert_ne!(id, "3f1c7e52-0b5e-4c1e-9b1e-2f0c9d7f1a01", "the uid itself is not the path");
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert!(PathKey::new(&[1; 31]).is_none());
        let key = PathKey::new(&[1; 32]).expect("key");
        assert_eq!(format!("{key:?}"), "PathKey(redacted)");
    }
}
