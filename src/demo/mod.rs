//! `wsprobe demo`: an embedded service and a daemon probing it, showing every feature.
//!
//! No configuration file, no network beyond loopback. The service listens on three
//! ephemeral loopback ports: WebSocket (`/agent`, `/flaky`, see [`stream`]; `/session`,
//! held sessions cut on a cycle, see [`session`]), `wss://`
//! with a certificate made at start ([`tls`]), and HTTP (health with version drift,
//! remote breakers and a webhook for alert notifications, see [`http`]). [`config`] is
//! the configuration the daemon runs with; [`browser`] opens the status page on request.

mod browser;
mod config;
mod flaky;
mod http;
mod session;
mod stream;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use browser::open_browser;
pub use config::config_yaml;
pub use http::{DRIFTED_VERSION, EXPECTED_VERSION};

/// Where the demo service listens, the CA file its `wss://` certificate chains to, and
/// that certificate's key pin.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub ws: SocketAddr,
    pub wss: SocketAddr,
    pub http: SocketAddr,
    pub ca_file: PathBuf,
    /// The `wss://` server key's pin (`pin_sha256`).
    pub pin_sha256: String,
}

/// The running demo service; dropping it stops the listeners and removes the CA file.
#[derive(Debug)]
pub struct DemoServer {
    pub endpoints: Endpoints,
    tasks: Vec<JoinHandle<()>>,
    _scratch: tls::ScratchDir,
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the demo service on ephemeral loopback ports; `interval` (the demo's probe
/// interval) paces the session cut cycle.
pub async fn start_server(interval: Duration) -> std::io::Result<DemoServer> {
    let identity = tls::make().map_err(std::io::Error::other)?;
    let scratch = tls::ScratchDir::create()?;
    let ca_file = scratch.write("demo-ca.pem", &identity.ca_pem)?;

    let ws = TcpListener::bind(("127.0.0.1", 0)).await?;
    let wss = TcpListener::bind(("127.0.0.1", 0)).await?;
    let http = TcpListener::bind(("127.0.0.1", 0)).await?;
    let endpoints = Endpoints {
        ws: ws.local_addr()?,
        wss: wss.local_addr()?,
        http: http.local_addr()?,
        ca_file,
        pin_sha256: identity.pin_sha256,
    };
    tracing::debug!(dir = %scratch.path().display(), "The demo's CA file is written.");

    let flaky_count = Arc::new(AtomicU64::new(0));
    let cycle = Arc::new(session::Cycle::new(interval));
    let plain = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = ws.accept().await else { continue };
            tokio::spawn(stream::serve_tcp(stream, flaky_count.clone(), cycle.clone()));
        }
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.server);
    let secure = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = wss.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = stream::serve_plain(tls).await;
                }
            });
        }
    });
    let web = tokio::spawn(async move {
        if let Err(e) = axum::serve(http, http::router()).await {
            tracing::warn!(error = %e, "The demo's HTTP service stopped.");
        }
    });
    Ok(DemoServer { endpoints, tasks: vec![plain, secure, web], _scratch: scratch })
}
