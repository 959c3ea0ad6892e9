//! ProbeFailing: consecutive failed probes, the fast path for hard outages.

use super::Check;
use crate::detect::alert::{Finding, Measurement};
use crate::detect::config::DetectorConfig;
use crate::detect::target::{FailureInfo, TargetState};

impl TargetState {
    pub(crate) fn probe_failing<'a>(&'a self, name: &'a str, config: &'a DetectorConfig) -> Check<'a> {
        let s = self.streak;
        let last = self.last_failure.as_ref();
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
