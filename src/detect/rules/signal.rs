//! CircuitOpen and DeploymentDrift: conditions the detector is told about.

use super::Check;
use crate::detect::alert::{Finding, Signal};
use crate::detect::target::SignalState;

pub(crate) fn signal_check<'a>(name: &'a str, signal: Signal, state: Option<&'a SignalState>) -> Check<'a> {
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
