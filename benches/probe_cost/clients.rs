//! The clients `probe_cost` runs side by side, each in a process of its own and against
//! its own server: `wsprobe run`, the bare tokio-tungstenite client (this bench run again
//! as a child) and the Python `websockets` client. Each is started here, read at every
//! window boundary (its own CPU so far, the probes its server saw closed, its failures
//! where it can tell them without disturbing it) and stopped when its handle is dropped.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::support::fleet::{self, Counts, Daemon};

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
            Run::Bare(Bare(c)) | Run::Python(Python(c)) => {
                c.ensure_running();
                Reading { cpu_ns: c.cpu_ns(), closed: closed(), failed: Some(c.failures()) }
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
    /// own), a kill for the other two.
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
/// in a process of its own like the other two clients (this bench run again with
/// [`BARE_CHILD`] set). In the bench's own process it would share an address space with
/// the servers, and every switch between client and server threads would be cheaper than
/// the switches wsprobe and Python pay: a floor lower than any separate client can reach.
pub struct Bare(ChildClient);

/// Set to a file of `interval` then one URL per line: this process is the bare client.
pub const BARE_CHILD: &str = "WSPROBE_BENCH_BARE_CHILD";

impl Bare {
    pub fn start(dir: &Path, urls: &[String], interval: u64) -> Self {
        let list = dir.join("bare-urls.txt");
        fs::write(&list, format!("{interval}\n{}\n", urls.join("\n"))).expect("write the bare client's URLs");
        let me = std::env::current_exe().expect("this bench's own path");
        let mut cmd = std::process::Command::new(me);
        cmd.env(BARE_CHILD, &list);
        Self(ChildClient::start(cmd, dir, "bare"))
    }
}

/// The bare client's process: probes the listed URLs until it is killed; each failure is
/// one `failed:` line on stderr.
pub fn bare_child(list: &Path) {
    let text = fs::read_to_string(list).expect("the bare client's URL list");
    let mut lines = text.lines();
    let interval: u64 = lines.next().and_then(|l| l.parse().ok()).expect("the interval on the first line");
    let urls: Vec<String> = lines.filter(|l| !l.is_empty()).map(str::to_owned).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the bare client's runtime");
    let interval = Duration::from_secs(interval);
    let count = urls.len();
    rt.block_on(async move {
        for (i, url) in urls.into_iter().enumerate() {
            let offset = interval.mul_f64(i as f64 / count as f64);
            tokio::spawn(async move {
                let mut next = tokio::time::Instant::now() + offset;
                loop {
                    tokio::time::sleep_until(next).await;
                    if let Err(e) = bare_probe(&url).await {
                        eprintln!("failed: {e}");
                    }
                    next += interval;
                }
            });
        }
        std::future::pending::<()>().await;
    });
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
pub struct Python(ChildClient);

impl Python {
    pub fn start(python: &Path, dir: &Path, urls: &[String], interval: u64) -> Self {
        let body = PYTHON_PROBES
            .replace("__URLS__", &fleet::python_list(urls))
            .replace("__INTERVAL__", &interval.to_string());
        let script = fleet::write_script(dir, "probes.py", &body);
        let mut cmd = std::process::Command::new(python);
        cmd.arg(&script);
        Self(ChildClient::start(cmd, dir, "python"))
    }
}

/// A client in a child process whose stderr (one `failed:` line per failed probe) goes to
/// a file. Dropping it kills the process, so a panic in the bench leaves no client behind.
pub struct ChildClient {
    child: Child,
    err: PathBuf,
    name: &'static str,
}

impl ChildClient {
    fn start(mut cmd: std::process::Command, dir: &Path, name: &'static str) -> Self {
        let err = dir.join(format!("{name}.err"));
        let log = fs::File::create(&err).expect("the client's log");
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start the {name} client: {e}"));
        Self { child, err, name }
    }

    fn cpu_ns(&self) -> u64 {
        fleet::process_cpu(self.child.id()).0
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
            panic!("the {} client exited early with {status}; its stderr ends:\n{tail}", self.name);
        }
    }
}

impl Drop for ChildClient {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
