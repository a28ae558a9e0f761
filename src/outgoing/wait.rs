//! Wait for completion (Spinnaker's webhook stage): where the status URL is, and what a poll's
//! answer means. Pure; the polling itself is in the dispatcher.

use serde_json::Value;
use serde_json_path::JsonPath;

use crate::api::{StatusUrlFrom, WaitForCompletion};

/// What a poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollState {
    Success,
    Canceled,
    Terminal,
    /// Still running (or the status is not there yet).
    Running,
}

/// Why waiting cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("spec.waitForCompletion.{field}: {path:?} is not a JSONPath: {reason}")]
    BadPath { field: &'static str, path: String, reason: String },
    #[error("the response has no Location header")]
    NoLocation,
    #[error("spec.waitForCompletion.statusUrlJsonPath {0:?} matched no string in the response")]
    NoStatusUrl(String),
    #[error("status URL {url:?} is not a URL: {reason}")]
    BadUrl { url: String, reason: String },
    /// Its own variant so the refusal does not read as a malformed URL.
    #[error(
        "status URL {url:?} is not on the called origin {origin}: refused, since polls carry the hook's headers and signature (spec.waitForCompletion.allowOtherOrigins permits it)"
    )]
    OtherOrigin { url: String, origin: String },
}

/// Parses the JSONPaths of a wait spec, so a bad one is reported on the hook before any call.
pub fn check(spec: &WaitForCompletion) -> Result<(), WaitError> {
    path("statusJsonPath", &spec.status_json_path)?;
    if let Some(p) = &spec.status_url_json_path {
        path("statusUrlJsonPath", p)?;
    }
    if let Some(p) = &spec.progress_json_path {
        path("progressJsonPath", p)?;
    }
    if spec.status_url_from == StatusUrlFrom::ResponseField && spec.status_url_json_path.is_none() {
        return Err(WaitError::NoStatusUrl(String::new()));
    }
    Ok(())
}

fn path(field: &'static str, text: &str) -> Result<JsonPath, WaitError> {
    JsonPath::parse(text).map_err(|e| WaitError::BadPath { field, path: text.to_owned(), reason: e.to_string() })
}

/// The first value `path` finds, as text (strings as they are, numbers and others as JSON).
fn first_text(path: &JsonPath, body: &Value) -> Option<String> {
    path.query(body).first().map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The status URL after the first call: the called URL, the `Location` header (relative
/// references resolved against the called URL) or a field of the JSON response.
pub fn status_url(
    spec: &WaitForCompletion,
    called: &str,
    location: Option<&str>,
    body: &[u8],
) -> Result<String, WaitError> {
    let raw = match spec.status_url_from {
        StatusUrlFrom::SameUrl => return Ok(called.to_owned()),
        StatusUrlFrom::LocationHeader => location.ok_or(WaitError::NoLocation)?.to_owned(),
        StatusUrlFrom::ResponseField => {
            let text = spec.status_url_json_path.clone().unwrap_or_default();
            let json: Value = serde_json::from_slice(body).map_err(|_| WaitError::NoStatusUrl(text.clone()))?;
            first_text(&path("statusUrlJsonPath", &text)?, &json).ok_or(WaitError::NoStatusUrl(text))?
        }
    };
    let base =
        reqwest::Url::parse(called).map_err(|e| WaitError::BadUrl { url: called.into(), reason: e.to_string() })?;
    let url = base.join(&raw).map_err(|e| WaitError::BadUrl { url: raw.clone(), reason: e.to_string() })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WaitError::BadUrl { url: raw, reason: "only http and https are polled".into() });
    }
    // Polls carry the hook's headers and signature: a receiver may not send them elsewhere.
    if url.origin() != base.origin() && !spec.allow_other_origins {
        return Err(WaitError::OtherOrigin { url: raw, origin: base.origin().ascii_serialization() });
    }
    Ok(url.to_string())
}

/// Reads a poll's answer: the state, and the progress text when `progressJsonPath` finds one.
/// A body that is not JSON, or has no status yet, counts as still running.
pub fn read_poll(spec: &WaitForCompletion, body: &[u8]) -> Result<(PollState, Option<String>), WaitError> {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return Ok((PollState::Running, None));
    };
    let progress = match &spec.progress_json_path {
        Some(p) => first_text(&path("progressJsonPath", p)?, &json),
        None => None,
    };
    let state = match first_text(&path("statusJsonPath", &spec.status_json_path)?, &json) {
        Some(s) if spec.success.contains(&s) => PollState::Success,
        Some(s) if spec.canceled.contains(&s) => PollState::Canceled,
        Some(s) if spec.terminal.contains(&s) => PollState::Terminal,
        _ => PollState::Running,
    };
    Ok((state, progress))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DurationString;

    fn spec(from: StatusUrlFrom) -> WaitForCompletion {
        WaitForCompletion {
            status_url_from: from,
            status_url_json_path: Some("$.links.status".into()),
            status_json_path: "$.state".into(),
            success: vec!["SUCCESS".into()],
            canceled: vec!["CANCELED".into()],
            terminal: vec!["TERMINAL".into(), "FAILED".into()],
            progress_json_path: Some("$.progress".into()),
            poll_interval: DurationString::new("1s"),
            allow_other_origins: false,
            timeout: DurationString::new("1m"),
        }
    }

    #[test]
    fn status_url_modes() {
        let called = "http://h:1/run?x=1";
        assert_eq!(status_url(&spec(StatusUrlFrom::SameUrl), called, None, b"").as_deref(), Ok(called));
        assert_eq!(
            status_url(&spec(StatusUrlFrom::LocationHeader), called, Some("/status/7"), b"").as_deref(),
            Ok("http://h:1/status/7")
        );
        // Another origin: refused, unless the hook allows it.
        let elsewhere = status_url(&spec(StatusUrlFrom::LocationHeader), called, Some("http://o:2/s"), b"");
        assert!(
            matches!(&elsewhere, Err(WaitError::OtherOrigin { origin, .. }) if origin == "http://h:1"),
            "{elsewhere:?}"
        );
        let mut open = spec(StatusUrlFrom::LocationHeader);
        open.allow_other_origins = true;
        assert_eq!(status_url(&open, called, Some("http://o:2/s"), b"").as_deref(), Ok("http://o:2/s"));
        let https = status_url(&spec(StatusUrlFrom::LocationHeader), called, Some("https://h:1/s"), b"");
        assert!(matches!(https, Err(WaitError::OtherOrigin { .. })), "another scheme is another origin: {https:?}");
        assert_eq!(status_url(&spec(StatusUrlFrom::LocationHeader), called, None, b""), Err(WaitError::NoLocation));
        let body = br#"{"links": {"status": "http://h:1/s/9"}}"#;
        assert_eq!(
            status_url(&spec(StatusUrlFrom::ResponseField), called, None, body).as_deref(),
            Ok("http://h:1/s/9")
        );
        assert!(matches!(
            status_url(&spec(StatusUrlFrom::ResponseField), called, None, b"{}"),
            Err(WaitError::NoStatusUrl(_))
        ));
        assert!(status_url(&spec(StatusUrlFrom::ResponseField), called, None, b"not json").is_err());
        assert!(status_url(&spec(StatusUrlFrom::LocationHeader), called, Some("file:///etc/passwd"), b"").is_err());
    }

    #[test]
    fn polls() {
        let s = spec(StatusUrlFrom::SameUrl);
        let read = |b: &str| read_poll(&s, b.as_bytes()).expect("reads");
        assert_eq!(read(r#"{"state":"SUCCESS"}"#).0, PollState::Success);
        assert_eq!(read(r#"{"state":"CANCELED"}"#).0, PollState::Canceled);
        assert_eq!(read(r#"{"state":"FAILED"}"#).0, PollState::Terminal);
        assert_eq!(
            read(r#"{"state":"RUNNING","progress":"step 2 of 3"}"#),
            (PollState::Running, Some("step 2 of 3".into()))
        );
        assert_eq!(read(r#"{"progress": 40}"#), (PollState::Running, Some("40".into())));
        assert_eq!(read("<html>"), (PollState::Running, None));
    }

    #[test]
    fn bad_paths_name_the_field() {
        let mut s = spec(StatusUrlFrom::SameUrl);
        s.progress_json_path = Some("$[".into());
        let error = check(&s).expect_err("bad path");
        assert!(error.to_string().starts_with("spec.waitForCompletion.progressJsonPath: \"$[\""), "{error}");
    }
}
