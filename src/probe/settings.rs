//! What one probe needs to know about its target: the WebSocket side of a target's
//! settings, validated by the configuration and handed to [`super::Prober`].
//!
//! The configuration's `Target` holds more (interval, breaker, health checks); the probe
//! sees only its own part, so it does not depend on how the file is assembled.

use std::time::Duration;

use tokio_tungstenite::tungstenite::http::HeaderName;

use super::scenario::{Hooks, Step};
use crate::net::proxy::ProxySetting;
use crate::net::tls::TlsSettings;
use crate::util::template::Template;

/// The probe's part of a target, every setting resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub name: String,
    pub url: Template,
    pub headers: Vec<(HeaderName, Template)>,
    /// Offered subprotocols; templates, so a token can ride in one (`jwt.${base64url:TOKEN}`).
    pub subprotocols: Vec<Template>,
    pub server_speaks_first: bool,
    pub tls: TlsSettings,
    /// The forward proxy the connection goes through, if any.
    pub proxy: ProxySetting,
    pub timeouts: Timeouts,
    pub max_message_size: usize,
    /// The scripted session; empty means: first message, ping, close.
    pub steps: Vec<Step>,
    /// `fail_on` and `respond` rules applied to every message.
    pub hooks: Hooks,
}

/// Per-phase time limits; `probe` bounds the whole probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub dns: Duration,
    pub connect: Duration,
    /// The CONNECT exchange with a proxy (and TLS to an https:// proxy).
    pub proxy: Duration,
    pub tls: Duration,
    pub handshake: Duration,
    pub first_message: Duration,
    pub ping: Duration,
    pub close: Duration,
    pub idle: Duration,
    pub probe: Duration,
}

impl Default for Timeouts {
    /// The incident team's own limits: connect 10 s, handshake 15 s, ping 5 s, close 10 s,
    /// heartbeat 45 s; probes as a whole are cut at 120 s like their longest test.
    fn default() -> Self {
        let s = Duration::from_secs;
        Self {
            dns: s(5),
            connect: s(10),
            proxy: s(10),
            tls: s(10),
            handshake: s(15),
            first_message: s(10),
            ping: s(5),
            close: s(10),
            idle: s(45),
            probe: s(120),
        }
    }
}
