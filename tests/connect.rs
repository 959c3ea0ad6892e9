//! The connect phase with several addresses for one host (RFC 8305 "Happy Eyeballs"):
//! an address that drops SYNs must cost one attempt delay (250 ms), not the timeout.
//!
//! Tolerance: the fallback must connect within `[250ms, 400ms)`; the address list is
//! given to `tcp::connect` directly, as the resolver would hand it over.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::ServerOpts;
use wsprobe::probe::tcp::{connect, ATTEMPT_DELAY};
use wsprobe::probe::Reason;

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
