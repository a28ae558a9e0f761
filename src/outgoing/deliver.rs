//! One step of a delivery: an attempt (send, then decide on a retry) or one poll of the status
//! URL. The caller persists the pending delivery before and the outcome after.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::hook::{self, Prepared};
use super::retry::{self, Attempt, Decision};
use super::send::{Request, SendError, Sender};
use super::sign;
use super::wait::{self, PollState};
use crate::api::{DeliveryRecord, DeliveryResult, OutgoingWebhook, PendingDelivery};

/// What a step produced.
#[derive(Debug, Clone)]
pub struct Step {
    /// The attempt or poll, for `status.deliveries`.
    pub record: DeliveryRecord,
    /// Finished (the pending delivery goes away) or continues at `pending.next_at`.
    pub done: bool,
    /// The failure is the hook's configuration (template, secret, SSRF refusal), not the receiver.
    pub config_error: bool,
}

/// Longest `progress` kept from a receiver's answer (it goes into status).
pub const MAX_PROGRESS: usize = 256;
/// Longest `error` kept in a delivery record.
pub const MAX_ERROR: usize = 1024;
/// Longest status URL accepted from a receiver.
pub const MAX_STATUS_URL: usize = 2048;

/// Cuts `text` to at most `max` bytes at a character boundary: receivers control it, and it is
/// written to the API server.
pub fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub(3);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn later(after: Duration) -> Time {
    let span = jiff::SignedDuration::try_from(after).unwrap_or(jiff::SignedDuration::from_secs(3600));
    Time(now().checked_add(span).unwrap_or_else(|_| now()))
}

/// Runs the next step of `pending` (whose `attempt` already counts an attempt about to be
/// sent), updating its `next_at`, `status_url`, `wait_until` and `progress`.
pub async fn step(
    sender: &Sender,
    hook: &OutgoingWebhook,
    secret: Result<Option<Vec<u8>>, String>,
    pending: &mut PendingDelivery,
    jitter: f64,
) -> Step {
    let record = DeliveryRecord {
        id: pending.id.clone(),
        event: pending.data.event,
        application: pending.data.app_id.clone(),
        at: Time(now()),
        attempt: pending.attempt,
        http_status: None,
        duration_ms: None,
        result: DeliveryResult::Failed,
        error: None,
        progress: pending.progress.clone(),
    };
    let fail = |mut record: DeliveryRecord, error: String, config_error: bool| {
        record.result = DeliveryResult::Failed;
        record.error = Some(error);
        Step { record, done: true, config_error }
    };
    let secret = match secret {
        Ok(secret) => secret,
        Err(error) => return fail(record, error, true),
    };
    let prepared = match hook::prepare(&hook.spec, &pending.data, &pending.id) {
        Ok(prepared) => prepared,
        Err(error) => return fail(record, error.to_string(), true),
    };
    let mut step = match pending.status_url.clone() {
        None => attempt(sender, hook, secret.as_deref(), prepared, pending, record, jitter).await,
        Some(url) => poll(sender, hook, secret.as_deref(), prepared, url, pending, record).await,
    };
    step.record.error = step.record.error.take().map(|e| bounded(e, MAX_ERROR));
    step.record.progress = step.record.progress.take().map(|p| bounded(p, MAX_PROGRESS));
    pending.progress = pending.progress.take().map(|p| bounded(p, MAX_PROGRESS));
    step
}

/// Signs and sends; `body` `None` sends no body (GET) and signs the empty string.
async fn send(
    sender: &Sender,
    secret: Option<&[u8]>,
    id: &str,
    method: reqwest::Method,
    url: String,
    prepared: &Prepared,
    body: Option<&super::format::Body>,
) -> Result<super::send::Response, SendError> {
    let mut headers = prepared.headers.clone();
    if let Some(body) = body {
        headers.push(("content-type".into(), body.content_type.into()));
    }
    let bytes = body.map(|b| b.bytes.clone());
    let timestamp = now().as_second();
    match secret {
        Some(secret) => {
            let signed = sign::headers(secret, id, timestamp, bytes.as_deref().unwrap_or_default())
                .map_err(|e| SendError::Invalid(format!("spec.secretRef: {e}")))?;
            headers.extend(signed.into_iter().map(|(name, value)| (name.to_owned(), value)));
        }
        // Unsigned calls still carry the id receivers deduplicate retries on.
        None => {
            headers.push(("webhook-id".into(), id.to_owned()));
            headers.push(("webhook-timestamp".into(), timestamp.to_string()));
        }
    }
    sender.send(&Request { method, url, headers, body: bytes }).await
}

async fn attempt(
    sender: &Sender,
    hook: &OutgoingWebhook,
    secret: Option<&[u8]>,
    prepared: Prepared,
    pending: &mut PendingDelivery,
    mut record: DeliveryRecord,
    jitter: f64,
) -> Step {
    let policy = match hook::backoff(&hook.spec) {
        Ok(policy) => policy,
        Err(error) => return Step { record: with_error(record, error), done: true, config_error: true },
    };
    let (method, url) = (prepared.method.clone(), prepared.url.clone());
    let result = send(sender, secret, &pending.id, method, url, &prepared, prepared.body.as_ref()).await;
    let attempt_number = u32::try_from(pending.attempt.max(1)).unwrap_or(1);
    let (outcome, response) = match result {
        Ok(response) => {
            record.http_status = Some(i32::from(response.status));
            record.duration_ms = i64::try_from(response.duration.as_millis()).ok();
            let retry_after = response.retry_after.as_deref().and_then(|v| retry::parse_retry_after(v, now()));
            (Attempt::Status { code: response.status, retry_after }, Some(response))
        }
        Err(SendError::Transport { message, duration }) => {
            record.duration_ms = i64::try_from(duration.as_millis()).ok();
            record.error = Some(message);
            (Attempt::Transport, None)
        }
        Err(SendError::Blocked(message) | SendError::Invalid(message)) => {
            return Step { record: with_error(record, message), done: true, config_error: true };
        }
    };
    match (retry::decide(&policy, attempt_number, outcome, jitter), &hook.spec.wait_for_completion, response) {
        (Decision::Done, Some(wait_spec), Some(response)) => {
            start_waiting(wait_spec, &prepared.url, &response, pending, record)
        }
        (Decision::Done, _, _) => {
            record.result = DeliveryResult::Succeeded;
            Step { record, done: true, config_error: false }
        }
        (Decision::RetryAfter(wait), _, _) => {
            pending.next_at = later(wait);
            record.result = DeliveryResult::Retrying;
            if record.error.is_none() {
                record.error = record.http_status.map(|s| format!("HTTP {s}; retrying in {}s", wait.as_secs()));
            }
            Step { record, done: false, config_error: false }
        }
        (Decision::GiveUp(why), _, _) => {
            let error = match (record.error.take(), record.http_status) {
                (Some(previous), _) => format!("{previous}; {why}"),
                (None, Some(status)) if !why.contains(&status.to_string()) => format!("HTTP {status}; {why}"),
                (None, _) => why,
            };
            Step { record: with_error(record, error), done: true, config_error: false }
        }
    }
}

/// The call succeeded and the hook waits for completion: find the status URL in the answer
/// and schedule the first poll.
fn start_waiting(
    wait_spec: &crate::api::WaitForCompletion,
    call_url: &str,
    response: &super::send::Response,
    pending: &mut PendingDelivery,
    mut record: DeliveryRecord,
) -> Step {
    let url = match wait::status_url(wait_spec, call_url, response.location.as_deref(), &response.body) {
        Ok(url) if url.len() > MAX_STATUS_URL => {
            let error = format!("the status URL is longer than {MAX_STATUS_URL} bytes");
            return Step { record: with_error(record, error), done: true, config_error: false };
        }
        Ok(url) => url,
        Err(error) => return Step { record: with_error(record, error.to_string()), done: true, config_error: false },
    };
    let interval = wait_spec.poll_interval.parse().unwrap_or(Duration::from_secs(10));
    let timeout = wait_spec.timeout.parse().unwrap_or(Duration::from_secs(1800));
    pending.status_url = Some(url);
    pending.wait_until = Some(later(timeout));
    pending.next_at = later(interval);
    record.result = DeliveryResult::Waiting;
    Step { record, done: false, config_error: false }
}

fn with_error(mut record: DeliveryRecord, error: String) -> DeliveryRecord {
    record.result = DeliveryResult::Failed;
    record.error = Some(error);
    record
}

async fn poll(
    sender: &Sender,
    hook: &OutgoingWebhook,
    secret: Option<&[u8]>,
    prepared: Prepared,
    url: String,
    pending: &mut PendingDelivery,
    mut record: DeliveryRecord,
) -> Step {
    let Some(wait_spec) = &hook.spec.wait_for_completion else {
        // The hook stopped waiting since the call: the call itself succeeded.
        record.result = DeliveryResult::Succeeded;
        return Step { record, done: true, config_error: false };
    };
    if pending.wait_until.as_ref().is_some_and(|until| until.0 <= now()) {
        let timeout = wait_spec.timeout.to_string();
        return Step {
            record: with_error(
                record,
                format!("no final status from {url} within {timeout} (waitForCompletion.timeout)"),
            ),
            done: true,
            config_error: false,
        };
    }
    let interval = wait_spec.poll_interval.parse().unwrap_or(Duration::from_secs(10));
    pending.next_at = later(interval);
    record.result = DeliveryResult::Waiting;
    match send(sender, secret, &pending.id, reqwest::Method::GET, url.clone(), &prepared, None).await {
        Ok(response) => {
            record.http_status = Some(i32::from(response.status));
            record.duration_ms = i64::try_from(response.duration.as_millis()).ok();
            if !(200..300).contains(&response.status) {
                record.error = Some(format!("status poll of {url}: HTTP {}", response.status));
                return Step { record, done: false, config_error: false };
            }
            read_poll_answer(wait_spec, &response.body, pending, record)
        }
        Err(SendError::Transport { message, .. }) => {
            record.error = Some(format!("status poll of {url}: {message}"));
            Step { record, done: false, config_error: false }
        }
        Err(SendError::Blocked(message) | SendError::Invalid(message)) => {
            Step { record: with_error(record, message), done: true, config_error: true }
        }
    }
}

/// What a 2xx answer of the status URL says: finished (and how) or still running, with progress.
fn read_poll_answer(
    wait_spec: &crate::api::WaitForCompletion,
    body: &[u8],
    pending: &mut PendingDelivery,
    mut record: DeliveryRecord,
) -> Step {
    match wait::read_poll(wait_spec, body) {
        Ok((state, progress)) => {
            if progress.is_some() {
                pending.progress = progress.clone();
                record.progress = progress;
            }
            let (result, done) = match state {
                PollState::Success => (DeliveryResult::Succeeded, true),
                PollState::Canceled => (DeliveryResult::Canceled, true),
                PollState::Terminal => (DeliveryResult::Terminal, true),
                PollState::Running => (DeliveryResult::Waiting, false),
            };
            record.result = result;
            Step { record, done, config_error: false }
        }
        Err(error) => Step { record: with_error(record, error.to_string()), done: true, config_error: true },
    }
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn bounded_cuts_at_a_character_boundary() {
        assert_eq!(bounded("short".into(), 10), "short");
        assert_eq!(bounded("abcdefghijkl".into(), 8), "abcde...");
        let cut = bounded("ééééééé".into(), 8);
        assert!(cut.len() <= 8 && cut.ends_with("..."), "{cut}");
    }
}
