//! Helpers for the guarded-listener tests: a CA that signs server and client
//! certificates, a raw HTTP/1.1 client over plain TCP or real TLS (tokio-rustls), and
//! the real `wsprobe run` started with `--web.*` flags.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::http::Response;
use crate::common::process::{spawn, ChildGuard, Output};

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

/// A throwaway CA.
pub struct Ca {
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { pem: cert.pem(), issuer: rcgen::Issuer::new(params, key) }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str]) -> Pair {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair { cert: cert.pem(), key: key.serialize_pem() }
    }

    /// A client configuration trusting this CA, presenting `identity` if given.
    pub fn client(&self, identity: Option<&Pair>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(id) => {
                let certs = CertificateDer::pem_slice_iter(id.cert.as_bytes()).map(Result::unwrap).collect();
                let key = PrivateKeyDer::from_pem_slice(id.key.as_bytes()).unwrap();
                builder.with_client_auth_cert(certs, key).unwrap()
            }
        };
        Arc::new(config)
    }
}

/// Sends `head` (a full request head; `Connection: close` is the caller's) over plain TCP
/// or, with `tls`, over TLS to `127.0.0.1`; reads the whole answer within 5 s.
pub async fn exchange(
    addr: SocketAddr,
    tls: Option<Arc<ClientConfig>>,
    head: &str,
) -> Result<Response, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let raw = match tls {
        None => talk(tcp, head).await?,
        Some(config) => {
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let connector = tokio_rustls::TlsConnector::from(config);
            let stream = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
                .await
                .map_err(|_| "TLS handshake timed out".to_owned())?
                .map_err(|e| format!("TLS handshake: {e}"))?;
            talk(stream, head).await?
        }
    };
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status line")?;
    Ok(Response { status, head: head.to_owned(), body: body.to_owned() })
}

async fn talk<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, head: &str) -> Result<Vec<u8>, String> {
    let run = async {
        stream.write_all(head.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(|e| format!("read: {e}"))?;
        Ok(raw)
    };
    tokio::time::timeout(Duration::from_secs(5), run).await.map_err(|_| "no answer within 5s".to_owned())?
}

/// `GET path` with `Host: addr`, `Connection: close` and the given extra header lines.
pub fn get(addr: SocketAddr, path: &str, extra: &[&str]) -> String {
    request("GET", addr, path, extra)
}

pub fn request(method: &str, addr: SocketAddr, path: &str, extra: &[&str]) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if method == "POST" && !extra.iter().any(|h| h.to_ascii_lowercase().starts_with("content-length")) {
        head.push_str("Content-Length: 0\r\n");
    }
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

/// `Authorization: Basic ...` for `user:password`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The real daemon, its API address and its log (JSON lines).
pub struct Daemon {
    pub child: ChildGuard,
    pub addr: SocketAddr,
    pub log: Receiver<String>,
}

impl Daemon {
    /// Waits for a log line containing `needle`, within 10 s.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?} within 10s"),
            }
        }
    }
}

/// Writes a configuration with one target listening on `listen`, and starts `wsprobe run` with `args` after it.
pub fn start(dir: &Path, listen: &str, args: &[&str]) -> Daemon {
    let config = dir.join("wsprobe.yaml");
    // A port nothing listens on: the target's probes fail at once, which is all the
    // listener tests need of it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    std::fs::write(
        &config,
        format!(
            "listen: {listen}\ndefaults:\n  interval: 1s\ntargets:\n  - name: nowhere\n    url: ws://{closed}/ws\n"
        ),
    )
    .unwrap();
    let mut all = vec!["--log-format", "json", "run", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let (child, log) =
        spawn(&all, &[("RUST_LOG", "info"), ("WSPROBE_HTTP_HEADER_READ_TIMEOUT", "2s")], Output::Stderr);
    let mut daemon = Daemon { child, addr: "127.0.0.1:1".parse().unwrap(), log };
    let line = daemon.wait_log("Serving /metrics and the API.");
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    daemon.addr = json["addr"].as_str().unwrap().parse().unwrap();
    // SIGHUP is handled from here on; before, it would end the process.
    daemon.wait_log("wsprobe started.");
    daemon
}
