//! Provider signature and token checks, table-driven, plus the delivery ids replays are known by.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderName, HeaderValue};
use jiff::Timestamp;
use tugboat::trigger::Provider;
use tugboat::trigger::deliveries::{DeliveryKey, Remembered, delivery_id};
use tugboat::trigger::signature::{SignatureError, hmac_sha256_hex, standard_signature, verify};

const SECRET: &[u8] = b"It's a Secret to Everybody";
const BODY: &[u8] = b"Hello, World!";
const NOW: i64 = 1_700_000_000;

type TokenRow = (&'static str, Provider, Vec<(&'static str, String)>, Result<(), SignatureError>);
type StandardRow = (&'static str, HeaderMap, Result<Option<String>, SignatureError>);

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.append(HeaderName::from_static(name), value);
        }
    }
    map
}

#[test]
fn github_signature_matches_githubs_documented_example() {
    // From GitHub's "Validating webhook deliveries" docs.
    let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(hmac_sha256_hex(SECRET, BODY), expected);
}

#[test]
fn hmac_providers_table() {
    let good = hmac_sha256_hex(SECRET, BODY);
    let upper = good.to_uppercase();
    let wrong = hmac_sha256_hex(b"other secret", BODY);
    let tampered_body: &[u8] = b"Hello, World?";
    type Row = (&'static str, Provider, Vec<(&'static str, String)>, &'static [u8], Result<(), SignatureError>);
    let mal = |header, reason| Err(SignatureError::Malformed { header, reason });
    let rows: Vec<Row> = vec![
        ("github ok", Provider::Github, vec![("x-hub-signature-256", format!("sha256={good}"))], BODY, Ok(())),
        ("github upper hex", Provider::Github, vec![("x-hub-signature-256", format!("sha256={upper}"))], BODY, Ok(())),
        (
            "github wrong secret",
            Provider::Github,
            vec![("x-hub-signature-256", format!("sha256={wrong}"))],
            BODY,
            Err(SignatureError::Mismatch),
        ),
        (
            "github tampered",
            Provider::Github,
            vec![("x-hub-signature-256", format!("sha256={good}"))],
            tampered_body,
            Err(SignatureError::Mismatch),
        ),
        (
            "github missing",
            Provider::Github,
            vec![("x-hub-signature", format!("sha256={good}"))],
            BODY,
            Err(SignatureError::Missing("X-Hub-Signature-256")),
        ),
        (
            "github no prefix",
            Provider::Github,
            vec![("x-hub-signature-256", good.clone())],
            BODY,
            mal("X-Hub-Signature-256", "expected sha256=<hex>"),
        ),
        (
            "github bad hex",
            Provider::Github,
            vec![("x-hub-signature-256", format!("sha256={}zz", &good[..62]))],
            BODY,
            mal("X-Hub-Signature-256", "expected 64 hex digits after sha256="),
        ),
        (
            "github short hex",
            Provider::Github,
            vec![("x-hub-signature-256", "sha256=abcd".into())],
            BODY,
            mal("X-Hub-Signature-256", "expected 64 hex digits after sha256="),
        ),
        (
            "github twice",
            Provider::Github,
            vec![("x-hub-signature-256", format!("sha256={good}")), ("x-hub-signature-256", format!("sha256={wrong}"))],
            BODY,
            mal("X-Hub-Signature-256", "sent more than once"),
        ),
        ("gitea ok", Provider::Gitea, vec![("x-gitea-signature", good.clone())], BODY, Ok(())),
        ("forgejo ok", Provider::Gitea, vec![("x-forgejo-signature", good.clone())], BODY, Ok(())),
        (
            "gitea via github header",
            Provider::Gitea,
            vec![("x-hub-signature-256", format!("sha256={good}"))],
            BODY,
            Ok(()),
        ),
        (
            "gitea wrong secret",
            Provider::Gitea,
            vec![("x-gitea-signature", wrong.clone())],
            BODY,
            Err(SignatureError::Mismatch),
        ),
        (
            "gitea tampered",
            Provider::Gitea,
            vec![("x-gitea-signature", good.clone())],
            tampered_body,
            Err(SignatureError::Mismatch),
        ),
        ("gitea missing", Provider::Gitea, vec![], BODY, Err(SignatureError::Missing("X-Gitea-Signature"))),
        (
            "gitea bad hex",
            Provider::Gitea,
            vec![("x-gitea-signature", "g".repeat(64))],
            BODY,
            mal("X-Gitea-Signature", "expected 64 hex digits"),
        ),
        ("bitbucket ok", Provider::Bitbucket, vec![("x-hub-signature", format!("sha256={good}"))], BODY, Ok(())),
        (
            "bitbucket wrong secret",
            Provider::Bitbucket,
            vec![("x-hub-signature", format!("sha256={wrong}"))],
            BODY,
            Err(SignatureError::Mismatch),
        ),
        (
            "bitbucket tampered",
            Provider::Bitbucket,
            vec![("x-hub-signature", format!("sha256={good}"))],
            tampered_body,
            Err(SignatureError::Mismatch),
        ),
        ("bitbucket missing", Provider::Bitbucket, vec![], BODY, Err(SignatureError::Missing("X-Hub-Signature"))),
        (
            "bitbucket sha1",
            Provider::Bitbucket,
            vec![("x-hub-signature", "sha1=0123".into())],
            BODY,
            mal("X-Hub-Signature", "expected sha256=<hex>"),
        ),
    ];
    for (name, provider, pairs, body, expected) in rows {
        let got = verify(provider, SECRET, &headers(&pairs), body, now()).map(|v| assert_eq!(v.webhook_id, None));
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn token_providers_table() {
    let secret = "s3cr3t-token";
    let rows: Vec<TokenRow> = vec![
        ("gitlab ok", Provider::Gitlab, vec![("x-gitlab-token", secret.into())], Ok(())),
        (
            "gitlab wrong",
            Provider::Gitlab,
            vec![("x-gitlab-token", "s3cr3t-tokem".into())],
            Err(SignatureError::Mismatch),
        ),
        (
            "gitlab prefix only",
            Provider::Gitlab,
            vec![("x-gitlab-token", "s3cr3t".into())],
            Err(SignatureError::Mismatch),
        ),
        (
            "gitlab missing",
            Provider::Gitlab,
            vec![("authorization", secret.into())],
            Err(SignatureError::Missing("X-Gitlab-Token")),
        ),
        ("harbor exact", Provider::Harbor, vec![("authorization", secret.into())], Ok(())),
        ("harbor bearer", Provider::Harbor, vec![("authorization", format!("Bearer {secret}"))], Ok(())),
        ("harbor bearer lowercase", Provider::Harbor, vec![("authorization", format!("bearer {secret}"))], Ok(())),
        (
            "harbor wrong",
            Provider::Harbor,
            vec![("authorization", "Bearer nope".into())],
            Err(SignatureError::Mismatch),
        ),
        (
            "harbor basic",
            Provider::Harbor,
            vec![("authorization", format!("Basic {secret}"))],
            Err(SignatureError::Mismatch),
        ),
        ("harbor missing", Provider::Harbor, vec![], Err(SignatureError::Missing("Authorization"))),
        // A generic Webhook with a secretRef wants the token as a Bearer credential.
        (
            "generic with a secret: token",
            Provider::Generic,
            vec![("authorization", format!("Bearer {secret}"))],
            Ok(()),
        ),
        (
            "generic with a secret: wrong token",
            Provider::Generic,
            vec![("authorization", "Bearer nope".to_owned())],
            Err(SignatureError::Mismatch),
        ),
        ("generic with a secret: none", Provider::Generic, vec![], Err(SignatureError::Missing("Authorization"))),
        (
            "generic with a secret: not bearer",
            Provider::Generic,
            vec![("authorization", secret.to_string())],
            Err(SignatureError::Malformed { header: "Authorization", reason: "expected Bearer <token>" }),
        ),
        ("dockerhub needs nothing", Provider::Dockerhub, vec![], Ok(())),
    ];
    for (name, provider, pairs, expected) in rows {
        let got = verify(provider, secret.as_bytes(), &headers(&pairs), BODY, now()).map(|_| ());
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn a_configured_token_that_is_itself_bearer_prefixed_matches_verbatim() {
    let pairs = [("authorization", "Bearer abc".to_owned())];
    assert!(verify(Provider::Harbor, b"Bearer abc", &headers(&pairs), BODY, now()).is_ok());
}

#[test]
fn empty_secret_is_refused_for_checked_providers() {
    let pairs = [("x-gitlab-token", String::new())];
    assert_eq!(
        verify(Provider::Gitlab, b"", &headers(&pairs), BODY, now()),
        Err(SignatureError::InvalidSecret("empty"))
    );
    assert!(verify(Provider::Generic, b"", &HeaderMap::new(), BODY, now()).is_ok());
}

fn standard_headers(id: &str, ts: i64, signature: String) -> HeaderMap {
    headers(&[("webhook-id", id.to_owned()), ("webhook-timestamp", ts.to_string()), ("webhook-signature", signature)])
}

#[test]
fn standard_webhooks_table() {
    let key = b"raw-standard-key".as_slice();
    let good = |ts: i64| standard_signature(key, "msg_1", ts, BODY);
    let rows: Vec<StandardRow> = vec![
        ("ok", standard_headers("msg_1", NOW, good(NOW)), Ok(Some("msg_1".into()))),
        ("4m59 old", standard_headers("msg_1", NOW - 299, good(NOW - 299)), Ok(Some("msg_1".into()))),
        ("exactly 5m ahead", standard_headers("msg_1", NOW + 300, good(NOW + 300)), Ok(Some("msg_1".into()))),
        (
            "5m01 old",
            standard_headers("msg_1", NOW - 301, good(NOW - 301)),
            Err(SignatureError::TimestampOutOfTolerance),
        ),
        (
            "5m01 ahead",
            standard_headers("msg_1", NOW + 301, good(NOW + 301)),
            Err(SignatureError::TimestampOutOfTolerance),
        ),
        (
            "rotation: second matches",
            standard_headers("msg_1", NOW, format!("v1,AAAA {} v1a,xyz", good(NOW))),
            Ok(Some("msg_1".into())),
        ),
        (
            "rotation: garbage then good",
            standard_headers("msg_1", NOW, format!("v1,!!notbase64 {}", good(NOW))),
            Ok(Some("msg_1".into())),
        ),
        (
            "none match",
            standard_headers("msg_1", NOW, format!("v1,{} v1,AAAA", BASE64.encode([0u8; 32]))),
            Err(SignatureError::Mismatch),
        ),
        ("other id signed", standard_headers("msg_2", NOW, good(NOW)), Err(SignatureError::Mismatch)),
        ("timestamp not signed", standard_headers("msg_1", NOW + 1, good(NOW)), Err(SignatureError::Mismatch)),
        (
            "no v1",
            standard_headers("msg_1", NOW, "v2,abc".into()),
            Err(SignatureError::Malformed { header: "webhook-signature", reason: "no v1 signature" }),
        ),
        (
            "bad timestamp",
            headers(&[
                ("webhook-id", "m".into()),
                ("webhook-timestamp", "-5".into()),
                ("webhook-signature", good(NOW)),
            ]),
            Err(SignatureError::Malformed { header: "webhook-timestamp", reason: "expected unix seconds" }),
        ),
        (
            "huge timestamp",
            headers(&[
                ("webhook-id", "m".into()),
                ("webhook-timestamp", "99999999999999999999".into()),
                ("webhook-signature", good(NOW)),
            ]),
            Err(SignatureError::Malformed { header: "webhook-timestamp", reason: "expected unix seconds" }),
        ),
        (
            "missing id",
            headers(&[("webhook-timestamp", NOW.to_string()), ("webhook-signature", good(NOW))]),
            Err(SignatureError::Missing("webhook-id")),
        ),
        (
            "missing timestamp",
            headers(&[("webhook-id", "msg_1".into()), ("webhook-signature", good(NOW))]),
            Err(SignatureError::Missing("webhook-timestamp")),
        ),
        (
            "missing signature",
            headers(&[("webhook-id", "msg_1".into()), ("webhook-timestamp", NOW.to_string())]),
            Err(SignatureError::Missing("webhook-signature")),
        ),
    ];
    for (name, map, expected) in rows {
        assert_eq!(verify(Provider::Standard, key, &map, BODY, now()).map(|v| v.webhook_id), expected, "{name}");
    }
    let tampered = verify(Provider::Standard, key, &standard_headers("msg_1", NOW, good(NOW)), b"Hello?", now());
    assert_eq!(tampered, Err(SignatureError::Mismatch));
}

#[test]
fn standard_whsec_secret_is_base64_after_the_prefix() {
    // The Standard Webhooks reference test vector.
    let secret = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = br#"{"test": 2432232314}"#;
    let map = headers(&[
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".into()),
        ("webhook-timestamp", "1614265330".into()),
        ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into()),
    ]);
    let at = Timestamp::from_second(1_614_265_330).unwrap_or(Timestamp::UNIX_EPOCH);
    assert_eq!(
        verify(Provider::Standard, secret, &map, body, at).map(|v| v.webhook_id),
        Ok(Some("msg_p5jXN8AQM9LWM0D4loKWxJek".into()))
    );
    // The same secret used raw (without decoding) must not verify.
    assert_eq!(verify(Provider::Standard, &secret[6..], &map, body, at), Err(SignatureError::Mismatch));
    assert_eq!(
        verify(Provider::Standard, b"whsec_***", &map, body, at),
        Err(SignatureError::InvalidSecret("whsec_ secret is not base64"))
    );
}

#[test]
fn a_standard_replay_carries_the_signed_id_it_is_remembered_by() {
    let key = b"k".as_slice();
    let map = standard_headers("msg_42", NOW, standard_signature(key, "msg_42", NOW, BODY));
    let mut remembered = Remembered::default();
    let mut recorded = 0;
    for _ in 0..3 {
        let verified = verify(Provider::Standard, key, &map, BODY, now()).map(|v| v.webhook_id);
        assert_eq!(verified, Ok(Some("msg_42".to_owned())));
        let id = delivery_id(Provider::Standard, &map).expect("valid id").expect("an id");
        let delivery = DeliveryKey::new("standard", &id);
        if !remembered.contains(&delivery) {
            remembered.remember(&delivery);
            recorded += 1;
        }
    }
    assert_eq!(recorded, 1, "one delivery, two replays recorded nothing");
}
