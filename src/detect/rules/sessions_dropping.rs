//! SessionsDropping: its settings, and its condition (held sessions end more often than in
//! the baseline), explained with the typical lifetime: a load balancer that cuts idle
//! connections at 60 s shows as "end after 60s" against a baseline of hours.

use std::num::NonZeroU32;

use serde::Deserialize;

use super::{Check, Context, Rule};
use crate::detect::alert::{AlertKind, Finding, Measurement, Subject};
use crate::detect::config::Severity;
use crate::detect::format::{fmt_chance, fmt_lifetime, fmt_window};
use crate::detect::stats::poisson_tail;
use crate::detect::target::TargetState;
use crate::util::units::HumanDuration;

/// `SessionsDropping`: disconnects per session-hour held against the baseline's.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsDroppingConfig {
    pub enabled: bool,
    /// Fires when the recent window holds at least this many disconnects...
    pub min_disconnects: NonZeroU32,
    /// ...at a rate (per session-hour held) at least this many times the baseline's...
    pub ratio: f64,
    /// ...and that many disconnects in the session time held would be less likely than
    /// this at the baseline rate (a Poisson tail probability).
    pub significance: f64,
    /// Session time the baseline must hold before it is compared (summed over the
    /// target's sessions: two sessions held for 30 minutes are 1h).
    pub min_baseline_held: HumanDuration,
    #[serde(rename = "for")]
    pub for_: HumanDuration,
    pub resolve_after: HumanDuration,
    pub severity: Severity,
}

impl Default for SessionsDroppingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_disconnects: NonZeroU32::MIN.saturating_add(2),
            ratio: 2.0,
            significance: 1e-4,
            min_baseline_held: HumanDuration::from_secs(3600),
            for_: HumanDuration::from_secs(300),
            resolve_after: HumanDuration::from_secs(600),
            severity: Severity::Ticket,
        }
    }
}

pub(crate) struct SessionsDropping;

impl Rule for SessionsDropping {
    fn kind(&self) -> AlertKind {
        AlertKind::SessionsDropping
    }

    /// Only session targets; a firing alert is still evaluated, so that it resolves.
    fn subjects(&self, target: &TargetState) -> Vec<Option<Subject>> {
        target.whole_target_if(target.sessions.is_session_target(), self.kind())
    }

    fn check<'a>(
        &self,
        target: &'a mut TargetState,
        cx: Context<'a>,
        _: Option<&'a Subject>,
        active: bool,
    ) -> Check<'a> {
        let (name, layout) = (cx.name, cx.layout);
        let c = &cx.config.sessions_dropping;
        let s = &target.sessions;
        let (recent, base) = (s.lifetimes.recent(), s.lifetimes.baseline().clone());
        let (held_r, held_b) = (s.held.recent().session_seconds, s.held.baseline().session_seconds);
        let (n_r, n_b) = (recent.count(), base.count());
        let summary = move || format!("Sessions to {name} keep ending");
        let min_held = c.min_baseline_held.get().as_secs_f64();
        if held_b < min_held {
            return Check::new(false, move || {
                Finding {
                summary: summary(),
                description: format!(
                    "not enough session time to compare: {n_r} disconnects over the last {}; the baseline holds {} \
                     of sessions (needs {})",
                    fmt_window(layout.recent_window),
                    fmt_lifetime(held_b),
                    c.min_baseline_held
                ),
                measurement: None,
            }
            });
        }
        // The open count is sampled about every second, so sessions cut within a second of
        // opening may have no time credited: a second at least keeps the rate finite.
        let held_r = held_r.max(1.0);
        let per_hour = |n: u64, held: f64| n as f64 * 3600.0 / held;
        let (r, b) = (per_hour(n_r, held_r), per_hour(n_b, held_b));
        // The baseline rate taken about one standard deviation high, so that a baseline
        // without disconnects does not make a few of them look impossible.
        let x = n_b as f64;
        let bound = (x + 1.0 + (x + 1.0).sqrt()) / held_b;
        let chance = poisson_tail(bound * held_r, n_r);
        let threshold = c.ratio * b;
        let condition = if active {
            n_r > 0 && r >= threshold
        } else {
            n_r >= u64::from(c.min_disconnects.get()) && r >= threshold && chance <= c.significance
        };
        let last = s.last_disconnect;
        Check::new(condition, move || {
            let ends = match recent.quantile(0.5) {
                Some(m) if n_r > 0 => format!("end after {} (median of {n_r})", fmt_lifetime(m)),
                _ => "have not ended".to_owned(),
            };
            let usual = match base.quantile(0.5) {
                Some(m) if n_b > 0 => format!("{} (median of {n_b})", fmt_lifetime(m)),
                _ => "no disconnects".to_owned(),
            };
            let mut description = format!(
                "sessions to {name} {ends}, baseline: {usual}; {n_r} disconnects in {} of sessions over the last {} \
                 vs {n_b} in {} before, {} by chance at the baseline rate",
                fmt_lifetime(held_r),
                fmt_window(layout.recent_window),
                fmt_lifetime(held_b),
                fmt_chance(chance)
            );
            if let Some(last) = last {
                description.push_str(&format!(", last: {}", last.reason));
                if let Some(code) = last.close_code {
                    description.push_str(&format!(" (close code {code})"));
                }
            }
            Finding {
                summary: summary(),
                description,
                measurement: Some(Measurement {
                    value: r,
                    baseline: Some(b),
                    threshold: Some(threshold),
                    samples: n_r,
                    baseline_samples: n_b,
                    events: Some(n_r),
                    baseline_events: Some(n_b),
                    window_seconds: Some(layout.recent_window),
                }),
            }
        })
    }
}
