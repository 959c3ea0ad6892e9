//! Where a target's health readings land: the same sink as its probe results
//! ([`Recorder`]), here the metrics, the alert engine (deployment drift) and the state
//! snapshot, in that order.

use super::scheduler::Recorder;
use crate::detect::Signal;
use crate::health::{Deployment, HealthReason, HealthResult, RemoteState, RemoteStatus, Report};
use crate::state::WatchEvent;

impl Report for Recorder {
    fn observed(&self, result: &HealthResult) {
        self.metrics.health.observe(result);
    }

    fn deployment(&self, target: &str, live: Option<&str>, drift: Option<(bool, f64)>) {
        self.metrics.health.set_deployment(target, live, drift);
    }

    fn drift_condition(&self, target: &str, active: bool, detail: String) {
        if let Some(alerts) = &self.alerts {
            alerts.set_condition(target, Signal::DeploymentDrift, active, Some(detail));
        }
    }

    async fn checked(&self, target: &str, result: HealthResult, deployment: Option<Deployment>) {
        let event = WatchEvent::Health { result: Box::new(result), deployment };
        self.watch(target, event).await;
    }

    fn remote_poll_failed(&self, target: &str, reason: HealthReason) {
        self.metrics.health.remote_poll_failed(target, reason);
    }

    fn remote_breaker(&self, target: &str, breaker: &str, state: RemoteState) {
        self.metrics.health.set_remote_breaker(target, breaker, state);
    }

    async fn polled(&self, target: &str, status: RemoteStatus) {
        self.watch(target, WatchEvent::Remote(status)).await;
    }
}
