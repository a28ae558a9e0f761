//! Provider signature and token checks, run on the raw body before anything parses it.
//!
//! Every comparison is constant-time: HMACs through [`Mac::verify_slice`], tokens by
//! comparing SHA-256 digests with [`subtle`], so neither content nor length leaks.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::Provider;

/// Standard Webhooks: how far `webhook-timestamp` may be from now, either direction.
pub const STANDARD_TOLERANCE_SECONDS: u64 = 5 * 60;

/// Longest `webhook-id` accepted (as [`super::deliveries::MAX_DELIVERY_ID_LEN`]).
pub const MAX_WEBHOOK_ID_LEN: usize = 256;

/// What a successful check learned about the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Standard Webhooks `webhook-id` (signed, so a replay carries the same one; see
    /// [`super::deliveries`]); `None` for other providers.
    pub webhook_id: Option<String>,
}

/// Why a call was refused. All but [`SignatureError::InvalidSecret`] mean 401; that one is
/// the operator's configuration fault and means 500 plus a condition on the Webhook.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("malformed header {header}: {reason}")]
    Malformed { header: &'static str, reason: &'static str },
    #[error("signature or token does not match")]
    Mismatch,
    #[error("webhook-timestamp is more than {STANDARD_TOLERANCE_SECONDS} seconds from now")]
    TimestampOutOfTolerance,
    #[error("the configured secret is unusable: {0}")]
    InvalidSecret(&'static str),
}

/// Checks that `body` and `headers` come from someone holding `secret`, as `provider` signs.
///
/// `Generic` and `Dockerhub` carry no signature (the URL is the capability) and pass; a
/// `Generic` Webhook with a `secretRef` also wants `Authorization: Bearer <token>` (`secret`
/// non-empty). For the others an empty secret is refused, so a blank Secret never admits a
/// blank token.
pub fn verify(
    provider: Provider,
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<Verified, SignatureError> {
    if provider.is_authenticated() && secret.is_empty() {
        return Err(SignatureError::InvalidSecret("empty"));
    }
    let anonymous = Verified { webhook_id: None };
    match provider {
        Provider::Generic if !secret.is_empty() => {
            let value = header(headers, "authorization", "Authorization")?;
            let token = strip_bearer(value).ok_or(malformed("Authorization", "expected Bearer <token>"))?;
            if bool::from(token_eq(token.as_bytes(), secret)) { Ok(anonymous) } else { Err(SignatureError::Mismatch) }
        }
        Provider::Generic | Provider::Dockerhub => Ok(anonymous),
        Provider::Github => {
            let value = header(headers, "x-hub-signature-256", "X-Hub-Signature-256")?;
            check_prefixed_hex(secret, body, value, "X-Hub-Signature-256").map(|()| anonymous)
        }
        Provider::Bitbucket => {
            // Bitbucket Cloud and Server both send `sha256=<hex>` under the old GitHub name.
            let value = header(headers, "x-hub-signature", "X-Hub-Signature")?;
            check_prefixed_hex(secret, body, value, "X-Hub-Signature").map(|()| anonymous)
        }
        Provider::Gitea => {
            // Gitea sends bare hex; Forgejo renames the header; both also send GitHub's.
            for (name, shown) in
                [("x-gitea-signature", "X-Gitea-Signature"), ("x-forgejo-signature", "X-Forgejo-Signature")]
            {
                if headers.contains_key(name) {
                    let value = header(headers, name, shown)?;
                    let tag = decode_hex_sha256(value).ok_or(malformed(shown, "expected 64 hex digits"))?;
                    return check_hmac(secret, &[body], &tag).map(|()| anonymous);
                }
            }
            match header(headers, "x-hub-signature-256", "X-Hub-Signature-256") {
                Ok(value) => check_prefixed_hex(secret, body, value, "X-Hub-Signature-256").map(|()| anonymous),
                Err(SignatureError::Missing(_)) => Err(SignatureError::Missing("X-Gitea-Signature")),
                Err(other) => Err(other),
            }
        }
        Provider::Gitlab => {
            let value = header(headers, "x-gitlab-token", "X-Gitlab-Token")?;
            if bool::from(token_eq(value.as_bytes(), secret)) { Ok(anonymous) } else { Err(SignatureError::Mismatch) }
        }
        Provider::Harbor => {
            // Harbor sends the configured "auth header" verbatim; people often write `Bearer …`
            // in either place, so accept the value itself or the value after a Bearer scheme.
            let value = header(headers, "authorization", "Authorization")?;
            let bare = strip_bearer(value).unwrap_or(value);
            let ok = token_eq(value.as_bytes(), secret) | token_eq(bare.as_bytes(), secret);
            if bool::from(ok) { Ok(anonymous) } else { Err(SignatureError::Mismatch) }
        }
        Provider::Standard => verify_standard(secret, headers, body, now),
    }
}

/// Standard Webhooks v1: HMAC-SHA256 over `{id}.{timestamp}.{body}`, base64, any of the
/// space-separated `v1,` signatures may match (the sender may sign with old and new keys).
fn verify_standard(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<Verified, SignatureError> {
    let key = standard_key(secret)?;
    let id = header(headers, "webhook-id", "webhook-id")?;
    if id.is_empty() || id.len() > MAX_WEBHOOK_ID_LEN {
        return Err(malformed("webhook-id", "must be 1 to 256 characters"));
    }
    let timestamp = header(headers, "webhook-timestamp", "webhook-timestamp")?;
    let seconds = parse_unix_seconds(timestamp).ok_or(malformed("webhook-timestamp", "expected unix seconds"))?;
    if now.as_second().abs_diff(seconds) > STANDARD_TOLERANCE_SECONDS {
        return Err(SignatureError::TimestampOutOfTolerance);
    }
    let signatures = header(headers, "webhook-signature", "webhook-signature")?;
    let mut expected = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
        .map_err(|_| SignatureError::InvalidSecret("HMAC key rejected"))?;
    for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
        expected.update(part);
    }
    let expected = expected.finalize().into_bytes();
    let mut any_v1 = false;
    let mut matched = Choice::from(0);
    // Other versions (e.g. asymmetric `v1a`) are skipped, as the spec asks; undecodable
    // entries are skipped too so one bad entry cannot mask a good one.
    for entry in signatures.split(' ').filter(|e| !e.is_empty()) {
        let Some(encoded) = entry.strip_prefix("v1,") else { continue };
        any_v1 = true;
        if let Ok(candidate) = BASE64.decode(encoded) {
            matched |= candidate.as_slice().ct_eq(expected.as_slice());
        }
    }
    if !any_v1 {
        return Err(malformed("webhook-signature", "no v1 signature"));
    }
    if bool::from(matched) { Ok(Verified { webhook_id: Some(id.to_owned()) }) } else { Err(SignatureError::Mismatch) }
}

/// The HMAC key: base64 after `whsec_` as the spec defines, else the secret's raw bytes.
pub fn standard_key(secret: &[u8]) -> Result<Vec<u8>, SignatureError> {
    match secret.strip_prefix(b"whsec_") {
        Some(encoded) => match BASE64.decode(encoded) {
            Ok(key) if !key.is_empty() => Ok(key),
            Ok(_) => Err(SignatureError::InvalidSecret("whsec_ secret decodes to nothing")),
            Err(_) => Err(SignatureError::InvalidSecret("whsec_ secret is not base64")),
        },
        None => Ok(secret.to_vec()),
    }
}

/// Unix seconds as plain ASCII digits (no sign, at most 12 digits, so no overflow).
fn parse_unix_seconds(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `sha256=<hex>` as GitHub and Bitbucket send it.
fn check_prefixed_hex(secret: &[u8], body: &[u8], value: &str, shown: &'static str) -> Result<(), SignatureError> {
    let hex = value.strip_prefix("sha256=").ok_or(malformed(shown, "expected sha256=<hex>"))?;
    let tag = decode_hex_sha256(hex).ok_or(malformed(shown, "expected 64 hex digits after sha256="))?;
    check_hmac(secret, &[body], &tag)
}

fn check_hmac(secret: &[u8], parts: &[&[u8]], tag: &[u8; 32]) -> Result<(), SignatureError> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .map_err(|_| SignatureError::InvalidSecret("HMAC key rejected"))?;
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(tag).map_err(|_| SignatureError::Mismatch)
}

/// Token equality that leaks neither content nor length: compares fixed-size digests.
fn token_eq(given: &[u8], secret: &[u8]) -> Choice {
    Sha256::digest(given).as_slice().ct_eq(Sha256::digest(secret).as_slice())
}

fn strip_bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim_start())
}

/// 64 hex digits, either case, to 32 bytes.
fn decode_hex_sha256(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).ok()?;
    Some(out)
}

/// The single value of a header as text. Repeated headers are refused rather than guessed
/// at, so a proxy that appends a second value cannot change which one is checked.
fn header<'a>(headers: &'a HeaderMap, name: &'static str, shown: &'static str) -> Result<&'a str, SignatureError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().ok_or(SignatureError::Missing(shown))?;
    if values.next().is_some() {
        return Err(malformed(shown, "sent more than once"));
    }
    first.to_str().map(str::trim).map_err(|_| malformed(shown, "not visible ASCII"))
}

fn malformed(header: &'static str, reason: &'static str) -> SignatureError {
    SignatureError::Malformed { header, reason }
}

/// Hex of an HMAC-SHA256, for tests, benches and tools that must sign like a provider.
pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable_hmac());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Standard Webhooks `v1,<base64>` signature, for tests, benches and outgoing webhooks.
pub fn standard_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// HMAC takes keys of any length, so `new_from_slice` cannot fail; this keeps that
/// assumption explicit without `expect`.
#[cold]
fn unreachable_hmac() -> Hmac<Sha256> {
    unreachable!("HMAC accepts keys of any length")
}
