//! Early warning to a SIEM (`[risk.webhook]`): each threshold event posted as JSON to an
//! HTTPS endpoint, signed with HMAC-SHA256, retried with backoff.
//!
//! Contract:
//! - [`Webhook::send`] never waits: events go into a bounded queue, and one that does not
//!   fit is dropped (counted in `privgate_risk_webhook_events_total{outcome="dropped"}` and
//!   logged by threshold name), so a slow, hanging or absent endpoint never holds a request;
//! - one delivery task posts the queue in order; a try that fails in a way a retry can mend
//!   (no connection, timeout, 408, 429, 5xx) is tried again after 1 s, 2 s, 4 s ... (at most
//!   a minute) up to `max_attempts`; any other answer gives the event up;
//! - the body holds names only, as the audit record's `risk_events` (threshold, indicator,
//!   window, scope, response) with the request id and the principal: never an indicator's
//!   value, a data subject or request content; logs never hold the body or the key;
//! - `Privgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` signs the exact bytes
//!   `<t>.<body>`, fresh for each try: a receiver recomputes it, compares in constant time,
//!   refuses a `t` older than it tolerates (replays), and drops an `id` it has seen (a
//!   retried event whose answer was lost).

use super::event::RiskEvent;
use crate::config::risk::WebhookConfig;
use crate::config::ConfigError;
use crate::outbound::OutboundClient;
use crate::policy::CallerKind;
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use ring::hmac;
use serde::Serialize;
use std::time::Duration;
use tokio::sync::mpsc;

/// The header carrying the timestamp and the signature.
const SIGNATURE_HEADER: &str = "privgate-signature";

/// HMAC keys shorter than this are refused: HMAC-SHA256's key should be as long as its
/// output (RFC 2104, section 3), as for the JWT shared secrets.
const MIN_SECRET_BYTES: usize = 32;

/// Wait before the first retry; doubled for each further one.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Longest wait between two tries: a SIEM down for long gets tries a minute apart, not an
/// ever slower trickle.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// Largest answer read from the endpoint (only its status matters).
const ANSWER_MAX_BYTES: usize = 64 * 1024;

/// The event type a receiver routes on.
const EVENT_TYPE: &str = "privgate.risk_threshold_exceeded";

/// One threshold event as posted: names only.
#[derive(Debug, Serialize)]
struct Alert {
    /// Unique per event, the same on every try: a receiver drops one it has seen.
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    /// When the threshold was crossed (Unix seconds).
    time: i64,
    request_id: String,
    /// As the audit record names it.
    principal: String,
    /// `User` or `Service`.
    principal_class: String,
    #[serde(flatten)]
    event: RiskEvent,
}

/// Why a try failed.
enum Failure {
    /// Another try may succeed (no connection, timeout, 408, 429, 5xx).
    Transient(String),
    /// The endpoint refused the event (another 4xx, a redirect): not tried again.
    Refused(String),
}

/// The endpoint, its client and key: what `check` verifies and `serve` delivers to.
pub(crate) struct WebhookTarget {
    uri: Uri,
    client: Box<OutboundClient>,
    key: hmac::Key,
    max_attempts: u32,
    queue: usize,
}

impl WebhookTarget {
    /// Reads the key and builds the verified client of a validated `[risk.webhook]`.
    pub(crate) fn from_config(config: &WebhookConfig) -> Result<Self, ConfigError> {
        let uri: Uri = config
            .url
            .parse()
            .map_err(|_| ConfigError::one("privgate.toml", "[risk.webhook] url is not a URL"))?;
        let path = &config.secret_file;
        let secret = zeroize::Zeroizing::new(
            std::fs::read(path).map_err(|e| ConfigError::one(path, format!("cannot read: {e}")))?,
        );
        let secret = secret.trim_ascii_end();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::one(
                path,
                format!("webhook secret must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }
        Ok(Self {
            uri,
            // One try per delivery attempt: the retries are `deliver`'s, each signed afresh.
            client: Box::new(
                OutboundClient::builder()
                    .ca(config.ca.clone())
                    .connect_timeout(config.timeout)
                    .timeout(config.timeout)
                    .max_body(ANSWER_MAX_BYTES)
                    .attempts(1)
                    .build()?,
            ),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            max_attempts: config.max_attempts,
            queue: config.queue,
        })
    }

    /// One try: signs `body` with the current time and posts it.
    async fn post(&self, body: &[u8]) -> Result<(), Failure> {
        let now = crate::store::now_ms() / 1000;
        let signature = signature(&self.key, now, body);
        let request = Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(Bytes::copy_from_slice(body))
            .map_err(|e| Failure::Refused(e.to_string()))?;
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            Err(Failure::Transient(format!("answered {status}")))
        } else {
            Err(Failure::Refused(format!("answered {status}")))
        }
    }

    /// Posts one event until it is delivered, refused or out of tries.
    async fn deliver(&self, alert: &Alert) {
        let threshold = &alert.event.threshold;
        let Ok(body) = serde_json::to_vec(alert) else {
            return;
        };
        let mut wait = FIRST_RETRY;
        for attempt in 1..=self.max_attempts {
            let why = match self.post(&body).await {
                Ok(()) => {
                    crate::telemetry::metrics::risk_webhook_event("delivered");
                    return;
                }
                Err(Failure::Transient(why)) if attempt < self.max_attempts => {
                    crate::telemetry::metrics::risk_webhook_event("retried");
                    tracing::debug!(%threshold, attempt, error = %why, "risk webhook try failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_RETRY_WAIT);
                    continue;
                }
                Err(Failure::Transient(why) | Failure::Refused(why)) => why,
            };
            crate::telemetry::metrics::risk_webhook_event("failed");
            tracing::warn!(%threshold, attempts = attempt, error = %why, "risk webhook event not delivered");
            return;
        }
    }
}

/// The `Privgate-Signature` value for `body` sent at `time` (Unix seconds).
fn signature(key: &hmac::Key, time: i64, body: &[u8]) -> String {
    let mut context = hmac::Context::with_key(key);
    context.update(time.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("t={time},v1={}", crate::audit::hex(context.sign().as_ref()))
}

/// The queue into the delivery task.
pub(crate) struct Webhook {
    queue: mpsc::Sender<Alert>,
}

impl Webhook {
    /// Starts the delivery task (on the current runtime); it ends with the last sender.
    pub(crate) fn start(target: WebhookTarget) -> Self {
        let (queue, mut events) = mpsc::channel::<Alert>(target.queue);
        tokio::spawn(async move {
            while let Some(alert) = events.recv().await {
                target.deliver(&alert).await;
            }
        });
        Self { queue }
    }

    /// Queues `event`, crossed by `principal` (as the audit record names it) on request
    /// `request_id`; drops it, counted and logged, when the queue is full.
    pub(crate) fn send(
        &self,
        event: &RiskEvent,
        request_id: &str,
        principal: &str,
        class: CallerKind,
    ) {
        let alert = Alert {
            id: uuid::Uuid::new_v4().to_string(),
            kind: EVENT_TYPE,
            time: crate::store::now_ms() / 1000,
            request_id: request_id.to_owned(),
            principal: principal.to_owned(),
            principal_class: format!("{class:?}"),
            event: event.clone(),
        };
        if self.queue.try_send(alert).is_err() {
            crate::telemetry::metrics::risk_webhook_event("dropped");
            tracing::warn!(
                threshold = %event.threshold,
                "risk webhook queue full: event dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature is HMAC-SHA256 over `<t>.<body>`, hex, so a receiver in any language
    /// can check it; the time is part of what is signed.
    #[test]
    fn the_signature_covers_the_time_and_the_exact_body() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let expected = hmac::sign(&key, b"1700000000.{\"a\":1}");
        assert_eq!(
            signature(&key, 1_700_000_000, b"{\"a\":1}"),
            format!("t=1700000000,v1={}", crate::audit::hex(expected.as_ref()))
        );
        // RFC 4231 test case 2, to pin the algorithm.
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            crate::audit::hex(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(
            signature(&key, 1_700_000_001, b"{\"a\":1}"),
            signature(&key, 1_700_000_000, b"{\"a\":1}")
        );
    }
}
