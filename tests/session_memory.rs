//! What an idle held session costs in memory: alone in its test binary, so nothing else
//! allocates while the resident set is measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::poll::eventually;
use common::session::{held, rss_kib, value, Behaviour, Held};
use wsprobe::daemon::{Options, Running};

const FIRST: usize = 100;
const THEN: usize = 500;

fn yaml(server: &Held, count: usize) -> String {
    format!(
        "listen: 127.0.0.1:0\ntargets:\n  - name: idle\n    url: {}\n    session: {{ count: {count}, ping_interval: 200ms, stale_after: 1m }}\n",
        server.url()
    )
}

async fn all_open(running: &Running, server: &Held, n: usize) {
    eventually(Duration::from_secs(20), "every session is open", || {
        let m = running.shared.metrics.render();
        let live = server.live();
        async move { live == n && value(&m, "wsprobe_sessions_open{target=\"idle\"}") == Some(n as f64) }
    })
    .await;
    // Pings flowing: the buffers a ping and its pong use are touched too.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// The resident set grown by 400 more idle sessions, both ends in this process (the fake
/// server's side of each is counted too), and the daemon's fixed cost left out: well
/// under 32 KiB per session (18-23 KiB measured). With the default read buffer (128 KiB
/// per connection) it was several times that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_held_session_costs_a_few_kib() {
    let server = held(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (running, cancel) =
        common::daemon::start_yaml(dir.path(), &yaml(&server, FIRST), Options::default()).await;
    all_open(&running, &server, FIRST).await;
    let before = rss_kib();
    std::fs::write(dir.path().join("wsprobe.yaml"), yaml(&server, THEN)).unwrap();
    let answer = common::http::request(running.addr, "POST", "/-/reload").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    all_open(&running, &server, THEN).await;
    let after = rss_kib();
    let per_session = after.saturating_sub(before) as f64 / (THEN - FIRST) as f64;
    println!("{per_session:.1} KiB per session ({before} KiB at {FIRST}, {after} KiB at {THEN})");
    assert!(per_session < 32.0, "{per_session:.1} KiB per idle session");
    cancel.cancel();
    running.wait().await;
}
