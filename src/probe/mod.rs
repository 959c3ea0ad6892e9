//! One probe of one target: each phase timed by us and bounded by its own timeout.
//!
//! The phases run in order (`resolve`, `tcp`, `tls`, `upgrade`, then the `session` and its
//! scenario), so a failure is attributed to exactly one phase and one [`Reason`].
//! `timeouts.probe` bounds the whole: every wait takes the earlier of its own deadline and
//! the probe's.

mod close;
mod exported;
mod guard;
mod interim;
pub mod metrics;
mod open;
mod outcome;
mod proxy;
pub mod resolve;
pub mod scenario;
pub mod session;
mod settings;
mod tap;
pub mod tcp;
pub mod upgrade;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

pub use exported::PhaseHistograms;
pub(crate) use open::parting_code;
pub use open::Opened;
pub use outcome::{Phase, PhaseTimings, ProbeError, ProbeResult, Reason, StepResult};
use session::{Event, Session, Wait};
pub use settings::{ProbeSpec, Timeouts};

use crate::net::tls;
use crate::net::{NetError, NetErrorKind};
use crate::util::headers::expand_headers;
use crate::util::redact::Redactor;
use crate::util::template::Vars;
use crate::util::time::{deadline, fmt_duration, unix_now};
use crate::util::url::{parse_ws_url, WsUrl};
use scenario::{Hooks, StepKind};

/// Why a probe stopped early.
#[derive(Debug)]
pub enum Stop {
    Failed(ProbeError),
    /// Shutdown or reload: not a result, nothing is recorded.
    Cancelled,
}

/// The probe's reason for a failed resolve, connect or handshake; the sentence is kept.
impl From<NetError> for ProbeError {
    fn from(e: NetError) -> Self {
        let reason = match e.kind {
            NetErrorKind::Dns => Reason::DnsError,
            NetErrorKind::Refused => Reason::ConnectRefused,
            NetErrorKind::Connect => Reason::ConnectError,
            NetErrorKind::Tls | NetErrorKind::NotTls => Reason::TlsError,
        };
        ProbeError::new(reason, e.message)
    }
}

impl From<ProbeError> for Stop {
    fn from(e: ProbeError) -> Self {
        Stop::Failed(e)
    }
}

/// How long a failing or cancelled probe spends trying to close politely.
const ABANDON_LIMIT: Duration = Duration::from_millis(500);

/// A target made ready to probe: its TLS configuration built once.
#[derive(Debug, Clone)]
pub struct Prober {
    pub spec: Arc<ProbeSpec>,
    hooks: Arc<Hooks>,
    tls: Option<Arc<ClientConfig>>,
    /// TLS to an `https://` proxy, when the target has a proxy setting.
    proxy_tls: Option<Arc<ClientConfig>>,
    /// Whether a panic was caught in this target's probes and logged already.
    panicked: Arc<AtomicBool>,
    resolver: Arc<dyn resolve::Resolve>,
    /// The URL taken apart once, when nothing in it is substituted.
    fixed_url: Option<WsUrl>,
}

impl Prober {
    /// Prepares a target; fails if its TLS settings cannot be loaded.
    pub fn new(spec: impl Into<ProbeSpec>) -> Result<Self, String> {
        Self::with_resolver(spec, Arc::new(resolve::System))
    }

    /// Like [`Prober::new`], with host names resolved by `resolver` instead of the system.
    pub fn with_resolver(
        spec: impl Into<ProbeSpec>,
        resolver: Arc<dyn resolve::Resolve>,
    ) -> Result<Self, String> {
        let spec = spec.into();
        let parsed = spec.url.expand().ok().and_then(|u| parse_ws_url(&u).ok());
        let secure = parsed.as_ref().is_some_and(|u| u.secure);
        let fixed_url = parsed.filter(|_| !spec.url.has_substitutions());
        let tls = if secure { Some(tls::client_config(&spec.tls)?) } else { None };
        let proxy_tls = match spec.proxy {
            crate::net::proxy::ProxySetting::Direct => None,
            _ => Some(tls::proxy_client_config(&spec.tls)?),
        };
        Ok(Self {
            proxy_tls,
            hooks: Arc::new(spec.hooks.clone()),
            spec: Arc::new(spec),
            tls,
            panicked: Arc::default(),
            resolver,
            fixed_url,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Runs one probe. `None` when `cancel` fired first (the session was closed politely).
    ///
    /// A panic inside the probe is a bug in wsprobe, not a verdict on the server: it is
    /// reported as a failed result with the reason `internal_error` (the phase in progress
    /// when known), and the caller carries on with its next probe.
    pub async fn probe(&self, cancel: &CancellationToken) -> Option<ProbeResult> {
        let started = Instant::now();
        let started_at = unix_now();
        match guard::catch(self.probe_unguarded(cancel, started, started_at)).await {
            Ok(result) => result,
            Err(panic) => {
                // The phases were over: building the result itself panicked. Its text may
                // quote server text, and the probe's secrets are gone with its frame, so
                // it is not shown.
                drop(panic);
                let e = guard::internal_error("a panic while building the probe's result");
                self.log_panic(&e.message);
                let mut result = self.blank_result(started_at, started.elapsed().as_secs_f64());
                result.success = false;
                result.reason = Some(e.reason);
                result.message = Some(e.message);
                Some(result)
            }
        }
    }

    /// Logs the first panic caught in this target's probes; later ones are in the results.
    /// `detail` is the result's message, already redacted.
    fn log_panic(&self, detail: &str) {
        if !self.panicked.swap(true, Ordering::Relaxed) {
            tracing::error!(
                target_name = %self.spec.name,
                detail = %detail,
                "A bug in wsprobe was caught while probing this target: the probe fails with \
                 internal_error and the target keeps being probed. Later occurrences are not logged \
                 again. Please report it."
            );
        }
    }

    fn blank_result(&self, started_at: f64, duration: f64) -> ProbeResult {
        blank_result(&self.spec.name, started_at, duration)
    }

    async fn probe_unguarded(
        &self,
        cancel: &CancellationToken,
        started: Instant,
        started_at: f64,
    ) -> Option<ProbeResult> {
        let mut run = Run {
            probe_deadline: deadline(started, self.spec.timeouts.probe),
            current: Phase::Dns,
            phases: PhaseTimings::default(),
            http_status: None,
            cert_expiry: None,
            cancel: cancel.clone(),
            step: None,
            steps: Vec::new(),
            secrets: Vec::new(),
            keep_open: false,
        };
        let mut session = None;
        let mut panicked = false;
        let outcome = match guard::catch(self.flow(&mut run, &mut session)).await {
            Ok(outcome) => outcome,
            Err(panic) => {
                panicked = true;
                Err(Stop::Failed(guard::internal_error(&panic)))
            }
        };
        let duration = started.elapsed().as_secs_f64();
        let (received, sent, gaps) = match &mut session {
            Some(s) => {
                run.secrets.append(&mut s.secrets);
                (s.received, s.sent, std::mem::take(&mut s.gaps))
            }
            None => (0, 0, Vec::new()),
        };
        let mut result = ProbeResult {
            http_status: run.http_status,
            phases: run.phases,
            steps: run.steps,
            messages_received: received,
            messages_sent: sent,
            tls_cert_expiry: run.cert_expiry,
            message_gaps: gaps,
            ..self.blank_result(started_at, duration)
        };
        match outcome {
            Ok(()) => Some(result),
            Err(Stop::Cancelled) => {
                if let Some(s) = session {
                    s.abandon(CloseCode::Away, ABANDON_LIMIT).await;
                }
                None
            }
            Err(Stop::Failed(e)) => {
                result.success = false;
                result.reason = Some(e.reason);
                result.phase = Some(run.current);
                result.step = run.step;
                // Whatever was substituted from the environment or a file is a secret.
                result.message = Some(Redactor::new(&run.secrets).redact(&e.message));
                if panicked {
                    // Logged redacted, as the result shows it.
                    self.log_panic(result.message.as_deref().unwrap_or_default());
                }
                result.http_status = e.http_status.or(result.http_status);
                result.close_code = e.close_code;
                if let Some(s) = session {
                    if !matches!(
                        e.reason,
                        Reason::UnexpectedClose
                            | Reason::ConnectionReset
                            | Reason::CloseTimeout
                            // After a panic the session's state is unknown: drop it unspoken.
                            | Reason::InternalError
                    ) {
                        // Tell a server that broke the protocol which rule it broke.
                        let code = match e.reason {
                            Reason::ProtocolError => CloseCode::Protocol,
                            Reason::MessageTooLarge => CloseCode::Size,
                            _ => CloseCode::Normal,
                        };
                        s.abandon(code, ABANDON_LIMIT).await;
                    }
                }
                Some(result)
            }
        }
    }

    async fn flow(&self, run: &mut Run, session_slot: &mut Option<Session>) -> Result<(), Stop> {
        let t = &*self.spec;
        let to = &t.timeouts;
        // Substitutions are expanded at every probe so rotated secrets are used at once.
        let vars = Vars { target: t.name.clone(), captures: Default::default() };
        let expand_failed =
            |what: String| ProbeError::new(Reason::ConnectError, format!("cannot expand {what}"));
        let parsed;
        let url = match &self.fixed_url {
            Some(url) => url,
            None => {
                let expanded = t
                    .url
                    .expand_with(&vars, &mut run.secrets)
                    .map_err(|e| expand_failed(format!("the url: {e}")))?;
                parsed = parse_ws_url(&expanded).map_err(|why| {
                    ProbeError::new(Reason::ConnectError, format!("the url `{}` {why}", t.url.source()))
                })?;
                &parsed
            }
        };
        let headers = expand_headers(&t.headers, &vars, &mut run.secrets)
            .map_err(|why| ProbeError::new(Reason::ConnectError, why))?;
        let mut subprotocols = Vec::with_capacity(t.subprotocols.len());
        for p in &t.subprotocols {
            let value = p
                .expand_with(&vars, &mut run.secrets)
                .map_err(|e| expand_failed(format!("a subprotocol: {e}")))?;
            subprotocols.push(value);
        }

        // Through a proxy, `dns` and `connect` are about the proxy.
        run.current = Phase::Proxy;
        let via = proxy::route(&t.proxy, url, &vars, &mut run.secrets)?;
        let (dial_host, dial_port) =
            via.as_ref().map_or((url.host.as_str(), url.port), |p| (p.host.as_str(), p.port));
        let addrs = run
            .phase(
                Phase::Dns,
                to.dns,
                Reason::DnsError,
                "DNS resolution did not finish",
                self.resolver.resolve(dial_host, dial_port),
            )
            .await?;
        let tcp = run
            .phase(
                Phase::Connect,
                to.connect,
                Reason::ConnectTimeout,
                "TCP connect did not finish",
                tcp::connect(&addrs),
            )
            .await?;
        let mut conn = tls::Conn::Plain(tcp);
        if let Some(p) = &via {
            let what = format!("the proxy {} did not complete the CONNECT exchange", p.shown());
            let open = proxy::open(conn, p, self.proxy_tls.as_ref(), url);
            conn = run.phase(Phase::Proxy, to.proxy, Reason::ProxyError, &what, open).await?;
        }
        let conn = match &self.tls {
            Some(config) if url.secure => {
                let name = t.tls.server_name.as_deref().unwrap_or(&url.host);
                let (conn, expiry) = run
                    .phase(Phase::Tls, to.tls, Reason::TlsTimeout, "TLS handshake did not finish", async {
                        tls::handshake_over(config.clone(), name, conn)
                            .await
                            .map_err(|e| proxy::tls_failure(e, via.as_ref()))
                    })
                    .await?;
                run.cert_expiry = expiry;
                conn
            }
            _ => conn,
        };
        let ws = run
            .phase(
                Phase::Handshake,
                to.handshake,
                Reason::HandshakeTimeout,
                "no upgrade response",
                upgrade::upgrade(&url.uri, headers, &subprotocols, t.max_message_size, conn),
            )
            .await
            .inspect_err(|stop| {
                // A TLS alert read with the upgrade's answer is the TLS phase's verdict.
                if matches!(stop, Stop::Failed(e) if e.reason == Reason::TlsError) {
                    run.current = Phase::Tls;
                }
            })?;
        run.http_status = Some(101);
        let session = session_slot.insert(Session::new(
            ws,
            to.idle,
            run.probe_deadline,
            run.cancel.clone(),
            self.hooks.clone(),
            vars,
        ));
        // Server text read during the session is redacted as it is read, with every secret
        // of the connection known by then.
        session.secrets.extend(run.secrets.iter().cloned());

        if t.steps.is_empty() {
            if t.server_speaks_first {
                run.current = Phase::FirstMessage;
                first_message(session, to.first_message).await?;
                run.record_first_message(session);
            }
            if run.keep_open {
                return Ok(());
            }
            run.current = Phase::Ping;
            let rtt = session.ping(to.ping).await?;
            run.phases.set(Phase::Ping, rtt.as_secs_f64());
        } else {
            // The scenario moves `run.current` itself, so a panic inside it still names
            // the phase it was in.
            run.current = Phase::Step;
            let outcome =
                scenario::run(session, &t.steps, to, &mut run.steps, &mut run.current, &mut run.step).await;
            // With a script, the first message is whatever arrived first: timed, not awaited.
            run.record_first_message(session);
            for (phase, secs) in outcome? {
                run.phases.set(phase, secs);
            }
            if run.keep_open {
                return Ok(());
            }
            if matches!(t.steps.last().map(|s| &s.kind), Some(StepKind::Close { .. })) {
                return Ok(());
            }
        }

        run.current = Phase::Close;
        let closed = session.close_with(CloseCode::Normal, "", to.close).await?;
        run.phases.set(Phase::Close, closed.as_secs_f64());
        Ok(())
    }
}

/// A result for a target that got none: the probe's task ended without one (a bug in
/// wsprobe). Failed, with the reason `internal_error` and no phase.
pub(crate) fn missing_result(target: &str, why: &str) -> ProbeResult {
    let e = guard::internal_error(why);
    ProbeResult {
        success: false,
        reason: Some(e.reason),
        message: Some(e.message),
        ..blank_result(target, unix_now(), 0.0)
    }
}

fn blank_result(target: &str, started_at: f64, duration: f64) -> ProbeResult {
    ProbeResult { duration_seconds: duration, started_at, ..ProbeResult::new(target) }
}

/// Waits for the server's first data message.
async fn first_message(session: &mut Session, timeout: Duration) -> Result<(), Stop> {
    let wait = Wait::new(timeout);
    loop {
        match session.next_event(&wait).await? {
            Some(Event::Data(_)) => return Ok(()),
            Some(Event::Pong(_)) => {}
            None => {
                let message = format!("no first message within {}", fmt_duration(timeout));
                return Err(ProbeError::new(Reason::FirstMessageTimeout, message).into());
            }
        }
    }
}

/// The running probe's bookkeeping: which phase is in progress and what was measured.
struct Run {
    probe_deadline: Instant,
    current: Phase,
    phases: PhaseTimings,
    http_status: Option<u16>,
    cert_expiry: Option<i64>,
    cancel: CancellationToken,
    /// The scenario step in progress, if any.
    step: Option<String>,
    steps: Vec<StepResult>,
    /// Substituted values, to redact from the report.
    secrets: Vec<String>,
    /// Stop once connected and scripted, leaving the session open ([`Prober::open`]).
    keep_open: bool,
}

impl Run {
    /// Time from the upgrade to the first data message, if one came.
    fn record_first_message(&mut self, session: &Session) {
        if let Some(first) = session.first_data_after {
            self.phases.set(Phase::FirstMessage, first.as_secs_f64());
        }
    }

    /// Runs one connection phase under its timeout and the probe deadline, timing it.
    async fn phase<T>(
        &mut self,
        phase: Phase,
        timeout: Duration,
        timeout_reason: Reason,
        what: &str,
        fut: impl Future<Output = Result<T, ProbeError>>,
    ) -> Result<T, Stop> {
        self.current = phase;
        let start = Instant::now();
        let own = deadline(start, timeout);
        let until = own.min(self.probe_deadline);
        let out = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Err(Stop::Cancelled),
            r = tokio::time::timeout_at(until, fut) => r,
        };
        match out {
            Ok(Ok(value)) => {
                self.phases.set(phase, start.elapsed().as_secs_f64());
                Ok(value)
            }
            Ok(Err(e)) => Err(Stop::Failed(e)),
            Err(_) if until < own => {
                Err(ProbeError::new(Reason::ProbeTimeout, "the probe ran out of time (timeouts.probe)")
                    .into())
            }
            Err(_) => {
                Err(ProbeError::new(timeout_reason, format!("{what} within {}", fmt_duration(timeout)))
                    .into())
            }
        }
    }
}
