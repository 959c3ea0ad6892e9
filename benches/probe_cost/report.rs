//! `probe_cost`'s markdown: one summary row per fleet size (medians over the windows,
//! their spread, the ratios to the bare client window by window, wsprobe's own counters
//! between its two scrapes, the machine's load and steal) and a table of every window.

use std::fmt::Write as _;

use crate::support::{self, fleet};
use crate::{Measured, Row};

/// One client's figures in one window.
#[derive(Debug, Clone, Copy)]
struct Window {
    cpu_ns: u64,
    probes: u64,
    secs: f64,
}

impl Window {
    fn per_probe_ms(&self) -> f64 {
        if self.probes == 0 {
            return f64::NAN;
        }
        self.cpu_ns as f64 / 1e6 / self.probes as f64
    }
}

impl Measured {
    fn column(&self, kind: &str) -> Option<usize> {
        self.kinds.iter().position(|k| *k == kind)
    }

    /// `kind`'s figures window by window; `None` when it did not run.
    fn windows_of(&self, kind: &str) -> Option<Vec<Window>> {
        let c = self.column(kind)?;
        Some(
            self.marks
                .windows(2)
                .map(|w| Window {
                    cpu_ns: w[1].readings[c].cpu_ns.saturating_sub(w[0].readings[c].cpu_ns),
                    probes: w[1].readings[c].closed.saturating_sub(w[0].readings[c].closed),
                    secs: w[1].at.duration_since(w[0].at).as_secs_f64(),
                })
                .collect(),
        )
    }

    /// `kind` ÷ bare per probe, window by window.
    fn ratios(&self, kind: &str) -> Option<Vec<f64>> {
        let (a, b) = (self.windows_of(kind)?, self.windows_of("bare")?);
        Some(a.iter().zip(&b).map(|(a, b)| a.per_probe_ms() / b.per_probe_ms()).collect())
    }

    /// Failures `kind` counted over the windows, where it counts them itself.
    fn failed(&self, kind: &str) -> Option<u64> {
        let c = self.column(kind)?;
        let (first, last) = (self.marks.first()?, self.marks.last()?);
        Some(last.readings[c].failed?.saturating_sub(first.readings[c].failed?))
    }
}

fn label(row: Row) -> String {
    format!("{} at {} s ({:.0}/s)", row.targets, row.interval, row.rate())
}

/// "median ms (min–max; % of a core; done of due; failed)" for one client in one row.
fn client_cell(m: &Measured, kind: &str) -> String {
    let Some(ws) = m.windows_of(kind) else { return "–".to_owned() };
    let ms: Vec<f64> = ws.iter().map(Window::per_probe_ms).collect();
    let (lo, hi) = support::min_max(&ms);
    let cpu: u64 = ws.iter().map(|w| w.cpu_ns).sum();
    let done: u64 = ws.iter().map(|w| w.probes).sum();
    let secs: f64 = ws.iter().map(|w| w.secs).sum();
    let failed = m.failed(kind).map_or(String::new(), |f| format!("; {f} failed"));
    format!(
        "{:.3} ms ({lo:.3}–{hi:.3}; {:.0} % of a core; {done} of {:.0} due done{failed}{})",
        support::median(&ms),
        cpu as f64 / 1e9 / secs.max(f64::MIN_POSITIVE) * 100.0,
        m.row.rate() * secs,
        if kind == "wsprobe" { wsprobe_note(m) } else { String::new() }
    )
}

/// wsprobe's own counters between the scrapes just outside the windows, its RSS at the end
/// of the last window and the CPU its warm-up took.
fn wsprobe_note(m: &Measured) -> String {
    let Some(x) = &m.wsprobe else { return String::new() };
    let delta = |name: &str, with: Option<&str>| {
        fleet::sum_samples(&x.after.body, name, with) - fleet::sum_samples(&x.before.body, name, with)
    };
    format!(
        "; between the scrapes ({:.0} s): {:.0} in wsprobe_probes_total, {} closed at its server, {:.0} failed; RSS {:.0} MiB; {:.1} s of CPU in the warm-up",
        x.after.at.duration_since(x.before.at).as_secs_f64(),
        delta("wsprobe_probes_total", None),
        x.after.closed.saturating_sub(x.before.closed),
        delta("wsprobe_probes_total", Some("result=\"failure\"")),
        x.rss_kib as f64 / 1024.0,
        x.warmup_cpu_ns as f64 / 1e9,
    )
}

/// "median× (min–max)" of `kind` ÷ bare over the windows.
fn ratio_cell(m: &Measured, kind: &str) -> String {
    let Some(r) = m.ratios(kind) else { return "–".to_owned() };
    let (lo, hi) = support::min_max(&r);
    format!("{:.2}× ({lo:.2}–{hi:.2})", support::median(&r))
}

fn late_skipped(m: &Measured) -> String {
    let Some(x) = &m.wsprobe else { return "–".to_owned() };
    let delta = |name: &str| {
        if !x.after.body.contains(name) {
            return "(no metric)".to_owned();
        }
        let d =
            fleet::sum_samples(&x.after.body, name, None) - fleet::sum_samples(&x.before.body, name, None);
        format!("{d:.0}")
    };
    format!("{} / {}", delta("wsprobe_probes_late_total"), delta("wsprobe_probes_skipped_total"))
}

fn scrape_cell(m: &Measured) -> String {
    let Some(x) = &m.wsprobe else { return "–".to_owned() };
    format!(
        "{:.1} MB, {:.0} / {:.0} ms",
        x.after.body.len() as f64 / 1e6,
        x.before.took.as_secs_f64() * 1000.0,
        x.after.took.as_secs_f64() * 1000.0
    )
}

fn machine_cell(m: &Measured) -> String {
    let (Some(first), Some(last)) = (m.marks.first(), m.marks.last()) else { return "–".to_owned() };
    let (busy, steal) = first.machine.busy_steal_until(&last.machine);
    format!("load {} → {}; busy {busy:.0} %, steal {steal:.1} %", first.load, last.load)
}

/// The summary table, one row per fleet size.
pub fn summary(measured: &[Measured]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| targets, interval (probes/s) | wsprobe CPU per probe, median (min–max) | bare tokio-tungstenite | Python websockets 17.4 | wsprobe ÷ bare, median of windows | Python ÷ bare | wsprobe late / skipped | /metrics bytes, scrape before / after | machine over the windows |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for m in measured {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            label(m.row),
            client_cell(m, "wsprobe"),
            client_cell(m, "bare"),
            client_cell(m, "python"),
            ratio_cell(m, "wsprobe"),
            ratio_cell(m, "python"),
            late_skipped(m),
            scrape_cell(m),
            machine_cell(m)
        );
    }
    out
}

/// Every window of every row: each client's CPU per probe and probes, the two ratios, and
/// how busy the machine was and how much the hypervisor stole.
pub fn windows(measured: &[Measured]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| targets, interval | window | wsprobe | bare | Python | wsprobe ÷ bare | Python ÷ bare | machine busy, steal |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for m in measured {
        let per = |kind: &str| m.windows_of(kind);
        let (w, b, p) = (per("wsprobe"), per("bare"), per("python"));
        let (rw, rp) = (m.ratios("wsprobe"), m.ratios("python"));
        for k in 0..m.marks.len().saturating_sub(1) {
            let cell = |ws: &Option<Vec<Window>>| {
                ws.as_ref().map_or("–".to_owned(), |ws| {
                    format!("{:.3} ms ({})", ws[k].per_probe_ms(), ws[k].probes)
                })
            };
            let ratio =
                |r: &Option<Vec<f64>>| r.as_ref().map_or("–".to_owned(), |r| format!("{:.2}×", r[k]));
            let (busy, steal) = m.marks[k].machine.busy_steal_until(&m.marks[k + 1].machine);
            let _ = writeln!(
                out,
                "| {} × {} s | {} | {} | {} | {} | {} | {} | {busy:.0} %, {steal:.1} % |",
                m.row.targets,
                m.row.interval,
                k + 1,
                cell(&w),
                cell(&b),
                cell(&p),
                ratio(&rw),
                ratio(&rp)
            );
        }
    }
    out
}
