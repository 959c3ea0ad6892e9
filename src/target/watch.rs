//! Where a target's health readings land: the metrics, the alert engine (deployment
//! drift) and the state snapshot, in that order.

use crate::alerting::AlertsHandle;
use crate::detect::Signal;
use crate::health::{Deployment, HealthReason, HealthResult, RemoteState, RemoteStatus, Report};
use crate::metrics::Metrics;
use crate::state::{Event, StateHandle, WatchEvent};

/// The [`Report`] of a running target task.
#[derive(Debug, Clone)]
pub(crate) struct WatchReport {
    pub metrics: Metrics,
    pub state: StateHandle,
    pub alerts: Option<AlertsHandle>,
}

impl Report for WatchReport {
    fn observed(&self, result: &HealthResult) {
        self.metrics.observe_health(result);
    }

    fn deployment(&self, target: &str, live: Option<&str>, drift: Option<(bool, f64)>) {
        self.metrics.set_deployment(target, live, drift);
    }

    fn drift_condition(&self, target: &str, active: bool, detail: String) {
        if let Some(alerts) = &self.alerts {
            alerts.set_condition(target, Signal::DeploymentDrift, active, Some(detail));
        }
    }

    async fn checked(&self, target: &str, result: HealthResult, deployment: Option<Deployment>) {
        let event = WatchEvent::Health { result: Box::new(result), deployment };
        self.state.send(Event::Watch { target: target.to_owned(), event }).await;
    }

    fn remote_poll_failed(&self, target: &str, reason: HealthReason) {
        self.metrics.remote_poll_failed(target, reason);
    }

    fn remote_breaker(&self, target: &str, breaker: &str, state: RemoteState) {
        self.metrics.set_remote_breaker(target, breaker, state);
    }

    async fn polled(&self, target: &str, status: RemoteStatus) {
        self.state.send(Event::Watch { target: target.to_owned(), event: WatchEvent::Remote(status) }).await;
    }
}
