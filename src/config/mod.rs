//! The configuration file: its format, its defaults and its validation.
//!
//! Loading is two steps. Deserialization (`serde_norway`, `deny_unknown_fields` everywhere)
//! catches unknown keys, wrong types and malformed values with a line number. Then
//! [`resolve`] merges `defaults` into every target and validates what serde cannot:
//! names, URLs, headers, files, substitutions. Every problem is reported, each naming the
//! field it is about, before anything binds a port or opens a socket.

pub mod input;
pub mod labels;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio_tungstenite::tungstenite::http::HeaderName;

use crate::breaker;
use crate::health::settings as health;
use crate::health::{HealthCheck, RemoteBreakers};

use crate::net::proxy::ProxySetting;
use crate::net::tls::TlsSettings;
use crate::probe::scenario::{self, Hooks, RawRespond, RawStep, Step};
use crate::probe::{ProbeSpec, Timeouts};
use crate::util::bounds;
use crate::util::matcher::RawMatcher;
use crate::util::names::is_valid_name;
use crate::util::template::Template;
use crate::util::text::shown;
use crate::util::units::{ByteSize, HumanDuration, Percent};
use crate::util::url::{parse_ws_url, without_userinfo};

/// Where `/metrics` and the HTTP API listen unless `listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9478";

/// A configuration that could not be used: every problem found, each naming its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {problem}", self.file.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A loaded, validated configuration with `defaults` merged into every target.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub file: PathBuf,
    pub listen: SocketAddr,
    /// When set, at most this many probes run at once across all targets; a probe that
    /// finds every slot busy waits and is reported. Unset: no global cap (each target
    /// runs one probe at a time, so the number of targets bounds concurrency).
    pub max_concurrent_probes: Option<NonZeroUsize>,
    /// How long shutdown waits for in-flight probes to close their sessions.
    pub shutdown_grace: Duration,
    pub targets: Vec<Target>,
    /// Regression detection and alert delivery; off when absent.
    pub alerting: Option<crate::alerting::Alerting>,
    /// Who this instance is (`location: eu-west-1`): added to every alert it sends and
    /// exported as `wsprobe_instance_info`.
    pub labels: BTreeMap<String, String>,
}

/// One monitored endpoint, with every setting resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub url: Template,
    pub headers: Vec<(HeaderName, Template)>,
    /// Offered subprotocols; templates, so a token can ride in one (`jwt.${base64url:TOKEN}`).
    pub subprotocols: Vec<Template>,
    pub server_speaks_first: bool,
    pub tls: TlsSettings,
    /// The forward proxy of the WebSocket connection (`proxy`); direct when unset.
    pub proxy: ProxySetting,
    pub interval: Duration,
    pub jitter: Percent,
    pub timeouts: Timeouts,
    pub max_message_size: usize,
    /// The scripted session; empty means: first message, ping, close.
    pub steps: Vec<Step>,
    /// `fail_on` and `respond` rules applied to every message.
    pub hooks: Hooks,
    pub circuit_breaker: crate::breaker::Settings,
    /// HTTP(S) checks run beside the probes, each on its own interval.
    pub health: Vec<HealthCheck>,
    pub remote_breakers: Option<RemoteBreakers>,
    /// `wsprobe once` fails when the live version is not the expected one.
    pub fail_on_drift: bool,
    /// Held open instead of probed on `interval`, when set.
    pub session: Option<crate::session::SessionSettings>,
    /// The phases whose `wsprobe_phase_duration_seconds` series this target exports.
    pub phase_histograms: crate::probe::PhaseHistograms,
}

impl Target {
    /// The probe's part of this target.
    pub fn probe_spec(&self) -> ProbeSpec {
        ProbeSpec {
            name: self.name.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            subprotocols: self.subprotocols.clone(),
            server_speaks_first: self.server_speaks_first,
            tls: self.tls.clone(),
            proxy: self.proxy.clone(),
            timeouts: self.timeouts,
            max_message_size: self.max_message_size,
            steps: self.steps.clone(),
            hooks: self.hooks.clone(),
        }
    }
}

impl From<Target> for ProbeSpec {
    fn from(t: Target) -> Self {
        t.probe_spec()
    }
}

// ---------------------------------------------------------------------------------------
// The file as written. Every field optional where `defaults` or built-ins can supply it.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<SocketAddr>,
    max_concurrent_probes: Option<NonZeroUsize>,
    shutdown_grace: Option<HumanDuration>,
    #[serde(default)]
    defaults: RawSettings,
    targets: Vec<RawTarget>,
    alerting: Option<crate::alerting::RawAlerting>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Settings a target inherits from `defaults` and may override.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    interval: Option<HumanDuration>,
    jitter: Option<Percent>,
    #[serde(default)]
    timeouts: RawTimeouts,
    max_message_size: Option<ByteSize>,
    server_speaks_first: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, Template>,
    subprotocols: Option<Vec<Template>>,
    tls: Option<TlsSettings>,
    proxy: Option<ProxySetting>,
    fail_on: Option<Vec<RawMatcher>>,
    respond: Option<Vec<RawRespond>>,
    #[serde(default)]
    circuit_breaker: breaker::RawBreaker,
    phase_histograms: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    dns: Option<HumanDuration>,
    connect: Option<HumanDuration>,
    proxy: Option<HumanDuration>,
    tls: Option<HumanDuration>,
    handshake: Option<HumanDuration>,
    first_message: Option<HumanDuration>,
    ping: Option<HumanDuration>,
    close: Option<HumanDuration>,
    idle: Option<HumanDuration>,
    probe: Option<HumanDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    url: Template,
    interval: Option<HumanDuration>,
    jitter: Option<Percent>,
    #[serde(default)]
    timeouts: RawTimeouts,
    max_message_size: Option<ByteSize>,
    server_speaks_first: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, Template>,
    subprotocols: Option<Vec<Template>>,
    tls: Option<TlsSettings>,
    proxy: Option<ProxySetting>,
    fail_on: Option<Vec<RawMatcher>>,
    respond: Option<Vec<RawRespond>>,
    #[serde(default)]
    steps: Vec<RawStep>,
    #[serde(default)]
    circuit_breaker: breaker::RawBreaker,
    #[serde(default)]
    health: Vec<health::RawHealthCheck>,
    remote_breakers: Option<health::RawRemoteBreakers>,
    fail_on_drift: Option<bool>,
    session: Option<crate::session::RawSession>,
    phase_histograms: Option<Vec<String>>,
}

/// Headers the WebSocket handshake sets itself; a configured value would break it.
const RESERVED_HEADERS: [&str; 6] =
    ["host", "connection", "upgrade", "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol"];

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let fail = |problem: String| ConfigError { file: path.to_owned(), problems: vec![problem] };
    let text = input::read(path).map_err(fail)?;
    parse(path, &text)
}

/// Parses and validates configuration text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    input::check(text).map_err(|e| ConfigError { file: path.to_owned(), problems: vec![e] })?;
    let raw: RawConfig = serde_norway::from_str(text).map_err(|e| ConfigError {
        file: path.to_owned(),
        problems: vec![input::shorten_error(e.to_string())],
    })?;
    resolve(path, raw)
}

fn resolve(path: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let defaults = &raw.defaults;
    // Checked once under `defaults`, not once per inheriting target under the target's name.
    let default_headers = check_settings("defaults", &defaults.settings(), &mut problems);
    breaker::check_breaker("defaults", &defaults.circuit_breaker, &mut problems);
    if let Some(names) = &defaults.phase_histograms {
        crate::probe::PhaseHistograms::parse("defaults", names, &mut problems);
    }
    if raw.targets.is_empty() {
        problems.push("targets: at least one target is required".to_owned());
    }
    let mut first_with_name: HashMap<&str, usize> = HashMap::new();
    let mut targets = Vec::new();
    for (i, t) in raw.targets.iter().enumerate() {
        let valid = is_valid_name(&t.name);
        let earlier = if valid { first_with_name.get(t.name.as_str()).copied() } else { None };
        // A name that is invalid or taken does not identify the target: use its position.
        let at = match (valid, earlier) {
            (true, None) => {
                first_with_name.insert(&t.name, i);
                format!("target `{}`", t.name)
            }
            _ => format!("targets[{i}]"),
        };
        if !valid {
            problems.push(format!(
                "{at}.name: `{}` is not a valid name (1 to 63 characters from a-z, 0-9, `_` and `-`)",
                shown(&t.name)
            ));
        } else if let Some(first) = earlier {
            problems.push(format!(
                "{at}.name: `{}` is already the name of targets[{first}] (names must be unique)",
                t.name
            ));
        }
        if let Some(target) = resolve_target(&at, t, defaults, &default_headers, &mut problems) {
            targets.push(target);
        }
    }
    bounds::check("shutdown_grace", raw.shutdown_grace, bounds::GRACE, &mut problems);
    let alerting = raw.alerting.as_ref().map(|a| crate::alerting::config::resolve(a, &mut problems));
    let labels = labels::check(&raw.labels, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError { file: path.to_owned(), problems });
    }
    Ok(Config {
        file: path.to_owned(),
        listen: raw.listen.unwrap_or_else(default_listen),
        max_concurrent_probes: raw.max_concurrent_probes,
        shutdown_grace: raw.shutdown_grace.map_or(Duration::from_secs(10), HumanDuration::get),
        targets,
        alerting,
        labels,
    })
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9478))
}

fn resolve_target(
    at: &str,
    t: &RawTarget,
    d: &RawSettings,
    default_headers: &[(HeaderName, Template)],
    problems: &mut Vec<String>,
) -> Option<Target> {
    let before = problems.len();
    let url = match t.url.expand() {
        Ok(expanded) => match parse_ws_url(&expanded) {
            Ok(u) => Some(u),
            Err(why) if t.url.has_substitutions() => {
                problems.push(format!("{at}.url: `{}` {why}", shown(t.url.source())));
                None
            }
            Err(why) => {
                problems.push(format!("{at}.url: `{}` {why}", shown(&without_userinfo(&expanded))));
                None
            }
        },
        Err(e) => {
            problems.push(format!("{at}.url: {e}"));
            None
        }
    };
    let own_headers = check_settings(at, &t.settings(), problems);
    if t.tls.is_some() {
        if let Some(u) = &url {
            if !u.secure {
                problems.push(format!("{at}.tls: TLS settings given but the url is ws:// (use wss://)"));
            }
        }
    }

    // A target's header replaces the default of the same name, whatever its case.
    let mut headers: Vec<(HeaderName, Template)> = default_headers
        .iter()
        .filter(|(name, _)| !own_headers.iter().any(|(own, _)| own == name))
        .cloned()
        .collect();
    headers.extend(own_headers);
    let subprotocols = t.subprotocols.clone().or_else(|| d.subprotocols.clone()).unwrap_or_default();
    let tls = t.tls.clone().or_else(|| d.tls.clone()).unwrap_or_default();
    let proxy = t.proxy.clone().or_else(|| d.proxy.clone()).unwrap_or_default();
    let max_message_size = t.max_message_size.or(d.max_message_size).unwrap_or(ByteSize::mib(1));
    let timeouts = merge_timeouts(&t.timeouts, &d.timeouts);
    let steps = scenario::compile_steps(at, &t.steps, problems);
    let fail_on = t.fail_on.as_ref().or(d.fail_on.as_ref()).map_or(&[][..], Vec::as_slice);
    let respond = t.respond.as_ref().or(d.respond.as_ref()).map_or(&[][..], Vec::as_slice);
    let hooks = scenario::compile_hooks(at, fail_on, respond, problems);
    let interval = t.interval.or(d.interval).map_or(Duration::from_secs(30), HumanDuration::get);
    breaker::check_breaker(at, &t.circuit_breaker, problems);
    let circuit_breaker = breaker::merge_breaker(&t.circuit_breaker, &d.circuit_breaker, interval);
    let health = health::resolve_checks(at, &t.health, interval, &tls, problems);
    let remote_breakers = health::resolve_remote(at, t.remote_breakers.as_ref(), &tls, problems);
    let fail_on_drift = t.fail_on_drift.unwrap_or(false);
    health::check_drift_gate(at, fail_on_drift, &health, problems);
    let session = t.session.as_ref().and_then(|s| crate::session::settings::resolve(at, s, &steps, problems));
    let phase_histograms = match (&t.phase_histograms, &d.phase_histograms) {
        (Some(own), _) => crate::probe::PhaseHistograms::parse(at, own, problems),
        // Its problems are reported once, under `defaults`.
        (None, Some(inherited)) => crate::probe::PhaseHistograms::parse(at, inherited, &mut Vec::new()),
        (None, None) => crate::probe::PhaseHistograms::ALL,
    };
    if problems.len() > before {
        return None;
    }
    Some(Target {
        name: t.name.clone(),
        url: t.url.clone(),
        headers,
        subprotocols,
        server_speaks_first: t.server_speaks_first.or(d.server_speaks_first).unwrap_or(true),
        tls,
        proxy,
        interval,
        jitter: t.jitter.or(d.jitter).unwrap_or(Percent(10.0)),
        timeouts,
        max_message_size: usize::try_from(max_message_size.0).unwrap_or(usize::MAX),
        steps,
        hooks,
        circuit_breaker,
        health,
        remote_breakers,
        fail_on_drift,
        session,
        phase_histograms,
    })
}

/// The settings `defaults` and a target both have, borrowed for checking.
struct Settings<'a> {
    interval: Option<HumanDuration>,
    timeouts: &'a RawTimeouts,
    max_message_size: Option<ByteSize>,
    headers: &'a BTreeMap<String, Template>,
    subprotocols: Option<&'a Vec<Template>>,
    tls: Option<&'a TlsSettings>,
    proxy: Option<&'a ProxySetting>,
}

impl RawSettings {
    fn settings(&self) -> Settings<'_> {
        Settings {
            interval: self.interval,
            timeouts: &self.timeouts,
            max_message_size: self.max_message_size,
            headers: &self.headers,
            subprotocols: self.subprotocols.as_ref(),
            tls: self.tls.as_ref(),
            proxy: self.proxy.as_ref(),
        }
    }
}

impl RawTarget {
    fn settings(&self) -> Settings<'_> {
        Settings {
            interval: self.interval,
            timeouts: &self.timeouts,
            max_message_size: self.max_message_size,
            headers: &self.headers,
            subprotocols: self.subprotocols.as_ref(),
            tls: self.tls.as_ref(),
            proxy: self.proxy.as_ref(),
        }
    }
}

/// Checks the settings written in one block (`defaults` or a target) under that block's
/// name; returns its valid headers.
fn check_settings(at: &str, s: &Settings<'_>, problems: &mut Vec<String>) -> Vec<(HeaderName, Template)> {
    check_timeouts(&format!("{at}.timeouts"), s.timeouts, problems);
    bounds::check(&format!("{at}.interval"), s.interval, bounds::INTERVAL, problems);

    let headers =
        crate::util::headers::check_headers(&format!("{at}.headers"), s.headers, problems, |header| {
            RESERVED_HEADERS.contains(&header.as_str()).then(|| {
                let hint = if header == "sec-websocket-protocol" {
                    " (use `subprotocols` to offer subprotocols)"
                } else {
                    ""
                };
                format!("set by the WebSocket handshake itself{hint}")
            })
        });

    for (j, p) in s.subprotocols.into_iter().flatten().enumerate() {
        let field = format!("{at}.subprotocols[{j}]");
        match p.expand() {
            // Shown as written: the expanded token may be a secret.
            Ok(v) if !is_token(&v) => {
                problems.push(format!("{field}: `{}` is not a valid subprotocol token", shown(p.source())))
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("{field}: {e}")),
        }
    }

    if let Some(tls) = s.tls {
        crate::net::tls::check_settings(at, tls, problems);
    }
    if let Some(proxy) = s.proxy {
        crate::net::proxy::check_setting(&format!("{at}.proxy"), proxy, problems);
    }

    if s.max_message_size.is_some_and(|size| size.0 < 125) {
        problems.push(format!("{at}.max_message_size: must be at least 125B (a control frame's size)"));
    }
    if let Some(size) = s.max_message_size.filter(|size| size.0 > crate::util::bounds::MAX_HELD_BYTES) {
        let most = ByteSize(crate::util::bounds::MAX_HELD_BYTES);
        problems.push(format!(
            "{at}.max_message_size: {size} is too large (at most {most}: a message is held whole)"
        ));
    }
    headers
}

fn merge_timeouts(t: &RawTimeouts, d: &RawTimeouts) -> Timeouts {
    let base = Timeouts::default();
    let pick = |a: Option<HumanDuration>, b: Option<HumanDuration>, c: Duration| {
        a.or(b).map_or(c, HumanDuration::get)
    };
    Timeouts {
        dns: pick(t.dns, d.dns, base.dns),
        connect: pick(t.connect, d.connect, base.connect),
        proxy: pick(t.proxy, d.proxy, base.proxy),
        tls: pick(t.tls, d.tls, base.tls),
        handshake: pick(t.handshake, d.handshake, base.handshake),
        first_message: pick(t.first_message, d.first_message, base.first_message),
        ping: pick(t.ping, d.ping, base.ping),
        close: pick(t.close, d.close, base.close),
        idle: pick(t.idle, d.idle, base.idle),
        probe: pick(t.probe, d.probe, base.probe),
    }
}

fn check_timeouts(at: &str, t: &RawTimeouts, problems: &mut Vec<String>) {
    let all = [
        ("dns", t.dns),
        ("connect", t.connect),
        ("proxy", t.proxy),
        ("tls", t.tls),
        ("handshake", t.handshake),
        ("first_message", t.first_message),
        ("ping", t.ping),
        ("close", t.close),
        ("idle", t.idle),
        ("probe", t.probe),
    ];
    for (name, value) in all {
        bounds::check(&format!("{at}.{name}"), value, bounds::DEADLINE, problems);
    }
}

/// An HTTP token (RFC 9110), as a subprotocol name must be.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && !b",;\"()<>@[]{}/\\=?:".contains(&b))
}
