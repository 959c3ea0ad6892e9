//! The `session:` block of a target, as written and as validated.
//!
//! A target with this block is held open rather than probed on an interval. Every
//! duration is bounded (`util::bounds`), and the relations that would make a healthy
//! session fail by construction are refused: a `stale_after` no longer than the
//! `ping_interval` (an idle but healthy session would go stale between two pongs), a
//! heartbeat whose `within` is not shorter than its `every`, and a back-off whose
//! `initial` exceeds its `max`.

use std::time::Duration;

use serde::Deserialize;

use crate::probe::scenario::{Payload, RawPayload, Step, StepKind};
use crate::util::bounds::{self, Limit};
use crate::util::matcher::{Matcher, RawMatcher};
use crate::util::template::BUILTINS;
use crate::util::text::shown;
use crate::util::units::HumanDuration;

/// The most sessions one target may hold: each costs a socket and a file descriptor.
pub const MAX_COUNT: u32 = 100_000;

/// Back-off waits: at least 10 ms (so a reconnect loop can never spin), at most a day.
const BACKOFF: Limit = Limit { min: Duration::from_millis(10), max: Duration::from_secs(86_400) };

/// The `session:` block as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSession {
    /// Sessions kept open at once (default 1).
    pub count: Option<u32>,
    /// Protocol ping on each session, its round trip measured (default 15s).
    pub ping_interval: Option<HumanDuration>,
    /// Nothing received (data or pong) this long: the session is closed as `stalled`
    /// (default 6m).
    pub stale_after: Option<HumanDuration>,
    /// Close politely (1000) and reopen after this long; unset: never.
    pub max_lifetime: Option<HumanDuration>,
    #[serde(default)]
    pub reconnect: RawReconnect,
    /// An application-level heartbeat; unset: none.
    pub heartbeat: Option<RawHeartbeat>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReconnect {
    /// The first wait after a failed connect or a disconnect (default 1s).
    pub initial: Option<HumanDuration>,
    /// The longest wait, reached by doubling (default 1m).
    pub max: Option<HumanDuration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeartbeat {
    pub send: RawPayload,
    pub expect: RawMatcher,
    pub every: HumanDuration,
    pub within: HumanDuration,
}

/// A validated `session:` block.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSettings {
    pub count: u32,
    pub ping_interval: Duration,
    pub stale_after: Duration,
    pub max_lifetime: Option<Duration>,
    pub reconnect: Reconnect,
    pub heartbeat: Option<Heartbeat>,
}

impl SessionSettings {
    /// Whether `other` differs from these settings in `count` alone, so a reload can
    /// resize the running sessions instead of restarting them.
    pub fn same_but_count(&self, other: &Self) -> bool {
        Self { count: other.count, ..self.clone() } == *other
    }
}

/// Exponential back-off between connects: `initial`, doubling, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    pub initial: Duration,
    pub max: Duration,
}

/// Send `send` every `every`; a message matching `expect` must arrive within `within`.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub send: Payload,
    pub expect: Matcher,
    pub every: Duration,
    pub within: Duration,
}

/// Validates a target's `session:` block; every problem is pushed under `<at>.session`.
/// `steps` are the target's: they run once per session and must leave it open.
pub(crate) fn resolve(
    at: &str,
    raw: &RawSession,
    steps: &[Step],
    problems: &mut Vec<String>,
) -> Option<SessionSettings> {
    let target = at;
    let at = format!("{at}.session");
    let before = problems.len();
    if let Some(step) = steps.iter().find(|s| matches!(s.kind, StepKind::Close { .. })) {
        problems.push(format!(
            "{target}: step `{}` closes the session, but a `session:` target's steps run once after connect and must leave it open",
            step.name
        ));
    }
    let count = raw.count.unwrap_or(1);
    if count == 0 || count > MAX_COUNT {
        problems.push(format!("{at}.count: {count} is out of range (1 to {MAX_COUNT})"));
    }
    let field = |name: &str| format!("{at}.{name}");
    bounds::check(&field("ping_interval"), raw.ping_interval, bounds::INTERVAL, problems);
    bounds::check(&field("stale_after"), raw.stale_after, bounds::DEADLINE, problems);
    bounds::check(&field("max_lifetime"), raw.max_lifetime, bounds::DEADLINE, problems);
    bounds::check(&field("reconnect.initial"), raw.reconnect.initial, BACKOFF, problems);
    bounds::check(&field("reconnect.max"), raw.reconnect.max, BACKOFF, problems);
    let get =
        |v: Option<HumanDuration>, default: u64| v.map_or(Duration::from_secs(default), HumanDuration::get);
    let ping_interval = get(raw.ping_interval, 15);
    let stale_after = get(raw.stale_after, 360);
    let reconnect = Reconnect { initial: get(raw.reconnect.initial, 1), max: get(raw.reconnect.max, 60) };
    if problems.len() == before {
        if stale_after <= ping_interval {
            problems.push(format!(
                "{at}.stale_after: {} must be longer than ping_interval ({}), or every idle session goes stale between two pongs",
                HumanDuration(stale_after),
                HumanDuration(ping_interval)
            ));
        }
        if reconnect.initial > reconnect.max {
            problems.push(format!(
                "{at}.reconnect: initial ({}) is longer than max ({})",
                HumanDuration(reconnect.initial),
                HumanDuration(reconnect.max)
            ));
        }
    }
    let heartbeat = raw.heartbeat.as_ref().and_then(|h| heartbeat(&field("heartbeat"), h, problems));
    if problems.len() > before {
        return None;
    }
    Some(SessionSettings {
        count,
        ping_interval,
        stale_after,
        max_lifetime: raw.max_lifetime.map(HumanDuration::get),
        reconnect,
        heartbeat,
    })
}

fn heartbeat(at: &str, raw: &RawHeartbeat, problems: &mut Vec<String>) -> Option<Heartbeat> {
    let before = problems.len();
    let send = Payload::compile(&raw.send).map_err(|e| problems.push(format!("{at}.send: {e}"))).ok();
    let expect = Matcher::compile(&raw.expect).map_err(|e| problems.push(format!("{at}.expect: {e}"))).ok();
    bounds::check(&format!("{at}.every"), Some(raw.every), bounds::INTERVAL, problems);
    bounds::check(&format!("{at}.within"), Some(raw.within), bounds::DEADLINE, problems);
    // Captures are per step; the heartbeat has only the built-ins and the environment.
    for var in send.iter().flat_map(Payload::templates).flat_map(|t| t.variables()) {
        if !BUILTINS.contains(&var) && std::env::var_os(var).is_none() {
            problems.push(format!("{at}.send: environment variable `{}` is not set", shown(var)));
        }
    }
    if problems.len() == before && raw.within.get() >= raw.every.get() {
        problems.push(format!(
            "{at}.within: {} must be shorter than every ({}): one heartbeat is answered before the next is sent",
            raw.within, raw.every
        ));
    }
    if problems.len() > before {
        return None;
    }
    Some(Heartbeat { send: send?, expect: expect?, every: raw.every.get(), within: raw.within.get() })
}
