//! Server-side cost of the status page: `GET /` rendered for 1,000 targets with full
//! histories (60 probes each, a day of availability, failures with messages, breaker
//! transitions, versions, firing alerts), and one target's page.
//!
//!     cargo bench --bench page
//!
//! Prints the median and worst render time over `WSPROBE_BENCH_RUNS` (default 50) runs,
//! both wall-clock and the rendering thread's own CPU time (`/proc/thread-self/schedstat`,
//! which a loaded machine does not inflate), the page's size and its bytes per target.
//! The goal is under 50 ms for 1,000 targets.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use wsprobe::breaker::{CircuitStatus, State};
use wsprobe::detect::{Alert, AlertKey, AlertKind, AlertState, Severity};
use wsprobe::history::{Histories, TargetHistory};
use wsprobe::page::{overview, target, Inputs};
use wsprobe::probe::{Phase, ProbeResult, Reason, StepResult};
use wsprobe::state::{Counts, Snapshot, TargetInfo, TargetStatus, Watched};

const TARGETS: usize = 1000;

/// Nanoseconds this thread has spent on a CPU.
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Median and worst of `samples`, sorted in place.
fn spread(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

fn result(name: &str, at: f64, i: usize) -> ProbeResult {
    let mut r = ProbeResult::new(name);
    r.started_at = at;
    r.duration_seconds = 0.05 + (i % 7) as f64 * 0.01;
    for (k, p) in Phase::ALL.iter().enumerate() {
        r.phases.set(*p, 0.001 * (k + 1) as f64 + (i % 5) as f64 * 0.0005);
    }
    r.steps =
        (0..5).map(|k| StepResult { name: format!("step-{k}"), ok: true, duration_seconds: 0.01 }).collect();
    if i % 10 == 0 {
        r.success = false;
        r.reason = Some(Reason::Stalled);
        r.phase = Some(Phase::Step);
        r.step = Some("step-3".into());
        r.message = Some("no message for 45s after 3 received <while waiting for agent_completed>".into());
        r.close_code = Some(1011);
        r.http_status = Some(101);
    }
    r
}

fn main() {
    let runs: usize = std::env::var("WSPROBE_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let now = 1_800_000_000.0;
    let mut snapshot = Snapshot::default();
    let mut histories = Histories::new();
    let mut alerts = Vec::new();
    for t in 0..TARGETS {
        let name = format!("target-{t:04}");
        let mut h = TargetHistory::default();
        // A day at one probe a minute fills every bucket; the last 60 stay in detail.
        for i in 0..1440 {
            h.record(&result(&name, now - 86_400.0 + i as f64 * 60.0, i + t));
        }
        for i in 0..20u64 {
            let state = if i % 2 == 0 { State::Open } else { State::Closed };
            h.observe_circuit(state, i + 1, now - 3600.0 + i as f64, "3 consecutive failures");
            h.observe_versions(
                now - 3600.0 + i as f64,
                Some(&format!("1.4.{i}")),
                Some("1.4.2"),
                Some(i != 2),
            );
        }
        histories.insert(name.clone(), Arc::new(h));
        let last = result(&name, now - 5.0, t);
        let mut watched = Watched::default();
        watched.circuit = Some(CircuitStatus {
            state: if t % 50 == 0 { State::Open } else { State::Closed },
            since: now - 600.0,
            reason: "3 consecutive failures".into(),
            consecutive_failures: 0,
            consecutive_successes: 3,
            transitions: 20,
            probe_interval_seconds: 30.0,
        });
        snapshot.targets.push(TargetStatus {
            info: TargetInfo {
                name: name.clone(),
                url: format!("wss://{name}.staging.example.com/ws"),
                interval_seconds: 30.0,
            },
            consecutive_failures: u64::from(!last.success),
            last_result: Some(last),
            recent_failures: VecDeque::new(),
            probes: Counts { success: 1300, failure: 140, skipped: 0 },
            watched,
            sessions: None,
        });
        if t % 20 == 0 {
            alerts.push(Alert {
                key: AlertKey { kind: AlertKind::ProbeFailing, target: name, subject: None },
                severity: Severity::Page,
                state: AlertState::Firing,
                active_since: now - 300.0,
                fired_at: Some(now - 300.0),
                resolved_at: None,
                summary: "Probes are failing".into(),
                description: "55 consecutive failures, last: stalled in step `step-3`".into(),
                measurement: None,
            });
        }
    }
    let inputs = Inputs { snapshot: &snapshot, histories: &histories, alerts: &alerts, now };

    let mut times = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    let mut size = 0;
    for _ in 0..runs {
        let (started, cpu_before) = (Instant::now(), thread_cpu_ns());
        let page = overview(&inputs);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        cpu.push((thread_cpu_ns() - cpu_before) as f64 / 1e6);
        size = page.len();
    }
    let (mut target_times, mut target_cpu) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let (started, cpu_before) = (Instant::now(), thread_cpu_ns());
        let page = target(&inputs, &format!("target-{:04}", i % TARGETS)).unwrap();
        target_times.push(started.elapsed().as_secs_f64() * 1000.0);
        target_cpu.push((thread_cpu_ns() - cpu_before) as f64 / 1e6);
        assert!(page.len() > 1000);
    }
    let target_size = target(&inputs, "target-0000").unwrap().len();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("Load average at the end: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    println!();
    println!("| page | targets | wall median | wall worst | CPU median | CPU worst | size | per target |");
    println!("|---|---|---|---|---|---|---|---|");
    let ((wm, ww), (cm, cw)) = (spread(&mut times), spread(&mut cpu));
    println!(
        "| `GET /` | {TARGETS} | {wm:.1} ms | {ww:.1} ms | {cm:.1} ms | {cw:.1} ms | {:.0} KiB | {:.0} bytes |",
        size as f64 / 1024.0,
        size as f64 / TARGETS as f64
    );
    let ((wm, ww), (cm, cw)) = (spread(&mut target_times), spread(&mut target_cpu));
    println!(
        "| `GET /targets/NAME` | 1 | {wm:.2} ms | {ww:.2} ms | {cm:.2} ms | {cw:.2} ms | {:.0} KiB | |",
        target_size as f64 / 1024.0
    );
}
