//! Network paths for TLS, client-certificate and proxy tests: a TLS front (any rustls
//! server configuration, e.g. one demanding client certificates) before a plain fake
//! server, certificates made by the `openssl` CLI, and hostile HTTP proxies.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A TLS terminator on `127.0.0.1:0` that forwards every connection's plaintext to
/// `backend`, and records the client certificate each connection presented.
#[derive(Debug)]
pub struct TlsFront {
    pub addr: SocketAddr,
    presented: Arc<Mutex<Vec<Option<Vec<u8>>>>>,
    task: JoinHandle<()>,
}

impl TlsFront {
    pub async fn start(config: Arc<ServerConfig>, backend: SocketAddr) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let presented: Arc<Mutex<Vec<Option<Vec<u8>>>>> = Arc::default();
        let seen = presented.clone();
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let cert =
                        tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
                    seen.lock().unwrap_or_else(PoisonError::into_inner).push(cert);
                    let Ok(mut plain) = TcpStream::connect(backend).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Self { addr, presented, task }
    }

    /// `wss://localhost:PORT/ws`.
    pub fn url(&self) -> String {
        format!("wss://localhost:{}/ws", self.addr.port())
    }

    /// The DER client certificate of every connection whose handshake completed.
    pub fn presented(&self) -> Vec<Option<Vec<u8>>> {
        self.presented.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server configuration presenting `cert_pem`/`key_pem` (files), optionally demanding a
/// client certificate issued by `client_ca_pem`.
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Arc<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert).expect("read cert").collect::<Result<_, _>>().expect("cert PEM");
    let key = PrivateKeyDer::from_pem_file(key).expect("key PEM");
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).expect("read CA") {
                roots.add(c.expect("CA PEM")).expect("CA cert");
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    Arc::new(builder.with_single_cert(chain, key).expect("usable server cert and key"))
}

/// Runs `openssl` with `args` in `dir`; panics with its stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run the openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `openssl req -x509` self-signed certificate (so `CA:TRUE`) for localhost and
/// 127.0.0.1: writes `{name}.pem` and `{name}.key` in `dir`.
pub fn openssl_self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            &key,
            "-out",
            &cert,
        ],
    );
    (dir.join(cert), dir.join(key))
}

/// The HPKP `pin-sha256` of a PEM certificate's key, computed by the openssl CLI.
pub fn openssl_pin(dir: &Path, cert: &Path) -> String {
    let cert = cert.to_str().expect("utf-8 path");
    let script = format!(
        "openssl x509 -in '{cert}' -pubkey -noout | openssl pkey -pubin -outform der | \
         openssl dgst -sha256 -binary | openssl base64 -A"
    );
    let out = Command::new("sh").arg("-c").arg(script).current_dir(dir).output().expect("sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("base64").trim().to_owned()
}

/// What a hostile proxy does with each CONNECT.
#[derive(Clone, Debug)]
pub enum ProxyAct {
    /// Answer with these bytes and close.
    Answer(&'static str),
    /// Send the bytes one by one, `Duration` apart.
    Trickle(&'static str, Duration),
    /// Answer 200 and these garbage bytes in the same write.
    OkThenGarbage(&'static str),
    /// Answer 200, wait, then send garbage (nothing is forwarded).
    OkThenLateGarbage(Duration),
    /// Answer 200 and tunnel to this address whatever the CONNECT asked for.
    TunnelTo(SocketAddr),
}

/// A hand-written HTTP proxy on `127.0.0.1:0`; records every request head it reads.
#[derive(Debug)]
pub struct HostileProxy {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl HostileProxy {
    pub async fn start(act: ProxyAct) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (act, seen) = (act.clone(), seen.clone());
                let _ = tcp.set_nodelay(true);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match tcp.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(String::from_utf8_lossy(&head).into());
                    match act {
                        ProxyAct::Answer(text) => {
                            let _ = tcp.write_all(text.as_bytes()).await;
                        }
                        ProxyAct::Trickle(text, gap) => {
                            for b in text.bytes() {
                                if tcp.write_all(&[b]).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(gap).await;
                            }
                        }
                        ProxyAct::OkThenGarbage(garbage) => {
                            let answer = format!("HTTP/1.1 200 Connection established\r\n\r\n{garbage}");
                            let _ = tcp.write_all(answer.as_bytes()).await;
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                        ProxyAct::OkThenLateGarbage(after) => {
                            let _ = tcp.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
                            tokio::time::sleep(after).await;
                            let _ = tcp.write_all(b"<html>Access denied by policy</html>\r\n").await;
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                        ProxyAct::TunnelTo(backend) => {
                            let Ok(mut up) = TcpStream::connect(backend).await else { return };
                            let _ = tcp.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
                            let _ = tokio::io::copy_bidirectional(&mut tcp, &mut up).await;
                        }
                    }
                });
            }
        });
        Self { addr, heads, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for HostileProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
