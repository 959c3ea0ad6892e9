//! CircuitOpen and DeploymentDrift, conditions the detector is told about: their settings,
//! and their alerts.

use serde::Deserialize;

use super::{Check, Context, Rule};
use crate::detect::alert::{AlertKind, Finding, Signal, Subject};
use crate::detect::config::Severity;
use crate::detect::target::{SignalState, TargetState};
use crate::util::units::HumanDuration;

/// `CircuitOpen`, fed by the circuit breaker through `Detector::set_condition`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitOpenConfig {
    pub enabled: bool,
    #[serde(rename = "for")]
    pub for_: HumanDuration,
    pub resolve_after: HumanDuration,
    pub severity: Severity,
}

impl Default for CircuitOpenConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            for_: HumanDuration::from_secs(60),
            resolve_after: HumanDuration::from_secs(0),
            severity: Severity::Page,
        }
    }
}

/// `DeploymentDrift`, fed by the deployment check through `Detector::set_condition`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentDriftConfig {
    pub enabled: bool,
    #[serde(rename = "for")]
    pub for_: HumanDuration,
    pub resolve_after: HumanDuration,
    pub severity: Severity,
}

impl Default for DeploymentDriftConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            for_: HumanDuration::from_secs(600),
            resolve_after: HumanDuration::from_secs(0),
            severity: Severity::Ticket,
        }
    }
}

/// The alert of one external condition, set with `Detector::set_condition`.
pub(crate) struct External(pub(crate) Signal);

impl Rule for External {
    fn kind(&self) -> AlertKind {
        self.0.kind()
    }

    /// Targets the condition was set for, and targets whose alert outlived it.
    fn subjects(&self, target: &TargetState) -> Vec<Option<Subject>> {
        target.whole_target_if(target.signals.contains_key(&self.0), self.kind())
    }

    fn check<'a>(
        &self,
        target: &'a mut TargetState,
        cx: Context<'a>,
        _: Option<&'a Subject>,
        _active: bool,
    ) -> Check<'a> {
        let target: &'a TargetState = target;
        signal_check(cx.name, self.0, target.signals.get(&self.0))
    }
}

fn signal_check<'a>(name: &'a str, signal: Signal, state: Option<&'a SignalState>) -> Check<'a> {
    let active = state.is_some_and(|s| s.active);
    Check::new(active, move || {
        let (summary, default) = match signal {
            Signal::CircuitOpen => {
                (format!("The circuit to {name} is open"), format!("the circuit breaker for {name} is open"))
            }
            Signal::DeploymentDrift => (
                format!("{name} does not run the expected deployment"),
                format!("the deployment check reports that {name} does not run the expected build"),
            ),
        };
        let description = match state.and_then(|s| s.detail.clone()) {
            Some(detail) => detail,
            None if active => default,
            None => "the condition cleared".to_owned(),
        };
        Finding { summary, description, measurement: None }
    })
}
