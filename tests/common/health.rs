//! The HTTP service health checks and remote breaker polls are pointed at, and the
//! helpers that wait on the daemon's `/metrics` and JSON API while it follows that service.
//!
//! The service (axum on `127.0.0.1:0`) answers from a [`Svc`] the test flips while a daemon
//! watches: its status, health body, version and remote breaker states, plus misbehaving
//! endpoints (wrong content type, malformed JSON, endless or over-declared bodies,
//! redirects and a redirect loop).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use tokio::net::TcpListener;

use super::http::{get as http_get, sample};
use super::poll::poll;

/// What the service answers; the test flips these while the daemon watches.
#[derive(Debug, Clone)]
pub struct Svc {
    pub status: u16,
    /// `status` field of the health body.
    pub health: &'static str,
    pub version: String,
    /// States written at `circuit_breakers.<name>.state`.
    pub auth: &'static str,
    pub llm: &'static str,
    /// Status of `/breakers`.
    pub breakers_status: u16,
}

impl Default for Svc {
    fn default() -> Self {
        Self {
            status: 200,
            health: "ok",
            version: "1.4.1".to_owned(),
            auth: "closed",
            llm: "OPEN",
            breakers_status: 200,
        }
    }
}

#[derive(Clone, Default)]
pub struct Shared {
    pub svc: Arc<Mutex<Svc>>,
    /// The most bytes one `/endless` response has handed to its connection.
    pub endless_sent: Arc<AtomicUsize>,
}

impl Shared {
    pub fn set(&self, f: impl FnOnce(&mut Svc)) {
        f(&mut self.svc.lock().unwrap());
    }
}

fn json(status: u16, body: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn health(State(s): State<Shared>) -> Response {
    let svc = s.svc.lock().unwrap().clone();
    json(svc.status, serde_json::json!({ "status": svc.health, "version": svc.version, "uptime": 12 }))
}

async fn breakers(State(s): State<Shared>) -> Response {
    let svc = s.svc.lock().unwrap().clone();
    json(
        svc.breakers_status,
        serde_json::json!({ "circuit_breakers": { "auth": { "state": svc.auth }, "llm": { "state": svc.llm } } }),
    )
}

/// An endless chunked body, 64 KiB at a time; `most` keeps the largest amount one
/// response handed over.
fn endless_body(most: Option<Arc<AtomicUsize>>) -> Response {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut sent = 0;
    let stream = futures_util::stream::repeat(chunk).map(move |c| {
        sent += c.len();
        if let Some(most) = &most {
            most.fetch_max(sent, Ordering::Relaxed);
        }
        Ok::<_, std::io::Error>(c)
    });
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response()
}

async fn endless(State(s): State<Shared>) -> Response {
    endless_body(Some(s.endless_sent.clone()))
}

pub async fn service() -> (SocketAddr, Shared) {
    let shared = Shared::default();
    let app = Router::new()
        .route("/health", get(health))
        .route("/breakers", get(breakers))
        .route("/moved", get(|| async { Redirect::temporary("/health") }))
        .route("/loop/a", get(|| async { Redirect::temporary("/loop/b") }))
        .route("/loop/b", get(|| async { Redirect::temporary("/loop/a") }))
        .route(
            "/html",
            get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<!doctype html><p>It works!</p>") }),
        )
        .route(
            "/malformed",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{\"status\": \"ok\",") }),
        )
        .route("/endless", get(endless))
        .route(
            "/declared",
            get(|| async {
                // 50 MiB announced; the check must refuse it from the header alone.
                let mut r = endless_body(None);
                r.headers_mut().insert(header::CONTENT_LENGTH, (50u64 << 20).into());
                r
            }),
        )
        .with_state(shared.clone());
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, shared)
}

/// Polls until `check` holds on a fresh scrape, for at most 5 s; every scrape on the way
/// must keep `wsprobe_deployment_info` to at most one series per target.
pub async fn until_metrics(addr: SocketAddr, what: &str, check: impl Fn(&str) -> bool) -> String {
    let scraped = poll(Duration::from_secs(5), Duration::from_millis(20), || async {
        let m = http_get(addr, "/metrics").await.body;
        assert_one_version_per_target(&m);
        if check(&m) {
            Ok(m)
        } else {
            Err(m)
        }
    });
    scraped.await.unwrap_or_else(|m| panic!("timed out waiting until {what}; last scrape:\n{m}"))
}

pub async fn until_api(
    addr: SocketAddr,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    until_json(addr, "/api/targets", what, check).await
}

/// Polls the JSON at `path` until `check` holds, for at most 5 s.
pub async fn until_json(
    addr: SocketAddr,
    path: &str,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let answered = poll(Duration::from_secs(5), Duration::from_millis(20), || async {
        let body = http_get(addr, path).await.body;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        if check(&json) {
            Ok(json)
        } else {
            Err(json)
        }
    });
    answered.await.unwrap_or_else(|json| panic!("timed out waiting until {what}; last answer:\n{json:#}"))
}

pub fn assert_one_version_per_target(m: &str) {
    let mut targets: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("wsprobe_deployment_info{"))
        .filter_map(|l| l.split("target=\"").nth(1)?.split('"').next())
        .collect();
    let all = targets.len();
    targets.dedup();
    assert_eq!(all, targets.len(), "more than one wsprobe_deployment_info series for a target:\n{m}");
}

pub fn target<'a>(api: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    api["targets"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()
}

pub fn check<'a>(api: &'a serde_json::Value, target_name: &str, check: &str) -> &'a serde_json::Value {
    let t = target(api, target_name);
    t["health"].as_array().unwrap().iter().find(|c| c["check"] == check).unwrap_or(&serde_json::Value::Null)
}

pub fn health_ok(m: &str, target: &str, check: &str) -> Option<f64> {
    sample(m, "wsprobe_health_success", &[("target", target), ("check", check)])
}

pub fn failures(m: &str, target: &str, check: &str, reason: &str) -> f64 {
    sample(m, "wsprobe_health_failures_total", &[("target", target), ("check", check), ("reason", reason)])
        .unwrap_or(0.0)
}

pub fn remote(m: &str, breaker: &str, state: &str) -> Option<f64> {
    sample(m, "wsprobe_remote_circuit_state", &[("target", "svc"), ("breaker", breaker), ("state", state)])
}
