//! Latency histograms that render themselves: the per-target histograms on
//! [`LATENCY_BUCKETS`](super::LATENCY_BUCKETS), which are most of a scrape's bytes.
//!
//! The `prometheus` crate exposes a histogram by first copying it into a generic
//! description (label pairs as owned strings, one record per bucket) and then formatting
//! that, every bucket count as a float; with thousands of targets that copy and format
//! was most of a half-second scrape. Here each series keeps its label text, already
//! escaped, from its creation, and holds plain atomic counters; rendering is appending
//! that text, the precomputed `le` values and integers to one buffer. The output is the
//! same text format (cumulative buckets, `+Inf`, `_sum`, `_count`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::tracker::Vector;
use super::LATENCY_BUCKETS;

/// One labelled series: counts per bucket (not cumulative), the last one past every
/// bound, and the sum as `f64` bits.
#[derive(Debug)]
struct Cells {
    values: Box<[String]>,
    /// `phase="dns",target="a"`, escaped.
    labels: String,
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum: AtomicU64,
}

/// One series of a [`LatencyVec`], as `with_label_values` returns it.
#[derive(Debug, Clone)]
pub struct LatencyHistogram(Arc<Cells>);

impl LatencyHistogram {
    pub fn observe(&self, seconds: f64) {
        let c = &*self.0;
        let i = LATENCY_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(LATENCY_BUCKETS.len());
        c.buckets[i].fetch_add(1, Ordering::Relaxed);
        // No atomic float add: swap in the new sum until no one raced us.
        let mut old = c.sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + seconds).to_bits();
            match c.sum.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
    }

    pub fn get_sample_count(&self) -> u64 {
        self.0.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    pub fn get_sample_sum(&self) -> f64 {
        f64::from_bits(self.0.sum.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    labels: Vec<String>,
    /// `,le="0.001"} ` and so on, one per bound, then `,le="+Inf"} `.
    le: Vec<String>,
    series: RwLock<HashMap<u64, Vec<Arc<Cells>>>>,
}

/// A labelled latency histogram. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct LatencyVec(Arc<Family>);

fn hash(values: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    values.hash(&mut h);
    h.finish()
}

impl LatencyVec {
    pub(crate) fn new(name: &str, help: &str, labels: &[&str]) -> Self {
        let mut le: Vec<String> = LATENCY_BUCKETS.iter().map(|b| format!(",le=\"{b}\"}} ")).collect();
        le.push(",le=\"+Inf\"} ".to_owned());
        Self(Arc::new(Family {
            name: name.to_owned(),
            help: help.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            le,
            series: RwLock::default(),
        }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The series with these label values, created if new. A wrong number of values is a
    /// programming error (the label sets are fixed in code) and panics, as in `prometheus`.
    pub fn with_label_values(&self, values: &[&str]) -> LatencyHistogram {
        let f = &*self.0;
        assert_eq!(values.len(), f.labels.len(), "`{}` takes {} label values", f.name, f.labels.len());
        let key = hash(values);
        let same = |c: &&Arc<Cells>| c.values.iter().map(String::as_str).eq(values.iter().copied());
        {
            let series = f.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = series.get(&key).and_then(|b| b.iter().find(same)) {
                return LatencyHistogram(c.clone());
            }
        }
        let mut series = f.series.write().unwrap_or_else(PoisonError::into_inner);
        let bucket = series.entry(key).or_default();
        if let Some(c) = bucket.iter().find(same) {
            return LatencyHistogram(c.clone());
        }
        // Label names in alphabetical order, as the `prometheus` crate writes them, so a
        // series reads the same whichever kind of metric it is.
        let mut pairs: Vec<(&String, &&str)> = f.labels.iter().zip(values).collect();
        pairs.sort_by_key(|(name, _)| *name);
        let mut labels = String::new();
        for (i, (name, value)) in pairs.into_iter().enumerate() {
            if i > 0 {
                labels.push(',');
            }
            let _ = write!(labels, "{name}=\"{}\"", escape(value));
        }
        let cells = Arc::new(Cells {
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            labels,
            buckets: Default::default(),
            sum: AtomicU64::new(0f64.to_bits()),
        });
        bucket.push(cells.clone());
        LatencyHistogram(cells)
    }

    pub fn remove_label_values(&self, values: &[&str]) {
        let key = hash(values);
        let mut series = self.0.series.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = series.get_mut(&key) {
            bucket.retain(|c| !c.values.iter().map(String::as_str).eq(values.iter().copied()));
            if bucket.is_empty() {
                series.remove(&key);
            }
        }
    }

    /// Appends this histogram in the text format; nothing when it has no series.
    pub(crate) fn render(&self, out: &mut String) {
        let f = &*self.0;
        let mut all: Vec<Arc<Cells>> =
            f.series.read().unwrap_or_else(PoisonError::into_inner).values().flatten().cloned().collect();
        if all.is_empty() {
            return;
        }
        // A stable order, as people read and diff scrapes: by label text, as the
        // `prometheus` crate sorts its series.
        all.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        let name = &f.name;
        let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
        let _ = writeln!(out, "# TYPE {name} histogram");
        for c in &all {
            let mut cumulative = 0u64;
            for (bucket, le) in c.buckets.iter().zip(&f.le) {
                cumulative += bucket.load(Ordering::Relaxed);
                out.push_str(name);
                out.push_str("_bucket{");
                out.push_str(&c.labels);
                out.push_str(le);
                push_u64(out, cumulative);
                out.push('\n');
            }
            for (suffix, last) in [("_sum{", false), ("_count{", true)] {
                out.push_str(name);
                out.push_str(suffix);
                out.push_str(&c.labels);
                out.push_str("} ");
                if last {
                    push_u64(out, cumulative);
                } else {
                    push_f64(out, f64::from_bits(c.sum.load(Ordering::Relaxed)));
                }
                out.push('\n');
            }
        }
    }
}

impl Vector for LatencyVec {
    type Series = LatencyHistogram;

    fn series(&self, values: &[&str]) -> LatencyHistogram {
        self.with_label_values(values)
    }

    fn remove(&self, values: &[&str]) {
        self.remove_label_values(values);
    }
}

fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or("0"));
}

fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// A label value as the text format quotes it: backslash, double quote and newline escaped.
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_the_prometheus_crate() {
        let ours = LatencyVec::new("x_seconds", "Help \\ text.", &["target", "step"]);
        let opts =
            prometheus::HistogramOpts::new("x_seconds", "Help \\ text.").buckets(LATENCY_BUCKETS.to_vec());
        let theirs =
            prometheus::HistogramVec::new(opts, &["target", "step"]).unwrap_or_else(|e| panic!("{e}"));
        for (labels, v) in
            [(["a", "lo\"g\\in"], 0.0007), (["a", "lo\"g\\in"], 0.3), (["b", "x"], 500.0), (["b", "x"], 1.0)]
        {
            ours.with_label_values(&labels).observe(v);
            theirs.with_label_values(&labels).observe(v);
        }
        let mut text = String::new();
        ours.render(&mut text);
        let mut expected = Vec::new();
        let families = prometheus::core::Collector::collect(&theirs);
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &families, &mut expected)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, String::from_utf8_lossy(&expected));
        assert_eq!(ours.with_label_values(&["b", "x"]).get_sample_count(), 2);
        assert_eq!(ours.with_label_values(&["b", "x"]).get_sample_sum(), 501.0);
    }

    #[test]
    fn removed_series_are_not_rendered() {
        let v = LatencyVec::new("y_seconds", "h", &["target"]);
        v.with_label_values(&["a"]).observe(0.1);
        v.remove_label_values(&["a"]);
        let mut text = String::new();
        v.render(&mut text);
        assert_eq!(text, "");
        assert_eq!(v.with_label_values(&["a"]).get_sample_count(), 0, "a new series starts at zero");
    }
}
