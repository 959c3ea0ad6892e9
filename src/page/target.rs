//! `GET /targets/NAME`: one target in detail: its state and last probe, its alerts,
//! phase and step timings against the median of the probes kept, the last results,
//! breaker transitions, deployed against expected version over time, health checks.

use std::fmt::Write as _;

use super::escape::Esc;
use super::format::{ago, secs, when};
use super::{alerts, svg, Inputs, PageState};
use crate::history::TargetHistory;
use crate::probe::{Phase, ProbeResult};
use crate::state::TargetStatus;

pub fn body(out: &mut String, inputs: &Inputs<'_>, t: &TargetStatus) {
    let name = &t.info.name;
    let history = inputs.histories.get(name).map(|h| &**h);
    let state = PageState::of(t);
    let _ = write!(
        out,
        r#"<header><p class="crumbs"><a href="/">← all targets</a></p><h1 data-target="{0}" data-state="{1}">{0} <span class="state {1}">{2}</span></h1><p class="url"><code>{3}</code> every {4}</p></header>
<main>"#,
        Esc(name),
        state.as_str(),
        state.label(),
        Esc(&t.info.url),
        secs(t.info.interval_seconds),
    );
    summary(out, inputs, t);
    let mine: Vec<_> = inputs.alerts.iter().filter(|a| a.key.target == *name).collect();
    alerts::section(out, &mine, inputs.now, false);
    if let Some(r) = &t.last_result {
        timings(out, r, history);
    }
    results(out, history);
    transitions(out, history);
    versions(out, history);
    health(out, t);
    super::sessions::section(out, t.sessions.as_ref(), inputs.now);
    out.push_str("</main>\n");
}

fn summary(out: &mut String, inputs: &Inputs<'_>, t: &TargetStatus) {
    out.push_str(r#"<section aria-labelledby="now-h"><h2 id="now-h">Now</h2><dl class="facts">"#);
    match &t.last_result {
        None => out.push_str("<dt>Last probe</dt><dd>none yet</dd>"),
        Some(r) => {
            let verdict = if r.success { "succeeded" } else { "failed" };
            let _ = write!(
                out,
                r#"<dt>Last probe</dt><dd><time datetime="{}">{}</time> ({}), {verdict} in {}</dd>"#,
                Esc(&crate::alerting::rfc3339_unix(r.started_at)),
                Esc(&when(r.started_at)),
                Esc(&ago(r.started_at, inputs.now)),
                secs(r.duration_seconds)
            );
            if let Some(reason) = r.reason {
                let _ = write!(out, r#"<dt>Reason</dt><dd><code class="reason">{}</code>"#, reason.as_str());
                if let Some(p) = r.phase {
                    let _ = write!(out, " in {}", p.as_str());
                }
                if let Some(step) = &r.step {
                    let _ = write!(out, " (step <code>{}</code>)", Esc(step));
                }
                out.push_str("</dd>");
            }
            if let Some(m) = &r.message {
                let _ = write!(out, r#"<dt>Message</dt><dd class="message">{}</dd>"#, Esc(m));
            }
            if let Some(s) = r.http_status {
                let _ = write!(out, "<dt>HTTP status</dt><dd>{s}</dd>");
            }
            if let Some(c) = r.close_code {
                let _ = write!(out, "<dt>Close code</dt><dd>{c}</dd>");
            }
            out.push_str("<dt>Phases</dt><dd>");
            svg::waterfall(out, r, 320);
            out.push_str("</dd>");
        }
    }
    let p = &t.probes;
    let _ = write!(
        out,
        "<dt>Probes</dt><dd>{} ok, {} failed, {} skipped; {} failed in a row</dd>",
        p.success, p.failure, p.skipped, t.consecutive_failures
    );
    if let Some(c) = &t.watched.circuit {
        let _ = write!(
            out,
            r#"<dt>Circuit</dt><dd><span class="circuit {0}">{0}</span> since {1}: {2} ({3} transitions)</dd>"#,
            c.state.as_str(),
            Esc(&when(c.since)),
            Esc(&c.reason),
            c.transitions
        );
    }
    if let Some(d) = &t.watched.deployment {
        let _ = write!(
            out,
            "<dt>Version</dt><dd>deployed <code>{}</code>, expected <code>{}</code>",
            Esc(d.live_version.as_deref().unwrap_or("?")),
            Esc(d.expected_version.as_deref().unwrap_or("?"))
        );
        if d.drift == Some(true) {
            let since = d.drift_since.map(|s| format!(" since {}", when(s))).unwrap_or_default();
            let _ = write!(out, r#" <span class="state drift">drift{}</span>"#, Esc(&since));
        }
        out.push_str("</dd>");
    }
    out.push_str(r#"<dt>Last 24 h</dt><dd>"#);
    svg::strip(out, inputs.histories.get(&t.info.name).map(|h| &**h), inputs.now, 384);
    out.push_str("</dd></dl></section>");
}

/// Last probe's phases and steps against the median of the successful probes kept.
fn timings(out: &mut String, r: &ProbeResult, h: Option<&TargetHistory>) {
    let kept = h.map_or(0, |h| h.results.iter().filter(|e| e.success).count());
    let _ = write!(
        out,
        r#"<section aria-labelledby="timings-h"><h2 id="timings-h">Timings against baseline</h2>
<table class="timings"><caption>The last probe against the median of the {kept} successful probes kept.</caption>
<thead><tr><th scope="col">Phase or step</th><th scope="col">Last</th><th scope="col">Median</th><th scope="col">Ratio</th></tr></thead><tbody>"#
    );
    let line = |out: &mut String, label: String, last: Option<f64>, median: Option<f32>| {
        let ratio = match (last, median) {
            (Some(l), Some(m)) if m > 0.0 => format!("{:.1}×", l / f64::from(m)),
            _ => "—".to_owned(),
        };
        // As the detector judges a regression: half again as slow and noticeably so.
        let slow = matches!((last, median), (Some(l), Some(m)) if m > 0.0 && l / f64::from(m) >= 1.5 && l - f64::from(m) >= 0.02);
        let _ = write!(
            out,
            r#"<tr{}><th scope="row">{label}</th><td data-label="Last">{}</td><td data-label="Median">{}</td><td data-label="Ratio">{ratio}</td></tr>"#,
            if slow { r#" class="slow""# } else { "" },
            last.map_or_else(|| "—".to_owned(), secs),
            median.map_or_else(|| "—".to_owned(), |m| secs(f64::from(m))),
        );
    };
    for p in Phase::ALL {
        let last = r.phases.get(p);
        let median = h.and_then(|h| h.phase_median(p));
        if last.is_some() || median.is_some() {
            line(out, p.as_str().to_owned(), last, median);
        }
    }
    for (i, s) in r.steps.iter().enumerate() {
        let median = h.filter(|h| h.step_names.get(i) == Some(&s.name)).and_then(|h| h.step_median(i));
        let last = s.ok.then_some(s.duration_seconds);
        line(out, format!("step <code>{}</code>", Esc(&s.name)), last, median);
    }
    out.push_str("</tbody></table></section>");
}

fn results(out: &mut String, h: Option<&TargetHistory>) {
    out.push_str(
        r#"<section aria-labelledby="results-h"><h2 id="results-h">Recent probes</h2>
<table class="results cards"><caption>Newest first.</caption><thead><tr><th scope="col">Started</th><th scope="col">Result</th><th scope="col">Reason</th><th scope="col">Message</th><th scope="col">HTTP</th><th scope="col">Close</th><th scope="col">Duration</th></tr></thead><tbody>"#,
    );
    let entries = h.map(|h| h.results.iter().rev().collect::<Vec<_>>()).unwrap_or_default();
    if entries.is_empty() {
        out.push_str(r#"<tr><td colspan="7" class="quiet">No probe has finished yet.</td></tr>"#);
    }
    for e in entries {
        let (class, word) = if e.success { ("ok", "ok") } else { ("failing", "failed") };
        let _ = write!(
            out,
            r#"<tr class="{class}"><th scope="row"><time datetime="{}">{}</time></th><td data-label="Result"><span class="state {class}">{word}</span></td><td data-label="Reason">"#,
            Esc(&crate::alerting::rfc3339_unix(e.at)),
            Esc(&when(e.at))
        );
        if let Some(reason) = e.reason {
            let _ = write!(out, r#"<code class="reason">{}</code>"#, reason.as_str());
            if let Some(p) = e.phase {
                let _ = write!(out, " in {}", p.as_str());
            }
            if let Some(step) = &e.step {
                let _ = write!(out, " <code>{}</code>", Esc(step));
            }
        }
        let opt = |v: Option<u16>| v.map_or_else(String::new, |v| v.to_string());
        let _ = write!(
            out,
            r#"</td><td data-label="Message" class="message">{}</td><td data-label="HTTP">{}</td><td data-label="Close">{}</td><td data-label="Duration">{}</td></tr>"#,
            Esc(e.message.as_deref().unwrap_or("")),
            opt(e.http_status),
            opt(e.close_code),
            secs(f64::from(e.seconds))
        );
    }
    out.push_str("</tbody></table></section>");
}

fn transitions(out: &mut String, h: Option<&TargetHistory>) {
    out.push_str(
        r#"<section aria-labelledby="breaker-h"><h2 id="breaker-h">Circuit breaker transitions</h2>"#,
    );
    let list = h.map(|h| h.transitions.iter().rev().collect::<Vec<_>>()).unwrap_or_default();
    if list.is_empty() {
        out.push_str(r#"<p class="quiet">No transition seen.</p></section>"#);
        return;
    }
    out.push_str(r#"<table class="transitions cards"><caption>Newest first.</caption><thead><tr><th scope="col">At</th><th scope="col">From</th><th scope="col">To</th><th scope="col">Why</th></tr></thead><tbody>"#);
    for t in list {
        let _ = write!(
            out,
            r#"<tr><th scope="row">{}</th><td data-label="From">{}</td><td data-label="To"><span class="circuit {2}">{2}</span></td><td data-label="Why">{3}</td></tr>"#,
            Esc(&when(t.at)),
            t.from.as_str(),
            t.to.as_str(),
            Esc(&t.reason)
        );
    }
    out.push_str("</tbody></table></section>");
}

fn versions(out: &mut String, h: Option<&TargetHistory>) {
    let list = h.map(|h| h.versions.iter().rev().collect::<Vec<_>>()).unwrap_or_default();
    if list.is_empty() {
        return;
    }
    out.push_str(r#"<section aria-labelledby="versions-h"><h2 id="versions-h">Deployed and expected version</h2><table class="versions cards"><caption>Each change as read, newest first.</caption><thead><tr><th scope="col">Since</th><th scope="col">Deployed</th><th scope="col">Expected</th><th scope="col">Drift</th></tr></thead><tbody>"#);
    for v in list {
        let drift = match v.drift {
            Some(true) => r#"<span class="state drift">drift</span>"#,
            Some(false) => "no",
            None => "unknown",
        };
        let _ = write!(
            out,
            r#"<tr><th scope="row">{}</th><td data-label="Deployed"><code>{}</code></td><td data-label="Expected"><code>{}</code></td><td data-label="Drift">{drift}</td></tr>"#,
            Esc(&when(v.at)),
            Esc(v.live.as_deref().unwrap_or("?")),
            Esc(v.expected.as_deref().unwrap_or("?")),
        );
    }
    out.push_str("</tbody></table></section>");
}

fn health(out: &mut String, t: &TargetStatus) {
    if t.watched.health.is_empty() {
        return;
    }
    out.push_str(r#"<section aria-labelledby="health-h"><h2 id="health-h">Health checks</h2><table class="health cards"><thead><tr><th scope="col">Check</th><th scope="col">Result</th><th scope="col">HTTP</th><th scope="col">Duration</th><th scope="col">Message</th></tr></thead><tbody>"#);
    for c in &t.watched.health {
        let (class, word) = if c.success { ("ok", "ok") } else { ("failing", "failed") };
        let _ = write!(
            out,
            r#"<tr><th scope="row">{}</th><td data-label="Result"><span class="state {class}">{word}</span>{}</td><td data-label="HTTP">{}</td><td data-label="Duration">{}</td><td data-label="Message" class="message">{}</td></tr>"#,
            Esc(&c.check),
            c.reason.map(|r| format!(r#" <code class="reason">{}</code>"#, r.as_str())).unwrap_or_default(),
            c.http_status.map_or_else(String::new, |s| s.to_string()),
            secs(c.duration_seconds),
            Esc(c.message.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table></section>");
}
