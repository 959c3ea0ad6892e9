//! The breaker's settings: `circuit_breaker` as written (under `defaults` or a target),
//! its validation, and the merge of a target's keys over those of `defaults`.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use serde::Deserialize;

use crate::util::bounds;
use crate::util::units::HumanDuration;

/// Trip on a failure ratio over a sliding window of probes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FailureRatio {
    /// Fraction of failed probes, in `(0, 1]`, at or above which the breaker opens.
    pub ratio: f64,
    /// How many of the most recent probes are considered.
    pub window: usize,
    /// Fewer probes than this in the window never trip it.
    pub min_probes: usize,
}

/// The breaker's settings, resolved (`circuit_breaker` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    pub failure_threshold: NonZeroU32,
    pub failure_ratio: Option<FailureRatio>,
    pub recovery_timeout: Duration,
    pub success_threshold: NonZeroU32,
    /// Time between probes while open or half-open.
    pub open_interval: Duration,
}

impl Settings {
    /// The incident's staging breaker: 3 failures, 15 s, 2 successes.
    pub fn with_interval(interval: Duration) -> Self {
        Self {
            failure_threshold: NonZeroU32::MIN.saturating_add(2),
            failure_ratio: None,
            recovery_timeout: Duration::from_secs(15),
            success_threshold: NonZeroU32::MIN.saturating_add(1),
            open_interval: interval,
        }
    }
}

/// `circuit_breaker` as written, under `defaults` or a target; merged key by key.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBreaker {
    failure_threshold: Option<NonZeroU32>,
    failure_ratio: Option<RawFailureRatio>,
    recovery_timeout: Option<HumanDuration>,
    success_threshold: Option<NonZeroU32>,
    open_interval: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFailureRatio {
    /// Fraction of failed probes in the window that opens the breaker, in (0, 1].
    ratio: f64,
    /// Probes considered (default 10).
    window: Option<NonZeroUsize>,
    /// Fewest probes in the window before the ratio counts (default 5, at most `window`).
    min_probes: Option<NonZeroUsize>,
}

/// Checks a `circuit_breaker` block where it is written.
pub(crate) fn check_breaker(at: &str, b: &RawBreaker, problems: &mut Vec<String>) {
    let at = format!("{at}.circuit_breaker");
    bounds::check(&format!("{at}.recovery_timeout"), b.recovery_timeout, bounds::DEADLINE, problems);
    bounds::check(&format!("{at}.open_interval"), b.open_interval, bounds::INTERVAL, problems);
    if let Some(r) = &b.failure_ratio {
        if !(r.ratio > 0.0 && r.ratio <= 1.0) {
            problems.push(format!(
                "{at}.failure_ratio.ratio: must be above 0 and at most 1 (0.5: half of the window failed)"
            ));
        }
        let window = r.window.map_or(10, NonZeroUsize::get);
        if let Some(min) = r.min_probes.filter(|m| m.get() > window) {
            problems.push(format!(
                "{at}.failure_ratio.min_probes: {min} is more than the window of {window} probes"
            ));
        }
    }
}

/// A target's breaker: its own keys, else those of `defaults`, else the built-ins;
/// `open_interval` falls back to the target's interval.
pub(crate) fn merge_breaker(t: &RawBreaker, d: &RawBreaker, interval: Duration) -> Settings {
    let base = Settings::with_interval(interval);
    let ratio = t.failure_ratio.or(d.failure_ratio).map(|r| {
        let window = r.window.map_or(10, NonZeroUsize::get);
        FailureRatio {
            ratio: r.ratio,
            window,
            min_probes: r.min_probes.map_or(5, NonZeroUsize::get).min(window),
        }
    });
    Settings {
        failure_threshold: t.failure_threshold.or(d.failure_threshold).unwrap_or(base.failure_threshold),
        failure_ratio: ratio,
        recovery_timeout: t
            .recovery_timeout
            .or(d.recovery_timeout)
            .map_or(base.recovery_timeout, HumanDuration::get),
        success_threshold: t.success_threshold.or(d.success_threshold).unwrap_or(base.success_threshold),
        open_interval: t.open_interval.or(d.open_interval).map_or(base.open_interval, HumanDuration::get),
    }
}
