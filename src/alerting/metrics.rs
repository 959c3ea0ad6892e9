//! Metrics of alert evaluation and delivery.
//!
//! Neither is tracked per target: notifications are per receiver, and the engine itself
//! removes an alert's series when it leaves the pending or firing state.

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec};

use crate::metrics::{Error, Registry};

#[derive(Debug, Clone)]
pub struct AlertingMetrics {
    /// Notifications by receiver and outcome: sent, retried, failed, dropped.
    pub notifications: IntCounterVec,
    /// 1 for each pending or firing alert, by its identity and state.
    pub alerts: IntGaugeVec,
    /// Probe results and session events dropped unevaluated while the engine was behind.
    pub inputs_dropped: IntCounter,
}

impl AlertingMetrics {
    /// Registers the alerting metrics; call once per registry.
    pub fn register(registry: &Registry) -> Result<Self, Error> {
        Ok(Self {
            notifications: registry.counter_vec(
                "wsprobe_alert_notifications_total",
                "Alert notifications by receiver and outcome (sent, retried, failed, dropped).",
                &["receiver", "outcome"],
            )?,
            alerts: registry.int_gauge_vec(
                "wsprobe_alerts",
                "Pending and firing alerts: 1 per alert, labelled with its identity and state.",
                &["alertname", "target", "scope", "severity", "state"],
            )?,
            inputs_dropped: registry.counter(
                "wsprobe_alert_inputs_dropped_total",
                "Probe results and session events the alert engine dropped unevaluated because it was behind.",
            )?,
        })
    }
}
