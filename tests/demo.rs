//! `wsprobe demo` through the real binary: it starts with no configuration, the agent
//! scenario passes against the embedded service, metrics are served, Ctrl-C stops it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{get, sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_agent_scenario_and_stops_on_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(["demo", "--listen", "127.0.0.1:0", "--interval", "500ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wsprobe demo");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = Vec::new();
    let mut addr: Option<SocketAddr> = None;
    for line in stdout.lines().map_while(Result::ok).take(10) {
        if let Some(url) = line.split_whitespace().find(|w| w.ends_with("/metrics")) {
            addr = url.trim_start_matches("http://").trim_end_matches("/metrics").parse().ok();
        }
        printed.push(line);
        if addr.is_some() {
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("no metrics address printed:\n{}", printed.join("\n")));
    assert!(printed[0].starts_with("wsprobe demo"), "{printed:?}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let m = get(addr, "/metrics").await.body;
        let agent_ok = sample(&m, "wsprobe_probes_total", &[("target", "demo-agent"), ("result", "success")]);
        let flaky_done = sample(&m, "wsprobe_probe_success", &[("target", "demo-flaky")]);
        if agent_ok.is_some_and(|n| n >= 1.0) && flaky_done.is_some() {
            break m;
        }
        assert!(Instant::now() < deadline, "the demo did not complete a round in 15s:\n{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for step in ["welcome", "request", "agent_started", "agent_completed"] {
        let count = sample(&metrics, "wsprobe_step_duration_seconds_count", &[("target", "demo-agent"), ("step", step)]);
        assert!(count.is_some_and(|n| n >= 1.0), "no timing for step {step}:\n{metrics}");
    }
    assert_eq!(get(addr, "/readyz").await.status, 200);
    let api: serde_json::Value = serde_json::from_str(&get(addr, "/api/targets").await.body).unwrap();
    let names: Vec<&str> = api["targets"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["demo-agent", "demo-flaky"]);

    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let stop = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(stop.elapsed() < Duration::from_secs(5), "demo did not stop within 5s of Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}
