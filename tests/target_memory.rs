//! What an idle probe target costs in memory between its probes: alone in its test
//! binary, so nothing else allocates while the resident set is measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::poll::eventually;
use common::session::{rss_kib, value};
use wsprobe::daemon::Options;

const FIRST: usize = 100;
const THEN: usize = 2100;

/// `count` targets probed hourly, their first probes spread over the hour: between probes.
fn yaml(count: usize) -> String {
    let mut y = "listen: 127.0.0.1:0\ndefaults: { interval: 1h, jitter: 0% }\ntargets:\n".to_owned();
    for i in 0..count {
        let _ = writeln!(y, "  - {{ name: t{i:05}, url: 'ws://{}/' }}", common::refused_addr());
    }
    y
}

/// The resident set grown by 2,000 more targets, none of them probing yet: a target's
/// task, state, series and configuration, 20 KiB measured here (a debug build). A probe's
/// own state (the connection, the library's socket, the scenario: tens of KiB) is held
/// only while the probe runs; held in every target's task, as it was, each target cost
/// 50 KiB here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_target_costs_a_few_kib() {
    let dir = tempfile::tempdir().unwrap();
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &yaml(FIRST), Options::default()).await;
    let targets = |n: usize| {
        let running = &running;
        async move { value(&running.shared.metrics.render(), "wsprobe_targets") == Some(n as f64) }
    };
    eventually(Duration::from_secs(10), "the first targets run", || targets(FIRST)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib();
    std::fs::write(dir.path().join("wsprobe.yaml"), yaml(THEN)).unwrap();
    let answer = common::http::request(running.addr, "POST", "/-/reload").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    eventually(Duration::from_secs(20), "every target runs", || targets(THEN)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    let per_target = after.saturating_sub(before) as f64 / (THEN - FIRST) as f64;
    println!("{per_target:.1} KiB per target ({before} KiB at {FIRST}, {after} KiB at {THEN})");
    assert!(per_target < 28.0, "{per_target:.1} KiB per idle target");
    cancel.cancel();
    running.wait().await;
}
