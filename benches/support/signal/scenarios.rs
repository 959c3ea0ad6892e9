//! The labelled traces of the signal bench: the simulated target (phase medians, spread,
//! outliers, diurnal swing, isolated failures), the incidents that follow the warm-up with
//! the alert each should raise and the target for it, and the detector configurations
//! replayed on them.

use std::num::NonZeroU32;

use wsprobe::detect::{AlertKind, DetectorConfig, LatencyBaseline};
use wsprobe::probe::{Phase, Reason};
use wsprobe::util::units::HumanDuration;

pub const TARGET: &str = "agent-eu";
pub const INTERVAL: f64 = 30.0;
/// The scheduler's default jitter: each interval is uniform in `INTERVAL × (1 ± JITTER)`.
pub const JITTER: f64 = 0.1;
pub const HOUR: f64 = 3600.0;
pub const WARMUP: f64 = 24.0 * HOUR;
/// 2026-01-01T00:00:00Z; each seed shifts it by up to an hour, so bucket boundaries fall
/// differently against the probe schedule.
pub const EPOCH: f64 = 1_767_225_600.0;

/// Median latency of each timed phase, in seconds, in probe order.
pub const PHASES: [(Phase, f64); 7] = [
    (Phase::Dns, 0.001),
    (Phase::Connect, 0.005),
    (Phase::Tls, 0.030),
    (Phase::Handshake, 0.050),
    (Phase::FirstMessage, 0.020),
    (Phase::Ping, 0.005),
    (Phase::Close, 0.005),
];
/// Log-normal spread of every phase sample.
pub const SIGMA: f64 = 0.2;
/// Chance, per phase and probe, of an outlier ...
pub const OUTLIER_P: f64 = 0.005;
/// ... that many times slower (uniform).
pub const OUTLIER_FACTOR: (f64, f64) = (2.0, 4.0);
/// Amplitude of the 24 h sinusoid on every latency.
pub const DIURNAL: f64 = 0.3;
/// Traces run only with the candidate configurations: controls that tell causes apart.
pub const CONTROL: &str = "p95 2×, no diurnal swing";
pub const HEALTHY_15S: &str = "healthy, 15 s interval";
pub const TIMEOUTS_15S: &str = "10 % timeouts, 15 s interval";
pub const P95_15S: &str = "p95 2×, 15 s interval";
pub const CONTROLS: [&str; 4] = [CONTROL, HEALTHY_15S, TIMEOUTS_15S, P95_15S];
/// Isolated failures: share of probes failing for a non-timeout, and for a timeout reason.
pub const BACKGROUND_ERRORS: f64 = 0.003;
pub const BACKGROUND_TIMEOUTS: f64 = 0.002;

pub const NON_TIMEOUTS: [(Reason, Phase); 6] = [
    (Reason::DnsError, Phase::Dns),
    (Reason::ConnectRefused, Phase::Connect),
    (Reason::TlsError, Phase::Tls),
    (Reason::HandshakeStatus, Phase::Handshake),
    (Reason::UnexpectedClose, Phase::FirstMessage),
    (Reason::ConnectionReset, Phase::Ping),
];
pub const TIMEOUTS: [(Reason, Phase); 5] = [
    (Reason::ConnectTimeout, Phase::Connect),
    (Reason::TlsTimeout, Phase::Tls),
    (Reason::HandshakeTimeout, Phase::Handshake),
    (Reason::FirstMessageTimeout, Phase::FirstMessage),
    (Reason::PingTimeout, Phase::Ping),
];

/// What goes wrong after the warm-up.
#[derive(Debug, Clone, Copy)]
pub enum Incident {
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
pub struct Scenario {
    pub name: &'static str,
    pub incident: Incident,
    /// Seconds between probes (before jitter).
    pub interval: f64,
    /// How long the incident lasts (for `healthy`: the evaluated day after the warm-up).
    pub duration: f64,
    /// Healthy time after the incident, to see the alert resolve.
    pub tail: f64,
    /// Amplitude of the 24 h swing on latencies, over the whole trace.
    pub diurnal: f64,
    pub expected: Option<(AlertKind, Option<Phase>)>,
    pub target: Target,
}

/// The target for a trace.
#[derive(Debug, Clone, Copy)]
pub enum Target {
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

pub const SCENARIOS: [Scenario; 9] = [
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
pub struct Variant {
    pub label: String,
    pub config: DetectorConfig,
    /// Indices into [`SCENARIOS`].
    pub traces: Vec<usize>,
}

impl Variant {
    /// `changes` applied to the defaults, replayed on the traces named (and `healthy`, for
    /// the false alarms).
    pub fn new(label: &str, traces: &[&str], changes: impl FnOnce(&mut DetectorConfig)) -> Self {
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
pub fn variants(candidates: bool) -> Vec<Variant> {
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
