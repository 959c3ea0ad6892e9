//! One target's recent history, bounded: the last probes in detail, the last 24 hours as
//! availability buckets, the last breaker transitions and version changes.
//!
//! # Memory per target
//!
//! Every part is a ring of fixed length and every string in it is cut short, so a target
//! costs at most [`MAX_BYTES_PER_TARGET`] (about 110 KiB, the figure `tests` hold it to
//! with every string at its longest in 4-byte characters) and typically about 15 KiB
//! (healthy probes carry no message; versions and reasons are short ASCII).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::breaker::State;
use crate::probe::{Phase, ProbeResult, Reason};

/// Probes kept in detail (the target page's table, the sparkline, the medians).
pub const RESULTS: usize = 60;
/// Width of one availability bucket.
pub const BUCKET_SECONDS: i64 = 15 * 60;
/// Buckets kept: 24 hours.
pub const BUCKETS: usize = 96;
/// Breaker transitions kept.
pub const TRANSITIONS: usize = 20;
/// Version changes kept.
pub const VERSIONS: usize = 20;
/// Steps timed per probe (the scenario's first ones).
pub const STEPS: usize = 32;
/// Characters kept of a failure message, a breaker reason, a step name, a version.
pub const MESSAGE_CHARS: usize = 160;
pub const REASON_CHARS: usize = 120;
pub const NAME_CHARS: usize = 64;
pub const VERSION_CHARS: usize = 64;
/// What one target's history may hold at most, in bytes (see the module docs).
pub const MAX_BYTES_PER_TARGET: usize = 112 * 1024;

/// One probe, as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unix seconds when the probe started.
    pub at: f64,
    pub success: bool,
    pub reason: Option<Reason>,
    pub phase: Option<Phase>,
    pub step: Option<String>,
    pub message: Option<String>,
    pub http_status: Option<u16>,
    pub close_code: Option<u16>,
    pub seconds: f32,
    /// Seconds per phase, in [`Phase::ALL`] order.
    pub phases: [Option<f32>; Phase::ALL.len()],
    /// Seconds of each step that ran, in scenario order; `None` for a step that failed.
    pub steps: Vec<Option<f32>>,
}

impl Entry {
    pub fn of(r: &ProbeResult) -> Self {
        let mut phases = [None; Phase::ALL.len()];
        for (phase, secs) in r.phases.iter() {
            phases[phase as usize] = Some(secs as f32);
        }
        Entry {
            at: r.started_at,
            success: r.success,
            reason: r.reason,
            phase: r.phase,
            step: r.step.as_deref().map(|s| cut(s, NAME_CHARS)),
            message: r.message.as_deref().map(|m| cut(m, MESSAGE_CHARS)),
            http_status: r.http_status,
            close_code: r.close_code,
            seconds: r.duration_seconds as f32,
            phases,
            steps: r.steps.iter().take(STEPS).map(|s| s.ok.then_some(s.duration_seconds as f32)).collect(),
        }
    }

    pub fn phase(&self, p: Phase) -> Option<f32> {
        self.phases[p as usize]
    }
}

/// Probes that started within one [`BUCKET_SECONDS`] slot.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Unix seconds / `BUCKET_SECONDS`.
    pub slot: i64,
    pub ok: u32,
    pub failed: u32,
}

/// A change of the circuit breaker's state, as seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakerChange {
    /// Unix seconds the new state began.
    pub at: f64,
    pub from: State,
    pub to: State,
    pub reason: String,
}

/// The deployed and expected version as read at some moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionChange {
    pub at: f64,
    pub live: Option<String>,
    pub expected: Option<String>,
    pub drift: Option<bool>,
}

/// One target's history. See the module docs for its bounds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetHistory {
    /// Newest last.
    pub results: VecDeque<Entry>,
    /// The step names `results[..].steps` refer to, from the newest result.
    pub step_names: Vec<String>,
    /// Newest last, consecutive slots not guaranteed (a quiet slot has no bucket).
    pub buckets: VecDeque<Bucket>,
    pub transitions: VecDeque<BreakerChange>,
    pub versions: VecDeque<VersionChange>,
    /// The breaker as last seen: state and transition count, to tell a new transition.
    #[serde(default)]
    pub(crate) circuit_seen: Option<(State, u64)>,
}

/// The names of the steps a result's [`Entry`] times.
pub(crate) fn step_names(r: &ProbeResult) -> impl Iterator<Item = &str> + Clone {
    r.steps.iter().take(STEPS).map(|s| s.name.as_str())
}

fn push_bounded<T>(ring: &mut VecDeque<T>, item: T, cap: usize) {
    while ring.len() >= cap {
        ring.pop_front();
    }
    ring.push_back(item);
}

impl TargetHistory {
    /// Adds a probe result.
    pub fn record(&mut self, r: &ProbeResult) {
        self.add(Entry::of(r), step_names(r));
    }

    /// Adds a probe's entry; `steps` names the steps it times, in order.
    pub fn add<'a>(&mut self, entry: Entry, steps: impl Iterator<Item = &'a str> + Clone) {
        let mut names = steps.map(|n| cut(n, NAME_CHARS));
        if names.clone().next().is_some() && names.clone().ne(self.step_names.iter().cloned()) {
            // Another scenario (a reload): the old step timings no longer line up.
            self.step_names = names.by_ref().collect();
            for e in &mut self.results {
                e.steps.clear();
            }
        }
        self.count(entry.at, entry.success);
        push_bounded(&mut self.results, entry, RESULTS);
    }

    fn count(&mut self, at: f64, ok: bool) {
        let slot = (at as i64).div_euclid(BUCKET_SECONDS);
        match self.buckets.back_mut() {
            Some(b) if b.slot == slot => {}
            // A clock that stepped back: count it in the newest bucket rather than reorder.
            Some(b) if b.slot > slot => {}
            _ => push_bounded(&mut self.buckets, Bucket { slot, ok: 0, failed: 0 }, BUCKETS),
        }
        let newest = slot.max(self.buckets.back().map_or(slot, |b| b.slot));
        self.buckets.retain(|b| b.slot > newest - BUCKETS as i64);
        if let Some(b) = self.buckets.back_mut() {
            if ok {
                b.ok = b.ok.saturating_add(1);
            } else {
                b.failed = b.failed.saturating_add(1);
            }
        }
    }

    /// Whether [`Self::observe_circuit`] would change anything.
    pub fn circuit_moved(&self, state: State, transitions: u64) -> bool {
        self.circuit_seen != Some((state, transitions))
    }

    /// Whether [`Self::observe_versions`] would change anything.
    pub fn versions_moved(&self, live: Option<&str>, expected: Option<&str>, drift: Option<bool>) -> bool {
        let cut = |v: Option<&str>| v.map(|v| cut(v, VERSION_CHARS));
        self.versions
            .back()
            .is_none_or(|v| v.live != cut(live) || v.expected != cut(expected) || v.drift != drift)
    }

    /// Takes the breaker's published status; a transition is recorded when its count moved.
    pub fn observe_circuit(&mut self, state: State, transitions: u64, since: f64, reason: &str) {
        match self.circuit_seen {
            Some((seen, count)) if transitions > count && seen != state => {
                let reason = cut(reason, REASON_CHARS);
                push_bounded(
                    &mut self.transitions,
                    BreakerChange { at: since, from: seen, to: state, reason },
                    TRANSITIONS,
                );
            }
            _ => {}
        }
        self.circuit_seen = Some((state, transitions));
    }

    /// Takes the deployment as read now; a change of either version is recorded.
    pub fn observe_versions(
        &mut self,
        at: f64,
        live: Option<&str>,
        expected: Option<&str>,
        drift: Option<bool>,
    ) {
        if self.versions_moved(live, expected, drift) {
            let live = live.map(|v| cut(v, VERSION_CHARS));
            let expected = expected.map(|v| cut(v, VERSION_CHARS));
            push_bounded(&mut self.versions, VersionChange { at, live, expected, drift }, VERSIONS);
        }
    }

    /// Ok and failed probes over the last 24 hours, per bucket, oldest first, for the
    /// `BUCKETS` slots ending with the one holding `now`; `None` for a slot without probes.
    pub fn availability(&self, now: f64) -> Vec<Option<(u32, u32)>> {
        let last = (now as i64).div_euclid(BUCKET_SECONDS);
        let first = last - BUCKETS as i64 + 1;
        let mut out = vec![None; BUCKETS];
        for b in &self.buckets {
            if (first..=last).contains(&b.slot) {
                out[(b.slot - first) as usize] = Some((b.ok, b.failed));
            }
        }
        out
    }

    /// The median of a phase over the successful probes kept: the page's baseline.
    pub fn phase_median(&self, p: Phase) -> Option<f32> {
        median(self.results.iter().filter(|e| e.success).filter_map(|e| e.phase(p)))
    }

    /// The median of step `index` over the probes where it succeeded.
    pub fn step_median(&self, index: usize) -> Option<f32> {
        median(self.results.iter().filter_map(|e| e.steps.get(index).copied().flatten()))
    }

    /// Drops what does not fit the current bounds (a state file written with others).
    pub(crate) fn clamp(&mut self) {
        let over = |len: usize, cap: usize| len.saturating_sub(cap);
        self.results.drain(..over(self.results.len(), RESULTS));
        self.buckets.drain(..over(self.buckets.len(), BUCKETS));
        self.transitions.drain(..over(self.transitions.len(), TRANSITIONS));
        self.versions.drain(..over(self.versions.len(), VERSIONS));
        self.step_names.truncate(STEPS);
        for n in &mut self.step_names {
            *n = cut(n, NAME_CHARS);
        }
        for e in &mut self.results {
            e.steps.truncate(STEPS);
            e.message = e.message.take().map(|m| cut(&m, MESSAGE_CHARS));
            e.step = e.step.take().map(|m| cut(&m, NAME_CHARS));
        }
        for t in &mut self.transitions {
            t.reason = cut(&t.reason, REASON_CHARS);
        }
        for v in &mut self.versions {
            v.live = v.live.take().map(|m| cut(&m, VERSION_CHARS));
            v.expected = v.expected.take().map(|m| cut(&m, VERSION_CHARS));
        }
    }

    /// Bytes held, inline and on the heap (capacities, not lengths).
    pub fn bytes(&self) -> usize {
        use std::mem::size_of;
        let s = |x: &String| x.capacity();
        let o = |x: &Option<String>| x.as_ref().map_or(0, String::capacity);
        size_of::<Self>()
            + self.results.capacity() * size_of::<Entry>()
            + self.results.iter().map(|e| o(&e.step) + o(&e.message) + e.steps.capacity() * 8).sum::<usize>()
            + self.step_names.capacity() * size_of::<String>()
            + self.step_names.iter().map(s).sum::<usize>()
            + self.buckets.capacity() * size_of::<Bucket>()
            + self.transitions.capacity() * size_of::<BreakerChange>()
            + self.transitions.iter().map(|t| s(&t.reason)).sum::<usize>()
            + self.versions.capacity() * size_of::<VersionChange>()
            + self.versions.iter().map(|v| o(&v.live) + o(&v.expected)).sum::<usize>()
    }
}

/// At most `max` characters of `s`, holding no spare capacity: the bound is on bytes held.
fn cut(s: &str, max: usize) -> String {
    let mut out = crate::util::text::excerpt(s, max);
    out.shrink_to_fit();
    out
}

fn median(values: impl Iterator<Item = f32>) -> Option<f32> {
    let mut v: Vec<f32> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::probe::StepResult;

    fn result(at: f64, ok: bool) -> ProbeResult {
        let mut r = ProbeResult::new("t");
        r.started_at = at;
        r.success = ok;
        r.phases.set(Phase::Handshake, at.rem_euclid(7.0) / 100.0);
        r
    }

    #[test]
    fn a_worst_case_target_stays_within_the_stated_memory() {
        let mut h = TargetHistory::default();
        let long = "\u{1F600}".repeat(1000);
        for i in 0..(RESULTS * 3) {
            let mut r = result(i as f64 * 1000.0, false);
            r.message = Some(long.clone());
            r.step = Some(long.clone());
            r.steps = (0..100)
                .map(|k| StepResult { name: format!("{long}{k}"), ok: true, duration_seconds: 0.1 })
                .collect();
            h.record(&r);
            let state = if i % 2 == 0 { State::Open } else { State::Closed };
            h.observe_circuit(state, i as u64 + 1, i as f64, &long);
            h.observe_versions(i as f64, Some(&format!("{i}{long}")), Some(&long), Some(true));
        }
        assert_eq!(
            (h.results.len(), h.transitions.len(), h.versions.len()),
            (RESULTS, TRANSITIONS, VERSIONS)
        );
        assert!(h.buckets.len() <= BUCKETS);
        assert!(h.bytes() <= MAX_BYTES_PER_TARGET, "{} bytes", h.bytes());
        // And the figure is not loose by much: a stated bound should say something.
        assert!(h.bytes() > MAX_BYTES_PER_TARGET * 3 / 4, "{} bytes", h.bytes());
    }

    #[test]
    fn a_typical_target_takes_about_fifteen_kib() {
        let mut h = TargetHistory::default();
        for i in 0..(RESULTS * 3) {
            let mut r = result(i as f64 * 30.0, i % 20 != 0);
            if !r.success {
                r.reason = Some(Reason::Stalled);
                r.message = Some("no message for 45s after 3 received".into());
            }
            r.steps = (0..5)
                .map(|k| StepResult { name: format!("step-{k}"), ok: true, duration_seconds: 0.1 })
                .collect();
            for p in Phase::ALL {
                r.phases.set(p, 0.01);
            }
            h.record(&r);
        }
        for i in 0..10 {
            h.observe_circuit(
                if i % 2 == 0 { State::Open } else { State::Closed },
                i + 1,
                i as f64,
                "3 consecutive failures",
            );
            h.observe_versions(i as f64, Some(&format!("1.4.{i}")), Some("1.4.2"), Some(i != 2));
        }
        assert!(h.bytes() <= 16 * 1024, "{} bytes", h.bytes());
    }

    #[test]
    fn availability_covers_the_last_day_in_buckets() {
        let mut h = TargetHistory::default();
        let now = 1_000_000.0 * BUCKET_SECONDS as f64;
        // Two days of one probe a minute, failing in the last hour.
        for m in 0..(48 * 60) {
            let at = now - 2.0 * 86_400.0 + f64::from(m) * 60.0;
            h.record(&result(at, at < now - 3600.0));
        }
        let strip = h.availability(now);
        assert_eq!(strip.len(), BUCKETS);
        assert_eq!(strip[0], Some((15, 0)));
        assert_eq!(strip[BUCKETS - 2], Some((0, 15)));
        // The slot holding `now` has had no probe yet.
        assert_eq!(strip[BUCKETS - 1], None);
        assert!(h.buckets.len() <= BUCKETS);
    }

    #[test]
    fn transitions_are_recorded_only_when_the_breaker_moved() {
        let mut h = TargetHistory::default();
        h.observe_circuit(State::Closed, 0, 1.0, "start");
        h.observe_circuit(State::Closed, 0, 1.0, "start");
        h.observe_circuit(State::Open, 1, 5.0, "3 consecutive failures");
        h.observe_circuit(State::Open, 1, 5.0, "3 consecutive failures");
        h.observe_circuit(State::HalfOpen, 2, 20.0, "recovery timeout elapsed");
        let seen: Vec<_> = h.transitions.iter().map(|t| (t.at, t.from, t.to)).collect();
        assert_eq!(seen, [(5.0, State::Closed, State::Open), (20.0, State::Open, State::HalfOpen)]);
        // A restarted task counts from zero again: no transition invented.
        h.observe_circuit(State::Closed, 0, 30.0, "start");
        assert_eq!(h.transitions.len(), 2);
    }

    #[test]
    fn medians_are_of_successful_probes() {
        let mut h = TargetHistory::default();
        for (at, ok) in [(1.0, true), (2.0, true), (3.0, true), (6.0, false)] {
            h.record(&result(at, ok));
        }
        assert_eq!(h.phase_median(Phase::Handshake), Some(0.02));
        assert_eq!(h.phase_median(Phase::Dns), None);
    }
}
