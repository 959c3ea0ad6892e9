//! Idle cost of the daemon: the release binary probing 20 targets every 15 s.
//!
//! Starts an in-process WebSocket server, writes a configuration with 20 targets pointing
//! at it, runs `target/release/wsprobe run --config FILE` as a child process and samples
//! its `/proc/<pid>/stat` (CPU) and `/proc/<pid>/status` (RSS) over a window that starts
//! after a warm-up, so the first, spread-out round has run. Then sends SIGTERM and checks
//! the daemon exits 0 within a few seconds.
//!
//!     cargo build --release && cargo bench --bench idle
//!
//! `WSPROBE_BENCH_SECS` (default 60) is the measurement window, `WSPROBE_BENCH_WARMUP_SECS`
//! (default 15) the warm-up before it, `WSPROBE_BENCH_INTERVAL_SECS` (default 15) the
//! targets' interval (3600: no probe in the window, the fixed cost; 1: the marginal cost
//! of a probe), `WSPROBE_BENCH_RUST_LOG` the daemon's `RUST_LOG` (unset: its default, info),
//! `WSPROBE_BIN` overrides the binary.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{
    clk_tck, cpu_between, env_or, machine_table, release_binary, stat_ticks, status_kib, threads_cpu, today,
    ThreadCpu,
};

const TARGETS: usize = 20;
/// The probe interval of every target unless `WSPROBE_BENCH_INTERVAL_SECS` says otherwise.
const INTERVAL_SECS: u64 = 15;
/// The warm-up: long enough for the first round, spread over one 15 s interval.
const WARMUP_SECS: u64 = 15;
/// How often the window's progress (RSS) is printed to stderr.
const TRACE_EVERY: Duration = Duration::from_secs(15);
/// How long the daemon may take to exit after SIGTERM before the bench fails.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(10);

/// One reading of the child.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    ticks: u64,
    threads: Vec<ThreadCpu>,
    rss_kib: u64,
    probes_ok: u64,
    probes_failed: u64,
}

fn main() {
    let window = Duration::from_secs(env_or("WSPROBE_BENCH_SECS", 60));
    let interval: u64 = env_or("WSPROBE_BENCH_INTERVAL_SECS", INTERVAL_SECS);
    assert!(interval > 0, "WSPROBE_BENCH_INTERVAL_SECS must be positive");
    let warmup = Duration::from_secs(env_or("WSPROBE_BENCH_WARMUP_SECS", WARMUP_SECS));
    let binary = release_binary();
    let tck = clk_tck();
    let load_before = support::loadavg();

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-srv")
        .enable_all()
        .build()
        .expect("start the bench server's runtime");
    let server = server_rt.block_on(support::start_accept_server());

    let dir = tempfile::tempdir().expect("create a temp dir");
    let config = dir.path().join("idle.yaml");
    fs::write(&config, config_yaml(server.addr, interval)).expect("write the configuration");
    let log_path = dir.path().join("wsprobe.log");
    let log_file = fs::File::create(&log_path).expect("create the log file");

    eprintln!(
        "idle: {} run --config {} ({TARGETS} targets every {interval}s; warm-up {}s, window {}s)",
        binary.display(),
        config.display(),
        warmup.as_secs(),
        window.as_secs()
    );
    let spawned = Instant::now();
    let mut command = Command::new(&binary);
    command.arg("run").arg("--config").arg(&config).env_remove("RUST_LOG");
    // The default (info) logs one line per probe; `warn` shows what logging costs. The
    // daemon module stays at info: its start-up line says where /metrics is.
    if let Ok(filter) = std::env::var("WSPROBE_BENCH_RUST_LOG") {
        command.env("RUST_LOG", format!("{filter},wsprobe::daemon=info"));
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let pid = child.id();
    let metrics = wait_for_listen_addr(&mut child, &log_path);
    let startup = spawned.elapsed();

    std::thread::sleep(warmup.saturating_sub(spawned.elapsed()));
    let first = sample(&mut child, pid, metrics, &log_path);
    let mut peak_rss = first.rss_kib;
    let end = first.at + window;
    let mut next_trace = first.at + TRACE_EVERY;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())));
        ensure_running(&mut child, &log_path);
        let rss = status_kib(pid, "VmRSS").unwrap_or(0);
        peak_rss = peak_rss.max(rss);
        if Instant::now() >= next_trace {
            next_trace += TRACE_EVERY;
            eprintln!(
                "idle: {:>4.0} s into the window: VmRSS {}",
                first.at.elapsed().as_secs_f64(),
                mib(rss)
            );
        }
    }
    let last = sample(&mut child, pid, metrics, &log_path);
    let hwm = status_kib(pid, "VmHWM").unwrap_or(0);
    let total_ticks = last.ticks;

    let (status, shutdown) = terminate(&mut child, &log_path);
    assert!(status.success(), "wsprobe exited with {status} after SIGTERM; log: {}", log_path.display());

    let elapsed = last.at - first.at;
    let tick_secs = (last.ticks - first.ticks) as f64 / tck as f64;
    let (_, nanos) = cpu_between(&first.threads, &last.threads, |_| true);
    let cpu_secs = nanos as f64 / 1e9;
    let cpu_pct = 100.0 * cpu_secs / elapsed.as_secs_f64();
    let tick_pct = 100.0 * tick_secs / elapsed.as_secs_f64();
    let probes = last.probes_ok + last.probes_failed - first.probes_ok - first.probes_failed;
    let failed = last.probes_failed - first.probes_failed;
    let per_probe = if probes > 0 {
        format!("{:.2} ms", 1000.0 * cpu_secs / probes as f64)
    } else {
        "– (no probe)".to_owned()
    };
    let expected = TARGETS as f64 * elapsed.as_secs_f64() / interval as f64;
    let connections = server.log.connections.load(Ordering::Relaxed);

    let mut out = String::new();
    writeln!(out, "## Idle cost ({})\n", today()).unwrap();
    out.push_str(&machine_table());
    writeln!(
        out,
        "\nBinary: `{}` ({}). Load average before / after: {load_before} / {}.\n",
        binary.display(),
        support::binary_version(&binary),
        support::loadavg()
    )
    .unwrap();
    writeln!(
        out,
        "| targets | interval | window | CPU (% of one core) | CPU per probe | RSS at window start | RSS at end | RSS peak in window | VmHWM | probes in window (expected ≈{expected:.0}) | failed | startup to listening | shutdown after SIGTERM |"
    )
    .unwrap();
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|").unwrap();
    writeln!(
        out,
        "| {TARGETS} | {interval} s ±10 % | {:.1} s after {} s warm-up | {cpu_pct:.3} % ({:.1} ms; `stat`: {tick_pct:.3} %, {} ticks of 1/{tck} s) | {per_probe} | {} | {} | {} | {} | {probes} | {failed} | {} ms | {} ms, exit 0 |",
        elapsed.as_secs_f64(),
        warmup.as_secs(),
        cpu_secs * 1000.0,
        last.ticks - first.ticks,
        mib(first.rss_kib),
        mib(last.rss_kib),
        mib(peak_rss.max(last.rss_kib)),
        mib(hwm),
        startup.as_millis(),
        shutdown.as_millis(),
    )
    .unwrap();
    writeln!(
        out,
        "\nWhole run: {:.2} s of CPU since the process started ({total_ticks} ticks), {} probes completed, {connections} connections accepted by the bench server.",
        total_ticks as f64 / tck as f64,
        last.probes_ok + last.probes_failed,
    )
    .unwrap();
    println!("{out}");
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn config_yaml(server: SocketAddr, interval_secs: u64) -> String {
    let mut yaml = format!("listen: 127.0.0.1:0\ndefaults:\n  interval: {interval_secs}s\ntargets:\n");
    for i in 1..=TARGETS {
        writeln!(yaml, "  - name: t{i:02}\n    url: ws://{server}/t{i:02}").unwrap();
    }
    yaml
}

/// Waits for the daemon's `Serving /metrics and the API.` line and returns its `addr`.
fn wait_for_listen_addr(child: &mut Child, log: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        ensure_running(child, log);
        let text = fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("Serving /metrics and the API.")) {
            if let Some(addr) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .and_then(|a| a.trim_matches('"').parse().ok())
            {
                return addr;
            }
            panic!("cannot find addr=... in the log line `{line}`");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!(
        "wsprobe did not log its listen address within 10 s; log:\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

fn ensure_running(child: &mut Child, log: &Path) {
    if let Ok(Some(status)) = child.try_wait() {
        panic!("wsprobe exited early with {status}; log:\n{}", fs::read_to_string(log).unwrap_or_default());
    }
}

fn sample(child: &mut Child, pid: u32, metrics: SocketAddr, log: &Path) -> Sample {
    ensure_running(child, log);
    let at = Instant::now();
    let ticks = stat_ticks(Path::new(&format!("/proc/{pid}/stat"))).expect("read /proc/<pid>/stat");
    let threads = threads_cpu(&pid.to_string());
    let rss_kib = status_kib(pid, "VmRSS").expect("read VmRSS");
    let (probes_ok, probes_failed) = probe_counts(&scrape(metrics));
    Sample { at, ticks, threads, rss_kib, probes_ok, probes_failed }
}

/// `GET /metrics` over a plain blocking socket.
fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("set a read timeout");
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .expect("send the request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read /metrics");
    assert!(body.starts_with("HTTP/1.1 200"), "GET /metrics answered: {}", body.lines().next().unwrap_or(""));
    body
}

/// Sums `wsprobe_probes_total` over targets: (success, failure).
fn probe_counts(metrics: &str) -> (u64, u64) {
    let (mut ok, mut failed) = (0.0, 0.0);
    for line in metrics.lines().filter(|l| l.starts_with("wsprobe_probes_total{")) {
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        if line.contains(r#"result="success""#) {
            ok += value;
        } else {
            failed += value;
        }
    }
    (ok as u64, failed as u64)
}

/// Sends SIGTERM and waits for the exit; returns the status and how long it took.
fn terminate(child: &mut Child, log: &Path) -> (ExitStatus, Duration) {
    let pid = child.id().to_string();
    let start = Instant::now();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
    assert!(sent.success(), "kill -TERM {pid} failed");
    while start.elapsed() < SHUTDOWN_LIMIT {
        if let Some(status) = child.try_wait().expect("wait for wsprobe") {
            return (status, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "wsprobe did not exit within {SHUTDOWN_LIMIT:?} of SIGTERM; log:\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}
