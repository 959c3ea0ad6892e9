//! The alerts section, on the overview (every target) and on a target's page.

use std::fmt::Write as _;

use super::escape::Esc;
use super::format::{ago, when};
use crate::detect::{Alert, AlertState};

/// Firing alerts first, then pending ones, each with its description.
pub fn section(out: &mut String, alerts: &[&Alert], now: f64, link_targets: bool) {
    out.push_str(r#"<section class="alerts" aria-labelledby="alerts-h"><h2 id="alerts-h">Alerts</h2>"#);
    if alerts.is_empty() {
        out.push_str(r#"<p class="quiet">No alert is pending or firing.</p></section>"#);
        return;
    }
    let mut sorted: Vec<&Alert> = alerts.to_vec();
    sorted.sort_by_key(|a| a.state != AlertState::Firing);
    out.push_str("<ul>");
    for a in sorted {
        let state = if a.state == AlertState::Firing { "firing" } else { "pending" };
        let since = a.fired_at.unwrap_or(a.active_since);
        let _ = write!(
            out,
            r#"<li class="alert {state}" data-alert="{}" data-target="{}"><p><span class="badge {state}">{state}</span> <strong>{}</strong> "#,
            Esc(a.key.kind.as_str()),
            Esc(&a.key.target),
            Esc(a.key.kind.as_str()),
        );
        if link_targets {
            let _ = write!(out, r#"<a href="/targets/{0}">{0}</a>"#, Esc(&a.key.target));
        }
        if let Some(subject) = &a.key.subject {
            let _ = write!(out, " · {}", Esc(&subject.to_string()));
        }
        let _ = write!(
            out,
            r#" · {} · <time datetime="{}" title="{}">since {}</time></p><p class="summary">{}</p><p class="description">{}</p></li>"#,
            Esc(a.severity.as_str()),
            Esc(&crate::alerting::rfc3339_unix(since)),
            Esc(&when(since)),
            Esc(&ago(since, now)),
            Esc(&a.summary),
            Esc(&a.description),
        );
    }
    out.push_str("</ul></section>");
}
