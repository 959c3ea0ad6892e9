//! Delivery: one task per receiver, a bounded queue in front of each, retries with
//! exponential back-off.
//!
//! `Dispatcher::notify` never waits: when a receiver's queue is full (it is down and
//! retrying) the notification is dropped and counted. Nothing is lost for long: firing
//! alerts are re-sent every `resend_interval`, and the next delivery carries the current
//! state of every alert it names.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::http::{post_json, PostError};
use super::metrics::AlertingMetrics;
use super::receivers::{alertmanager_body, slack_body, webhook_body, Context};
use crate::detect::Alert;
use crate::net::tls::TlsSettings;
use crate::util::redact::Redactor;
use crate::util::text::escape_control;

/// How a receiver wants its notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `POST {url}/api/v2/alerts`.
    Alertmanager,
    Json,
    Slack,
}

#[derive(Debug, Clone)]
pub struct Receiver {
    /// Configured name; the `receiver` label.
    pub name: String,
    pub url: Uri,
    pub format: Format,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// How an https:// receiver's certificate is verified.
    pub tls: TlsSettings,
    /// The receiver's credentials (URL and header secrets), kept out of every log line.
    pub redactor: Redactor,
}

/// Retry policy of every receiver.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Handle {
    name: String,
    tx: mpsc::Sender<Vec<Alert>>,
}

/// Fans notifications out to every receiver without ever blocking the caller.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    handles: Vec<Handle>,
    tasks: Vec<JoinHandle<()>>,
    metrics: AlertingMetrics,
}

impl Dispatcher {
    pub fn start(
        receivers: Vec<Receiver>,
        ctx: Context,
        retry: Retry,
        queue: usize,
        metrics: AlertingMetrics,
        cancel: CancellationToken,
    ) -> Self {
        let mut handles = Vec::new();
        let mut tasks = Vec::new();
        for r in receivers {
            let (tx, rx) = mpsc::channel(queue.max(1));
            let span = tracing::info_span!("receiver", name = %r.name);
            handles.push(Handle { name: r.name.clone(), tx });
            let task = deliver_loop(r, ctx.clone(), retry, rx, metrics.clone(), cancel.clone());
            tasks.push(tokio::spawn(task.instrument(span)));
        }
        Self { handles, tasks, metrics }
    }

    /// Queues `alerts` for every receiver; drops (and counts) where a queue is full.
    pub fn notify(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        for h in &self.handles {
            if h.tx.try_send(alerts.clone()).is_err() {
                self.metrics.notifications.with_label_values(&[&h.name, "dropped"]).inc();
                tracing::warn!(receiver = %h.name, "Receiver queue full; notification dropped (it will be re-sent).");
            }
        }
    }

    /// Waits for the receiver tasks after cancellation.
    pub async fn join(self) {
        drop(self.handles);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn deliver_loop(
    r: Receiver,
    ctx: Context,
    retry: Retry,
    mut rx: mpsc::Receiver<Vec<Alert>>,
    metrics: AlertingMetrics,
    cancel: CancellationToken,
) {
    let url = match r.format {
        Format::Alertmanager => alertmanager_url(&r.url),
        _ => r.url.clone(),
    };
    loop {
        let alerts = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            next = rx.recv() => match next { Some(a) => a, None => return },
        };
        let body = match r.format {
            Format::Alertmanager => alertmanager_body(&ctx, &alerts, SystemTime::now()),
            Format::Json => webhook_body(&ctx, &alerts),
            Format::Slack => slack_body(&ctx, &alerts),
        };
        let mut backoff = retry.first_backoff;
        for attempt in 1..=retry.max_attempts {
            match post_json(&url, &r.headers, &body, r.timeout, &r.tls).await {
                Ok(_) => {
                    metrics.notifications.with_label_values(&[&r.name, "sent"]).inc();
                    tracing::debug!(alerts = alerts.len(), attempt, "Notification delivered.");
                    break;
                }
                Err(e) if attempt < retry.max_attempts && e.retryable() => {
                    metrics.notifications.with_label_values(&[&r.name, "retried"]).inc();
                    let error = shown_error(&e, &r.redactor);
                    tracing::debug!(error = %error, attempt, "Notification failed; retrying.");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(retry.max_backoff);
                }
                Err(e) => {
                    metrics.notifications.with_label_values(&[&r.name, "failed"]).inc();
                    give_up(&r.name, &shown_error(&e, &r.redactor), attempt);
                    break;
                }
            }
        }
    }
}

fn give_up(receiver: &str, error: &str, attempts: u32) {
    tracing::error!(receiver, error, attempts, "Could not deliver an alert notification.");
}

/// A delivery error as logged: the receiver's answer may echo the request, credentials
/// and all, so it is redacted (before it is cut) and kept on one line.
fn shown_error(e: &PostError, redactor: &Redactor) -> String {
    let text = match e {
        PostError::Status { status, body } => format!("HTTP {status}: {}", redactor.excerpt(body, 200)),
        other => redactor.redact(&other.to_string()),
    };
    escape_control(&text).into_owned()
}

/// `http://host:9093` or `http://host:9093/prefix` → `.../api/v2/alerts`.
fn alertmanager_url(base: &Uri) -> Uri {
    let text = base.to_string();
    let text = text.trim_end_matches('/');
    let full =
        if text.ends_with("/api/v2/alerts") { text.to_owned() } else { format!("{text}/api/v2/alerts") };
    full.parse().unwrap_or_else(|_| base.clone())
}
