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

#[path = "support/signal/scenarios.rs"]
mod scenarios;
#[path = "support/signal/score.rs"]
mod score;
mod support;
#[path = "support/signal/trace.rs"]
mod trace;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wsprobe::detect::AlertKind;
use wsprobe::probe::Phase;

use scenarios::{variants, Incident, Target, Variant, HOUR, SCENARIOS, WARMUP};
use score::{score, Score};
use support::{clk_tck, env_or, machine_table, percentile, stat_ticks, today};
use trace::generate;

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
