//! What `kill -9` loses, measured on the real binary: the detector state in
//! `alerting.state_dir` is at most 10 s behind (written about a second after the first
//! change, then every 10 s while things change), and the `--record` file at most the
//! line being written.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::http::{get, sample};
use common::poll::poll;
use common::process::{self, ChildGuard, Output};
use common::ServerOpts;

/// The persistence period under test.
const PERSIST_EVERY: Duration = Duration::from_secs(10);
const INTERVAL: Duration = Duration::from_millis(100);

/// Starts the daemon; returns it, its address and the log lines up to the address.
fn spawn(config: &Path, record: &Path) -> (ChildGuard, SocketAddr, Vec<String>) {
    let args = [
        "--log-format",
        "json",
        "run",
        "--config",
        config.to_str().unwrap(),
        "--record",
        record.to_str().unwrap(),
    ];
    let (child, lines): (_, Receiver<String>) =
        process::spawn(&args, &[("RUST_LOG", "info")], Output::Stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let line =
            lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("address logged");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        seen.push(line);
        if let Some(addr) = json["addr"].as_str() {
            return (child, addr.parse().unwrap(), seen);
        }
    }
}

/// Successful probes the saved detector state has seen (the target never fails, so its
/// streak of successes counts them), or `None` while there is no state file.
fn saved_successes(state: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).expect("the state file is never torn");
    json["targets"][0]["streak"]["consecutive_successes"].as_u64()
}

async fn successes(addr: SocketAddr) -> f64 {
    let m = get(addr, "/metrics").await.body;
    sample(&m, "wsprobe_probes_total", &[("target", "echo"), ("result", "success")]).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_at_most_ten_seconds_of_state_and_no_record_lines() {
    let server = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, record, state_dir) =
        (dir.path().join("wsprobe.yaml"), dir.path().join("probes.jsonl"), dir.path().join("state"));
    let state = state_dir.join("detector.json");
    let yaml = format!(
        "listen: 127.0.0.1:0\ndefaults:\n  interval: 100ms\n  jitter: 0%\ntargets:\n  - name: echo\n    url: {}\nalerting:\n  state_dir: {}\n",
        server.url(),
        state_dir.display()
    );
    std::fs::write(&config, yaml).unwrap();

    let (child, addr, _logs) = spawn(&config, &record);
    let started = Instant::now();
    // Watch the file: when each new version appeared, and what it held.
    let mut writes: Vec<(Duration, u64)> = Vec::new();
    while started.elapsed() < Duration::from_millis(13_500) {
        if let Some(n) = saved_successes(&state) {
            if writes.last().is_none_or(|(_, last)| *last != n) {
                writes.push((started.elapsed(), n));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = successes(addr).await;
    child.signal("KILL");
    let killed_at = started.elapsed();
    drop(child);
    let saved = saved_successes(&state).expect("a state file exists after kill -9");
    let lines = std::fs::read_to_string(&record).unwrap().lines().filter(|l| l.ends_with('}')).count();
    let lost = before - saved as f64;
    eprintln!(
        "writes seen (time since start, successes saved): {writes:?}; killed at {killed_at:?} after {before} successes; \
         state file held {saved} (lost {lost} probes = {:.1} s); record file held {lines} lines",
        lost * INTERVAL.as_secs_f64()
    );

    let (first, _) = writes.first().copied().expect("the state was written while running");
    assert!(first < Duration::from_millis(2500), "first write {first:?} after start");
    for pair in writes.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= PERSIST_EVERY - Duration::from_millis(500)
                && gap <= PERSIST_EVERY + Duration::from_millis(500),
            "writes {gap:?} apart: {writes:?}"
        );
    }
    assert!(writes.len() >= 2, "a periodic write followed the first: {writes:?}");
    // 10 s of probes at 100 ms, and 5 more for the tick and scrape timing.
    let bound = PERSIST_EVERY.as_secs_f64() / INTERVAL.as_secs_f64() + 5.0;
    assert!(lost <= bound, "lost {lost} probes of state, bound {bound}");
    assert!(before - lines as f64 <= 2.0, "record file: {lines} lines for {before} probes");

    // The restarted daemon goes on from the saved state rather than from nothing.
    let (_child, _addr, logs) = spawn(&config, &record);
    assert!(logs.iter().any(|l| l.contains("Alerting state restored.")), "no restore logged: {logs:?}");
    let state = &state;
    let written = poll(Duration::from_secs(4), Duration::from_millis(50), || async move {
        let now = saved_successes(state).unwrap();
        if now > saved {
            Ok(now)
        } else {
            Err(now)
        }
    });
    let now =
        written.await.unwrap_or_else(|_| panic!("the restarted daemon did not write its state within 4 s"));
    assert!(now < saved + 50, "counted on from {saved}: {now}");
}
