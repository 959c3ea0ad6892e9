//! Probe overhead: what the prober adds on top of what the server makes it wait for.
//!
//! Drives `wsprobe::probe::Prober` directly against in-process servers whose delays are
//! known: (a) none, (b) 50 ms before the 101, (c) 50 ms before the first message, (d) the
//! same as (a) over TLS. For each case N sequential probes; per phase the median and p99
//! of (measured − injected). Then the CPU time one probe costs, from
//! `/proc/self/task/*/{schedstat,stat}`, split between the prober's threads and the
//! server's, next to (a′): the same session done with tokio-tungstenite alone, the floor.
//!
//!     cargo bench --bench overhead
//!
//! `WSPROBE_BENCH_N` (default 200) probes per case, `WSPROBE_BENCH_CPU_PROBES` (default
//! 2000) probes for the CPU measurement (clock ticks are 10 ms: many probes are needed).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_util::sync::CancellationToken;
use wsprobe::probe::{Phase, ProbeResult, Prober};

use support::{
    clk_tck, cpu_between, env_or, machine_table, percentile, stat_ticks, threads_cpu, today, BenchServer,
    ServerOpts,
};

const WARMUP: usize = 20;
const DELAY: Duration = Duration::from_millis(50);
const SERVER_THREADS: &str = "bench-srv";
const CLIENT_THREADS: &str = "bench-cli";
/// The CPU measurement alternates its workloads this many times.
const CPU_ROUNDS: usize = 4;
const BASELINE: &str = "(a′) bare tokio-tungstenite, as (a)";
const BASELINE_SMALL_BUFFER: &str = "(a″) as (a′), `read_buffer_size` 4 KiB";
/// tungstenite zero-fills its read buffer (128 KiB by default) before every read; a probe's
/// frames are small, so (a″) shows what a smaller buffer saves.
const SMALL_READ_BUFFER: usize = 4 * 1024;

/// Phases in report order; `step` is unused by a probe without steps.
const PHASES: [Phase; 7] = [
    Phase::Dns,
    Phase::Connect,
    Phase::Tls,
    Phase::Handshake,
    Phase::FirstMessage,
    Phase::Ping,
    Phase::Close,
];

/// How a summary row derives its value (seconds) from one probe.
type RowValue = fn(&Case, &ProbeResult) -> f64;

#[derive(Debug, Clone, Copy)]
struct Case {
    label: &'static str,
    tls: bool,
    handshake_delay: Duration,
    first_message_delay: Duration,
}

impl Case {
    fn injected(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Handshake => self.handshake_delay,
            Phase::FirstMessage => self.first_message_delay,
            _ => Duration::ZERO,
        }
    }

    fn injected_total(&self) -> Duration {
        self.handshake_delay + self.first_message_delay
    }
}

const CASES: [Case; 4] = [
    Case {
        label: "(a) ws",
        tls: false,
        handshake_delay: Duration::ZERO,
        first_message_delay: Duration::ZERO,
    },
    Case {
        label: "(b) ws, handshake +50 ms",
        tls: false,
        handshake_delay: DELAY,
        first_message_delay: Duration::ZERO,
    },
    Case {
        label: "(c) ws, first message +50 ms",
        tls: false,
        handshake_delay: Duration::ZERO,
        first_message_delay: DELAY,
    },
    Case {
        label: "(d) wss",
        tls: true,
        handshake_delay: Duration::ZERO,
        first_message_delay: Duration::ZERO,
    },
];

#[derive(Debug)]
struct CaseRun {
    results: Vec<ProbeResult>,
    handshake_sleeps: Vec<Duration>,
    first_message_sleeps: Vec<Duration>,
    wall: Duration,
}

#[derive(Debug)]
struct CpuRun {
    label: &'static str,
    probes: usize,
    wall: Duration,
    /// Each probe's duration, seconds.
    durations: Vec<f64>,
    /// (ticks, ns) of the prober's threads.
    client: (u64, u64),
    /// (ticks, ns) of the server's threads.
    server: (u64, u64),
    process_ticks: u64,
}

impl CpuRun {
    fn empty(label: &'static str) -> Self {
        Self {
            label,
            probes: 0,
            wall: Duration::ZERO,
            durations: Vec::new(),
            client: (0, 0),
            server: (0, 0),
            process_ticks: 0,
        }
    }

    fn add(&mut self, other: CpuRun) {
        self.probes += other.probes;
        self.wall += other.wall;
        self.durations.extend(other.durations);
        self.client = (self.client.0 + other.client.0, self.client.1 + other.client.1);
        self.server = (self.server.0 + other.server.0, self.server.1 + other.server.1);
        self.process_ticks += other.process_ticks;
    }
}

/// Everything a case needs that outlives one run: runtimes, certificate, temp files.
struct Rig {
    server_rt: Runtime,
    client_rt: Runtime,
    tls: Arc<rustls::ServerConfig>,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn main() {
    let n: usize = env_or("WSPROBE_BENCH_N", 200);
    let cpu_n: usize = env_or("WSPROBE_BENCH_CPU_PROBES", 2000);
    assert!(n > 0 && cpu_n > 0, "WSPROBE_BENCH_N and WSPROBE_BENCH_CPU_PROBES must be positive");

    let dir = tempfile::tempdir().expect("create a temp dir");
    let (tls, ca_pem) = support::self_signed_tls();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write ca.pem");
    let rig = Rig {
        // The server gets its own thread so its CPU time can be told apart from the prober's.
        server_rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(SERVER_THREADS)
            .enable_all()
            .build()
            .expect("start the server runtime"),
        // The prober runs like in the daemon: spawned on a multi-threaded runtime.
        client_rt: tokio::runtime::Builder::new_multi_thread()
            .thread_name(CLIENT_THREADS)
            .enable_all()
            .build()
            .expect("start the client runtime"),
        tls,
        ca_file,
        _dir: dir,
    };

    let load_before = support::loadavg();
    let mut runs = Vec::new();
    for case in CASES {
        eprintln!("overhead: {} — {WARMUP} warm-up + {n} probes", case.label);
        runs.push(run_case(&rig, case, n));
    }
    eprintln!(
        "overhead: CPU of (a), (a′), (a″), (d) — {cpu_n} probes each in {CPU_ROUNDS} interleaved rounds"
    );
    let cpu = cpu_runs(&rig, cpu_n);
    let mut out = report(n, &runs, &cpu);
    writeln!(out, "\nLoad average before / after: {load_before} / {}.", support::loadavg()).unwrap();
    println!("{out}");
}

fn start_server(rig: &Rig, case: Case) -> BenchServer {
    let opts = ServerOpts {
        handshake_delay: case.handshake_delay,
        first_message_delay: case.first_message_delay,
        tls: case.tls.then(|| rig.tls.clone()),
    };
    rig.server_rt.block_on(support::start_raw_server(opts))
}

/// A prober for `server`, built the way users build one: from YAML.
fn prober(case: Case, server: &BenchServer, ca_file: &Path) -> Prober {
    let mut yaml = String::from("targets:\n  - name: bench\n");
    if case.tls {
        writeln!(yaml, "    url: wss://{}/bench", server.addr).unwrap();
        writeln!(yaml, "    tls: {{ ca_file: {:?} }}", ca_file.display().to_string()).unwrap();
    } else {
        writeln!(yaml, "    url: ws://{}/bench", server.addr).unwrap();
    }
    let config = wsprobe::config::parse(Path::new("bench.yaml"), &yaml)
        .unwrap_or_else(|e| panic!("the bench configuration is invalid: {e}\n{yaml}"));
    let target = config.targets.into_iter().next().expect("one target");
    Prober::new(target).unwrap_or_else(|e| panic!("cannot prepare the bench target: {e}"))
}

/// Runs `count` probes one after the other on the client runtime, as a spawned task.
fn probe_sequentially(rig: &Rig, prober: &Prober, count: usize) -> Vec<ProbeResult> {
    let prober = prober.clone();
    let task = rig.client_rt.spawn(async move {
        let mut results = Vec::with_capacity(count);
        for _ in 0..count {
            let result =
                prober.probe(&CancellationToken::new()).await.expect("a probe is never cancelled here");
            results.push(result);
        }
        results
    });
    rig.client_rt.block_on(task).expect("the probe task panicked")
}

fn run_case(rig: &Rig, case: Case, n: usize) -> CaseRun {
    let server = start_server(rig, case);
    let prober = prober(case, &server, &rig.ca_file);
    check_all_succeeded(case, &probe_sequentially(rig, &prober, WARMUP));
    let _ = server.log.take_sleeps();
    let start = Instant::now();
    let results = probe_sequentially(rig, &prober, n);
    let wall = start.elapsed();
    check_all_succeeded(case, &results);
    let (handshake_sleeps, first_message_sleeps) = server.log.take_sleeps();
    CaseRun { results, handshake_sleeps, first_message_sleeps, wall }
}

fn check_all_succeeded(case: Case, results: &[ProbeResult]) {
    if let Some(bad) = results.iter().find(|r| !r.success) {
        panic!(
            "{}: a probe failed ({} in phase {}): {}",
            case.label,
            bad.reason.map_or("?", |r| r.as_str()),
            bad.phase.map_or("?", |p| p.as_str()),
            bad.message.as_deref().unwrap_or("")
        );
    }
}

/// What the CPU measurement runs: wsprobe's prober, or the bare-library floor.
enum Workload {
    Probe(Case, Prober),
    /// The same session as case (a) (connect, upgrade, first message, ping, close) with
    /// tokio-tungstenite alone, untimed and unchecked beyond what the session needs; with
    /// tungstenite's default buffers or the given `read_buffer_size`.
    Bare(SocketAddr, Option<usize>),
}

impl Workload {
    /// Runs `count` sessions one after the other; one duration (seconds) each.
    fn run(&self, rig: &Rig, count: usize) -> Vec<f64> {
        match self {
            Workload::Probe(case, prober) => {
                let results = probe_sequentially(rig, prober, count);
                check_all_succeeded(*case, &results);
                results.iter().map(|r| r.duration_seconds).collect()
            }
            Workload::Bare(addr, read_buffer) => {
                let (addr, read_buffer) = (*addr, *read_buffer);
                let task = rig.client_rt.spawn(async move {
                    let mut durations = Vec::with_capacity(count);
                    for _ in 0..count {
                        let start = tokio::time::Instant::now();
                        bare_session(addr, read_buffer).await;
                        durations.push(start.elapsed().as_secs_f64());
                    }
                    durations
                });
                rig.client_rt.block_on(task).expect("the baseline task panicked")
            }
        }
    }
}

/// CPU per probe of (a), the bare-library floor (a′, a″) and (d), measured in interleaved
/// rounds so that drift in the machine's load hits them all alike.
fn cpu_runs(rig: &Rig, total: usize) -> Vec<CpuRun> {
    let mut workloads = Vec::new();
    let plan = [
        (CASES[0].label, Some(CASES[0]), None),
        (BASELINE, None, None),
        (BASELINE_SMALL_BUFFER, None, Some(SMALL_READ_BUFFER)),
        (CASES[3].label, Some(CASES[3]), None),
    ];
    for (label, case, read_buffer) in plan {
        let server = start_server(rig, case.unwrap_or(CASES[0]));
        let workload = match case {
            Some(case) => Workload::Probe(case, prober(case, &server, &rig.ca_file)),
            None => Workload::Bare(server.addr, read_buffer),
        };
        workload.run(rig, WARMUP);
        workloads.push((label, workload));
    }
    let per_round = total.div_ceil(CPU_ROUNDS);
    let mut runs: Vec<CpuRun> = workloads.iter().map(|(label, _)| CpuRun::empty(label)).collect();
    for _ in 0..CPU_ROUNDS {
        for ((label, workload), run) in workloads.iter().zip(&mut runs) {
            run.add(measure_cpu(label, per_round, || workload.run(rig, per_round)));
        }
    }
    runs
}

async fn bare_session(addr: SocketAddr, read_buffer: Option<usize>) {
    let tcp = TcpStream::connect(addr).await.expect("baseline: connect");
    tcp.set_nodelay(true).expect("baseline: set TCP_NODELAY");
    let config = read_buffer.map(|size| WebSocketConfig::default().read_buffer_size(size));
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(format!("ws://{addr}/bench"), tcp, config)
        .await
        .expect("baseline: upgrade");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(_))) => break,
            Some(Ok(_)) => {}
            other => panic!("baseline: no first message: {other:?}"),
        }
    }
    let payload = Bytes::from_static(b"baseline");
    ws.send(Message::Ping(payload.clone())).await.expect("baseline: ping");
    loop {
        match ws.next().await {
            Some(Ok(Message::Pong(p))) if p == payload => break,
            Some(Ok(_)) => {}
            other => panic!("baseline: no pong: {other:?}"),
        }
    }
    ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await.expect("baseline: close");
    while let Some(Ok(_)) = ws.next().await {}
}

/// Runs `workload` (which returns one duration per probe, in seconds) and measures the CPU
/// it costs this process, by thread.
fn measure_cpu(label: &'static str, probes: usize, workload: impl FnOnce() -> Vec<f64>) -> CpuRun {
    let process = Path::new("/proc/self/stat");
    let before_threads = threads_cpu("self");
    let before_process = stat_ticks(process).expect("read /proc/self/stat");
    let start = Instant::now();
    let durations = workload();
    let wall = start.elapsed();
    let after_process = stat_ticks(process).expect("read /proc/self/stat");
    let after_threads = threads_cpu("self");
    CpuRun {
        label,
        probes,
        wall,
        durations,
        client: cpu_between(&before_threads, &after_threads, |name| !name.starts_with(SERVER_THREADS)),
        server: cpu_between(&before_threads, &after_threads, |name| name.starts_with(SERVER_THREADS)),
        process_ticks: after_process - before_process,
    }
}

fn report(n: usize, runs: &[CaseRun], cpu: &[CpuRun]) -> String {
    let mut out = String::new();
    writeln!(out, "## Probe overhead ({})\n", today()).unwrap();
    out.push_str(&machine_table());
    writeln!(
        out,
        "\n{n} sequential probes per case after {WARMUP} warm-up probes, all successful. Each cell: \
         median / p99 of (measured − injected), in µs. Injected: 50 ms before the 101 in (b), \
         50 ms before the first message in (c).\n"
    )
    .unwrap();

    let mut header = String::from("| phase |");
    let mut rule = String::from("|---|");
    for case in CASES {
        write!(header, " {} |", case.label).unwrap();
        rule.push_str("---:|");
    }
    writeln!(out, "{header}\n{rule}").unwrap();
    for phase in PHASES {
        write!(out, "| {phase} |").unwrap();
        for (case, run) in CASES.iter().zip(runs) {
            let injected = case.injected(phase).as_secs_f64();
            let values: Vec<f64> =
                run.results.iter().filter_map(|r| r.phases.get(phase)).map(|s| s - injected).collect();
            write!(out, " {} |", cell(&values)).unwrap();
        }
        writeln!(out).unwrap();
    }
    let rows: [(&str, RowValue); 2] = [
        ("**total** (`duration_seconds`)", |c, r| r.duration_seconds - c.injected_total().as_secs_f64()),
        ("total − Σ phases (unattributed)", |_, r| {
            r.duration_seconds - r.phases.iter().map(|(_, s)| s).sum::<f64>()
        }),
    ];
    for (name, value) in rows {
        write!(out, "| {name} |").unwrap();
        for (case, run) in CASES.iter().zip(runs) {
            let values: Vec<f64> = run.results.iter().map(|r| value(case, r)).collect();
            write!(out, " {} |", cell(&values)).unwrap();
        }
        writeln!(out).unwrap();
    }
    write!(out, "| wall time per probe (mean) |").unwrap();
    for run in runs {
        write!(out, " {:.0} |", run.wall.as_secs_f64() * 1e6 / run.results.len() as f64).unwrap();
    }
    writeln!(out).unwrap();

    writeln!(
        out,
        "\nThe injected sleeps themselves (server side, `std::thread::sleep` on the blocking pool), \
         and the injected phase measured against the sleep the server really did, in µs:\n"
    )
    .unwrap();
    writeln!(out, "| case | phase | sleep − 50 ms (median / p99) | measured − actual sleep (median / p99) |")
        .unwrap();
    writeln!(out, "|---|---|---:|---:|").unwrap();
    for (case, run) in CASES.iter().zip(runs) {
        for (phase, sleeps) in
            [(Phase::Handshake, &run.handshake_sleeps), (Phase::FirstMessage, &run.first_message_sleeps)]
        {
            if case.injected(phase).is_zero() {
                continue;
            }
            assert_eq!(sleeps.len(), run.results.len(), "{}: one sleep per probe", case.label);
            let nominal = case.injected(phase).as_secs_f64();
            let over: Vec<f64> = sleeps.iter().map(|d| d.as_secs_f64() - nominal).collect();
            let net: Vec<f64> = run
                .results
                .iter()
                .zip(sleeps)
                .filter_map(|(r, d)| r.phases.get(phase).map(|m| m - d.as_secs_f64()))
                .collect();
            writeln!(out, "| {} | {phase} | {} | {} |", case.label, cell(&over), cell(&net)).unwrap();
        }
    }

    let tck = clk_tck() as f64;
    writeln!(
        out,
        "\nCPU time per probe, split by thread: the prober's runtime (`{CLIENT_THREADS}` workers and \
         the main thread) and the in-process server (`{SERVER_THREADS}`). Nanoseconds from \
         `/proc/self/task/*/schedstat`; in brackets the same from `/proc/self/task/*/stat` \
         (utime + stime, 1/{tck:.0} s ticks) and, for the whole process, `/proc/self/stat`:\n"
    )
    .unwrap();
    writeln!(out, "| case | probes | duration (median / p99) | wall per probe (mean) | prober CPU per probe | server CPU per probe | whole process per probe (`stat`) | prober CPU while probing back-to-back |").unwrap();
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|").unwrap();
    for c in cpu {
        let n = c.probes as f64;
        let per_tick = |ticks: u64| ticks as f64 / tck / n * 1e6;
        let per_ns = |nanos: u64| nanos as f64 / 1e3 / n;
        writeln!(
            out,
            "| {} | {} | {} µs | {:.0} µs | {:.0} µs ({:.0} µs) | {:.0} µs ({:.0} µs) | ({:.0} µs) | {:.0} % of one core |",
            c.label,
            c.probes,
            cell(&c.durations),
            c.wall.as_secs_f64() * 1e6 / n,
            per_ns(c.client.1),
            per_tick(c.client.0),
            per_ns(c.server.1),
            per_tick(c.server.0),
            per_tick(c.process_ticks),
            100.0 * c.client.1 as f64 / 1e9 / c.wall.as_secs_f64(),
        )
        .unwrap();
    }
    out
}

/// `median / p99` of seconds, printed in µs.
fn cell(seconds: &[f64]) -> String {
    if seconds.is_empty() {
        return "–".to_owned();
    }
    format!("{:.0} / {:.0}", percentile(seconds, 50.0) * 1e6, percentile(seconds, 99.0) * 1e6)
}
