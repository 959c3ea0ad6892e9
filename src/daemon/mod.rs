//! The daemon: loads targets into probing tasks, serves the HTTP API, reloads, shuts down.
//!
//! One supervisor task owns the running target tasks. A reload re-reads the file and, if
//! it is valid, restarts only the targets whose settings changed; an invalid file keeps
//! the old configuration running and says why. Shutdown cancels one token that every task
//! holds: in-flight probes send their close frames, and the daemon waits for them up to
//! `shutdown_grace`.

pub mod api;
mod fdlimit;
pub mod metrics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alerting::AlertsView;
use crate::config::{self, Config, Target};
use crate::daemon::metrics::Metrics;
use crate::state::{self, Event, Snapshot, TargetInfo};
use crate::target::metrics::TargetMetrics;
use crate::target::scheduler::{self, Recorder};
use crate::target::Prepared;
use crate::util::time::unix_now;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("target `{target}`: {reason}")]
    Tls { target: String, reason: String },
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot open the record file `{path}`: {source}")]
    Record { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Listener(String),
}

/// Where the configuration comes from, and so what a reload re-reads.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    /// Built in (the demo): reloading has nothing to re-read.
    Fixed,
}

/// A reload request from the API or SIGHUP; the answer says what happened.
pub(crate) type ReloadReply = oneshot::Sender<Result<String, String>>;

/// What the HTTP API needs from the daemon.
#[derive(Debug, Clone)]
pub struct Shared {
    pub metrics: Metrics,
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub reload: mpsc::Sender<ReloadReply>,
    /// Pending and firing alerts (always empty without `alerting:`).
    pub alerts: AlertsView,
    /// Each target's recent history, for the status page.
    pub history: crate::history::HistoryView,
}

/// Optional behaviour of `wsprobe run`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Append every probe result to this JSON-lines file.
    pub record: Option<PathBuf>,
    /// The HTTP listener's limits; `None`: the defaults with the `WSPROBE_HTTP_*`
    /// environment overrides.
    pub listener: Option<crate::listener::Settings>,
}

/// A started daemon.
#[derive(Debug)]
pub struct Running {
    /// The address `/metrics` and the API are served on.
    pub addr: SocketAddr,
    pub shared: Shared,
    supervisor: JoinHandle<()>,
    server: JoinHandle<()>,
    /// The record writer and the alert engine, when configured.
    helpers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until the daemon has stopped (after `cancel` fired).
    pub async fn wait(self) {
        let _ = self.supervisor.await;
        let _ = self.server.await;
        for h in self.helpers {
            let _ = h.await;
        }
    }
}

/// Builds every prober first, so a bad TLS file is reported before anything starts.
fn probers(config: &Config) -> Result<Vec<Prepared>, DaemonError> {
    config
        .targets
        .iter()
        .map(|t| {
            Prepared::new(t.clone()).map_err(|reason| DaemonError::Tls { target: t.name.clone(), reason })
        })
        .collect()
}

/// Binds the listener and starts probing. Everything stops when `cancel` fires.
pub async fn start(
    config: Config,
    source: Source,
    cancel: CancellationToken,
) -> Result<Running, DaemonError> {
    start_with(config, source, cancel, Options::default()).await
}

/// [`start`] with options.
pub async fn start_with(
    config: Config,
    source: Source,
    cancel: CancellationToken,
    options: Options,
) -> Result<Running, DaemonError> {
    let probers = probers(&config)?;
    let listener_settings = match options.listener {
        Some(s) => s,
        None => crate::listener::Settings::from_env().map_err(DaemonError::Listener)?,
    };
    let fd_limit = fdlimit::raise();
    let max_connections = fdlimit::listener_cap(listener_settings.max_connections, fd_limit);
    let metrics = Metrics::new()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| DaemonError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| DaemonError::Bind { addr: config.listen, source })?;

    let mut helpers = Vec::new();
    let record = match &options.record {
        Some(path) => {
            let (handle, task) = crate::record::open(path)
                .await
                .map_err(|source| DaemonError::Record { path: path.clone(), source })?;
            helpers.push(task);
            Some(handle)
        }
        None => None,
    };
    let (alerts, alerts_view) = match &config.alerting {
        Some(a) => {
            let (handle, view, task) = crate::alerting::spawn(a, addr, metrics.alerting()?, cancel.clone());
            helpers.push(task);
            (Some(handle), view)
        }
        None => (None, crate::alerting::no_alerts()),
    };

    let (state, snapshot) = state::spawn();
    let state_dir = config.alerting.as_ref().and_then(|a| a.state_dir.clone());
    let (history, history_view, history_task) =
        crate::history::spawn(state_dir, snapshot.clone(), cancel.clone());
    helpers.push(history_task);
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let shared = Shared {
        metrics: metrics.clone(),
        snapshot,
        reload: reload_tx,
        alerts: alerts_view,
        history: history_view,
    };

    let supervisor_cap = config.max_concurrent_probes.map_or(0, std::num::NonZeroUsize::get);
    let mut supervisor = Supervisor {
        source,
        limit: crate::slots::pool(config.max_concurrent_probes),
        shutdown_grace: config.shutdown_grace,
        config,
        tasks: HashMap::new(),
        recorder: Recorder { metrics: metrics.target.clone(), state, record, alerts, history },
        metrics: metrics.clone(),
        cancel: cancel.clone(),
    };
    supervisor.apply(probers).await;
    metrics.reload_successful.set(1);
    metrics.reload_timestamp.set(unix_now());
    let supervisor = tokio::spawn(supervisor.run(reload_rx));

    let app = api::router(shared.clone());
    let server = tokio::spawn(crate::listener::serve(
        listener,
        app,
        listener_settings,
        max_connections,
        metrics.listener.clone(),
        cancel.clone(),
    ));
    tracing::info!(
        %addr,
        fd_limit = fd_limit.soft.unwrap_or(0),
        fd_limit_raised_from = fd_limit.raised_from.unwrap_or(0),
        max_connections,
        header_read_timeout = %humantime::format_duration(listener_settings.header_read_timeout),
        idle_timeout = %humantime::format_duration(listener_settings.idle_timeout),
        max_concurrent_probes = supervisor_cap,
        "Serving /metrics and the API."
    );
    Ok(Running { addr, shared, supervisor, server, helpers })
}

struct TargetTask {
    target: Target,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

struct Supervisor {
    source: Source,
    config: Config,
    limit: Arc<Semaphore>,
    shutdown_grace: Duration,
    tasks: HashMap<String, TargetTask>,
    recorder: Recorder,
    metrics: Metrics,
    cancel: CancellationToken,
}

impl Supervisor {
    async fn run(mut self, mut reloads: mpsc::Receiver<ReloadReply>) {
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                Some(reply) = reloads.recv() => {
                    let outcome = self.reload().await;
                    let _ = reply.send(outcome);
                }
            }
        }
        self.drain().await;
    }

    /// Waits for in-flight probes to close their sessions, up to the grace period.
    async fn drain(self) {
        let running = self.tasks.len();
        let mut handles: Vec<_> = self.tasks.into_values().map(|t| t.handle).collect();
        let all = futures_util::future::join_all(handles.iter_mut());
        if tokio::time::timeout(self.shutdown_grace, all).await.is_err() {
            tracing::warn!(
                grace = %humantime::format_duration(self.shutdown_grace),
                "Shutdown grace period ran out; abandoning the probes still running."
            );
            for h in &handles {
                h.abort();
            }
        } else {
            tracing::info!(targets = running, "All probes stopped.");
        }
    }

    async fn reload(&mut self) -> Result<String, String> {
        let metrics = self.metrics.clone();
        let loaded = match &self.source {
            Source::Fixed => Err("this configuration is built in; there is no file to reload".to_owned()),
            Source::File(path) => config::load(path).map_err(|e| e.to_string()),
        };
        let loaded = loaded.and_then(|c| probers(&c).map(|p| (c, p)).map_err(|e| e.to_string()));
        match loaded {
            Ok((config, probers)) => {
                if config.listen != self.config.listen {
                    tracing::warn!(
                        listen = %config.listen,
                        "`listen` changed; the new address takes effect at the next restart."
                    );
                }
                if config.alerting != self.config.alerting {
                    tracing::warn!("`alerting` changed; it takes effect at the next restart.");
                }
                if config.max_concurrent_probes != self.config.max_concurrent_probes {
                    tracing::warn!("`max_concurrent_probes` changed; it takes effect at the next restart.");
                }
                self.shutdown_grace = config.shutdown_grace;
                self.config = config;
                let count = probers.len();
                self.apply(probers).await;
                metrics.reload_successful.set(1);
                metrics.reload_timestamp.set(unix_now());
                tracing::info!(targets = count, "Configuration reloaded.");
                Ok(format!("configuration reloaded: {count} targets"))
            }
            Err(why) => {
                metrics.reload_successful.set(0);
                tracing::error!(error = %why, "Configuration reload rejected; the previous configuration stays in force.");
                Err(why)
            }
        }
    }

    /// Starts, keeps or restarts target tasks so that exactly `probers` run.
    async fn apply(&mut self, probers: Vec<Prepared>) {
        let metrics = &self.metrics;
        let count = probers.len();
        let infos = probers
            .iter()
            .map(|p| TargetInfo {
                name: p.target.name.clone(),
                url: p.target.url.source().to_owned(),
                interval_seconds: p.target.interval.as_secs_f64(),
            })
            .collect();
        self.recorder.state.send(Event::Targets(infos)).await;

        let mut old = std::mem::take(&mut self.tasks);
        for (index, prober) in probers.into_iter().enumerate() {
            let name = prober.target.name.clone();
            if let Some(task) = old.remove(&name) {
                if task.target == *prober.target && !task.handle.is_finished() {
                    self.tasks.insert(name, task);
                    continue;
                }
                task.cancel.cancel();
                // Steps, health checks and remote breakers it no longer has; the breaker
                // restarts closed.
                retain_series(&metrics.target, &prober.target);
                tracing::info!(target_name = %name, "Target settings changed; restarting its probes.");
            } else {
                metrics.target.add_target(&name);
            }
            let cancel = self.cancel.child_token();
            let offset = scheduler::initial_offset(prober.target.interval, index, count);
            let target = (*prober.target).clone();
            let handle = scheduler::spawn_target(
                prober,
                offset,
                self.limit.clone(),
                self.recorder.clone(),
                cancel.clone(),
            );
            self.tasks.insert(name, TargetTask { target, cancel, handle });
        }
        for (name, task) in old {
            task.cancel.cancel();
            metrics.target.forget(&name);
            tracing::info!(target_name = %name, "Target removed from the configuration.");
        }
        metrics.targets.set(i64::try_from(self.tasks.len()).unwrap_or(i64::MAX));
        if let Some(alerts) = &self.recorder.alerts {
            alerts.retain(self.tasks.keys().cloned().collect());
        }
    }
}

/// Drops the series of the steps, health checks and remote breakers a restarted target's
/// new settings no longer produce.
fn retain_series(metrics: &TargetMetrics, target: &Target) {
    let steps: Vec<&str> = target.steps.iter().map(|s| s.name.as_str()).collect();
    metrics.probe.retain_steps(&target.name, &steps);
    let checks: Vec<&str> = target.health.iter().map(|c| c.name.as_str()).collect();
    let breakers: Vec<&str> =
        target.remote_breakers.iter().flat_map(|r| r.paths.iter().map(|(n, _)| n.as_str())).collect();
    let reports_version = target.health.iter().any(|c| c.version_path.is_some());
    metrics.health.retain(&target.name, &checks, &breakers, reports_version);
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; shutting down."),
        () = term => tracing::info!("SIGTERM received; shutting down."),
    }
}

/// Forwards SIGHUP to the reload channel, for the `kill -HUP` habit.
pub fn reload_on_sighup(reload: mpsc::Sender<ReloadReply>, cancel: CancellationToken) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP received; reloading the configuration.");
                    let (tx, rx) = oneshot::channel();
                    if reload.send(tx).await.is_err() { return; }
                    let _ = rx.await;
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (reload, cancel);
}

/// Requests a reload and waits for its outcome.
pub(crate) async fn request_reload(reload: &mpsc::Sender<ReloadReply>) -> Result<String, String> {
    let (tx, rx) = oneshot::channel();
    reload.send(tx).await.map_err(|_| "the daemon is shutting down".to_owned())?;
    rx.await.map_err(|_| "the daemon is shutting down".to_owned())?
}
