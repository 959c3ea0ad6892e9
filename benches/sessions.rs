//! What holding N idle sessions costs, side by side in one run: `wsprobe run` with
//! `session:` targets, a bare tokio-tungstenite client (`read_buffer_size(4096)`) and a
//! Python `websockets` 17.4 client, each a child process of its own, holding the same N
//! against one server (this process, spread over 127.0.0.1–127.0.0.8).
//!
//! For each client and N: the time until N client sockets are ESTABLISHED in
//! `/proc/net/tcp` (and the server has upgraded N), the CPU that took, then the RSS and
//! the CPU over `WSPROBE_BENCH_HOLD_SECS` (default 30) of holding with a protocol ping on
//! every session every 15 s. N: `WSPROBE_BENCH_SESSIONS` (default `1000,10000`); clients:
//! `WSPROBE_BENCH_CLIENTS` (default `wsprobe,bare,python`). The wsprobe column is measured
//! when the binary accepts the `session:` configuration (`wsprobe check`), and is
//! reported as not supported otherwise.
//!
//! `WSPROBE_BENCH_SCHEME` picks `ws` (the default), `wss`, or a list such as `ws,wss`,
//! measured one after the other, one table each. For `wss` the server speaks TLS with a
//! certificate for its eight addresses, signed by a CA made at start (`ca.pem` in the
//! temp dir), and every client verifies the chain against that CA: wsprobe through
//! `tls: { ca_file }`, the bare client with a rustls `ClientConfig` trusting it alone
//! (resumption off, as wsprobe has it), Python with `ssl.create_default_context(cafile=…)`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::fleet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const PING_EVERY: Duration = Duration::from_secs(15);
/// Upgrades in flight at once while opening, for the clients the bench writes.
const OPENING_AT_ONCE: usize = 256;

/// One scheme's server, and the CA its clients trust when it speaks TLS.
struct Fleet {
    scheme: &'static str,
    addrs: Vec<SocketAddr>,
    counts: Arc<fleet::Counts>,
    ca_file: Option<PathBuf>,
}

fn main() {
    if std::env::var("WSPROBE_BENCH_ROLE").as_deref() == Ok("bare-client") {
        return bare_client();
    }
    let hold = Duration::from_secs(support::env_or("WSPROBE_BENCH_HOLD_SECS", 30));
    let sizes: Vec<usize> = std::env::var("WSPROBE_BENCH_SESSIONS")
        .unwrap_or_else(|_| "1000,10000".to_owned())
        .split(',')
        .map(|n| n.trim().parse().expect("WSPROBE_BENCH_SESSIONS: numbers separated by commas"))
        .collect();
    let clients = std::env::var("WSPROBE_BENCH_CLIENTS").unwrap_or_else(|_| "wsprobe,bare,python".to_owned());
    let schemes: Vec<&'static str> = std::env::var("WSPROBE_BENCH_SCHEME")
        .unwrap_or_else(|_| "ws".to_owned())
        .split(',')
        .map(|s| match s.trim() {
            "ws" => "ws",
            "wss" => "wss",
            other => panic!("WSPROBE_BENCH_SCHEME: `{other}` is neither `ws` nor `wss`"),
        })
        .collect();
    let fd = fleet::raise_fd_limit();
    let binary = support::release_binary();
    let python = clients.contains("python").then(fleet::python_websockets);
    let load_before = support::loadavg();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-srv")
        .enable_all()
        .build()
        .expect("the server's runtime");
    let dir = tempfile::tempdir().expect("a temp dir");

    let mut out = String::new();
    for scheme in schemes {
        let fleet = match scheme {
            "wss" => {
                let tls = fleet::loopback_tls(dir.path());
                let (addrs, counts) = server_rt.block_on(fleet::start_tls_server(tls.server));
                Fleet { scheme, addrs, counts, ca_file: Some(tls.ca_file) }
            }
            _ => {
                let (addrs, counts) = server_rt.block_on(fleet::start_server());
                Fleet { scheme, addrs, counts, ca_file: None }
            }
        };
        let _ = writeln!(out, "### {scheme}://\n");
        let _ = writeln!(out, "| client | sessions | established | time to open | CPU to open (per session) | RSS holding (per session) | CPU holding, pings every 15 s | ");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for &n in &sizes {
            for client in clients.split(',') {
                let row = measure(&fleet, client, n, hold, &binary, python.as_deref(), dir.path());
                out.push_str(&row);
            }
        }
        out.push('\n');
    }
    println!("## Holding idle sessions ({}; {})\n", support::today(), support::binary_version(&binary));
    println!("{}", support::machine_table());
    println!("Holding window {} s; file limit {fd}.\n", hold.as_secs());
    println!("{out}");
    println!("Load average before / after: {load_before} / {}.", support::loadavg());
}

/// One client holding `n` sessions of `fleet`: its table row.
fn measure(
    fleet: &Fleet,
    client: &str,
    n: usize,
    hold: Duration,
    binary: &Path,
    python: Option<&Path>,
    dir: &Path,
) -> String {
    eprintln!("sessions: {client} holding {n} over {}://", fleet.scheme);
    let ports: Vec<u16> = fleet.addrs.iter().map(|a| a.port()).collect();
    let urls = fleet::scheme_urls(fleet.scheme, &fleet.addrs, n);
    let ca = fleet.ca_file.as_deref();
    let started = Instant::now();
    let opened_before = fleet.counts.opened.load(Ordering::Relaxed);
    let mut child = match client {
        "wsprobe" => match wsprobe_child(binary, dir, fleet, n) {
            Some(c) => c,
            None => {
                return format!("| wsprobe | {n} | this binary does not accept `session:` targets (`wsprobe check` refused the configuration) | | | | |\n");
            }
        },
        "bare" => bare_child(dir, &urls, ca),
        "python" => python_child(python.expect("python"), dir, &urls, ca),
        other => panic!("unknown client `{other}`"),
    };
    let pid = child.id();
    let deadline = started + Duration::from_secs(support::env_or("WSPROBE_BENCH_OPEN_LIMIT_SECS", 180));
    let mut established = 0;
    while Instant::now() < deadline {
        established = fleet::established_to(&ports);
        let upgraded = fleet.counts.opened.load(Ordering::Relaxed) - opened_before;
        if established >= n && upgraded >= n as u64 {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{client} exited with {status} while opening sessions");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let opened_in = started.elapsed();
    let open_cpu = fleet::process_cpu(pid).0;
    // Let the opening settle (buffers freed, first pings sent) before holding.
    std::thread::sleep(Duration::from_secs(2));
    let (c0, t0) = (fleet::process_cpu(pid).0, Instant::now());
    let rss_start = support::status_kib(pid, "VmRSS").unwrap_or(0);
    let mut rss_peak = 0;
    while t0.elapsed() < hold {
        std::thread::sleep(Duration::from_millis(500));
        rss_peak = rss_peak.max(support::status_kib(pid, "VmRSS").unwrap_or(0));
    }
    let (c1, held) = (fleet::process_cpu(pid).0, t0.elapsed());
    let still = fleet::established_to(&ports);
    let rss = support::status_kib(pid, "VmRSS").unwrap_or(0);
    stop(&mut child);
    // Let the server see every close and TIME_WAIT drain a little.
    std::thread::sleep(Duration::from_secs(3));
    format!(
        "| {client} | {n} | {established} at open, {still} after holding | {:.2} s | {:.2} s ({:.3} ms) | {:.1} MiB at the start, {:.1} MiB at the end, peak {:.1} MiB ({:.1} KiB) | {:.2} % of one core ({:.0} ms in {:.0} s) |\n",
        opened_in.as_secs_f64(),
        open_cpu as f64 / 1e9,
        open_cpu as f64 / 1e6 / n as f64,
        rss_start as f64 / 1024.0,
        rss as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        rss as f64 / n as f64,
        (c1 - c0) as f64 / 1e9 / held.as_secs_f64() * 100.0,
        (c1 - c0) as f64 / 1e6,
        held.as_secs_f64(),
    )
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `wsprobe run` with one `session:` target per server address, `count` adding up to `n`;
/// `None` when `wsprobe check` does not accept it.
fn wsprobe_child(binary: &Path, dir: &Path, fleet: &Fleet, n: usize) -> Option<Child> {
    let addrs = &fleet.addrs;
    let tls = fleet
        .ca_file
        .as_ref()
        .map_or(String::new(), |ca| format!("\n    tls: {{ ca_file: {:?} }}", ca.display().to_string()));
    let mut y = "listen: 127.0.0.1:0\nshutdown_grace: 10s\ntargets:\n".to_owned();
    for (k, a) in addrs.iter().enumerate() {
        let count = n / addrs.len() + usize::from(k < n % addrs.len());
        let _ = writeln!(
            y,
            "  - name: held{k}\n    url: {}://{a}/held{k}\n    session: {{ count: {count}, ping_interval: 15s }}{tls}",
            fleet.scheme
        );
    }
    let config = dir.join("sessions.yaml");
    fs::write(&config, y).expect("write the configuration");
    let accepted = Command::new(binary)
        .arg("check")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !accepted {
        return None;
    }
    let log = fs::File::create(dir.join("wsprobe-sessions.log")).expect("the log file");
    Some(
        Command::new(binary)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn,wsprobe::daemon=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start wsprobe"),
    )
}

fn urls_file(dir: &Path, urls: &[String]) -> PathBuf {
    let path = dir.join("urls.txt");
    fs::write(&path, urls.join("\n")).expect("write the URLs");
    path
}

/// This bench binary again, as the bare client; `ca` is the CA to trust for `wss://`.
fn bare_child(dir: &Path, urls: &[String], ca: Option<&Path>) -> Child {
    let mut command = Command::new(std::env::current_exe().expect("the bench's own path"));
    command.env("WSPROBE_BENCH_ROLE", "bare-client").env("WSPROBE_BENCH_URLS", urls_file(dir, urls));
    if let Some(ca) = ca {
        command.env("WSPROBE_BENCH_CA", ca);
    }
    command.stdin(Stdio::null()).spawn().expect("start the bare client")
}

/// The bare client's TLS: rustls with ring, trusting only the CA in `ca` (PEM), no
/// resumption (wsprobe has none either, so both make full handshakes).
fn bare_tls(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("read the CA's PEM") {
        roots.add(cert.expect("a PEM certificate")).expect("the CA is a usable trust anchor");
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// The bare client: every session opened (a bounded number at a time), then held with a
/// ping every 15 s, until SIGTERM ends the process. `wss://` URLs get TLS from
/// tokio-rustls first (with `WSPROBE_BENCH_CA` as the only trusted CA), then the same
/// upgrade.
fn bare_client() {
    let urls: Vec<String> =
        fs::read_to_string(std::env::var("WSPROBE_BENCH_URLS").expect("WSPROBE_BENCH_URLS"))
            .expect("read the URLs")
            .lines()
            .map(str::to_owned)
            .collect();
    let tls = std::env::var_os("WSPROBE_BENCH_CA")
        .map(|ca| tokio_rustls::TlsConnector::from(bare_tls(Path::new(&ca))));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the bare client's runtime");
    rt.block_on(async move {
        let gate = Arc::new(tokio::sync::Semaphore::new(OPENING_AT_ONCE));
        for (i, url) in urls.into_iter().enumerate() {
            let offset = PING_EVERY.mul_f64((i % 1000) as f64 / 1000.0);
            // Two task types, so a ws:// session's task holds no TLS state.
            match &tls {
                Some(tls) => drop(tokio::spawn(open_tls(url, tls.clone(), gate.clone(), offset))),
                None => drop(tokio::spawn(open_plain(url, gate.clone(), offset))),
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    });
}

/// `host:port` of a `ws://` or `wss://` URL.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or("")
}

async fn open_plain(url: String, gate: Arc<tokio::sync::Semaphore>, offset: Duration) {
    let permit = gate.acquire_owned().await;
    let Ok(tcp) = tokio::net::TcpStream::connect(url_host(&url)).await else { return };
    hold(url, tcp, permit, offset).await;
}

async fn open_tls(
    url: String,
    tls: tokio_rustls::TlsConnector,
    gate: Arc<tokio::sync::Semaphore>,
    offset: Duration,
) {
    let permit = gate.acquire_owned().await;
    let Ok(addr) = url_host(&url).parse::<SocketAddr>() else { return };
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else { return };
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let Ok(stream) = tls.connect(name, tcp).await else { return };
    hold(url, stream, permit, offset).await;
}

/// Upgrades `stream` and holds the session, pinging every 15 s from `offset` on; the
/// opening `permit` is released once the upgrade is done.
async fn hold<S>(url: String, stream: S, permit: impl Sized, offset: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let Ok((mut ws, _)) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await else {
        return;
    };
    drop(permit);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, PING_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if ws.send(Message::Ping(Vec::from(*b"hold").into())).await.is_err() { return; }
            }
            m = ws.next() => match m { Some(Ok(_)) => {}, _ => return },
        }
    }
}

const PYTHON_HOLD: &str = r#"
import asyncio, signal, ssl
from websockets.asyncio.client import connect

URLS = open(__FILE__).read().split()
CA = __CA__
# Only wss:// gets an `ssl` argument (websockets refuses one for ws://).
EXTRA = {"ssl": ssl.create_default_context(cafile=CA)} if CA else {}

async def hold(url, gate, done):
    async with gate:
        ws = await connect(url, compression=None, ping_interval=15, ping_timeout=10, max_size=2**20, **EXTRA)
    await done.wait()
    await ws.close()

async def main():
    gate = asyncio.Semaphore(__AT_ONCE__)
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    await asyncio.gather(*(hold(u, gate, done) for u in URLS), return_exceptions=True)

asyncio.run(main())
"#;

fn python_child(python: &Path, dir: &Path, urls: &[String], ca: Option<&Path>) -> Child {
    let file = urls_file(dir, urls);
    let ca = ca.map_or("None".to_owned(), |ca| format!("{:?}", ca.display().to_string()));
    let body = PYTHON_HOLD
        .replace("__FILE__", &format!("{:?}", file.display().to_string()))
        .replace("__CA__", &ca)
        .replace("__AT_ONCE__", &OPENING_AT_ONCE.to_string());
    let script = fleet::write_script(dir, "hold.py", &body);
    Command::new(python).arg(script).stdin(Stdio::null()).spawn().expect("start the Python client")
}
