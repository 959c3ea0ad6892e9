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

/// Many targets spread over one interval keep their shares of it however long starting
/// them all takes: each target's first probe comes at its offset from one instant, so
/// the last target's first probe still falls within the first interval. Offsets counted
/// from each task's own start stretched the spread by the time it took to start them all,
/// which a server then sees as a bunch where the last targets' probes meet the first's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_spread_keeps_its_shares_of_the_interval() {
    const TARGETS: usize = 2000;
    const INTERVAL: Duration = Duration::from_secs(4);
    // A server that notes when each path first asks for an upgrade, then hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>> =
        Default::default();
    let seen = first.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let at = std::time::Instant::now();
            let seen = seen.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt as _;
                let mut buf = vec![0u8; 1024];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                if let Some(path) = head.split_whitespace().nth(1) {
                    seen.lock().unwrap().entry(path.to_owned()).or_insert(at);
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = format!(
        "listen: 127.0.0.1:0\nshutdown_grace: 1s\ndefaults:\n  interval: {}s\n  jitter: 0%\n  server_speaks_first: false\ntargets:\n",
        INTERVAL.as_secs()
    );
    for i in 0..TARGETS {
        yaml.push_str(&format!("  - name: t{i}\n    url: ws://{addr}/t{i}\n"));
    }
    let (running, cancel) = start_yaml(dir.path(), &yaml, Options::default()).await;
    let all_seen = poll(INTERVAL * 3, Duration::from_millis(100), || async {
        let n = first.lock().unwrap().len();
        if n == TARGETS {
            Ok(())
        } else {
            Err(n)
        }
    });
    all_seen.await.unwrap_or_else(|n| panic!("only {n} of {TARGETS} targets were probed"));
    cancel.cancel();
    running.wait().await;
    let first = first.lock().unwrap();
    let at = |i: usize| first[&format!("/t{i}")];
    let start = (0..TARGETS).map(at).min().unwrap();
    // Where the last target's first probe fell, against where its share puts it.
    let last = at(TARGETS - 1) - start;
    let share = INTERVAL.mul_f64((TARGETS - 1) as f64 / TARGETS as f64);
    let drift = last.as_secs_f64() - share.as_secs_f64();
    eprintln!(
        "the last target's first probe: {last:?} after the first, its share {share:?}, drift {drift:.3} s"
    );
    assert!(drift.abs() < 0.1, "the last target's first probe came {drift:.3} s off its share");
}
