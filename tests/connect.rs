//! The connect phase with several addresses for one host (RFC 8305 "Happy Eyeballs"):
//! an address that drops SYNs must cost one attempt delay (250 ms), not the timeout.
//!
//! Tolerance: the fallback must connect within `[250ms, 400ms)`. The address list is given
//! to `tcp::connect` directly, as the resolver would hand it over, and to a whole probe
//! through an injected resolver (no system file is touched).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ServerOpts;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use wsprobe::probe::resolve::Resolve;
use wsprobe::probe::tcp::{connect, ATTEMPT_DELAY};
use wsprobe::probe::{Phase, ProbeError, Prober, Reason};

#[tokio::test]
async fn an_address_that_drops_syns_costs_one_attempt_delay() {
    let (hanging, _guard) = common::unaccepting().await;
    let server = common::echo(ServerOpts::default()).await;
    let start = Instant::now();
    let stream = tokio::time::timeout(Duration::from_secs(3), connect(&[hanging, server.addr]))
        .await
        .expect("the second address should be tried within the connect timeout")
        .expect("connected");
    let took = start.elapsed();
    assert_eq!(stream.peer_addr().unwrap(), server.addr);
    assert!(
        (ATTEMPT_DELAY..Duration::from_millis(400)).contains(&took),
        "connected after {took:?}, expected [250ms, 400ms)"
    );
}

#[tokio::test]
async fn a_refused_address_hands_over_at_once() {
    let server = common::echo(ServerOpts::default()).await;
    let start = Instant::now();
    let stream = connect(&[common::refused_addr(), server.addr]).await.expect("connected");
    assert_eq!(stream.peer_addr().unwrap(), server.addr);
    assert!(start.elapsed() < Duration::from_millis(100), "took {:?}", start.elapsed());
}

#[tokio::test]
async fn all_refused_is_connect_refused() {
    let e = connect(&[common::refused_addr(), common::refused_addr()]).await.expect_err("refused");
    assert_eq!(e.reason, Reason::ConnectRefused, "{e}");
}

#[tokio::test]
async fn all_hanging_waits_for_the_callers_timeout() {
    let (a, _ga) = common::unaccepting().await;
    let (b, _gb) = common::unaccepting().await;
    let start = Instant::now();
    let out = tokio::time::timeout(Duration::from_millis(600), connect(&[a, b])).await;
    assert!(out.is_err(), "no attempt can succeed: {out:?}");
    let took = start.elapsed();
    assert!((Duration::from_millis(600)..Duration::from_millis(650)).contains(&took), "took {took:?}");
}

/// A fixed table standing in for DNS: `multi.test` has a dead address, then a live one.
/// Each entry keeps its own port (the two listeners cannot share one), so the URL's port
/// is ignored.
#[derive(Debug)]
struct TwoAddresses(Vec<SocketAddr>);

impl Resolve for TwoAddresses {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, Result<Vec<SocketAddr>, ProbeError>> {
        let addrs = self.0.clone();
        Box::pin(async move {
            assert_eq!(host, "multi.test");
            Ok(addrs)
        })
    }
}

#[tokio::test]
async fn a_probe_of_a_host_with_a_dead_first_address_passes_with_the_fallback_timed() {
    let (hanging, _guard) = common::unaccepting().await;
    let server = common::echo(ServerOpts::default()).await;
    let resolver = Arc::new(TwoAddresses(vec![hanging, server.addr]));
    let yaml = format!(
        "targets:\n  - name: t\n    url: ws://multi.test:{}/ws\n    timeouts: {{ connect: 2s }}\n",
        server.addr.port()
    );
    let config = wsprobe::config::parse(Path::new("test.yaml"), &yaml).expect("valid config");
    let prober = Prober::with_resolver(config.targets[0].clone(), resolver).expect("prober");
    let r = prober.probe(&CancellationToken::new()).await.expect("not cancelled");
    assert!(r.success, "{r:?}");
    let connect = Duration::from_secs_f64(r.phases.get(Phase::Connect).expect("connect timed"));
    assert!((ATTEMPT_DELAY..Duration::from_millis(400)).contains(&connect), "connect took {connect:?}");
}
