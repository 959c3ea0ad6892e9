//! The HTTP listener behind `/metrics` and the API: a hand-written accept loop over
//! hyper's HTTP/1 connection driver, so that no client can hold the daemon's resources.
//!
//! - A client must send its request headers within `header_read_timeout` (10 s).
//! - A keep-alive connection idle for `idle_timeout` (5 s) after a request is closed.
//! - At most `max_connections` (512, and at most a quarter of the descriptor limit, see
//!   [`crate::daemon::fdlimit`]) are open; past that the oldest connection not serving a request
//!   makes room ([`conns`]), so stalled clients cannot lock scrapers out.
//!
//! - With a web configuration (`--web.config.file`, [`web`]) it serves TLS ([`tls`]),
//!   and every request but `/healthz` passes the [`guard`]: Host, rate limit, basic
//!   authentication ([`auth`]) and the cross-site checks on `/-/reload`.
//!
//! Shutdown stops accepting, lets requests in progress finish, and gives connections
//! [`DRAIN`] to close before they are dropped.

pub mod auth;
pub mod conns;
pub mod guard;
mod handshake;
pub mod tls;
pub mod web;
pub mod web_config;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus::{IntCounterVec, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Error, Registry};
use conns::{Admit, Conn, Table};

/// How long shutdown waits for open connections before dropping them.
pub(crate) const DRAIN: Duration = Duration::from_secs(2);
/// At most one WARN per this long about shed connections or accept errors.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The listener's limits. `Default` holds the production values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// Before the descriptor-limit share is applied.
    pub max_connections: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            max_connections: 512,
        }
    }
}

impl Settings {
    /// The defaults, overridden by `WSPROBE_HTTP_HEADER_READ_TIMEOUT`,
    /// `WSPROBE_HTTP_IDLE_TIMEOUT` (durations) and `WSPROBE_HTTP_MAX_CONNECTIONS`.
    pub fn from_env() -> Result<Self, String> {
        let mut s = Self::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let duration = |name: &str, into: &mut Duration| -> Result<(), String> {
            if let Some(v) = var(name) {
                *into = humantime::parse_duration(&v)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("{name}: `{v}` is not a positive duration (e.g. 10s)"))?;
            }
            Ok(())
        };
        duration("WSPROBE_HTTP_HEADER_READ_TIMEOUT", &mut s.header_read_timeout)?;
        duration("WSPROBE_HTTP_IDLE_TIMEOUT", &mut s.idle_timeout)?;
        if let Some(v) = var("WSPROBE_HTTP_MAX_CONNECTIONS") {
            s.max_connections = v
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("WSPROBE_HTTP_MAX_CONNECTIONS: `{v}` is not a positive count"))?;
        }
        Ok(s)
    }
}

crate::label_enum! {
    /// Why the listener closed a connection on its own: the `reason` label values.
    pub enum CloseReason("reason") {
        /// No complete request head within `header_read_timeout`.
        HeaderTimeout => "header_timeout",
        /// Idle for `idle_timeout` after a request.
        IdleTimeout => "idle_timeout",
        /// Room made for a new client.
        Evicted => "evicted",
        /// Every slot was serving a request.
        Refused => "refused",
        /// The TLS handshake failed or did not finish within `header_read_timeout`.
        TlsError => "tls_error",
        /// Plain HTTP sent to the TLS listener (answered with a 400 saying so).
        PlainHttp => "plain_http",
    }
}

/// Connections open and connections the listener closed on its own.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    pub open: IntGauge,
    /// reason: `header_timeout`, `idle_timeout`, `evicted`, `refused`, `tls_error`, `plain_http`.
    pub closed: IntCounterVec,
    /// reason: see [`guard::Refusal`].
    pub refused: IntCounterVec,
}

impl ListenerMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, Error> {
        let open = registry.int_gauge(
            "wsprobe_http_connections",
            "Connections to /metrics and the API holding one of the listener's slots.",
        )?;
        let closed = registry.counter_vec(
            "wsprobe_http_connections_closed_total",
            "Connections to /metrics and the API closed by wsprobe: header_timeout, idle_timeout, \
             evicted (room made for a new client), refused (every slot serving a request), \
             tls_error (failed TLS handshake), plain_http (plain HTTP sent to the TLS listener).",
            &["reason"],
        )?;
        for reason in CloseReason::ALL {
            closed.with_label_values(&[reason.as_str()]);
        }
        let refused = registry.counter_vec(
            "wsprobe_http_requests_refused_total",
            "Requests to the API turned away before reaching it: host (not a name a loopback listener \
             answers to), rate_limited, unauthorized, lifecycle_disabled, cross_site (a /-/reload another \
             site could have sent).",
            &["reason"],
        )?;
        for reason in guard::Refusal::ALL {
            refused.with_label_values(&[reason.as_str()]);
        }
        Ok(Self { open, closed, refused })
    }
}

/// The guard's inputs: the fixed policy and the web configuration in force.
#[derive(Debug, Clone)]
pub struct Guarded {
    pub policy: Arc<web::Policy>,
    pub active: watch::Receiver<Arc<web::Active>>,
}

/// Serves `app` on `listener` with at most `cap` connections until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: Settings,
    cap: usize,
    metrics: ListenerMetrics,
    guarded: Guarded,
    cancel: CancellationToken,
) {
    let table = Table::new(cap);
    let mut tasks = JoinSet::new();
    let mut shed = Warner::default();
    let mut accept_errors = Warner::default();
    loop {
        let stream = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(_) = tasks.join_next() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning; the error clears
                    // when connections close.
                    accept_errors.warn(|n| tracing::warn!(error = %e, errors = n, "Cannot accept HTTP connections."));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match table.admit() {
            Admit::Free(slot) => slot,
            Admit::Evicted(slot) => {
                metrics.closed.with_label_values(&[CloseReason::Evicted.as_str()]).inc();
                shed.warn(|n| {
                    tracing::warn!(
                        max_connections = cap,
                        evicted = n,
                        "HTTP connections are at their cap; closing the oldest ones not serving a request."
                    );
                });
                slot
            }
            Admit::Full => {
                metrics.closed.with_label_values(&[CloseReason::Refused.as_str()]).inc();
                drop(stream);
                continue;
            }
        };
        metrics.open.set(i64::try_from(table.open()).unwrap_or(i64::MAX));
        let (app, metrics, cancel, table) = (app.clone(), metrics.clone(), cancel.clone(), table.clone());
        let guarded = guarded.clone();
        tasks.spawn(async move {
            let tls = guarded.active.borrow().tls.clone();
            match tls {
                None => {
                    connection(stream, false, app, settings, &slot.conn, &metrics, guarded, &cancel).await
                }
                Some(tls) => {
                    let accepted = tokio::select! {
                        biased;
                        () = slot.conn.evicted.cancelled() => None,
                        () = cancel.cancelled() => None,
                        s = handshake::accept(stream, tls, settings.header_read_timeout, &metrics) => s,
                    };
                    if let Some(stream) = accepted {
                        connection(stream, true, app, settings, &slot.conn, &metrics, guarded, &cancel).await;
                    }
                }
            }
            drop(slot);
            metrics.open.set(i64::try_from(table.open()).unwrap_or(i64::MAX));
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::info!(connections = tasks.len(), "Closing HTTP connections still open at shutdown.");
        tasks.abort_all();
    }
}

/// Drives one connection until it ends, times out, is evicted or shutdown completes.
#[allow(clippy::too_many_arguments)]
async fn connection<S>(
    stream: S,
    tls: bool,
    app: Router,
    settings: Settings,
    conn: &Arc<Conn>,
    metrics: &ListenerMetrics,
    guarded: Guarded,
    cancel: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = TowerToHyperService::new(app);
    let state = conn.clone();
    let refused = metrics.refused.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let busy = state.request();
        let (svc, guarded, refused) = (svc.clone(), guarded.clone(), refused.clone());
        async move {
            // Per request, so a reload changes users and headers on open connections too.
            let active = guarded.active.borrow().clone();
            let mut response = match guard::check(&guarded.policy, &active, &req, tls).await {
                Ok(()) => hyper::service::Service::call(&svc, req).await?,
                Err(reason) => {
                    refused.with_label_values(&[reason.as_str()]).inc();
                    tracing::debug!(reason = reason.as_str(), "An API request was refused.");
                    reason.response()
                }
            };
            guard::decorate(&active, &mut response);
            drop(busy);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout).keep_alive(true);
    let mut http = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut closing = false;
    // A graceful close still waits for a response to be written; a client that stopped
    // reading would hold the connection forever, so after one more idle timeout it goes.
    let mut give_up = None;
    loop {
        let idle_until = conn
            .idle_since()
            .map(|t| crate::util::time::deadline(tokio::time::Instant::from_std(t), settings.idle_timeout));
        tokio::select! {
            biased;
            outcome = http.as_mut() => {
                if let Err(e) = outcome {
                    if e.is_timeout() {
                        metrics.closed.with_label_values(&[CloseReason::HeaderTimeout.as_str()]).inc();
                    } else {
                        tracing::debug!(error = %e, "An HTTP connection ended with an error.");
                    }
                }
                return;
            }
            () = conn.evicted.cancelled() => return,
            () = conn.request_done.notified() => {}
            () = sleep_until(give_up), if give_up.is_some() => return,
            () = cancel.cancelled(), if !closing => {
                closing = true;
                http.as_mut().graceful_shutdown();
            }
            () = sleep_until(idle_until), if !closing && idle_until.is_some() => {
                // A request may have begun and ended meanwhile: only close if still idle.
                if conn.idle_since().is_some_and(|t| t.elapsed() >= settings.idle_timeout) {
                    closing = true;
                    give_up = Some(crate::util::time::deadline(tokio::time::Instant::now(), settings.idle_timeout));
                    metrics.closed.with_label_values(&[CloseReason::IdleTimeout.as_str()]).inc();
                    http.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

fn sleep_until(at: Option<tokio::time::Instant>) -> impl Future<Output = ()> {
    let far = || crate::util::time::deadline(tokio::time::Instant::now(), crate::util::time::FAR_FUTURE);
    tokio::time::sleep_until(at.unwrap_or_else(far))
}

/// Counts events and lets one WARN through per [`WARN_EVERY`], with the count since.
#[derive(Debug, Default)]
struct Warner {
    last: Option<Instant>,
    since: u64,
}

impl Warner {
    fn warn(&mut self, log: impl FnOnce(u64)) {
        self.since += 1;
        if self.last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            log(self.since);
            self.since = 0;
            self.last = Some(Instant::now());
        }
    }
}
