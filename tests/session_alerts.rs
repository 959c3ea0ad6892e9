//! The session rules end to end: held sessions through the daemon feed the live detector
//! and the record file, and `wsprobe replay` raises the same alerts from a trace of
//! session events, recorded or written with explicit timestamps.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::http::{get, sample};
use common::poll::eventually;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use wsprobe::daemon::Options;

const T0: f64 = 1_790_000_000.0;

fn replay(config: &std::path::Path, trace: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(["replay", "--config", config.to_str().unwrap(), "--trace", trace.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two sessions held for three hours, then cut after 60 s each (reopened a second later):
/// a trace as `--record` writes it, with explicit timestamps.
fn cut_after_a_minute() -> String {
    let mut trace = String::new();
    let mut line = |ts: f64, session: &str| {
        writeln!(trace, r#"{{"ts":{ts},"target":"staging-stream","session":{session}}}"#).unwrap();
    };
    line(T0, r#"{"event":"open","open":2,"configured":2}"#);
    let mut t = T0;
    while t < T0 + 3.0 * 3600.0 {
        line(t, r#"{"event":"ping_rtt","seconds":0.002}"#);
        t += 15.0;
    }
    let mut opened = T0;
    let end = t + 20.0 * 60.0;
    while t < end {
        let lifetime = t - opened;
        for _ in 0..2 {
            line(
                t,
                &format!(
                    r#"{{"event":"disconnect","reason":"unexpected_close","lifetime_seconds":{lifetime}}}"#
                ),
            );
        }
        line(t, r#"{"event":"open","open":0,"configured":2}"#);
        line(t + 1.0, r#"{"event":"open","open":2,"configured":2}"#);
        opened = t + 1.0;
        t = opened + 60.0;
    }
    trace
}

#[test]
fn a_trace_of_sessions_cut_after_a_minute_replays_into_sessions_dropping() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wsprobe.yaml");
    std::fs::write(
        &config,
        "targets:\n  - name: staging-stream\n    url: ws://127.0.0.1:1/ws\n    session: { count: 2 }\n",
    )
    .unwrap();
    let trace = dir.path().join("trace.jsonl");
    let text = cut_after_a_minute();
    let events = text.lines().count();
    std::fs::write(&trace, text).unwrap();
    let stdout = replay(&config, &trace);
    let firing: Vec<&str> = stdout.lines().filter(|l| l.contains("  firing  ")).collect();
    assert_eq!(firing.len(), 1, "{stdout}");
    // `firing` at the first cut's time plus 61 s (pending) plus `for` (5m).
    let (at, rest) = firing[0].split_once("  firing    ").unwrap();
    assert_eq!(at, wsprobe::alerting::rfc3339_unix(T0 + 3.0 * 3600.0 + 61.0 + 300.0), "{stdout}");
    assert!(
        rest.starts_with(
            "SessionsDropping staging-stream: sessions to staging-stream end after 60s (median of 12), \
             baseline: no disconnects;"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(&format!("0 results and {events} session events replayed, 1 alerts fired\n")),
        "{stdout}"
    );
    // The brief dips to 0 of 2 clear before SessionsBelowConfigured's `for`.
    assert!(!stdout.contains("firing    SessionsBelowConfigured"), "{stdout}");
}

/// A WebSocket service that holds sessions until told to cut them, then ends every
/// session (a plain TCP close, no close frame) 150 ms after it opened or after the switch.
struct Cutter {
    addr: SocketAddr,
    cutting: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Cutter {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cutting = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cutting);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let flag = Arc::clone(&flag);
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                    let _ = ws.send(Message::text(r#"{"type":"welcome"}"#)).await;
                    let opened = Instant::now();
                    let mut cut_from: Option<Instant> = None;
                    let mut tick = tokio::time::interval(Duration::from_millis(10));
                    loop {
                        tokio::select! {
                            msg = ws.next() => if !matches!(msg, Some(Ok(_))) { return },
                            _ = tick.tick() => {
                                if flag.load(Ordering::SeqCst) {
                                    let from = *cut_from.get_or_insert_with(Instant::now);
                                    if from.max(opened).elapsed() >= Duration::from_millis(150) {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                });
            }
        });
        Self { addr, cutting, task }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_sessions_that_start_being_cut_raise_sessions_dropping_live_and_in_replay() {
    let server = Cutter::start().await;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    // Windows in seconds: 2 s recent, the 20 s before as baseline, 4 s of sessions needed.
    let yaml = format!(
        "listen: 127.0.0.1:0
shutdown_grace: 2s
targets:
  - name: stream
    url: ws://{}/ws
    session: {{ count: 2, ping_interval: 50ms, stale_after: 2s, reconnect: {{ initial: 20ms, max: 20ms }} }}
alerting:
  detector:
    recent_window: 2s
    recent_bucket: 1s
    baseline_window: 20s
    baseline_bucket: 1s
    latency: {{ baseline: window }}
    session_rtt: {{ enabled: false }}
    sessions_below_configured: {{ for: 10s }}
    sessions_dropping: {{ min_baseline_held: 4s, for: 1s, resolve_after: 1s }}
",
        server.addr
    );
    let options = Options { record: Some(trace.clone()), ..Options::default() };
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &yaml, options).await;
    let alert = |m: &str, state: &str| {
        sample(
            m,
            "wsprobe_alerts",
            &[("alertname", "SessionsDropping"), ("target", "stream"), ("state", state)],
        )
    };
    // Five seconds of two held sessions and no disconnect: the baseline, which already
    // holds the 4 s of sessions it needs once the first 2-3 s have left the recent window.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let m = get(running.addr, "/metrics").await.body;
    assert_eq!(alert(&m, "pending").or(alert(&m, "firing")), None, "no alert while sessions hold");
    server.cutting.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(8), "SessionsDropping firing", || {
        let addr = running.addr;
        async move { alert(&get(addr, "/metrics").await.body, "firing") == Some(1.0) }
    })
    .await;
    let alerts = get(running.addr, "/api/alerts").await.body;
    assert!(
        alerts.contains("sessions to stream end after 1") && alerts.contains("ms (median of "),
        "{alerts}"
    );
    assert!(alerts.contains("baseline: no disconnects"), "{alerts}");
    // The trace's timestamps are the reporters' and its events reach the detector in
    // file order, so the replayed alert may go pending a little later than the live one:
    // keep recording past its `for` (1 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    cancel.cancel();
    running.wait().await;

    // The record file holds the session events, and replays into the same alert.
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(
        text.contains(r#""target":"stream","session":{"event":"open","open":2,"configured":2}"#),
        "{text}"
    );
    assert!(text.contains(r#""session":{"event":"disconnect","reason":"#), "{text}");
    assert!(text.contains(r#""session":{"event":"ping_rtt","seconds":"#), "{text}");
    let stdout = replay(&dir.path().join("wsprobe.yaml"), &trace);
    assert!(stdout.contains("firing    SessionsDropping stream: sessions to stream end after "), "{stdout}");
}
