//! The open WebSocket session: reading under deadlines, ping, close.
//!
//! Every wait is bounded by several clocks at once: the wait's own deadline (a whole-step
//! deadline, so a server trickling bytes cannot extend it), the idle timeout (silence since
//! the last frame of any kind), the wait's `max_gap` (silence since the last data message)
//! and the probe deadline. The wait's own deadline is the caller's to report (`Ok(None)`);
//! the others fail as `stalled` or `probe_timeout`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::upgrade::Socket;
use super::{ProbeError, Reason, Stop};
use crate::probe::scenario::Hooks;
use crate::util::matcher::Received;
use crate::util::redact::Redactor;
use crate::util::template::Vars;
use crate::util::time::{deadline, fmt_duration};

/// Gaps kept per probe for the gap histogram; a flooding server cannot grow memory past it.
const MAX_GAPS: usize = 4096;

/// One wait's own bound: its deadline and, for streams, the longest silence allowed.
#[derive(Debug, Clone)]
pub struct Wait {
    pub started: Instant,
    pub deadline: Instant,
    pub timeout: Duration,
    /// Longest time without a data message (since the wait began) before `stalled`.
    pub max_gap: Option<Duration>,
}

impl Wait {
    pub fn new(timeout: Duration) -> Self {
        let started = Instant::now();
        Self { started, deadline: deadline(started, timeout), timeout, max_gap: None }
    }

    pub fn with_max_gap(mut self, max_gap: Option<Duration>) -> Self {
        self.max_gap = max_gap;
        self
    }
}

/// An event the probe acts on; pings are answered and skipped by the library.
#[derive(Debug)]
pub enum Event {
    Data(Message),
    Pong(Bytes),
}

#[derive(Debug)]
pub struct Session {
    ws: Socket,
    idle: Duration,
    probe_deadline: Instant,
    cancel: CancellationToken,
    hooks: Arc<Hooks>,
    /// Variables for templates: the target, captures so far.
    pub vars: Vars,
    /// Values substituted from the environment or files, to redact from reports.
    pub secrets: Vec<String>,
    /// A redactor for `secrets`, rebuilt when they grow.
    redactor: (usize, Redactor),
    opened: Instant,
    last_traffic: Instant,
    last_data: Option<Instant>,
    /// Time from the upgrade to the first data message, once one arrived.
    pub first_data_after: Option<Duration>,
    pub received: u64,
    pub sent: u64,
    pub gaps: Vec<f64>,
}

impl Session {
    pub fn new(
        ws: Socket,
        idle: Duration,
        probe_deadline: Instant,
        cancel: CancellationToken,
        hooks: Arc<Hooks>,
        vars: Vars,
    ) -> Self {
        let now = Instant::now();
        Self {
            ws,
            idle,
            probe_deadline,
            cancel,
            hooks,
            vars,
            secrets: Vec::new(),
            redactor: (0, Redactor::default()),
            opened: now,
            last_traffic: now,
            last_data: None,
            first_data_after: None,
            received: 0,
            sent: 0,
            gaps: Vec::new(),
        }
    }

    /// The next data message or pong. `Ok(None)` when the wait's own deadline passed;
    /// silence (`stalled`), the probe deadline and the connection's failures are errors.
    pub async fn next_event(&mut self, wait: &Wait) -> Result<Option<Event>, Stop> {
        loop {
            let idle_deadline = deadline(self.last_traffic, self.idle);
            let gap_deadline = wait
                .max_gap
                .map(|g| deadline(self.last_data.map_or(wait.started, |d| d.max(wait.started)), g));
            let mut deadline = wait.deadline.min(idle_deadline).min(self.probe_deadline);
            if let Some(g) = gap_deadline {
                deadline = deadline.min(g);
            }
            let next = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Stop::Cancelled),
                r = tokio::time::timeout_at(deadline, self.ws.next()) => r,
            };
            let frame = match next {
                Err(_elapsed) if deadline == wait.deadline && deadline <= self.probe_deadline => {
                    return Ok(None)
                }
                Err(_elapsed) => return Err(Stop::Failed(self.expired(deadline, idle_deadline, wait))),
                Ok(None) => {
                    return Err(fail(
                        Reason::ConnectionReset,
                        "server closed the connection without a close frame",
                    ))
                }
                Ok(Some(Err(e))) => return Err(Stop::Failed(read_error(e))),
                Ok(Some(Ok(frame))) => frame,
            };
            let now = Instant::now();
            self.last_traffic = now;
            match frame {
                Message::Text(_) | Message::Binary(_) => {
                    self.received += 1;
                    self.first_data_after.get_or_insert(now - self.opened);
                    if let Some(prev) = self.last_data.replace(now) {
                        if self.gaps.len() < MAX_GAPS {
                            self.gaps.push((now - prev).as_secs_f64());
                        }
                    }
                    if self.apply_hooks(&frame, wait).await? {
                        continue;
                    }
                    return Ok(Some(Event::Data(frame)));
                }
                Message::Pong(payload) => return Ok(Some(Event::Pong(payload))),
                Message::Close(close) => return Err(Stop::Failed(self.server_closed(close.as_ref()))),
                Message::Ping(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Target-level rules: `fail_on` ends the probe, `respond` answers and consumes.
    async fn apply_hooks(&mut self, frame: &Message, wait: &Wait) -> Result<bool, Stop> {
        if self.hooks.is_empty() {
            return Ok(false);
        }
        let received = Received::of(frame);
        if self.hooks.fail_on.iter().any(|m| m.matches(&received)) {
            let shown = received.excerpt(160, self.redactor());
            return Err(fail(Reason::ErrorMessage, format!("server sent an error message: {shown}")));
        }
        let Some(reply) =
            self.hooks.respond.iter().find(|r| r.when.matches(&received)).map(|r| r.send.clone())
        else {
            return Ok(false);
        };
        let msg = reply
            .render(&self.vars, &mut self.secrets)
            .map_err(|e| fail(Reason::SendError, format!("cannot build the automatic reply: {e}")))?;
        self.send(msg, wait).await?;
        Ok(true)
    }

    /// Everything substituted so far in this probe, for redacting server text before it
    /// is cut or quoted. Built once per change of the secrets, not per message.
    pub fn redactor(&mut self) -> &Redactor {
        if self.redactor.0 != self.secrets.len() {
            self.redactor = (self.secrets.len(), Redactor::new(&self.secrets));
        }
        &self.redactor.1
    }

    /// The failure a close frame from the server means: judged by the code on the wire,
    /// since the library replaces a forbidden one with 1002 before we see it.
    fn server_closed(&mut self, close: Option<&CloseFrame>) -> ProbeError {
        let on_wire = self.ws.get_ref().snapshot().close_code;
        let redactor = self.redactor();
        match on_wire {
            Some(Some(code)) if !super::close::may_be_sent(code) => super::close::forbidden(code),
            // The library rewrote the frame (it still refuses 1014): its reason is made up.
            Some(Some(code)) if close.is_none_or(|f| u16::from(f.code) != code) => unexpected_close(
                Some(&CloseFrame { code: CloseCode::from(code), reason: "".into() }),
                redactor,
            ),
            _ => unexpected_close(close, redactor),
        }
    }

    fn expired(&self, deadline: Instant, idle_deadline: Instant, wait: &Wait) -> ProbeError {
        if deadline == self.probe_deadline {
            ProbeError::new(Reason::ProbeTimeout, "the probe ran out of time (timeouts.probe)")
        } else if deadline == idle_deadline {
            ProbeError::new(
                Reason::Stalled,
                format!("nothing received for {} (timeouts.idle)", fmt_duration(self.idle)),
            )
        } else {
            let gap = wait.max_gap.unwrap_or_default();
            ProbeError::new(
                Reason::Stalled,
                format!("the stream went quiet: no message for {} (max_gap)", fmt_duration(gap)),
            )
        }
    }

    /// Sends a data message, counted; failures are `send_error`.
    pub async fn send(&mut self, msg: Message, wait: &Wait) -> Result<(), Stop> {
        self.send_frame(msg, wait).await?;
        self.sent += 1;
        Ok(())
    }

    async fn send_frame(&mut self, msg: Message, wait: &Wait) -> Result<(), Stop> {
        let deadline = wait.deadline.min(self.probe_deadline);
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(Stop::Cancelled),
            r = tokio::time::timeout_at(deadline, self.ws.send(msg)) => match r {
                Err(_) if deadline == self.probe_deadline && deadline < wait.deadline => {
                    Err(fail(Reason::ProbeTimeout, "the probe ran out of time (timeouts.probe)"))
                }
                Err(_) => Err(fail(Reason::SendError, format!("could not send within {}", fmt_duration(wait.timeout)))),
                Ok(Err(e)) if is_reset(&e) => Err(fail(Reason::ConnectionReset, format!("connection lost: {e}"))),
                Ok(Err(e)) => Err(fail(Reason::SendError, format!("cannot send: {e}"))),
                Ok(Ok(())) => Ok(()),
            },
        }
    }

    /// Sends a protocol ping and waits for its pong; returns the round trip.
    pub async fn ping(&mut self, timeout: Duration) -> Result<Duration, Stop> {
        let wait = Wait::new(timeout);
        let payload = Bytes::from(rand::random::<u64>().to_be_bytes().to_vec());
        let start = Instant::now();
        self.send_frame(Message::Ping(payload.clone()), &wait).await?;
        loop {
            match self.next_event(&wait).await? {
                Some(Event::Pong(p)) if p == payload => return Ok(start.elapsed()),
                Some(_) => {}
                None => {
                    return Err(fail(
                        Reason::PingTimeout,
                        format!("no pong within {}", fmt_duration(timeout)),
                    ))
                }
            }
        }
    }

    /// The close handshake: sends a close frame and waits for the server's.
    ///
    /// A server that drops the connection after our close frame, without its own, has
    /// still ended the session; only silence past the timeout fails.
    pub async fn close_with(
        &mut self,
        code: CloseCode,
        reason: &str,
        timeout: Duration,
    ) -> Result<Duration, Stop> {
        let wait = Wait::new(timeout);
        let start = Instant::now();
        let frame = CloseFrame { code, reason: reason.to_owned().into() };
        match self.send_frame(Message::Close(Some(frame)), &wait).await {
            Ok(()) => {}
            Err(Stop::Failed(e)) if e.reason == Reason::SendError => return Err(Stop::Failed(e)),
            Err(other) => return Err(other),
        }
        loop {
            let deadline = wait.deadline.min(self.probe_deadline);
            let next = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Stop::Cancelled),
                r = tokio::time::timeout_at(deadline, self.ws.next()) => r,
            };
            match next {
                Err(_) if deadline < wait.deadline => {
                    return Err(fail(Reason::ProbeTimeout, "the probe ran out of time (timeouts.probe)"))
                }
                Err(_) => {
                    return Err(fail(
                        Reason::CloseTimeout,
                        format!("no close frame from the server within {}", fmt_duration(timeout)),
                    ))
                }
                Ok(Some(Ok(Message::Close(_)))) => match self.ws.get_ref().snapshot().close_code {
                    Some(Some(code)) if !super::close::may_be_sent(code) => {
                        return Err(Stop::Failed(super::close::forbidden(code)))
                    }
                    _ => return Ok(start.elapsed()),
                },
                Ok(None) | Ok(Some(Err(WsError::ConnectionClosed))) => return Ok(start.elapsed()),
                Ok(Some(Err(e))) if is_reset(&e) => return Ok(start.elapsed()),
                Ok(Some(Err(e))) => return Err(Stop::Failed(read_error(e))),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Puts a protocol ping on the wire without waiting for its pong, so a held session
    /// keeps reading (and matching heartbeat answers) while the pong is on its way.
    pub(crate) async fn send_ping(&mut self, payload: Bytes, wait: &Wait) -> Result<(), Stop> {
        self.send_frame(Message::Ping(payload), wait).await
    }

    /// Turns a probe's session into a held one: silence is judged by `stale_after`
    /// instead of `timeouts.idle`, and the probe's deadline no longer applies.
    pub(crate) fn hold_open(&mut self, stale_after: Duration) {
        self.idle = stale_after;
        self.probe_deadline = deadline(Instant::now(), crate::util::time::FAR_FUTURE);
    }

    /// Best-effort close on shutdown or failure: never waits longer than `limit`.
    pub async fn abandon(mut self, code: CloseCode, limit: Duration) {
        let frame = CloseFrame { code, reason: "wsprobe stopping".into() };
        let _ = tokio::time::timeout(limit, async {
            if self.ws.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(msg)) = self.ws.next().await {
                    if msg.is_close() {
                        break;
                    }
                }
            }
        })
        .await;
    }
}

fn fail(reason: Reason, message: impl Into<String>) -> Stop {
    Stop::Failed(ProbeError::new(reason, message))
}

fn unexpected_close(close: Option<&CloseFrame>, redactor: &Redactor) -> ProbeError {
    let mut err = match close {
        Some(frame) => {
            let code = u16::from(frame.code);
            let mut e = ProbeError::new(
                Reason::UnexpectedClose,
                format!(
                    "server closed the session with code {code}{}",
                    quoted_reason(&frame.reason, redactor)
                ),
            );
            e.close_code = Some(code);
            e
        }
        None => ProbeError::new(Reason::UnexpectedClose, "server closed the session without a code"),
    };
    err.message = redactor.excerpt(&err.message, 200);
    err
}

/// The server's close reason, redacted before it is cut and quoted, so neither the cut nor
/// the escaping can let part of a secret through.
fn quoted_reason(reason: &str, redactor: &Redactor) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({:?})", redactor.excerpt(reason, 64))
    }
}

fn is_reset(e: &WsError) -> bool {
    match e {
        WsError::Io(io) => io_reason(io) == Some(Reason::ConnectionReset),
        WsError::Protocol(p) => {
            matches!(p, tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake)
        }
        _ => false,
    }
}

/// I/O errors that mean the peer went away.
pub(crate) fn io_reason(e: &io::Error) -> Option<Reason> {
    use io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected)
        .then_some(Reason::ConnectionReset)
}

/// Maps a read failure of an open session to its one reason.
fn read_error(e: WsError) -> ProbeError {
    use tokio_tungstenite::tungstenite::error::CapacityError;
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => ProbeError::new(
            Reason::MessageTooLarge,
            format!("server sent a message of {size} bytes; the limit is {max_size} (max_message_size)"),
        ),
        WsError::Capacity(c) => ProbeError::new(Reason::MessageTooLarge, format!("message too large: {c}")),
        e if is_reset(&e) => ProbeError::new(Reason::ConnectionReset, format!("connection lost: {e}")),
        WsError::Io(io) => ProbeError::new(Reason::ProtocolError, format!("connection failed: {io}")),
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            ProbeError::new(Reason::ConnectionReset, "the connection is closed")
        }
        WsError::Tls(t) => ProbeError::new(Reason::TlsError, format!("TLS failure mid-session: {t}")),
        other => {
            ProbeError::new(Reason::ProtocolError, format!("server broke the WebSocket protocol: {other}"))
        }
    }
}
