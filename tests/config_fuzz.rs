//! Deterministic configuration fuzzing: thousands of seeded mutations of the shipped
//! configurations (`config/*.yaml` and the demo's) through `wsprobe check`'s code path,
//! `config::parse` then `Prepared::new` for every target.
//!
//! Mutations work on the parsed document (keys deleted, values swapped for other types,
//! huge, negative and zero numbers, absurd durations, control and bidirectional
//! characters, very long strings, deep nesting, one subtree copied over another) and on
//! the text (duplicated keys, anchors and aliases, deep flow nesting, truncation, stray
//! control characters). Every case must end in `Ok` or a `ConfigError` (never a panic),
//! within [`CASE_LIMIT`], with the whole run within [`TOTAL_LIMIT`] and the peak memory
//! within [`RSS_GROWTH_LIMIT_KIB`]; what is accepted must hold only durations the clock
//! can add. Every 100th case also runs through the real binary, whose exit code must
//! agree (0 valid, 2 refused). Seeds are fixed, so a failure names a seed that reproduces it:
//! `WSPROBE_FUZZ_SEED=<n> cargo test --test config_fuzz -- --nocapture` runs just that one
//! and prints its text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "config_fuzz/mutate.rs"]
mod mutate;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_norway::Value;
use wsprobe::config::{self, Config};
use wsprobe::probe::scenario::StepKind;
use wsprobe::target::Prepared;

/// Cases per base document; with four bases, 3000 cases.
const CASES_PER_BASE: u64 = 750;
/// Most CPU time one case may take, debug build (the slowest seen is about 40 ms). CPU
/// time, not wall time, so other work on the machine does not fail the test.
const CASE_LIMIT: Duration = Duration::from_millis(200);
/// The whole run, wall time, generation included.
const TOTAL_LIMIT: Duration = Duration::from_secs(60);
/// Peak resident memory may grow by at most this much over the run (about 20 MiB seen).
const RSS_GROWTH_LIMIT_KIB: u64 = 256 << 10;
/// Longest duration an accepted configuration may hold (the largest limit is 30 days).
const LONGEST_ACCEPTED: Duration = Duration::from_secs(30 * 86_400);

/// Seeds that found defects in the code before the limits; they run first, every time,
/// and their texts are kept as golden fixtures (`tests/fixtures/config/invalid-fuzz-seed-*`)
/// in case the mutations change. Of 3000 cases then: 0 panics, 4 absurd durations
/// accepted, 46 messages echoing up to 199 KB of input.
const REGRESSION_SEEDS: &[u64] = &[
    697,  // `interval` of u64::MAX seconds accepted
    797,  // `alerting.resend_interval` of u64::MAX seconds accepted
    904,  // a step's `within` of 500000000000y accepted
    1117, // `defaults.interval` of 500000000000y accepted
    126,  // 131 KB invalid duration echoed whole
    394,  // 2 KB variable name echoed whole
    1822, // 174 KB url echoed whole
    1829, // 2 KB target name echoed whole
    2739, // 115 KB step name echoed whole
];

fn bases() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out: Vec<(String, String)> = files
        .iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(p).unwrap()))
        .collect();
    let local: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let demo = wsprobe::demo::Endpoints {
        ws: local,
        wss: local,
        http: local,
        ca_file: "/dev/null".into(),
        pin_sha256: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
    };
    out.push(("demo".to_owned(), wsprobe::demo::config_yaml(local, &demo, Duration::from_secs(1))));
    out
}

// ---------------------------------------------------------------------------------------
// Running a case

#[derive(Debug, PartialEq)]
enum Outcome {
    Valid,
    Invalid,
    /// Accepted, but holding a duration the clock cannot add (or longer than any limit).
    Absurd(String),
    /// Refused with a message line longer than [`MAX_PROBLEM_LEN`]: input echoed whole.
    Echoed(usize),
}

/// Longest message line allowed: a few 80-character excerpts and the field path.
const MAX_PROBLEM_LEN: usize = 1000;

/// What `wsprobe check` does: parse and validate, then build every target's prober.
fn check(text: &str) -> Outcome {
    let c = match config::parse(Path::new("fuzz.yaml"), text) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.problems.is_empty());
            let longest = e.problems.iter().map(String::len).max().unwrap_or(0);
            return if longest > MAX_PROBLEM_LEN { Outcome::Echoed(longest) } else { Outcome::Invalid };
        }
    };
    if let Some(why) = absurd_duration(&c) {
        return Outcome::Absurd(why);
    }
    let built: Result<Vec<_>, _> = c.targets.iter().map(|t| Prepared::new(t.clone())).collect();
    match built {
        Ok(_) => Outcome::Valid,
        Err(_) => Outcome::Invalid,
    }
}

/// The first duration of an accepted configuration that a running probe could not add to
/// the clock (or that exceeds every limit), if any.
fn absurd_duration(c: &Config) -> Option<String> {
    let mut all: Vec<(String, Duration)> = vec![("shutdown_grace".into(), c.shutdown_grace)];
    for t in &c.targets {
        let to = t.timeouts;
        let b = t.circuit_breaker;
        all.extend([
            ("interval".into(), t.interval),
            ("timeouts.dns".into(), to.dns),
            ("timeouts.connect".into(), to.connect),
            ("timeouts.tls".into(), to.tls),
            ("timeouts.handshake".into(), to.handshake),
            ("timeouts.first_message".into(), to.first_message),
            ("timeouts.ping".into(), to.ping),
            ("timeouts.close".into(), to.close),
            ("timeouts.idle".into(), to.idle),
            ("timeouts.probe".into(), to.probe),
            ("recovery_timeout".into(), b.recovery_timeout),
            ("open_interval".into(), b.open_interval),
        ]);
        for s in &t.steps {
            let ds: Vec<Duration> = match &s.kind {
                StepKind::Expect { within, max_gap, .. } | StepKind::ExpectAll { within, max_gap, .. } => {
                    [Some(*within), *max_gap].into_iter().flatten().collect()
                }
                StepKind::Hold { duration, max_gap } => {
                    [Some(*duration), *max_gap].into_iter().flatten().collect()
                }
                StepKind::Sleep(d) => vec![*d],
                StepKind::Ping { timeout } | StepKind::Close { timeout, .. } => {
                    timeout.iter().copied().collect()
                }
                StepKind::Send(_) => vec![],
            };
            all.extend(ds.into_iter().map(|d| (format!("step {}", s.name), d)));
        }
        for h in &t.health {
            all.extend([("health.timeout".into(), h.timeout), ("health.interval".into(), h.interval)]);
        }
        if let Some(r) = &t.remote_breakers {
            all.extend([("remote.timeout".into(), r.timeout), ("remote.interval".into(), r.interval)]);
        }
    }
    if let Some(a) = &c.alerting {
        all.push(("resend_interval".into(), a.resend_interval));
        all.extend(a.receivers.iter().map(|r| ("receiver.timeout".into(), r.timeout)));
        let d = &a.detector;
        for (name, v) in [
            ("recent_window", d.recent_window),
            ("baseline_window", d.baseline_window),
            ("recent_bucket", d.recent_bucket),
            ("baseline_bucket", d.baseline_bucket),
            ("latency.time_of_day_span", d.latency.time_of_day_span),
            ("latency.margin", d.latency.margin),
            ("latency.for", d.latency.for_),
            ("latency.resolve_after", d.latency.resolve_after),
            ("timeouts.for", d.timeouts.for_),
            ("timeouts.resolve_after", d.timeouts.resolve_after),
            ("probe_failing.for", d.probe_failing.for_),
            ("probe_failing.resolve_after", d.probe_failing.resolve_after),
            ("circuit_open.for", d.circuit_open.for_),
            ("circuit_open.resolve_after", d.circuit_open.resolve_after),
            ("deployment_drift.for", d.deployment_drift.for_),
            ("deployment_drift.resolve_after", d.deployment_drift.resolve_after),
        ] {
            all.push((name.into(), v.get()));
        }
    }
    let now = std::time::Instant::now();
    all.into_iter()
        .find(|(_, d)| *d > LONGEST_ACCEPTED || now.checked_add(*d).is_none())
        .map(|(name, d)| format!("{name} = {}", humantime::format_duration(d)))
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (nanoseconds): a
/// case's own cost, whatever else the machine is busy with.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    Duration::from_nanos(stat.split_whitespace().next().unwrap().parse().unwrap())
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Every this many seeds, the case also runs through the real binary's `check`.
const BINARY_EVERY: u64 = 100;

/// Runs `wsprobe check` on the case; its exit code must agree with the library's verdict
/// (0 for valid, 2 for refused) and it must not panic.
fn through_binary(seed: u64, text: &str, outcome: Option<&Outcome>) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.yaml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(["check", "--config"])
        .arg(&path)
        .env("STAGING_JWT", "example-jwt-for-tests")
        .env_remove("WSPROBE_FUZZ_UNSET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = match outcome {
        Some(Outcome::Valid) => Some(0),
        Some(_) => Some(2),
        None => None,
    };
    (stderr.contains("panicked") || out.status.code() != expected).then(|| {
        format!("seed {seed}: the binary exited {:?} (expected {expected:?}): {stderr}", out.status.code())
    })
}

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[test]
fn seeded_mutations_of_the_shipped_configurations_never_panic_and_stay_bounded() {
    std::env::set_var("STAGING_JWT", "example-jwt-for-tests");
    std::env::remove_var("WSPROBE_FUZZ_UNSET");
    let bases: Vec<(String, String, Value)> = bases()
        .into_iter()
        .map(|(name, text)| {
            let doc = serde_norway::from_str(&text).unwrap();
            (name, text, doc)
        })
        .collect();
    assert!(bases.len() >= 4, "{} bases", bases.len());
    let seeds: Vec<u64> = match std::env::var("WSPROBE_FUZZ_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => REGRESSION_SEEDS.iter().copied().chain(0..CASES_PER_BASE * bases.len() as u64).collect(),
    };
    let single = seeds.len() == 1;
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let what = info.payload().downcast_ref::<&str>().map(|s| s.to_string());
        let what = what.or_else(|| info.payload().downcast_ref::<String>().cloned()).unwrap_or_default();
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        PANICS.lock().unwrap().push(format!("{what} at {at}"));
    }));

    let rss_before = peak_rss_kib();
    let started = Instant::now();
    let (mut valid, mut invalid) = (0u32, 0u32);
    let mut panics = Vec::new();
    let mut absurd = Vec::new();
    let mut echoed = Vec::new();
    let mut binary_mismatches = Vec::new();
    let mut slowest = (Duration::ZERO, 0u64);
    for &seed in &seeds {
        let (base, text) = mutate::case(seed, &bases);
        if single {
            println!("seed {seed}, from {base}:\n{text}");
        }
        let cpu0 = thread_cpu();
        let outcome = std::panic::catch_unwind(|| check(&text));
        let took = thread_cpu() - cpu0;
        if took > slowest.0 {
            slowest = (took, seed);
        }
        if seed % BINARY_EVERY == 0 {
            binary_mismatches.extend(through_binary(seed, &text, outcome.as_ref().ok()));
        }
        match outcome {
            Ok(Outcome::Valid) => valid += 1,
            Ok(Outcome::Invalid) => invalid += 1,
            Ok(Outcome::Absurd(why)) => absurd.push(format!("seed {seed} ({base}): accepted {why}")),
            Ok(Outcome::Echoed(len)) => {
                echoed.push(format!("seed {seed} ({base}): a message line of {len} bytes"))
            }
            Err(_) => {
                let what = PANICS.lock().unwrap().pop().unwrap_or_default();
                panics.push(format!("seed {seed} ({base}): {what}"));
            }
        }
    }
    let total = started.elapsed();
    let grew = peak_rss_kib().saturating_sub(rss_before);
    std::panic::set_hook(previous_hook);

    println!(
        "{} cases: {valid} valid, {invalid} refused, {} accepted absurd durations, {} echoed input whole, {} panics; slowest {:?} CPU (seed {}), total {total:?}, peak RSS +{grew} KiB",
        seeds.len(),
        absurd.len(),
        echoed.len(),
        panics.len(),
        slowest.0,
        slowest.1
    );
    for line in absurd.iter().chain(&echoed).chain(&panics).chain(&binary_mismatches) {
        println!("  {line}");
    }
    assert!(binary_mismatches.is_empty(), "{}", binary_mismatches.join("\n"));
    assert!(panics.is_empty(), "{} panics:\n{}", panics.len(), panics.join("\n"));
    assert!(echoed.is_empty(), "{} messages too long:\n{}", echoed.len(), echoed.join("\n"));
    assert!(absurd.is_empty(), "{} absurd configurations accepted:\n{}", absurd.len(), absurd.join("\n"));
    assert!(slowest.0 < CASE_LIMIT, "seed {} took {:?}", slowest.1, slowest.0);
    assert!(total < TOTAL_LIMIT, "{total:?}");
    assert!(grew < RSS_GROWTH_LIMIT_KIB, "peak RSS grew by {grew} KiB");
    // The mutations must reach validation and not only break the syntax.
    if !single {
        assert!(valid > seeds.len() as u32 / 20, "only {valid} of {} cases valid", seeds.len());
    }
}
