//! `GET /`: a summary line, the alerts, and one row per target with its state, last
//! probe's phases, a day's availability, a latency sparkline and its version.

use std::fmt::Write as _;

use super::escape::Esc;
use super::format::{ago, secs};
use super::{alerts, svg, Inputs, PageState};
use crate::detect::AlertState;
use crate::state::TargetStatus;

pub fn body(out: &mut String, inputs: &Inputs<'_>) {
    let targets = &inputs.snapshot.targets;
    let states: Vec<PageState> = targets.iter().map(PageState::of).collect();
    let firing = inputs.alerts.iter().filter(|a| a.state == AlertState::Firing).count();
    out.push_str(r#"<header><h1>wsprobe status</h1><p class="counts" id="counts">"#);
    let _ = write!(out, "{} targets", targets.len());
    for s in PageState::ALL {
        let n = states.iter().filter(|x| **x == s).count();
        if n > 0 {
            let _ = write!(out, r#" · <span class="state {}">{n} {}</span>"#, s.as_str(), s.label());
        }
    }
    let _ =
        write!(out, " · {firing} alert{} firing</p></header>\n<main>", if firing == 1 { "" } else { "s" });
    let shown: Vec<_> = inputs.alerts.iter().collect();
    alerts::section(out, &shown, inputs.now, true);
    out.push_str(
        r#"<section aria-labelledby="targets-h"><h2 id="targets-h">Targets</h2>
<table class="targets cards"><caption>Every configured target, most urgent first; the name opens its page.</caption>
<thead><tr><th scope="col">Target</th><th scope="col">State</th><th scope="col">Last probe</th><th scope="col">Phases</th><th scope="col">Last 24 h</th><th scope="col">Duration</th><th scope="col">Version</th></tr></thead>
<tbody>
"#,
    );
    let mut order: Vec<usize> = (0..targets.len()).collect();
    // Stable: within a state, configuration order.
    order.sort_by_key(|&i| PageState::ALL.iter().position(|s| *s == states[i]));
    for i in order {
        row(out, inputs, &targets[i], states[i]);
    }
    out.push_str("</tbody></table></section></main>\n");
}

fn row(out: &mut String, inputs: &Inputs<'_>, t: &TargetStatus, state: PageState) {
    let name = &t.info.name;
    let history = inputs.histories.get(name).map(|h| &**h);
    let _ = write!(
        out,
        r#"<tr data-target="{0}" data-state="{1}"><th scope="row"><a href="/targets/{0}">{0}</a></th><td data-label="State"><span class="state {1}">{2}</span>"#,
        Esc(name),
        state.as_str(),
        state.label()
    );
    if t.consecutive_failures > 1 {
        let _ = write!(out, r#" <span class="note">{} in a row</span>"#, t.consecutive_failures);
    }
    out.push_str(r#"</td><td data-label="Last probe">"#);
    match &t.last_result {
        None => out.push_str(r#"<span class="quiet">—</span>"#),
        Some(r) => {
            let _ = write!(out, "{}", Esc(&ago(r.started_at, inputs.now)));
            if let Some(reason) = r.reason {
                let _ = write!(out, r#"<br><code class="reason">{}</code>"#, reason.as_str());
                if let Some(p) = r.phase {
                    let _ = write!(out, " in {}", p.as_str());
                }
            }
        }
    }
    out.push_str(r#"</td><td data-label="Phases">"#);
    if let Some(r) = &t.last_result {
        svg::waterfall(out, r, 160);
    }
    out.push_str(r#"</td><td data-label="Last 24 h">"#);
    svg::strip(out, history, inputs.now, 192);
    out.push_str(r#"</td><td data-label="Duration">"#);
    svg::sparkline(out, history, 120, 24);
    if let Some(r) = &t.last_result {
        let _ = write!(out, r#" <span class="num">{}</span>"#, secs(r.duration_seconds));
    }
    out.push_str(r#"</td><td data-label="Version">"#);
    match &t.watched.deployment {
        Some(d) => {
            let live = d.live_version.as_deref().unwrap_or("?");
            let _ = write!(out, "<code>{}</code>", Esc(live));
            if d.drift == Some(true) {
                let expected = d.expected_version.as_deref().unwrap_or("?");
                let _ = write!(
                    out,
                    r#" <span class="state drift">expected <code>{}</code></span>"#,
                    Esc(expected)
                );
            }
        }
        None => out.push_str(r#"<span class="quiet">—</span>"#),
    }
    out.push_str("</td></tr>\n");
}
