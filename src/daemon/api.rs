//! The HTTP API on the `listen` address: `/metrics`, health, target status and reload.
//!
//! Handlers only read the metrics registry and the latest state snapshot, neither of which
//! waits on probe work; a slow or stuck target cannot delay a scrape.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::daemon::{request_reload, Shared};

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/targets", get(targets))
        .route("/api/alerts", get(alerts))
        .route("/-/reload", post(reload))
        .with_state(shared)
}

async fn index() -> &'static str {
    "wsprobe\n\n/metrics        Prometheus metrics\n/healthz        liveness\n/readyz         readiness (configuration loaded, first round done)\n/api/targets    per-target status (JSON)\n/api/alerts     pending and firing alerts (JSON)\nPOST /-/reload  re-read the configuration file\n"
}

async fn metrics(State(s): State<Shared>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render()).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<Shared>) -> Response {
    let (probed, total) = s.snapshot.readiness();
    // Not a reason to be unready (probes still run, late), but never to be missed either.
    let exhausted = s.metrics.target.slots.exhausted.get();
    let detail = if exhausted > 0 {
        format!(
            "warning: {exhausted} probes found every max_concurrent_probes slot busy and started late \
             (wsprobe_probes_delayed_total)\n"
        )
    } else {
        String::new()
    };
    // A shard that owns none of the targets has nothing to wait for (the loaded count is
    // set before the listener serves, so this is not the empty snapshot of a start).
    let empty_shard = total == 0 && s.metrics.targets.get() == 0;
    if (total > 0 && probed == total) || empty_shard {
        (StatusCode::OK, format!("ready\n{detail}")).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {probed} of {total} targets probed so far\n{detail}"),
        )
            .into_response()
    }
}

async fn targets(State(s): State<Shared>) -> Response {
    Json(s.snapshot.latest()).into_response()
}

/// Pending and firing alerts; `?target=NAME` narrows to one target.
async fn alerts(
    State(s): State<Shared>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let all = s.alerts.borrow().clone();
    let list: Vec<_> = all.iter().filter(|a| q.get("target").is_none_or(|t| *t == a.key.target)).collect();
    Json(json!({ "alerts": list })).into_response()
}

async fn reload(State(s): State<Shared>) -> Response {
    match request_reload(&s.reload).await {
        Ok(message) => (StatusCode::OK, Json(json!({"status": "ok", "message": message}))).into_response(),
        Err(error) => {
            (StatusCode::BAD_REQUEST, Json(json!({"status": "error", "error": error}))).into_response()
        }
    }
}
