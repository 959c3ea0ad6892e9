//! Signal quality of the regression detector: labelled traces, generated in memory from a
//! seeded RNG, replayed with the default `DetectorConfig` and scored for detection delay,
//! false alarms and resolve delay.
//!
//! Each trace is written as JSON lines with `wsprobe::record::line` and fed to
//! `wsprobe::replay::replay`, the code path of `wsprobe replay` (one tick per simulated
//! second between results, as the live engine), so the numbers are what users get.
//!
//! One target probed every 30 s ± 10 % (the scheduler's default jitter; two control
//! traces use 15 s). Phase medians:
//! dns 1 ms, connect 5 ms, tls 30 ms, handshake 50 ms, first_message 20 ms, ping 5 ms,
//! close 5 ms; each sample log-normal (σ = 0.2), with a 0.5 % chance per phase of a slow
//! outlier (× 2 to 4), and all of them swung ± 30 % by a 24 h sinusoid whose phase is
//! random per seed. Isolated failures throughout: 0.3 % of probes fail for a random
//! non-timeout reason, 0.2 % for a random timeout reason, never three in a row. Every
//! trace starts with 24 h of that (the warm-up, so baselines exist), then:
//!
//! - healthy: 24 h more of the same;
//! - p95 2×: handshake latency doubled for 2 h, then 2 h healthy;
//! - 10 % timeouts: 10 % of probes fail with `handshake_timeout` for 2 h, then 2 h healthy;
//! - hard outage: every probe fails with `connect_refused` for 30 min, then 1 h healthy;
//! - slow creep: handshake latency grows linearly × 1 → × 3 over 6 h, then is back to
//!   normal for 2 h.
//!
//! Delays are measured from the first probe that started inside the incident (what the
//! detector could see at the earliest; a real onset adds up to one interval of sampling
//! wait), resolve delays from the first probe after it.
//!
//! With `WSPROBE_SIGNAL_CANDIDATES=1` the traces are also replayed with a few modified
//! configurations, each on the traces it is about plus `healthy`, for the targets the
//! defaults miss; and control traces are added for the defaults: the p95 2× trace without
//! the diurnal swing, which tells the swing's effect apart from the thresholds', and the
//! healthy, p95 2× and 10 % timeouts traces probed every 15 s, which show what a shorter
//! interval buys and costs.
//!
//!     cargo bench --bench signal
//!     WSPROBE_SIGNAL_CANDIDATES=1 cargo bench --bench signal
//!
//! `WSPROBE_SIGNAL_SEEDS` (default 20) seeds per trace, `WSPROBE_SIGNAL_THREADS` (default:
//! all cores) worker threads, `WSPROBE_SIGNAL_TRACES` (default: all) a `;`-separated
//! list of the traces to run, e.g. `healthy` to count false alarms on many seeds, and
//! `WSPROBE_SIGNAL_VARIANTS` (default: all) one of the configurations by its label, e.g.
//! `timeouts.significance: 0.001` (the defaults are always run). The output is markdown
//! for `BENCHMARKS.md`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wsprobe::detect::{AlertKind, AlertState, DetectorConfig, LatencyBaseline, Subject, Transition};
use wsprobe::probe::{Phase, PhaseTimings, ProbeResult, Reason};
use wsprobe::util::units::HumanDuration;

use support::{clk_tck, env_or, machine_table, percentile, stat_ticks, today};

const TARGET: &str = "agent-eu";
const INTERVAL: f64 = 30.0;
/// The scheduler's default jitter: each interval is uniform in `INTERVAL × (1 ± JITTER)`.
const JITTER: f64 = 0.1;
const HOUR: f64 = 3600.0;
const WARMUP: f64 = 24.0 * HOUR;
/// 2026-01-01T00:00:00Z; each seed shifts it by up to an hour, so bucket boundaries fall
/// differently against the probe schedule.
const EPOCH: f64 = 1_767_225_600.0;

/// Median latency of each timed phase, in seconds, in probe order.
const PHASES: [(Phase, f64); 7] = [
    (Phase::Dns, 0.001),
    (Phase::Connect, 0.005),
    (Phase::Tls, 0.030),
    (Phase::Handshake, 0.050),
    (Phase::FirstMessage, 0.020),
    (Phase::Ping, 0.005),
    (Phase::Close, 0.005),
];
/// Log-normal spread of every phase sample.
const SIGMA: f64 = 0.2;
/// Chance, per phase and probe, of an outlier ...
const OUTLIER_P: f64 = 0.005;
/// ... that many times slower (uniform).
const OUTLIER_FACTOR: (f64, f64) = (2.0, 4.0);
/// Amplitude of the 24 h sinusoid on every latency.
const DIURNAL: f64 = 0.3;
/// Traces run only with the candidate configurations: controls that tell causes apart.
const CONTROL: &str = "p95 2×, no diurnal swing";
const HEALTHY_15S: &str = "healthy, 15 s interval";
const TIMEOUTS_15S: &str = "10 % timeouts, 15 s interval";
const P95_15S: &str = "p95 2×, 15 s interval";
const CONTROLS: [&str; 4] = [CONTROL, HEALTHY_15S, TIMEOUTS_15S, P95_15S];
/// Isolated failures: share of probes failing for a non-timeout, and for a timeout reason.
const BACKGROUND_ERRORS: f64 = 0.003;
const BACKGROUND_TIMEOUTS: f64 = 0.002;

const NON_TIMEOUTS: [(Reason, Phase); 6] = [
    (Reason::DnsError, Phase::Dns),
    (Reason::ConnectRefused, Phase::Connect),
    (Reason::TlsError, Phase::Tls),
    (Reason::HandshakeStatus, Phase::Handshake),
    (Reason::UnexpectedClose, Phase::FirstMessage),
    (Reason::ConnectionReset, Phase::Ping),
];
const TIMEOUTS: [(Reason, Phase); 5] = [
    (Reason::ConnectTimeout, Phase::Connect),
    (Reason::TlsTimeout, Phase::Tls),
    (Reason::HandshakeTimeout, Phase::Handshake),
    (Reason::FirstMessageTimeout, Phase::FirstMessage),
    (Reason::PingTimeout, Phase::Ping),
];

/// What goes wrong after the warm-up.
#[derive(Debug, Clone, Copy)]
enum Incident {
    None,
    /// Handshake latency multiplied by this.
    Slower(f64),
    /// Handshake latency multiplied by 1 at the start, growing linearly to this at the end.
    Creep(f64),
    /// This share of probes fails with `handshake_timeout`.
    Timeouts(f64),
    /// Every probe fails with `connect_refused`.
    Outage,
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    incident: Incident,
    /// Seconds between probes (before jitter).
    interval: f64,
    /// How long the incident lasts (for `healthy`: the evaluated day after the warm-up).
    duration: f64,
    /// Healthy time after the incident, to see the alert resolve.
    tail: f64,
    /// Amplitude of the 24 h swing on latencies, over the whole trace.
    diurnal: f64,
    expected: Option<(AlertKind, Option<Phase>)>,
    target: Target,
}

/// The target for a trace.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// No alert at all after the warm-up.
    Silent,
    /// The expected alert fires within this many seconds of the incident's first probe.
    Within(f64),
    /// The expected alert fires by the incident's n-th probe (n − 1 intervals after the
    /// first: the detector cannot know of an outage before a probe sees it).
    ByProbe(usize),
    /// Only reported.
    Report,
}

const SCENARIOS: [Scenario; 9] = [
    Scenario {
        name: "healthy",
        incident: Incident::None,
        interval: INTERVAL,
        duration: 24.0 * HOUR,
        tail: 0.0,
        diurnal: DIURNAL,
        expected: None,
        target: Target::Silent,
    },
    Scenario {
        name: "p95 2×",
        incident: Incident::Slower(2.0),
        interval: INTERVAL,
        duration: 2.0 * HOUR,
        tail: 2.0 * HOUR,
        diurnal: DIURNAL,
        expected: Some((AlertKind::LatencyRegression, Some(Phase::Handshake))),
        target: Target::Within(600.0),
    },
    Scenario {
        name: "10 % timeouts",
        incident: Incident::Timeouts(0.1),
        interval: INTERVAL,
        duration: 2.0 * HOUR,
        tail: 2.0 * HOUR,
        diurnal: DIURNAL,
        expected: Some((AlertKind::TimeoutRegression, None)),
        target: Target::Within(600.0),
    },
    Scenario {
        name: "hard outage",
        incident: Incident::Outage,
        interval: INTERVAL,
        duration: 0.5 * HOUR,
        tail: HOUR,
        diurnal: DIURNAL,
        expected: Some((AlertKind::ProbeFailing, None)),
        target: Target::ByProbe(3),
    },
    Scenario {
        name: "slow creep",
        incident: Incident::Creep(3.0),
        interval: INTERVAL,
        duration: 6.0 * HOUR,
        tail: 2.0 * HOUR,
        diurnal: DIURNAL,
        expected: Some((AlertKind::LatencyRegression, Some(Phase::Handshake))),
        target: Target::Report,
    },
    Scenario {
        name: CONTROL,
        incident: Incident::Slower(2.0),
        interval: INTERVAL,
        duration: 2.0 * HOUR,
        tail: 2.0 * HOUR,
        diurnal: 0.0,
        expected: Some((AlertKind::LatencyRegression, Some(Phase::Handshake))),
        target: Target::Within(600.0),
    },
    Scenario {
        name: HEALTHY_15S,
        incident: Incident::None,
        interval: 15.0,
        duration: 24.0 * HOUR,
        tail: 0.0,
        diurnal: DIURNAL,
        expected: None,
        target: Target::Silent,
    },
    Scenario {
        name: P95_15S,
        incident: Incident::Slower(2.0),
        interval: 15.0,
        duration: 2.0 * HOUR,
        tail: 2.0 * HOUR,
        diurnal: DIURNAL,
        expected: Some((AlertKind::LatencyRegression, Some(Phase::Handshake))),
        target: Target::Within(600.0),
    },
    Scenario {
        name: TIMEOUTS_15S,
        incident: Incident::Timeouts(0.1),
        interval: 15.0,
        duration: 2.0 * HOUR,
        tail: 2.0 * HOUR,
        diurnal: DIURNAL,
        expected: Some((AlertKind::TimeoutRegression, None)),
        target: Target::Within(600.0),
    },
];

/// A configuration and the traces to replay with it.
#[derive(Debug, Clone)]
struct Variant {
    label: String,
    config: DetectorConfig,
    /// Indices into [`SCENARIOS`].
    traces: Vec<usize>,
}

impl Variant {
    /// `changes` applied to the defaults, replayed on the traces named (and `healthy`, for
    /// the false alarms).
    fn new(label: &str, traces: &[&str], changes: impl FnOnce(&mut DetectorConfig)) -> Self {
        let mut config = DetectorConfig::default();
        changes(&mut config);
        let traces = SCENARIOS
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name == "healthy" || traces.contains(&s.name))
            .map(|(i, _)| i)
            .collect();
        Self { label: label.to_owned(), config, traces }
    }
}

/// The defaults on every trace, then (with `candidates`) changes that would meet the
/// targets the defaults miss, each on the traces it is about.
fn variants(candidates: bool) -> Vec<Variant> {
    let all: Vec<&str> =
        SCENARIOS.iter().map(|s| s.name).filter(|n| candidates || !CONTROLS.contains(n)).collect();
    let mut out = vec![Variant::new("defaults", &all, |_| {})];
    if !candidates {
        return out;
    }
    let latency = ["p95 2×", CONTROL, "slow creep"];
    let timeouts = ["10 % timeouts"];
    let ms = HumanDuration::from_millis;
    out.push(Variant::new("latency.min_slow_samples: 3", &latency, |c| {
        c.latency.min_slow_samples = NonZeroU32::MIN.saturating_add(2);
    }));
    out.push(Variant::new("latency.ratio: 1.4", &latency, |c| {
        c.latency.ratio = 1.4;
    }));
    out.push(Variant::new("latency.for: 2m", &latency, |c| {
        c.latency.for_ = HumanDuration::from_secs(120);
    }));
    out.push(Variant::new("latency.for: 1m", &latency, |c| {
        c.latency.for_ = HumanDuration::from_secs(60);
    }));
    out.push(Variant::new("latency.baseline: window", &latency, |c| {
        c.latency.baseline = LatencyBaseline::Window;
    }));
    out.push(Variant::new("previous latency defaults (window, ratio 2, margin 50ms)", &latency, |c| {
        c.latency.baseline = LatencyBaseline::Window;
        c.latency.ratio = 2.0;
        c.latency.margin = ms(50);
        c.latency.resolve_ratio = 1.5;
        c.latency.resolve_margin = ms(25);
    }));
    out.push(Variant::new("timeouts.resolve_after: 5m", &timeouts, |c| {
        c.timeouts.resolve_after = HumanDuration::from_secs(300);
    }));
    out.push(Variant::new("timeouts.significance: 0.001", &timeouts, |c| {
        c.timeouts.significance = 1e-3;
    }));
    out.push(Variant::new("timeouts.significance: 0.00001", &timeouts, |c| {
        c.timeouts.significance = 1e-5;
    }));
    out
}

// ---------------------------------------------------------------------------------------
// Traces

/// One generated trace and where its incident lies.
struct Trace {
    jsonl: Vec<u8>,
    probes: usize,
    /// Start of the first probe inside the incident.
    first_in: f64,
    /// Start of the first probe after the incident.
    first_after: f64,
    /// When the incident starts.
    start: f64,
    /// The diurnal latency factor then.
    diurnal_at_start: f64,
    /// When each probe inside the incident ended (its `ts`), the first few.
    first_ends: Vec<f64>,
    /// When the incident's first few timed-out probes ended: the evidence a detector has.
    incident_timeouts: Vec<f64>,
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The 24 h swing on latencies, `since` seconds into the trace.
fn diurnal_factor(amplitude: f64, since: f64, phase: f64) -> f64 {
    1.0 + amplitude * (std::f64::consts::TAU * since / (24.0 * HOUR) + phase).sin()
}

/// How long a probe waits for a phase before giving up (the default `timeouts`).
fn timeout_of(phase: Phase) -> f64 {
    match phase {
        Phase::Dns | Phase::Ping => 5.0,
        Phase::Handshake => 15.0,
        _ => 10.0,
    }
}

fn generate(scenario: &Scenario, seed: u64) -> Trace {
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
fn probe(
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
// Scoring

/// What one replay of one trace found.
#[derive(Debug, Default, Clone)]
struct Score {
    /// Expected alert's first firing at or after the incident's first probe, from there.
    delay: Option<f64>,
    /// Probes of the incident the detector had seen when the expected alert first fired.
    probes_to_fire: Option<usize>,
    /// Slow creep: the handshake factor when it fired.
    factor_at_fire: Option<f64>,
    /// Further firings of the expected alert in the incident and its tail.
    refires: usize,
    /// Expected alert's resolve after its last firing, from the first probe after the
    /// incident; negative when it resolved during the incident.
    resolve: Option<f64>,
    /// Whether the expected alert fired and never resolved.
    unresolved: bool,
    /// Other alerts that fired in the incident and its tail (all alerts, for `healthy`).
    others: Vec<String>,
    /// Alerts that fired during the warm-up.
    warmup: Vec<String>,
    /// For alerts that should not have fired: seed, time into the trace, description.
    false_alarms: Vec<String>,
    /// Alerts that went pending and back to inactive without firing, after the warm-up.
    silent_pendings: usize,
    /// The diurnal latency factor when the incident started.
    diurnal_at_start: f64,
    /// Timeout incidents: when the incident's 2nd and 3rd timeouts were seen, from its
    /// first probe.
    nth_timeout: [Option<f64>; 2],
    /// Timeout incidents: from the 3rd timeout to the expected alert firing.
    after_third: Option<f64>,
}

fn alert_name(t: &Transition) -> String {
    match &t.alert.key.subject {
        Some(s) => {
            let (k, v) = s.label();
            format!("{}{{{k}={v}}}", t.alert.key.kind)
        }
        None => t.alert.key.kind.to_string(),
    }
}

fn is_expected(t: &Transition, expected: Option<(AlertKind, Option<Phase>)>) -> bool {
    expected.is_some_and(|(kind, phase)| {
        t.alert.key.kind == kind && t.alert.key.subject == phase.map(Subject::Phase)
    })
}

fn score(scenario: &Scenario, seed: u64, trace: &Trace, transitions: &[Transition]) -> Score {
    let mut s = Score { diurnal_at_start: trace.diurnal_at_start, ..Score::default() };
    if let Incident::Timeouts(_) = scenario.incident {
        let nth = |n: usize| trace.incident_timeouts.get(n - 1).map(|end| end - trace.first_in);
        s.nth_timeout = [nth(2), nth(3)];
    }
    let mut last_fire: Option<f64> = None;
    for t in transitions {
        let expected = is_expected(t, scenario.expected);
        let explain = |t: &Transition| {
            let since = t.at - (trace.start - WARMUP);
            format!("seed {seed} at +{}: {} — {}", fmt_dur(since), alert_name(t), t.alert.description)
        };
        if t.at < trace.start {
            if t.to == AlertState::Firing {
                s.warmup.push(alert_name(t));
                s.false_alarms.push(explain(t));
            }
            continue;
        }
        match t.to {
            AlertState::Firing if expected => {
                if s.delay.is_none() {
                    s.delay = Some(t.at - trace.first_in);
                    s.after_third = trace.incident_timeouts.get(2).map(|third| t.at - third);
                    // Trace lines carry `ts` rounded to the millisecond.
                    let seen = trace.first_ends.iter().filter(|&&end| end <= t.at + 0.0005).count();
                    s.probes_to_fire = Some(seen);
                    if let Incident::Creep(to) = scenario.incident {
                        let progress = ((t.at - trace.start) / scenario.duration).clamp(0.0, 1.0);
                        s.factor_at_fire = Some(1.0 + (to - 1.0) * progress);
                    }
                } else {
                    s.refires += 1;
                }
                last_fire = Some(t.at);
            }
            AlertState::Firing => {
                s.others.push(alert_name(t));
                s.false_alarms.push(explain(t));
            }
            AlertState::Inactive if t.from == AlertState::Pending => s.silent_pendings += 1,
            AlertState::Resolved if expected && last_fire.is_some() => {
                s.resolve = Some(t.at - trace.first_after);
            }
            _ => {}
        }
    }
    // A resolve that came before the last firing does not count.
    if let (Some(fire), Some(resolve)) = (last_fire, s.resolve) {
        if resolve + trace.first_after < fire {
            s.resolve = None;
        }
    }
    s.unresolved = last_fire.is_some() && s.resolve.is_none();
    s
}

// ---------------------------------------------------------------------------------------
// Running

struct Job {
    scenario: usize,
    seed: u64,
}

struct Outcome {
    scenario: usize,
    /// One score per variant; `None` where the variant skips this trace.
    scores: Vec<Option<Score>>,
    probes: usize,
    /// Simulated hours the trace spans.
    hours: f64,
    generate: Duration,
    /// Replay time per variant.
    replay: Vec<Duration>,
}

fn run(job: &Job, variants: &[Variant]) -> Outcome {
    let scenario = &SCENARIOS[job.scenario];
    let t0 = Instant::now();
    // Scenarios draw from different streams, so no two rows share a warm-up.
    let trace = generate(scenario, job.seed ^ ((job.scenario as u64 + 1) << 32));
    let generate = t0.elapsed();
    let mut scores = Vec::new();
    let mut replay = Vec::new();
    for v in variants {
        if !v.traces.contains(&job.scenario) {
            scores.push(None);
            replay.push(Duration::ZERO);
            continue;
        }
        let t0 = Instant::now();
        let out = wsprobe::replay::replay(&v.config, &trace.jsonl[..])
            .unwrap_or_else(|e| panic!("replaying the generated {} trace failed: {e}", scenario.name));
        replay.push(t0.elapsed());
        assert_eq!(out.results, trace.probes, "replay skipped results");
        scores.push(Some(score(scenario, job.seed, &trace, &out.transitions)));
    }
    let hours = (WARMUP + scenario.duration + scenario.tail) / HOUR;
    Outcome { scenario: job.scenario, scores, probes: trace.probes, hours, generate, replay }
}

fn run_all(seeds: u64, threads: usize, variants: &[Variant]) -> Vec<Outcome> {
    // Longest traces first, so no thread is left with a long one at the end.
    let mut order: Vec<usize> = (0..SCENARIOS.len()).collect();
    order.sort_by(|&a, &b| {
        let len = |i: usize| SCENARIOS[i].duration + SCENARIOS[i].tail;
        len(b).total_cmp(&len(a))
    });
    let jobs: Vec<Job> = order
        .iter()
        .flat_map(|&scenario| (0..seeds).map(move |seed| Job { scenario, seed }))
        .filter(|job| variants.iter().any(|v| v.traces.contains(&job.scenario)))
        .collect();
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let outcome = run(job, variants);
                done.lock().unwrap().push(outcome);
            });
        }
    });
    done.into_inner().unwrap()
}

// ---------------------------------------------------------------------------------------
// Reporting

const TEN_MINUTES: f64 = 600.0;

/// Alerts that should not have fired listed per trace, at most.
const MAX_LISTED: usize = 4;

/// `45s`, `6m10s`, `1h02m`.
fn fmt_dur(secs: f64) -> String {
    let sign = if secs < 0.0 { "−" } else { "" };
    let s = secs.abs().round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{sign}{s}s"),
        (0, m, s) => format!("{sign}{m}m{s:02}s"),
        (h, m, _) => format!("{sign}{h}h{m:02}m"),
    }
}

/// The median and worst of `durations`, which leave out `missing` seeds: `never` when
/// every seed is missing, the worst `<missing_word> in N` when some are.
fn median_and_worst(durations: &[f64], missing: usize, missing_word: &str) -> (String, String) {
    if durations.is_empty() {
        return ("never".to_owned(), "never".to_owned());
    }
    let worst = if missing > 0 {
        format!("{missing_word} in {missing}")
    } else {
        fmt_dur(durations.iter().copied().fold(f64::MIN, f64::max))
    };
    (fmt_dur(percentile(durations, 50.0)), worst)
}

fn expected_name(e: Option<(AlertKind, Option<Phase>)>) -> String {
    match e {
        None => "none".to_owned(),
        Some((kind, None)) => kind.to_string(),
        Some((kind, Some(p))) => format!("{kind}{{phase={p}}}"),
    }
}

/// `3× ProbeFailing, 1× LatencyRegression{phase=tls}`, or `0`.
fn tally(names: impl Iterator<Item = String>) -> (usize, String) {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for n in names {
        *counts.entry(n).or_default() += 1;
    }
    let total = counts.values().sum();
    let text = counts.iter().map(|(n, c)| format!("{c}× {n}")).collect::<Vec<_>>().join(", ");
    (total, text)
}

fn table(scores_by_scenario: &[Vec<&Score>]) -> String {
    // Traces this variant skipped have no scores and no row.
    let mut out = String::new();
    out.push_str(
        "| trace | expected alert | detected | delay median | delay worst | target | met | creep factor at fire \
         (median, min–max) | re-fires | other alerts (seeds) | warm-up alerts (seeds) | resolve median | resolve \
         worst |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut details = String::new();
    for (i, scenario) in SCENARIOS.iter().enumerate() {
        let scores = &scores_by_scenario[i];
        if scores.is_empty() {
            continue;
        }
        let delays: Vec<f64> = scores.iter().filter_map(|s| s.delay).collect();
        let missed = scores.len() - delays.len();
        let (median, worst) = if scenario.expected.is_none() {
            ("—".to_owned(), "—".to_owned())
        } else {
            median_and_worst(&delays, missed, "missed")
        };
        let detected = match scenario.expected {
            None => "—".to_owned(),
            Some(_) => format!("{}/{}", delays.len(), scores.len()),
        };
        let (others, others_text) = tally(scores.iter().flat_map(|s| s.others.iter().cloned()));
        let others_seeds = scores.iter().filter(|s| !s.others.is_empty()).count();
        let (warmup, warmup_text) = tally(scores.iter().flat_map(|s| s.warmup.iter().cloned()));
        let warmup_seeds = scores.iter().filter(|s| !s.warmup.is_empty()).count();
        let yes_no = |ok: bool| if ok { "yes" } else { "**no**" }.to_owned();
        let (target, met) = match scenario.target {
            Target::Within(target) => {
                let ok = missed == 0 && delays.iter().all(|d| *d <= target);
                let within = scores.iter().filter(|s| s.delay.is_some_and(|d| d <= target)).count();
                (format!("≤ {}", fmt_dur(target)), format!("{} ({within}/{})", yes_no(ok), scores.len()))
            }
            Target::ByProbe(n) => {
                let within = scores.iter().filter(|s| s.probes_to_fire.is_some_and(|p| p <= n)).count();
                let ok = within == scores.len();
                (format!("≤ {} intervals", n - 1), format!("{} ({within}/{})", yes_no(ok), scores.len()))
            }
            Target::Silent => ("0 alerts".to_owned(), yes_no(others == 0)),
            Target::Report => ("—".to_owned(), "—".to_owned()),
        };
        let factors: Vec<f64> = scores.iter().filter_map(|s| s.factor_at_fire).collect();
        let factor = if factors.is_empty() {
            "—".to_owned()
        } else {
            let min = factors.iter().copied().fold(f64::MAX, f64::min);
            let max = factors.iter().copied().fold(f64::MIN, f64::max);
            format!("×{:.2} (×{min:.2}–×{max:.2})", percentile(&factors, 50.0))
        };
        let refires: usize = scores.iter().map(|s| s.refires).sum();
        let resolves: Vec<f64> = scores.iter().filter_map(|s| s.resolve).collect();
        let unresolved = scores.iter().filter(|s| s.unresolved).count();
        let (r_median, r_worst) = if resolves.is_empty() && unresolved == 0 {
            ("—".to_owned(), "—".to_owned())
        } else {
            median_and_worst(&resolves, unresolved, "unresolved")
        };
        let refires_text = if scenario.expected.is_none() { "—".to_owned() } else { refires.to_string() };
        writeln!(
            out,
            "| {} | {} | {detected} | {median} | {worst} | {target} | {met} | {factor} | {refires_text} | \
             {others} ({others_seeds}) | {warmup} ({warmup_seeds}) | {r_median} | {r_worst} |",
            scenario.name,
            expected_name(scenario.expected),
        )
        .unwrap();
        let pendings: usize = scores.iter().map(|s| s.silent_pendings).sum();
        let mut line = Vec::new();
        if others > 0 {
            line.push(format!("other alerts: {others_text}"));
        }
        if warmup > 0 {
            line.push(format!("warm-up alerts: {warmup_text}"));
        }
        if let Target::ByProbe(_) = scenario.target {
            let mut seen: std::collections::BTreeMap<usize, usize> = Default::default();
            for p in scores.iter().filter_map(|s| s.probes_to_fire) {
                *seen.entry(p).or_default() += 1;
            }
            let text: Vec<String> = seen.iter().map(|(p, n)| format!("probe {p} in {n} seeds")).collect();
            line.push(format!("fired on the incident's {}", text.join(", ")));
        }
        if matches!(scenario.incident, Incident::Slower(_) | Incident::Creep(_) | Incident::Timeouts(_)) {
            let range = |detected: bool| {
                let f: Vec<f64> = scores
                    .iter()
                    .filter(|s| s.delay.is_some() == detected)
                    .map(|s| s.diurnal_at_start)
                    .collect();
                if f.is_empty() {
                    return "none".to_owned();
                }
                let (lo, hi) = f.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                format!("{} (×{lo:.2}–×{hi:.2})", f.len())
            };
            line.push(format!("diurnal factor at onset: detected {}, missed {}", range(true), range(false)));
        }
        if let Incident::Timeouts(_) = scenario.incident {
            let within = |i: usize| {
                scores.iter().filter(|s| s.nth_timeout[i].is_some_and(|d| d <= TEN_MINUTES)).count()
            };
            let thirds: Vec<f64> = scores.iter().filter_map(|s| s.nth_timeout[1]).collect();
            let after: Vec<f64> = scores.iter().filter_map(|s| s.after_third).collect();
            let median =
                |v: &[f64]| if v.is_empty() { "—".to_owned() } else { fmt_dur(percentile(v, 50.0)) };
            line.push(format!(
                "evidence: the incident's 2nd timeout was seen within 10 minutes in {}/{n} seeds, its 3rd in {}/{n} \
                 (median {}); the alert fired a median {} after the 3rd",
                within(0),
                within(1),
                median(&thirds),
                median(&after),
                n = scores.len()
            ));
        }
        line.push(format!("{pendings} pending alerts cleared before firing"));
        writeln!(details, "- {}: {}.", scenario.name, line.join("; ")).unwrap();
        let alarms: Vec<&String> = scores.iter().flat_map(|s| &s.false_alarms).collect();
        for alarm in alarms.iter().take(MAX_LISTED) {
            writeln!(details, "  - {alarm}").unwrap();
        }
        if alarms.len() > MAX_LISTED {
            writeln!(details, "  - and {} more", alarms.len() - MAX_LISTED).unwrap();
        }
    }
    out.push('\n');
    out.push_str(&details);
    out
}

fn main() {
    let seeds: u64 = env_or("WSPROBE_SIGNAL_SEEDS", 20);
    let candidates: u8 = env_or("WSPROBE_SIGNAL_CANDIDATES", 0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: usize = env_or("WSPROBE_SIGNAL_THREADS", cores);
    assert!(seeds > 0 && threads > 0, "WSPROBE_SIGNAL_SEEDS and WSPROBE_SIGNAL_THREADS must be positive");
    let mut variants = variants(candidates != 0);
    if let Ok(only) = std::env::var("WSPROBE_SIGNAL_TRACES") {
        let names: Vec<&str> = only.split(';').map(str::trim).collect();
        for n in &names {
            assert!(SCENARIOS.iter().any(|s| s.name == *n), "WSPROBE_SIGNAL_TRACES: no trace named `{n}`");
        }
        for v in &mut variants {
            v.traces.retain(|&i| names.contains(&SCENARIOS[i].name));
        }
    }
    if let Ok(only) = std::env::var("WSPROBE_SIGNAL_VARIANTS") {
        variants.retain(|v| v.label == "defaults" || v.label == only.trim());
        assert!(variants.len() == 2, "WSPROBE_SIGNAL_VARIANTS: no configuration labelled `{only}`");
    }
    for v in &variants {
        let problems = v.config.validate("detector");
        assert!(problems.is_empty(), "variant `{}` is invalid: {problems:?}", v.label);
    }

    eprintln!(
        "signal: {} traces × {seeds} seeds, replayed with {} configuration(s) on {threads} thread(s)",
        SCENARIOS.len(),
        variants.len()
    );
    let load_before = support::loadavg();
    let cpu_before = stat_ticks(Path::new("/proc/self/stat"));
    let wall = Instant::now();
    let outcomes = run_all(seeds, threads, &variants);
    let wall = wall.elapsed();
    let cpu = stat_ticks(Path::new("/proc/self/stat"))
        .zip(cpu_before)
        .map_or(f64::NAN, |(after, before)| (after - before) as f64 / clk_tck() as f64);

    let probes: usize = outcomes.iter().map(|o| o.probes).sum();
    let generate: Duration = outcomes.iter().map(|o| o.generate).sum();
    let replays: Vec<String> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let busy: Duration = outcomes.iter().map(|o| o.replay[i]).sum();
            let hours: f64 = outcomes.iter().filter(|o| o.scores[i].is_some()).map(|o| o.hours).sum();
            format!("{}: {hours:.0} trace-hours in {:.1} s", v.label, busy.as_secs_f64())
        })
        .collect();
    let mut out = String::new();
    writeln!(out, "Measured {}.\n\n{}", today(), machine_table()).unwrap();
    writeln!(
        out,
        "{} traces generated ({seeds} seeds each, {probes} probe results, {:.0} trace-hours) in {:.1} s; replay \
         time summed over threads, per configuration: {}. Total {:.1} s wall, {cpu:.1} s CPU, {threads} \
         thread(s); load average before / after: {load_before} / {}.\n",
        outcomes.len(),
        outcomes.iter().map(|o| o.hours).sum::<f64>(),
        generate.as_secs_f64(),
        replays.join("; "),
        wall.as_secs_f64(),
        support::loadavg(),
    )
    .unwrap();
    for (v, variant) in variants.iter().enumerate() {
        let mut by_scenario: Vec<Vec<&Score>> = vec![Vec::new(); SCENARIOS.len()];
        for o in &outcomes {
            if let Some(score) = &o.scores[v] {
                by_scenario[o.scenario].push(score);
            }
        }
        writeln!(out, "#### {}\n", variant.label).unwrap();
        out.push_str(&table(&by_scenario));
        out.push('\n');
    }
    println!("{out}");
}
