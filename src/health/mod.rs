//! What is watched beside a target's WebSocket probes: HTTP(S) health checks, the
//! deployed version they read (drift), and the service's own circuit breakers.
//!
//! Each health check and the remote-breaker poll runs in its own task, on its own
//! interval, started and cancelled with the target's probe task (see
//! [`crate::scheduler`]). Own tasks rather than a step after each probe, because a
//! streaming probe may take a minute and a failing one is exactly when the health
//! endpoints should keep being read; a slow health check must not delay a probe either.
//! Health checks do not take a `max_concurrent_probes` permit: they are one short GET.
//!
//! `http` performs the GET over the probe's own phases; `drift` keeps the version
//! bookkeeping; `remote` reads remote breaker states.

pub mod drift;
pub mod http;
pub mod remote;
mod report;
pub mod settings;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::header::{HeaderName, HeaderValue};
use rustls::ClientConfig;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use drift::{version_label, Drift};
pub use remote::{Poller, RemoteState, RemoteStatus};
pub use report::Report;
pub use settings::{HealthCheck, RemoteBreakers};

use crate::util::matcher::{lookup, Matcher, Received};
use crate::util::redact::Redactor;
use crate::util::template::{Template, Vars};
use crate::util::text::escape_control;

/// Why a health check (or a remote-breaker poll) failed: the `reason` label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HealthReason {
    DnsError,
    ConnectRefused,
    ConnectTimeout,
    ConnectError,
    TlsError,
    TlsTimeout,
    /// The check's `timeout` ran out after the connection was up.
    Timeout,
    /// A status not in `expect_status` (reported).
    HttpStatus,
    /// Not the expected body: `expect` failed, not JSON, wrong content type, no version.
    BodyMismatch,
    BodyTooLarge,
    TooManyRedirects,
    ProtocolError,
}

impl HealthReason {
    pub const ALL: [HealthReason; 12] = [
        HealthReason::DnsError,
        HealthReason::ConnectRefused,
        HealthReason::ConnectTimeout,
        HealthReason::ConnectError,
        HealthReason::TlsError,
        HealthReason::TlsTimeout,
        HealthReason::Timeout,
        HealthReason::HttpStatus,
        HealthReason::BodyMismatch,
        HealthReason::BodyTooLarge,
        HealthReason::TooManyRedirects,
        HealthReason::ProtocolError,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            HealthReason::DnsError => "dns_error",
            HealthReason::ConnectRefused => "connect_refused",
            HealthReason::ConnectTimeout => "connect_timeout",
            HealthReason::ConnectError => "connect_error",
            HealthReason::TlsError => "tls_error",
            HealthReason::TlsTimeout => "tls_timeout",
            HealthReason::Timeout => "timeout",
            HealthReason::HttpStatus => "http_status",
            HealthReason::BodyMismatch => "body_mismatch",
            HealthReason::BodyTooLarge => "body_too_large",
            HealthReason::TooManyRedirects => "too_many_redirects",
            HealthReason::ProtocolError => "protocol_error",
        }
    }
}

crate::label_value!(HealthReason);

/// Phase labels of `wsprobe_health_duration_seconds`.
pub const HEALTH_PHASES: [&str; 5] = ["dns", "connect", "tls", "first_byte", "total"];

impl http::Timings {
    /// `(phase, seconds)` for every phase that ran, `total` last.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> {
        [
            ("dns", self.dns),
            ("connect", self.connect),
            ("tls", self.tls),
            ("first_byte", self.first_byte),
            ("total", Some(self.total)),
        ]
        .into_iter()
        .filter_map(|(p, s)| s.map(|s| (p, s)))
    }
}

impl Serialize for http::Timings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (phase, secs) in self.iter() {
            map.serialize_entry(phase, &round_micros(secs))?;
        }
        map.end()
    }
}

fn round_micros(s: f64) -> f64 {
    (s * 1e6).round() / 1e6
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// One health check's outcome, as logged, exported, shown in `/api/targets` and printed
/// by `wsprobe once`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthResult {
    #[serde(skip)]
    pub target: String,
    pub check: String,
    pub success: bool,
    pub reason: Option<HealthReason>,
    pub message: Option<String>,
    /// The final status, after redirects.
    pub http_status: Option<u16>,
    pub redirects: usize,
    #[serde(serialize_with = "ser_secs")]
    pub duration_seconds: f64,
    pub phases: http::Timings,
    #[serde(serialize_with = "ser_secs")]
    pub started_at: f64,
    /// The version read at `version_path`, if this check reads one and could.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The expected version as read at this check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<String>,
    /// Why the expected version could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version_error: Option<String>,
    /// Whether this check reads the deployed version.
    #[serde(skip)]
    pub reports_version: bool,
}

fn ser_secs<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round_micros(*v))
}

/// The deployed version of a target, as `/api/targets` and `wsprobe once` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    /// The health check that reads it.
    pub check: String,
    /// The last version read (kept when a later check could not read one).
    pub live_version: Option<String>,
    pub expected_version: Option<String>,
    /// `null` when either version is unknown.
    pub drift: Option<bool>,
    /// Unix time the drift began.
    pub drift_since: Option<f64>,
}

impl Deployment {
    pub fn of(check: &str, d: &Drift) -> Self {
        Deployment {
            check: check.to_owned(),
            live_version: d.live().map(str::to_owned),
            expected_version: d.expected().map(str::to_owned),
            drift: d.drifting(),
            drift_since: d.since().map(unix),
        }
    }

    /// "deployed 1.4.2, staging-agent still serves 1.4.1", when drifting.
    pub fn sentence(&self, target: &str) -> Option<String> {
        match (self.drift, &self.expected_version, &self.live_version) {
            (Some(true), Some(expected), Some(live)) => {
                Some(format!("deployed {expected}, {target} still serves {live}"))
            }
            _ => None,
        }
    }
}

/// A health check made ready to run: its TLS configuration built once.
#[derive(Debug)]
pub struct Checker {
    pub check: HealthCheck,
    tls: Arc<ClientConfig>,
}

impl Checker {
    pub fn new(check: HealthCheck) -> Result<Self, String> {
        let tls = crate::net::tls::client_config(&check.tls)?;
        Ok(Self { check, tls })
    }

    /// Runs the check once.
    pub async fn run(&self, target: &str) -> HealthResult {
        let c = &self.check;
        let started_at = unix(SystemTime::now());
        let vars = Vars { target: target.to_owned(), captures: Default::default() };
        let mut secrets = Vec::new();
        let mut timings = http::Timings::default();
        let (expected_version, expected_version_error) = match &c.expected_version {
            // Not a secret: showing it is the point.
            Some(t) => match t.expand_with(&vars, &mut Vec::new()) {
                Ok(v) => (Some(v.trim().to_owned()), None),
                Err(e) => (None, Some(e.to_string())),
            },
            None => (None, None),
        };
        let outcome = match request_parts(&c.url, &c.headers, &vars, &mut secrets) {
            Ok((url, headers)) => {
                let get = http::Get {
                    url: &url,
                    headers: &headers,
                    timeout: c.timeout,
                    max_body_size: c.max_body_size,
                    tls: &self.tls,
                    server_name: c.tls.server_name.as_deref(),
                };
                http::get(&get, &mut timings).await
            }
            Err(e) => Err(e),
        };
        let redactor = Redactor::new(&secrets);
        let mut result = HealthResult {
            target: target.to_owned(),
            check: c.name.clone(),
            success: true,
            reason: None,
            message: None,
            http_status: None,
            redirects: 0,
            duration_seconds: timings.total,
            phases: timings,
            started_at,
            version: None,
            expected_version,
            expected_version_error,
            reports_version: c.version_path.is_some(),
        };
        let verdict = outcome.and_then(|answer| {
            result.http_status = Some(answer.status);
            result.redirects = answer.redirects;
            let (verdict, version) = self.judge(&answer, &redactor);
            result.version = version;
            verdict
        });
        if let Err(e) = verdict {
            result.success = false;
            result.reason = Some(e.reason);
            result.http_status = e.status.or(result.http_status);
            result.message = Some(redactor.redact(&e.message));
        }
        result
    }

    /// Status, then body, then version; the version is read whenever the body has it.
    ///
    /// Server text is redacted before it is cut, and the version is also escaped: it
    /// reaches log lines, alert descriptions and the text report.
    fn judge(
        &self,
        answer: &http::Answer,
        redactor: &Redactor,
    ) -> (Result<(), http::GetError>, Option<String>) {
        let c = &self.check;
        let fail =
            |reason, message: String| Err(http::GetError { reason, message, status: Some(answer.status) });
        let text = std::str::from_utf8(&answer.body).ok();
        let json: Option<Value> = text.and_then(|t| serde_json::from_str(t).ok());
        let version_value =
            c.version_path.as_ref().and_then(|p| json.as_ref().and_then(|doc| lookup(doc, p)));
        let version = version_value
            .and_then(drift::version_text)
            .map(|v| escape_control(&redactor.excerpt(&v, 128)).into_owned());

        if !c.expect_status.contains(&answer.status) {
            let expected: Vec<String> = c.expect_status.iter().map(u16::to_string).collect();
            let mut message = format!("HTTP {}, expected {}", answer.status, expected.join(" or "));
            if let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) {
                message.push_str(&format!(": {}", redactor.excerpt(t, 200)));
            }
            return (fail(HealthReason::HttpStatus, message), version);
        }
        let needs_json = c.version_path.is_some() || c.expect.as_ref().is_some_and(needs_json);
        let needs_text = needs_json || c.expect.is_some();
        let Some(text) = text.filter(|_| needs_text) else {
            if needs_text {
                let message = format!("the body is not UTF-8 text ({} bytes)", answer.body.len());
                return (fail(HealthReason::BodyMismatch, message), version);
            }
            return (Ok(()), version);
        };
        if needs_json {
            let what = describe_body(answer.content_type.as_deref(), text, redactor);
            if let Some(ct) = answer.content_type.as_deref().filter(|ct| !is_json_type(ct)) {
                let message =
                    format!("expected a JSON body, got content type `{}` ({what})", redactor.excerpt(ct, 60));
                return (fail(HealthReason::BodyMismatch, message), version);
            }
            if let Err(e) = serde_json::from_str::<Value>(text) {
                let message = format!("the body is not valid JSON ({e}): {what}");
                return (fail(HealthReason::BodyMismatch, message), version);
            }
        }
        if let Some(m) = &c.expect {
            let received = Received::text(text);
            if !m.matches(&received) {
                let message =
                    format!("the body does not match `expect`: {}", explain(m, &received, redactor));
                return (fail(HealthReason::BodyMismatch, message), version);
            }
        }
        if let Some(path) = &c.version_path {
            let shown = path.join(".");
            match version_value {
                None => {
                    let message = format!("version_path `{shown}` is not in the body");
                    return (fail(HealthReason::BodyMismatch, message), version);
                }
                Some(v) if version.is_none() => {
                    let message = format!("version_path `{shown}` holds {}, not a version", kind_of(v));
                    return (fail(HealthReason::BodyMismatch, message), version);
                }
                Some(_) => {}
            }
        }
        (Ok(()), version)
    }
}

/// Expands a URL and its headers for one request; their values are secrets.
pub(crate) fn request_parts(
    url: &Template,
    headers: &[(HeaderName, Template)],
    vars: &Vars,
    secrets: &mut Vec<String>,
) -> Result<(String, Vec<(HeaderName, HeaderValue)>), http::GetError> {
    let failed =
        |what: String| http::GetError::new(HealthReason::ConnectError, format!("cannot expand {what}"));
    let expanded = url.expand_with(vars, secrets).map_err(|e| failed(format!("the url: {e}")))?;
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let v = value.expand_with(vars, secrets).map_err(|e| failed(format!("header `{name}`: {e}")))?;
        let mut v = HeaderValue::from_str(&v).map_err(|_| {
            http::GetError::new(
                HealthReason::ConnectError,
                format!("header `{name}` expands to an invalid value"),
            )
        })?;
        if value.has_substitutions() {
            v.set_sensitive(true);
        }
        out.push((name.clone(), v));
    }
    Ok((expanded, out))
}

/// `application/json`, `application/problem+json`, with or without parameters.
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// What arrived, for a mismatch message: the start of the body.
fn describe_body(content_type: Option<&str>, text: &str, redactor: &Redactor) -> String {
    let start = redactor.excerpt(text.trim(), 60);
    match (content_type, start.is_empty()) {
        (_, true) => "an empty body".to_owned(),
        (None, false) => format!("no content type, body starts {start:?}"),
        (Some(_), false) => format!("body starts {start:?}"),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether a matcher looks into JSON (so the body must be JSON).
fn needs_json(m: &Matcher) -> bool {
    match m {
        Matcher::All { json, exists, .. } => !json.is_empty() || !exists.is_empty(),
        Matcher::AnyOf(list) => list.iter().any(needs_json),
    }
}

/// The first condition of `m` that the body fails, in words.
fn explain(m: &Matcher, body: &Received<'_>, redactor: &Redactor) -> String {
    match m {
        Matcher::AnyOf(list) => format!("none of the {} `any_of` matchers holds", list.len()),
        Matcher::All { json, exists, text } => {
            if let Some(re) = text {
                if !body.text.is_some_and(|t| re.is_match(t)) {
                    return format!("the body does not match /{}/", re.as_str());
                }
            }
            let doc = body.json();
            for (path, want) in json {
                let shown = path.join(".");
                match doc.and_then(|d| lookup(d, path)) {
                    None => return format!("`{shown}` is missing, expected {want}"),
                    Some(got) if !same(got, want) => {
                        return format!(
                            "`{shown}` is {}, expected {want}",
                            redactor.excerpt(&got.to_string(), 80)
                        )
                    }
                    Some(_) => {}
                }
            }
            for path in exists {
                if doc.and_then(|d| lookup(d, path)).is_none() {
                    return format!("`{}` is missing", path.join("."));
                }
            }
            "it does not hold".to_owned()
        }
    }
}

/// Equality where `1` and `1.0` are the same number, as the matcher has it.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Everything watched beside one target's probes, made ready once (TLS configurations
/// built, so a bad CA file fails before anything starts).
#[derive(Debug, Default)]
pub struct Watchers {
    pub checks: Vec<Arc<Checker>>,
    pub remote: Option<Arc<Poller>>,
}

impl Watchers {
    pub fn new(health: &[HealthCheck], remote_breakers: Option<&RemoteBreakers>) -> Result<Self, String> {
        let checks = health
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Checker::new(c.clone()).map(Arc::new).map_err(|e| format!("health[{i}] (`{}`): {e}", c.name))
            })
            .collect::<Result<_, _>>()?;
        let remote = match remote_breakers {
            Some(r) => Some(Arc::new(Poller::new(r.clone()).map_err(|e| format!("remote_breakers: {e}"))?)),
            None => None,
        };
        Ok(Self { checks, remote })
    }

    /// Starts one task per health check and one for the remote breakers; they stop when
    /// `cancel` fires.
    pub fn spawn<R: Report>(&self, target: &str, report: &R, cancel: &CancellationToken) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        for checker in &self.checks {
            let span = tracing::info_span!("health", check = %checker.check.name);
            let run = check_loop(checker.clone(), target.to_owned(), report.clone(), cancel.clone());
            tasks.spawn(run.instrument(span));
        }
        if let Some(poller) = &self.remote {
            let span = tracing::info_span!("remote_breakers");
            let run = remote::poll_loop(poller.clone(), target.to_owned(), report.clone(), cancel.clone());
            tasks.spawn(run.instrument(span));
        }
        tasks
    }
}

/// Runs one health check every `interval` until `cancel` fires.
async fn check_loop<R: Report>(checker: Arc<Checker>, target: String, report: R, cancel: CancellationToken) {
    let interval = checker.check.interval;
    let mut drift = Drift::default();
    let mut expected_error: Option<String> = None;
    let mut next = Instant::now();
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            r = checker.run(&target) => r,
        };
        log_health(&result);
        report.observed(&result);
        let deployment = result.reports_version.then(|| {
            track_drift(&result, &mut drift, &mut expected_error, &report);
            Deployment::of(&result.check, &drift)
        });
        report.checked(&target, result, deployment).await;
        // Overruns are not made up for: the next check is an interval after this one.
        let now = Instant::now();
        next = crate::util::time::deadline(next, interval);
        if next <= now {
            next = crate::util::time::deadline(now, interval);
        }
    }
}

/// Folds one reading into the drift state: logs and the deployment metrics.
fn track_drift(
    r: &HealthResult,
    drift: &mut Drift,
    expected_error: &mut Option<String>,
    report: &impl Report,
) {
    let now = SystemTime::now();
    if r.expected_version_error != *expected_error {
        if let Some(e) = &r.expected_version_error {
            tracing::warn!(target_name = %r.target, check = %r.check, error = %e, "Cannot read the expected version; drift is unknown until it can be read.");
        }
        expected_error.clone_from(&r.expected_version_error);
    }
    let changes = drift.observe(r.version.as_deref(), r.expected_version.as_deref(), now);
    if let Some((previous, live)) = &changes.version {
        tracing::info!(
            target_name = %r.target,
            check = %r.check,
            previous = previous.as_deref().unwrap_or(""),
            version = %live,
            "The live version changed."
        );
    }
    let expected = drift.expected().unwrap_or("");
    let live = drift.live().unwrap_or("");
    if changes.drift_started {
        tracing::warn!(target_name = %r.target, check = %r.check, expected, live, "Deployment drift: deployed {expected}, {} still serves {live}.", r.target);
    }
    if changes.drift_ended {
        tracing::info!(target_name = %r.target, check = %r.check, expected, live, "Deployment drift ended.");
    }
    // The detector's DeploymentDrift alert follows the same condition.
    if changes.drift_started || changes.drift_ended {
        let detail = if changes.drift_started {
            format!("deployed {expected}, {} still serves {live}", r.target)
        } else if expected.is_empty() {
            // The expectation could not be read: drift is unknown rather than over.
            format!("the expected version for {} cannot be read, so drift is unknown", r.target)
        } else {
            format!("{} serves the deployed build, {live}", r.target)
        };
        report.drift_condition(&r.target, changes.drift_started, detail);
    }
    let gauge = drift.drifting().map(|d| (d, drift.seconds(now)));
    report.deployment(&r.target, drift.live(), gauge);
}

/// One log line per health check, with the fields of the failure metric.
pub fn log_health(r: &HealthResult) {
    let phases: Vec<String> = r.phases.iter().map(|(p, s)| format!("{p}={:.1}ms", s * 1000.0)).collect();
    let phases = phases.join(" ");
    if r.success {
        tracing::info!(target_name = %r.target, check = %r.check, http_status = r.http_status.unwrap_or(0), phases = %phases, "Health check succeeded.");
    } else {
        tracing::warn!(
            target_name = %r.target,
            check = %r.check,
            reason = r.reason.map_or("", |x| x.as_str()),
            http_status = r.http_status.unwrap_or(0),
            phases = %phases,
            detail = r.message.as_deref().unwrap_or(""),
            "Health check failed."
        );
    }
}
