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
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alerting::AlertsView;
use crate::config::{self, Config, Target};
use crate::daemon::metrics::Metrics;
use crate::state::{self, Event, StateView, TargetInfo};
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
    /// `--web.config.file` is invalid: a usage error (exit 2), like a bad configuration.
    #[error("{0}")]
    WebConfig(crate::config::ConfigError),
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
    /// Every target's status, assembled when asked for.
    pub snapshot: StateView,
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
    /// Probe only the targets of this shard (`--shard`); `None`: every target.
    pub shard: Option<crate::shard::Shard>,
    /// TLS, authentication and request checks of the listener (`--web.*`).
    pub web: crate::listener::web::Options,
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
    let shard = options.shard.unwrap_or(crate::shard::Shard::ALL);
    let mut config = config;
    keep_shard(&mut config, shard);
    let probers = probers(&config)?;
    let web_active = match &options.web.config_file {
        Some(path) => crate::listener::web::load(path).map_err(DaemonError::WebConfig)?,
        None => crate::listener::web::Active::default(),
    };
    let web = crate::listener::web::Handle::new(options.web.config_file.clone(), web_active);
    let listener_settings = match options.listener {
        Some(s) => s,
        None => crate::listener::Settings::from_env().map_err(DaemonError::Listener)?,
    };
    let fd_limit = fdlimit::raise();
    let max_connections = fdlimit::listener_cap(listener_settings.max_connections, fd_limit);
    let metrics = Metrics::new()?;
    metrics.identity(shard, &config.labels)?;
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
            let labels = config.labels.clone();
            let (handle, view, task) =
                crate::alerting::spawn_labelled(a, addr, labels, metrics.alerting()?, cancel.clone());
            helpers.push(task);
            (Some(handle), view)
        }
        None => (None, crate::alerting::no_alerts()),
    };

    let (state, snapshot) = state::new();
    let state_dir = config.alerting.as_ref().and_then(|a| a.state_dir.clone());
    let (history, history_view, history_task) = crate::history::spawn(state_dir, cancel.clone());
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
        shard,
        tasks: HashMap::new(),
        recorder: Recorder {
            metrics: metrics.target.clone(),
            state,
            record,
            alerts,
            phases: crate::probe::PhaseHistograms::ALL,
            series: Default::default(),
            last_succeeded: Default::default(),
            history,
        },
        metrics: metrics.clone(),
        cancel: cancel.clone(),
        web: web.clone(),
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
        crate::listener::Guarded {
            policy: Arc::new(crate::listener::web::Policy::new(addr, &options.web)),
            active: web.subscribe(),
        },
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
        web = %web.subscribe().borrow().summary(),
        lifecycle = options.web.enable_lifecycle,
        "Serving /metrics and the API."
    );
    Ok(Running { addr, shared, supervisor, server, helpers })
}

struct TargetTask {
    target: Target,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
    /// A session target's count, changed in place by a reload.
    sessions: Option<crate::target::sessions::Resize>,
}

struct Supervisor {
    source: Source,
    config: Config,
    shard: crate::shard::Shard,
    limit: Arc<Semaphore>,
    shutdown_grace: Duration,
    tasks: HashMap<String, TargetTask>,
    recorder: Recorder,
    metrics: Metrics,
    cancel: CancellationToken,
    /// The listener's web configuration, re-read with the configuration.
    web: crate::listener::web::Handle,
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
        let shard = self.shard;
        let loaded = loaded.map(|mut c| {
            keep_shard(&mut c, shard);
            c
        });
        let loaded = loaded.and_then(|c| probers(&c).map(|p| (c, p)).map_err(|e| e.to_string()));
        // Both files or neither: an invalid web configuration keeps the old of each.
        let loaded = loaded.and_then(|(c, p)| self.web.prepare().map(|w| (c, p, w)));
        match loaded {
            Ok((config, probers, web)) => {
                if let Some(web) = web {
                    self.web.install(web);
                }
                if config.listen != self.config.listen {
                    tracing::warn!(
                        listen = %config.listen,
                        "`listen` changed; the new address takes effect at the next restart."
                    );
                }
                if config.alerting != self.config.alerting {
                    tracing::warn!("`alerting` changed; it takes effect at the next restart.");
                }
                if config.labels != self.config.labels {
                    tracing::warn!("`labels` changed; they take effect at the next restart.");
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
        let infos: Vec<TargetInfo> = probers
            .iter()
            .map(|p| TargetInfo {
                name: p.target.name.clone(),
                url: p.target.url.source().to_owned(),
                interval_seconds: p.target.interval.as_secs_f64(),
            })
            .collect();
        self.recorder.history.targets(infos.iter().map(|i| i.name.clone()).collect());
        self.recorder.state.send(Event::Targets(infos)).await;

        let mut old = std::mem::take(&mut self.tasks);
        // One instant for the whole spread: starting thousands of tasks takes a while, and
        // offsets counted from each task's own start would stretch the spread past one
        // interval, bunching the last targets' probes onto the first ones'.
        let spread_from = tokio::time::Instant::now();
        for (index, prober) in probers.into_iter().enumerate() {
            let name = prober.target.name.clone();
            if let Some(task) = old.remove(&name) {
                if task.target == *prober.target && !task.handle.is_finished() {
                    self.tasks.insert(name, task);
                    continue;
                }
                if let Some(resize) = task.sessions.as_ref().filter(|_| !task.handle.is_finished()) {
                    if crate::target::sessions::only_count_changed(&task.target, &prober.target) {
                        // The sessions that stay are kept open; only the difference moves.
                        resize.to(prober.target.session.as_ref().map_or(0, |s| s.count));
                        let target = (*prober.target).clone();
                        tracing::info!(target_name = %name, "Session count changed; resizing in place.");
                        self.tasks.insert(name, TargetTask { target, ..task });
                        continue;
                    }
                }
                task.cancel.cancel();
                if task.sessions.is_some() && prober.target.session.is_none() {
                    self.recorder.state.send(Event::Sessions { target: name.clone(), view: None }).await;
                }
                // Steps, health checks and remote breakers it no longer has; the breaker
                // restarts closed.
                retain_series(&metrics.target, &prober.target);
                tracing::info!(target_name = %name, "Target settings changed; restarting its probes.");
            } else {
                metrics.target.add_target(&name);
            }
            let cancel = self.cancel.child_token();
            let first_due = spread_from + scheduler::initial_offset(prober.target.interval, index, count);
            let target = (*prober.target).clone();
            let (handle, sessions) = if target.session.is_some() {
                let (handle, resize) =
                    crate::target::sessions::spawn(prober, self.recorder.clone(), cancel.clone());
                (handle, Some(resize))
            } else {
                let handle = scheduler::spawn_target(
                    prober,
                    first_due,
                    self.limit.clone(),
                    self.recorder.clone(),
                    cancel.clone(),
                );
                (handle, None)
            };
            self.tasks.insert(name, TargetTask { target, cancel, handle, sessions });
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

/// Keeps only the targets `shard` owns. A target's health checks, remote breakers and
/// sessions are part of it, so they go wherever it goes.
fn keep_shard(config: &mut Config, shard: crate::shard::Shard) {
    let before = config.targets.len();
    config.targets.retain(|t| shard.owns(&t.name));
    if shard != crate::shard::Shard::ALL {
        tracing::info!(
            shard = %shard,
            targets = config.targets.len(),
            of = before,
            "Probing this shard's targets only."
        );
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
    if target.session.is_none() {
        metrics.session.forget(&target.name);
    }
    metrics.probe.retain_phases(&target.name, target.phase_histograms);
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
