//! Circuit breaker, health checks, remote breakers and deployment drift, end to end.
//!
//! An in-process HTTP service (axum on `127.0.0.1:0`) whose status, JSON body, version and
//! remote breaker states the tests flip while a daemon runs in-process; `/metrics` and
//! `/api/targets` must follow each change. Misbehaving endpoints (wrong content type,
//! malformed JSON, an endless body, a redirect loop, a refused port) must each give their
//! reason without disturbing anything else. `wsprobe once` is run as the real binary for
//! the post-deploy gate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use common::daemon::{start, write_config};
use common::http::{get as http_get, sample};
use common::poll::poll;
use common::process::{self, Output};
use common::ServerOpts;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response as WsResponse};

// ---------------------------------------------------------------------------------------
// The service under test.

/// What the service answers; the test flips these while the daemon watches.
#[derive(Debug, Clone)]
struct Svc {
    status: u16,
    /// `status` field of the health body.
    health: &'static str,
    version: String,
    /// States written at `circuit_breakers.<name>.state`.
    auth: &'static str,
    llm: &'static str,
    /// Status of `/breakers`.
    breakers_status: u16,
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
struct Shared {
    svc: Arc<Mutex<Svc>>,
    /// The most bytes one `/endless` response has handed to its connection.
    endless_sent: Arc<AtomicUsize>,
}

impl Shared {
    fn set(&self, f: impl FnOnce(&mut Svc)) {
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

async fn service() -> (SocketAddr, Shared) {
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

/// A WebSocket server that answers the upgrade with 503 while unhealthy.
async fn switchable_ws() -> (SocketAddr, Arc<AtomicBool>) {
    let healthy = Arc::new(AtomicBool::new(false));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let flag = healthy.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let flag = flag.clone();
            tokio::spawn(async move {
                // The error type is tungstenite's, large or not.
                #[allow(clippy::result_large_err)]
                let gate = |_: &Request, resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
                    if flag.load(Ordering::SeqCst) {
                        Ok(resp)
                    } else {
                        let mut refusal = ErrorResponse::new(Some("down".to_owned()));
                        *refusal.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                        Err(refusal)
                    }
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, gate).await else { return };
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    (addr, healthy)
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// Polls until `check` holds on a fresh scrape, for at most 5 s; every scrape on the way
/// must keep `wsprobe_deployment_info` to at most one series per target.
async fn until_metrics(addr: SocketAddr, what: &str, check: impl Fn(&str) -> bool) -> String {
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

async fn until_api(
    addr: SocketAddr,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    until_json(addr, "/api/targets", what, check).await
}

/// Polls the JSON at `path` until `check` holds, for at most 5 s.
async fn until_json(
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

fn assert_one_version_per_target(m: &str) {
    let mut targets: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("wsprobe_deployment_info{"))
        .filter_map(|l| l.split("target=\"").nth(1)?.split('"').next())
        .collect();
    let all = targets.len();
    targets.dedup();
    assert_eq!(all, targets.len(), "more than one wsprobe_deployment_info series for a target:\n{m}");
}

fn target<'a>(api: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    api["targets"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()
}

fn check<'a>(api: &'a serde_json::Value, target_name: &str, check: &str) -> &'a serde_json::Value {
    let t = target(api, target_name);
    t["health"].as_array().unwrap().iter().find(|c| c["check"] == check).unwrap_or(&serde_json::Value::Null)
}

fn health_ok(m: &str, target: &str, check: &str) -> Option<f64> {
    sample(m, "wsprobe_health_success", &[("target", target), ("check", check)])
}

fn failures(m: &str, target: &str, check: &str, reason: &str) -> f64 {
    sample(m, "wsprobe_health_failures_total", &[("target", target), ("check", check), ("reason", reason)])
        .unwrap_or(0.0)
}

fn remote(m: &str, breaker: &str, state: &str) -> Option<f64> {
    sample(m, "wsprobe_remote_circuit_state", &[("target", "svc"), ("breaker", breaker), ("state", state)])
}

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_api_follow_the_service_as_it_changes() {
    let (svc, shared) = service().await;
    let ws = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("expected-version");
    std::fs::write(&expected, "1.4.1\n").unwrap();
    let path = dir.path().join("wsprobe.yaml");
    write_config(
        &path,
        &format!(
            "  - name: svc
    url: {ws}
    health:
      - name: version
        url: http://{svc}/moved
        expect: {{ json: {{ status: ok }} }}
        version_path: version
        expected_version: '${{file:{expected}}}'
    remote_breakers:
      url: http://{svc}/breakers
      interval: 100ms
      paths: {{ auth: circuit_breakers.auth.state, llm: circuit_breakers.llm.state }}
",
            ws = ws.url(),
            expected = expected.display()
        ),
    );
    let (running, cancel) = start(&path).await;
    let addr = running.addr;

    // Healthy, the expected build, auth closed, llm open (written `OPEN`).
    let m = until_metrics(addr, "the first check and poll", |m| {
        health_ok(m, "svc", "version") == Some(1.0)
            && remote(m, "llm", "open") == Some(1.0)
            && sample(m, "wsprobe_deployment_drift", &[("target", "svc")]).is_some()
    })
    .await;
    assert_eq!(sample(&m, "wsprobe_deployment_info", &[("target", "svc"), ("version", "1.4.1")]), Some(1.0));
    assert_eq!(sample(&m, "wsprobe_deployment_drift", &[("target", "svc")]), Some(0.0));
    assert_eq!(sample(&m, "wsprobe_deployment_drift_seconds", &[("target", "svc")]), Some(0.0));
    assert_eq!(remote(&m, "auth", "closed"), Some(1.0));
    assert_eq!(remote(&m, "auth", "open"), Some(0.0));
    assert_eq!(
        sample(&m, "wsprobe_health_http_status", &[("target", "svc"), ("check", "version")]),
        Some(200.0)
    );
    for phase in ["dns", "connect", "first_byte", "total"] {
        let labels = [("target", "svc"), ("check", "version"), ("phase", phase)];
        assert!(
            sample(&m, "wsprobe_health_duration_seconds_count", &labels).is_some_and(|n| n >= 1.0),
            "{phase}"
        );
    }
    // Plain http://: no TLS phase is invented.
    let tls = [("target", "svc"), ("check", "version"), ("phase", "tls")];
    assert_eq!(sample(&m, "wsprobe_health_duration_seconds_count", &tls), None);
    let api =
        until_api(addr, "the API shows the check", |a| check(a, "svc", "version")["success"] == true).await;
    let c = check(&api, "svc", "version");
    assert_eq!(c["redirects"], 1, "/moved redirects to /health: {c}");
    assert_eq!(c["version"], "1.4.1");
    let t = target(&api, "svc");
    assert_eq!(t["deployment"]["live_version"], "1.4.1");
    assert_eq!(t["deployment"]["drift"], false);
    assert_eq!(t["remote_breakers"]["breakers"]["llm"], "open");
    assert_eq!(t["circuit"]["state"], "closed");

    // The service fails its health endpoint.
    shared.set(|s| s.status = 503);
    let m = until_metrics(addr, "the 503 is seen", |m| health_ok(m, "svc", "version") == Some(0.0)).await;
    assert!(failures(&m, "svc", "version", "http_status") >= 1.0);
    assert_eq!(
        sample(&m, "wsprobe_health_http_status", &[("target", "svc"), ("check", "version")]),
        Some(503.0)
    );
    let api =
        until_api(addr, "the API shows the 503", |a| check(a, "svc", "version")["http_status"] == 503).await;
    let c = check(&api, "svc", "version");
    assert_eq!(c["reason"], "http_status");
    assert!(c["message"].as_str().unwrap().starts_with("HTTP 503, expected 200: {"), "{c}");

    // Answers 200 but says it is degraded: the matcher names the field.
    shared.set(|s| {
        s.status = 200;
        s.health = "degraded";
    });
    let api =
        until_api(addr, "body_mismatch", |a| check(a, "svc", "version")["reason"] == "body_mismatch").await;
    let message = check(&api, "svc", "version")["message"].as_str().unwrap().to_owned();
    assert_eq!(message, "the body does not match `expect`: `status` is \"degraded\", expected \"ok\"");

    // A new build goes live before the pipeline records it: drift, and the version label
    // moves rather than multiplies.
    shared.set(|s| {
        s.health = "ok";
        s.version = "1.4.2".to_owned();
    });
    let m = until_metrics(addr, "drift", |m| {
        sample(m, "wsprobe_deployment_drift", &[("target", "svc")]) == Some(1.0)
    })
    .await;
    assert_eq!(sample(&m, "wsprobe_deployment_info", &[("target", "svc"), ("version", "1.4.2")]), Some(1.0));
    assert!(!m.contains("version=\"1.4.1\""), "the old version's series remains:\n{m}");
    let api = until_api(addr, "drift in the API", |a| target(a, "svc")["deployment"]["drift"] == true).await;
    let d = &target(&api, "svc")["deployment"];
    assert_eq!((d["live_version"].as_str(), d["expected_version"].as_str()), (Some("1.4.2"), Some("1.4.1")));
    assert!(d["drift_since"].as_f64().is_some(), "{d}");
    until_metrics(addr, "drift seconds grow", |m| {
        sample(m, "wsprobe_deployment_drift_seconds", &[("target", "svc")]).is_some_and(|s| s > 0.0)
    })
    .await;

    // The pipeline writes the new expectation: drift ends (the file is re-read each check).
    std::fs::write(&expected, "1.4.2\n").unwrap();
    let m = until_metrics(addr, "drift ends", |m| {
        sample(m, "wsprobe_deployment_drift", &[("target", "svc")]) == Some(0.0)
    })
    .await;
    assert_eq!(sample(&m, "wsprobe_deployment_drift_seconds", &[("target", "svc")]), Some(0.0));

    // A version with characters a label should not carry is sanitized.
    shared.set(|s| s.version = "2.0.0 (beta/\"x\")".to_owned());
    let m = until_metrics(addr, "the sanitized version", |m| {
        sample(m, "wsprobe_deployment_info", &[("target", "svc"), ("version", "2.0.0__beta__x__")])
            == Some(1.0)
    })
    .await;
    assert_eq!(m.lines().filter(|l| l.starts_with("wsprobe_deployment_info{")).count(), 1, "{m}");

    // Remote breakers: `half-open` is understood; a free-form state is `unknown`, never a label.
    shared.set(|s| {
        s.auth = "half-open";
        s.llm = "Tripped!";
    });
    let m = until_metrics(addr, "remote states change", |m| {
        remote(m, "auth", "half_open") == Some(1.0) && remote(m, "llm", "unknown") == Some(1.0)
    })
    .await;
    assert_eq!(remote(&m, "llm", "open"), Some(0.0));
    assert!(!m.contains("Tripped"), "a server string became a label:\n{m}");

    // The breaker endpoint fails: every remote state is unknown, the failure counted.
    shared.set(|s| s.breakers_status = 500);
    let m = until_metrics(addr, "the poll failure", |m| {
        remote(m, "auth", "unknown") == Some(1.0)
            && sample(
                m,
                "wsprobe_remote_breaker_poll_failures_total",
                &[("target", "svc"), ("reason", "http_status")],
            )
            .is_some_and(|n| n >= 1.0)
    })
    .await;
    assert_eq!(remote(&m, "auth", "half_open"), Some(0.0));
    let api = until_api(addr, "the poll error in the API", |a| {
        target(a, "svc")["remote_breakers"]["error"].as_str().is_some()
    })
    .await;
    assert_eq!(target(&api, "svc")["remote_breakers"]["reason"], "http_status");

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), running.wait()).await.expect("stops within 3s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_endpoints_each_get_their_reason_and_probing_goes_on() {
    let (svc, shared) = service().await;
    let ws = common::echo(ServerOpts::default()).await;
    let refused = common::refused_addr();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    write_config(
        &path,
        &format!(
            "  - name: bad
    url: {ws}
    health:
      - {{ name: html, url: 'http://{svc}/html', expect: {{ json: {{ status: ok }} }} }}
      - {{ name: malformed, url: 'http://{svc}/malformed', version_path: version }}
      - {{ name: endless, url: 'http://{svc}/endless', max_body_size: 256KiB }}
      - {{ name: declared, url: 'http://{svc}/declared' }}
      - {{ name: loop, url: 'http://{svc}/loop/a' }}
      - {{ name: refused, url: 'http://{refused}/health' }}
      - {{ name: text-ok, url: 'http://{svc}/html', expect: {{ text: 'It works' }} }}
",
            ws = ws.url()
        ),
    );
    let (running, cancel) = start(&path).await;
    let addr = running.addr;
    let expected = [
        ("html", "body_mismatch"),
        ("malformed", "body_mismatch"),
        ("endless", "body_too_large"),
        ("declared", "body_too_large"),
        ("loop", "too_many_redirects"),
        ("refused", "connect_refused"),
    ];
    let m = until_metrics(addr, "every check has run", |m| {
        expected
            .iter()
            .all(|(c, reason)| failures(m, "bad", c, reason) >= 1.0 && health_ok(m, "bad", c).is_some())
            && health_ok(m, "bad", "text-ok") == Some(1.0)
    })
    .await;
    for (c, _) in expected {
        assert_eq!(health_ok(&m, "bad", c), Some(0.0), "{c}");
    }

    let api = until_api(addr, "every check in the API", |a| {
        target(a, "bad")["health"].as_array().unwrap().len() == 7
    })
    .await;
    let message = |c: &str| check(&api, "bad", c)["message"].as_str().unwrap_or("").to_owned();
    assert_eq!(
        message("html"),
        "expected a JSON body, got content type `text/html` (body starts \"<!doctype html><p>It works!</p>\")"
    );
    assert!(message("malformed").starts_with("the body is not valid JSON ("), "{}", message("malformed"));
    assert!(
        message("malformed").ends_with("body starts \"{\\\"status\\\": \\\"ok\\\",\""),
        "{}",
        message("malformed")
    );
    assert_eq!(message("endless"), "the body is larger than max_body_size (256KiB); reading stopped there");
    assert_eq!(message("declared"), "the body is 52428800 bytes, more than max_body_size (1MiB); not read");
    assert_eq!(message("loop"), "redirect loop: /loop/a → /loop/b → /loop/a");
    assert_eq!(message("refused"), format!("connection to {refused} refused"));
    let order: Vec<&str> = target(&api, "bad")["health"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["html", "malformed", "endless", "declared", "loop", "refused", "text-ok"],
        "configuration order"
    );

    // The endless body was cut promptly, and what the server managed to hand over is
    // bounded by the limit plus socket buffers, not by how long the check ran.
    let endless = check(&api, "bad", "endless");
    assert!(endless["duration_seconds"].as_f64().unwrap() < 2.0, "{endless}");
    let sent = shared.endless_sent.load(Ordering::Relaxed);
    assert!(sent < 32 << 20, "one response handed over {sent} bytes before the check hung up");

    // The WebSocket probes of the same target are unaffected.
    let before = sample(&m, "wsprobe_probes_total", &[("target", "bad"), ("result", "success")]).unwrap();
    let m = until_metrics(addr, "probing goes on", |m| {
        sample(m, "wsprobe_probes_total", &[("target", "bad"), ("result", "success")]).unwrap() > before + 1.0
    })
    .await;
    assert_eq!(sample(&m, "wsprobe_probe_success", &[("target", "bad")]), Some(1.0));

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), running.wait()).await.expect("stops within 3s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_backs_off_and_closes_again() {
    let (ws, healthy) = switchable_ws().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    write_config(
        &path,
        &format!(
            "  - name: flaky
    url: ws://{ws}/ws
    interval: 50ms
    server_speaks_first: false
    circuit_breaker: {{ failure_threshold: 2, recovery_timeout: 300ms, success_threshold: 2, open_interval: 400ms }}
"
        ),
    );
    let (running, cancel) = start(&path).await;
    let addr = running.addr;
    let state = |m: &str, s: &str| sample(m, "wsprobe_circuit_state", &[("target", "flaky"), ("state", s)]);
    let moved = |m: &str, from: &str, to: &str| {
        sample(m, "wsprobe_circuit_transitions_total", &[("target", "flaky"), ("from", from), ("to", to)])
            .unwrap_or(0.0)
    };
    let failed =
        |m: &str| sample(m, "wsprobe_probes_total", &[("target", "flaky"), ("result", "failure")]).unwrap();

    let m = until_metrics(addr, "the breaker opens", |m| state(m, "open") == Some(1.0)).await;
    assert_eq!((state(&m, "closed"), state(&m, "half_open")), (Some(0.0), Some(0.0)));
    assert_eq!(moved(&m, "closed", "open"), 1.0);
    let opened_at = Instant::now();
    let failures_at_open = failed(&m);
    let since = sample(&m, "wsprobe_circuit_state_since_timestamp_seconds", &[("target", "flaky")]).unwrap();
    let now = wsprobe::util::time::unix_now();
    assert!((now - 5.0..=now + 0.1).contains(&since), "since {since}, now {now}");
    let api =
        until_api(addr, "the API shows it open", |a| target(a, "flaky")["circuit"]["state"] == "open").await;
    let circuit = &target(&api, "flaky")["circuit"];
    assert_eq!(circuit["reason"], "2 consecutive failures, last: handshake_status in handshake (HTTP 503)");
    assert_eq!(circuit["probe_interval_seconds"], 0.4);

    // Open: no probe until the recovery timeout (at 50 ms there would be about four).
    tokio::time::sleep(Duration::from_millis(200).saturating_sub(opened_at.elapsed())).await;
    let m = until_metrics(addr, "a scrape", |_| true).await;
    assert!(
        failed(&m) <= failures_at_open + 1.0,
        "probed {} times while open",
        failed(&m) - failures_at_open
    );

    // The half-open trial fails: open again.
    let m = until_metrics(addr, "a failed trial", |m| moved(m, "half_open", "open") >= 1.0).await;
    assert!(moved(&m, "open", "half_open") >= 1.0);

    // The service recovers: a trial, a second success, closed.
    healthy.store(true, Ordering::SeqCst);
    let m = until_metrics(addr, "the breaker closes", |m| state(m, "closed") == Some(1.0)).await;
    assert_eq!(moved(&m, "half_open", "closed"), 1.0);
    assert_eq!((state(&m, "open"), state(&m, "half_open")), (Some(0.0), Some(0.0)));
    let api =
        until_api(addr, "the API shows it closed", |a| target(a, "flaky")["circuit"]["state"] == "closed")
            .await;
    let circuit = &target(&api, "flaky")["circuit"];
    assert_eq!(circuit["reason"], "2 consecutive trial probes succeeded");
    assert_eq!(circuit["consecutive_failures"], 0);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), running.wait()).await.expect("stops within 3s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_reports_drift_and_fails_on_it_only_when_asked() {
    let (svc, _shared) = service().await;
    let ws = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let run = |fail_on_drift: bool, format: &'static str| {
        write_config(
            &path,
            &format!(
                "  - name: staging
    url: {ws}
    fail_on_drift: {fail_on_drift}
    health:
      - name: version
        url: http://{svc}/health
        version_path: version
        expected_version: ${{EXPECTED_VERSION}}
",
                ws = ws.url()
            ),
        );
        let config = path.to_str().unwrap().to_owned();
        async move {
            tokio::task::spawn_blocking(move || {
                let (mut child, lines) = process::spawn(
                    &["once", "--config", &config, "--format", format],
                    &[("EXPECTED_VERSION", "1.4.2")],
                    Output::Stdout,
                );
                let status = child.wait_exit(Duration::from_secs(10));
                // The reader thread ends with the child's stdout.
                std::thread::sleep(Duration::from_millis(50));
                (status.code(), lines.try_iter().collect::<Vec<_>>().join("\n"))
            })
            .await
            .unwrap()
        }
    };

    let (code, out) = run(true, "text").await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("drift: deployed 1.4.2, staging still serves 1.4.1"), "{out}");
    assert!(out.contains("health `version`  ok"), "{out}");
    assert!(out.contains("1 of 1 targets ok") && out.contains("1 of 1 health checks ok"), "{out}");

    let (code, out) = run(false, "text").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("drift: deployed 1.4.2, staging still serves 1.4.1"), "{out}");

    let (code, out) = run(true, "json").await;
    assert_eq!(code, Some(1), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let r = &json["results"][0];
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["health"][0]["check"], "version");
    assert_eq!(r["health"][0]["version"], "1.4.1");
    assert_eq!(r["deployment"]["drift"], true);
    assert_eq!(r["deployment"]["expected_version"], "1.4.2");
}

#[test]
fn once_fails_on_a_failing_health_check() {
    let refused = common::refused_addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = rt.block_on(common::echo(ServerOpts::default()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    write_config(
        &path,
        &format!(
            "  - name: staging\n    url: {}\n    health: [ {{ name: up, url: 'http://{refused}/' }} ]\n",
            ws.url()
        ),
    );
    let (mut child, lines) =
        process::spawn(&["once", "--config", path.to_str().unwrap()], &[], Output::Stdout);
    let status = child.wait_exit(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(50));
    let out = lines.try_iter().collect::<Vec<_>>().join("\n");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("staging  ok"), "the probe itself succeeded: {out}");
    assert!(out.contains("health `up`  FAIL") && out.contains("connect_refused"), "{out}");
    assert!(out.contains("0 of 1 health checks ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_drops_the_series_of_removed_checks_breakers_and_targets() {
    let (svc, _shared) = service().await;
    let ws = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let ws = ws.url();
    let both = format!(
        "  - name: svc
    url: {ws}
    health:
      - {{ name: a, url: 'http://{svc}/health' }}
      - {{ name: b, url: 'http://{svc}/health', version_path: version }}
    remote_breakers: {{ url: 'http://{svc}/breakers', interval: 100ms, paths: {{ auth: circuit_breakers.auth.state }} }}
  - name: other
    url: {ws}
    health: [ {{ name: c, url: 'http://{svc}/health' }} ]
"
    );
    write_config(&path, &both);
    let (running, cancel) = start(&path).await;
    let addr = running.addr;
    until_metrics(addr, "everything ran", |m| {
        health_ok(m, "svc", "a") == Some(1.0)
            && health_ok(m, "svc", "b") == Some(1.0)
            && health_ok(m, "other", "c") == Some(1.0)
            && remote(m, "auth", "closed") == Some(1.0)
            && m.contains("wsprobe_deployment_info{")
            && sample(m, "wsprobe_circuit_state", &[("target", "other"), ("state", "closed")]) == Some(1.0)
    })
    .await;

    write_config(
        &path,
        &format!("  - name: svc\n    url: {ws}\n    health: [ {{ name: a, url: 'http://{svc}/health' }} ]\n"),
    );
    let resp = common::http::request(addr, "POST", "/-/reload").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let m = until_metrics(addr, "the old series are gone", |m| {
        !m.contains("check=\"b\"")
            && !m.contains("target=\"other\"")
            && !m.contains("wsprobe_remote_circuit_state{")
    })
    .await;
    assert!(!m.contains("wsprobe_deployment_info{") && !m.contains("wsprobe_deployment_drift"), "{m}");
    assert_eq!(health_ok(&m, "svc", "a"), Some(1.0));
    let api =
        until_api(addr, "the API follows", |a| target(a, "svc")["health"].as_array().unwrap().len() == 1)
            .await;
    let t = target(&api, "svc");
    assert!(t["remote_breakers"].is_null() && t["deployment"].is_null(), "{t}");
    assert_eq!(api["targets"].as_array().unwrap().len(), 1);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), running.wait()).await.expect("stops within 3s");
}

/// An HTTPS server answering every request with one JSON document.
async fn https_service(identity: &common::TlsIdentity) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config());
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).await.is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let body = r#"{"version":"9.9.9"}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_checks_time_tls_and_verify_the_certificate() {
    let identity = common::self_signed(&["localhost"]);
    let ca = common::write_temp(&identity.cert_pem);
    let addr = https_service(&identity).await;
    let yaml = format!(
        "targets:
  - name: t
    url: wss://localhost:{port}/ws
    tls: {{ ca_file: '{ca}', server_name: ws.example.test }}
    health:
      - {{ name: trusted, url: 'https://localhost:{port}/health', version_path: version }}
      - {{ name: untrusted, url: 'https://localhost:{port}/health', tls: {{ insecure_skip_verify: false }} }}
",
        port = addr.port(),
        ca = ca.path().display()
    );
    let config = wsprobe::config::parse(Path::new("t.yaml"), &yaml).unwrap_or_else(|e| panic!("{e}"));
    let checks = &config.targets[0].health;
    // The target's CA file is inherited, its server_name (the WebSocket host's) is not.
    assert_eq!(checks[0].tls.ca_file.as_deref(), Some(ca.path()));
    assert_eq!(checks[0].tls.server_name, None);

    let trusted = wsprobe::health::Checker::new(checks[0].clone()).unwrap().run("t").await;
    assert!(trusted.success, "{trusted:?}");
    assert_eq!(trusted.version.as_deref(), Some("9.9.9"));
    let phases: Vec<&str> = trusted.phases.iter().map(|(p, _)| p).collect();
    assert_eq!(phases, ["dns", "connect", "tls", "first_byte", "total"]);

    // Its own `tls` block replaces the target's: no CA file, so the self-signed
    // certificate is not trusted.
    let untrusted = wsprobe::health::Checker::new(checks[1].clone()).unwrap().run("t").await;
    assert_eq!(untrusted.reason, Some(wsprobe::health::HealthReason::TlsError), "{untrusted:?}");
    assert!(untrusted.message.as_deref().unwrap().starts_with("TLS handshake failed: "), "{untrusted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_drift_raises_the_detector_alert_and_resolves_it() {
    let (svc, shared) = service().await;
    let ws = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("expected-version");
    std::fs::write(&expected, "1.4.1\n").unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let yaml = format!(
        "listen: 127.0.0.1:0
shutdown_grace: 2s
defaults: {{ interval: 100ms, jitter: 0% }}
alerting:
  detector:
    deployment_drift: {{ for: 300ms }}
targets:
  - name: svc
    url: {ws}
    health:
      - name: version
        url: http://{svc}/health
        version_path: version
        expected_version: '${{file:{expected}}}'
",
        ws = ws.url(),
        expected = expected.display()
    );
    std::fs::write(&path, yaml).unwrap();
    let (running, cancel) = start(&path).await;
    let addr = running.addr;
    let drift_alerts = |api: &serde_json::Value| -> Vec<serde_json::Value> {
        let alerts = api["alerts"].as_array().unwrap().iter();
        alerts.filter(|a| a["key"]["kind"] == "DeploymentDrift").cloned().collect()
    };
    let poll = |what: &'static str, done: fn(&[serde_json::Value]) -> bool| async move {
        drift_alerts(&until_json(addr, "/api/alerts", what, |api| done(&drift_alerts(api))).await)
    };

    // The expected build: checks run, no alert.
    until_metrics(addr, "the first check", |m| {
        sample(m, "wsprobe_deployment_drift", &[("target", "svc")]) == Some(0.0)
    })
    .await;
    assert!(poll("no drift alert", |a| a.is_empty()).await.is_empty());

    // A build nobody deployed goes live: pending, then firing after `for`.
    shared.set(|s| s.version = "1.4.2".to_owned());
    let firing = poll("DeploymentDrift fires", |a| a.iter().any(|x| x["state"] == "firing")).await;
    let alert = &firing[0];
    assert_eq!(alert["key"]["target"], "svc");
    assert_eq!(alert["severity"], "ticket");
    assert_eq!(alert["summary"], "svc does not run the expected deployment");
    assert_eq!(alert["description"], "deployed 1.4.1, svc still serves 1.4.2");

    // The pipeline records the new build: the alert resolves and leaves the list.
    std::fs::write(&expected, "1.4.2\n").unwrap();
    poll("DeploymentDrift resolves", |a| a.is_empty()).await;
    cancel.cancel();
    running.wait().await;
}
