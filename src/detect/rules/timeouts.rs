//! TimeoutRegression: probes time out more often than in the baseline.

use super::{Check, Context, Rule};
use crate::detect::alert::{AlertKind, Finding, Measurement, Subject};
use crate::detect::format::{fmt_chance, fmt_rate, fmt_window};
use crate::detect::stats::{binomial_tail, rate_bound};
use crate::detect::target::TargetState;
use crate::detect::window::Counts;

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
