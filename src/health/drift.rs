//! Deployment drift: which version is live, whether it is the expected one, since when not.
//!
//! Pure bookkeeping fed by each check's reading ([`Drift::read`], the one place a reading
//! becomes a [`Deployment`], for the check loop and for `wsprobe once` alike); the check
//! loop turns its answers into logs, metrics and the API.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{Deployment, HealthResult};

/// Longest version label exported; longer values are cut.
pub(crate) const MAX_VERSION_LABEL: usize = 64;

/// A version as a label value: at most 64 characters from `[A-Za-z0-9._+-]`, every other
/// character replaced by `_` (an empty version becomes `_`).
pub fn version_label(version: &str) -> String {
    let label: String = version
        .chars()
        .take(MAX_VERSION_LABEL)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') { c } else { '_' })
        .collect();
    if label.is_empty() {
        "_".to_owned()
    } else {
        label
    }
}

/// The version text of a JSON value: strings as they are, numbers and booleans printed;
/// `None` for null, objects and arrays, which are not versions.
pub(crate) fn version_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Object(_) | Value::Array(_) => None,
    }
}

/// What one reading changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The live version changed: `(previous, new)`; the first reading has no previous.
    pub version: Option<(Option<String>, String)>,
    pub drift_started: bool,
    pub drift_ended: bool,
}

/// The live version and the drift episode, if any.
#[derive(Debug, Clone, Default)]
pub struct Drift {
    live: Option<String>,
    expected: Option<String>,
    /// When the live version stopped matching the expected one.
    since: Option<SystemTime>,
}

impl Drift {
    /// The last version read.
    pub fn live(&self) -> Option<&str> {
        self.live.as_deref()
    }

    /// The last expectation read.
    pub fn expected(&self) -> Option<&str> {
        self.expected.as_deref()
    }

    /// Whether live differs from expected; `None` when either is unknown.
    pub fn drifting(&self) -> Option<bool> {
        match (&self.live, &self.expected) {
            (Some(_), Some(_)) => Some(self.since.is_some()),
            _ => None,
        }
    }

    pub fn since(&self) -> Option<SystemTime> {
        self.since
    }

    /// Seconds since drift began; 0 without drift.
    pub fn seconds(&self, now: SystemTime) -> f64 {
        self.since.map_or(0.0, |s| now.duration_since(s).unwrap_or(Duration::ZERO).as_secs_f64())
    }

    /// Folds one check's reading in: what it changed and the deployment it now shows.
    /// `None` for a check that reads no version, which says nothing about drift.
    pub(crate) fn read(&mut self, r: &HealthResult, now: SystemTime) -> Option<(Changes, Deployment)> {
        if !r.reports_version {
            return None;
        }
        let changes = self.observe(r.version.as_deref(), r.expected_version.as_deref(), now);
        Some((changes, Deployment::of(&r.check, self)))
    }

    /// Records a reading. `live` is `None` when the check could not read a version (the
    /// last known one stays); `expected` is `None` when there is no expectation or it
    /// could not be read (drift is then unknown, and an episode in progress ends).
    pub fn observe(&mut self, live: Option<&str>, expected: Option<&str>, now: SystemTime) -> Changes {
        let mut changes = Changes::default();
        if let Some(live) = live {
            if self.live.as_deref() != Some(live) {
                changes.version = Some((self.live.clone(), live.to_owned()));
                self.live = Some(live.to_owned());
            }
        }
        self.expected = expected.map(str::to_owned);
        let drifting = match (&self.live, &self.expected) {
            (Some(l), Some(e)) => l.trim() != e.trim(),
            _ => false,
        };
        match (drifting, self.since.is_some()) {
            (true, false) => {
                self.since = Some(now);
                changes.drift_started = true;
            }
            (false, true) => {
                self.since = None;
                changes.drift_ended = true;
            }
            _ => {}
        }
        changes
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_and_plain() {
        assert_eq!(version_label("1.4.2+build.7-rc_1"), "1.4.2+build.7-rc_1");
        assert_eq!(version_label("1.4.2 (abc/def)\n"), "1.4.2__abc_def__");
        assert_eq!(version_label(""), "_");
        assert_eq!(version_label("é{}\""), "____");
        assert_eq!(version_label(&"x".repeat(200)).len(), MAX_VERSION_LABEL);
    }

    #[test]
    fn version_text_takes_scalars_only() {
        assert_eq!(version_text(&serde_json::json!(" 1.4.2 ")).as_deref(), Some("1.4.2"));
        assert_eq!(version_text(&serde_json::json!(142)).as_deref(), Some("142"));
        assert_eq!(version_text(&serde_json::json!({"a": 1})), None);
        assert_eq!(version_text(&serde_json::Value::Null), None);
    }

    #[test]
    fn drift_starts_ends_and_keeps_its_start_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut d = Drift::default();
        let c = d.observe(Some("1.4.1"), Some("1.4.1"), t0);
        assert_eq!(c.version, Some((None, "1.4.1".to_owned())));
        assert!(!c.drift_started);
        assert_eq!(d.drifting(), Some(false));

        // The pipeline deploys 1.4.2; staging still serves 1.4.1.
        let c = d.observe(Some("1.4.1"), Some("1.4.2"), t0 + Duration::from_secs(10));
        assert_eq!(c, Changes { version: None, drift_started: true, drift_ended: false });
        let c = d.observe(None, Some("1.4.2"), t0 + Duration::from_secs(20));
        assert_eq!(c, Changes::default());
        assert_eq!(d.seconds(t0 + Duration::from_secs(25)), 15.0);
        assert_eq!(d.since(), Some(t0 + Duration::from_secs(10)));

        let c = d.observe(Some("1.4.2"), Some("1.4.2"), t0 + Duration::from_secs(30));
        assert_eq!(c.version, Some((Some("1.4.1".to_owned()), "1.4.2".to_owned())));
        assert!(c.drift_ended);
        assert_eq!(d.seconds(t0 + Duration::from_secs(40)), 0.0);

        // Without an expectation, drift is unknown, not "none".
        let c = d.observe(Some("1.4.3"), None, t0 + Duration::from_secs(50));
        assert!(!c.drift_started && !c.drift_ended);
        assert_eq!(d.drifting(), None);
    }
}
