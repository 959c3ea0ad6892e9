//! The top-level `labels:` map: who this instance is (a location, a shard's replica),
//! added to every alert wsprobe sends and exported as `wsprobe_instance_info`.
//!
//! Names follow Prometheus' label-name rules, without the reserved `__` prefix, and may not
//! be one of the labels an alert already carries (a location must not overwrite the
//! target). Values are plain text of bounded length: they reach Alertmanager and chat.

use std::collections::BTreeMap;

use crate::util::text::shown;

/// The most labels an instance may carry.
pub const MAX_LABELS: usize = 16;
/// The longest label value, in characters.
pub const MAX_VALUE_CHARS: usize = 128;
/// Labels every alert already has (or may have); an instance label may not replace them.
pub const RESERVED: [&str; 5] = ["alertname", "target", "severity", "phase", "step"];

/// Checks the map as written; returns it when every entry is usable.
pub fn check(raw: &BTreeMap<String, String>, problems: &mut Vec<String>) -> BTreeMap<String, String> {
    let before = problems.len();
    if raw.len() > MAX_LABELS {
        problems.push(format!("labels: {} labels given, at most {MAX_LABELS} are allowed", raw.len()));
    }
    for (name, value) in raw {
        let at = format!("labels.{}", shown(name));
        if !is_label_name(name) {
            problems.push(format!(
                "{at}: not a valid Prometheus label name (a letter or `_`, then letters, digits or `_`)"
            ));
        } else if name.starts_with("__") {
            problems.push(format!("{at}: names starting with `__` are reserved by Prometheus"));
        } else if RESERVED.contains(&name.as_str()) {
            problems.push(format!(
                "{at}: `{name}` is a label wsprobe's alerts set themselves; choose another name"
            ));
        }
        if value.is_empty() {
            problems.push(format!("{at}: the value is empty (an empty label is the same as no label)"));
        } else if value.chars().count() > MAX_VALUE_CHARS {
            problems.push(format!("{at}: the value is longer than {MAX_VALUE_CHARS} characters"));
        } else if value.chars().any(char::is_control) {
            problems.push(format!("{at}: the value `{}` contains control characters", shown(value)));
        }
    }
    if problems.len() > before {
        BTreeMap::new()
    } else {
        raw.clone()
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the Prometheus label-name grammar.
pub fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
