//! What a probe reports: phases, failure reasons and the result shape of DESIGN.md.
//!
//! `Phase` and `Reason` are closed enums whose `as_str` values are the public `phase` and
//! `reason` label values; nothing a server sends can add to them.

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// The phases of a probe, in the order they happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Dns,
    Connect,
    Tls,
    Handshake,
    FirstMessage,
    Step,
    Ping,
    Close,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Dns,
        Phase::Connect,
        Phase::Tls,
        Phase::Handshake,
        Phase::FirstMessage,
        Phase::Step,
        Phase::Ping,
        Phase::Close,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Handshake => "handshake",
            Phase::FirstMessage => "first_message",
            Phase::Step => "step",
            Phase::Ping => "ping",
            Phase::Close => "close",
        }
    }
}

crate::label_value!(Phase);

impl<'de> Deserialize<'de> for Phase {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| de::Error::custom(format!("unknown phase `{name}`")))
    }
}

/// Why a probe failed: exactly one per failure, stable across releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    DnsError,
    ConnectRefused,
    ConnectTimeout,
    ConnectError,
    TlsError,
    TlsTimeout,
    HandshakeTimeout,
    HandshakeStatus,
    HandshakeInvalid,
    FirstMessageTimeout,
    ExpectTimeout,
    Stalled,
    UnexpectedClose,
    ConnectionReset,
    PingTimeout,
    CloseTimeout,
    ProtocolError,
    MessageTooLarge,
    ProbeTimeout,
    SendError,
    /// A message matching the target's `fail_on` arrived.
    ErrorMessage,
    /// A bug in wsprobe caught while probing: the probe fails, the target keeps running.
    InternalError,
}

impl Reason {
    pub const ALL: [Reason; 22] = [
        Reason::DnsError,
        Reason::ConnectRefused,
        Reason::ConnectTimeout,
        Reason::ConnectError,
        Reason::TlsError,
        Reason::TlsTimeout,
        Reason::HandshakeTimeout,
        Reason::HandshakeStatus,
        Reason::HandshakeInvalid,
        Reason::FirstMessageTimeout,
        Reason::ExpectTimeout,
        Reason::Stalled,
        Reason::UnexpectedClose,
        Reason::ConnectionReset,
        Reason::PingTimeout,
        Reason::CloseTimeout,
        Reason::ProtocolError,
        Reason::MessageTooLarge,
        Reason::ProbeTimeout,
        Reason::SendError,
        Reason::ErrorMessage,
        Reason::InternalError,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::DnsError => "dns_error",
            Reason::ConnectRefused => "connect_refused",
            Reason::ConnectTimeout => "connect_timeout",
            Reason::ConnectError => "connect_error",
            Reason::TlsError => "tls_error",
            Reason::TlsTimeout => "tls_timeout",
            Reason::HandshakeTimeout => "handshake_timeout",
            Reason::HandshakeStatus => "handshake_status",
            Reason::HandshakeInvalid => "handshake_invalid",
            Reason::FirstMessageTimeout => "first_message_timeout",
            Reason::ExpectTimeout => "expect_timeout",
            Reason::Stalled => "stalled",
            Reason::UnexpectedClose => "unexpected_close",
            Reason::ConnectionReset => "connection_reset",
            Reason::PingTimeout => "ping_timeout",
            Reason::CloseTimeout => "close_timeout",
            Reason::ProtocolError => "protocol_error",
            Reason::MessageTooLarge => "message_too_large",
            Reason::ProbeTimeout => "probe_timeout",
            Reason::SendError => "send_error",
            Reason::ErrorMessage => "error_message",
            Reason::InternalError => "internal_error",
        }
    }

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

crate::label_value!(Reason);

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .ok_or_else(|| de::Error::custom(format!("unknown reason `{name}`")))
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
pub struct PhaseTimings([Option<f64>; 8]);

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

fn round_micros(s: f64) -> f64 {
    (s * 1e6).round() / 1e6
}

fn ser_secs<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round_micros(*v))
}
