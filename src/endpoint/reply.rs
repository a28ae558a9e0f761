//! JSON answers of the trigger endpoint, one function per status code of DESIGN §2.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A change window holds the trigger back: until when, if an opening is known (one beyond the
/// search horizon is not, yet the trigger is still held).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    pub until: Option<jiff::Timestamp>,
}

/// 202: the trigger is stored; `sequences` tells, per application, the record sequence that
/// holds it, so a caller can see when it is carried out (`status.lastTrigger.sequence` ≥ it).
/// A held trigger always says so: `deferred: true`, and `deferredUntil` when known.
pub fn accepted(
    trigger_id: &str,
    applications: &[String],
    sequences: &BTreeMap<String, i64>,
    duplicates: &[String],
    deferred: Option<Deferred>,
) -> Response {
    (StatusCode::ACCEPTED, Json(accepted_body(trigger_id, applications, sequences, duplicates, deferred)))
        .into_response()
}

fn accepted_body(
    trigger_id: &str,
    applications: &[String],
    sequences: &BTreeMap<String, i64>,
    duplicates: &[String],
    deferred: Option<Deferred>,
) -> serde_json::Value {
    let mut body = json!({"triggerId": trigger_id, "applications": applications, "sequences": sequences});
    if !duplicates.is_empty() {
        body["duplicates"] = json!(duplicates);
    }
    if let Some(deferred) = deferred {
        body["deferred"] = json!(true);
        if let Some(until) = deferred.until {
            body["deferredUntil"] = json!(until.to_string());
        }
    }
    body
}

/// 200: every target already holds this delivery (a sender's retry, a redelivery or a replay);
/// nothing was recorded again.
pub fn duplicate(delivery_id: &str, applications: &[String]) -> Response {
    (StatusCode::OK, Json(json!({"duplicate": delivery_id, "applications": applications}))).into_response()
}

/// A trigger that could not be stored: 413 when it is too large to hold (the held trigger
/// stays), else 503 (retry).
pub fn record_refused(error: &super::record::RecordError) -> Response {
    let status = match error {
        super::record::RecordError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(json!({"error": error.to_string()}))).into_response()
}

pub fn ignored(reason: impl Into<String>) -> Response {
    (StatusCode::OK, Json(json!({"ignored": reason.into()}))).into_response()
}

pub fn bad_request(error: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error.into()}))).into_response()
}

pub fn unauthorized(error: impl Into<String>) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"error": error.into()}))).into_response()
}

pub fn too_large(limit: usize) -> Response {
    (StatusCode::PAYLOAD_TOO_LARGE, Json(json!({"error": format!("body larger than {limit} bytes")}))).into_response()
}

pub fn too_many_requests() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::RETRY_AFTER, "1")],
        Json(json!({"error": "rate limited; retry later"})),
    )
        .into_response()
}

pub fn unavailable(error: impl Into<String>) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": error.into()}))).into_response()
}

pub fn internal(error: impl Into<String>) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": error.into()}))).into_response()
}

/// The same body for every unknown path, known prefix or not, so a path cannot be probed.
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response()
}

pub async fn method_not_allowed() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, Json(json!({"error": "use POST"}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_trigger_says_so_with_or_without_a_known_opening() {
        let (apps, sequences) = (vec!["shop".to_owned()], BTreeMap::from([("shop".to_owned(), 3)]));
        let body = |deferred| accepted_body("t1", &apps, &sequences, &[], deferred);
        let free = body(None);
        assert!(free.get("deferred").is_none() && free.get("deferredUntil").is_none(), "{free}");
        let at: jiff::Timestamp = "2026-12-07T08:00:00Z".parse().expect("timestamp");
        let known = body(Some(Deferred { until: Some(at) }));
        assert_eq!(
            (known["deferred"].clone(), known["deferredUntil"].clone()),
            (json!(true), json!("2026-12-07T08:00:00Z"))
        );
        // An opening beyond the search horizon: still held, and the answer says so.
        let unknown = body(Some(Deferred { until: None }));
        assert_eq!(unknown["deferred"], json!(true));
        assert!(unknown.get("deferredUntil").is_none(), "{unknown}");
    }
}
