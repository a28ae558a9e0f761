//! Deliveries already recorded: a provider's retry, a redelivery, or a replayed Standard
//! Webhooks call deploys once.
//!
//! The ids are remembered *in the application*, in [`DELIVERIES_ANNOTATION`], written by the
//! same resourceVersion-guarded patch that records the trigger. So an id is remembered exactly
//! when its trigger is durable (a sender's retry after a 503 is recorded, not refused), every
//! replica sees the same list (one signed call sent to two replicas records once), and ids are
//! scoped to the Webhook that received them (two senders cannot collide).

use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::Provider;

/// Annotation holding the latest deliveries' keys (a JSON list, oldest first).
pub const DELIVERIES_ANNOTATION: &str = "tugboat.dev/deliveries";

/// Deliveries remembered per application (about 6 KiB). A Standard Webhooks replay must
/// also carry a timestamp within 5 minutes, so it passes only after this many other
/// deliveries reached the application within those minutes.
pub const REMEMBERED: usize = 256;

/// Longest delivery id read from a header; a longer one is refused (400), never truncated.
pub const MAX_DELIVERY_ID_LEN: usize = 256;

/// The headers that name a delivery, per provider, in the order they are tried. Senders keep
/// the value across their retries and redeliveries.
pub fn id_headers(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Github => &["X-GitHub-Delivery"],
        // `Idempotency-Key` (GitLab 17.4+) is kept across retries; the event UUID before it.
        Provider::Gitlab => &["Idempotency-Key", "X-Gitlab-Event-UUID"],
        Provider::Gitea => &["X-Gitea-Delivery", "X-Forgejo-Delivery"],
        // Bitbucket Cloud, then Bitbucket Data Center.
        Provider::Bitbucket => &["X-Request-UUID", "X-Request-Id"],
        // Signed as part of the message, so a replay cannot change it.
        Provider::Standard => &["webhook-id"],
        Provider::Generic | Provider::Dockerhub | Provider::Harbor => &["Idempotency-Key"],
    }
}

/// A delivery id in a header was unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("header {header}: {reason}")]
pub struct BadDeliveryId {
    pub header: &'static str,
    pub reason: &'static str,
}

/// The call's delivery id, if its provider's header carries one.
pub fn delivery_id(provider: Provider, headers: &HeaderMap) -> Result<Option<String>, BadDeliveryId> {
    for &header in id_headers(provider) {
        let Some(value) = headers.get(header) else { continue };
        let text = value.to_str().map_err(|_| BadDeliveryId { header, reason: "must be visible ASCII" })?.trim();
        if text.is_empty() || text.len() > MAX_DELIVERY_ID_LEN {
            return Err(BadDeliveryId { header, reason: "must be 1 to 256 characters" });
        }
        return Ok(Some(text.to_owned()));
    }
    Ok(None)
}

/// A delivery as remembered: a digest of the Webhook and the id, so the list stays small
/// whatever the ids look like, and ids of two Webhooks never collide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryKey(String);

impl DeliveryKey {
    /// `webhook` is the receiving Webhook's name (the application's namespace is its own).
    pub fn new(webhook: &str, id: &str) -> Self {
        let digest = Sha256::new().chain_update(webhook).chain_update([0]).chain_update(id).finalize();
        Self(URL_SAFE_NO_PAD.encode(&digest[..16]))
    }
}

/// The deliveries an application remembers, oldest first, at most [`REMEMBERED`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remembered(VecDeque<String>);

impl Remembered {
    /// The list in the annotation; an unreadable one (edited by hand) counts as empty, which
    /// only forgets, never refuses.
    pub fn from_annotation(value: Option<&String>) -> Self {
        let keys: Vec<String> = value.and_then(|json| serde_json::from_str(json).ok()).unwrap_or_default();
        let skip = keys.len().saturating_sub(REMEMBERED);
        Self(keys.into_iter().skip(skip).collect())
    }

    pub fn contains(&self, key: &DeliveryKey) -> bool {
        self.0.contains(&key.0)
    }

    /// Remembers `key` as the newest, forgetting the oldest beyond [`REMEMBERED`].
    pub fn remember(&mut self, key: &DeliveryKey) {
        if self.contains(key) {
            return;
        }
        self.0.push_back(key.0.clone());
        while self.0.len() > REMEMBERED {
            self.0.pop_front();
        }
    }

    /// The annotation's value.
    pub fn to_annotation(&self) -> String {
        serde_json::Value::from(self.0.iter().cloned().collect::<Vec<_>>()).to_string()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn each_provider_names_its_delivery_header() {
        let github = headers(&[("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")]);
        assert_eq!(delivery_id(Provider::Github, &github), Ok(Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into())));
        let gitlab = headers(&[("x-gitlab-event-uuid", "event"), ("idempotency-key", "key")]);
        assert_eq!(delivery_id(Provider::Gitlab, &gitlab), Ok(Some("key".into())), "Idempotency-Key first");
        let older_gitlab = headers(&[("x-gitlab-event-uuid", "event")]);
        assert_eq!(delivery_id(Provider::Gitlab, &older_gitlab), Ok(Some("event".into())));
        assert_eq!(delivery_id(Provider::Gitea, &headers(&[("x-gitea-delivery", "g")])), Ok(Some("g".into())));
        assert_eq!(delivery_id(Provider::Standard, &headers(&[("webhook-id", "msg_1")])), Ok(Some("msg_1".into())));
        assert_eq!(delivery_id(Provider::Generic, &headers(&[("idempotency-key", "k")])), Ok(Some("k".into())));
        assert_eq!(delivery_id(Provider::Github, &headers(&[("idempotency-key", "k")])), Ok(None));
        assert_eq!(delivery_id(Provider::Dockerhub, &HeaderMap::new()), Ok(None));
    }

    #[test]
    fn an_unusable_id_is_refused_naming_the_header() {
        let long = "x".repeat(MAX_DELIVERY_ID_LEN + 1);
        let refused = delivery_id(Provider::Github, &headers(&[("x-github-delivery", &long)]));
        assert_eq!(refused, Err(BadDeliveryId { header: "X-GitHub-Delivery", reason: "must be 1 to 256 characters" }));
        let mut binary = HeaderMap::new();
        binary.insert("idempotency-key", http::HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes"));
        assert!(delivery_id(Provider::Generic, &binary).is_err());
    }

    #[test]
    fn keys_are_scoped_to_the_webhook() {
        assert_eq!(DeliveryKey::new("github", "1"), DeliveryKey::new("github", "1"));
        assert_ne!(DeliveryKey::new("github", "1"), DeliveryKey::new("gitlab", "1"));
        // The separator keeps "a" + "b1" apart from "ab" + "1".
        assert_ne!(DeliveryKey::new("a", "b1"), DeliveryKey::new("ab", "1"));
    }

    #[test]
    fn the_list_keeps_the_newest_and_survives_its_annotation() {
        let mut remembered = Remembered::default();
        for n in 0..REMEMBERED + 10 {
            remembered.remember(&DeliveryKey::new("w", &n.to_string()));
        }
        assert_eq!(remembered.len(), REMEMBERED);
        assert!(!remembered.contains(&DeliveryKey::new("w", "0")), "the oldest are forgotten");
        let newest = DeliveryKey::new("w", &(REMEMBERED + 9).to_string());
        assert!(remembered.contains(&newest));
        let annotation = remembered.to_annotation();
        assert!(annotation.len() < 8 * 1024, "{} bytes", annotation.len());
        assert_eq!(Remembered::from_annotation(Some(&annotation)), remembered);
        assert!(Remembered::from_annotation(Some(&"not json".to_owned())).is_empty());
    }
}
