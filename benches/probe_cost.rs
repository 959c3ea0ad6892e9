//! CPU per short periodic probe as the number of targets grows, side by side in one run:
//! `wsprobe run` (the release binary), a bare tokio-tungstenite client doing the same
//! work on the same schedule (the floor), and a Python `websockets` 17.4 client.
//!
//! Each probe: TCP connect, upgrade, wait for the server's first message, one ping and
//! its pong, close handshake. N targets every I seconds, each target's first probe offset
//! so the N spread over one interval. For each row and client: a warm-up of one interval
//! (at least 5 s), then a window of `WSPROBE_BENCH_SECS` (default 20). CPU is the
//! client's own, from `/proc/<pid>/task/*/schedstat` (and `/proc/<pid>/stat` ticks);
//! probes are counted by the server (sessions the client closed), and for wsprobe also
//! from `wsprobe_probes_total`. Rows: `WSPROBE_BENCH_ROWS` (default
//! `200x1,1000x5,3000x15,10000x50`: targets × interval in seconds, 200 probes/s each).
//! Columns: `WSPROBE_BENCH_CLIENTS` (default `wsprobe,bare,python`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::fmt::Write as _;
use std::fs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::fleet::{self, Daemon};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Copy)]
struct Row {
    targets: usize,
    interval: u64,
}

#[derive(Debug, Default)]
struct Cell {
    cpu_ns: u64,
    ticks: u64,
    probes: u64,
    window: f64,
    note: String,
}

impl Cell {
    fn per_probe_ms(&self) -> f64 {
        if self.probes == 0 {
            return f64::NAN;
        }
        self.cpu_ns as f64 / 1e6 / self.probes as f64
    }

    fn show(&self, due: f64) -> String {
        format!(
            "{:.3} ms ({:.0} % of a core, `stat`: {} ticks; {} of {:.0} due done{})",
            self.per_probe_ms(),
            self.cpu_ns as f64 / 1e9 / self.window * 100.0,
            self.ticks,
            self.probes,
            due,
            self.note
        )
    }
}

fn main() {
    let window = Duration::from_secs(support::env_or("WSPROBE_BENCH_SECS", 20));
    let rows: Vec<Row> = std::env::var("WSPROBE_BENCH_ROWS")
        .unwrap_or_else(|_| "200x1,1000x5,3000x15,10000x50".to_owned())
        .split(',')
        .map(|r| {
            let (t, i) = r.split_once('x').unwrap_or_else(|| panic!("row `{r}`: write TARGETSxSECONDS"));
            Row { targets: t.trim().parse().expect("targets"), interval: i.trim().parse().expect("interval") }
        })
        .collect();
    let clients = std::env::var("WSPROBE_BENCH_CLIENTS").unwrap_or_else(|_| "wsprobe,bare,python".to_owned());
    let fd = fleet::raise_fd_limit();
    let binary = support::release_binary();
    let python = clients.contains("python").then(fleet::python_websockets);
    let load_before = support::loadavg();

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-srv")
        .enable_all()
        .build()
        .expect("start the server's runtime");
    let (addrs, counts) = server_rt.block_on(fleet::start_server());
    let dir = tempfile::tempdir().expect("a temp dir");

    let mut out = String::new();
    let _ = writeln!(out, "| targets, interval (probes/s) | wsprobe CPU per probe | bare tokio-tungstenite | Python websockets 17.4 | wsprobe ÷ bare | wsprobe late / skipped | /metrics bytes, scrape |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for row in &rows {
        let rate = row.targets as f64 / row.interval as f64;
        let warmup = Duration::from_secs(row.interval.max(5));
        let due = rate * window.as_secs_f64();
        let urls = fleet::urls(&addrs, row.targets);
        let mut cells: Vec<(String, Cell)> = Vec::new();
        let (mut late, mut scrape) = ("–".to_owned(), "–".to_owned());
        for client in clients.split(',') {
            eprintln!("probe_cost: {} targets every {}s: {client}", row.targets, row.interval);
            let cell = match client {
                "wsprobe" => {
                    let (cell, l, s) = run_wsprobe(&binary, dir.path(), &urls, *row, warmup, window, &counts);
                    (late, scrape) = (l, s);
                    cell
                }
                "bare" => run_bare(&urls, *row, warmup, window, &counts),
                "python" => run_python(
                    python.as_deref().expect("python"),
                    dir.path(),
                    &urls,
                    *row,
                    warmup,
                    window,
                    &counts,
                ),
                other => panic!("unknown client `{other}`"),
            };
            cells.push((client.to_owned(), cell));
            // Let TIME_WAIT sockets and the server settle between clients.
            std::thread::sleep(Duration::from_secs(2));
        }
        let get = |name: &str| cells.iter().find(|(n, _)| n == name).map(|(_, c)| c);
        let show = |name: &str| get(name).map_or("–".to_owned(), |c| c.show(due));
        let ratio = match (get("wsprobe"), get("bare")) {
            (Some(w), Some(b)) => format!("{:.1}×", w.per_probe_ms() / b.per_probe_ms()),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} at {} s ({rate:.0}/s) | {} | {} | {} | {ratio} | {late} | {scrape} |",
            row.targets,
            row.interval,
            show("wsprobe"),
            show("bare"),
            show("python")
        );
    }
    println!("## Per-probe CPU ({}; {})\n", support::today(), support::binary_version(&binary));
    println!("{}", support::machine_table());
    println!("Window {} s after a warm-up of one interval (≥ 5 s); file limit {fd}; connections spread over 127.0.0.1–127.0.0.{}.\n", window.as_secs(), fleet::ADDRESSES);
    println!("{out}");
    println!("Load average before / after: {load_before} / {}.", support::loadavg());
}

fn yaml(urls: &[String], interval: u64) -> String {
    let mut y = format!("listen: 127.0.0.1:0\nshutdown_grace: 5s\ndefaults:\n  interval: {interval}s\n  jitter: 0%\ntargets:\n");
    for (i, u) in urls.iter().enumerate() {
        let _ = writeln!(y, "  - name: t{i:05}\n    url: {u}");
    }
    y
}

fn run_wsprobe(
    binary: &std::path::Path,
    dir: &std::path::Path,
    urls: &[String],
    row: Row,
    warmup: Duration,
    window: Duration,
    counts: &fleet::Counts,
) -> (Cell, String, String) {
    let config = dir.join("probe_cost.yaml");
    fs::write(&config, yaml(urls, row.interval)).expect("write the configuration");
    let filter = std::env::var("WSPROBE_BENCH_RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let mut d = Daemon::start(binary, &config, dir, &filter);
    let start_cpu = d.cpu();
    std::thread::sleep(warmup);
    d.ensure_running();
    let (before, _) = d.scrape();
    let (c0, closed0, t0) = (d.cpu(), counts.closed.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(window);
    let (c1, closed1, elapsed) = (d.cpu(), counts.closed.load(Ordering::Relaxed), t0.elapsed());
    let (after, took) = d.scrape();
    d.ensure_running();
    let total = |t: &str| fleet::sum_samples(t, "wsprobe_probes_total", None);
    let counted = total(&after) - total(&before);
    let late = if after.contains("wsprobe_probes_late_total") {
        let l = fleet::sum_samples(&after, "wsprobe_probes_late_total", None)
            - fleet::sum_samples(&before, "wsprobe_probes_late_total", None);
        format!("{l:.0}")
    } else {
        "(no metric)".to_owned()
    };
    let skipped = fleet::sum_samples(&after, "wsprobe_probes_skipped_total", None)
        - fleet::sum_samples(&before, "wsprobe_probes_skipped_total", None);
    let failed = fleet::sum_samples(&after, "wsprobe_probes_total", Some("result=\"failure\""))
        - fleet::sum_samples(&before, "wsprobe_probes_total", Some("result=\"failure\""));
    let startup_cpu_s = (c0.0 - start_cpu.0) as f64 / 1e9;
    let note = format!(
        "; {counted:.0} in wsprobe_probes_total, {failed:.0} failed; {:.1} s of CPU in the warm-up; RSS {:.0} MiB",
        startup_cpu_s,
        d.rss_kib() as f64 / 1024.0
    );
    d.stop(Duration::from_secs(15));
    let cell = Cell {
        cpu_ns: c1.0 - c0.0,
        ticks: c1.1 - c0.1,
        probes: closed1 - closed0,
        window: elapsed.as_secs_f64(),
        note,
    };
    let scrape = format!("{:.1} MB, {:.0} ms", after.len() as f64 / 1e6, took.as_secs_f64() * 1000.0);
    (cell, format!("{late} / {skipped:.0}"), scrape)
}

/// The floor: the same probe with tokio-tungstenite and nothing else, one task per target.
fn run_bare(urls: &[String], row: Row, warmup: Duration, window: Duration, counts: &fleet::Counts) -> Cell {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bare-client")
        .enable_all()
        .build()
        .expect("the bare client's runtime");
    let failures = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let interval = Duration::from_secs(row.interval);
    for (i, url) in urls.iter().enumerate() {
        let (url, failures, stop) = (url.clone(), failures.clone(), stop.clone());
        let offset = interval.mul_f64(i as f64 / urls.len() as f64);
        rt.spawn(async move {
            let mut next = tokio::time::Instant::now() + offset;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep_until(next) => {}
                }
                if bare_probe(&url).await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                next += interval;
            }
        });
    }
    let mine = |t: &str| t == "bare-client";
    std::thread::sleep(warmup);
    let (b, closed0, t0) =
        (support::threads_cpu("self"), counts.closed.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(window);
    let (a, closed1, elapsed) =
        (support::threads_cpu("self"), counts.closed.load(Ordering::Relaxed), t0.elapsed());
    stop.cancel();
    rt.shutdown_timeout(Duration::from_secs(5));
    let (ticks, ns) = support::cpu_between(&b, &a, mine);
    let note = format!("; {} failed", failures.load(Ordering::Relaxed));
    Cell { cpu_ns: ns, ticks, probes: closed1 - closed0, window: elapsed.as_secs_f64(), note }
}

async fn bare_probe(url: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let host = url.trim_start_matches("ws://").split('/').next().unwrap_or("");
    let tcp = tokio::net::TcpStream::connect(host).await?;
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await?;
    let _first = ws.next().await.ok_or("closed before the first message")??;
    ws.send(Message::Ping(Vec::from(*b"bench").into())).await?;
    loop {
        match ws.next().await.ok_or("closed before the pong")?? {
            Message::Pong(_) => break,
            _ => continue,
        }
    }
    ws.close(None).await?;
    while let Some(m) = ws.next().await {
        m?;
    }
    Ok(())
}

const PYTHON_PROBES: &str = r#"
import asyncio, sys, time
from websockets.asyncio.client import connect

URLS = __URLS__
INTERVAL = __INTERVAL__

async def probe(url):
    async with connect(url, compression=None, open_timeout=10, ping_interval=None, max_size=2**20) as ws:
        await ws.recv()
        pong = await ws.ping()
        await pong

async def target(i, url, start):
    nxt = start + INTERVAL * i / len(URLS)
    while True:
        await asyncio.sleep(max(0, nxt - time.monotonic()))
        try:
            await probe(url)
        except Exception as e:
            print("failed:", e, file=sys.stderr)
        nxt += INTERVAL

async def main():
    start = time.monotonic()
    await asyncio.gather(*(target(i, u, start) for i, u in enumerate(URLS)))

asyncio.run(main())
"#;

fn run_python(
    python: &std::path::Path,
    dir: &std::path::Path,
    urls: &[String],
    row: Row,
    warmup: Duration,
    window: Duration,
    counts: &fleet::Counts,
) -> Cell {
    let body = PYTHON_PROBES
        .replace("__URLS__", &fleet::python_list(urls))
        .replace("__INTERVAL__", &row.interval.to_string());
    let script = fleet::write_script(dir, "probes.py", &body);
    let err = fs::File::create(dir.join("python.err")).expect("the Python log");
    let mut child =
        std::process::Command::new(python).arg(&script).stderr(err).spawn().expect("start the Python client");
    let pid = child.id();
    std::thread::sleep(warmup);
    let (c0, closed0, t0) = (fleet::process_cpu(pid), counts.closed.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(window);
    let (c1, closed1, elapsed) =
        (fleet::process_cpu(pid), counts.closed.load(Ordering::Relaxed), t0.elapsed());
    let _ = child.kill();
    let _ = child.wait();
    let failed = fs::read_to_string(dir.join("python.err"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("failed:"))
        .count();
    let note = format!("; {failed} failed");
    Cell {
        cpu_ns: c1.0 - c0.0,
        ticks: c1.1 - c0.1,
        probes: closed1 - closed0,
        window: elapsed.as_secs_f64(),
        note,
    }
}
