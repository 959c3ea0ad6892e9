//! `wsprobe demo` through the real binary: it starts with no configuration, the agent
//! scenario passes against the embedded service, metrics are served, Ctrl-C stops it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::{get, sample};
use common::poll::poll;
use common::process::{self, Output};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_agent_scenario_and_stops_on_ctrl_c() {
    let (mut child, lines) =
        process::spawn(&["demo", "--listen", "127.0.0.1:0", "--interval", "500ms"], &[], Output::Stdout);
    let mut printed = Vec::new();
    let mut addr: Option<SocketAddr> = None;
    while addr.is_none() && printed.len() < 10 {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) else { break };
        if let Some(url) = line.split_whitespace().find(|w| w.ends_with("/metrics")) {
            addr = url.trim_start_matches("http://").trim_end_matches("/metrics").parse().ok();
        }
        printed.push(line);
    }
    let addr = addr.unwrap_or_else(|| panic!("no metrics address printed:\n{}", printed.join("\n")));
    assert!(printed[0].starts_with("wsprobe demo"), "{printed:?}");

    let round = poll(Duration::from_secs(15), Duration::from_millis(100), || async {
        let m = get(addr, "/metrics").await.body;
        let agent_ok = sample(&m, "wsprobe_probes_total", &[("target", "demo-agent"), ("result", "success")]);
        let flaky_done = sample(&m, "wsprobe_probe_success", &[("target", "demo-flaky")]);
        if agent_ok.is_some_and(|n| n >= 1.0) && flaky_done.is_some() {
            Ok(m)
        } else {
            Err(m)
        }
    });
    let metrics = round.await.unwrap_or_else(|m| panic!("the demo did not complete a round in 15s:\n{m}"));
    for step in ["welcome", "request", "agent_started", "agent_completed"] {
        let count = sample(
            &metrics,
            "wsprobe_step_duration_seconds_count",
            &[("target", "demo-agent"), ("step", step)],
        );
        assert!(count.is_some_and(|n| n >= 1.0), "no timing for step {step}:\n{metrics}");
    }
    assert_eq!(get(addr, "/readyz").await.status, 200);
    let api: serde_json::Value = serde_json::from_str(&get(addr, "/api/targets").await.body).unwrap();
    let names: Vec<&str> =
        api["targets"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["demo-agent", "demo-flaky"]);

    child.signal("INT");
    let status = child.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
}
