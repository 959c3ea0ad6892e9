//! The daemon end to end: scheduling, the HTTP API, reload, removal of old series,
//! secrets kept out of every output, and a clean shutdown of the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::daemon::{start, write_config};
use common::http::{get, request, sample};
use common::poll::eventually;
use common::process::{self, ChildGuard, Output};
use common::{Push, ServerOpts};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn target(name: &str, url: &str) -> String {
    format!("  - name: {name}\n    url: {url}\n")
}

async fn metrics(addr: SocketAddr) -> String {
    get(addr, "/metrics").await.body
}

#[tokio::test]
async fn ready_after_the_first_round_and_targets_are_listed() {
    let server = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    write_config(
        &path,
        &(target("alpha", &server.url()) + &target("beta", &format!("ws://{}/", common::refused_addr()))),
    );
    let (running, cancel) = start(&path).await;
    let addr = running.addr;

    let app = wsprobe::daemon::api::router(running.shared.clone());
    let health = app.clone().oneshot(Request::get("/healthz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    eventually(Duration::from_secs(3), "/readyz is 200", || async {
        get(addr, "/readyz").await.status == 200
    })
    .await;

    let resp = app.oneshot(Request::get("/api/targets").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let targets = json["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0]["name"], "alpha");
    assert_eq!(targets[0]["last_result"]["success"], true);
    assert_eq!(targets[1]["name"], "beta");
    assert_eq!(targets[1]["last_result"]["reason"], "connect_refused");
    assert_eq!(targets[1]["recent_failures"][0]["reason"], "connect_refused");
    assert!(targets[1]["consecutive_failures"].as_u64().unwrap() >= 1);

    let m = metrics(addr).await;
    assert_eq!(sample(&m, "wsprobe_probe_success", &[("target", "alpha")]), Some(1.0));
    assert_eq!(sample(&m, "wsprobe_probe_success", &[("target", "beta")]), Some(0.0));
    let failures = [("target", "beta"), ("phase", "connect"), ("reason", "connect_refused")];
    assert!(sample(&m, "wsprobe_probe_failures_total", &failures).unwrap() >= 1.0);
    assert_eq!(sample(&m, "wsprobe_targets", &[]), Some(2.0));

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), running.wait()).await.expect("stops within 3s");
}

#[tokio::test]
async fn readyz_waits_for_every_target() {
    let server =
        common::echo(ServerOpts { handshake_delay: Duration::from_millis(400), ..ServerOpts::default() })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    write_config(&path, &target("slow", &server.url()));
    let (running, cancel) = start(&path).await;
    let first = get(running.addr, "/readyz").await;
    assert_eq!(first.status, 503);
    assert_eq!(first.body, "not ready: 0 of 1 targets probed so far\n");
    eventually(Duration::from_secs(3), "ready", || async {
        get(running.addr, "/readyz").await.status == 200
    })
    .await;
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn reload_applies_a_valid_file_and_keeps_the_old_one_otherwise() {
    let server = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    write_config(&path, &(target("alpha", &server.url()) + &target("gone", &server.url())));
    let (running, cancel) = start(&path).await;
    let addr = running.addr;
    eventually(Duration::from_secs(3), "both probed", || async {
        sample(&metrics(addr).await, "wsprobe_probe_success", &[("target", "gone")]).is_some()
    })
    .await;

    write_config(&path, &(target("alpha", &server.url()) + &target("beta", &server.url())));
    let resp = request(addr, "POST", "/-/reload").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains("configuration reloaded: 2 targets"), "{}", resp.body);
    eventually(Duration::from_secs(3), "beta probed", || async {
        sample(&metrics(addr).await, "wsprobe_probe_success", &[("target", "beta")]).is_some()
    })
    .await;
    let m = metrics(addr).await;
    assert!(!m.contains("target=\"gone\""), "series of a removed target remain:\n{m}");
    assert_eq!(sample(&m, "wsprobe_config_last_reload_successful", &[]), Some(1.0));

    std::fs::write(&path, "targets: [ { name: Bad Name, url: http://x } ]\n").unwrap();
    let resp = request(addr, "POST", "/-/reload").await;
    assert_eq!(resp.status, 400);
    let error: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    let text = error["error"].as_str().unwrap();
    assert!(text.contains("wsprobe.yaml") && text.contains("targets[0].name"), "{text}");
    let m = metrics(addr).await;
    assert_eq!(sample(&m, "wsprobe_config_last_reload_successful", &[]), Some(0.0));
    // The old configuration still runs.
    let before = sample(&m, "wsprobe_probes_total", &[("target", "beta"), ("result", "success")]).unwrap();
    eventually(Duration::from_secs(3), "beta still probed", || async {
        sample(&metrics(addr).await, "wsprobe_probes_total", &[("target", "beta"), ("result", "success")])
            .unwrap()
            > before
    })
    .await;
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn reload_drops_the_series_of_removed_steps_and_keeps_the_rest() {
    let server = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let with_steps = |steps: &str| format!("{}    steps:\n{steps}", target("stepper", &server.url()));
    let hello = "      - { name: hello, send: { text: hi } }\n";
    let pause = "      - { name: pause, sleep: 10ms }\n";
    write_config(&path, &with_steps(&format!("{hello}{pause}")));
    let (running, cancel) = start(&path).await;
    let addr = running.addr;
    let step = |name: &'static str| [("target", "stepper"), ("step", name)];
    eventually(Duration::from_secs(3), "both steps timed", || async {
        let m = metrics(addr).await;
        sample(&m, "wsprobe_step_duration_seconds_count", &step("hello")).is_some()
            && sample(&m, "wsprobe_step_duration_seconds_count", &step("pause")).is_some()
    })
    .await;
    let ok = [("target", "stepper"), ("result", "success")];
    let before = sample(&metrics(addr).await, "wsprobe_probes_total", &ok).unwrap();

    write_config(&path, &with_steps(hello));
    let resp = request(addr, "POST", "/-/reload").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let m = metrics(addr).await;
    assert!(!m.contains("step=\"pause\""), "series of a removed step remain:\n{m}");
    assert!(sample(&m, "wsprobe_step_duration_seconds_count", &step("hello")).is_some(), "{m}");
    // The restarted target keeps its other series: its counters go on from where they were.
    assert!(sample(&m, "wsprobe_probes_total", &ok).unwrap() >= before, "{m}");

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), running.wait()).await.expect("stops within 3s");
}

#[tokio::test]
async fn overrunning_probes_are_skipped_not_overlapped() {
    // Each probe holds the session 350 ms; the interval is 100 ms.
    let server = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let t = format!("{}    steps: [ {{ hold: 350ms }} ]\n", target("long", &server.url()));
    write_config(&path, &t);
    let (running, cancel) = start(&path).await;
    let addr = running.addr;
    eventually(Duration::from_secs(3), "two probes done", || async {
        sample(&metrics(addr).await, "wsprobe_probes_total", &[("target", "long"), ("result", "success")])
            .is_some_and(|n| n >= 2.0)
    })
    .await;
    let m = metrics(addr).await;
    let skipped = sample(&m, "wsprobe_probes_skipped_total", &[("target", "long")]).unwrap();
    let done = sample(&m, "wsprobe_probes_total", &[("target", "long"), ("result", "success")]).unwrap();
    assert!(skipped >= 2.0 * (done - 1.0), "each overrun skips ~3 ticks: skipped {skipped}, done {done}");
    assert!(
        server.connections() as f64 <= done + 1.0,
        "probes overlapped: {} connections",
        server.connections()
    );
    cancel.cancel();
    running.wait().await;
}

/// Runs the real binary with JSON logs; returns it, the API address and its log lines.
fn spawn_daemon(config: &Path, env: &[(&str, &str)]) -> (ChildGuard, SocketAddr, Receiver<String>) {
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "info"));
    let config = config.to_str().unwrap();
    let (child, lines) =
        process::spawn(&["--log-format", "json", "run", "--config", config], &env, Output::Stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("daemon logged its address");
        let json: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        if let Some(addr) = json["addr"].as_str() {
            return (child, addr.parse().unwrap(), lines);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_metrics_or_the_api() {
    const SECRET: &str = "s3cr3t-token-4f9a";
    let script = vec![Push::Text(
        Duration::from_millis(5),
        format!(r#"{{"type":"error_message","echo":"{SECRET}"}}"#),
    )];
    let server = common::push(ServerOpts::default(), script).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let t = format!(
        "  - name: leaky\n    url: '{}?token=${{WSPROBE_SECRET}}'\n    headers: {{ Authorization: 'Bearer ${{WSPROBE_SECRET}}' }}\n    subprotocols: ['jwt.${{base64url:WSPROBE_SECRET}}']\n    fail_on: [ {{ json: {{ type: error_message }} }} ]\n    steps:\n      - send: {{ text: 'hello ${{WSPROBE_SECRET}}' }}\n      - expect: {{ json: {{ type: never }} }}\n        within: 1s\n",
        server.url()
    );
    write_config(&path, &t);
    let (mut child, addr, logs) = spawn_daemon(&path, &[("WSPROBE_SECRET", SECRET)]);
    eventually(Duration::from_secs(5), "a failure is recorded", || async {
        sample(&metrics(addr).await, "wsprobe_probes_total", &[("target", "leaky"), ("result", "failure")])
            .is_some_and(|n| n >= 1.0)
    })
    .await;
    let m = metrics(addr).await;
    let api = get(addr, "/api/targets").await.body;
    assert!(api.contains("error_message"), "the failure is visible: {api}");
    assert!(api.contains("***"), "the echoed secret is shown redacted: {api}");
    assert!(server.received().iter().any(|r| r.contains(SECRET)), "the server did get the real token");
    child.signal("TERM");
    assert_eq!(child.wait_exit(Duration::from_secs(5)).code(), Some(0));
    let log: Vec<String> = logs.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("Probe failed.")), "a failure was logged");
    let b64 = "czNjcjN0LXRva2VuLTRmOWE";
    for (what, text) in [("metrics", m), ("API", api), ("logs", log.join("\n"))] {
        assert!(!text.contains(SECRET) && !text.contains(b64), "the secret leaked into the {what}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_in_flight_sessions_and_exits_zero() {
    let server = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    write_config(&path, &format!("{}    steps: [ {{ hold: 30s }} ]\n", target("held", &server.url())));
    let (mut child, _addr, _logs) = spawn_daemon(&path, &[]);
    assert!(server.wait_connections(1, Duration::from_secs(5)).await, "the probe connected");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    child.signal("TERM");
    let status = tokio::task::spawn_blocking(move || child.wait_exit(Duration::from_secs(5))).await.unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(start.elapsed() < Duration::from_secs(2), "shutdown took {:?}", start.elapsed());
    assert_eq!(server.closes(), [1001], "the held session was closed with 1001 (going away)");
}

/// A WebSocket server that hangs up on the connections in `cut` (counted from 0) before
/// answering their upgrade, and serves every other one until the client closes.
async fn server_cutting(cut: std::ops::Range<usize>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((tcp, _)) = listener.accept().await else { return };
            if cut.contains(&n) {
                drop(tcp);
                continue;
            }
            tokio::spawn(async move {
                use futures_util::StreamExt as _;
                if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
                    // Reading answers pings and the close handshake.
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    });
    addr
}

/// `(level, message)` of each log line whose message starts with `prefix`.
fn lines_of(log: &[String], prefix: &str) -> Vec<(String, String)> {
    log.iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|j| j["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
        .map(|j| (j["level"].as_str().unwrap().to_owned(), j["message"].as_str().unwrap().to_owned()))
        .collect()
}

/// An HTTP service that answers every request `200 ok`.
async fn always_ok() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Runs one target against a server that fails its 4th and 5th connections, with a health
/// check that always passes, until at least ten probe results are in; returns the log.
async fn log_of_a_target_that_fails_twice(rust_log: &str) -> Vec<String> {
    let addr = server_cutting(3..5).await;
    let service = always_ok().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let t = target("steady", &format!("ws://{addr}/"))
        + "    interval: 100ms\n    server_speaks_first: false\n"
        + &format!("    health: [ {{ name: up, url: 'http://{service}/' }} ]\n");
    write_config(&path, &t);
    let env = [("RUST_LOG", rust_log)];
    let config = path.to_str().unwrap();
    let (mut child, lines) =
        process::spawn(&["--log-format", "json", "run", "--config", config], &env, Output::Stderr);
    let addr: SocketAddr = loop {
        let line = lines.recv_timeout(Duration::from_secs(10)).expect("daemon logged its address");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        if let Some(addr) = json["addr"].as_str() {
            break addr.parse().unwrap();
        }
    };
    eventually(Duration::from_secs(10), "ten results", || async {
        let m = metrics(addr).await;
        let count = |result| sample(&m, "wsprobe_probes_total", &[("target", "steady"), ("result", result)]);
        count("success").unwrap_or(0.0) + count("failure").unwrap_or(0.0) >= 10.0
    })
    .await;
    child.signal("TERM");
    assert_eq!(child.wait_exit(Duration::from_secs(5)).code(), Some(0));
    lines.try_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_after_a_success_is_logged_only_at_debug_for_probes_and_health_checks() {
    // Results: ok, ok, ok, failed, failed, ok, ok, ... At `info` the log says what changed.
    let log = log_of_a_target_that_fails_twice("info").await;
    let lines = lines_of(&log, "Probe ");
    let expected = [
        ("INFO", "Probe succeeded."),
        ("WARN", "Probe failed."),
        ("WARN", "Probe failed."),
        ("INFO", "Probe succeeded."),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(l, m)| ((*l).into(), (*m).into())).collect();
    assert_eq!(lines, expected, "{log:#?}");
    // Health checks follow the same rule: only the first of their successes at `info`.
    let health = lines_of(&log, "Health check");
    assert_eq!(health, [("INFO".to_owned(), "Health check succeeded.".to_owned())], "{log:#?}");

    // At `debug` every result is there, the routine successes at DEBUG.
    let log = log_of_a_target_that_fails_twice("wsprobe=debug").await;
    let lines = lines_of(&log, "Probe ");
    let levels: Vec<&str> = lines.iter().map(|(level, _)| level.as_str()).collect();
    assert!(lines.len() >= 10, "{lines:?}");
    assert_eq!(levels[..6], ["INFO", "DEBUG", "DEBUG", "WARN", "WARN", "INFO"], "{lines:?}");
    assert!(levels[6..].iter().all(|l| *l == "DEBUG"), "{lines:?}");
    let health = lines_of(&log, "Health check");
    assert!(health.len() >= 2, "{health:?}");
    assert_eq!(health[0].0, "INFO", "{health:?}");
    assert!(health[1..].iter().all(|(level, _)| level == "DEBUG"), "{health:?}");
}
