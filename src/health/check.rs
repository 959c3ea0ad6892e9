//! One health check: the GET, then the judgement of its answer (status, body, version).

use std::sync::Arc;
use std::time::SystemTime;

use rustls::ClientConfig;
use serde_json::Value;

use super::{drift, http, unix, HealthCheck, HealthReason, HealthResult};
use crate::util::matcher::{lookup, Matcher, Received};
use crate::util::redact::Redactor;
use crate::util::template::Vars;
use crate::util::text::escape_control;

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
        let endpoint = http::Endpoint {
            url: &c.url,
            headers: &c.headers,
            timeout: c.timeout,
            max_body_size: c.max_body_size,
            tls: &self.tls,
            server_name: c.tls.server_name.as_deref(),
        };
        let outcome = http::fetch(&endpoint, target, &mut secrets, &mut timings).await;
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

/// `application/json`, `application/problem+json`, with or without parameters.
pub(super) fn is_json_type(content_type: &str) -> bool {
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
                    Some(got) if !crate::util::json::values_equal(got, want) => {
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
