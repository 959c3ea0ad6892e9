//! ProbeFailing, the fast path for hard outages: its settings, and its condition (several
//! probes in a row failed).

use std::num::NonZeroU32;

use serde::Deserialize;

use super::{Check, Context, Rule};
use crate::detect::alert::{AlertKind, Finding, Measurement, Subject};
use crate::detect::config::Severity;
use crate::detect::target::{FailureInfo, TargetState};
use crate::util::units::HumanDuration;

/// `ProbeFailing`: the fast path for hard outages.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeFailingConfig {
    pub enabled: bool,
    /// Consecutive failed probes that make the condition true.
    pub failures: NonZeroU32,
    /// Consecutive successful probes that make it false again.
    pub successes: NonZeroU32,
    /// How long the condition must hold before the alert fires.
    #[serde(rename = "for")]
    pub for_: HumanDuration,
    /// How long the condition must be false before a firing alert resolves.
    pub resolve_after: HumanDuration,
    pub severity: Severity,
}

impl Default for ProbeFailingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failures: NonZeroU32::MIN.saturating_add(2),
            successes: NonZeroU32::MIN.saturating_add(1),
            for_: HumanDuration::from_secs(0),
            resolve_after: HumanDuration::from_secs(0),
            severity: Severity::Page,
        }
    }
}

pub(crate) struct ProbeFailing;

impl Rule for ProbeFailing {
    fn kind(&self) -> AlertKind {
        AlertKind::ProbeFailing
    }

    /// The streak counted by `TargetState::record`; no resolve threshold, as `successes`
    /// is the hysteresis.
    fn check<'a>(
        &self,
        target: &'a mut TargetState,
        cx: Context<'a>,
        _: Option<&'a Subject>,
        _active: bool,
    ) -> Check<'a> {
        let (name, config) = (cx.name, cx.config);
        let s = target.streak;
        let last = target.last_failure.as_ref();
        Check::new(s.failing, move || {
            let needed = config.probe_failing.failures.get();
            let last = last.map_or_else(|| "unknown".to_owned(), FailureInfo::describe);
            let description = if s.failing && u64::from(s.consecutive_failures) == s.episode_probes {
                format!("{} consecutive failures, last: {last}", s.consecutive_failures)
            } else if s.failing {
                format!(
                    "{} of the last {} probes failed ({} consecutive successes so far), last failure: {last}",
                    s.episode_failures, s.episode_probes, s.consecutive_successes
                )
            } else if s.consecutive_failures > 0 {
                format!("{} consecutive failures (alerts at {needed}), last: {last}", s.consecutive_failures)
            } else if s.episode_probes > 0 {
                format!(
                    "recovered: {} consecutive successes after {} of {} probes failed, last failure: {last}",
                    s.consecutive_successes, s.episode_failures, s.episode_probes
                )
            } else {
                "probes succeed".to_owned()
            };
            Finding {
                summary: format!("Probes of {name} are failing"),
                description,
                measurement: Some(Measurement {
                    value: f64::from(s.consecutive_failures),
                    baseline: None,
                    threshold: Some(f64::from(needed)),
                    samples: s.episode_probes,
                    baseline_samples: 0,
                    events: Some(s.episode_failures),
                    baseline_events: None,
                    window_seconds: None,
                }),
            }
        })
    }
}
