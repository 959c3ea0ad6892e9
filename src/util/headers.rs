//! Validating configured HTTP headers (targets, health checks, breakers, receivers).

use std::collections::BTreeMap;

use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use super::template::{Template, Vars};
use super::text::shown;

/// Validates configured headers: valid names, no name given twice (case-insensitively),
/// none that `reserved` claims (it returns why), values valid once expanded. A value may
/// be a secret: problems say what is wrong without showing it.
pub(crate) fn check_headers(
    field: &str,
    headers: &BTreeMap<String, Template>,
    problems: &mut Vec<String>,
    reserved: impl Fn(&HeaderName) -> Option<String>,
) -> Vec<(HeaderName, Template)> {
    let mut out: Vec<(HeaderName, Template)> = Vec::new();
    let mut written: Vec<(HeaderName, &String)> = Vec::new();
    for (name, value) in headers {
        let here = format!("{field}.{}", shown(name));
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            problems.push(format!("{here}: not a valid HTTP header name"));
            continue;
        };
        if let Some((_, first)) = written.iter().find(|(h, _)| *h == header) {
            problems.push(format!(
                "{here}: `{}` is the same header (header names are case-insensitive)",
                shown(first)
            ));
            continue;
        }
        written.push((header.clone(), name));
        if let Some(why) = reserved(&header) {
            problems.push(format!("{here}: {why}"));
            continue;
        }
        match value.expand() {
            Ok(v) if HeaderValue::from_str(&v).is_err() => problems
                .push(format!("{here}: the value is not a valid HTTP header value (control characters?)")),
            Ok(_) => out.push((header, value.clone())),
            Err(e) => problems.push(format!("{here}: {e}")),
        }
    }
    out
}

/// Expands configured headers for one request (a probe's upgrade, a health check's GET):
/// every value substituted is pushed onto `secrets`, and a value that came from a
/// substitution is marked sensitive. The error is a sentence naming the header, never its
/// value; the caller gives it its reason.
pub(crate) fn expand_headers(
    headers: &[(HeaderName, Template)],
    vars: &Vars,
    secrets: &mut Vec<String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let v =
            value.expand_with(vars, secrets).map_err(|e| format!("cannot expand header `{name}`: {e}"))?;
        let mut v =
            HeaderValue::from_str(&v).map_err(|_| format!("header `{name}` expands to an invalid value"))?;
        if value.has_substitutions() {
            v.set_sensitive(true);
        }
        out.push((name.clone(), v));
    }
    Ok(out)
}
