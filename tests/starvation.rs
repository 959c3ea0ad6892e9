//! Hanging targets cannot starve healthy ones: probe slots are not shared by default, and
//! a configured cap that runs out is reported, not silent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::daemon::start_yaml;
use common::http::{get, sample};
use common::poll::poll;
use common::ServerOpts;
use wsprobe::daemon::Options;

const INTERVAL: Duration = Duration::from_millis(200);

/// `hanging` targets whose upgrade never gets an answer (2 s handshake timeout) and
/// `healthy` echo targets, all probed every 200 ms without jitter.
fn config(hanging: usize, healthy: usize, blackhole: &str, echo: &str, extra: &str) -> String {
    let mut yaml = format!("listen: 127.0.0.1:0\nshutdown_grace: 1s\n{extra}defaults:\n  interval: 200ms\n  jitter: 0%\n  timeouts: {{ handshake: 2s }}\ntargets:\n");
    for i in 0..hanging {
        yaml.push_str(&format!("  - name: hang{i}\n    url: {blackhole}\n"));
    }
    for i in 0..healthy {
        yaml.push_str(&format!("  - name: ok{i}\n    url: {echo}\n"));
    }
    yaml
}

/// Successful probes of the healthy targets `ok0..okN`, summed.
async fn healthy_successes(addr: SocketAddr, healthy: usize) -> f64 {
    let m = get(addr, "/metrics").await.body;
    (0..healthy)
        .map(|i| {
            let name = format!("ok{i}");
            sample(&m, "wsprobe_probes_total", &[("target", &name), ("result", "success")]).unwrap_or(0.0)
        })
        .sum()
}

/// 32 hanging + 20 healthy targets, the default configuration otherwise (no cap): over a
/// 3 s window the healthy targets keep ≥ 90 % of their 5 probes/s each. With the old
/// default pool of 32 shared slots the hanging probes held them all and the healthy
/// rate fell to a few percent of that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_targets_do_not_slow_healthy_ones() {
    const HANGING: usize = 32;
    const HEALTHY: usize = 20;
    let blackhole = common::blackhole().await;
    let echo = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(HANGING, HEALTHY, &blackhole.url(), &echo.url(), "");
    let (running, cancel) = start_yaml(dir.path(), &yaml, Options::default()).await;

    // Let every hanging target get its first probe stuck, then measure.
    assert!(
        blackhole.wait_connections(HANGING, Duration::from_secs(3)).await,
        "every hanging probe connected"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let window = Duration::from_secs(3);
    let (t0, before) = (Instant::now(), healthy_successes(running.addr, HEALTHY).await);
    tokio::time::sleep(window).await;
    let (elapsed, after) = (t0.elapsed(), healthy_successes(running.addr, HEALTHY).await);

    let expected = HEALTHY as f64 * elapsed.as_secs_f64() / INTERVAL.as_secs_f64();
    let got = after - before;
    eprintln!("healthy probes in {elapsed:?}: {got} of {expected:.0} expected");
    assert!(
        got >= 0.9 * expected,
        "healthy targets were starved: {got} probes, expected about {expected:.0}"
    );
    let m = get(running.addr, "/metrics").await.body;
    assert_eq!(sample(&m, "wsprobe_probe_slots_exhausted_total", &[]), Some(0.0), "no cap, so no wait");
    cancel.cancel();
    running.wait().await;
}

/// An explicit cap smaller than the hanging targets: probes wait for slots, and that is
/// visible in both counters and on `/readyz`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_cap_is_reported() {
    let blackhole = common::blackhole().await;
    let echo = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(4, 2, &blackhole.url(), &echo.url(), "max_concurrent_probes: 4\n");
    let (running, cancel) = start_yaml(dir.path(), &yaml, Options::default()).await;
    let addr = running.addr;

    let reported = poll(Duration::from_secs(5), Duration::from_millis(50), || async {
        let m = get(addr, "/metrics").await.body;
        let delayed = sample(&m, "wsprobe_probes_delayed_total", &[("target", "ok0")]).unwrap_or(0.0);
        let exhausted = sample(&m, "wsprobe_probe_slots_exhausted_total", &[]).unwrap_or(0.0);
        if delayed >= 1.0 && exhausted >= delayed {
            Ok(delayed)
        } else {
            Err(m)
        }
    });
    let delayed = reported.await.unwrap_or_else(|m| panic!("no delay was reported:\n{m}"));
    assert!(delayed >= 1.0);
    let ready = get(addr, "/readyz").await.body;
    assert!(
        ready.contains("found every max_concurrent_probes slot busy and started late"),
        "/readyz says why probes are late: {ready}"
    );
    cancel.cancel();
    running.wait().await;
}
