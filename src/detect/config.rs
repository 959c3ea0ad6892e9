//! The detector's settings, meant for `alerting: { detector: ... }` in the configuration
//! file: the windows, and each rule's settings (defined beside the rule, in `rules/`).
//! Every field is optional; the `Default`s here and there are the only place defaults live.
//!
//! ```yaml
//! detector:
//!   recent_window: 10m
//!   baseline_window: 26h
//!   recent_bucket: 1m
//!   baseline_bucket: 1h
//!   probe_failing: { failures: 3, successes: 2, for: 0s, severity: page }
//!   latency: { quantile: p95, baseline: time_of_day, ratio: 1.5, margin: 20ms, for: 3m }
//!   timeouts: { margin: 5%, min_timeouts: 2, significance: 0.0001, for: 1m, resolve_after: 10m }
//!   circuit_open: { for: 1m }
//!   deployment_drift: { for: 10m }
//!   sessions_dropping: { min_disconnects: 3, ratio: 2, significance: 0.0001, for: 5m }
//!   sessions_below_configured: { for: 2m }
//!   session_rtt: { quantile: p95, baseline: time_of_day, ratio: 1.5, margin: 20ms, for: 3m }
//! ```

use serde::Deserialize;

use super::rules::{
    CircuitOpenConfig, DeploymentDriftConfig, LatencyBaseline, LatencyConfig, ProbeFailingConfig,
    SessionsBelowConfiguredConfig, SessionsDroppingConfig, TimeoutConfig, DAY_SECONDS,
};
use super::window::Layout;
use crate::util::bounds;
use crate::util::units::HumanDuration;

/// At most this many buckets per ring, so a window cannot be configured into unbounded
/// memory (24 h in 1-minute buckets is 1440).
pub(crate) const MAX_BUCKETS_PER_WINDOW: u64 = 1440;

crate::label_enum! {
    /// Where an alert is routed: the `severity` label.
    pub enum Severity("severity", serde) {
        /// Wake someone up.
        Page => "page",
        /// Look at it during working hours.
        Ticket => "ticket",
    }
}

/// Settings of the regression detector.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// How far back the recent statistics look; rounded up to whole `recent_bucket`s.
    pub recent_window: HumanDuration,
    /// How far back, before the recent window, the baseline looks; rounded up to whole
    /// `baseline_bucket`s. Older data ages out.
    pub baseline_window: HumanDuration,
    /// Time resolution of the recent window: the window slides in these steps.
    pub recent_bucket: HumanDuration,
    /// Time resolution of the baseline: data ages out in these steps.
    pub baseline_bucket: HumanDuration,
    pub probe_failing: ProbeFailingConfig,
    pub latency: LatencyConfig,
    pub timeouts: TimeoutConfig,
    pub circuit_open: CircuitOpenConfig,
    pub deployment_drift: DeploymentDriftConfig,
    /// Held sessions of `session:` targets ending more often than in the baseline.
    pub sessions_dropping: SessionsDroppingConfig,
    /// Fewer sessions of a `session:` target open than its `count`.
    pub sessions_below_configured: SessionsBelowConfiguredConfig,
    /// Ping and heartbeat round trips on held sessions, compared as latencies are (both
    /// alerts share these settings). With a `baseline_window` too short for `time_of_day`
    /// they are compared with the whole window, as on a target's first day, rather than
    /// refused: a configuration written before sessions existed stays valid.
    pub session_rtt: LatencyConfig,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            recent_window: HumanDuration::from_secs(600),
            baseline_window: HumanDuration::from_secs(26 * 3600),
            recent_bucket: HumanDuration::from_secs(60),
            baseline_bucket: HumanDuration::from_secs(3600),
            probe_failing: ProbeFailingConfig::default(),
            latency: LatencyConfig::default(),
            timeouts: TimeoutConfig::default(),
            circuit_open: CircuitOpenConfig::default(),
            deployment_drift: DeploymentDriftConfig::default(),
            sessions_dropping: SessionsDroppingConfig::default(),
            sessions_below_configured: SessionsBelowConfiguredConfig::default(),
            session_rtt: LatencyConfig::default(),
        }
    }
}

/// The lifecycle settings every alert kind has.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RuleTiming {
    pub(crate) enabled: bool,
    pub(crate) for_: f64,
    pub(crate) resolve_after: f64,
    pub(crate) severity: Severity,
}

fn timing(
    enabled: bool,
    for_: HumanDuration,
    resolve_after: HumanDuration,
    severity: Severity,
) -> RuleTiming {
    RuleTiming {
        enabled,
        for_: for_.get().as_secs_f64(),
        resolve_after: resolve_after.get().as_secs_f64(),
        severity,
    }
}

impl DetectorConfig {
    pub(crate) fn layout(&self) -> Layout {
        Layout {
            recent_bucket: self.recent_bucket.get().as_secs_f64(),
            baseline_bucket: self.baseline_bucket.get().as_secs_f64(),
            recent_window: self.recent_window.get().as_secs_f64(),
            baseline_window: self.baseline_window.get().as_secs_f64(),
        }
    }

    pub(crate) fn timing(&self, kind: super::AlertKind) -> RuleTiming {
        use super::AlertKind as K;
        match kind {
            K::ProbeFailing => {
                let c = &self.probe_failing;
                timing(c.enabled, c.for_, c.resolve_after, c.severity)
            }
            K::LatencyRegression => {
                let c = &self.latency;
                timing(c.enabled, c.for_, c.resolve_after, c.severity)
            }
            K::TimeoutRegression => {
                let c = &self.timeouts;
                timing(c.enabled, c.for_, c.resolve_after, c.severity)
            }
            K::CircuitOpen => {
                let c = &self.circuit_open;
                timing(c.enabled, c.for_, c.resolve_after, c.severity)
            }
            K::DeploymentDrift => {
                let c = &self.deployment_drift;
                timing(c.enabled, c.for_, c.resolve_after, c.severity)
            }
            K::SessionsDropping => {
                let c = &self.sessions_dropping;
                timing(c.enabled, c.for_, c.resolve_after, c.severity)
            }
            K::SessionsBelowConfigured => {
                let c = &self.sessions_below_configured;
                timing(c.enabled, c.for_, c.resolve_after, c.severity)
            }
            K::SessionPingRTTRegression | K::SessionHeartbeatRTTRegression => {
                let c = &self.session_rtt;
                timing(c.enabled, c.for_, c.resolve_after, c.severity)
            }
        }
    }

    /// Everything wrong with these settings, each problem prefixed with its field path
    /// under `at` (e.g. `alerting.detector`). Empty when the settings are usable.
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, what: String| problems.push(format!("{at}.{field}: {what}"));
        let secs = |d: HumanDuration| d.get().as_secs_f64();

        for (field, d) in [
            ("recent_window", self.recent_window),
            ("baseline_window", self.baseline_window),
            ("recent_bucket", self.recent_bucket),
            ("baseline_bucket", self.baseline_bucket),
        ] {
            if let Some(why) = bounds::problem(d, bounds::WINDOW) {
                problem(field, why);
            }
        }
        for (field, l) in [("latency", &self.latency), ("session_rtt", &self.session_rtt)] {
            Self::latency_bounds(field, l, &mut problem);
        }
        // `for` and `resolve_after` of every alert kind: the rule's clock adds them to now.
        let delays = [
            ("probe_failing", self.probe_failing.for_, self.probe_failing.resolve_after),
            ("latency", self.latency.for_, self.latency.resolve_after),
            ("timeouts", self.timeouts.for_, self.timeouts.resolve_after),
            ("circuit_open", self.circuit_open.for_, self.circuit_open.resolve_after),
            ("deployment_drift", self.deployment_drift.for_, self.deployment_drift.resolve_after),
            ("sessions_dropping", self.sessions_dropping.for_, self.sessions_dropping.resolve_after),
            (
                "sessions_below_configured",
                self.sessions_below_configured.for_,
                self.sessions_below_configured.resolve_after,
            ),
            ("session_rtt", self.session_rtt.for_, self.session_rtt.resolve_after),
        ];
        for (kind, for_, resolve_after) in delays {
            for (name, d) in [("for", for_), ("resolve_after", resolve_after)] {
                if let Some(why) = bounds::problem(d, bounds::ALERT_DELAY) {
                    problem(&format!("{kind}.{name}"), why);
                }
            }
        }
        let windows = [
            ("recent_bucket", self.recent_bucket, "recent_window", self.recent_window),
            ("baseline_bucket", self.baseline_bucket, "baseline_window", self.baseline_window),
        ];
        for (bucket_field, bucket, window_field, window) in windows {
            if bucket.get().is_zero() || window.get().is_zero() {
                continue;
            }
            if bucket > window {
                problem(bucket_field, format!("{bucket} is longer than `{window_field}` ({window})"));
            } else if (secs(window) / secs(bucket)).ceil() as u64 > MAX_BUCKETS_PER_WINDOW {
                problem(
                    bucket_field,
                    format!(
                        "{bucket} makes more than {MAX_BUCKETS_PER_WINDOW} buckets in `{window_field}` \
                         ({window}); use longer buckets"
                    ),
                );
            }
        }
        if !self.recent_bucket.get().is_zero() && self.recent_bucket > self.baseline_bucket {
            problem(
                "recent_bucket",
                format!("{} is longer than `baseline_bucket` ({})", self.recent_bucket, self.baseline_bucket),
            );
        }
        if !self.recent_window.get().is_zero() && self.baseline_window <= self.recent_window {
            problem(
                "baseline_window",
                format!(
                    "{} must be longer than `recent_window` ({})",
                    self.baseline_window, self.recent_window
                ),
            );
        }

        self.validate_latency("latency", &self.latency, true, &mut problem);
        self.validate_latency("session_rtt", &self.session_rtt, false, &mut problem);

        let t = &self.timeouts;
        if !(t.significance > 0.0 && t.significance < 1.0) {
            problem(
                "timeouts.significance",
                format!("must be between 0 and 1, e.g. 0.0001 (got {})", t.significance),
            );
        }
        if t.margin.0 <= 0.0 {
            problem("timeouts.margin", "must be positive".to_owned());
        }
        if t.resolve_margin > t.margin {
            problem(
                "timeouts.resolve_margin",
                format!(
                    "{} is above `margin` ({}); it must not be, or alerts would flap",
                    t.resolve_margin, t.margin
                ),
            );
        }
        if t.min_timeouts > t.min_recent_samples {
            problem(
                "timeouts.min_timeouts",
                format!(
                    "{} is above `min_recent_samples` ({}), so no window could ever qualify",
                    t.min_timeouts, t.min_recent_samples
                ),
            );
        }
        let d = &self.sessions_dropping;
        if !(d.ratio.is_finite() && d.ratio >= 1.0) {
            problem("sessions_dropping.ratio", format!("must be at least 1 (got {})", d.ratio));
        }
        if !(d.significance > 0.0 && d.significance < 1.0) {
            problem(
                "sessions_dropping.significance",
                format!("must be between 0 and 1, e.g. 0.0001 (got {})", d.significance),
            );
        }
        if let Some(why) = bounds::problem(d.min_baseline_held, bounds::WINDOW) {
            problem("sessions_dropping.min_baseline_held", why);
        }
        problems
    }

    /// The bounds of a latency-style block's durations, at `at.field`.
    fn latency_bounds(field: &str, l: &LatencyConfig, problem: &mut impl FnMut(&str, String)) {
        let span = bounds::Limit { min: std::time::Duration::ZERO, ..bounds::WINDOW };
        if let Some(why) = bounds::problem(l.time_of_day_span, span) {
            problem(&format!("{field}.time_of_day_span"), why);
        }
        for (name, d) in [("margin", l.margin), ("resolve_margin", l.resolve_margin)] {
            if let Some(why) = bounds::problem(d, bounds::LATENCY) {
                problem(&format!("{field}.{name}"), why);
            }
        }
    }

    /// The checks of a latency-style block (`latency`, `session_rtt`) at `at.field`;
    /// `needs_yesterday`: `time_of_day` requires a baseline window that reaches yesterday.
    fn validate_latency(
        &self,
        field: &str,
        l: &LatencyConfig,
        needs_yesterday: bool,
        problem: &mut impl FnMut(&str, String),
    ) {
        let mut problem = |name: &str, what: String| problem(&format!("{field}.{name}"), what);
        let secs = |d: HumanDuration| d.get().as_secs_f64();
        if !(l.quantile.0 > 0.0 && l.quantile.0 < 1.0) {
            problem(
                "quantile",
                format!("must be between 0 and 1, e.g. `p95` or `0.95` (got {})", l.quantile.0),
            );
        }
        if !(l.ratio.is_finite() && l.ratio > 1.0) {
            problem("ratio", format!("must be greater than 1 (got {})", l.ratio));
        }
        if !(l.resolve_ratio.is_finite() && l.resolve_ratio >= 1.0) {
            problem("resolve_ratio", format!("must be at least 1 (got {})", l.resolve_ratio));
        } else if l.resolve_ratio > l.ratio {
            problem(
                "resolve_ratio",
                format!(
                    "{} is above `ratio` ({}); it must not be, or alerts would flap",
                    l.resolve_ratio, l.ratio
                ),
            );
        }
        if l.resolve_margin > l.margin {
            problem(
                "resolve_margin",
                format!(
                    "{} is above `margin` ({}); it must not be, or alerts would flap",
                    l.resolve_margin, l.margin
                ),
            );
        }
        if l.min_slow_samples > l.min_recent_samples {
            problem(
                "min_slow_samples",
                format!(
                    "{} is above `min_recent_samples` ({}), so no window could ever qualify",
                    l.min_slow_samples, l.min_recent_samples
                ),
            );
        }

        if needs_yesterday
            && l.baseline == LatencyBaseline::TimeOfDay
            && !self.baseline_window.get().is_zero()
        {
            let needed = DAY_SECONDS + secs(l.time_of_day_span);
            if secs(self.baseline_window) < needed {
                problem(
                    "baseline",
                    format!(
                        "time_of_day compares with the same time yesterday ± `time_of_day_span` ({}), so \
                         `baseline_window` ({}) must be at least {}; lengthen it or set `baseline: window`",
                        l.time_of_day_span,
                        self.baseline_window,
                        HumanDuration::from_secs(needed as u64)
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::detect::Quantile;
    use crate::util::units::Percent;

    #[test]
    fn defaults_are_valid_and_an_empty_block_means_defaults() {
        assert_eq!(DetectorConfig::default().validate("detector"), Vec::<String>::new());
        let parsed: DetectorConfig = serde_norway::from_str("{}").unwrap();
        assert_eq!(parsed, DetectorConfig::default());
    }

    #[test]
    fn the_example_configuration_shows_the_defaults() {
        let example: serde_norway::Value =
            serde_norway::from_str(include_str!("../../config/example.yaml")).unwrap();
        let written: DetectorConfig =
            serde_norway::from_value(example["alerting"]["detector"].clone()).unwrap();
        assert_eq!(
            written,
            DetectorConfig::default(),
            "config/example.yaml's detector block is not the defaults"
        );
    }

    #[test]
    fn parses_the_documented_form() {
        let yaml = "
recent_window: 15m
latency: { quantile: p99, ratio: 3, for: 2m, severity: page }
timeouts: { margin: 10% }
circuit_open: { for: 30s }
";
        let c: DetectorConfig = serde_norway::from_str(yaml).unwrap();
        assert_eq!(c.recent_window, HumanDuration::from_secs(900));
        assert_eq!(c.latency.quantile, Quantile(0.99));
        assert_eq!(c.latency.ratio, 3.0);
        assert_eq!(c.latency.for_, HumanDuration::from_secs(120));
        assert_eq!(c.latency.severity, Severity::Page);
        // Fields not written keep their defaults, per kind.
        assert_eq!(c.latency.margin, HumanDuration::from_millis(20));
        assert_eq!(c.latency.baseline, LatencyBaseline::TimeOfDay);
        assert_eq!(c.timeouts.margin, Percent(10.0));
        assert_eq!(c.circuit_open.for_, HumanDuration::from_secs(30));
        assert_eq!(c.circuit_open.severity, Severity::Page);
        assert_eq!(c.deployment_drift.for_, HumanDuration::from_secs(600));
        assert!(serde_norway::from_str::<DetectorConfig>("latency: { ratoi: 2 }").is_err());
        assert!(serde_norway::from_str::<DetectorConfig>("latency: { quantile: median }").is_err());
        assert_eq!("0.5".parse::<Quantile>(), Ok(Quantile(0.5)));
        assert_eq!(Quantile(0.95).to_string(), "p95");
        assert_eq!(Quantile(0.999).to_string(), "p99.9");
    }

    #[test]
    fn validation_names_each_field() {
        let mut c = DetectorConfig {
            recent_window: HumanDuration::from_secs(3600 * 48),
            recent_bucket: HumanDuration::from_secs(0),
            ..DetectorConfig::default()
        };
        c.latency.ratio = 0.9;
        c.latency.quantile = Quantile(95.0);
        c.timeouts.resolve_margin = Percent(20.0);
        assert_eq!(
            c.validate("alerting.detector"),
            [
                "alerting.detector.recent_bucket: must be positive",
                "alerting.detector.baseline_window: 1day 2h must be longer than `recent_window` (2days)",
                "alerting.detector.latency.quantile: must be between 0 and 1, e.g. `p95` or `0.95` (got 95)",
                "alerting.detector.latency.ratio: must be greater than 1 (got 0.9)",
                "alerting.detector.latency.resolve_ratio: 1.25 is above `ratio` (0.9); it must not be, or alerts \
                 would flap",
                "alerting.detector.timeouts.resolve_margin: 20% is above `margin` (5%); it must not be, or alerts \
                 would flap",
            ]
        );
        let c = DetectorConfig { baseline_bucket: HumanDuration::from_secs(30), ..DetectorConfig::default() };
        assert_eq!(
            c.validate("d"),
            [
                "d.baseline_bucket: 30s makes more than 1440 buckets in `baseline_window` (1day 2h); use longer \
                 buckets",
                "d.recent_bucket: 1m is longer than `baseline_bucket` (30s)",
            ]
        );
        let mut c =
            DetectorConfig { baseline_window: HumanDuration::from_secs(6 * 3600), ..Default::default() };
        c.timeouts.significance = 0.0;
        assert_eq!(
            c.validate("d"),
            [
                "d.latency.baseline: time_of_day compares with the same time yesterday ± `time_of_day_span` (1h), \
                 so `baseline_window` (6h) must be at least 1day 1h; lengthen it or set `baseline: window`",
                "d.timeouts.significance: must be between 0 and 1, e.g. 0.0001 (got 0)",
            ]
        );
        c.latency.baseline = LatencyBaseline::Window;
        c.timeouts.significance = 1e-3;
        assert_eq!(c.validate("d"), Vec::<String>::new());
    }
}
