//! What one `/metrics` scrape costs with thousands of targets: bytes, time and CPU of the
//! text exposition, and which metric families the bytes go to.
//!
//! It registers the daemon's metrics through the library (`daemon::metrics::Metrics`),
//! creates each target's series as the supervisor does (`add_target`, a closed circuit)
//! and records one successful probe per target with the six phases of a `ws://` probe
//! (dns, connect, handshake, first_message, ping, close), then renders the exposition
//! `WSPROBE_BENCH_SCRAPES` times on this thread, whole into one string and then page by
//! page as `/metrics` sends it, reading this thread's CPU from
//! `/proc/self/task/<tid>/schedstat` and its minor page faults from its `stat`. Targets: `WSPROBE_BENCH_TARGETS` (default 5000).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use wsprobe::breaker::State;
use wsprobe::daemon::metrics::Metrics;
use wsprobe::probe::{Phase, ProbeResult};

fn main() {
    let targets: usize = support::env_or("WSPROBE_BENCH_TARGETS", 5000);
    let scrapes: usize = support::env_or("WSPROBE_BENCH_SCRAPES", 10);
    let metrics = Metrics::new().expect("the metrics register");
    for i in 0..targets {
        let name = format!("target-{i:05}");
        metrics.target.add_target(&name);
        metrics.target.circuit.set(&name, State::Closed, 1.7e9);
        let mut r = ProbeResult::new(&name);
        r.duration_seconds = 0.004;
        r.http_status = Some(101);
        r.started_at = 1.7e9;
        r.messages_received = 1;
        for (k, phase) in
            [Phase::Dns, Phase::Connect, Phase::Handshake, Phase::FirstMessage, Phase::Ping, Phase::Close]
                .into_iter()
                .enumerate()
        {
            r.phases.set(phase, 0.0002 * (k + 1) as f64);
        }
        metrics.target.probe.observe(&r);
    }
    let load_before = support::loadavg();
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse::<u32>().ok());
    let cpu = || support::threads_cpu("self").into_iter().find(|t| Some(t.tid) == tid).map_or(0, |t| t.nanos);
    // This thread's minor page faults (field 10 of its `stat`, after the `(comm)`).
    let faults = || -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        after_comm.split_whitespace().nth(7).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    // Two ways: the whole text in one string (`render`), and page by page as `/metrics`
    // sends it (`scrape`), each page dropped once written, as the server drops it once sent.
    let mut rows = Vec::new();
    let mut text = String::new();
    for mode in ["one string (`render`)", "pages (`scrape`, as `/metrics` sends it)"] {
        let (mut walls, mut cpus, mut faulted, mut bytes) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for _ in 0..scrapes {
            let (t0, c0, f0) = (Instant::now(), cpu(), faults());
            if mode.starts_with("one") {
                text = metrics.render();
                bytes = text.len();
            } else {
                bytes = metrics.scrape().map(|page| std::hint::black_box(page).len()).sum();
            }
            let (wall, c1, f1) = (t0.elapsed(), cpu(), faults());
            walls.push(wall.as_secs_f64() * 1000.0);
            cpus.push((c1 - c0) as f64 / 1e6);
            faulted.push(f1.saturating_sub(f0) as f64);
        }
        rows.push((mode, walls, cpus, faulted, bytes));
    }
    let mut by_family: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or("");
        let family = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        let e = by_family.entry(family).or_default();
        e.0 += line.len() + 1;
        e.1 += 1;
    }
    let mut families: Vec<_> = by_family.into_iter().collect();
    families.sort_by_key(|f| std::cmp::Reverse(f.1 .0));

    println!(
        "## /metrics exposition, {targets} targets ({} {})\n",
        support::today(),
        env!("CARGO_PKG_VERSION")
    );
    println!("{}", support::machine_table());
    println!(
        "| targets | bytes | lines | render wall median / worst | render CPU median / worst | page faults median | scrapes | how |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (mode, walls, cpus, faulted, bytes) in &rows {
        println!(
            "| {targets} | {:.1} MB | {} | {:.0} ms / {:.0} ms | {:.0} ms / {:.0} ms | {:.0} | {scrapes} | {mode} |",
            *bytes as f64 / 1e6,
            text.lines().count(),
            support::percentile(walls, 50.0),
            support::percentile(walls, 100.0),
            support::percentile(cpus, 50.0),
            support::percentile(cpus, 100.0),
            support::percentile(faulted, 50.0),
        );
    }
    println!("\n| family | share of bytes | bytes | lines |\n|---|---|---|---|");
    for (name, (b, l)) in families.iter().take(6) {
        println!(
            "| `{name}` | {:.0} % | {:.1} MB | {l} |",
            *b as f64 * 100.0 / text.len() as f64,
            *b as f64 / 1e6
        );
    }
    println!("\nLoad average before / after: {load_before} / {}.", support::loadavg());
}
