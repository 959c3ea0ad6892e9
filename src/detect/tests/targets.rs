//! What the detector keeps per target: saved, restored, dropped, and within its memory bound.

use super::*;
use crate::detect::window::SKETCH_MAX_BYTES;

#[test]
fn snapshot_and_restore_round_trip_and_keep_detecting() {
    let mut rng = StdRng::seed_from_u64(19);
    let mut run = Run::new();
    run.probe_for(3.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.1));
    run.probe_for(20.0 * MIN, 30.0, |_| healthy(&mut rng, 0.3, 0.1));
    run.detector.set_condition(TARGET, Signal::CircuitOpen, true, None, run.now);
    assert_eq!(run.detector.alerts().len(), 2);

    let json = serde_json::to_string(&run.detector.snapshot()).unwrap();
    let state: DetectorState = serde_json::from_str(&json).unwrap();
    assert_eq!(state.version, STATE_VERSION);
    let mut restored = Detector::new(DetectorConfig::default());
    let report = restored.restore(state).unwrap();
    assert_eq!(report, RestoreReport { targets: 1, notes: Vec::new() });
    assert_eq!(restored.alerts(), run.detector.alerts());
    let again = serde_json::to_string(&restored.snapshot()).unwrap();
    if again != json {
        std::fs::write("/tmp/snap-a.json", &json).unwrap();
        std::fs::write("/tmp/snap-b.json", &again).unwrap();
    }
    assert!(again == json, "the restored state differs from the saved one");

    // Both go on identically: the regression resolves in both, at the same time.
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut t = run.now;
    for _ in 0..120 {
        let r = healthy(&mut rng, 0.1, 0.1);
        a.extend(run.detector.observe(&r, t));
        b.extend(restored.observe(&r, t));
        t += 30.0;
    }
    assert_eq!(a, b);
    assert!(a
        .iter()
        .any(|t| t.to == AlertState::Resolved && t.alert.key.kind == AlertKind::LatencyRegression));
}

#[test]
fn restore_tolerates_what_it_does_not_know() {
    let mut rng = StdRng::seed_from_u64(23);
    let mut d = Detector::new(DetectorConfig::default());
    for i in 0..10 {
        d.observe(&healthy(&mut rng, 0.1, 0.1), T0 + f64::from(i) * 30.0);
    }
    let mut state = serde_json::to_value(d.snapshot()).unwrap();
    let target = &mut state["targets"][0];
    target["name"] = "retired-target".into();
    let series = target["series"][0].clone();
    let mut unknown = series.clone();
    unknown["subject"] = "phase:teleport".into();
    target["series"].as_array_mut().unwrap().push(unknown);
    target["alerts"] = serde_json::json!([{
        "alertname": "FluxCapacitor", "subject": null,
        "lifecycle": { "life": { "state": "pending", "since": 1.0 }, "finding": {
            "summary": "", "description": "", "measurement": null } } }]);
    target["last_failure"] = serde_json::json!({
        "reason": "new_reason", "phase": "handshake", "step": null, "http_status": null });
    state["future_field"] = true.into();

    let mut restored = Detector::new(DetectorConfig::default());
    let report = restored.restore(serde_json::from_value(state.clone()).unwrap()).unwrap();
    assert_eq!(report.targets, 1);
    assert_eq!(
        report.notes,
        [
            "target retired-target: unknown series `phase:teleport` skipped",
            "target retired-target: unknown alert FluxCapacitor (-) skipped",
        ]
    );
    assert_eq!(restored.targets.keys().collect::<Vec<_>>(), ["retired-target"]);
    assert!(restored.retain_targets(|name| name == TARGET, T0).is_empty());
    assert_eq!(restored.targets.len(), 0);

    // Other bucket widths: the data goes, the rest stays.
    let config = DetectorConfig {
        recent_bucket: crate::util::units::HumanDuration::from_secs(120),
        ..DetectorConfig::default()
    };
    let mut other = Detector::new(config);
    let report = other.restore(serde_json::from_value(state.clone()).unwrap()).unwrap();
    assert!(report.notes[0].contains("their data was dropped"), "{report:?}");

    state["version"] = 99.into();
    let err = other.restore(serde_json::from_value(state).unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "detector state version 99 is not supported (this build reads version 1)");
}

#[test]
fn dropping_a_target_resolves_its_firing_alerts() {
    let mut d = Detector::new(DetectorConfig::default());
    for i in 0..3 {
        d.observe(&failed(Reason::ConnectRefused, Phase::Connect, None), T0 + f64::from(i));
    }
    assert_eq!(d.alerts().len(), 1);
    let t = d.retain_targets(|_| false, T0 + 10.0);
    assert_eq!((t[0].from, t[0].to), (AlertState::Firing, AlertState::Resolved));
    assert_eq!(t[0].alert.description, "staging-agent is no longer monitored");
    assert!(d.alerts().is_empty());
}

#[test]
fn memory_stays_within_the_stated_bound() {
    let mut rng = StdRng::seed_from_u64(29);
    let mut run = Run::new();
    run.probe_for(27.0 * HOUR, 30.0, |_| healthy(&mut rng, 0.1, 0.5));
    let layout = run.detector.layout;
    let target = &run.detector.targets[TARGET];
    // 7 phases and 2 steps.
    assert_eq!(target.timings.len(), 9);
    for w in target.timings.values() {
        assert!(w.recent.len() + w.baseline.len() <= layout.max_buckets());
    }
    assert_eq!(layout.max_buckets(), 40);
    // The figures of the module documentation: the buckets and the two merged baselines,
    // each at most the largest sketch (8.25 KiB), make about 347 KiB a latency series, and
    // 12 series (7 phases, 5 steps) stay under 4.1 MiB.
    assert_eq!(SKETCH_MAX_BYTES, 8448);
    let per_series = (layout.max_buckets() + 2) * SKETCH_MAX_BYTES;
    assert!((per_series as f64 / 1024.0 - 347.0).abs() < 1.0, "{per_series}");
    assert!(12.0 * per_series as f64 / 1024.0 / 1024.0 < 4.1, "{per_series}");
}
