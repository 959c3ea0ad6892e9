//! Scripted sessions: the `steps` of a target, and its `fail_on` / `respond` rules.
//!
//! Steps are parsed into the [`Step`] enum and validated with the rest of the
//! configuration; each kind runs in its own file (`expect`, `send`, `hold`), while `ping`
//! and `close` reuse the session's own. A failing step reports phase `step` (or `ping`,
//! `close`) and its name.
//!
//! A sub-room of `probe` rather than a module beside it: steps run on the probe's own
//! session and report the probe's phases and reasons, while the probe runs the steps, so
//! the two are one unit; keeping them apart would tie them in a circle.

mod expect;
mod hold;
mod payload;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

pub use payload::{Payload, RawPayload};

use crate::probe::session::{Session, Wait};
use crate::probe::Timeouts;
use crate::probe::{Phase, ProbeError, Reason, StepResult, Stop};
use crate::util::bounds;
use crate::util::matcher::{Matcher, RawMatcher};
use crate::util::template::BUILTINS;
use crate::util::time::fmt_duration;
use crate::util::units::HumanDuration;

/// A step as written: exactly one kind key plus the options that kind takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    /// Used as the `step` label and in messages; default `<kind>_<position>`.
    pub name: Option<String>,
    pub send: Option<RawPayload>,
    pub expect: Option<RawMatcher>,
    pub expect_all: Option<Vec<RawMatcher>>,
    pub hold: Option<HumanDuration>,
    pub sleep: Option<HumanDuration>,
    pub ping: Option<RawPing>,
    pub close: Option<RawClose>,
    /// Whole-step deadline of `expect` and `expect_all` (required there).
    pub within: Option<HumanDuration>,
    /// Longest silence between data messages while an `expect`, `expect_all` or `hold` waits.
    pub max_gap: Option<HumanDuration>,
    /// On `expect`: variable name → JSON path of the matched message.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPing {
    /// Defaults to `timeouts.ping`.
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClose {
    /// Close code sent (default 1000).
    pub code: Option<u16>,
    /// Close reason sent (default empty).
    pub reason: Option<String>,
    /// Defaults to `timeouts.close`.
    pub timeout: Option<HumanDuration>,
}

/// An automatic reply: when a message matches `when`, send `send`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRespond {
    pub when: RawMatcher,
    pub send: RawPayload,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Send(Payload),
    Expect {
        matcher: Matcher,
        within: Duration,
        max_gap: Option<Duration>,
        capture: Vec<(String, Vec<String>)>,
    },
    ExpectAll {
        matchers: Vec<Matcher>,
        within: Duration,
        max_gap: Option<Duration>,
    },
    Hold {
        duration: Duration,
        max_gap: Option<Duration>,
    },
    Sleep(Duration),
    Ping {
        timeout: Option<Duration>,
    },
    Close {
        code: u16,
        reason: String,
        timeout: Option<Duration>,
    },
}

impl StepKind {
    fn label(&self) -> &'static str {
        match self {
            StepKind::Send(_) => "send",
            StepKind::Expect { .. } => "expect",
            StepKind::ExpectAll { .. } => "expect_all",
            StepKind::Hold { .. } => "hold",
            StepKind::Sleep(_) => "sleep",
            StepKind::Ping { .. } => "ping",
            StepKind::Close { .. } => "close",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Respond {
    pub when: Matcher,
    pub send: Payload,
}

/// Target-level rules applied to every data message of a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hooks {
    pub fail_on: Vec<Matcher>,
    pub respond: Vec<Respond>,
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.fail_on.is_empty() && self.respond.is_empty()
    }
}

/// Compiles `fail_on` and `respond`, pushing each problem with its field path.
pub(crate) fn compile_hooks(
    at: &str,
    fail_on: &[RawMatcher],
    respond: &[RawRespond],
    problems: &mut Vec<String>,
) -> Hooks {
    let mut hooks = Hooks::default();
    for (i, m) in fail_on.iter().enumerate() {
        match Matcher::compile(m) {
            Ok(m) => hooks.fail_on.push(m),
            Err(e) => problems.push(format!("{at}.fail_on[{i}]: {e}")),
        }
    }
    for (i, r) in respond.iter().enumerate() {
        let when = Matcher::compile(&r.when).map_err(|e| format!("{at}.respond[{i}].when: {e}"));
        let send = Payload::compile(&r.send).map_err(|e| format!("{at}.respond[{i}].send: {e}"));
        match (when, send) {
            (Ok(when), Ok(send)) => {
                check_env(&format!("{at}.respond[{i}].send"), &send, &HashMap::new(), usize::MAX, problems);
                hooks.respond.push(Respond { when, send });
            }
            (when, send) => problems.extend(when.err().into_iter().chain(send.err())),
        }
    }
    hooks
}

/// Compiles the steps of one target, pushing each problem with the step it is about.
pub(crate) fn compile_steps(at: &str, raw: &[RawStep], problems: &mut Vec<String>) -> Vec<Step> {
    // Where each capture is defined, so later sends may use it and earlier ones may not.
    let mut captured_at: HashMap<String, usize> = HashMap::new();
    for (i, step) in raw.iter().enumerate() {
        for name in step.capture.keys() {
            captured_at.entry(name.clone()).or_insert(i);
        }
    }
    let mut steps = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, r) in raw.iter().enumerate() {
        let position = i + 1;
        let here = match &r.name {
            Some(n) => format!("{at} step {position} (`{}`)", crate::util::text::shown(n)),
            None => format!("{at} step {position}"),
        };
        let before = problems.len();
        let kind = compile_kind(&here, r, problems);
        if let Some(StepKind::Send(payload)) = &kind {
            check_env(&format!("{here}: `send`"), payload, &captured_at, i, problems);
        }
        let name = r
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_{position}", kind.as_ref().map_or("step", |k| k.label())));
        if !crate::util::names::is_valid_name(&name) {
            problems.push(format!("{here}: `name` must be 1 to 63 characters from a-z, 0-9, `_` and `-` (it becomes the `step` label)"));
        } else if let Some(first) = names.insert(name.clone(), position) {
            problems.push(format!("{here}: duplicate step name (step {first} has it too)"));
        }
        if problems.len() == before {
            if let Some(kind) = kind {
                steps.push(Step { name, kind });
            }
        }
    }
    steps
}

fn compile_kind(here: &str, r: &RawStep, problems: &mut Vec<String>) -> Option<StepKind> {
    let kinds: Vec<&str> = [
        ("send", r.send.is_some()),
        ("expect", r.expect.is_some()),
        ("expect_all", r.expect_all.is_some()),
        ("hold", r.hold.is_some()),
        ("sleep", r.sleep.is_some()),
        ("ping", r.ping.is_some()),
        ("close", r.close.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, present)| present.then_some(k))
    .collect();
    let kind = match kinds.as_slice() {
        [one] => *one,
        [] => {
            problems.push(format!(
                "{here}: no step kind; give one of `send`, `expect`, `expect_all`, `hold`, `sleep`, `ping`, `close`"
            ));
            return None;
        }
        many => {
            problems.push(format!("{here}: one step kind per step, found {}", many.join(", ")));
            return None;
        }
    };
    // Every step duration is a deadline, bounded so that the session's clock cannot overflow.
    let positive = |field: &str, v: Option<HumanDuration>, problems: &mut Vec<String>| -> Option<Duration> {
        let v = v?;
        match bounds::problem(v, bounds::DEADLINE) {
            Some(why) if v.get().is_zero() => {
                problems.push(format!("{here}: `{field}` {why}"));
                None
            }
            Some(why) => {
                problems.push(format!("{here}: `{field}`: {why}"));
                None
            }
            None => Some(v.get()),
        }
    };
    let within = positive("within", r.within, problems);
    let max_gap = positive("max_gap", r.max_gap, problems);
    let takes_within = matches!(kind, "expect" | "expect_all");
    let takes_gap = matches!(kind, "expect" | "expect_all" | "hold");
    if r.within.is_some() && !takes_within {
        problems.push(format!("{here}: `within` applies to `expect` and `expect_all` only"));
    }
    if r.max_gap.is_some() && !takes_gap {
        problems.push(format!("{here}: `max_gap` applies to `expect`, `expect_all` and `hold` only"));
    }
    if !r.capture.is_empty() && kind != "expect" {
        problems.push(format!("{here}: `capture` applies to `expect` only"));
    }
    let require_within = |problems: &mut Vec<String>| {
        if r.within.is_none() {
            problems.push(format!("{here}: `within` is required for `{kind}` (the whole step's deadline)"));
        }
        within
    };
    match kind {
        "send" => Payload::compile(r.send.as_ref()?)
            .map(StepKind::Send)
            .map_err(|e| problems.push(format!("{here}: `send`: {e}")))
            .ok(),
        "expect" => {
            let within = require_within(problems);
            let mut raw = r.expect.clone()?;
            // A capture's path must be present in the message that matches.
            raw.json_exists.extend(r.capture.values().cloned());
            let matcher =
                Matcher::compile(&raw).map_err(|e| problems.push(format!("{here}: `expect`: {e}"))).ok();
            let mut capture = Vec::new();
            for (name, path) in &r.capture {
                if BUILTINS.contains(&name.as_str()) {
                    problems.push(format!("{here}: `capture.{name}`: `{name}` is a built-in variable"));
                }
                capture.push((name.clone(), path.split('.').map(str::to_owned).collect()));
            }
            Some(StepKind::Expect { matcher: matcher?, within: within?, max_gap, capture })
        }
        "expect_all" => {
            let within = require_within(problems);
            let list = r.expect_all.as_ref()?;
            if list.is_empty() {
                problems.push(format!("{here}: `expect_all` needs at least one matcher"));
            }
            let mut matchers = Vec::new();
            for (j, m) in list.iter().enumerate() {
                match Matcher::compile(m) {
                    Ok(m) => matchers.push(m),
                    Err(e) => problems.push(format!("{here}: `expect_all[{j}]`: {e}")),
                }
            }
            Some(StepKind::ExpectAll { matchers, within: within?, max_gap })
        }
        "hold" => positive("hold", r.hold, problems).map(|duration| StepKind::Hold { duration, max_gap }),
        "sleep" => positive("sleep", r.sleep, problems).map(StepKind::Sleep),
        "ping" => {
            let timeout = positive("ping.timeout", r.ping.as_ref()?.timeout, problems);
            Some(StepKind::Ping { timeout })
        }
        "close" => {
            let c = r.close.as_ref()?;
            let code = c.code.unwrap_or(1000);
            if !(code == 1000 || (3000..=4999).contains(&code)) {
                problems.push(format!("{here}: `close.code` {code}: a client may send 1000 or 3000-4999"));
            }
            let reason = c.reason.clone().unwrap_or_default();
            if reason.len() > 123 {
                problems.push(format!("{here}: `close.reason` is longer than 123 bytes"));
            }
            let timeout = positive("close.timeout", c.timeout, problems);
            Some(StepKind::Close { code, reason, timeout })
        }
        _ => None,
    }
}

/// Checks that every variable a payload uses is built in, captured by an earlier step,
/// or set in the environment.
fn check_env(
    field: &str,
    payload: &Payload,
    captured_at: &HashMap<String, usize>,
    step_index: usize,
    problems: &mut Vec<String>,
) {
    for template in payload.templates() {
        for var in template.variables() {
            if BUILTINS.contains(&var) {
                continue;
            }
            match captured_at.get(var) {
                Some(&at) if at < step_index => continue,
                Some(&at) => {
                    problems.push(format!(
                        "{field}: `${{{var}}}` is used before it is captured (by step {})",
                        at + 1
                    ));
                    continue;
                }
                None => {}
            }
            if std::env::var_os(var).is_none() {
                problems.push(format!(
                    "{field}: environment variable `{}` is not set",
                    crate::util::text::shown(var)
                ));
            }
        }
        if let Err(e) = template.expand_with(&crate::util::template::Vars::default(), &mut Vec::new()) {
            use crate::util::template::TemplateError;
            if matches!(e, TemplateError::File { .. } | TemplateError::TooLarge { .. }) {
                problems.push(format!("{field}: {e}"));
            }
        }
    }
}

/// Runs the steps in order. Each completed or failed step is appended to `results`;
/// `phase` and `current_step` say where a failure happened. Returns the protocol-level
/// timings measured by `ping` and `close` steps.
pub async fn run(
    session: &mut Session,
    steps: &[Step],
    timeouts: &Timeouts,
    results: &mut Vec<StepResult>,
    phase: &mut Phase,
    current_step: &mut Option<String>,
) -> Result<Vec<(Phase, f64)>, Stop> {
    let mut measured = Vec::new();
    for step in steps {
        *current_step = Some(step.name.clone());
        *phase = match step.kind {
            StepKind::Ping { .. } => Phase::Ping,
            StepKind::Close { .. } => Phase::Close,
            _ => Phase::Step,
        };
        let start = Instant::now();
        let outcome = run_step(session, step, timeouts).await;
        let duration_seconds = start.elapsed().as_secs_f64();
        results.push(StepResult { name: step.name.clone(), ok: outcome.is_ok(), duration_seconds });
        if let Some(d) = outcome? {
            measured.push((*phase, d.as_secs_f64()));
        }
    }
    *current_step = None;
    Ok(measured)
}

/// Runs one step; `Some` carries a protocol measurement (ping RTT, close handshake).
async fn run_step(session: &mut Session, step: &Step, timeouts: &Timeouts) -> Result<Option<Duration>, Stop> {
    match &step.kind {
        StepKind::Send(payload) => {
            let msg = payload
                .render(&session.vars, &mut session.secrets)
                .map_err(|e| ProbeError::new(Reason::SendError, format!("cannot build the message: {e}")))?;
            session.send(msg, &Wait::new(timeouts.handshake)).await?;
        }
        StepKind::Expect { matcher, within, max_gap, capture } => {
            expect::expect_one(session, matcher, *within, *max_gap, capture).await?;
        }
        StepKind::ExpectAll { matchers, within, max_gap } => {
            expect::expect_all(session, matchers, *within, *max_gap).await?;
        }
        StepKind::Hold { duration, max_gap } => hold::hold(session, *duration, *max_gap).await?,
        StepKind::Sleep(duration) => hold::hold(session, *duration, None).await?,
        StepKind::Ping { timeout } => return Ok(Some(session.ping(timeout.unwrap_or(timeouts.ping)).await?)),
        StepKind::Close { code, reason, timeout } => {
            let timeout = timeout.unwrap_or(timeouts.close);
            return Ok(Some(session.close_with((*code).into(), reason, timeout).await?));
        }
    }
    Ok(None)
}

/// "no message matched within 60s (7 others received: type=a, type=b)".
fn expect_timeout(what: &str, within: Duration, ignored: u64, recent: &[String]) -> ProbeError {
    let others = match (ignored, recent.is_empty()) {
        (0, _) => "nothing else received".to_owned(),
        (n, true) => format!("{n} others received"),
        (n, false) => format!("{n} others received, last: {}", recent.join(", ")),
    };
    ProbeError::new(Reason::ExpectTimeout, format!("{what} within {} ({others})", fmt_duration(within)))
}
