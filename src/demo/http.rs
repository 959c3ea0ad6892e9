//! The demo service's HTTP side: a health endpoint whose reported build drifts from the
//! expected one and comes back, the service's own circuit breakers (each endpoint also
//! answers 503 once per cycle, so failed checks have something to show), and a webhook that
//! receives wsprobe's alert notifications (so their delivery is counted as sent).
//!
//! Both cycles are counted per request, like `/flaky`, so what the daemon sees does not
//! depend on the interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// The build the demo's deploy pipeline says is live.
pub const EXPECTED_VERSION: &str = "1.4.2";
/// The build a lagging replica reports while the version drifts.
pub const DRIFTED_VERSION: &str = "1.4.1";

/// Health checks per drift cycle, and those of them (a range) that report the old build.
const HEALTH_CYCLE: u64 = 12;
const DRIFTING: std::ops::Range<u64> = 6..10;
/// The health check in each cycle that gets a 503.
const HEALTH_UNAVAILABLE: u64 = 3;
/// Breaker polls per cycle, and those in which the service's `llm` breaker is open, then
/// half-open.
const BREAKER_CYCLE: u64 = 10;
const LLM_OPEN: std::ops::Range<u64> = 4..7;
const LLM_HALF_OPEN: u64 = 7;
/// The breaker poll in each cycle that gets a 503.
const BREAKERS_UNAVAILABLE: u64 = 2;

#[derive(Debug, Default)]
struct Counters {
    health: AtomicU64,
    breakers: AtomicU64,
    notifications: AtomicU64,
}

/// The version `/health` reports on its `n`-th request (0-based).
pub(crate) fn version(n: u64) -> &'static str {
    if DRIFTING.contains(&(n % HEALTH_CYCLE)) {
        DRIFTED_VERSION
    } else {
        EXPECTED_VERSION
    }
}

/// The `llm` breaker's state on the `n`-th poll (0-based).
pub(crate) fn llm_breaker(n: u64) -> &'static str {
    match n % BREAKER_CYCLE {
        i if LLM_OPEN.contains(&i) => "OPEN",
        LLM_HALF_OPEN => "HALF_OPEN",
        _ => "CLOSED",
    }
}

pub(crate) fn router() -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/breakers", get(breakers))
        .route("/hooks/alerts", post(notification))
        .with_state(Arc::new(Counters::default()))
}

/// A 503 with a JSON body, as an overloaded service answers.
fn unavailable() -> (StatusCode, Json<Value>) {
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable" })))
}

async fn health(State(c): State<Arc<Counters>>) -> (StatusCode, Json<Value>) {
    let n = c.health.fetch_add(1, Ordering::Relaxed);
    if n % HEALTH_CYCLE == HEALTH_UNAVAILABLE {
        return unavailable();
    }
    (StatusCode::OK, Json(json!({ "status": "ok", "build": { "version": version(n) } })))
}

async fn breakers(State(c): State<Arc<Counters>>) -> (StatusCode, Json<Value>) {
    let n = c.breakers.fetch_add(1, Ordering::Relaxed);
    if n % BREAKER_CYCLE == BREAKERS_UNAVAILABLE {
        return unavailable();
    }
    (
        StatusCode::OK,
        Json(json!({
            "circuit_breakers": {
                "auth": { "state": "CLOSED" },
                "llm": { "state": llm_breaker(n) },
            }
        })),
    )
}

/// Accepts a notification; the daemon counts it as sent. Nothing is kept: the alerts are
/// on `/api/alerts` already.
async fn notification(State(c): State<Arc<Counters>>) -> Json<Value> {
    let n = c.notifications.fetch_add(1, Ordering::Relaxed) + 1;
    Json(json!({ "received": n }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_drifts_and_comes_back_within_a_cycle() {
        let versions: Vec<_> = (0..HEALTH_CYCLE).map(version).collect();
        let first = versions.iter().position(|v| *v == DRIFTED_VERSION);
        assert_eq!(first, Some(6));
        assert_eq!(versions.last(), Some(&EXPECTED_VERSION));
        assert_eq!(version(HEALTH_CYCLE + 6), DRIFTED_VERSION);
        assert!(!DRIFTING.contains(&HEALTH_UNAVAILABLE), "the 503 does not hide the drift");
    }

    #[test]
    fn the_llm_breaker_opens_goes_half_open_and_closes() {
        let states: Vec<_> = (0..BREAKER_CYCLE).map(llm_breaker).collect();
        assert_eq!(states[..4], ["CLOSED"; 4]);
        assert_eq!(states[4..7], ["OPEN"; 3]);
        assert_eq!(states[7], "HALF_OPEN");
        assert_eq!(states[8..], ["CLOSED"; 2]);
    }
}
