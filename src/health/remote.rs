//! The service's own circuit breakers, read from its JSON (`remote_breakers`).
//!
//! Each configured breaker's value is normalized to `closed`, `open`, `half_open` or
//! `unknown`, so whatever the server writes there, the `state` label stays one of four.
//! When the poll fails, every breaker is `unknown`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::ClientConfig;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::ticker::Ticker;
use super::RemoteBreakers;
use super::{http, unix, HealthReason};
use crate::util::matcher::lookup;
use crate::util::template::redact;
use crate::util::text::excerpt;

crate::label_enum! {
    /// A remote breaker's state as exported.
    pub enum RemoteState("state") {
        Closed => "closed",
        Open => "open",
        HalfOpen => "half_open",
        Unknown => "unknown",
    }
}

impl RemoteState {
    /// Reads a state the way services write it: case-insensitive, `half-open`,
    /// `halfopen` and `half open` accepted; anything else is `unknown`.
    pub fn normalize(v: &Value) -> Self {
        let Some(s) = v.as_str() else { return RemoteState::Unknown };
        let s: String =
            s.trim().to_ascii_lowercase().chars().filter(|c| !matches!(c, '_' | '-' | ' ')).collect();
        match s.as_str() {
            "closed" => RemoteState::Closed,
            "open" => RemoteState::Open,
            "halfopen" => RemoteState::HalfOpen,
            _ => RemoteState::Unknown,
        }
    }
}

/// The last poll, for `/api/targets`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteStatus {
    /// Unix time of the poll.
    pub checked_at: f64,
    /// Breaker name → state.
    pub breakers: BTreeMap<String, RemoteState>,
    /// Why the poll failed, if it did.
    pub reason: Option<HealthReason>,
    pub error: Option<String>,
}

/// The remote-breaker poll of one target, its TLS configuration built once.
#[derive(Debug)]
pub struct Poller {
    pub config: RemoteBreakers,
    tls: Arc<ClientConfig>,
}

impl Poller {
    pub fn new(config: RemoteBreakers) -> Result<Self, String> {
        let tls = crate::net::tls::client_config(&config.tls)?;
        Ok(Self { config, tls })
    }

    /// Reads every configured breaker once.
    pub async fn poll(&self, target: &str) -> RemoteStatus {
        let c = &self.config;
        let checked_at = unix(SystemTime::now());
        let mut secrets = Vec::new();
        let endpoint = http::Endpoint {
            url: &c.url,
            headers: &c.headers,
            timeout: c.timeout,
            max_body_size: c.max_body_size,
            tls: &self.tls,
            server_name: c.tls.server_name.as_deref(),
        };
        let outcome = http::fetch(&endpoint, target, &mut secrets, &mut http::Timings::default())
            .await
            .and_then(|answer| parse(&answer));
        match outcome {
            Ok(doc) => RemoteStatus {
                checked_at,
                breakers: c
                    .paths
                    .iter()
                    .map(|(name, path)| {
                        (
                            name.clone(),
                            lookup(&doc, path).map_or(RemoteState::Unknown, RemoteState::normalize),
                        )
                    })
                    .collect(),
                reason: None,
                error: None,
            },
            Err(e) => RemoteStatus {
                checked_at,
                breakers: c.paths.iter().map(|(name, _)| (name.clone(), RemoteState::Unknown)).collect(),
                reason: Some(e.reason),
                error: Some(redact(&e.message, &secrets)),
            },
        }
    }
}

/// A 2xx JSON document, or why not.
fn parse(answer: &http::Answer) -> Result<Value, http::GetError> {
    let fail = |reason, message: String| Err(http::GetError { reason, message, status: Some(answer.status) });
    if !(200..300).contains(&answer.status) {
        return fail(HealthReason::HttpStatus, format!("HTTP {}, expected 2xx", answer.status));
    }
    let text = String::from_utf8_lossy(&answer.body);
    if let Some(ct) = answer.content_type.as_deref().filter(|ct| !super::check::is_json_type(ct)) {
        let message = format!("expected a JSON body, got content type `{}`", excerpt(ct, 60));
        return fail(HealthReason::BodyMismatch, message);
    }
    serde_json::from_str(&text).or_else(|e| {
        fail(
            HealthReason::BodyMismatch,
            format!("the body is not valid JSON ({e}): {:?}", excerpt(text.trim(), 60)),
        )
    })
}

/// Polls every `interval` until `cancel` fires.
pub(super) async fn poll_loop<R: super::Report>(
    poller: Arc<Poller>,
    target: String,
    report: R,
    cancel: CancellationToken,
) {
    let mut ticker = Ticker::new(poller.config.interval);
    let mut last: BTreeMap<String, RemoteState> = BTreeMap::new();
    while let Some(status) = ticker.tick(&cancel, poller.poll(&target)).await {
        if let (Some(reason), Some(error)) = (status.reason, &status.error) {
            report.remote_poll_failed(&target, reason);
            tracing::warn!(target_name = %target, reason = reason.as_str(), detail = error.as_str(), "Could not read the remote circuit breakers; their states are unknown.");
        }
        for (name, state) in &status.breakers {
            report.remote_breaker(&target, name, *state);
            let before = last.insert(name.clone(), *state);
            if before.is_some_and(|b| b == *state) {
                continue;
            }
            let from = before.map_or("", RemoteState::as_str);
            if *state == RemoteState::Open {
                tracing::warn!(target_name = %target, breaker = %name, from, to = state.as_str(), "A remote circuit breaker is open.");
            } else {
                tracing::info!(target_name = %target, breaker = %name, from, to = state.as_str(), "A remote circuit breaker changed state.");
            }
        }
        report.polled(&target, status).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_are_normalized_into_four_values() {
        let n = |v: Value| RemoteState::normalize(&v);
        assert_eq!(n(json!("OPEN")), RemoteState::Open);
        assert_eq!(n(json!(" closed ")), RemoteState::Closed);
        for half in ["half_open", "half-open", "HalfOpen", "HALF OPEN", "halfopen"] {
            assert_eq!(n(json!(half)), RemoteState::HalfOpen, "{half}");
        }
        assert_eq!(n(json!("tripped")), RemoteState::Unknown);
        assert_eq!(n(json!("<script>")), RemoteState::Unknown);
        assert_eq!(n(json!(1)), RemoteState::Unknown);
        assert_eq!(n(json!(null)), RemoteState::Unknown);
    }
}
