//! CircuitOpen and DeploymentDrift: external conditions through their lifecycle.

use super::*;

#[test]
fn an_external_circuit_open_condition_waits_for_its_for() {
    let mut d = Detector::new(DetectorConfig::default());
    let pending = d.set_condition(TARGET, Signal::CircuitOpen, true, None, T0);
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].from, pending[0].to), (AlertState::Inactive, AlertState::Pending));
    assert!(!pending[0].notifies());
    assert!(d.tick(T0 + 30.0).is_empty());
    let fired = d.tick(T0 + 60.0);
    assert_eq!(fired.len(), 1);
    let a = &fired[0].alert;
    assert_eq!(
        (a.key.kind, a.state, a.severity),
        (AlertKind::CircuitOpen, AlertState::Firing, Severity::Page)
    );
    assert_eq!(a.summary, "The circuit to staging-agent is open");
    assert_eq!(a.active_since, T0);
    let resolved = d.set_condition(TARGET, Signal::CircuitOpen, false, None, T0 + 90.0);
    assert_eq!(resolved[0].to, AlertState::Resolved);

    // Closed again before `for`: back to inactive without a notification.
    let detail = "staging runs build 1.4.1, the pipeline deployed 1.4.2";
    let t = d.set_condition(TARGET, Signal::DeploymentDrift, true, Some(detail.to_owned()), T0 + 100.0);
    assert_eq!(t[0].alert.description, detail);
    let t = d.set_condition(TARGET, Signal::DeploymentDrift, false, None, T0 + 200.0);
    assert_eq!((t[0].from, t[0].to), (AlertState::Pending, AlertState::Inactive));
    assert!(!t[0].notifies());
    assert!(d.alerts().is_empty());
}
