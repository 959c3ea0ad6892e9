//! The probe against the fake-server catalogue: each failure's exact reason and phase,
//! each phase's timing against the delay injected into it.
//!
//! Tolerances: a phase with an injected delay `d` must measure within `[d, d + 40ms)`.
//! 40 ms is loopback plus scheduling on a loaded 2-core CI machine; the measurement is
//! never allowed to be shorter than the delay.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{ServerOpts, WELCOME};
use tokio_util::sync::CancellationToken;
use wsprobe::probe::{Phase, ProbeResult, Prober, Reason};

const DELAY: Duration = Duration::from_millis(150);
const TOLERANCE: Duration = Duration::from_millis(40);

/// Builds a prober from target YAML (indented under `targets:`); `{url}` is substituted.
fn prober(url: &str, extra: &str) -> Prober {
    let yaml = format!("targets:\n  - name: t\n    url: {url}\n{extra}");
    let config = wsprobe::config::parse(Path::new("test.yaml"), &yaml).expect("valid test config");
    Prober::new(config.targets[0].clone()).expect("prober")
}

async fn probe(url: &str, extra: &str) -> ProbeResult {
    prober(url, extra).probe(&CancellationToken::new()).await.expect("not cancelled")
}

fn assert_failed(r: &ProbeResult, reason: Reason, phase: Phase) {
    assert!(!r.success, "expected a failure, got success: {r:?}");
    assert_eq!((r.reason, r.phase), (Some(reason), Some(phase)), "message: {:?}", r.message);
}

fn assert_phase_near(r: &ProbeResult, phase: Phase, injected: Duration) {
    let measured = r.phases.get(phase).unwrap_or_else(|| panic!("no {phase} timing in {r:?}"));
    let lo = injected.as_secs_f64();
    let hi = (injected + TOLERANCE).as_secs_f64();
    assert!(
        (lo..hi).contains(&measured),
        "{phase}: measured {measured:.4}s, injected {lo:.3}s (allowed up to {hi:.3}s)"
    );
}

fn assert_duration_near(r: &ProbeResult, expected: Duration) {
    let lo = expected.as_secs_f64();
    let hi = (expected + TOLERANCE).as_secs_f64();
    assert!(
        (lo..hi).contains(&r.duration_seconds),
        "probe took {:.4}s, expected {lo:.3}..{hi:.3}s",
        r.duration_seconds
    );
}

#[tokio::test]
async fn healthy_server_passes_every_phase() {
    let server = common::echo(ServerOpts::default()).await;
    let r = probe(&server.url(), "").await;
    assert!(r.success, "{r:?}");
    assert_eq!((r.reason, r.phase, r.http_status), (None, None, Some(101)));
    let timed: Vec<Phase> = r.phases.iter().map(|(p, _)| p).collect();
    assert_eq!(
        timed,
        [Phase::Dns, Phase::Connect, Phase::Handshake, Phase::FirstMessage, Phase::Ping, Phase::Close]
    );
    assert_eq!(r.messages_received, 1);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn slow_handshake_is_measured_in_the_handshake_phase() {
    let server = common::echo(ServerOpts { handshake_delay: DELAY, ..ServerOpts::default() }).await;
    let r = probe(&server.url(), "").await;
    assert!(r.success, "{r:?}");
    assert_phase_near(&r, Phase::Handshake, DELAY);
    assert!(r.phases.get(Phase::Connect).unwrap() < 0.02, "the delay leaked into connect: {r:?}");
}

#[tokio::test]
async fn slow_first_message_is_measured() {
    let server = common::echo(ServerOpts { first_message_delay: DELAY, ..ServerOpts::default() }).await;
    let r = probe(&server.url(), "").await;
    assert!(r.success, "{r:?}");
    assert_phase_near(&r, Phase::FirstMessage, DELAY);
    assert!(r.phases.get(Phase::Handshake).unwrap() < 0.02, "{r:?}");
}

#[tokio::test]
async fn ping_round_trip_and_close_handshake_are_measured() {
    let opts = ServerOpts { pong_delay: DELAY, close_delay: DELAY * 2, ..ServerOpts::default() };
    let server = common::echo(opts).await;
    let r = probe(&server.url(), "").await;
    assert!(r.success, "{r:?}");
    assert_phase_near(&r, Phase::Ping, DELAY);
    assert_phase_near(&r, Phase::Close, DELAY * 2);
}

#[tokio::test]
async fn server_that_does_not_speak_first_is_not_waited_for() {
    let server = common::echo(ServerOpts { welcome: None, ..ServerOpts::default() }).await;
    let strict = probe(&server.url(), "    timeouts: { first_message: 200ms }\n").await;
    assert_failed(&strict, Reason::FirstMessageTimeout, Phase::FirstMessage);
    let r = probe(&server.url(), "    server_speaks_first: false\n").await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.phases.get(Phase::FirstMessage), None);
}

#[tokio::test]
async fn tls_trusted_through_ca_file_is_timed_and_reports_expiry() {
    let id = common::self_signed(&["localhost"]);
    let ca = common::write_temp(&id.cert_pem);
    let opts = ServerOpts { tls: Some(id.clone()), tls_delay: DELAY, ..ServerOpts::default() };
    let server = common::echo(opts).await;
    let extra = format!("    tls: {{ ca_file: {} }}\n", ca.path().display());
    let r = probe(&server.url(), &extra).await;
    assert!(r.success, "{r:?}");
    assert_phase_near(&r, Phase::Tls, DELAY);
    let expiry = r.tls_cert_expiry.expect("certificate expiry recorded");
    let now = wsprobe::util::time::since_epoch().as_secs() as i64;
    assert!(expiry > now, "expiry {expiry} is not in the future");
}

#[tokio::test]
async fn tls_with_an_untrusted_certificate_fails_in_the_tls_phase() {
    let id = common::self_signed(&["localhost"]);
    let server = common::echo(ServerOpts { tls: Some(id), ..ServerOpts::default() }).await;
    let r = probe(&server.url(), "").await;
    assert_failed(&r, Reason::TlsError, Phase::Tls);
    assert!(r.message.as_deref().unwrap().contains("certificate"), "{:?}", r.message);
    assert_eq!(r.http_status, None);

    let r = probe(&server.url(), "    tls: { insecure_skip_verify: true }\n").await;
    assert!(r.success, "insecure_skip_verify should accept it: {r:?}");
}

#[tokio::test]
async fn tls_server_name_is_verified() {
    let id = common::self_signed(&["staging.test"]);
    let ca = common::write_temp(&id.cert_pem);
    let server = common::echo(ServerOpts { tls: Some(id), ..ServerOpts::default() }).await;
    let wrong = format!("    tls: {{ ca_file: {} }}\n", ca.path().display());
    assert_failed(&probe(&server.url(), &wrong).await, Reason::TlsError, Phase::Tls);
    let right = format!("    tls: {{ ca_file: {}, server_name: staging.test }}\n", ca.path().display());
    let r = probe(&server.url(), &right).await;
    assert!(r.success, "{r:?}");
}

#[tokio::test]
async fn refused_connection() {
    let addr = common::refused_addr();
    let r = probe(&format!("ws://{addr}/ws"), "").await;
    assert_failed(&r, Reason::ConnectRefused, Phase::Connect);
}

#[tokio::test]
async fn connect_that_never_completes_times_out() {
    let (addr, _guard) = common::unaccepting().await;
    let r = probe(&format!("ws://{addr}/ws"), "    timeouts: { connect: 200ms }\n").await;
    assert_failed(&r, Reason::ConnectTimeout, Phase::Connect);
    assert_duration_near(&r, Duration::from_millis(200));
}

#[tokio::test]
async fn blackhole_times_out_in_the_handshake() {
    let server = common::blackhole().await;
    let r = probe(&server.url(), "    timeouts: { handshake: 200ms }\n").await;
    assert_failed(&r, Reason::HandshakeTimeout, Phase::Handshake);
    assert_duration_near(&r, Duration::from_millis(200));
    assert_eq!(r.message.as_deref(), Some("no upgrade response within 200ms"));
}

#[tokio::test]
async fn non_101_status_is_reported() {
    let server = common::status(404, "no such endpoint").await;
    let r = probe(&server.url(), "").await;
    assert_failed(&r, Reason::HandshakeStatus, Phase::Handshake);
    assert_eq!(r.http_status, Some(404));
    assert_eq!(r.message.as_deref(), Some("server answered the upgrade with HTTP 404 Not Found"));
}

#[tokio::test]
async fn wrong_accept_key_and_garbage_are_invalid_handshakes() {
    let server = common::bad_accept_key().await;
    assert_failed(&probe(&server.url(), "").await, Reason::HandshakeInvalid, Phase::Handshake);
    let server = common::garbage().await;
    assert_failed(&probe(&server.url(), "").await, Reason::HandshakeInvalid, Phase::Handshake);
}

#[tokio::test]
async fn reset_before_the_upgrade_answer() {
    let server = common::reset_on_accept().await;
    let r = probe(&server.url(), "").await;
    assert_failed(&r, Reason::ConnectionReset, Phase::Handshake);
}

#[tokio::test]
async fn reset_after_the_upgrade() {
    let server = common::reset_after_upgrade().await;
    let r = probe(&server.url(), "").await;
    assert_failed(&r, Reason::ConnectionReset, Phase::Ping);
    assert_eq!(r.messages_received, 1, "the welcome arrived before the reset");
}

#[tokio::test]
async fn silent_server_fails_the_first_message_then_the_ping() {
    let server = common::silent().await;
    let r = probe(&server.url(), "    timeouts: { first_message: 200ms }\n").await;
    assert_failed(&r, Reason::FirstMessageTimeout, Phase::FirstMessage);
    assert_duration_near(&r, Duration::from_millis(200));
    let r = probe(&server.url(), "    server_speaks_first: false\n    timeouts: { ping: 200ms }\n").await;
    assert_failed(&r, Reason::PingTimeout, Phase::Ping);
}

#[tokio::test]
async fn idle_timeout_is_stalled() {
    let server = common::silent().await;
    let r = probe(&server.url(), "    timeouts: { first_message: 5s, idle: 200ms }\n").await;
    assert_failed(&r, Reason::Stalled, Phase::FirstMessage);
    assert_duration_near(&r, Duration::from_millis(200));
}

#[tokio::test]
async fn trickling_server_does_not_extend_the_deadline() {
    // One byte every 20 ms: the message needs 20 s, bytes keep arriving, yet the
    // first-message deadline of 300 ms holds.
    let server = common::trickle(Duration::from_millis(20)).await;
    let r = probe(&server.url(), "    timeouts: { first_message: 300ms }\n").await;
    assert_failed(&r, Reason::FirstMessageTimeout, Phase::FirstMessage);
    assert_duration_near(&r, Duration::from_millis(300));
}

#[tokio::test]
async fn huge_frame_is_rejected_from_its_header() {
    let server = common::huge_frame(1 << 40).await;
    let r = probe(&server.url(), "    max_message_size: 1MiB\n").await;
    assert_failed(&r, Reason::MessageTooLarge, Phase::FirstMessage);
    assert!(r.message.as_deref().unwrap().contains("1099511627776 bytes"), "{:?}", r.message);
}

#[tokio::test]
async fn missing_pong_and_missing_close_reply() {
    let server = common::no_pong().await;
    let r = probe(&server.url(), "    timeouts: { ping: 200ms }\n").await;
    assert_failed(&r, Reason::PingTimeout, Phase::Ping);
    assert_eq!(r.message.as_deref(), Some("no pong within 200ms"));

    let server = common::no_close_reply().await;
    let r = probe(&server.url(), "    timeouts: { close: 200ms }\n").await;
    assert_failed(&r, Reason::CloseTimeout, Phase::Close);
}

#[tokio::test]
async fn server_close_mid_session_reports_the_code() {
    let server = common::close_after_welcome(1011, "internal error").await;
    let r = probe(&server.url(), "").await;
    assert_failed(&r, Reason::UnexpectedClose, Phase::Ping);
    assert_eq!(r.close_code, Some(1011));
    assert!(r.message.as_deref().unwrap().contains("1011"), "{:?}", r.message);
}

#[tokio::test]
async fn probe_timeout_bounds_the_whole_probe() {
    let server = common::blackhole().await;
    let r = probe(&server.url(), "    timeouts: { handshake: 10s, probe: 250ms }\n").await;
    assert_failed(&r, Reason::ProbeTimeout, Phase::Handshake);
    assert_duration_near(&r, Duration::from_millis(250));
}

#[tokio::test]
async fn cancellation_ends_a_probe_promptly_without_a_result() {
    let server =
        common::echo(ServerOpts { first_message_delay: Duration::from_secs(5), ..Default::default() }).await;
    let p = prober(&server.url(), "");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    let start = Instant::now();
    assert!(p.probe(&cancel).await.is_none());
    assert!(start.elapsed() < Duration::from_millis(700), "took {:?}", start.elapsed());
}

#[tokio::test]
async fn headers_and_subprotocols_reach_the_server() {
    std::env::set_var("WSPROBE_TEST_PROBE_TOKEN", "tok-123456");
    let server = common::echo(ServerOpts::default()).await;
    let extra = "    headers: { Authorization: \"Bearer ${WSPROBE_TEST_PROBE_TOKEN}\", X-Probe: wsprobe }\n    subprotocols: [jwt-auth]\n";
    let r = probe(&server.url(), extra).await;
    assert!(r.success, "{r:?}");
    let request = server.requests().join("\n").to_ascii_lowercase();
    assert!(request.contains("authorization: bearer tok-123456"), "{request}");
    assert!(request.contains("x-probe: wsprobe"), "{request}");
    assert!(request.contains("sec-websocket-protocol: jwt-auth"), "{request}");
    assert_eq!(WELCOME.len(), 18);
}
