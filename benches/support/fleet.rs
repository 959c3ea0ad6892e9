//! Helpers for the benches that drive many targets or sessions at once: a WebSocket
//! server listening on several loopback addresses (plain, or `wss://` behind a CA made at
//! start), the `wsprobe run` child and its `/metrics`, the Python `websockets` client in
//! its own venv, and the file limit.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Loopback addresses the connections are spread over, past one address's ephemeral ports.
pub const ADDRESSES: u8 = 8;

/// Raises the soft file limit to the hard one (children inherit it); returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let (_, hard) = rlimit::Resource::NOFILE.get().expect("read RLIMIT_NOFILE");
    rlimit::Resource::NOFILE.set(hard, hard).expect("raise RLIMIT_NOFILE to the hard limit");
    hard
}

/// What the server saw: sessions opened, and sessions the client ended with a close handshake.
#[derive(Debug, Default)]
pub struct Counts {
    pub opened: AtomicU64,
    pub closed: AtomicU64,
}

/// A server on `127.0.0.1..=127.0.0.<ADDRESSES>`, one port each: after the upgrade it sends
/// [`super::WELCOME`], then answers pings (tungstenite does) until the client closes.
/// Its read buffer is small, so holding many sessions costs the server little memory.
pub async fn start_server() -> (Vec<SocketAddr>, Arc<Counts>) {
    start_server_with(None).await
}

/// [`start_server`] speaking `wss://` with `tls` (see [`loopback_tls`]): the TLS handshake
/// first, then the same upgrade and holding.
pub async fn start_tls_server(tls: Arc<rustls::ServerConfig>) -> (Vec<SocketAddr>, Arc<Counts>) {
    start_server_with(Some(tls)).await
}

async fn start_server_with(tls: Option<Arc<rustls::ServerConfig>>) -> (Vec<SocketAddr>, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let mut addrs = Vec::new();
    for k in 1..=ADDRESSES {
        let listener = TcpListener::bind(("127.0.0.".to_owned() + &k.to_string(), 0))
            .await
            .expect("bind the bench server on a loopback address");
        addrs.push(listener.local_addr().expect("its address"));
        let counts = counts.clone();
        let acceptor = tls.clone().map(TlsAcceptor::from);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let counts = counts.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => hold_upgraded(stream, &counts).await,
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                hold_upgraded(tls, &counts).await;
                            }
                        }
                    }
                });
            }
        });
    }
    (addrs, counts)
}

/// One server-side session: upgrade, [`super::WELCOME`], then read until the client ends it.
async fn hold_upgraded<S>(stream: S, counts: &Counts)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    counts.opened.fetch_add(1, Ordering::Relaxed);
    if ws.send(Message::text(super::WELCOME)).await.is_err() {
        return;
    }
    while let Some(m) = ws.next().await {
        match m {
            Ok(Message::Close(_)) => {
                counts.closed.fetch_add(1, Ordering::Relaxed);
                // tungstenite answers the close; drain to the end.
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

/// The certificates for a `wss://` fleet, made afresh for each run.
#[derive(Debug)]
pub struct LoopbackTls {
    /// The server's configuration: a certificate for every bench address, signed by the CA.
    pub server: Arc<rustls::ServerConfig>,
    /// The CA certificate as PEM, written to a file for the clients to trust.
    pub ca_file: PathBuf,
}

/// A CA and a server certificate it signs, valid for `127.0.0.1..=127.0.0.<ADDRESSES>` (IP
/// SANs), so clients verify the chain and the address as they would against a real service;
/// the CA's PEM goes to `dir/ca.pem`. The server sends no session tickets: every client here
/// makes full handshakes anyway (wsprobe turns resumption off), and tickets would only add
/// server-side state per connection.
pub fn loopback_tls(dir: &Path) -> LoopbackTls {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = rcgen::KeyPair::generate().expect("rcgen makes the CA's key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("the CA's parameters");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "wsprobe bench CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("rcgen signs the CA");

    let names: Vec<String> = (1..=ADDRESSES).map(|k| format!("127.0.0.{k}")).collect();
    let server_key = rcgen::KeyPair::generate().expect("rcgen makes the server's key");
    let mut params = rcgen::CertificateParams::new(names).expect("the server certificate's parameters");
    params.distinguished_name.push(rcgen::DnType::CommonName, "wsprobe bench server");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&server_key, &ca).expect("the CA signs the server certificate");

    let ca_file = dir.join("ca.pem");
    fs::write(&ca_file, ca.pem()).expect("write the CA's PEM");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let mut server =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("rcgen produced a usable certificate and key");
    server.send_tls13_tickets = 0;
    LoopbackTls { server: Arc::new(server), ca_file }
}

/// A `wsprobe run` child and where its `/metrics` is.
#[derive(Debug)]
pub struct Daemon {
    pub child: Child,
    pub pid: u32,
    pub metrics: SocketAddr,
    pub log: PathBuf,
    pub started: Instant,
    /// From exec to the listening log line.
    pub startup: Duration,
}

impl Daemon {
    /// Starts `binary run --config CONFIG`, logging at `filter` (the daemon module stays
    /// at info: its start-up line says where `/metrics` is).
    pub fn start(binary: &Path, config: &Path, dir: &Path, filter: &str) -> Self {
        let log = dir.join("wsprobe.log");
        let log_file = fs::File::create(&log).expect("create the log file");
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", format!("{filter},wsprobe::daemon=info"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let pid = child.id();
        let mut d = Self {
            child,
            pid,
            metrics: "0.0.0.0:0".parse().expect("an address"),
            log,
            started,
            startup: Duration::ZERO,
        };
        d.metrics = d.wait_for_listen_addr(Duration::from_secs(120));
        d.startup = started.elapsed();
        d
    }

    fn wait_for_listen_addr(&mut self, within: Duration) -> SocketAddr {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            self.ensure_running();
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("Serving /metrics and the API.")) {
                return line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .and_then(|a| a.trim_matches('"').parse().ok())
                    .unwrap_or_else(|| panic!("cannot find addr=... in the log line `{line}`"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("wsprobe did not start listening in {within:?}; log:\n{}", self.log_tail());
    }

    pub fn ensure_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("wsprobe exited early with {status}; log:\n{}", self.log_tail());
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// CPU the whole process used so far: (ns summed over live threads' `schedstat`,
    /// `/proc/<pid>/stat` utime+stime ticks).
    pub fn cpu(&self) -> (u64, u64) {
        process_cpu(self.pid)
    }

    pub fn rss_kib(&self) -> u64 {
        super::status_kib(self.pid, "VmRSS").unwrap_or(0)
    }

    /// `GET /metrics`: the body and how long the whole exchange took.
    pub fn scrape(&self) -> (String, Duration) {
        let t0 = Instant::now();
        let body = http_get(self.metrics, "/metrics");
        (body, t0.elapsed())
    }

    /// Sends SIGTERM and waits up to `within` for the exit.
    pub fn stop(mut self, within: Duration) -> Duration {
        let t0 = Instant::now();
        let pid = self.pid.to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        while t0.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return t0.elapsed();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        t0.elapsed()
    }
}

/// A bench that panics between [`Daemon::start`] and [`Daemon::stop`] (a failed assertion,
/// another client dying) must not leave `wsprobe run` behind, still probing and holding
/// ports: whatever still runs when the handle goes is killed and reaped.
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// (ns over live threads' `schedstat`, utime+stime ticks) of a process.
pub fn process_cpu(pid: u32) -> (u64, u64) {
    let ns = super::threads_cpu(&pid.to_string()).iter().map(|t| t.nanos).sum();
    let ticks = super::stat_ticks(Path::new(&format!("/proc/{pid}/stat"))).unwrap_or(0);
    (ns, ticks)
}

/// A blocking `GET` returning the body; panics on anything but 200.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("set a read timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("send the request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "GET {path} answered: {}", text.lines().next().unwrap_or(""));
    text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned())
}

/// The sum of every sample of `name` (exact name, any labels) in an exposition, and of
/// those whose labels contain `with` when given.
pub fn sum_samples(text: &str, name: &str, with: Option<&str>) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter(|l| with.is_none_or(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The venv under `target/` with `websockets==17.4`, created on first use; its python.
pub fn python_websockets() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import websockets, sys; sys.exit(websockets.__version__ != '17.4')"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status();
        assert!(made.is_ok_and(|s| s.success()), "python3 -m venv {} failed", venv.display());
        let pip = Command::new(venv.join("bin/pip")).args(["install", "-q", "websockets==17.4"]).status();
        assert!(
            pip.is_ok_and(|s| s.success()),
            "pip install websockets==17.4 into {} failed",
            venv.display()
        );
    }
    python
}

/// Writes a Python program to `dir` and returns its path.
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, body).expect("write the Python client");
    path
}

/// `ws://` URLs spread over the server's addresses, one per index.
pub fn urls(addrs: &[SocketAddr], n: usize) -> Vec<String> {
    scheme_urls("ws", addrs, n)
}

/// [`urls`] with another scheme (`wss` for [`start_tls_server`]).
pub fn scheme_urls(scheme: &str, addrs: &[SocketAddr], n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{scheme}://{}/t{i}", addrs[i % addrs.len()])).collect()
}

/// A Python list literal of the URLs, one per line (for the Python clients).
pub fn python_list(urls: &[String]) -> String {
    let mut s = String::from("[\n");
    for u in urls {
        let _ = writeln!(s, "  {u:?},");
    }
    s.push(']');
    s
}

/// Established TCP connections to any of `ports` on loopback, from `/proc/net/tcp`
/// (state `01`), counting the client's side only: local port not a server port.
pub fn established_to(ports: &[u16]) -> usize {
    let text = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = |field: &str| field.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            f.len() > 3
                && f[3] == "01"
                && port(f[2]).is_some_and(|p| ports.contains(&p))
                && port(f[1]).is_some_and(|p| !ports.contains(&p))
        })
        .count()
}
