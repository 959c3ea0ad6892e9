//! TimeoutRegression: probes time out more often than in the baseline.

use super::Check;
use crate::detect::alert::{Finding, Measurement};
use crate::detect::config::DetectorConfig;
use crate::detect::format::{fmt_chance, fmt_rate, fmt_window};
use crate::detect::stats::{binomial_tail, rate_bound};
use crate::detect::target::TargetState;
use crate::detect::window::{Counts, Layout};

impl TargetState {
    /// `active`: the alert is pending or firing, so the resolve threshold applies.
    pub(crate) fn timeouts<'a>(
        &'a self,
        name: &'a str,
        active: bool,
        config: &'a DetectorConfig,
        layout: &'a Layout,
    ) -> Check<'a> {
        let c = &config.timeouts;
        let (recent, base) = (self.probes.recent(), *self.probes.baseline());
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
        let last = self.last_timeout.as_ref();
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
