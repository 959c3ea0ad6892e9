//! The open WebSocket session: reading under deadlines, ping, close.
//!
//! Every wait is bounded by three clocks at once: the wait's own deadline (a whole-step
//! deadline, so a server trickling bytes cannot extend it), the idle timeout (silence since
//! the last frame of any kind) and the probe deadline. Whichever comes first names the
//! failure: the wait's reason, `stalled`, or `probe_timeout`.

use std::io;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::tls::Conn;
use super::{ProbeError, Reason, Stop};

/// Gaps kept per probe for the gap histogram; a flooding server cannot grow memory past it.
const MAX_GAPS: usize = 4096;

/// What a wait is for: its deadline and how to report missing it.
#[derive(Debug, Clone)]
pub struct Wait {
    pub deadline: Instant,
    pub reason: Reason,
    /// Completes "...within {timeout}", e.g. "no first message".
    pub what: String,
    pub timeout: Duration,
}

/// An event the probe acts on; pings are answered and skipped by the library.
#[derive(Debug)]
pub enum Event {
    Data(Message),
    Pong(Bytes),
}

#[derive(Debug)]
pub struct Session {
    ws: WebSocketStream<Conn>,
    idle: Duration,
    probe_deadline: Instant,
    cancel: CancellationToken,
    last_traffic: Instant,
    last_data: Option<Instant>,
    pub received: u64,
    pub sent: u64,
    pub gaps: Vec<f64>,
}

impl Session {
    pub fn new(
        ws: WebSocketStream<Conn>,
        idle: Duration,
        probe_deadline: Instant,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            ws,
            idle,
            probe_deadline,
            cancel,
            last_traffic: Instant::now(),
            last_data: None,
            received: 0,
            sent: 0,
            gaps: Vec::new(),
        }
    }

    /// A wait that ends `timeout` from now (or at the probe deadline, if sooner).
    pub fn wait(&self, timeout: Duration, reason: Reason, what: impl Into<String>) -> Wait {
        Wait { deadline: Instant::now() + timeout, reason, what: what.into(), timeout }
    }

    /// The next data message or pong, under the wait's deadline, idle timeout and probe deadline.
    pub async fn next_event(&mut self, wait: &Wait) -> Result<Event, Stop> {
        loop {
            let idle_deadline = self.last_traffic + self.idle;
            let deadline = wait.deadline.min(idle_deadline).min(self.probe_deadline);
            let next = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Stop::Cancelled),
                r = tokio::time::timeout_at(deadline, self.ws.next()) => r,
            };
            let frame = match next {
                Err(_elapsed) => return Err(Stop::Failed(self.expired(wait, deadline, idle_deadline))),
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
                    if let Some(prev) = self.last_data.replace(now) {
                        if self.gaps.len() < MAX_GAPS {
                            self.gaps.push((now - prev).as_secs_f64());
                        }
                    }
                    return Ok(Event::Data(frame));
                }
                Message::Pong(payload) => return Ok(Event::Pong(payload)),
                Message::Close(close) => return Err(Stop::Failed(unexpected_close(close.as_ref()))),
                Message::Ping(_) | Message::Frame(_) => {}
            }
        }
    }

    fn expired(&self, wait: &Wait, deadline: Instant, idle_deadline: Instant) -> ProbeError {
        if deadline == self.probe_deadline && self.probe_deadline < wait.deadline.min(idle_deadline) {
            ProbeError::new(Reason::ProbeTimeout, "the probe ran out of time (timeouts.probe)")
        } else if deadline == idle_deadline && idle_deadline < wait.deadline {
            ProbeError::new(
                Reason::Stalled,
                format!("nothing received for {} (timeouts.idle)", fmt_duration(self.idle)),
            )
        } else {
            ProbeError::new(
                wait.reason,
                format!(
                    "{} within {} ({} received so far)",
                    wait.what,
                    fmt_duration(wait.timeout),
                    self.received
                ),
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
                Err(_) => Err(fail(wait.reason, format!("could not send within {}", fmt_duration(wait.timeout)))),
                Ok(Err(e)) => Err(fail(Reason::SendError, format!("cannot send: {e}"))),
                Ok(Ok(())) => Ok(()),
            },
        }
    }

    /// Sends a protocol ping and waits for its pong; returns the round trip.
    pub async fn ping(&mut self, timeout: Duration) -> Result<Duration, Stop> {
        let wait = self.wait(timeout, Reason::PingTimeout, "no pong");
        let payload = Bytes::from(rand::random::<u64>().to_be_bytes().to_vec());
        let start = Instant::now();
        self.send_frame(Message::Ping(payload.clone()), &wait).await?;
        loop {
            if let Event::Pong(p) = self.next_event(&wait).await? {
                if p == payload {
                    return Ok(start.elapsed());
                }
            }
        }
    }

    /// The close handshake: sends a close frame and waits for the server's.
    ///
    /// A server that drops the connection after our close frame, without its own, has
    /// still ended the session; only silence past the timeout fails.
    pub async fn close(&mut self, code: CloseCode, timeout: Duration) -> Result<Duration, Stop> {
        let wait = self.wait(timeout, Reason::CloseTimeout, "no close frame from the server");
        let start = Instant::now();
        let frame = CloseFrame { code, reason: "wsprobe done".into() };
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
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(WsError::ConnectionClosed))) => {
                    return Ok(start.elapsed())
                }
                Ok(Some(Err(e))) if is_reset(&e) => return Ok(start.elapsed()),
                Ok(Some(Err(e))) => return Err(Stop::Failed(read_error(e))),
                Ok(Some(Ok(_))) => {}
            }
        }
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

fn unexpected_close(close: Option<&CloseFrame>) -> ProbeError {
    let mut err = match close {
        Some(frame) => {
            let code = u16::from(frame.code);
            let mut e = ProbeError::new(
                Reason::UnexpectedClose,
                format!("server closed the session with code {code}{}", quoted_reason(&frame.reason)),
            );
            e.close_code = Some(code);
            e
        }
        None => ProbeError::new(Reason::UnexpectedClose, "server closed the session without a code"),
    };
    err.message.truncate(200);
    err
}

fn quoted_reason(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        let shown: String = reason.chars().take(64).collect();
        format!(" ({:?})", shown)
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
pub fn io_reason(e: &io::Error) -> Option<Reason> {
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

/// `1.5s`, `250ms`: durations as users write them in the configuration.
pub fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis().min(u128::from(u64::MAX)) as u64))
        .to_string()
}
