//! Trace generation: one scenario and seed become the JSON lines `wsprobe replay` reads,
//! drawn from a seeded RNG, with where the incident lies in them.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wsprobe::probe::{Phase, PhaseTimings, ProbeResult, Reason};

use crate::scenarios::{
    Incident, Scenario, BACKGROUND_ERRORS, BACKGROUND_TIMEOUTS, EPOCH, HOUR, JITTER, NON_TIMEOUTS,
    OUTLIER_FACTOR, OUTLIER_P, PHASES, SIGMA, TARGET, TIMEOUTS, WARMUP,
};

/// One generated trace and where its incident lies.
pub struct Trace {
    pub jsonl: Vec<u8>,
    pub probes: usize,
    /// Start of the first probe inside the incident.
    pub first_in: f64,
    /// Start of the first probe after the incident.
    pub first_after: f64,
    /// When the incident starts.
    pub start: f64,
    /// The diurnal latency factor then.
    pub diurnal_at_start: f64,
    /// When each probe inside the incident ended (its `ts`), the first few.
    pub first_ends: Vec<f64>,
    /// When the incident's first few timed-out probes ended: the evidence a detector has.
    pub incident_timeouts: Vec<f64>,
}

/// A standard normal sample (Box–Muller).
pub fn normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The 24 h swing on latencies, `since` seconds into the trace.
pub fn diurnal_factor(amplitude: f64, since: f64, phase: f64) -> f64 {
    1.0 + amplitude * (std::f64::consts::TAU * since / (24.0 * HOUR) + phase).sin()
}

/// How long a probe waits for a phase before giving up (the default `timeouts`).
pub fn timeout_of(phase: Phase) -> f64 {
    match phase {
        Phase::Dns | Phase::Ping => 5.0,
        Phase::Handshake => 15.0,
        _ => 10.0,
    }
}

pub fn generate(scenario: &Scenario, seed: u64) -> Trace {
    let mut rng = StdRng::seed_from_u64(seed);
    let epoch = EPOCH + rng.random_range(0.0..HOUR);
    let diurnal_phase = rng.random_range(0.0..std::f64::consts::TAU);
    let start = epoch + WARMUP;
    let end = start + scenario.duration;
    let stop = end + scenario.tail;

    let mut trace = Trace {
        jsonl: Vec::new(),
        probes: 0,
        first_in: f64::NAN,
        first_after: f64::NAN,
        start,
        diurnal_at_start: diurnal_factor(scenario.diurnal, WARMUP, diurnal_phase),
        first_ends: Vec::new(),
        incident_timeouts: Vec::new(),
    };
    let mut t = epoch;
    let mut consecutive_failures = 0;
    while t < stop {
        let inside = t >= start && t < end;
        if inside && trace.first_in.is_nan() {
            trace.first_in = t;
        }
        if t >= end && trace.first_after.is_nan() {
            trace.first_after = t;
        }
        let diurnal = diurnal_factor(scenario.diurnal, t - epoch, diurnal_phase);
        let handshake_factor = match scenario.incident {
            Incident::Slower(f) if inside => f,
            Incident::Creep(to) if inside => 1.0 + (to - 1.0) * (t - start) / scenario.duration,
            _ => 1.0,
        };
        let incident_failure = match scenario.incident {
            Incident::Outage if inside => Some((Reason::ConnectRefused, Phase::Connect)),
            Incident::Timeouts(p) if inside && rng.random_bool(p) => {
                Some((Reason::HandshakeTimeout, Phase::Handshake))
            }
            _ => None,
        };
        let failure = incident_failure.or_else(|| {
            let u = rng.random::<f64>();
            // Isolated failures stay isolated: never three in a row.
            if consecutive_failures >= 2 {
                None
            } else if u < BACKGROUND_ERRORS {
                Some(NON_TIMEOUTS[rng.random_range(0..NON_TIMEOUTS.len())])
            } else if u < BACKGROUND_ERRORS + BACKGROUND_TIMEOUTS {
                Some(TIMEOUTS[rng.random_range(0..TIMEOUTS.len())])
            } else {
                None
            }
        });
        consecutive_failures = if failure.is_some() { consecutive_failures + 1 } else { 0 };

        let result = probe(&mut rng, t, diurnal, handshake_factor, failure);
        if inside && trace.first_ends.len() < 100 {
            trace.first_ends.push(t + result.duration_seconds);
        }
        if inside && incident_failure.is_some() && trace.incident_timeouts.len() < 5 {
            trace.incident_timeouts.push(t + result.duration_seconds);
        }
        trace.jsonl.extend_from_slice(wsprobe::record::line(&result).as_bytes());
        trace.jsonl.push(b'\n');
        trace.probes += 1;
        t += scenario.interval * (1.0 + rng.random_range(-JITTER..=JITTER));
    }
    trace
}

/// One probe started at `t`: phases in order, cut at the failed one.
pub fn probe(
    rng: &mut StdRng,
    t: f64,
    diurnal: f64,
    handshake_factor: f64,
    failure: Option<(Reason, Phase)>,
) -> ProbeResult {
    let mut phases = PhaseTimings::default();
    let mut total = 0.0;
    for (phase, median) in PHASES {
        let mut secs = median * diurnal * (SIGMA * normal(rng)).exp();
        if rng.random_bool(OUTLIER_P) {
            secs *= rng.random_range(OUTLIER_FACTOR.0..OUTLIER_FACTOR.1);
        }
        if phase == Phase::Handshake {
            secs *= handshake_factor;
        }
        match failure {
            Some((reason, failed)) if failed == phase => {
                if reason.is_timeout() {
                    secs = timeout_of(phase);
                }
                phases.set(phase, secs);
                total += secs;
                break;
            }
            _ => {
                phases.set(phase, secs);
                total += secs;
            }
        }
    }
    let (reason, phase) = failure.unzip();
    let reached_first_message = phases.get(Phase::FirstMessage).is_some()
        && !matches!(failure, Some((_, p)) if p <= Phase::FirstMessage);
    ProbeResult {
        success: failure.is_none(),
        reason,
        phase,
        message: reason.map(|r| format!("{r} (generated)")),
        http_status: (reason == Some(Reason::HandshakeStatus)).then_some(503),
        duration_seconds: total,
        phases,
        messages_received: u64::from(reached_first_message),
        started_at: t,
        ..ProbeResult::new(TARGET)
    }
}

// ---------------------------------------------------------------------------------------
