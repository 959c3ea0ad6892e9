//! Synthetic probe results with explicit timestamps; no clock, no I/O.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::state::{RestoreReport, STATE_VERSION};
use super::window::{Aggregate, Counts, Sketch};
use super::*;
use crate::probe::{Phase, Reason, StepResult};

mod latency;
mod probe_failing;
mod sessions;
mod signal;
mod stats;
mod targets;
mod timeouts;

const T0: f64 = 1_700_000_000.0;
const MIN: f64 = 60.0;
const HOUR: f64 = 3600.0;
const TARGET: &str = "staging-agent";

/// A lognormal value around `median`: latency-shaped noise.
fn noisy(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * z).exp()
}

fn blank(success: bool) -> ProbeResult {
    ProbeResult { success, ..ProbeResult::new(TARGET) }
}

/// A successful probe: every phase timed, two steps; `handshake` is the handshake median.
fn healthy(rng: &mut StdRng, handshake: f64, sigma: f64) -> ProbeResult {
    let mut r = blank(true);
    r.http_status = Some(101);
    for (phase, median) in [
        (Phase::Dns, 0.002),
        (Phase::Connect, 0.010),
        (Phase::Tls, 0.030),
        (Phase::Handshake, handshake),
        (Phase::FirstMessage, 0.005),
        (Phase::Ping, 0.003),
        (Phase::Close, 0.002),
    ] {
        r.phases.set(phase, noisy(rng, median, sigma));
    }
    for (name, median) in [("welcome", 0.004), ("agent_completed", 4.0)] {
        r.steps.push(StepResult {
            name: name.to_owned(),
            ok: true,
            duration_seconds: noisy(rng, median, sigma),
        });
    }
    r
}

/// A probe that failed in `phase`, the phases before it timed.
fn failed(reason: Reason, phase: Phase, http_status: Option<u16>) -> ProbeResult {
    let mut r = blank(false);
    r.reason = Some(reason);
    r.phase = Some(phase);
    r.http_status = http_status;
    r.message = Some("from the server: must not reach an alert".to_owned());
    for p in Phase::ALL.into_iter().take_while(|p| *p != phase) {
        r.phases.set(p, 0.01);
    }
    r
}

/// Feeds a detector at a fixed interval and keeps every transition.
struct Run {
    detector: Detector,
    now: f64,
    log: Vec<Transition>,
}

impl Run {
    fn new() -> Self {
        Self::with(DetectorConfig::default())
    }

    fn with(config: DetectorConfig) -> Self {
        assert_eq!(config.validate("detector"), Vec::<String>::new());
        Self { detector: Detector::new(config), now: T0, log: Vec::new() }
    }

    /// Probes every `every` seconds for `duration` seconds, ticking in between.
    fn probe_for(&mut self, duration: f64, every: f64, mut make: impl FnMut(f64) -> ProbeResult) {
        let end = self.now + duration;
        while self.now < end {
            let r = make(self.now);
            self.log.extend(self.detector.observe(&r, self.now));
            self.log.extend(self.detector.tick(self.now + every / 2.0));
            self.now += every;
        }
    }

    fn transitions(&self, kind: AlertKind, to: AlertState) -> Vec<&Transition> {
        self.log.iter().filter(|t| t.alert.key.kind == kind && t.to == to).collect()
    }

    fn count(&self, to: AlertState) -> usize {
        self.log.iter().filter(|t| t.to == to).count()
    }
}

fn handshake() -> Option<Subject> {
    Some(Subject::Phase(Phase::Handshake))
}
