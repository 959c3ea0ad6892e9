//! The HTTP API on the `listen` address: `/metrics`, health, target status and reload.
//!
//! Handlers only read the metrics registry and the latest state snapshot, neither of which
//! waits on probe work; a slow or stuck target cannot delay a scrape.

use axum::body::{Body, Bytes};
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
        .route("/targets/{name}", get(target_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/targets", get(targets))
        .route("/api/alerts", get(alerts))
        .route("/-/reload", post(reload))
        .with_state(shared)
}

/// The status page for browsers (`Accept` naming `text/html`), the text index otherwise.
async fn index(State(s): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    let html = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("text/html")));
    let mut response = if html { page(&s, crate::page::overview) } else { text_index().into_response() };
    response.headers_mut().insert(header::VARY, header::HeaderValue::from_static("accept"));
    response
}

/// A target's status page; 404 (still a page) for a name not configured.
async fn target_page(
    State(s): State<Shared>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let mut found = true;
    let mut response = page(&s, |inputs| {
        crate::page::target(inputs, &name).unwrap_or_else(|| {
            found = false;
            crate::page::not_found(&name)
        })
    });
    if !found {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
}

/// Renders from the latest snapshot, history and alerts. The page needs nothing from
/// elsewhere, and the policy says so to the browser: a slip in escaping could not load
/// a script or reach another host.
fn page(s: &Shared, render: impl FnOnce(&crate::page::Inputs<'_>) -> String) -> Response {
    let snapshot = s.snapshot.latest();
    let histories = s.history.snapshot();
    let alerts = s.alerts.borrow().clone();
    let inputs = crate::page::Inputs {
        snapshot: &snapshot,
        histories: &histories,
        alerts: &alerts,
        now: crate::util::time::unix_now(),
    };
    let body = render(&inputs);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn text_index() -> &'static str {
    "wsprobe\n\n/               status page (HTML, for an Accept header with text/html)\n/targets/NAME   a target's status page (HTML)\n/metrics        Prometheus metrics\n/healthz        liveness\n/readyz         readiness (configuration loaded, first round done)\n/api/targets    per-target status (JSON)\n/api/alerts     pending and firing alerts (JSON)\nPOST /-/reload  re-read the configuration file\n"
}

async fn metrics(State(s): State<Shared>) -> Response {
    // Sent as it is written, a page at a time: no scrape-sized buffer (see metrics::Scrape).
    let pages = s.metrics.scrape().map(|page| Ok::<_, std::convert::Infallible>(Bytes::from(page)));
    let body = Body::from_stream(futures_util::stream::iter(pages));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
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
