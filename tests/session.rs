//! Held sessions (`session:` targets) through the daemon: pings with their round trip,
//! the heartbeat, `max_lifetime`, steps and `fail_on` for the session's whole life,
//! `/api/targets`, resizing on reload, shutdown with 1001, and `wsprobe once`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::poll::eventually;
use common::session::{held, value, value_or_zero, Behaviour, Cut, HEARTBEAT};
use wsprobe::daemon::{Options, Running};

fn yaml(targets: &str) -> String {
    format!("listen: 127.0.0.1:0\nshutdown_grace: 2s\ntargets:\n{targets}")
}

async fn reload(r: &Running) {
    let answer = common::http::request(r.addr, "POST", "/-/reload").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

fn metrics(r: &Running) -> String {
    r.shared.metrics.render()
}

/// `GET /api/targets`, through the daemon's listener.
async fn api(r: &Running) -> serde_json::Value {
    let answer = common::http::get(r.addr, "/api/targets").await;
    assert_eq!(answer.status, 200);
    serde_json::from_str(&answer.body).unwrap()
}

fn target<'a>(api: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    api["targets"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()
}

#[tokio::test]
async fn sessions_are_held_open_with_timed_pings() {
    let server = held(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = yaml(&format!(
        "  - name: stream\n    url: {}\n    session: {{ count: 2, ping_interval: 50ms, stale_after: 1s }}\n",
        server.url()
    ));
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &config, Options::default()).await;
    eventually(Duration::from_secs(3), "two sessions are open with pings answered", || {
        let m = metrics(&running);
        async move {
            value(&m, "wsprobe_sessions_open{target=\"stream\"}") == Some(2.0)
                && value_or_zero(&m, "wsprobe_session_ping_rtt_seconds_count{target=\"stream\"}") >= 6.0
        }
    })
    .await;
    let m = metrics(&running);
    assert_eq!(value(&m, "wsprobe_sessions_configured{target=\"stream\"}"), Some(2.0));
    assert_eq!(value(&m, "wsprobe_session_connects_total{result=\"success\",target=\"stream\"}"), Some(2.0));
    assert_eq!(value(&m, "wsprobe_session_connects_total{result=\"failure\",target=\"stream\"}"), Some(0.0));
    // Each connect is a probe result: phases timed, success counted.
    assert_eq!(value(&m, "wsprobe_probes_total{result=\"success\",target=\"stream\"}"), Some(2.0));
    assert_eq!(
        value(&m, "wsprobe_phase_duration_seconds_count{phase=\"handshake\",target=\"stream\"}"),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "wsprobe_session_messages_received_total{target=\"stream\"}"),
        Some(2.0),
        "the welcomes"
    );
    assert!(!m.contains("wsprobe_session_disconnects_total{"), "no disconnects:\n{m}");
    // The round trip is loopback-fast, far below the ping interval.
    let sum = value(&m, "wsprobe_session_ping_rtt_seconds_sum{target=\"stream\"}").unwrap();
    let count = value(&m, "wsprobe_session_ping_rtt_seconds_count{target=\"stream\"}").unwrap();
    assert!(sum / count < 0.02, "mean RTT {}", sum / count);
    assert_eq!(server.server.connections(), 2, "held, not reconnected");
    assert_eq!(server.live(), 2);

    let a = api(&running).await;
    let s = &target(&a, "stream")["sessions"];
    assert_eq!(s["configured"], 2);
    assert_eq!(s["open"], 2);
    for one in s["sessions"].as_array().unwrap() {
        assert_eq!(one["open"], true);
        assert!(one["open_since"].as_f64().unwrap() > 1.0e9);
        assert!(one["last_message_at"].as_f64().unwrap() >= one["open_since"].as_f64().unwrap() - 1.0);
        assert!(one["last_rtt_seconds"].as_f64().unwrap() < 0.05);
        assert_eq!(one["disconnects_last_hour"], serde_json::json!({}));
    }
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn an_unanswered_heartbeat_ends_the_session_as_heartbeat_timeout() {
    let server = held(Behaviour { heartbeats: Some(2), ..Behaviour::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let config = yaml(&format!(
        "  - name: beat\n    url: {}\n    session:\n      ping_interval: 1s\n      stale_after: 5s\n      reconnect: {{ initial: 2s, max: 2s }}\n      heartbeat: {{ send: {{ text: '{HEARTBEAT}' }}, expect: {{ json: {{ type: pong }} }}, every: 60ms, within: 40ms }}\n",
        server.url()
    ));
    let started = Instant::now();
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &config, Options::default()).await;
    eventually(Duration::from_secs(3), "the heartbeat times out", || {
        let m = metrics(&running);
        async move {
            value(&m, "wsprobe_session_disconnects_total{reason=\"heartbeat_timeout\",target=\"beat\"}")
                == Some(1.0)
        }
    })
    .await;
    let m = metrics(&running);
    assert_eq!(value(&m, "wsprobe_session_heartbeat_rtt_seconds_count{target=\"beat\"}"), Some(2.0));
    // Every session family has a series here; Prometheus's own linter accepts them.
    let lint = common::promtool::promtool(&["check", "metrics"], &m);
    assert!(
        lint.status.success(),
        "{}{}",
        common::config::text(&lint.stdout),
        common::config::text(&lint.stderr)
    );
    // Two answered (at 60 and 120 ms), the third sent at 180 ms and due at 220 ms.
    let lifetime = value(&m, "wsprobe_session_lifetime_seconds_sum{target=\"beat\"}").unwrap();
    assert!((0.2..0.4).contains(&lifetime), "lifetime {lifetime}s, expected 0.22s (+0.18s tolerance)");
    assert!(started.elapsed() < Duration::from_secs(2), "judged well before any reconnect");
    // We closed it ourselves, politely, and said why in the API.
    eventually(Duration::from_secs(1), "the server saw our close", || {
        let closes = server.closes();
        async move { closes == [1000] }
    })
    .await;
    let a = api(&running).await;
    let one = &target(&a, "beat")["sessions"]["sessions"][0];
    assert_eq!(one["last_disconnect"]["reason"], "heartbeat_timeout");
    assert_eq!(one["disconnects_last_hour"], serde_json::json!({"heartbeat_timeout": 1}));
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn max_lifetime_reopens_politely_and_is_not_a_disconnect() {
    let server = held(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = yaml(&format!(
        "  - name: aged\n    url: {}\n    session: {{ ping_interval: 1s, stale_after: 5s, max_lifetime: 100ms, reconnect: {{ initial: 2s, max: 2s }} }}\n",
        server.url()
    ));
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &config, Options::default()).await;
    // Reopened at once each time (no 2 s back-off): four sessions within about 0.4 s.
    assert!(
        server.server.wait_connections(4, Duration::from_secs(1)).await,
        "{} connections",
        server.server.connections()
    );
    let m = metrics(&running);
    assert!(!m.contains("wsprobe_session_disconnects_total{"), "{m}");
    assert_eq!(value_or_zero(&m, "wsprobe_session_lifetime_seconds_count{target=\"aged\"}"), 0.0);
    let closes = server.closes();
    assert!(closes.len() >= 3 && closes.iter().all(|c| *c == 1000), "{closes:?}");
    let ups = server.upgrades();
    for pair in ups.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(95) && gap < Duration::from_millis(250), "{gap:?}");
    }
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn steps_run_once_per_session_and_fail_on_applies_while_held() {
    let server = held(Behaviour {
        push: Some((Duration::from_millis(150), r#"{"type":"error","detail":"kicked"}"#.into())),
        ..Behaviour::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = yaml(&format!(
        "  - name: sub\n    url: {}\n    fail_on: [{{ json: {{ type: error }} }}]\n    session: {{ ping_interval: 30ms, stale_after: 5s, reconnect: {{ initial: 5s, max: 5s }} }}\n    steps:\n      - name: subscribe\n        send: {{ text: subscribe }}\n",
        server.url()
    ));
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &config, Options::default()).await;
    eventually(Duration::from_secs(2), "the error message ends the session", || {
        let m = metrics(&running);
        async move {
            value(&m, "wsprobe_session_disconnects_total{reason=\"error_message\",target=\"sub\"}")
                == Some(1.0)
        }
    })
    .await;
    let m = metrics(&running);
    assert_eq!(
        value(&m, "wsprobe_step_duration_seconds_count{step=\"subscribe\",target=\"sub\"}"),
        Some(1.0)
    );
    let lifetime = value(&m, "wsprobe_session_lifetime_seconds_sum{target=\"sub\"}").unwrap();
    assert!((0.14..0.3).contains(&lifetime), "lifetime {lifetime}s, pushed at 0.15s");
    assert!(
        value_or_zero(&m, "wsprobe_session_ping_rtt_seconds_count{target=\"sub\"}") >= 2.0,
        "held between"
    );
    let a = api(&running).await;
    let last = &target(&a, "sub")["sessions"]["sessions"][0]["last_disconnect"];
    assert!(last["message"].as_str().unwrap().contains("kicked"), "{last}");
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn a_reload_resizes_without_dropping_the_sessions_that_stay() {
    let server = held(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let with = |count: u32| {
        yaml(&format!(
            "  - name: pool\n    url: {}\n    session: {{ count: {count}, ping_interval: 50ms, stale_after: 5s }}\n",
            server.url()
        ))
    };
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &with(2), Options::default()).await;
    assert!(server.server.wait_connections(2, Duration::from_secs(2)).await);
    let path = dir.path().join("wsprobe.yaml");

    std::fs::write(&path, with(3)).unwrap();
    reload(&running).await;
    assert!(server.server.wait_connections(3, Duration::from_secs(2)).await);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(server.server.connections(), 3, "the two that stay were not reopened");
    assert_eq!(server.live(), 3);
    assert_eq!(value(&metrics(&running), "wsprobe_sessions_configured{target=\"pool\"}"), Some(3.0));

    std::fs::write(&path, with(1)).unwrap();
    reload(&running).await;
    eventually(Duration::from_secs(2), "two sessions closed", || {
        let live = server.live();
        async move { live == 1 }
    })
    .await;
    assert_eq!(server.closes(), [1001, 1001], "the removed sessions go away with 1001");
    assert_eq!(server.server.connections(), 3, "the one that stays was not reopened");
    let m = metrics(&running);
    assert_eq!(value(&m, "wsprobe_sessions_open{target=\"pool\"}"), Some(1.0));
    assert!(!m.contains("wsprobe_session_disconnects_total{"), "a resize is not a disconnect:\n{m}");
    assert_eq!(api(&running).await["targets"][0]["sessions"]["sessions"].as_array().unwrap().len(), 1);

    // Any other change restarts the target's sessions.
    std::fs::write(&path, with(1).replace("ping_interval: 50ms", "ping_interval: 60ms")).unwrap();
    reload(&running).await;
    assert!(server.server.wait_connections(4, Duration::from_secs(2)).await, "restarted");

    // Back to periodic probes: the session series and status go with the sessions.
    let periodic = format!("  - name: pool\n    url: {}\n    interval: 1h\n", server.url());
    std::fs::write(&path, yaml(&periodic)).unwrap();
    reload(&running).await;
    eventually(Duration::from_secs(2), "the sessions are gone", || {
        let live = server.live();
        async move { live == 0 }
    })
    .await;
    let m = metrics(&running);
    assert!(!m.contains("wsprobe_session"), "{m}");
    assert!(api(&running).await["targets"][0].get("sessions").is_none());
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn shutdown_closes_every_held_session_with_1001_within_the_grace() {
    let server = held(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = yaml(&format!(
        "  - name: many\n    url: {}\n    session: {{ count: 50, ping_interval: 1s, stale_after: 5s }}\n",
        server.url()
    ));
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &config, Options::default()).await;
    eventually(Duration::from_secs(5), "fifty sessions open", || {
        let (live, m) = (server.live(), metrics(&running));
        async move { live == 50 && value(&m, "wsprobe_sessions_open{target=\"many\"}") == Some(50.0) }
    })
    .await;
    let started = Instant::now();
    cancel.cancel();
    running.wait().await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "stopped in {took:?}");
    let closes = server.closes();
    assert_eq!(closes.len(), 50, "{closes:?}");
    assert!(closes.iter().all(|c| *c == 1001), "{closes:?}");
}

#[test]
fn once_holds_one_session_for_a_ping_interval_and_reports() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ok = rt.block_on(held(Behaviour::default()));
    let cut = rt.block_on(held(Behaviour {
        cut_after: Some((Duration::from_millis(100), Cut::Close(4000))),
        ..Behaviour::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("once.yaml");
    let session = "session: { ping_interval: 300ms, stale_after: 5s }";
    std::fs::write(
        &path,
        yaml(&format!(
            "  - name: ok\n    url: {}\n    {session}\n  - name: cut\n    url: {}\n    {session}\n",
            ok.url(),
            cut.url()
        )),
    )
    .unwrap();
    let _guard = rt.enter();
    let started = Instant::now();
    let out = common::config::run(&["once", "--config", path.to_str().unwrap(), "--format", "json"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", common::config::text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ok_r = &report["results"][0];
    assert_eq!(ok_r["success"], true, "{ok_r}");
    assert!(
        ok_r["phases"]["ping"].as_f64().is_some() && ok_r["phases"]["close"].as_f64().is_some(),
        "{ok_r}"
    );
    let held_for = ok_r["duration_seconds"].as_f64().unwrap();
    assert!((0.3..0.8).contains(&held_for), "held {held_for}s for a 300ms ping interval (+0.5s tolerance)");
    assert_eq!(ok.pongs(), 1, "one ping");
    let cut_r = &report["results"][1];
    assert_eq!(cut_r["success"], false);
    assert_eq!(cut_r["reason"], "unexpected_close");
    assert_eq!(cut_r["phase"], "ping");
    assert_eq!(cut_r["close_code"], 4000);
    assert!(took < Duration::from_secs(3), "{took:?}");
    drop((ok, cut));
}

#[tokio::test]
async fn a_wss_session_is_held_over_real_tls_with_its_phases_timed() {
    let identity = common::self_signed(&["localhost"]);
    let ca = common::write_temp(&identity.cert_pem);
    let server = common::echo(common::ServerOpts { tls: Some(identity), ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let config = yaml(&format!(
        "  - name: secure\n    url: {}\n    tls: {{ ca_file: {} }}\n    session: {{ ping_interval: 40ms, stale_after: 1s }}\n",
        server.url(),
        ca.path().display()
    ));
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &config, Options::default()).await;
    eventually(Duration::from_secs(3), "pings answered over TLS", || {
        let m = metrics(&running);
        async move { value_or_zero(&m, "wsprobe_session_ping_rtt_seconds_count{target=\"secure\"}") >= 3.0 }
    })
    .await;
    let m = metrics(&running);
    assert_eq!(value(&m, "wsprobe_phase_duration_seconds_count{phase=\"tls\",target=\"secure\"}"), Some(1.0));
    assert!(value(&m, "wsprobe_tls_cert_expiry_timestamp_seconds{target=\"secure\"}").unwrap() > 1.0e9);
    assert_eq!(value(&m, "wsprobe_sessions_open{target=\"secure\"}"), Some(1.0));
    assert_eq!(server.connections(), 1);
    cancel.cancel();
    running.wait().await;
    assert_eq!(server.closes(), [1001]);
}
