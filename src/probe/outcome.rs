//! What a probe reports: phases, failure reasons and the result shape `wsprobe once --format json` prints.
//!
//! `Phase` and `Reason` are closed enums whose `as_str` values are the public `phase` and
//! `reason` label values; nothing a server sends can add to them.

use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::util::json::{round_micros, ser_secs};

crate::label_enum! {
    /// The phases of a probe, in the order they happen.
    pub enum Phase("phase") {
        Dns => "dns",
        Connect => "connect",
        /// The HTTP CONNECT exchange with a configured proxy (and TLS to an https:// one).
        Proxy => "proxy",
        Tls => "tls",
        Handshake => "handshake",
        FirstMessage => "first_message",
        Step => "step",
        Ping => "ping",
        Close => "close",
    }
}

crate::label_enum! {
    /// Why a probe failed: exactly one per failure, stable across releases.
    pub enum Reason("reason") {
        DnsError => "dns_error",
        ConnectRefused => "connect_refused",
        ConnectTimeout => "connect_timeout",
        ConnectError => "connect_error",
        TlsError => "tls_error",
        TlsTimeout => "tls_timeout",
        HandshakeTimeout => "handshake_timeout",
        HandshakeStatus => "handshake_status",
        HandshakeInvalid => "handshake_invalid",
        FirstMessageTimeout => "first_message_timeout",
        ExpectTimeout => "expect_timeout",
        Stalled => "stalled",
        UnexpectedClose => "unexpected_close",
        ConnectionReset => "connection_reset",
        PingTimeout => "ping_timeout",
        CloseTimeout => "close_timeout",
        ProtocolError => "protocol_error",
        MessageTooLarge => "message_too_large",
        ProbeTimeout => "probe_timeout",
        SendError => "send_error",
        /// A message matching the target's `fail_on` arrived.
        ErrorMessage => "error_message",
        /// A bug in wsprobe caught while probing: the probe fails, the target keeps running.
        InternalError => "internal_error",
        /// The proxy refused the tunnel (407, 403, 502...), lied, or did not answer in time.
        ProxyError => "proxy_error",
        /// A held session's application heartbeat went unanswered (`session.heartbeat`).
        HeartbeatTimeout => "heartbeat_timeout",
    }
}

impl Reason {
    /// Timeout-class reasons: the server was too slow rather than wrong.
    pub const fn is_timeout(self) -> bool {
        matches!(
            self,
            Reason::ConnectTimeout
                | Reason::TlsTimeout
                | Reason::HandshakeTimeout
                | Reason::FirstMessageTimeout
                | Reason::ExpectTimeout
                | Reason::Stalled
                | Reason::PingTimeout
                | Reason::CloseTimeout
                | Reason::ProbeTimeout
        )
    }
}

/// A failed probe: one reason, a human sentence, and what the server told us.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct ProbeError {
    pub reason: Reason,
    pub message: String,
    pub http_status: Option<u16>,
    pub close_code: Option<u16>,
}

impl ProbeError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), http_status: None, close_code: None }
    }
}

/// Phase durations in seconds, serialized as an object in phase order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PhaseTimings([Option<f64>; Phase::ALL.len()]);

impl PhaseTimings {
    pub fn set(&mut self, phase: Phase, seconds: f64) {
        self.0[phase as usize] = Some(seconds);
    }
    pub fn get(&self, phase: Phase) -> Option<f64> {
        self.0[phase as usize]
    }
    pub fn iter(&self) -> impl Iterator<Item = (Phase, f64)> + '_ {
        Phase::ALL.iter().filter_map(|&p| self.get(p).map(|s| (p, s)))
    }
}

impl<'de> Deserialize<'de> for PhaseTimings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<Phase, f64>::deserialize(d)?;
        let mut t = PhaseTimings::default();
        for (phase, secs) in map {
            t.set(phase, secs);
        }
        Ok(t)
    }
}

impl Serialize for PhaseTimings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (phase, secs) in self.iter() {
            map.serialize_entry(phase.as_str(), &round_micros(secs))?;
        }
        map.end()
    }
}

/// One scripted step's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub ok: bool,
    #[serde(serialize_with = "ser_secs")]
    pub duration_seconds: f64,
}

/// The outcome of one probe of one target, as printed by `wsprobe once --format json`
/// and served by `/api/targets`; read back from recorded traces by `wsprobe replay`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub target: String,
    pub success: bool,
    #[serde(default)]
    pub reason: Option<Reason>,
    #[serde(default)]
    pub phase: Option<Phase>,
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub http_status: Option<u16>,
    #[serde(default)]
    pub close_code: Option<u16>,
    #[serde(serialize_with = "ser_secs")]
    pub duration_seconds: f64,
    #[serde(default)]
    pub phases: PhaseTimings,
    #[serde(default)]
    pub steps: Vec<StepResult>,
    /// Data messages received during the session.
    #[serde(default)]
    pub messages_received: u64,
    /// Data messages sent during the session.
    #[serde(default)]
    pub messages_sent: u64,
    /// When the server's certificate expires (Unix seconds), for wss:// targets.
    #[serde(default)]
    pub tls_cert_expiry: Option<i64>,
    /// Unix time when the probe started.
    #[serde(serialize_with = "ser_secs", default)]
    pub started_at: f64,
    /// Seconds between consecutive data messages received; metrics only.
    #[serde(skip)]
    pub message_gaps: Vec<f64>,
}

impl ProbeResult {
    /// A successful probe of `target` that took no time, started at Unix time 0 and
    /// measured nothing: the start that real results and test results fill in.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            success: true,
            reason: None,
            phase: None,
            step: None,
            message: None,
            http_status: None,
            close_code: None,
            duration_seconds: 0.0,
            phases: PhaseTimings::default(),
            steps: Vec::new(),
            messages_received: 0,
            messages_sent: 0,
            tls_cert_expiry: None,
            started_at: 0.0,
            message_gaps: Vec::new(),
        }
    }
}
