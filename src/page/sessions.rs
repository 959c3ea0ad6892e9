//! The held sessions of a `session:` target, on its page: how many are open against the
//! configured count, the disconnects of the last hour by reason, and one row per session
//! (open since, last message, round trips, last disconnect with its close code).
//!
//! Read from the sessions' JSON form (what `/api/targets` serves), so the page shows
//! exactly what the API does.

use std::fmt::Write as _;

use serde_json::Value;

use super::escape::Esc;
use super::format::{ago, secs, when};

/// Writes the section; nothing for a target without sessions.
pub(super) fn section<T: serde::Serialize>(out: &mut String, sessions: Option<&T>, now: f64) {
    let Some(v) = sessions.and_then(|s| serde_json::to_value(s).ok()) else { return };
    let configured = v["configured"].as_u64().unwrap_or(0);
    let open = v["open"].as_u64().unwrap_or(0);
    let class = if open >= configured { "ok" } else { "failing" };
    let _ = write!(
        out,
        r#"<section aria-labelledby="sessions-h"><h2 id="sessions-h">Held sessions</h2><dl class="facts"><dt>Open</dt><dd><span class="state {class}">{open} of {configured}</span></dd><dt>Disconnects, last hour</dt><dd>{}</dd></dl>"#,
        by_reason(&v["disconnects_last_hour"])
    );
    out.push_str(
        r#"<table class="sessions cards"><caption>One row per held session.</caption><thead><tr><th scope="col">Session</th><th scope="col">State</th><th scope="col">Open since</th><th scope="col">Last message</th><th scope="col">Ping RTT</th><th scope="col">Heartbeat RTT</th><th scope="col">Connects</th><th scope="col">Last disconnect</th></tr></thead><tbody>"#,
    );
    for s in v["sessions"].as_array().into_iter().flatten() {
        let open = s["open"].as_bool().unwrap_or(false);
        let (class, word) = if open { ("ok", "open") } else { ("failing", "reconnecting") };
        let _ = write!(
            out,
            r#"<tr class="{class}"><th scope="row">{}</th><td data-label="State"><span class="state {class}">{word}</span></td><td data-label="Open since">{}</td><td data-label="Last message">{}</td><td data-label="Ping RTT">{}</td><td data-label="Heartbeat RTT">{}</td><td data-label="Connects">{}</td><td data-label="Last disconnect">{}</td></tr>"#,
            s["index"].as_u64().unwrap_or(0),
            time_or_dash(&s["open_since"], now),
            time_or_dash(&s["last_message_at"], now),
            s["last_rtt_seconds"].as_f64().map_or_else(|| "–".to_owned(), secs),
            s["last_heartbeat_rtt_seconds"].as_f64().map_or_else(|| "–".to_owned(), secs),
            s["connects"].as_u64().unwrap_or(0),
            disconnect(&s["last_disconnect"], now),
        );
    }
    out.push_str("</tbody></table></section>");
}

fn by_reason(counts: &Value) -> String {
    let parts: Vec<String> = counts
        .as_object()
        .into_iter()
        .flatten()
        .map(|(reason, n)| {
            format!("<code class=\"reason\">{}</code> {}", Esc(reason), n.as_u64().unwrap_or(0))
        })
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

fn time_or_dash(at: &Value, now: f64) -> String {
    match at.as_f64() {
        Some(t) => format!(r#"<time title="{}">{}</time>"#, Esc(&when(t)), Esc(&ago(t, now))),
        None => "–".to_owned(),
    }
}

fn disconnect(d: &Value, now: f64) -> String {
    if d.is_null() {
        return "–".to_owned();
    }
    let mut s = format!("<code class=\"reason\">{}</code>", Esc(d["reason"].as_str().unwrap_or("?")));
    if let Some(code) = d["close_code"].as_u64() {
        let _ = write!(s, " (close {code})");
    }
    if let Some(lifetime) = d["lifetime_seconds"].as_f64() {
        let _ = write!(s, " after {}", Esc(&secs(lifetime)));
    }
    if let Some(at) = d["at"].as_f64() {
        let _ = write!(s, ", {}", time_or_dash(&Value::from(at), now));
    }
    if let Some(msg) = d["message"].as_str().filter(|m| !m.is_empty()) {
        let _ = write!(s, ": {}", Esc(msg));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_listed_and_server_text_is_escaped() {
        let v = serde_json::json!({
            "configured": 3, "open": 2,
            "disconnects_last_hour": {"unexpected_close": 4},
            "sessions": [
                {"index": 0, "open": true, "open_since": 100.0, "last_message_at": 150.0,
                 "last_rtt_seconds": 0.0021, "last_heartbeat_rtt_seconds": null, "connects": 5,
                 "last_disconnect": {"at": 90.0, "reason": "unexpected_close", "close_code": 1001,
                                     "message": "<script>x</script>", "lifetime_seconds": 60.0}},
                {"index": 1, "open": false, "connects": 1, "last_disconnect": null}
            ]
        });
        let mut out = String::new();
        section(&mut out, Some(&v), 160.0);
        assert!(out.contains("2 of 3"), "{out}");
        assert!(out.contains(r#"<span class="state failing">2 of 3</span>"#), "{out}");
        assert!(out.contains("<code class=\"reason\">unexpected_close</code> 4"), "{out}");
        assert!(out.contains("(close 1001) after 1 min 0 s"), "{out}");
        assert!(out.contains("reconnecting"), "{out}");
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
    }

    #[test]
    fn nothing_without_sessions() {
        let mut out = String::new();
        section::<Value>(&mut out, None, 0.0);
        assert!(out.is_empty());
    }
}
