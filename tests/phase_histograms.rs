//! `phase_histograms` cuts a target's phase histogram series and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::daemon::start_yaml;
use common::http::{get, sample};
use common::poll::poll;
use common::ServerOpts;
use wsprobe::daemon::Options;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_exports_only_the_phase_histograms_it_lists() {
    let echo = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nshutdown_grace: 1s\ndefaults:\n  interval: 100ms\n  jitter: 0%\ntargets:\n  - name: every\n    url: {0}\n  - name: cut\n    url: {0}\n    phase_histograms: [connect, handshake]\n",
        echo.url()
    );
    let (running, cancel) = start_yaml(dir.path(), &yaml, Options::default()).await;
    let addr = running.addr;
    poll(Duration::from_secs(5), Duration::from_millis(50), || async {
        let m = get(addr, "/metrics").await.body;
        let done =
            |t| sample(&m, "wsprobe_probes_total", &[("target", t), ("result", "success")]).unwrap_or(0.0);
        if done("every") >= 1.0 && done("cut") >= 1.0 {
            Ok(m)
        } else {
            Err(m)
        }
    })
    .await
    .unwrap_or_else(|m| panic!("no probe of both targets succeeded:\n{m}"));
    // A scrape is written family by family while probes go on, and the phase histograms
    // come before `wsprobe_probes_total`: the scrape that first counted a probe may have
    // written the phases just before it. The next one has that probe's phases.
    let m = get(addr, "/metrics").await.body;
    let phases_of = |target: &str| {
        let needle = format!("target=\"{target}\"");
        let mut phases: Vec<String> = m
            .lines()
            .filter(|l| l.starts_with("wsprobe_phase_duration_seconds_count{") && l.contains(&needle))
            .filter_map(|l| l.split("phase=\"").nth(1)?.split('"').next().map(str::to_owned))
            .collect();
        phases.sort();
        phases
    };
    assert_eq!(phases_of("every"), ["close", "connect", "dns", "first_message", "handshake", "ping"]);
    assert_eq!(phases_of("cut"), ["connect", "handshake"]);
    // Everything else about `cut` is still there.
    for name in
        ["wsprobe_probe_duration_seconds_count", "wsprobe_probe_success", "wsprobe_message_gap_seconds_count"]
    {
        assert!(sample(&m, name, &[("target", "cut")]).is_some(), "{name} of `cut` is exported:\n{m}");
    }
    let api = get(addr, "/api/targets").await.body;
    assert!(api.contains("\"first_message\""), "the API keeps every phase: {api}");
    cancel.cancel();
    running.wait().await;
}
