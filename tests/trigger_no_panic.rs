//! Property tests: the outside-facing parsers and checks never panic, whatever they get.

use http::{HeaderMap, HeaderName, HeaderValue};
use jiff::Timestamp;
use proptest::prelude::*;
use tugboat::trigger::event::{parse_event, repo_matches};
use tugboat::trigger::query::parse_query;
use tugboat::trigger::signature::verify;
use tugboat::trigger::{Provider, fuzz_event, fuzz_query};

const NAMES: [&str; 12] = [
    "x-hub-signature-256",
    "x-hub-signature",
    "x-gitea-signature",
    "x-gitlab-token",
    "authorization",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-github-event",
    "x-gitlab-event",
    "x-event-key",
    "x-gitea-event",
];

fn header_map(pairs: &[(usize, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (index, raw) in pairs {
        let name = HeaderName::from_static(NAMES[index % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(raw) {
            map.append(name, value);
        }
    }
    map
}

/// JSON-ish bodies hit deeper code paths than random bytes.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("\"refs/heads/main\"".to_owned()),
        Just("\"git@h:o/r.git\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z/:.@]{0,12}".prop_map(|s| format!("\"{s}\"")),
    ];
    let keys = prop_oneof![
        Just("ref"),
        Just("repository"),
        Just("clone_url"),
        Just("push"),
        Just("changes"),
        Just("new"),
        Just("name"),
        Just("type"),
        Just("links"),
        Just("html"),
        Just("href"),
        Just("event_data"),
        Just("resources"),
        Just("tag"),
        Just("push_data"),
        Just("repo_name"),
        Just("project"),
        Just("after"),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((keys.clone(), inner), 0..5).prop_map(|v| {
                let fields: Vec<String> = v.into_iter().map(|(k, val)| format!("\"{k}\":{val}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
    .prop_map(String::into_bytes)
}

proptest! {
    #[test]
    fn parse_query_never_panics(raw in ".{0,300}", bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_query(Some(&raw));
        fuzz_query(&bytes);
        fuzz_query(raw.as_bytes());
    }

    #[test]
    fn parse_event_never_panics(body in prop_oneof![jsonish(), prop::collection::vec(any::<u8>(), 0..400)]) {
        fuzz_event(&body);
    }

    #[test]
    fn verify_never_panics(
        provider in 0usize..Provider::ALL.len(),
        secret in prop::collection::vec(any::<u8>(), 0..40),
        pairs in prop::collection::vec((any::<usize>(), prop::collection::vec(any::<u8>(), 0..90)), 0..6),
        body in prop::collection::vec(any::<u8>(), 0..200),
        now in any::<i64>(),
    ) {
        let provider = Provider::ALL[provider];
        let now = Timestamp::from_second(now % 253_402_207_200).unwrap_or(Timestamp::UNIX_EPOCH);
        let headers = header_map(&pairs);
        let _ = verify(provider, &secret, &headers, &body, now);
        let _ = parse_event(provider, &headers, &body);
    }

    #[test]
    fn repo_matches_never_panics(a in ".{0,80}", b in ".{0,80}") {
        let _ = repo_matches(&a, &[b]);
    }
}
