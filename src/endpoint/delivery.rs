//! `status.lastDelivery` of a Webhook: what its last call got, written in the background and at most once a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt};

use super::EndpointState;
use crate::api::{DeliverySummary, Webhook};
use crate::status_patch::{self, ENDPOINT_FIELD_MANAGER, Precondition};

/// Minimum time between two status writes for one Webhook, so a flood of calls does not
/// become a flood of API-server writes.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Records the outcome of a call on the Webhook (best effort; never delays the answer).
pub fn record(state: &Arc<EndpointState>, webhook: &Webhook, status: StatusCode) {
    let key = format!("{}/{}", webhook.namespace().unwrap_or_default(), webhook.name_any());
    {
        let mut last = state.last_delivery_write.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.get(&key).is_some_and(|at| now.duration_since(*at) < MIN_INTERVAL) {
            return;
        }
        last.insert(key, now);
    }
    let summary = DeliverySummary {
        id: uuid::Uuid::new_v4().to_string(),
        at: Time(jiff::Timestamp::now()),
        result: describe(status).to_owned(),
        http_status: i32::from(status.as_u16()),
    };
    let api: Api<Webhook> = Api::namespaced(state.client.clone(), &webhook.namespace().unwrap_or_default());
    let name = webhook.name_any();
    tokio::spawn(async move {
        let status = serde_json::json!({"lastDelivery": summary});
        let written = status_patch::apply(&api, &name, &status, ENDPOINT_FIELD_MANAGER, Precondition::None).await;
        if let Err(error) = written {
            tracing::debug!(%error, webhook = %name, "cannot record the last delivery");
        }
    });
}

fn describe(status: StatusCode) -> &'static str {
    match status.as_u16() {
        202 => "accepted",
        200 => "ignored",
        400 => "rejected: bad request",
        401 => "rejected: signature or token",
        413 => "rejected: body too large",
        429 => "rejected: rate limited",
        503 => "failed: try again",
        _ => "failed",
    }
}
