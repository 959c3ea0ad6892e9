//! A daemon that cannot keep its schedule says so: late starts are counted per target,
//! every start's lag is in one histogram, and a WARN names the worst.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::daemon::start_yaml;
use common::http::{get, sample};
use common::poll::poll;
use common::ServerOpts;
use wsprobe::daemon::Options;

/// Three targets due every 200 ms whose probes take at least 150 ms each (the upgrade is
/// answered late), sharing one probe slot: 450 ms of probing per 200 ms, so starts slip
/// by far more than the 100 ms tolerance. The lag histogram holds every start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_that_start_late_are_counted() {
    let slow =
        common::echo(ServerOpts { handshake_delay: Duration::from_millis(150), ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = "listen: 127.0.0.1:0\nshutdown_grace: 1s\nmax_concurrent_probes: 1\ndefaults:\n  interval: 200ms\n  jitter: 0%\ntargets:\n".to_owned();
    for i in 0..3 {
        yaml.push_str(&format!("  - name: slow{i}\n    url: {}\n", slow.url()));
    }
    let (running, cancel) = start_yaml(dir.path(), &yaml, Options::default()).await;
    let addr = running.addr;

    let counted = poll(Duration::from_secs(5), Duration::from_millis(50), || async {
        let m = get(addr, "/metrics").await.body;
        let late: f64 = (0..3)
            .map(|i| {
                sample(&m, "wsprobe_probes_late_total", &[("target", &format!("slow{i}"))]).unwrap_or(0.0)
            })
            .sum();
        if late >= 3.0 {
            Ok(m)
        } else {
            Err(m)
        }
    });
    let m = counted.await.unwrap_or_else(|m| panic!("no late start was counted:\n{m}"));
    let starts = sample(&m, "wsprobe_probe_start_lag_seconds_count", &[]).unwrap();
    let on_time = sample(&m, "wsprobe_probe_start_lag_seconds_bucket", &[("le", "0.1")]).unwrap();
    let probes: f64 = (0..3)
        .flat_map(|i| ["success", "failure"].map(move |r| (i, r)))
        .map(|(i, r)| {
            sample(&m, "wsprobe_probes_total", &[("target", &format!("slow{i}")), ("result", r)])
                .unwrap_or(0.0)
        })
        .sum();
    assert!(starts >= probes, "every started probe's lag is observed: {starts} starts, {probes} done");
    assert!(on_time < starts, "some starts were more than 100 ms late: {on_time} of {starts} on time");
    cancel.cancel();
    running.wait().await;
}

/// The same three targets with a slot each keep their schedule: nothing is counted late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_on_time_are_not_counted_late() {
    let slow =
        common::echo(ServerOpts { handshake_delay: Duration::from_millis(50), ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut yaml =
        "listen: 127.0.0.1:0\nshutdown_grace: 1s\ndefaults:\n  interval: 200ms\n  jitter: 0%\ntargets:\n"
            .to_owned();
    for i in 0..3 {
        yaml.push_str(&format!("  - name: ok{i}\n    url: {}\n", slow.url()));
    }
    let (running, cancel) = start_yaml(dir.path(), &yaml, Options::default()).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let m = get(running.addr, "/metrics").await.body;
    for i in 0..3 {
        let name = format!("ok{i}");
        assert_eq!(sample(&m, "wsprobe_probes_late_total", &[("target", &name)]), Some(0.0), "{name}:\n{m}");
    }
    assert!(sample(&m, "wsprobe_probe_start_lag_seconds_count", &[]).unwrap() >= 12.0);
    cancel.cancel();
    running.wait().await;
}
