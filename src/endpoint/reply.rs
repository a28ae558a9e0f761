//! JSON answers of the trigger endpoint, one function per status code of DESIGN §2.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// 202: the trigger is stored; `sequences` tells, per application, the record sequence that
/// holds it, so a caller can see when it is carried out (`status.lastTrigger.sequence` ≥ it).
pub fn accepted(
    trigger_id: &str,
    applications: &[String],
    sequences: &BTreeMap<String, i64>,
    duplicates: &[String],
    deferred_until: Option<jiff::Timestamp>,
) -> Response {
    let mut body = json!({"triggerId": trigger_id, "applications": applications, "sequences": sequences});
    if !duplicates.is_empty() {
        body["duplicates"] = json!(duplicates);
    }
    if let Some(until) = deferred_until {
        body["deferredUntil"] = json!(until.to_string());
    }
    (StatusCode::ACCEPTED, Json(body)).into_response()
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
