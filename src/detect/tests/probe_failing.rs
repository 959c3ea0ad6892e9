//! ProbeFailing: streaks, recovery and what its descriptions say.

use super::*;

#[test]
fn disabled_alerts_never_fire() {
    let mut config = DetectorConfig::default();
    config.probe_failing.enabled = false;
    let mut d = Detector::new(config);
    for i in 0..10 {
        assert!(d
            .observe(&failed(Reason::ConnectRefused, Phase::Connect, None), T0 + f64::from(i))
            .is_empty());
    }
}

#[test]
fn probe_failing_fires_at_the_third_failure_and_resolves_after_two_successes() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut d = Detector::new(DetectorConfig::default());
    let mut t = T0;
    let mut feed = |d: &mut Detector, r: ProbeResult| {
        t += 30.0;
        d.observe(&r, t)
    };
    let refused = || failed(Reason::HandshakeStatus, Phase::Handshake, Some(404));
    // Failures that are not consecutive do not count.
    for r in [refused(), refused(), healthy(&mut rng, 0.1, 0.1), refused(), refused()] {
        assert!(feed(&mut d, r).is_empty());
    }
    let fired = feed(&mut d, refused());
    assert_eq!(fired.len(), 1, "{fired:#?}");
    let f = &fired[0];
    assert_eq!((f.from, f.to), (AlertState::Inactive, AlertState::Firing));
    assert_eq!(f.alert.key.kind, AlertKind::ProbeFailing);
    assert_eq!(f.alert.severity, Severity::Page);
    assert_eq!(f.alert.summary, "Probes of staging-agent are failing");
    assert_eq!(f.alert.description, "3 consecutive failures, last: handshake_status (HTTP 404) in handshake");
    assert!(f.notifies());

    assert!(feed(&mut d, failed(Reason::ExpectTimeout, Phase::Step, None)).is_empty());
    assert!(feed(&mut d, healthy(&mut rng, 0.1, 0.1)).is_empty());
    assert!(d.alerts()[0].description.starts_with("4 of the last 5 probes failed"), "{:?}", d.alerts());
    let resolved = feed(&mut d, healthy(&mut rng, 0.1, 0.1));
    assert_eq!(resolved.len(), 1, "{resolved:#?}");
    assert_eq!((resolved[0].from, resolved[0].to), (AlertState::Firing, AlertState::Resolved));
    assert_eq!(
        resolved[0].alert.description,
        "recovered: 2 consecutive successes after 4 of 6 probes failed, last failure: expect_timeout in step"
    );
    assert!(d.alerts().is_empty());
}

#[test]
fn step_failures_name_the_step_and_server_text_stays_out() {
    let mut d = Detector::new(DetectorConfig::default());
    let mut last = Vec::new();
    for i in 0..3 {
        let mut r = failed(Reason::ExpectTimeout, Phase::Step, Some(101));
        r.step = Some("agent_completed".to_owned());
        last = d.observe(&r, T0 + f64::from(i) * 30.0);
    }
    let a = &last[0].alert;
    assert_eq!(a.description, "3 consecutive failures, last: expect_timeout in step agent_completed");
    assert!(!format!("{a:?}").contains("from the server"));
}
