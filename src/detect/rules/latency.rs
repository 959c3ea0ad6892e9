//! LatencyRegression: its settings, and its condition (a phase or step got slower than its
//! baseline).

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::{Check, Context, Rule};
use crate::detect::alert::{AlertKind, Finding, Measurement, Subject};
use crate::detect::config::Severity;
use crate::detect::format::{fmt_secs, fmt_window, ordinal};
use crate::detect::stats::{robust_quantile, slow_samples_needed};
use crate::detect::target::TargetState;
use crate::detect::window::{Layout, Sketch, Windowed};
use crate::util::units::HumanDuration;

/// A quantile, written `p95`, `p99.9` or `0.95`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Quantile(pub f64);

impl Quantile {
    /// The fraction, e.g. 0.95.
    pub(crate) fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Quantile {
    /// `p95`, `p99.9`, `p50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", (self.0 * 1e5).round() / 1e3)
    }
}

impl FromStr for Quantile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let parsed = match t.strip_prefix('p') {
            Some(percentile) => percentile.parse::<f64>().map(|p| p / 100.0),
            None => t.parse::<f64>(),
        };
        parsed.map(Quantile).map_err(|_| format!("invalid quantile `{s}`; write e.g. `p95`, `p99` or `0.95`"))
    }
}

impl<'de> Deserialize<'de> for Quantile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Number(f64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Number(q) => Ok(Quantile(q)),
            Written::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// What the recent window's latency is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyBaseline {
    /// The same time of day, one day earlier (± `time_of_day_span`), so that a daily
    /// rhythm is not mistaken for a regression; the whole baseline window while that holds
    /// too few samples (the first day of a target).
    TimeOfDay,
    /// The whole baseline window, pooled.
    Window,
}

/// Seconds in the period of `LatencyBaseline::TimeOfDay`.
pub(crate) const DAY_SECONDS: f64 = 86_400.0;

/// `LatencyRegression`, per phase and per step.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    pub enabled: bool,
    /// The quantile compared between the recent window and the baseline.
    pub quantile: Quantile,
    /// Which part of the baseline window the recent window is compared with.
    pub baseline: LatencyBaseline,
    /// With `baseline: time_of_day`, how far on each side of the same time yesterday the
    /// baseline reaches: the `baseline_bucket`s whose middle lies within it.
    pub time_of_day_span: HumanDuration,
    /// Fires when the recent quantile is at least this many times the baseline's...
    pub ratio: f64,
    /// ...and at least this much above it.
    pub margin: HumanDuration,
    /// A firing alert resolves once the ratio falls below this (hysteresis)...
    pub resolve_ratio: f64,
    /// ...or the excess below this.
    pub resolve_margin: HumanDuration,
    /// Samples the recent window needs before it is compared.
    pub min_recent_samples: NonZeroU32,
    /// Samples the baseline needs before it is compared.
    pub min_baseline_samples: NonZeroU32,
    /// Recent samples that must be at or above the reported quantile: with few samples the
    /// quantile is taken lower, so that a few slow probes cannot make a regression. This
    /// many for windows of up to 39 samples, one more for every further 20 (a shorter
    /// interval gives chance outliers more tries).
    pub min_slow_samples: NonZeroU32,
    #[serde(rename = "for")]
    pub for_: HumanDuration,
    pub resolve_after: HumanDuration,
    pub severity: Severity,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            quantile: Quantile(0.95),
            baseline: LatencyBaseline::TimeOfDay,
            time_of_day_span: HumanDuration::from_secs(3600),
            ratio: 1.5,
            margin: HumanDuration::from_millis(20),
            resolve_ratio: 1.25,
            resolve_margin: HumanDuration::from_millis(10),
            min_recent_samples: NonZeroU32::MIN.saturating_add(9),
            min_baseline_samples: NonZeroU32::MIN.saturating_add(29),
            min_slow_samples: NonZeroU32::MIN.saturating_add(3),
            for_: HumanDuration::from_secs(180),
            resolve_after: HumanDuration::from_secs(300),
            severity: Severity::Ticket,
        }
    }
}

pub(crate) struct LatencyRegression;

impl Rule for LatencyRegression {
    fn kind(&self) -> AlertKind {
        AlertKind::LatencyRegression
    }

    /// Series with data, and series whose alert outlived their data.
    fn subjects(&self, target: &TargetState) -> Vec<Option<Subject>> {
        let mut subjects: Vec<Subject> = target.timings.keys().cloned().collect();
        for (kind, subject) in target.alerts.keys() {
            if let (AlertKind::LatencyRegression, Some(s)) = (kind, subject) {
                if !target.timings.contains_key(s) {
                    subjects.push(s.clone());
                }
            }
        }
        subjects.sort();
        subjects.into_iter().map(Some).collect()
    }

    fn check<'a>(
        &self,
        target: &'a mut TargetState,
        cx: Context<'a>,
        subject: Option<&'a Subject>,
        active: bool,
    ) -> Check<'a> {
        // Latency is per series: `subjects` never asks about the target as a whole.
        let Some(subject) = subject else { return Check::new(false, Finding::default) };
        let series = target.timings.get_mut(subject);
        latency(cx.name, subject, series, active, &cx.config.latency, cx.layout, cx.now)
    }
}

/// What a latency series was compared with.
#[derive(Clone, Copy)]
enum Reference {
    /// The same time yesterday (`baseline: time_of_day`).
    Yesterday,
    /// The whole window, because yesterday has too few samples (a target's first day).
    WindowForNow,
    /// The whole window (`baseline: window`).
    Window,
}

/// LatencyRegression for one series: the recent quantile against the baseline's. Also
/// the session round-trip rules' condition, with their settings and their `subject` words.
pub(super) fn latency<'a, S: fmt::Display + ?Sized>(
    name: &'a str,
    subject: &'a S,
    series: Option<&mut Windowed<Sketch>>,
    active: bool,
    c: &'a LatencyConfig,
    layout: &'a Layout,
    now: f64,
) -> Check<'a> {
    let summary = move || format!("{subject} of {name} is slower than usual");
    let (min_recent, min_baseline) =
        (u64::from(c.min_recent_samples.get()), u64::from(c.min_baseline_samples.get()));
    let not_enough = move |n_r: u64, n_b: u64| {
        Check::new(false, move || {
            let description = format!(
                "not enough samples to compare {} {subject}: {n_r} over the last {} (needs {min_recent}), {n_b} in \
                 the baseline (needs {min_baseline})",
                c.quantile,
                fmt_window(layout.recent_window)
            );
            Finding { summary: summary(), description, measurement: None }
        })
    };
    let Some(w) = series else { return not_enough(0, 0) };
    let recent = w.recent();
    let n_r = recent.count();

    // The same time yesterday when it holds enough samples, else the whole window.
    let (base, reference) = match c.baseline {
        LatencyBaseline::TimeOfDay => {
            let (center, span) = (now - DAY_SECONDS, c.time_of_day_span.get().as_secs_f64());
            if w.baseline_between(layout, center - span, center + span).count() >= min_baseline {
                (w.baseline_between(layout, center - span, center + span), Reference::Yesterday)
            } else {
                (w.baseline(), Reference::WindowForNow)
            }
        }
        LatencyBaseline::Window => (w.baseline(), Reference::Window),
    };
    let n_b = base.count();
    if n_r < min_recent || n_b < min_baseline {
        return not_enough(n_r, n_b);
    }
    // With few recent samples the quantile is read lower, at the `min_slow`-th slowest; it
    // is still compared with the baseline's true quantile, which only errs towards silence.
    let min_slow = slow_samples_needed(u64::from(c.min_slow_samples.get()), n_r);
    let q = robust_quantile(c.quantile.get(), n_r, min_slow);
    let Some((r, b)) = recent.quantile(q).zip(base.quantile(c.quantile.get())) else {
        return not_enough(n_r, n_b);
    };
    let (ratio, margin) = if active { (c.resolve_ratio, c.resolve_margin) } else { (c.ratio, c.margin) };
    let threshold = (b * ratio).max(b + margin.get().as_secs_f64());
    Check::new(r >= threshold, move || {
        let lowered = if q < c.quantile.get() {
            format!(" (the {} slowest: too few for a plain {})", ordinal(min_slow), c.quantile)
        } else {
            String::new()
        };
        let reference = match reference {
            Reference::Yesterday => "around this time yesterday".to_owned(),
            Reference::WindowForNow => format!(
                "over the {} before, as this time yesterday has too few",
                fmt_window(layout.baseline_window)
            ),
            Reference::Window => format!("over the {} before", fmt_window(layout.baseline_window)),
        };
        Finding {
            summary: summary(),
            description: format!(
                "{} {subject} {} vs baseline {} over the last {}, {n_r} samples{lowered}; baseline: {n_b} samples \
                 {reference}",
                c.quantile,
                fmt_secs(r),
                fmt_secs(b),
                fmt_window(layout.recent_window),
            ),
            measurement: Some(Measurement {
                value: r,
                baseline: Some(b),
                threshold: Some(threshold),
                samples: n_r,
                baseline_samples: n_b,
                events: None,
                baseline_events: None,
                window_seconds: Some(layout.recent_window),
            }),
        }
    })
}
