//! Held sessions against broken servers: each session ends with the right reason, the
//! reconnects are paced by the back-off (the connect rate is asserted), memory stays
//! bounded, and a healthy target beside the broken one is untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::poll::eventually;
use common::session::{held, rss_kib, value, value_or_zero, Behaviour, Cut, Flood, Held};
use wsprobe::daemon::{Options, Running};

fn metrics(r: &Running) -> String {
    r.shared.metrics.render()
}

/// A daemon holding `broken` (with `session`) and a healthy target `calm` beside it.
async fn start(
    broken_url: &str,
    session: &str,
    extra: &str,
    calm: &Held,
) -> (Running, tokio_util::sync::CancellationToken, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nshutdown_grace: 2s\ntargets:\n  - name: broken\n    url: {broken_url}\n    session: {session}\n{extra}  - name: calm\n    url: {}\n    session: {{ ping_interval: 50ms, stale_after: 5s }}\n",
        calm.url()
    );
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &yaml, Options::default()).await;
    (running, cancel, dir)
}

/// The healthy target kept its one session and its pings throughout.
fn assert_calm_unaffected(m: &str, calm: &Held, since: Duration) {
    assert_eq!(calm.server.connections(), 1, "the calm target's session was never dropped");
    assert_eq!(value(m, "wsprobe_sessions_open{target=\"calm\"}"), Some(1.0));
    let pings = value_or_zero(m, "wsprobe_session_ping_rtt_seconds_count{target=\"calm\"}");
    // One ping per 50 ms; allow half of them to be late on a loaded machine.
    let expected = since.as_secs_f64() / 0.05;
    assert!(pings >= expected * 0.5, "{pings} pings in {since:?}");
    let rtt = value(m, "wsprobe_session_ping_rtt_seconds_sum{target=\"calm\"}").unwrap() / pings;
    assert!(rtt < 0.05, "calm mean RTT {rtt}s");
}

/// Upgrade instants as gaps from one to the next.
fn gaps(server: &Held) -> Vec<Duration> {
    server.upgrades().windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test]
async fn a_server_that_never_answers_the_upgrade_fails_each_connect_and_backs_off() {
    let blackhole = common::blackhole().await;
    let calm = held(Behaviour::default()).await;
    let url = blackhole.url();
    let session = "{ ping_interval: 50ms, stale_after: 1s, reconnect: { initial: 50ms, max: 200ms } }";
    let extra = "    timeouts: { handshake: 50ms }\n";
    let started = Instant::now();
    let (running, cancel, _dir) = start(&url, session, extra, &calm).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let m = metrics(&running);
    let elapsed = started.elapsed();
    let attempts = blackhole.connections();
    // Each attempt: 50 ms of handshake timeout, then a wait of 40-50, 80-100, then 160-200 ms.
    // 1.5 s holds at most 1 + 2 + 7 = about 8 attempts; a tight loop would make hundreds.
    assert!((5..=10).contains(&attempts), "{attempts} connects in {elapsed:?}");
    let failed = value(&m, "wsprobe_session_connects_total{result=\"failure\",target=\"broken\"}").unwrap();
    assert!((failed - attempts as f64).abs() <= 1.0, "{failed} failures counted, {attempts} attempts");
    assert_eq!(
        value(&m, "wsprobe_probe_failures_total{phase=\"handshake\",reason=\"handshake_timeout\",target=\"broken\"}"),
        Some(failed),
        "each connect is a probe result"
    );
    assert_eq!(value(&m, "wsprobe_probe_success{target=\"broken\"}"), Some(0.0));
    assert_eq!(value(&m, "wsprobe_sessions_open{target=\"broken\"}"), Some(0.0));
    // The breaker is fed by the connects (5 failures in a row by default).
    assert_eq!(value(&m, "wsprobe_circuit_state{state=\"open\",target=\"broken\"}"), Some(1.0));
    assert_calm_unaffected(&m, &calm, elapsed);
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn sessions_cut_after_200ms_are_counted_and_reopened_with_back_off() {
    let cut = held(Behaviour {
        cut_after: Some((Duration::from_millis(200), Cut::Close(4000))),
        ..Behaviour::default()
    })
    .await;
    let calm = held(Behaviour::default()).await;
    let session = "{ ping_interval: 50ms, stale_after: 1s, reconnect: { initial: 100ms, max: 1s } }";
    let started = Instant::now();
    let (running, cancel, _dir) = start(&cut.url(), session, "", &calm).await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let m = metrics(&running);
    let elapsed = started.elapsed();
    let disconnects =
        value(&m, "wsprobe_session_disconnects_total{reason=\"unexpected_close\",target=\"broken\"}")
            .unwrap();
    // Lifetimes of 200 ms, waits of 80-100, 160-200, 320-400, 640-800 ms: about 5 sessions.
    assert!((3.0..=6.0).contains(&disconnects), "{disconnects} disconnects in {elapsed:?}");
    let n = value(&m, "wsprobe_session_lifetime_seconds_count{target=\"broken\"}").unwrap();
    let mean = value(&m, "wsprobe_session_lifetime_seconds_sum{target=\"broken\"}").unwrap() / n;
    assert!((0.19..0.3).contains(&mean), "mean lifetime {mean}s, the server cuts at 0.2s (+0.1s tolerance)");
    // The waits grow: every gap after a cut is the lifetime plus a doubling back-off.
    let g = gaps(&cut);
    assert!(g.len() >= 3, "{g:?}");
    for (i, gap) in g.iter().take(4).enumerate() {
        let nominal = 100u64 << i;
        let low = Duration::from_millis(200 + nominal * 8 / 10);
        assert!(*gap >= low && *gap < low + Duration::from_millis(nominal / 5 + 150), "gap {i}: {gap:?}");
    }
    let snap = serde_json::to_value(running.shared.snapshot.latest()).unwrap();
    let broken = snap["targets"].as_array().unwrap().iter().find(|t| t["name"] == "broken").unwrap();
    let last = &broken["sessions"]["sessions"][0]["last_disconnect"];
    assert_eq!(last["reason"], "unexpected_close");
    assert_eq!(last["close_code"], 4000);
    assert_eq!(broken["sessions"]["disconnects_last_hour"]["unexpected_close"].as_f64(), Some(disconnects));
    assert_calm_unaffected(&m, &calm, elapsed);
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn a_reset_mid_session_is_connection_reset() {
    let cut =
        held(Behaviour { cut_after: Some((Duration::from_millis(100), Cut::Reset)), ..Behaviour::default() })
            .await;
    let calm = held(Behaviour::default()).await;
    let session = "{ ping_interval: 50ms, stale_after: 1s, reconnect: { initial: 2s, max: 2s } }";
    let (running, cancel, _dir) = start(&cut.url(), session, "", &calm).await;
    eventually(Duration::from_secs(2), "the reset is counted", || {
        let m = metrics(&running);
        async move {
            value(&m, "wsprobe_session_disconnects_total{reason=\"connection_reset\",target=\"broken\"}")
                == Some(1.0)
        }
    })
    .await;
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn a_server_that_stops_answering_pongs_goes_stale() {
    let mute = held(Behaviour { pongs: Some(2), ..Behaviour::default() }).await;
    let calm = held(Behaviour::default()).await;
    let session = "{ ping_interval: 50ms, stale_after: 200ms, reconnect: { initial: 2s, max: 2s } }";
    let (running, cancel, _dir) = start(&mute.url(), session, "", &calm).await;
    eventually(Duration::from_secs(2), "the silent session is stalled", || {
        let m = metrics(&running);
        async move {
            value(&m, "wsprobe_session_disconnects_total{reason=\"stalled\",target=\"broken\"}") == Some(1.0)
        }
    })
    .await;
    let m = metrics(&running);
    assert_eq!(value(&m, "wsprobe_session_ping_rtt_seconds_count{target=\"broken\"}"), Some(2.0));
    // The last pong came at about 100 ms; silence from then for 200 ms.
    let lifetime = value(&m, "wsprobe_session_lifetime_seconds_sum{target=\"broken\"}").unwrap();
    assert!((0.29..0.45).contains(&lifetime), "lifetime {lifetime}s, expected 0.3s (+0.15s tolerance)");
    let closes = mute.closes();
    assert!(closes.is_empty() || closes == [1000], "{closes:?}");
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn a_ping_flood_is_answered_without_ending_the_session_or_growing_memory() {
    let flood = held(Behaviour { flood: Some(Flood::Pings), ..Behaviour::default() }).await;
    let calm = held(Behaviour::default()).await;
    let session = "{ ping_interval: 50ms, stale_after: 1s, reconnect: { initial: 2s, max: 2s } }";
    let started = Instant::now();
    let (running, cancel, _dir) = start(&flood.url(), session, "", &calm).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let rss_after = rss_kib();
    let m = metrics(&running);
    assert!(!m.contains("wsprobe_session_disconnects_total{"), "{m}");
    assert_eq!(flood.server.connections(), 1);
    assert_eq!(value(&m, "wsprobe_sessions_open{target=\"broken\"}"), Some(1.0));
    assert!(rss_after < rss_before + 16 * 1024, "RSS grew from {rss_before} KiB to {rss_after} KiB");
    assert_calm_unaffected(&m, &calm, started.elapsed());
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn a_data_flood_is_counted_with_memory_bounded() {
    let flood = held(Behaviour { flood: Some(Flood::Text(512)), ..Behaviour::default() }).await;
    let calm = held(Behaviour::default()).await;
    let session = "{ ping_interval: 50ms, stale_after: 1s, reconnect: { initial: 2s, max: 2s } }";
    let started = Instant::now();
    let (running, cancel, _dir) = start(&flood.url(), session, "", &calm).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let rss_after = rss_kib();
    let m = metrics(&running);
    assert!(!m.contains("wsprobe_session_disconnects_total{"), "{m}");
    let received = value(&m, "wsprobe_session_messages_received_total{target=\"broken\"}").unwrap();
    assert!(received > 1000.0, "{received} messages");
    assert!(value(&m, "wsprobe_message_gap_seconds_count{target=\"broken\"}").unwrap() > 1000.0);
    assert!(rss_after < rss_before + 16 * 1024, "RSS grew from {rss_before} KiB to {rss_after} KiB");
    assert_calm_unaffected(&m, &calm, started.elapsed());
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn an_oversized_message_ends_the_session_as_message_too_large_with_1009() {
    let big = "x".repeat(4096);
    let flood =
        held(Behaviour { push: Some((Duration::from_millis(30), big)), ..Behaviour::default() }).await;
    let calm = held(Behaviour::default()).await;
    let session = "{ ping_interval: 50ms, stale_after: 1s, reconnect: { initial: 100ms, max: 100ms } }";
    let (running, cancel, _dir) = start(&flood.url(), session, "    max_message_size: 1KiB\n", &calm).await;
    eventually(Duration::from_secs(2), "two sessions ended as message_too_large", || {
        let m = metrics(&running);
        async move {
            value_or_zero(
                &m,
                "wsprobe_session_disconnects_total{reason=\"message_too_large\",target=\"broken\"}",
            ) >= 2.0
        }
    })
    .await;
    let g = gaps(&flood);
    assert!(g.iter().all(|gap| *gap >= Duration::from_millis(80)), "reconnects waited: {g:?}");
    eventually(Duration::from_secs(1), "the server saw 1009", || {
        let closes = flood.closes();
        async move { closes.contains(&1009) }
    })
    .await;
    cancel.cancel();
    running.wait().await;
}
