//! The clients `probe_cost` runs side by side, each against its own server: `wsprobe run`
//! (a child process), the bare tokio-tungstenite client (a runtime inside the bench) and
//! the Python `websockets` client (a child process). Each is started here, read at every
//! window boundary (its own CPU so far, the probes its server saw closed, its failures
//! where it can tell them without disturbing it) and stopped when its handle is dropped.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::support::fleet::{self, Counts, Daemon};
use crate::support::{self, ThreadCpu};

/// The client kinds, in the order of the report's columns.
pub const KINDS: [&str; 3] = ["wsprobe", "bare", "python"];

/// One client at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// Its own CPU so far, ns (`schedstat`).
    pub cpu_ns: u64,
    /// Sessions its server saw it close: probes done.
    pub closed: u64,
    /// Probes it counted as failed so far; `None` for wsprobe, whose count needs a scrape.
    pub failed: Option<u64>,
}

/// A running client and the server that counts its probes.
pub struct Probing {
    pub kind: &'static str,
    pub counts: Arc<Counts>,
    pub run: Run,
}

pub enum Run {
    Wsprobe(Daemon),
    Bare(Bare),
    Python(Python),
}

impl Probing {
    /// Where the client is now; panics (with its log) when a child process has exited.
    pub fn read(&mut self) -> Reading {
        let closed = || self.counts.closed.load(Ordering::Relaxed);
        match &mut self.run {
            Run::Wsprobe(d) => {
                d.ensure_running();
                let cpu_ns = d.cpu().0;
                Reading { cpu_ns, closed: closed(), failed: None }
            }
            Run::Bare(b) => {
                let cpu_ns = b.cpu();
                Reading { cpu_ns, closed: closed(), failed: Some(b.failures.load(Ordering::Relaxed)) }
            }
            Run::Python(p) => {
                p.ensure_running();
                let cpu_ns = fleet::process_cpu(p.child.id()).0;
                Reading { cpu_ns, closed: closed(), failed: Some(p.failures()) }
            }
        }
    }

    pub fn daemon(&self) -> Option<&Daemon> {
        match &self.run {
            Run::Wsprobe(d) => Some(d),
            _ => None,
        }
    }

    /// Stops the client: SIGTERM and its grace for wsprobe (so its exit is the daemon's
    /// own), a kill for Python, a runtime shutdown for the bare client.
    pub fn stop(self) {
        match self.run {
            Run::Wsprobe(d) => {
                d.stop(Duration::from_secs(15));
            }
            Run::Bare(b) => drop(b),
            Run::Python(p) => drop(p),
        }
    }
}

/// The configuration `wsprobe run` gets: `urls` every `interval` seconds, no jitter.
pub fn wsprobe_yaml(urls: &[String], interval: u64) -> String {
    let mut y = format!(
        "listen: 127.0.0.1:0\nshutdown_grace: 5s\ndefaults:\n  interval: {interval}s\n  jitter: 0%\ntargets:\n"
    );
    for (i, u) in urls.iter().enumerate() {
        let _ = writeln!(y, "  - name: t{i:05}\n    url: {u}");
    }
    y
}

/// Starts `wsprobe run` on `urls` (its configuration and log go to `dir`).
pub fn start_wsprobe(binary: &Path, dir: &Path, urls: &[String], interval: u64) -> Daemon {
    let config = dir.join("probe_cost.yaml");
    fs::write(&config, wsprobe_yaml(urls, interval)).expect("write the configuration");
    let filter = std::env::var("WSPROBE_BENCH_RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    Daemon::start(binary, &config, dir, &filter)
}

/// The floor: the same probe with tokio-tungstenite and nothing else, one task per target,
/// on a runtime of its own whose threads are named `bare-client` (how its CPU is told apart
/// from the server's and the bench's in this process).
pub struct Bare {
    /// Dropping it ends every probe task and joins the threads.
    _rt: tokio::runtime::Runtime,
    failures: Arc<AtomicU64>,
    /// The runtime's threads at the last reading, and their CPU (ns) summed up to it: a
    /// thread born since counts from zero.
    last: Vec<ThreadCpu>,
    total_ns: u64,
}

const BARE_THREADS: &str = "bare-client";

impl Bare {
    pub fn start(urls: &[String], interval: u64) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(BARE_THREADS)
            .enable_all()
            .build()
            .expect("the bare client's runtime");
        let failures = Arc::new(AtomicU64::new(0));
        let interval = Duration::from_secs(interval);
        for (i, url) in urls.iter().enumerate() {
            let (url, failures) = (url.clone(), failures.clone());
            let offset = interval.mul_f64(i as f64 / urls.len() as f64);
            rt.spawn(async move {
                let mut next = tokio::time::Instant::now() + offset;
                loop {
                    tokio::time::sleep_until(next).await;
                    if bare_probe(&url).await.is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    next += interval;
                }
            });
        }
        let last = support::threads_cpu("self");
        Self { _rt: rt, failures, last, total_ns: 0 }
    }

    /// CPU (ns) the runtime's threads used since it started.
    fn cpu(&mut self) -> u64 {
        let now = support::threads_cpu("self");
        let (_, ns) = support::cpu_between(&self.last, &now, |t| t == BARE_THREADS);
        self.total_ns += ns;
        self.last = now;
        self.total_ns
    }
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
            print("failed:", e, file=sys.stderr, flush=True)
        nxt += INTERVAL

async def main():
    start = time.monotonic()
    await asyncio.gather(*(target(i, u, start) for i, u in enumerate(URLS)))

asyncio.run(main())
"#;

/// The Python `websockets` client: one coroutine per target, failures printed to a file.
/// Dropping it kills the process, so a panic in the bench leaves no Python client behind.
pub struct Python {
    child: Child,
    err: PathBuf,
}

impl Python {
    pub fn start(python: &Path, dir: &Path, urls: &[String], interval: u64) -> Self {
        let body = PYTHON_PROBES
            .replace("__URLS__", &fleet::python_list(urls))
            .replace("__INTERVAL__", &interval.to_string());
        let script = fleet::write_script(dir, "probes.py", &body);
        let err = dir.join("python.err");
        let log = fs::File::create(&err).expect("the Python log");
        let child = std::process::Command::new(python)
            .arg(&script)
            .stderr(log)
            .spawn()
            .expect("start the Python client");
        Self { child, err }
    }

    fn failures(&self) -> u64 {
        let text = fs::read_to_string(&self.err).unwrap_or_default();
        text.lines().filter(|l| l.starts_with("failed:")).count() as u64
    }

    fn ensure_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let text = fs::read_to_string(&self.err).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            panic!("the Python client exited early with {status}; its stderr ends:\n{tail}");
        }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
