//! Alerting: the regression detector run live, alert states published, notifications
//! delivered, detector state kept across restarts.
//!
//! One engine task owns the [`Detector`]. Its inputs arrive through one queue
//! ([`queue`]: nothing waits on it; measurements past its bound are dropped and counted,
//! state changes never), a one-second tick drives time-based transitions, and firing
//! alerts are re-sent every `resend_interval` as Alertmanager expects. Delivery happens in
//! the dispatcher's own tasks, so a dead receiver never slows detection, let alone
//! probing. With `state_dir`, the state is written every [`PERSIST_EVERY`] while it
//! changes, which bounds what a crash loses.

mod alert;
pub mod config;
pub mod credentials;
pub mod dispatch;
pub mod http;
pub mod metrics;
pub(crate) mod persist;
mod queue;
pub mod receivers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use alert::rfc3339_unix;
pub use config::{Alerting, RawAlerting};

use crate::detect::{Alert, AlertState, Detector, SessionEvent, Signal, Transition};
use crate::probe::ProbeResult;
use crate::util::text::escape_control;
use crate::util::time::unix_now;
use dispatch::Dispatcher;
use metrics::AlertingMetrics;
use receivers::Context;

/// How often, at most, the detector state is written to `state_dir`: a crash (`kill -9`,
/// OOM) loses at most this much of the detector's input. The first change after start is
/// written at the next one-second tick, and nothing is written while nothing changes.
pub const PERSIST_EVERY: Duration = Duration::from_secs(10);

/// The current pending and firing alerts, for `/api/alerts`.
pub(crate) type AlertsView = watch::Receiver<Arc<Vec<Alert>>>;

#[derive(Debug)]
enum Input {
    Result(Box<ProbeResult>),
    Condition { target: String, signal: Signal, active: bool, detail: Option<String> },
    Retain(Vec<String>),
    Session { target: String, event: SessionEvent },
}

impl Input {
    /// The one target this input concerns; `None` for a reload's target list.
    fn target(&self) -> Option<&str> {
        match self {
            Input::Result(r) => Some(&r.target),
            Input::Condition { target, .. } | Input::Session { target, .. } => Some(target),
            Input::Retain(_) => None,
        }
    }
}

/// Feeds the engine; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct AlertsHandle {
    tx: queue::Sender<Input>,
}

impl AlertsHandle {
    pub fn observe(&self, result: &ProbeResult) {
        self.tx.measurement(Input::Result(Box::new(result.clone())));
    }

    /// Reports what a held session did (a disconnect, the open count, a round trip).
    pub fn session(&self, target: &str, event: SessionEvent) {
        self.tx.measurement(Input::Session { target: target.to_owned(), event });
    }

    /// Reports an external condition (circuit open, deployment drift) for a target, with
    /// a sentence for the alert's description.
    pub fn set_condition(&self, target: &str, signal: Signal, active: bool, detail: Option<String>) {
        self.tx.state_change(Input::Condition { target: target.to_owned(), signal, active, detail });
    }

    /// Forgets targets no longer configured (their alerts resolve).
    pub fn retain(&self, targets: Vec<String>) {
        self.tx.state_change(Input::Retain(targets));
    }
}

/// A view of no alerts, for a daemon without `alerting:`.
pub(crate) fn no_alerts() -> AlertsView {
    watch::channel(Arc::new(Vec::new())).1
}

/// Starts the engine. It ends when `cancel` fires, after a last state write.
pub fn spawn(
    config: &Alerting,
    listen: SocketAddr,
    metrics: AlertingMetrics,
    cancel: CancellationToken,
) -> (AlertsHandle, AlertsView, JoinHandle<()>) {
    spawn_labelled(config, listen, BTreeMap::new(), metrics, cancel)
}

/// [`spawn`], with the instance's `labels:` added to every alert sent.
pub fn spawn_labelled(
    config: &Alerting,
    listen: SocketAddr,
    instance_labels: BTreeMap<String, String>,
    metrics: AlertingMetrics,
    cancel: CancellationToken,
) -> (AlertsHandle, AlertsView, JoinHandle<()>) {
    let ctx = Context {
        external_url: config.external_url.clone().unwrap_or_else(|| format!("http://{listen}")),
        runbook_url: config.runbook_url.clone(),
        resend_interval: config.resend_interval,
        instance_labels,
    };
    let dispatcher = Dispatcher::start(
        config.receivers.clone(),
        ctx,
        config.retry,
        config.queue_capacity,
        metrics.clone(),
        cancel.clone(),
    );
    let state_file = config.state_dir.as_ref().map(|d| d.join("detector.json"));
    let mut detector = Detector::new(config.detector.clone());
    if let Some(path) = &state_file {
        persist::load(path, &mut detector);
    }
    let (tx, rx) = queue::Queue::with_capacity(queue::Queue::DATA, metrics.inputs_dropped.clone());
    let shown = by_target(detector.alerts());
    let (view_tx, view_rx) = watch::channel(Arc::new(shown.values().flatten().cloned().collect()));
    let engine = Engine {
        detector,
        dispatcher,
        metrics,
        view: view_tx,
        shown,
        state_file,
        resend_interval: config.resend_interval,
    };
    let task = tokio::spawn(engine.run(rx, cancel));
    (AlertsHandle { tx }, view_rx, task)
}

struct Engine {
    detector: Detector,
    dispatcher: Dispatcher,
    metrics: AlertingMetrics,
    view: watch::Sender<Arc<Vec<Alert>>>,
    /// What the view shows, by target: an input re-reads only its own target's alerts.
    shown: BTreeMap<String, Vec<Alert>>,
    state_file: Option<PathBuf>,
    resend_interval: Duration,
}

impl Engine {
    async fn run(mut self, mut rx: queue::Receiver<Input>, cancel: CancellationToken) {
        // No tick at once: the first write then holds the first second of results, not
        // only the target list.
        let second = Duration::from_secs(1);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + second, second);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_resend = tokio::time::Instant::now();
        // `None` until the first write, which then happens at the first tick with a change.
        let mut last_persist: Option<tokio::time::Instant> = None;
        let mut changed = false;
        loop {
            // The target the input was about; `None` after a tick or a reload, which may
            // move every target's numbers.
            let mut about = None;
            let transitions = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                input = rx.recv() => {
                    changed = true;
                    about = input.as_ref().and_then(Input::target).map(str::to_owned);
                    match input {
                        None => break,
                        Some(Input::Result(r)) => self.detector.observe(&r, unix_now()),
                        Some(Input::Condition { target, signal, active, detail }) => {
                            self.detector.set_condition(&target, signal, active, detail, unix_now())
                        }
                        Some(Input::Session { target, event }) => {
                            self.detector.observe_session(&target, &event, unix_now())
                        }
                        Some(Input::Retain(keep)) => {
                            self.detector.retain_targets(|t| keep.iter().any(|k| k == t), unix_now())
                        }
                    }
                }
                at = tick.tick() => {
                    let transitions = self.detector.tick(unix_now());
                    changed |= !transitions.is_empty();
                    if last_resend.elapsed() >= self.resend_interval {
                        last_resend = tokio::time::Instant::now();
                        let firing: Vec<Alert> =
                            self.detector.alerts().into_iter().filter(|a| a.state == AlertState::Firing).collect();
                        self.dispatcher.notify(firing);
                    }
                    // Measured between scheduled ticks, so a write every 10 s is not pushed
                    // to 11 s by the time the previous tick took.
                    if changed && last_persist.is_none_or(|t| at.saturating_duration_since(t) >= PERSIST_EVERY) {
                        last_persist = Some(at);
                        changed = false;
                        if let Some((path, state)) = self.snapshot() {
                            persist::save(&path, &state).await;
                        }
                    }
                    transitions
                }
            };
            if !transitions.is_empty() {
                self.apply(transitions);
            }
            self.refresh_view(about.as_deref());
        }
        if let Some((path, state)) = self.snapshot() {
            persist::save(&path, &state).await;
        }
        self.dispatcher.join().await;
    }

    fn apply(&mut self, transitions: Vec<Transition>) {
        let mut notify = Vec::new();
        for t in transitions {
            log_transition(&t);
            let a = &t.alert;
            let scope = a.key.subject.as_ref().map(|s| s.label().1.to_owned()).unwrap_or_default();
            let base = [a.key.kind.as_str(), a.key.target.as_str(), scope.as_str(), a.severity.as_str()];
            for state in ["pending", "firing"] {
                let _ = self.metrics.alerts.remove_label_values(&[base[0], base[1], base[2], base[3], state]);
            }
            if matches!(t.to, AlertState::Pending | AlertState::Firing) {
                let state = if t.to == AlertState::Pending { "pending" } else { "firing" };
                self.metrics.alerts.with_label_values(&[base[0], base[1], base[2], base[3], state]).set(1);
            }
            if t.notifies() {
                notify.push(t.alert);
            }
        }
        self.dispatcher.notify(notify);
    }

    /// Publishes the alerts as of the latest evaluation. Every input and tick re-evaluates
    /// the numbers (a streak grows, a quantile moves) without a state change, and
    /// `/api/alerts` must tell the same numbers the receivers are sent.
    ///
    /// After an input about one target only that target's alerts are read again, so a
    /// probe costs the same however many targets there are; the view is rebuilt (one
    /// copy of every alert, not a walk of every target) only when they changed.
    fn refresh_view(&mut self, about: Option<&str>) {
        let changed = match about {
            Some(target) => {
                let now = self.detector.alerts_of(target);
                let before = self.shown.get(target).map_or(&[][..], Vec::as_slice);
                let changed = before != now.as_slice();
                if changed {
                    if now.is_empty() {
                        self.shown.remove(target);
                    } else {
                        self.shown.insert(target.to_owned(), now);
                    }
                }
                changed
            }
            None => {
                let all = by_target(self.detector.alerts());
                let changed = all != self.shown;
                self.shown = all;
                changed
            }
        };
        if changed {
            let alerts: Vec<Alert> = self.shown.values().flatten().cloned().collect();
            self.view.send_replace(Arc::new(alerts));
        }
    }

    /// The state to write, taken synchronously (the detector is not `Sync`, so no borrow
    /// of it may live across an await).
    fn snapshot(&self) -> Option<(PathBuf, Vec<u8>)> {
        let path = self.state_file.as_ref()?;
        match serde_json::to_vec(&self.detector.snapshot()) {
            Ok(json) => Some((path.clone(), json)),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot serialize the alerting state.");
                None
            }
        }
    }
}

/// Alerts grouped by target, each group in the detector's order.
fn by_target(alerts: Vec<Alert>) -> BTreeMap<String, Vec<Alert>> {
    let mut out: BTreeMap<String, Vec<Alert>> = BTreeMap::new();
    for a in alerts {
        out.entry(a.key.target.clone()).or_default().push(a);
    }
    out
}

fn log_transition(t: &Transition) {
    let a = &t.alert;
    let scope = a.key.subject.as_ref().map(ToString::to_string).unwrap_or_default();
    match t.to {
        AlertState::Firing => tracing::warn!(
            alertname = a.key.kind.as_str(), target_name = %a.key.target, scope = %scope,
            severity = a.severity.as_str(), description = %escape_control(&a.description), "Alert firing."
        ),
        AlertState::Resolved => tracing::info!(
            alertname = a.key.kind.as_str(), target_name = %a.key.target, scope = %scope, "Alert resolved."
        ),
        AlertState::Pending => tracing::info!(
            alertname = a.key.kind.as_str(), target_name = %a.key.target, scope = %scope,
            description = %escape_control(&a.description), "Alert pending."
        ),
        AlertState::Inactive => tracing::debug!(
            alertname = a.key.kind.as_str(), target_name = %a.key.target, scope = %scope,
            "Pending alert cleared before firing."
        ),
    }
}
