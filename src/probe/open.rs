//! Opening a session to keep: the probe's connect, upgrade, first message and steps, with
//! the live socket handed back instead of pinged and closed.
//!
//! A held session (`session:` targets) starts exactly like a probe, so its connect is
//! timed by phase and reported as a [`ProbeResult`] through the same code; only the end
//! differs. The probe's deadline (`timeouts.probe`) bounds the opening, and is lifted
//! once the session is handed over ([`Session::hold_open`]).

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use super::session::Session;
use super::{guard, PhaseTimings, ProbeResult, Prober, Reason, Run, Stop, ABANDON_LIMIT};
use crate::util::redact::Redactor;
use crate::util::time::{deadline, unix_now};

/// What opening a session produced: the connect's result, and the session when it
/// succeeded.
#[derive(Debug)]
pub struct Opened {
    pub result: ProbeResult,
    pub session: Option<Session>,
}

impl Prober {
    /// Connects, upgrades, waits for the first message (if the server speaks first) or
    /// runs the steps, and returns the open session. `None` when `cancel` fired first.
    /// A panic is a failed result with the reason `internal_error`, as for a probe.
    pub async fn open(&self, cancel: &CancellationToken) -> Option<Opened> {
        let started = Instant::now();
        let started_at = unix_now();
        let mut run = Run {
            probe_deadline: deadline(started, self.spec.timeouts.probe),
            current: super::Phase::Dns,
            phases: PhaseTimings::default(),
            http_status: None,
            cert_expiry: None,
            cancel: cancel.clone(),
            step: None,
            steps: Vec::new(),
            secrets: Vec::new(),
            keep_open: true,
        };
        let mut slot = None;
        let outcome = match guard::catch(self.flow(&mut run, &mut slot)).await {
            Ok(outcome) => outcome,
            Err(panic) => Err(Stop::Failed(guard::internal_error(&panic))),
        };
        let mut result = ProbeResult {
            http_status: run.http_status,
            phases: std::mem::take(&mut run.phases),
            steps: std::mem::take(&mut run.steps),
            tls_cert_expiry: run.cert_expiry,
            ..self.blank_result(started_at, started.elapsed().as_secs_f64())
        };
        if let Some(s) = &mut slot {
            run.secrets.extend(s.secrets.iter().cloned());
            result.messages_received = s.received;
            result.messages_sent = s.sent;
            result.message_gaps = std::mem::take(&mut s.gaps);
        }
        match outcome {
            Ok(()) => Some(Opened { result, session: slot }),
            Err(Stop::Cancelled) => {
                if let Some(s) = slot {
                    s.abandon(CloseCode::Away, ABANDON_LIMIT).await;
                }
                None
            }
            Err(Stop::Failed(e)) => {
                result.success = false;
                result.reason = Some(e.reason);
                result.phase = Some(run.current);
                result.step = run.step.take();
                result.message = Some(Redactor::new(&run.secrets).redact(&e.message));
                if e.reason == Reason::InternalError {
                    self.log_panic(result.message.as_deref().unwrap_or_default());
                }
                result.http_status = e.http_status.or(result.http_status);
                result.close_code = e.close_code;
                if let Some(s) = slot {
                    if let Some(code) = parting_code(e.reason) {
                        s.abandon(code, ABANDON_LIMIT).await;
                    }
                }
                Some(Opened { result, session: None })
            }
        }
    }
}

/// The close code to send when a session ends with `reason`: the rule a server broke,
/// or a normal close; `None` when the connection is gone or its state unknown.
pub(crate) fn parting_code(reason: Reason) -> Option<CloseCode> {
    match reason {
        Reason::UnexpectedClose | Reason::ConnectionReset | Reason::CloseTimeout | Reason::InternalError => {
            None
        }
        Reason::ProtocolError => Some(CloseCode::Protocol),
        Reason::MessageTooLarge => Some(CloseCode::Size),
        _ => Some(CloseCode::Normal),
    }
}
