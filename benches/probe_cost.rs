//! CPU per short periodic probe as the number of targets grows, for `wsprobe run` (the
//! release binary), a bare tokio-tungstenite client doing the same work on the same
//! schedule (the floor) and a Python `websockets` 17.4 client, each in a process of its
//! own, all measured over the same seconds.
//!
//! Each probe: TCP connect, upgrade, wait for the server's first message, one ping and
//! its pong, close handshake. N targets every I seconds, each target's first probe offset
//! so the N spread over one interval.
//!
//! How: this machine's speed drifts by up to 2× over minutes (a shared 2-core VM), so the
//! clients are not run one after another. For each row every selected client starts at
//! once, each against its own server (own ports on 127.0.0.1–8, own counts), and after one
//! warm-up (one interval, at least 5 s) K consecutive windows follow. At every window
//! boundary each client's own CPU is read (its process's threads'
//! `/proc/<pid>/task/*/schedstat`; the bare client is this bench started again as a child)
//! together with the probes its server saw closed. Per client the report gives the median
//! per-probe CPU over the windows and its min–max, probes done against due and failures;
//! the ratios to the bare client are the medians of the per-window ratios, since each
//! window's figures come from the same seconds. A second table lists every window.
//! wsprobe's `/metrics` is scraped just before the first window and after the last (a
//! scrape at 10,000 targets costs the daemon over half a second of CPU, so none lands in a
//! window): `wsprobe_probes_total`, failed, late and skipped are deltas between the two.
//! Each row also gives the machine's 1-minute load and its steal time over the windows.
//!
//! Environment:
//! - `WSPROBE_BENCH_ROWS`: `TARGETSxSECONDS,...` (default `200x1,1000x5,3000x15,10000x50`,
//!   200 probes/s each);
//! - `WSPROBE_BENCH_CLIENTS`: any of `wsprobe,bare,python` (default all three);
//! - `WSPROBE_BENCH_WINDOWS`: K (default 6); `WSPROBE_BENCH_SECS`: one window's length in
//!   seconds (default 10);
//! - `WSPROBE_BIN`: the daemon binary (default `target/release/wsprobe`);
//!   `WSPROBE_BENCH_RUST_LOG`: its log filter (default `info`, to a file).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

#[path = "probe_cost/clients.rs"]
mod clients;
#[path = "probe_cost/report.rs"]
mod report;

use std::time::{Duration, Instant};

use clients::{Bare, Probing, Python, Reading, Run, KINDS};
use support::fleet;
use support::MachineCpu;

#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub targets: usize,
    pub interval: u64,
}

impl Row {
    pub fn rate(&self) -> f64 {
        self.targets as f64 / self.interval as f64
    }
}

/// Every client's reading at one window boundary, with the machine's state.
#[derive(Debug, Clone)]
pub struct Mark {
    pub at: Instant,
    /// In the order of the row's clients.
    pub readings: Vec<Reading>,
    pub machine: MachineCpu,
    pub load: String,
}

/// What wsprobe's `/metrics` said just outside the windows.
#[derive(Debug)]
pub struct Scrape {
    pub body: String,
    pub took: Duration,
    /// When it returned, and the probes wsprobe's server had counted by then.
    pub at: Instant,
    pub closed: u64,
}

/// One row's measurements, for the report.
#[derive(Debug)]
pub struct Measured {
    pub row: Row,
    pub kinds: Vec<&'static str>,
    pub marks: Vec<Mark>,
    /// wsprobe only: the scrapes before and after the windows, its RSS at the end of the
    /// last window (before the closing scrape's buffer), and CPU from start to first scrape.
    pub wsprobe: Option<WsprobeExtras>,
}

#[derive(Debug)]
pub struct WsprobeExtras {
    pub before: Scrape,
    pub after: Scrape,
    pub rss_kib: u64,
    pub warmup_cpu_ns: u64,
}

/// After the opening scrape returns, before the first window: the daemon frees the
/// response and its threads go back to probing.
const SETTLE: Duration = Duration::from_secs(1);

fn main() {
    if let Some(list) = std::env::var_os(clients::BARE_CHILD) {
        clients::bare_child(std::path::Path::new(&list));
        return;
    }
    let window = Duration::from_secs(support::env_or("WSPROBE_BENCH_SECS", 10));
    let windows: usize = support::env_or("WSPROBE_BENCH_WINDOWS", 6);
    assert!(
        windows >= 1 && !window.is_zero(),
        "WSPROBE_BENCH_WINDOWS and WSPROBE_BENCH_SECS must be at least 1"
    );
    let rows = parse_rows(
        &std::env::var("WSPROBE_BENCH_ROWS").unwrap_or_else(|_| "200x1,1000x5,3000x15,10000x50".to_owned()),
    );
    let kinds = parse_clients(
        &std::env::var("WSPROBE_BENCH_CLIENTS").unwrap_or_else(|_| "wsprobe,bare,python".to_owned()),
    );
    let fd = fleet::raise_fd_limit();
    let binary = support::release_binary();
    let python = kinds.contains(&"python").then(fleet::python_websockets);
    let load_before = support::loadavg();

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-srv")
        .enable_all()
        .build()
        .expect("start the server's runtime");
    // One server per client, kept for every row: its counts are read as differences.
    let servers: Vec<_> = kinds.iter().map(|_| server_rt.block_on(fleet::start_server())).collect();
    let dirs: Vec<_> = kinds.iter().map(|_| tempfile::tempdir().expect("a temp dir")).collect();

    let mut measured = Vec::new();
    for row in &rows {
        eprintln!("probe_cost: {} targets every {}s: {}", row.targets, row.interval, kinds.join(", "));
        let mut running: Vec<Probing> = kinds
            .iter()
            .zip(&servers)
            .zip(&dirs)
            .map(|((&kind, (addrs, counts)), dir)| {
                let urls = fleet::urls(addrs, row.targets);
                let run = match kind {
                    "wsprobe" => {
                        Run::Wsprobe(clients::start_wsprobe(&binary, dir.path(), &urls, row.interval))
                    }
                    "bare" => Run::Bare(Bare::start(dir.path(), &urls, row.interval)),
                    _ => Run::Python(Python::start(
                        python.as_deref().expect("the venv was made for python"),
                        dir.path(),
                        &urls,
                        row.interval,
                    )),
                };
                Probing { kind, counts: counts.clone(), run }
            })
            .collect();
        measured.push(measure(*row, &mut running, window, windows));
        for client in running {
            client.stop();
        }
        // Let TIME_WAIT sockets and the servers settle between rows.
        std::thread::sleep(Duration::from_secs(2));
    }

    println!("## Per-probe CPU ({}; {})\n", support::today(), support::binary_version(&binary));
    println!("{}", support::machine_table());
    println!(
        "All clients at once, each against its own server; after a warm-up of one interval (≥ 5 s), {windows} consecutive windows of {} s; file limit {fd}; connections spread over 127.0.0.1–127.0.0.{}.\n",
        window.as_secs(),
        fleet::ADDRESSES
    );
    println!("{}", report::summary(&measured));
    println!("Each window (CPU per probe, probes its server counted):\n");
    println!("{}", report::windows(&measured));
    println!("Load average before / after: {load_before} / {}.", support::loadavg());
}

/// Warm-up, the opening scrape, the K windows, the closing scrape.
fn measure(row: Row, running: &mut [Probing], window: Duration, windows: usize) -> Measured {
    let started: Vec<Reading> = running.iter_mut().map(Probing::read).collect();
    std::thread::sleep(Duration::from_secs(row.interval.max(5)));
    let wsprobe_at = running.iter().position(|c| c.daemon().is_some());
    let warmup_cpu_ns = wsprobe_at.map_or(0, |i| running[i].read().cpu_ns - started[i].cpu_ns);
    let before = wsprobe_at.map(|i| scrape(&running[i]));
    if before.is_some() {
        std::thread::sleep(SETTLE);
    }

    let mut marks = vec![mark(running)];
    let t0 = marks[0].at;
    for k in 1..=windows {
        let end = t0 + window * k as u32;
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        marks.push(mark(running));
    }

    let wsprobe = wsprobe_at.zip(before).map(|(i, before)| {
        let rss_kib = running[i].daemon().map_or(0, fleet::Daemon::rss_kib);
        let after = scrape(&running[i]);
        WsprobeExtras { before, after, rss_kib, warmup_cpu_ns }
    });
    Measured { row, kinds: running.iter().map(|c| c.kind).collect(), marks, wsprobe }
}

fn mark(running: &mut [Probing]) -> Mark {
    let at = Instant::now();
    let readings = running.iter_mut().map(Probing::read).collect();
    Mark { at, readings, machine: MachineCpu::now(), load: support::loadavg_1m() }
}

fn scrape(client: &Probing) -> Scrape {
    let d = client.daemon().expect("scrape only wsprobe");
    let (body, took) = d.scrape();
    let closed = client.counts.closed.load(std::sync::atomic::Ordering::Relaxed);
    Scrape { body, took, at: Instant::now(), closed }
}

fn parse_rows(text: &str) -> Vec<Row> {
    text.split(',')
        .map(|r| {
            let (t, i) = r.split_once('x').unwrap_or_else(|| panic!("row `{r}`: write TARGETSxSECONDS"));
            let row = Row {
                targets: t.trim().parse().unwrap_or_else(|_| panic!("row `{r}`: targets must be a number")),
                interval: i.trim().parse().unwrap_or_else(|_| panic!("row `{r}`: seconds must be a number")),
            };
            assert!(row.targets > 0 && row.interval > 0, "row `{r}`: targets and seconds must be at least 1");
            row
        })
        .collect()
}

/// The selected clients, checked before anything starts, in the report's column order.
fn parse_clients(text: &str) -> Vec<&'static str> {
    let named: Vec<&str> = text.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if let Some(bad) = named.iter().find(|n| !KINDS.contains(n)) {
        panic!("WSPROBE_BENCH_CLIENTS: unknown client `{bad}` (choose from {})", KINDS.join(", "));
    }
    let kinds: Vec<&'static str> = KINDS.iter().copied().filter(|k| named.contains(k)).collect();
    assert!(!kinds.is_empty(), "WSPROBE_BENCH_CLIENTS names no client");
    kinds
}
