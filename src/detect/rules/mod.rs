//! The alert rules, one file each, and the table a target's evaluation runs through.
//!
//! A rule reads a target's state and says whether its condition holds and how to explain
//! it; the alert lifecycle (`for`, `resolve_after`, severity) is the same for all and lives
//! in [`super::alert`]. Each rule's file also holds its settings type. Adding a rule is a
//! new file implementing [`Rule`] and a line in [`RULES`], besides naming it: an
//! [`AlertKind`], and a settings field of `DetectorConfig` with its `timing`.

mod latency;
mod probe_failing;
mod session_rtt;
mod sessions_below;
mod sessions_dropping;
mod signal;
mod timeouts;

use super::alert::{AlertKind, Finding, Signal, Subject};
use super::config::DetectorConfig;
use super::target::TargetState;
use super::window::Layout;

pub use latency::{LatencyBaseline, LatencyConfig, Quantile};
pub use probe_failing::ProbeFailingConfig;
pub use sessions_below::SessionsBelowConfiguredConfig;
pub use sessions_dropping::SessionsDroppingConfig;
pub use signal::{CircuitOpenConfig, DeploymentDriftConfig};
pub use timeouts::TimeoutConfig;

pub(crate) use latency::DAY_SECONDS;

/// Every rule, in the order a target's alerts are evaluated (and transitions reported).
pub(crate) static RULES: [&dyn Rule; 9] = [
    &probe_failing::ProbeFailing,
    &latency::LatencyRegression,
    &timeouts::TimeoutRegression,
    &signal::External(Signal::CircuitOpen),
    &signal::External(Signal::DeploymentDrift),
    &sessions_dropping::SessionsDropping,
    &sessions_below::SessionsBelowConfigured,
    &session_rtt::SessionRttRegression(session_rtt::RoundTrip::Ping),
    &session_rtt::SessionRttRegression(session_rtt::RoundTrip::Heartbeat),
];

/// One kind of alert: what it is evaluated for, and its condition.
pub(crate) trait Rule: Sync {
    /// The alert the rule raises.
    fn kind(&self) -> AlertKind;

    /// What to evaluate on `target`, in order: `None` for the target as a whole (the
    /// default), phases and steps for a rule per series. A pending or firing alert whose
    /// subject is left out is not re-evaluated, so a rule lists those too.
    fn subjects(&self, _target: &TargetState) -> Vec<Option<Subject>> {
        vec![None]
    }

    /// The condition for `subject` and how to explain it. `active`: the alert is pending or
    /// firing, so the (lower) resolve thresholds apply. `target` is mutable only for the
    /// windows' caches.
    fn check<'a>(
        &self,
        target: &'a mut TargetState,
        cx: Context<'a>,
        subject: Option<&'a Subject>,
        active: bool,
    ) -> Check<'a>;
}

/// What a rule is evaluated with besides the target's state.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    /// The target's name.
    pub(crate) name: &'a str,
    pub(crate) config: &'a DetectorConfig,
    pub(crate) layout: &'a Layout,
    /// Unix seconds.
    pub(crate) now: f64,
}

/// A condition, and how to explain it. Most evaluations find nothing and keep nothing, so
/// the explanation is built only when an alert needs it.
pub(crate) struct Check<'a> {
    pub(crate) condition: bool,
    pub(crate) explain: Box<dyn FnOnce() -> Finding + 'a>,
}

impl<'a> Check<'a> {
    pub(crate) fn new(condition: bool, explain: impl FnOnce() -> Finding + 'a) -> Self {
        Self { condition, explain: Box::new(explain) }
    }
}
