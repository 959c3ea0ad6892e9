//! Helpers shared by the benchmark programs: in-process WebSocket servers whose injected
//! delays are known (and measured), `/proc` sampling, machine facts and small statistics.
//!
//! Benchmarks are programs (`harness = false`), not tests: they print markdown for
//! `BENCHMARKS.md` and fail loudly (panic with a sentence) when the setup is unusable.
#![allow(dead_code)]

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The text message every bench server sends right after the upgrade.
pub const WELCOME: &str = r#"{"type":"welcome"}"#;

/// The largest request head the raw upgrade accepts.
const MAX_HEAD: usize = 16 * 1024;

pub mod fleet;

// ---------------------------------------------------------------------------------------
// Servers

/// How a bench server behaves: which delays it injects and whether it speaks TLS.
#[derive(Clone, Debug, Default)]
pub struct ServerOpts {
    /// Sleep after reading the whole HTTP request, before writing the 101.
    pub handshake_delay: Duration,
    /// Sleep after writing the 101, before sending [`WELCOME`].
    pub first_message_delay: Duration,
    /// Serve `wss://` with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// What a server saw: connections accepted and how long each injected sleep really took.
#[derive(Debug, Default)]
pub struct ServerLog {
    pub connections: AtomicU64,
    pub handshake_sleeps: Mutex<Vec<Duration>>,
    pub first_message_sleeps: Mutex<Vec<Duration>>,
}

impl ServerLog {
    /// Takes the sleeps recorded so far (for the probes since the last call).
    pub fn take_sleeps(&self) -> (Vec<Duration>, Vec<Duration>) {
        let h = std::mem::take(&mut *self.handshake_sleeps.lock().unwrap_or_else(PoisonError::into_inner));
        let f =
            std::mem::take(&mut *self.first_message_sleeps.lock().unwrap_or_else(PoisonError::into_inner));
        (h, f)
    }
}

/// A running bench server; it stops when the runtime it was started on is dropped.
#[derive(Debug)]
pub struct BenchServer {
    pub addr: SocketAddr,
    pub log: Arc<ServerLog>,
}

/// A plain server built on tungstenite's own `accept_async`: after the upgrade it sends
/// [`WELCOME`], then reads until the client closes (tungstenite answers pings and the
/// close handshake by itself).
pub async fn start_accept_server() -> BenchServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the bench server on 127.0.0.1:0");
    let addr = listener.local_addr().expect("the bench server's address");
    let log = Arc::new(ServerLog::default());
    let counter = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            counter.connections.fetch_add(1, Ordering::Relaxed);
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                if ws.send(Message::text(WELCOME)).await.is_err() {
                    return;
                }
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    BenchServer { addr, log }
}

/// A server with its own minimal upgrade, so a delay can be injected between reading the
/// request and answering it. Sleeps run on the blocking pool with `std::thread::sleep`
/// (tens of µs of slack) rather than tokio's 1 ms timer wheel, and each is measured.
pub async fn start_raw_server(opts: ServerOpts) -> BenchServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the bench server on 127.0.0.1:0");
    let addr = listener.local_addr().expect("the bench server's address");
    let log = Arc::new(ServerLog::default());
    let shared = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            shared.connections.fetch_add(1, Ordering::Relaxed);
            let _ = tcp.set_nodelay(true);
            let opts = opts.clone();
            let log = shared.clone();
            tokio::spawn(async move {
                let served = match &opts.tls {
                    Some(config) => match TlsAcceptor::from(config.clone()).accept(tcp).await {
                        Ok(tls) => serve_raw(tls, &opts, &log).await,
                        Err(e) => Err(e),
                    },
                    None => serve_raw(tcp, &opts, &log).await,
                };
                if let Err(e) = served {
                    eprintln!("bench server: connection failed: {e}");
                }
            });
        }
    });
    BenchServer { addr, log }
}

async fn serve_raw<S>(mut stream: S, opts: &ServerOpts, log: &ServerLog) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too large"));
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let key = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.trim().to_owned())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Sec-WebSocket-Key"))?;
    let rest = buf[head_end..].to_vec();

    inject(opts.handshake_delay, &log.handshake_sleeps).await;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(response.as_bytes()).await?;
    stream.flush().await?;

    let mut ws = WebSocketStream::from_partially_read(stream, rest, Role::Server, None).await;
    inject(opts.first_message_delay, &log.first_message_sleeps).await;
    ws.send(Message::text(WELCOME)).await.map_err(io::Error::other)?;
    while let Some(Ok(_)) = ws.next().await {}
    Ok(())
}

/// Sleeps precisely for `delay` (skipped when zero) and records how long it really took.
async fn inject(delay: Duration, record: &Mutex<Vec<Duration>>) {
    if delay.is_zero() {
        return;
    }
    let start = Instant::now();
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
    record.lock().unwrap_or_else(PoisonError::into_inner).push(start.elapsed());
}

/// A self-signed certificate for 127.0.0.1 and localhost: the server's configuration and
/// the PEM a client must trust as its `ca_file`.
pub fn self_signed_tls() -> (Arc<rustls::ServerConfig>, String) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("rcgen generates a certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(certified.cert.der().to_vec())], key)
            .expect("rcgen produced a usable certificate and key");
    (Arc::new(config), certified.cert.pem())
}

// ---------------------------------------------------------------------------------------
// /proc

/// Clock ticks per second for `/proc/*/stat` times (`getconf CLK_TCK`, 100 if unknown).
pub fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// utime + stime in clock ticks from a `/proc/.../stat` file (process or thread).
pub fn stat_ticks(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last `)`.
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` value from `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// On-CPU time of one thread: clock ticks from `stat`, nanoseconds from `schedstat`.
#[derive(Debug, Clone)]
pub struct ThreadCpu {
    pub tid: u32,
    /// The thread's name (`comm`), e.g. a tokio runtime's `thread_name`.
    pub name: String,
    pub ticks: u64,
    /// `schedstat`'s first field (the scheduler's `sum_exec_runtime`): ns resolution, where
    /// `stat` only has 10 ms ticks. Up to date for threads that are not running right now.
    pub nanos: u64,
}

/// Every live thread of `pid` (`"self"` for this process).
pub fn threads_cpu(pid: &str) -> Vec<ThreadCpu> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for entry in dir.flatten() {
        let path = entry.path();
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else { continue };
        let name = fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_owned();
        let nanos = fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()));
        if let (Some(ticks), Some(nanos)) = (stat_ticks(&path.join("stat")), nanos) {
            out.push(ThreadCpu { tid, name, ticks, nanos });
        }
    }
    out
}

/// CPU used between two snapshots by the threads `select` picks: (ticks, ns). A thread
/// born in between counts from zero; one that ended in between is lost (its time stays
/// in the process's `stat`).
pub fn cpu_between(before: &[ThreadCpu], after: &[ThreadCpu], select: impl Fn(&str) -> bool) -> (u64, u64) {
    let (mut ticks, mut nanos) = (0, 0);
    for a in after.iter().filter(|a| select(&a.name)) {
        let b = before.iter().find(|b| b.tid == a.tid);
        ticks += a.ticks.saturating_sub(b.map_or(0, |b| b.ticks));
        nanos += a.nanos.saturating_sub(b.map_or(0, |b| b.nanos));
    }
    (ticks, nanos)
}

// ---------------------------------------------------------------------------------------
// Machine and binary

/// `nproc`, CPU model, kernel and rustc, as one markdown table.
pub fn machine_table() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".to_owned(), |s| s.trim().to_owned());
    let rustc = command_line("rustc", &["--version"]);
    let mem = status_line("/proc/meminfo", "MemTotal");
    format!(
        "| nproc | CPU model | memory | kernel | rustc |\n|---|---|---|---|---|\n| {nproc} | {cpu} | {mem} | {kernel} | {rustc} |\n"
    )
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or("unknown".to_owned(), |s| s.trim().to_owned())
}

fn status_line(file: &str, key: &str) -> String {
    let kib: Option<u64> = fs::read_to_string(file).ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    });
    kib.map_or("unknown".to_owned(), |k| format!("{:.1} GiB", k as f64 / (1024.0 * 1024.0)))
}

/// The release binary the benchmarks drive: `target/release/wsprobe` next to the
/// manifest, or `WSPROBE_BIN`. Panics with the build command when it is missing.
pub fn release_binary() -> PathBuf {
    let path = std::env::var_os("WSPROBE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/wsprobe"));
    assert!(
        path.is_file(),
        "the release binary {} is missing: run `cargo build --release` first (or set WSPROBE_BIN)",
        path.display()
    );
    path
}

/// An environment variable parsed as a number, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}=`{v}` is not a valid number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------
// Statistics

/// Nearest-rank percentile (`p` in 0..=100) of unsorted samples; 0 for none.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of the finite samples (the mean of the middle two for an even count); NaN
/// when there is none. Non-finite samples (a window with no probe) are left out.
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The smallest and largest finite samples; NaN for none.
pub fn min_max(samples: &[f64]) -> (f64, f64) {
    samples.iter().copied().filter(|v| v.is_finite()).fold((f64::NAN, f64::NAN), |(lo, hi), v| {
        (if lo.is_nan() { v } else { lo.min(v) }, if hi.is_nan() { v } else { hi.max(v) })
    })
}

/// The machine's CPU time so far, from the `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest time is already
    /// inside user).
    pub total: u64,
    /// idle + iowait.
    pub idle: u64,
    /// Time the hypervisor ran something else while this VM had work (the 8th value): on a
    /// shared VM it is CPU this machine's processes wanted and did not get.
    pub steal: u64,
}

impl MachineCpu {
    /// Reads `/proc/stat`; zeros when it cannot (the report then shows 0 %).
    pub fn now() -> Self {
        let text = fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else { return Self::default() };
        let v: Vec<u64> = line.split_whitespace().skip(1).take(8).filter_map(|f| f.parse().ok()).collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        Self { total: v.iter().sum(), idle: at(3) + at(4), steal: at(7) }
    }

    /// (busy %, steal %) of all the machine's CPU time from `self` to `later`: busy is the
    /// time this VM's own work ran (neither idle nor stolen).
    pub fn busy_steal_until(&self, later: &Self) -> (f64, f64) {
        let total = later.total.saturating_sub(self.total).max(1) as f64;
        let idle = later.idle.saturating_sub(self.idle) as f64;
        let steal = later.steal.saturating_sub(self.steal) as f64;
        ((total - idle - steal).max(0.0) / total * 100.0, steal / total * 100.0)
    }
}

/// [`loadavg`]'s 1-minute average alone.
pub fn loadavg_1m() -> String {
    loadavg().split_whitespace().next().unwrap_or("unknown").to_owned()
}

/// `/proc/loadavg`'s 1-, 5- and 15-minute averages: other work on the machine skews
/// every number here, so each report says how busy the machine was.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// What `binary --version` prints.
pub fn binary_version(binary: &Path) -> String {
    command_line(&binary.display().to_string(), &["--version"])
}

/// Today's date (UTC) as `date -u +%F` prints it.
pub fn today() -> String {
    command_line("date", &["-u", "+%F %H:%M UTC"])
}
