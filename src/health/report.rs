//! Where the watchers' readings go. Health defines what it reports and the target task
//! ([`crate::target`]) decides where it lands (metrics, the state snapshot, the alert
//! engine), so health stays below all of them.

use std::future::Future;

use super::{Deployment, HealthReason, HealthResult, RemoteState, RemoteStatus};

/// Receives every reading of one target's health checks and remote-breaker poll, in the
/// order they are taken. The synchronous calls come first, `checked`/`polled` last, so
/// the metrics are up to date when the snapshot shows a reading.
pub trait Report: Clone + Send + Sync + 'static {
    /// A health check ran (before its drift bookkeeping).
    fn observed(&self, result: &HealthResult);
    /// The deployed version, and whether and for how long it drifts.
    fn deployment(&self, target: &str, live: Option<&str>, drift: Option<(bool, f64)>);
    /// Deployment drift started (`active`) or ended, with a sentence saying why.
    fn drift_condition(&self, target: &str, active: bool, detail: String);
    /// A health check's result, once everything above was reported.
    fn checked(
        &self,
        target: &str,
        result: HealthResult,
        deployment: Option<Deployment>,
    ) -> impl Future<Output = ()> + Send;
    /// The remote breakers could not be read.
    fn remote_poll_failed(&self, target: &str, reason: HealthReason);
    /// One remote breaker's state as just read.
    fn remote_breaker(&self, target: &str, breaker: &str, state: RemoteState);
    /// A remote-breaker poll's status, once everything above was reported.
    fn polled(&self, target: &str, status: RemoteStatus) -> impl Future<Output = ()> + Send;
}
