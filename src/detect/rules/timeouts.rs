//! TimeoutRegression: its settings, and its condition (probes time out more often than in
//! the baseline).

use std::num::NonZeroU32;

use serde::Deserialize;

use super::{Check, Context, Rule};
use crate::detect::alert::{AlertKind, Finding, Measurement, Subject};
use crate::detect::config::Severity;
use crate::detect::format::{fmt_chance, fmt_rate, fmt_window};
use crate::detect::stats::{binomial_tail, rate_bound};
use crate::detect::target::TargetState;
use crate::detect::window::Counts;
use crate::util::units::{HumanDuration, Percent};

/// `TimeoutRegression`: the share of probes that fail for a timeout-class reason.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutConfig {
    pub enabled: bool,
    /// Fires when the recent timeout rate exceeds the baseline rate by this many
    /// percentage points...
    pub margin: Percent,
    /// ...and the recent window holds at least this many timeouts...
    pub min_timeouts: NonZeroU32,
    /// ...and that many timeouts among that many probes would be less likely than this if
    /// the baseline rate still held (a binomial tail probability): the noisier the
    /// baseline, the more timeouts it takes.
    pub significance: f64,
    /// A firing alert resolves once the excess falls below this (hysteresis).
    pub resolve_margin: Percent,
    pub min_recent_samples: NonZeroU32,
    pub min_baseline_samples: NonZeroU32,
    #[serde(rename = "for")]
    pub for_: HumanDuration,
    pub resolve_after: HumanDuration,
    pub severity: Severity,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            margin: Percent(5.0),
            min_timeouts: NonZeroU32::MIN.saturating_add(1),
            significance: 1e-4,
            resolve_margin: Percent(2.5),
            min_recent_samples: NonZeroU32::MIN.saturating_add(9),
            min_baseline_samples: NonZeroU32::MIN.saturating_add(29),
            for_: HumanDuration::from_secs(60),
            resolve_after: HumanDuration::from_secs(600),
            severity: Severity::Ticket,
        }
    }
}

pub(crate) struct TimeoutRegression;

impl Rule for TimeoutRegression {
    fn kind(&self) -> AlertKind {
        AlertKind::TimeoutRegression
    }

    /// The recent timeout rate against the baseline's, for the whole target.
    fn check<'a>(
        &self,
        target: &'a mut TargetState,
        cx: Context<'a>,
        _: Option<&'a Subject>,
        active: bool,
    ) -> Check<'a> {
        let (name, layout) = (cx.name, cx.layout);
        let c = &cx.config.timeouts;
        let (recent, base) = (target.probes.recent(), *target.probes.baseline());
        let summary = move || format!("Probes of {name} time out more often than usual");
        if recent.probes < u64::from(c.min_recent_samples.get())
            || base.probes < u64::from(c.min_baseline_samples.get())
        {
            return Check::new(false, move || {
                Finding {
                summary: summary(),
                description: format!(
                    "not enough probes to compare: {} over the last {} (needs {}), {} in the baseline (needs {})",
                    recent.probes,
                    fmt_window(layout.recent_window),
                    c.min_recent_samples,
                    base.probes,
                    c.min_baseline_samples
                ),
                measurement: None,
            }
            });
        }
        let rate = |x: Counts| x.timeouts as f64 / x.probes as f64;
        let (r, b) = (rate(recent), rate(base));
        let chance =
            (recent.timeouts > 0).then(|| binomial_tail(recent.probes, recent.timeouts, rate_bound(base)));
        let (condition, threshold) = if active {
            (r - b >= c.resolve_margin.fraction(), b + c.resolve_margin.fraction())
        } else {
            let enough = recent.timeouts >= u64::from(c.min_timeouts.get()) && r - b >= c.margin.fraction();
            (enough && chance.is_some_and(|p| p <= c.significance), b + c.margin.fraction())
        };
        let last = target.last_timeout.as_ref();
        Check::new(condition, move || {
            let mut description = format!(
                "timeouts {} ({} of {}) over the last {} vs baseline {} ({} of {})",
                fmt_rate(r),
                recent.timeouts,
                recent.probes,
                fmt_window(layout.recent_window),
                fmt_rate(b),
                base.timeouts,
                base.probes
            );
            if let Some(p) = chance {
                description.push_str(&format!(", {} by chance at the baseline rate", fmt_chance(p)));
            }
            if let Some(last) = last {
                description.push_str(&format!(", last: {}", last.describe()));
            }
            Finding {
                summary: summary(),
                description,
                measurement: Some(Measurement {
                    value: r,
                    baseline: Some(b),
                    threshold: Some(threshold),
                    samples: recent.probes,
                    baseline_samples: base.probes,
                    events: Some(recent.timeouts),
                    baseline_events: Some(base.timeouts),
                    window_seconds: Some(layout.recent_window),
                }),
            }
        })
    }
}
