//! Matching received messages: JSON paths, regular expressions, alternatives.
//!
//! A matcher is a set of conditions that must all hold (`json`, `json_exists`, `text`), or
//! `any_of` a list of matchers. JSON paths are dot-separated keys, with numeric segments
//! indexing arrays: `data.event`, `items.0.id`.

use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use serde_json::Value;

use crate::util::json::values_equal;
use crate::util::redact::Redactor;
use crate::util::text::escape_control;
/// The longest `text` pattern accepted: patterns are written by hand, and the regex
/// parser's memory grows with the pattern (a 10 MB one took nearly 1 GB).
pub(crate) const MAX_PATTERN_LEN: usize = 4096;
/// What one compiled pattern, and each lazy DFA cache it builds, may take: 2 MiB.
const REGEX_SIZE_LIMIT: usize = 2 << 20;

/// A matcher as written in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatcher {
    /// Path → expected value; every path must hold that value.
    #[serde(default)]
    pub json: BTreeMap<String, serde_norway::Value>,
    /// Paths that must be present (any value, `null` included).
    #[serde(default)]
    pub json_exists: Vec<String>,
    /// A regular expression a text message must match.
    pub text: Option<String>,
    /// Any one of these matchers.
    pub any_of: Option<Vec<RawMatcher>>,
}

/// A compiled matcher.
#[derive(Debug, Clone)]
pub enum Matcher {
    All { json: Vec<(Vec<String>, Value)>, exists: Vec<Vec<String>>, text: Option<Regex> },
    AnyOf(Vec<Matcher>),
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Matcher::All { json: a, exists: b, text: c }, Matcher::All { json: x, exists: y, text: z }) => {
                a == x && b == y && c.as_ref().map(Regex::as_str) == z.as_ref().map(Regex::as_str)
            }
            (Matcher::AnyOf(a), Matcher::AnyOf(b)) => a == b,
            _ => false,
        }
    }
}

/// A received data message, parsed at most once for all the matchers that look at it.
#[derive(Debug)]
pub struct Received<'a> {
    pub text: Option<&'a str>,
    pub binary_len: usize,
    json: Option<Value>,
}

impl<'a> Received<'a> {
    /// Views a data frame; control frames look like empty binary messages.
    pub fn of(msg: &'a tokio_tungstenite::tungstenite::Message) -> Self {
        use tokio_tungstenite::tungstenite::Message;
        match msg {
            Message::Text(t) => Self::text(t.as_str()),
            Message::Binary(b) => Self::binary(b.len()),
            _ => Self::binary(0),
        }
    }

    /// The message itself, shortened, for reporting an error message the server sent:
    /// redacted before the cut, so no part of a secret survives it.
    pub fn excerpt(&self, max: usize, redactor: &Redactor) -> String {
        match self.text {
            Some(text) => redactor.excerpt(text, max),
            None => format!("binary message of {} bytes", self.binary_len),
        }
    }

    pub fn text(text: &'a str) -> Self {
        Self { text: Some(text), binary_len: 0, json: serde_json::from_str(text).ok() }
    }
    pub fn binary(len: usize) -> Self {
        Self { text: None, binary_len: len, json: None }
    }
    pub fn json(&self) -> Option<&Value> {
        self.json.as_ref()
    }

    /// A short, safe description for failure messages: the JSON `type` if any, else the
    /// first bytes of the text.
    /// Secrets are redacted before the cut and the quoting.
    pub fn preview(&self, redactor: &Redactor) -> String {
        if let Some(t) = self.json.as_ref().and_then(|v| v.get("type")).and_then(Value::as_str) {
            return format!("type={}", escape_control(&redactor.excerpt(t, 40)));
        }
        match self.text {
            Some(text) => format!("{:?}", redactor.excerpt(text, 40)),
            None => format!("binary {} bytes", self.binary_len),
        }
    }
}

impl Matcher {
    /// Compiles a matcher; the error completes "`<field>`: ...".
    pub fn compile(raw: &RawMatcher) -> Result<Self, String> {
        if let Some(list) = &raw.any_of {
            if !raw.json.is_empty() || !raw.json_exists.is_empty() || raw.text.is_some() {
                return Err("`any_of` cannot be combined with other conditions in the same matcher".into());
            }
            if list.is_empty() {
                return Err("`any_of` needs at least one matcher".into());
            }
            let compiled = list
                .iter()
                .enumerate()
                .map(|(i, m)| Matcher::compile(m).map_err(|e| format!("any_of[{i}]: {e}")))
                .collect::<Result<_, _>>()?;
            return Ok(Matcher::AnyOf(compiled));
        }
        if raw.json.is_empty() && raw.json_exists.is_empty() && raw.text.is_none() {
            return Err("a matcher needs at least one of `json`, `json_exists`, `text`, `any_of`".into());
        }
        let mut json = Vec::new();
        for (path, value) in &raw.json {
            let value = serde_json::to_value(value)
                .map_err(|e| format!("json.{}: {e}", crate::util::text::shown(path)))?;
            json.push((split_path(path)?, value));
        }
        let exists = raw.json_exists.iter().map(|p| split_path(p)).collect::<Result<_, _>>()?;
        let text = raw.text.as_deref().map(compile_regex).transpose()?;
        Ok(Matcher::All { json, exists, text })
    }

    pub fn matches(&self, msg: &Received<'_>) -> bool {
        match self {
            Matcher::AnyOf(list) => list.iter().any(|m| m.matches(msg)),
            Matcher::All { json, exists, text } => {
                if let Some(re) = text {
                    if !msg.text.is_some_and(|t| re.is_match(t)) {
                        return false;
                    }
                }
                if json.is_empty() && exists.is_empty() {
                    return true;
                }
                let Some(doc) = msg.json() else { return false };
                json.iter().all(|(path, want)| lookup(doc, path).is_some_and(|got| values_equal(got, want)))
                    && exists.iter().all(|path| lookup(doc, path).is_some())
            }
        }
    }
}

/// Compiles a `text` pattern within the length and size limits; the error completes
/// "`<field>`: ...".
fn compile_regex(re: &str) -> Result<Regex, String> {
    let shown = crate::util::text::shown(re);
    if re.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "text: `{shown}` is longer than {MAX_PATTERN_LEN} bytes, the most a pattern may be"
        ));
    }
    RegexBuilder::new(re)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("text: `{shown}` is not a valid regular expression ({})", regex_reason(&e)))
}

/// The regex crate's error is a multi-line drawing; configuration errors are one line each.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid");
    last.trim().trim_start_matches("error: ").to_owned()
}

fn split_path(path: &str) -> Result<Vec<String>, String> {
    crate::util::json::split_path(path, "`data.event` or `items.0.id`")
}

/// Follows a path through objects and arrays.
pub(crate) fn lookup<'v>(doc: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(doc, |node, key| match node {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(yaml: &str) -> Matcher {
        Matcher::compile(&serde_norway::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn json_paths_nested_and_indexed() {
        let msg =
            Received::text(r#"{"type":"system_message","data":{"event":"x","n":1},"items":[{"id":7}]}"#);
        assert!(m("json: { data.event: x, items.0.id: 7, data.n: 1.0 }").matches(&msg));
        assert!(!m("json: { data.event: y }").matches(&msg));
        assert!(m("json_exists: [items.0.id]").matches(&msg));
        assert!(!m("json_exists: [items.1.id]").matches(&msg));
        assert_eq!(msg.preview(&Redactor::default()), "type=system_message");
    }

    #[test]
    fn text_and_any_of() {
        let msg = Received::text("hello world");
        assert!(m("text: '^hello'").matches(&msg));
        assert!(m("any_of: [ {text: nope}, {text: world} ]").matches(&msg));
        assert!(!m("json: { a: 1 }").matches(&msg));
        assert!(!m("text: x").matches(&Received::binary(3)));
    }

    #[test]
    fn invalid_matchers_are_explained() {
        let err = |y: &str| Matcher::compile(&serde_norway::from_str(y).unwrap()).unwrap_err();
        assert_eq!(err("text: '('"), "text: `(` is not a valid regular expression (unclosed group)");
        assert!(err("json: { 'a..b': 1 }").contains("not a valid path"));
        assert!(err("{}").contains("needs at least one"));
    }
}
