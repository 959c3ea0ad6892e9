//! What is watched beside a target's WebSocket probes: HTTP(S) health checks, the
//! deployed version they read (drift), and the service's own circuit breakers.
//!
//! Each health check and the remote-breaker poll runs in its own task, on its own
//! interval, started and cancelled with the target's probe task (see
//! [`crate::target`]). Own tasks rather than a step after each probe, because a
//! streaming probe may take a minute and a failing one is exactly when the health
//! endpoints should keep being read; a slow health check must not delay a probe either.
//! Health checks do not take a `max_concurrent_probes` permit: they are one short GET.
//!
//! `check` runs and judges one check, its GET going through `http` (the one client in
//! [`crate::net::http`]); `drift` keeps the version bookkeeping; `remote` reads remote
//! breaker states; `watchers` runs them all on their intervals (one cadence for both,
//! `ticker`), reporting through [`Report`]; `settings` is their configuration.

mod check;
pub mod drift;
pub mod http;
pub mod metrics;
pub mod remote;
mod report;
pub mod settings;
mod ticker;
mod watchers;

use std::time::SystemTime;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

pub use check::Checker;
pub use drift::{version_label, Drift};
pub use remote::{Poller, RemoteState, RemoteStatus};
pub use report::Report;
pub use settings::{HealthCheck, RemoteBreakers};
pub use watchers::{log_health, Watchers};

use crate::util::json::{round_micros, round_millis, ser_secs};
use crate::util::time::unix_seconds;

crate::label_enum! {
    /// Why a health check (or a remote-breaker poll) failed: the `reason` label values.
    pub enum HealthReason("reason") {
        DnsError => "dns_error",
        ConnectRefused => "connect_refused",
        ConnectTimeout => "connect_timeout",
        ConnectError => "connect_error",
        TlsError => "tls_error",
        TlsTimeout => "tls_timeout",
        /// The check's `timeout` ran out after the connection was up.
        Timeout => "timeout",
        /// A status not in `expect_status` (reported).
        HttpStatus => "http_status",
        /// Not the expected body: `expect` failed, not JSON, wrong content type, no version.
        BodyMismatch => "body_mismatch",
        BodyTooLarge => "body_too_large",
        TooManyRedirects => "too_many_redirects",
        ProtocolError => "protocol_error",
    }
}

crate::label_enum! {
    /// Phase labels of `wsprobe_health_duration_seconds`.
    pub enum HealthPhase("phase") {
        Dns => "dns",
        Connect => "connect",
        Tls => "tls",
        FirstByte => "first_byte",
        /// The whole check.
        Total => "total",
    }
}

impl http::Timings {
    /// `(phase, seconds)` for every phase that ran, `total` last.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> {
        [
            (HealthPhase::Dns, self.dns),
            (HealthPhase::Connect, self.connect),
            (HealthPhase::Tls, self.tls),
            (HealthPhase::FirstByte, self.first_byte),
            (HealthPhase::Total, Some(self.total)),
        ]
        .into_iter()
        .filter_map(|(p, s)| s.map(|s| (p.as_str(), s)))
    }
}

impl Serialize for http::Timings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (phase, secs) in self.iter() {
            map.serialize_entry(phase, &round_micros(secs))?;
        }
        map.end()
    }
}

fn unix(t: SystemTime) -> f64 {
    round_millis(unix_seconds(t))
}

/// One health check's outcome, as logged, exported, shown in `/api/targets` and printed
/// by `wsprobe once`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthResult {
    #[serde(skip)]
    pub target: String,
    pub check: String,
    pub success: bool,
    pub reason: Option<HealthReason>,
    pub message: Option<String>,
    /// The final status, after redirects.
    pub http_status: Option<u16>,
    pub redirects: usize,
    #[serde(serialize_with = "ser_secs")]
    pub duration_seconds: f64,
    pub phases: http::Timings,
    #[serde(serialize_with = "ser_secs")]
    pub started_at: f64,
    /// The version read at `version_path`, if this check reads one and could.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The expected version as read at this check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<String>,
    /// Why the expected version could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version_error: Option<String>,
    /// Whether this check reads the deployed version.
    #[serde(skip)]
    pub reports_version: bool,
}

/// The deployed version of a target, as `/api/targets` and `wsprobe once` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    /// The health check that reads it.
    pub check: String,
    /// The last version read (kept when a later check could not read one).
    pub live_version: Option<String>,
    pub expected_version: Option<String>,
    /// `null` when either version is unknown.
    pub drift: Option<bool>,
    /// Unix time the drift began.
    pub drift_since: Option<f64>,
}

impl Deployment {
    pub fn of(check: &str, d: &Drift) -> Self {
        Deployment {
            check: check.to_owned(),
            live_version: d.live().map(str::to_owned),
            expected_version: d.expected().map(str::to_owned),
            drift: d.drifting(),
            drift_since: d.since().map(unix),
        }
    }

    /// "deployed 1.4.2, staging-agent still serves 1.4.1", when drifting.
    pub fn sentence(&self, target: &str) -> Option<String> {
        match (self.drift, &self.expected_version, &self.live_version) {
            (Some(true), Some(expected), Some(live)) => {
                Some(format!("deployed {expected}, {target} still serves {live}"))
            }
            _ => None,
        }
    }
}
