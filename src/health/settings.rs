//! Configuration of what wsprobe watches around a target's WebSocket: HTTP health checks
//! and the deployed version they read (`health`), the service's own breakers
//! (`remote_breakers`) and the post-deploy gate (`fail_on_drift`).
//!
//! Same two steps as the rest of the file: serde reads the raw form, then everything is
//! checked and every problem reported with the field it is about.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tokio_tungstenite::tungstenite::http::HeaderName;

use crate::net::tls::TlsSettings;
use crate::util::bounds;
use crate::util::matcher::{Matcher, RawMatcher};
use crate::util::names::is_valid_name;
use crate::util::template::{Template, BUILTINS};
use crate::util::text::shown;
use crate::util::units::{ByteSize, HumanDuration};
use crate::util::url::{parse_http_url, without_userinfo, HttpUrl};

/// Per-check time limit unless `timeout` says otherwise.
pub(crate) const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest body a health check or remote-breaker poll reads unless `max_body_size` says otherwise.
pub(crate) const DEFAULT_MAX_BODY_SIZE: ByteSize = ByteSize::mib(1);
/// How often remote breakers are polled unless `interval` says otherwise.
pub(crate) const DEFAULT_REMOTE_INTERVAL: Duration = Duration::from_secs(30);
/// Per-poll time limit of remote breakers unless `timeout` says otherwise.
pub(crate) const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers the health-check client sets itself.
const RESERVED_HTTP_HEADERS: [&str; 5] =
    ["host", "connection", "content-length", "transfer-encoding", "upgrade"];

/// One entry of a target's `health` list as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    name: String,
    url: Template,
    #[serde(default)]
    headers: BTreeMap<String, Template>,
    expect_status: Option<Vec<u16>>,
    expect: Option<RawMatcher>,
    timeout: Option<HumanDuration>,
    interval: Option<HumanDuration>,
    max_body_size: Option<ByteSize>,
    version_path: Option<String>,
    expected_version: Option<Template>,
    tls: Option<TlsSettings>,
}

/// A target's `remote_breakers` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRemoteBreakers {
    url: Template,
    #[serde(default)]
    headers: BTreeMap<String, Template>,
    interval: Option<HumanDuration>,
    timeout: Option<HumanDuration>,
    max_body_size: Option<ByteSize>,
    tls: Option<TlsSettings>,
    /// Breaker name (the `breaker` label) → dot path of its state in the JSON body.
    paths: BTreeMap<String, String>,
}

/// An HTTP(S) GET that must answer as expected.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// The `check` label.
    pub name: String,
    pub url: Template,
    pub headers: Vec<(HeaderName, Template)>,
    /// Statuses that count as healthy (after redirects).
    pub expect_status: Vec<u16>,
    /// What the body must match, as a scenario `expect`.
    pub expect: Option<Matcher>,
    pub timeout: Duration,
    pub interval: Duration,
    pub max_body_size: usize,
    /// Dot path of the deployed version in the JSON body.
    pub version_path: Option<Vec<String>>,
    /// The version that should be live; expanded at every check.
    pub expected_version: Option<Template>,
    pub tls: TlsSettings,
}

/// The service's own breakers, read from one JSON document.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteBreakers {
    pub url: Template,
    pub headers: Vec<(HeaderName, Template)>,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_body_size: usize,
    pub tls: TlsSettings,
    /// Breaker name → path of its state, in name order.
    pub paths: Vec<(String, Vec<String>)>,
}

/// Splits a dot path (`circuit_breakers.auth.state`, `items.0.id`).
fn split_path(path: &str) -> Result<Vec<String>, String> {
    crate::util::json::split_path(path, "`version` or `build.git_commit`")
}

// ---------------------------------------------------------------------------------------
// health

/// Resolves a target's `health` list; `tls` is the target's, inherited without its
/// `server_name` (which names the WebSocket host).
pub(crate) fn resolve_checks(
    at: &str,
    raw: &[RawHealthCheck],
    interval: Duration,
    tls: &TlsSettings,
    problems: &mut Vec<String>,
) -> Vec<HealthCheck> {
    let mut checks = Vec::new();
    let mut reports_version: Option<(usize, &str)> = None;
    for (i, c) in raw.iter().enumerate() {
        let here = format!("{at}.health[{i}]");
        let before = problems.len();
        if !is_valid_name(&c.name) {
            problems.push(format!(
                "{here}.name: `{}` is not a valid name (1 to 63 characters from a-z, 0-9, `_` and `-`)",
                shown(&c.name)
            ));
        } else if let Some(j) = raw[..i].iter().position(|o| o.name == c.name) {
            problems.push(format!("{here}.name: `{}` is already the name of health[{j}]", c.name));
        }
        let url = check_url(&format!("{here}.url"), &c.url, problems);
        let headers = check_headers(&format!("{here}.headers"), &c.headers, problems);
        let expect_status = c.expect_status.clone().unwrap_or_else(|| vec![200]);
        if expect_status.is_empty() {
            problems.push(format!("{here}.expect_status: list at least one status"));
        }
        for s in expect_status.iter().filter(|s| !(100..=599).contains(*s)) {
            problems.push(format!("{here}.expect_status: {s} is not an HTTP status (100 to 599)"));
        }
        let expect = c
            .expect
            .as_ref()
            .and_then(|m| Matcher::compile(m).map_err(|e| problems.push(format!("{here}.expect: {e}"))).ok());
        bounds::check(&format!("{here}.timeout"), c.timeout, bounds::DEADLINE, problems);
        bounds::check(&format!("{here}.interval"), c.interval, bounds::INTERVAL, problems);
        let max_body_size = body_limit(&format!("{here}.max_body_size"), c.max_body_size, problems);
        let version_path = c
            .version_path
            .as_deref()
            .and_then(|p| split_path(p).map_err(|e| problems.push(format!("{here}.version_path: {e}"))).ok());
        if c.version_path.is_some() {
            match reports_version {
                Some((j, name)) => problems.push(format!(
                    "{here}.version_path: only one health check per target can report the deployed version (health[{j}] `{name}` does)"
                )),
                None => reports_version = Some((i, &c.name)),
            }
        }
        if let Some(expected) = &c.expected_version {
            if c.version_path.is_none() {
                problems.push(format!(
                    "{here}.expected_version: needs `version_path`, the place of the live version in the body"
                ));
            }
            // Files may appear with the first deploy; variables are the environment's now.
            for name in expected.variables().filter(|v| !BUILTINS.contains(v)) {
                if std::env::var_os(name).is_none() {
                    problems.push(format!(
                        "{here}.expected_version: environment variable `{}` is not set",
                        shown(name)
                    ));
                }
            }
        }
        let check_tls = check_tls(&here, c.tls.as_ref(), url.as_ref(), tls, problems);
        if problems.len() > before {
            continue;
        }
        checks.push(HealthCheck {
            name: c.name.clone(),
            url: c.url.clone(),
            headers,
            expect_status,
            expect,
            timeout: c.timeout.map_or(DEFAULT_HEALTH_TIMEOUT, HumanDuration::get),
            interval: c.interval.map_or(interval, HumanDuration::get),
            max_body_size,
            version_path,
            expected_version: c.expected_version.clone(),
            tls: check_tls,
        });
    }
    checks
}

/// Resolves a target's `remote_breakers`.
pub(crate) fn resolve_remote(
    at: &str,
    raw: Option<&RawRemoteBreakers>,
    tls: &TlsSettings,
    problems: &mut Vec<String>,
) -> Option<RemoteBreakers> {
    let r = raw?;
    let here = format!("{at}.remote_breakers");
    let before = problems.len();
    let url = check_url(&format!("{here}.url"), &r.url, problems);
    let headers = check_headers(&format!("{here}.headers"), &r.headers, problems);
    bounds::check(&format!("{here}.interval"), r.interval, bounds::INTERVAL, problems);
    bounds::check(&format!("{here}.timeout"), r.timeout, bounds::DEADLINE, problems);
    let max_body_size = body_limit(&format!("{here}.max_body_size"), r.max_body_size, problems);
    if r.paths.is_empty() {
        problems.push(format!(
            "{here}.paths: name at least one breaker, e.g. `auth: circuit_breakers.auth.state`"
        ));
    }
    let mut paths = Vec::new();
    for (name, path) in &r.paths {
        let shown_name = shown(name);
        if !is_valid_name(name) {
            problems.push(format!(
                "{here}.paths.{shown_name}: `{shown_name}` is not a valid breaker name (1 to 63 characters from a-z, 0-9, `_` and `-`)"
            ));
        }
        match split_path(path) {
            Ok(p) => paths.push((name.clone(), p)),
            Err(e) => problems.push(format!("{here}.paths.{shown_name}: {e}")),
        }
    }
    let tls = check_tls(&here, r.tls.as_ref(), url.as_ref(), tls, problems);
    if problems.len() > before {
        return None;
    }
    Some(RemoteBreakers {
        url: r.url.clone(),
        headers,
        interval: r.interval.map_or(DEFAULT_REMOTE_INTERVAL, HumanDuration::get),
        timeout: r.timeout.map_or(DEFAULT_REMOTE_TIMEOUT, HumanDuration::get),
        max_body_size,
        tls,
        paths,
    })
}

/// `fail_on_drift` without an expected version could never fail: say so.
pub(crate) fn check_drift_gate(
    at: &str,
    fail_on_drift: bool,
    checks: &[HealthCheck],
    problems: &mut Vec<String>,
) {
    if fail_on_drift && !checks.iter().any(|c| c.expected_version.is_some()) {
        problems.push(format!(
            "{at}.fail_on_drift: no health check has `expected_version`, so there is no drift to fail on"
        ));
    }
}

fn body_limit(field: &str, value: Option<ByteSize>, problems: &mut Vec<String>) -> usize {
    if value.is_some_and(|v| v.0 == 0) {
        problems.push(format!("{field}: must be at least 1B"));
    }
    if let Some(v) = value.filter(|v| v.0 > crate::util::bounds::MAX_HELD_BYTES) {
        let most = ByteSize(crate::util::bounds::MAX_HELD_BYTES);
        problems.push(format!("{field}: {v} is too large (at most {most}: a body is held whole)"));
    }
    usize::try_from(value.unwrap_or(DEFAULT_MAX_BODY_SIZE).0).unwrap_or(usize::MAX)
}

/// Expands and parses an HTTP URL as the check will; reports what is wrong under `field`.
fn check_url(field: &str, url: &Template, problems: &mut Vec<String>) -> Option<HttpUrl> {
    match url.expand() {
        Ok(expanded) => match parse_http_url(&expanded) {
            Ok(u) => Some(u),
            // A substituted value may be a secret: show the url as written.
            Err(why) if url.has_substitutions() => {
                problems.push(format!("{field}: `{}` {why}", shown(url.source())));
                None
            }
            Err(why) => {
                problems.push(format!("{field}: `{}` {why}", shown(&without_userinfo(&expanded))));
                None
            }
        },
        Err(e) => {
            problems.push(format!("{field}: {e}"));
            None
        }
    }
}

fn check_headers(
    field: &str,
    headers: &BTreeMap<String, Template>,
    problems: &mut Vec<String>,
) -> Vec<(HeaderName, Template)> {
    crate::util::headers::check_headers(field, headers, problems, |header| {
        RESERVED_HTTP_HEADERS
            .contains(&header.as_str())
            .then(|| "set by the health-check client itself".to_owned())
    })
}

/// The TLS settings of a check: its own, else the target's without `server_name`.
fn check_tls(
    here: &str,
    own: Option<&TlsSettings>,
    url: Option<&HttpUrl>,
    target: &TlsSettings,
    problems: &mut Vec<String>,
) -> TlsSettings {
    let Some(own) = own else {
        return TlsSettings { server_name: None, ..target.clone() };
    };
    if url.is_some_and(|u| !u.secure) {
        problems.push(format!("{here}.tls: TLS settings given but the url is http:// (use https://)"));
    }
    crate::net::tls::check_settings(here, own, problems);
    own.clone()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_need_every_segment() {
        assert_eq!(split_path("a.b.0").unwrap(), ["a", "b", "0"]);
        assert!(split_path("a..b").is_err());
        assert!(split_path("").is_err());
    }
}
