//! The pure half of the trigger endpoint (DESIGN §2): provider signature checks, delivery ids,
//! provider payload parsing, query and form parsing and payload variables.
//!
//! Nothing here does I/O, so the axum handler stays a thin shell: read the body (bounded),
//! [`signature::verify`], [`deliveries::delivery_id`], then [`event::parse_event`],
//! [`query::parse_query`] and [`variables::variables_from_payload`]; the endpoint records the
//! trigger and remembers the delivery ([`deliveries::Remembered`]) in one write.

pub mod deliveries;
pub mod event;
pub mod query;
pub mod record;
pub mod signature;
pub mod variables;

/// Who calls the endpoint: the `spec.provider` of a Webhook.
pub use crate::api::WebhookProvider as Provider;

impl Provider {
    /// Every provider, for tests and fuzzing that must cover them all.
    pub const ALL: [Provider; 8] = [
        Provider::Generic,
        Provider::Github,
        Provider::Gitlab,
        Provider::Bitbucket,
        Provider::Gitea,
        Provider::Dockerhub,
        Provider::Harbor,
        Provider::Standard,
    ];

    /// Whether a call must carry a signature or token; the others are authenticated by the
    /// unguessable URL alone.
    pub fn is_authenticated(self) -> bool {
        !matches!(self, Provider::Generic | Provider::Dockerhub)
    }
}

/// Fuzz target entry point: [`query::parse_query`] and [`query::parse_form`] on arbitrary
/// bytes. Must never panic; results are ignored. Wire it into `cargo fuzz` as
/// `fuzz_target!(|data: &[u8]| tugboat::trigger::fuzz_query(data));`.
pub fn fuzz_query(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = query::parse_query(Some(text));
    }
    let _ = query::parse_form(data);
}

/// Fuzz target entry point: repository URLs from payloads and specs — normalisation, matching
/// an application's URL against a payload's, and the host. Must never panic; the input is
/// split at the first newline into the application's URL and the payload's.
pub fn fuzz_repo_urls(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (app, payload) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = crate::source::url::normalize_repo_url(app);
    let _ = crate::source::url::host_of(app);
    let _ = crate::source::url::repo_matches(app, &[payload.to_owned(), app.to_owned()]);
    crate::source::fuzz_url(app);
}

/// Fuzz target entry point: [`event::parse_event`] for every provider and its event header
/// values, [`signature::verify`], [`deliveries::delivery_id`] (the input's start as the id
/// header) and [`variables::variables_from_payload`] on arbitrary bytes.
/// Must never panic; results are ignored.
pub fn fuzz_event(data: &[u8]) {
    const EVENT_HEADERS: [(&str, &str); 9] = [
        ("x-github-event", "push"),
        ("x-github-event", "ping"),
        ("x-gitea-event", "push"),
        ("x-gitlab-event", "Push Hook"),
        ("x-gitlab-event", "Tag Push Hook"),
        ("x-gitlab-event", "System Hook"),
        ("x-event-key", "repo:push"),
        ("x-event-key", "repo:refs_changed"),
        ("x-event-key", "diagnostics:ping"),
    ];
    let now = jiff::Timestamp::UNIX_EPOCH;
    let id_header = http::HeaderValue::from_bytes(data.get(..300).unwrap_or(data)).ok();
    for provider in Provider::ALL {
        if let Some(value) = &id_header {
            for name in deliveries::id_headers(provider) {
                let mut headers = http::HeaderMap::new();
                if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) {
                    headers.insert(name, value.clone());
                    let _ = deliveries::delivery_id(provider, &headers);
                }
            }
        }
        let _ = signature::verify(provider, b"secret", &http::HeaderMap::new(), data, now);
        let _ = event::parse_event(provider, &http::HeaderMap::new(), data);
        for (name, value) in EVENT_HEADERS {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::HeaderName::from_static(name), http::HeaderValue::from_static(value));
            let _ = event::parse_event(provider, &headers, data);
        }
    }
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        let paths = [("TAG", "$.push_data.tag"), ("ANY", "$..*"), ("FIRST", "$.a[0].b")];
        let map = paths.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let _ = variables::variables_from_payload(&map, &body);
    }
}
