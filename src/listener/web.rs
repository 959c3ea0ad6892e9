//! What guards the listener: the web configuration in force (TLS, users, headers, rate
//! limit), swapped whole on reload, and the fixed policy from the command line (listen
//! address, extra host names, whether the lifecycle endpoint is on).
//!
//! The configuration in force sits in a `watch` channel: a new connection takes its TLS
//! configuration from the latest value, every request its users and headers. A reload
//! that finds the file invalid leaves the value as it was.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use tokio::sync::watch;

use super::auth::BasicAuth;
use super::guard::RateLimiter;
use super::web_config::{self, WebConfig};
use crate::config::ConfigError;

/// Command-line settings of the listener's guard.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--web.config.file`.
    pub config_file: Option<PathBuf>,
    /// `--web.enable-lifecycle`: whether `POST /-/reload` is served.
    pub enable_lifecycle: bool,
    /// `--web.allowed-hosts`: names besides `localhost` and IP literals a loopback
    /// listener answers to.
    pub allowed_hosts: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self { config_file: None, enable_lifecycle: true, allowed_hosts: Vec::new() }
    }
}

/// The part of the guard fixed for the process's life.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The address actually bound.
    pub listen: SocketAddr,
    pub enable_lifecycle: bool,
    /// Lower case, without a trailing dot.
    pub allowed_hosts: Vec<String>,
}

impl Policy {
    pub fn new(listen: SocketAddr, options: &Options) -> Self {
        let allowed_hosts = options
            .allowed_hosts
            .iter()
            .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        Self { listen, enable_lifecycle: options.enable_lifecycle, allowed_hosts }
    }
}

/// A web configuration ready to serve.
#[derive(Debug, Default)]
pub struct Active {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<Arc<BasicAuth>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub limiter: Option<RateLimiter>,
}

impl Active {
    /// Builds the TLS configuration (reading the certificate, key and CA files now) and
    /// the user table.
    pub fn build(config: WebConfig) -> Result<Self, Vec<String>> {
        let tls = config.tls.as_ref().map(super::tls::server_config).transpose()?;
        let auth = (!config.users.is_empty()).then(|| Arc::new(BasicAuth::new(config.users)));
        let headers = config
            .headers
            .into_iter()
            .filter_map(|(name, value)| {
                Some((HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_str(&value).ok()?))
            })
            .collect();
        let limiter = config.rate_limit.map(RateLimiter::new);
        Ok(Self { tls, auth, headers, limiter })
    }

    /// One line for the log: what this configuration turns on.
    pub fn summary(&self) -> String {
        let tls = if self.tls.is_some() { "TLS on" } else { "TLS off" };
        let auth = if self.auth.is_some() { "basic auth on" } else { "basic auth off" };
        format!("{tls}, {auth}")
    }
}

/// Reads the web configuration at `path` and builds it; errors name the file and field.
pub fn load(path: &Path) -> Result<Active, ConfigError> {
    let config = web_config::load(path)?;
    Active::build(config).map_err(|problems| ConfigError { file: path.to_owned(), problems })
}

/// The daemon's hold on the configuration in force: it re-reads the file on reload.
#[derive(Debug, Clone)]
pub struct Handle {
    path: Option<PathBuf>,
    tx: Arc<watch::Sender<Arc<Active>>>,
}

impl Handle {
    /// Starts with `active` (already loaded from `path`, if any).
    pub fn new(path: Option<PathBuf>, active: Active) -> Self {
        let (tx, _) = watch::channel(Arc::new(active));
        Self { path, tx: Arc::new(tx) }
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Active>> {
        self.tx.subscribe()
    }

    /// Re-reads the file, without putting it in force yet.
    pub fn prepare(&self) -> Result<Option<Active>, String> {
        match &self.path {
            None => Ok(None),
            Some(path) => load(path).map(Some).map_err(|e| e.to_string()),
        }
    }

    /// Puts a prepared configuration in force for new connections and requests.
    pub fn install(&self, active: Active) {
        tracing::info!(web_config = ?self.path, summary = %active.summary(), "Web configuration reloaded.");
        self.tx.send_replace(Arc::new(active));
    }
}
