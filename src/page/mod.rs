//! The HTML status page: `GET /` (every target at a glance) and `GET /targets/NAME` (one
//! target in detail), rendered on the server from the state snapshot, the history and
//! the alerts the API serves.
//!
//! Pages are self-contained: one document with its stylesheet inlined, pictures as
//! inline SVG, no script, no external asset (the API's Content-Security-Policy forbids
//! them). They refresh themselves with a meta refresh, follow `prefers-color-scheme`,
//! reflow to cards on narrow screens, and use table headers, captions and labels so a
//! screen reader can follow them. Every string not written here goes through
//! [`escape::Esc`].

mod alerts;
pub mod escape;
mod format;
mod overview;
mod sessions;
mod status;
mod svg;
mod target;

use std::fmt::Write as _;

use crate::detect::Alert;
use crate::history::Histories;
use crate::state::Snapshot;

pub use status::PageState;

use escape::Esc;

/// The stylesheet, inlined in every page.
const STYLE: &str = include_str!("style.css");
/// Seconds between automatic reloads.
const REFRESH_SECONDS: u32 = 15;

/// What a page is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub snapshot: &'a Snapshot,
    pub histories: &'a Histories,
    pub alerts: &'a [Alert],
    /// Unix seconds, for ages and the availability strip.
    pub now: f64,
}

/// `GET /`.
pub fn overview(inputs: &Inputs<'_>) -> String {
    let mut out = String::with_capacity(4096 + inputs.snapshot.targets.len() * 3072);
    head(&mut out, "wsprobe status");
    overview::body(&mut out, inputs);
    foot(&mut out);
    out
}

/// `GET /targets/NAME`; `None` for a target not configured.
pub fn target(inputs: &Inputs<'_>, name: &str) -> Option<String> {
    let status = inputs.snapshot.targets.iter().find(|t| t.info.name == name)?;
    let mut out = String::with_capacity(32 * 1024);
    head(&mut out, &format!("{name} · wsprobe"));
    target::body(&mut out, inputs, status);
    foot(&mut out);
    Some(out)
}

/// The page for a target that is not configured.
pub fn not_found(name: &str) -> String {
    let mut out = String::new();
    head(&mut out, "Not found · wsprobe");
    let _ = write!(
        out,
        r#"<header><p class="crumbs"><a href="/">← all targets</a></p><h1>No target named <code>{}</code></h1></header>
<main><p>It is not in the configuration. The <a href="/">overview</a> lists every target.</p></main>"#,
        Esc(name)
    );
    foot(&mut out);
    out
}

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>{}</title>
<style>{STYLE}</style>
</head>
<body>
"#,
        Esc(title)
    );
}

fn foot(out: &mut String) {
    let _ = write!(
        out,
        r#"<footer><p>wsprobe {} · refreshes every {REFRESH_SECONDS} s · <a href="/api/targets">/api/targets</a> · <a href="/api/alerts">/api/alerts</a> · <a href="/metrics">/metrics</a></p></footer>
</body>
</html>
"#,
        env!("CARGO_PKG_VERSION")
    );
}
