//! The metrics of held sessions, per target.
//!
//! Registered through the `target_*` helpers, so a target's removal takes its series.
//! A target's series are looked up once ([`SessionMetrics::series`]) and shared by its
//! holders: recording a message or a round trip is then an atomic add, with no lookup
//! and no lock, however many sessions are held.

use crate::metrics::{
    CounterSeries, Error, IntGaugeSeries, LatencyHistogram, Registry, TargetCounter, TargetHistogram,
    TargetIntGauge, Tracker,
};
use crate::probe::Reason;

#[derive(Debug, Clone)]
pub struct SessionMetrics {
    pub open: TargetIntGauge,
    pub configured: TargetIntGauge,
    pub connects: TargetCounter,
    pub disconnects: TargetCounter,
    pub lifetime: TargetHistogram,
    pub ping_rtt: TargetHistogram,
    pub heartbeat_rtt: TargetHistogram,
    pub messages: TargetCounter,
    tracker: Tracker,
}

/// One target's series, resolved once.
#[derive(Debug, Clone)]
pub struct Series {
    target: String,
    disconnects: TargetCounter,
    pub open: IntGaugeSeries,
    pub configured: IntGaugeSeries,
    pub connected: CounterSeries,
    pub failed: CounterSeries,
    pub lifetime: LatencyHistogram,
    pub ping_rtt: LatencyHistogram,
    pub heartbeat_rtt: LatencyHistogram,
    pub messages: CounterSeries,
    /// `wsprobe_message_gap_seconds` of the probe metrics, fed by held sessions too.
    pub gaps: LatencyHistogram,
}

impl Series {
    pub fn disconnected(&self, reason: Reason) {
        self.disconnects.with_label_values(&[&self.target, reason.as_str()]).inc();
    }
}

impl SessionMetrics {
    pub fn register(registry: &Registry) -> Result<Self, Error> {
        Ok(Self {
            open: registry.target_int_gauge(
                "wsprobe_sessions_open",
                "Sessions of the target open now.",
                &["target"],
            )?,
            configured: registry.target_int_gauge(
                "wsprobe_sessions_configured",
                "Sessions the target is configured to hold (`session.count`).",
                &["target"],
            )?,
            connects: registry.target_counter(
                "wsprobe_session_connects_total",
                "Session connect attempts, by result (success or failure).",
                &["target", "result"],
            )?,
            disconnects: registry.target_counter(
                "wsprobe_session_disconnects_total",
                "Held sessions that ended, by reason (polite max_lifetime closes are not counted).",
                &["target", "reason"],
            )?,
            lifetime: registry.target_histogram(
                "wsprobe_session_lifetime_seconds",
                "How long held sessions stayed open, observed when they disconnect.",
                &["target"],
            )?,
            ping_rtt: registry.target_histogram(
                "wsprobe_session_ping_rtt_seconds",
                "Round trip of the protocol pings on held sessions.",
                &["target"],
            )?,
            heartbeat_rtt: registry.target_histogram(
                "wsprobe_session_heartbeat_rtt_seconds",
                "Time from sending an application heartbeat to its answer.",
                &["target"],
            )?,
            messages: registry.target_counter(
                "wsprobe_session_messages_received_total",
                "Data messages received on held sessions.",
                &["target"],
            )?,
            tracker: registry.tracker().clone(),
        })
    }

    /// Resolves a session target's series, creating the ones that must exist from the
    /// first scrape (open, configured, connects by result, messages). `gaps` is the probe
    /// metrics' gap histogram series of the same target.
    pub fn series(&self, target: &str, gaps: LatencyHistogram) -> Series {
        Series {
            target: target.to_owned(),
            disconnects: self.disconnects.clone(),
            open: self.open.with_label_values(&[target]),
            configured: self.configured.with_label_values(&[target]),
            connected: self.connects.with_label_values(&[target, "success"]),
            failed: self.connects.with_label_values(&[target, "failure"]),
            lifetime: self.lifetime.with_label_values(&[target]),
            ping_rtt: self.ping_rtt.with_label_values(&[target]),
            heartbeat_rtt: self.heartbeat_rtt.with_label_values(&[target]),
            messages: self.messages.with_label_values(&[target]),
            gaps,
        }
    }

    /// Drops a target's session series when it is no longer a session target.
    pub fn forget(&self, target: &str) {
        self.tracker.forget_where(target, |s| {
            s.metric().starts_with("wsprobe_session_")
                || s.metric() == "wsprobe_sessions_open"
                || s.metric() == "wsprobe_sessions_configured"
        });
    }
}
