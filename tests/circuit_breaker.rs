//! The circuit breaker end to end: a WebSocket server that refuses the upgrade while
//! unhealthy; the breaker must open after its failure threshold, stop probing while open,
//! fail a half-open trial, and close after enough successful trials, with `/metrics` and
//! `/api/targets` following each step.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::daemon::{start, write_config};
use common::health::{target, until_api, until_metrics};
use common::http::sample;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response as WsResponse};

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
