//! Standard Webhooks signing of outgoing calls: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
//!
//! The key handling and the HMAC are the trigger endpoint's (one implementation of the
//! scheme for both directions): a `whsec_` secret is base64 after the prefix, as the
//! specification defines; any other secret is used as raw bytes.

use crate::trigger::signature::{SignatureError, standard_key, standard_signature};

/// The three headers of a signed call, as (name, value).
pub fn headers(
    secret: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<[(&'static str, String); 3], SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::InvalidSecret("empty"));
    }
    let key = standard_key(secret)?;
    Ok([
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", standard_signature(&key, id, timestamp, body)),
    ])
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::*;
    use crate::trigger::Provider;
    use crate::trigger::signature::verify;

    #[test]
    fn what_we_sign_the_trigger_endpoint_verifies() {
        let secret = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let now = jiff::Timestamp::from_second(1_700_000_000).expect("time");
        let signed = headers(secret, "msg_1", now.as_second(), b"{\"a\":1}").expect("signs");
        let mut map = HeaderMap::new();
        for (name, value) in &signed {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        assert!(verify(Provider::Standard, secret, &map, b"{\"a\":1}", now).is_ok());
        assert!(verify(Provider::Standard, secret, &map, b"{\"a\":2}", now).is_err());
        assert!(signed[2].1.starts_with("v1,"));
    }

    #[test]
    fn known_vector_from_the_specification() {
        // The Standard Webhooks reference vector.
        let signed = headers(
            b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .expect("signs");
        assert_eq!(signed[2].1, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn bad_secrets_are_errors_not_panics() {
        assert!(headers(b"", "id", 1, b"").is_err());
        assert!(headers(b"whsec_!!!", "id", 1, b"").is_err());
    }
}
