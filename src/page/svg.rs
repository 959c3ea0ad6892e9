//! The page's pictures as inline SVG: a probe's phases as a waterfall, a day's
//! availability as a strip, probe durations as a sparkline.
//!
//! Each picture is `role="img"` with an `aria-label` that says in words what it shows,
//! and a `<title>` per part for pointer users; colours come from the page's CSS classes,
//! so light and dark mode restyle them.

use std::fmt::Write as _;

use super::escape::Esc;
use super::format::{clock, secs};
use crate::history::{TargetHistory, BUCKETS, BUCKET_SECONDS};
use crate::probe::{Phase, ProbeResult};

/// The phases of `r` laid end to end, `width` wide; the failed phase is marked.
pub fn waterfall(out: &mut String, r: &ProbeResult, width: u32) {
    let parts: Vec<(Phase, f64)> = r.phases.iter().filter(|(_, s)| s.is_finite() && *s >= 0.0).collect();
    let total: f64 = parts.iter().map(|(_, s)| s).sum();
    let words: Vec<String> = parts.iter().map(|(p, s)| format!("{} {}", p.as_str(), secs(*s))).collect();
    let label = if words.is_empty() { "no phase was timed".to_owned() } else { words.join(", ") };
    let _ = write!(
        out,
        r#"<svg class="waterfall" width="{width}" height="14" viewBox="0 0 {width} 14" role="img" aria-label="Phases: {}">"#,
        Esc(&label)
    );
    let mut x = 0.0;
    for (phase, s) in &parts {
        let w = if total > 0.0 { s / total * f64::from(width) } else { 0.0 };
        let failed = !r.success && r.phase == Some(*phase);
        let _ = write!(
            out,
            r#"<rect class="p-{}{}" x="{x:.1}" y="1" width="{:.1}" height="12"><title>{} {}</title></rect>"#,
            phase.as_str(),
            if failed { " failed" } else { "" },
            w.max(1.0),
            phase.as_str(),
            secs(*s)
        );
        x += w;
    }
    out.push_str("</svg>");
}

/// The last 24 hours in [`BUCKET_SECONDS`] slots, runs of the same kind drawn as one bar.
pub fn strip(out: &mut String, h: Option<&TargetHistory>, now: f64, width: u32) {
    let slots = h.map(|h| h.availability(now)).unwrap_or_else(|| vec![None; BUCKETS]);
    let (ok, total) = slots
        .iter()
        .flatten()
        .fold((0u64, 0u64), |(o, t), (a, f)| (o + u64::from(*a), t + u64::from(*a) + u64::from(*f)));
    let label = if total == 0 {
        "Last 24 hours: no probes".to_owned()
    } else {
        format!(
            "Last 24 hours: {} of {total} probes succeeded ({:.1}%)",
            ok,
            ok as f64 * 100.0 / total as f64
        )
    };
    let _ = write!(
        out,
        r#"<svg class="strip" width="{width}" height="14" viewBox="0 0 {width} 14" role="img" aria-label="{label}">"#
    );
    let kind = |s: &Option<(u32, u32)>| match s {
        None => "none",
        Some((_, 0)) => "up",
        Some((0, _)) => "down",
        Some(_) => "some",
    };
    let first_slot = (now as i64).div_euclid(BUCKET_SECONDS) - BUCKETS as i64 + 1;
    let step = f64::from(width) / BUCKETS as f64;
    let mut i = 0;
    while i < slots.len() {
        let k = kind(&slots[i]);
        let mut j = i;
        let (mut ok, mut failed) = (0u64, 0u64);
        while j < slots.len() && kind(&slots[j]) == k {
            if let Some((a, f)) = slots[j] {
                ok += u64::from(a);
                failed += u64::from(f);
            }
            j += 1;
        }
        let from = clock((first_slot + i as i64) as f64 * BUCKET_SECONDS as f64);
        let to = clock((first_slot + j as i64) as f64 * BUCKET_SECONDS as f64);
        let what = if k == "none" { "no probes".to_owned() } else { format!("{ok} of {} ok", ok + failed) };
        let _ = write!(
            out,
            r#"<rect class="a-{k}" x="{:.1}" y="1" width="{:.1}" height="12"><title>{from}–{to}: {what}</title></rect>"#,
            i as f64 * step,
            (j - i) as f64 * step
        );
        i = j;
    }
    out.push_str("</svg>");
}

/// Durations of the probes kept, oldest first; failed probes are dots.
pub fn sparkline(out: &mut String, h: Option<&TargetHistory>, width: u32, height: u32) {
    let results = h.map(|h| h.results.iter().collect::<Vec<_>>()).unwrap_or_default();
    if results.is_empty() {
        let _ = write!(
            out,
            r#"<svg class="spark" width="{width}" height="{height}" role="img" aria-label="No probe durations yet"></svg>"#
        );
        return;
    }
    let max = results.iter().map(|e| f64::from(e.seconds)).fold(0.0, f64::max).max(1e-6);
    let ok: Vec<f64> = results.iter().filter(|e| e.success).map(|e| f64::from(e.seconds)).collect();
    let last = results.last().map_or(0.0, |e| f64::from(e.seconds));
    let label = format!(
        "Probe duration, last {} probes: {} failed, latest {}, longest {}",
        results.len(),
        results.len() - ok.len(),
        secs(last),
        secs(max)
    );
    let _ = write!(
        out,
        r#"<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{label}">"#
    );
    let n = results.len().max(2) - 1;
    let x = |i: usize| i as f64 * f64::from(width - 4) / n as f64 + 2.0;
    let y = |s: f32| f64::from(height - 3) - f64::from(s) / max * f64::from(height - 6);
    out.push_str(r#"<polyline points=""#);
    for (i, e) in results.iter().enumerate() {
        // Whole pixels: finer is invisible at this size and costs bytes and time.
        let _ = write!(out, "{:.0},{:.0} ", x(i), y(e.seconds));
    }
    out.push_str(r#""/>"#);
    for (i, e) in results.iter().enumerate().filter(|(_, e)| !e.success) {
        let _ = write!(out, r#"<circle cx="{:.0}" cy="{:.0}" r="2"/>"#, x(i), y(e.seconds));
    }
    out.push_str("</svg>");
}
