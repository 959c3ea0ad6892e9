//! SessionsBelowConfigured: its settings, and its condition (fewer sessions open than the
//! target's `count`). The `for` is the threshold: a session cut and reopened within its
//! back-off is below for a moment and clears silently; reconnects that keep failing stay
//! below and fire. Resolves when the count is back.

use serde::Deserialize;

use super::{Check, Context, Rule};
use crate::detect::alert::{AlertKind, Finding, Measurement, Subject};
use crate::detect::config::Severity;
use crate::detect::target::TargetState;
use crate::util::units::HumanDuration;

/// `SessionsBelowConfigured`: open sessions against the configured `count`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsBelowConfiguredConfig {
    pub enabled: bool,
    /// How long fewer sessions must be open than configured before the alert fires.
    #[serde(rename = "for")]
    pub for_: HumanDuration,
    pub resolve_after: HumanDuration,
    pub severity: Severity,
}

impl Default for SessionsBelowConfiguredConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            for_: HumanDuration::from_secs(120),
            resolve_after: HumanDuration::from_secs(0),
            severity: Severity::Ticket,
        }
    }
}

pub(crate) struct SessionsBelowConfigured;

impl Rule for SessionsBelowConfigured {
    fn kind(&self) -> AlertKind {
        AlertKind::SessionsBelowConfigured
    }

    /// Only targets that report their sessions (and an alert that outlived the reports).
    fn subjects(&self, target: &TargetState) -> Vec<Option<Subject>> {
        target.whole_target_if(target.sessions.counts.is_some(), self.kind())
    }

    fn check<'a>(
        &self,
        target: &'a mut TargetState,
        cx: Context<'a>,
        _: Option<&'a Subject>,
        _active: bool,
    ) -> Check<'a> {
        let name = cx.name;
        let Some((open, configured)) = target.sessions.counts else {
            return Check::new(false, Finding::default);
        };
        let condition = open < configured;
        let (last_failure, last_disconnect) = (target.last_failure.as_ref(), target.sessions.last_disconnect);
        Check::new(condition, move || {
            let mut description = format!("{open} of {configured} sessions to {name} are open");
            if let Some(f) = last_failure {
                description.push_str(&format!(", last failed connect: {}", f.describe()));
            }
            if let Some(d) = last_disconnect {
                description.push_str(&format!(", last disconnect: {}", d.reason));
            }
            Finding {
                summary: format!("Fewer sessions to {name} open than configured"),
                description,
                measurement: Some(Measurement {
                    value: f64::from(open),
                    baseline: None,
                    threshold: Some(f64::from(configured)),
                    samples: 0,
                    baseline_samples: 0,
                    events: None,
                    baseline_events: None,
                    window_seconds: None,
                }),
            }
        })
    }
}
