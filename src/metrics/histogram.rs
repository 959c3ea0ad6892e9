//! Latency histograms that render themselves: the per-target histograms on
//! [`LATENCY_BUCKETS`](super::LATENCY_BUCKETS), which are most of a scrape's bytes.
//!
//! The `prometheus` crate exposes a histogram by first copying it into a generic
//! description (label pairs as owned strings, one record per bucket) and then formatting
//! that, every bucket count as a float; with thousands of targets that copy and format
//! was most of a half-second scrape. Here each series keeps its label text, already
//! escaped, from its creation ([`super::series`]), and holds plain atomic counters;
//! rendering is appending that text, the precomputed `le` values and integers to the page
//! being written. The output is the same text format (cumulative buckets, `+Inf`,
//! `_sum`, `_count`), byte for byte.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::series::{push_count_as_float, push_f64, Entry, Lines, Store};
use super::tracker::Vector;
use super::LATENCY_BUCKETS;

/// One series' counts per bucket (not cumulative), the last one past every bound, and
/// the sum as `f64` bits.
#[derive(Debug)]
pub(crate) struct Cells {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum: AtomicU64,
}

impl Default for Cells {
    fn default() -> Self {
        Self { buckets: Default::default(), sum: AtomicU64::new(0f64.to_bits()) }
    }
}

/// One series of a [`LatencyVec`], as `with_label_values` returns it.
#[derive(Debug, Clone)]
pub struct LatencyHistogram(Arc<Entry<Cells>>);

impl LatencyHistogram {
    pub fn observe(&self, seconds: f64) {
        let c = &self.0.cell;
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
        self.0.cell.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    pub fn get_sample_sum(&self) -> f64 {
        f64::from_bits(self.0.cell.sum.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct Family {
    store: Store<Cells>,
    /// `,le="0.001"} ` and so on, one per bound, then `,le="+Inf"} `.
    le: Vec<String>,
}

/// A labelled latency histogram. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct LatencyVec(Arc<Family>);

impl LatencyVec {
    pub(crate) fn new(name: &str, help: &str, labels: &[&str]) -> Self {
        let mut le: Vec<String> = LATENCY_BUCKETS.iter().map(|b| format!(",le=\"{b}\"}} ")).collect();
        le.push(",le=\"+Inf\"} ".to_owned());
        Self(Arc::new(Family { store: Store::new(name, help, labels), le }))
    }

    pub fn name(&self) -> &str {
        &self.0.store.name
    }

    /// The series with these label values, created if new. A wrong number of values is a
    /// programming error (the label sets are fixed in code) and panics, as in `prometheus`.
    pub fn with_label_values(&self, values: &[&str]) -> LatencyHistogram {
        LatencyHistogram(self.0.store.get_or_create(values, Cells::default))
    }

    pub fn remove_label_values(&self, values: &[&str]) {
        self.0.store.remove(values);
    }

    /// Appends this histogram in the text format; nothing when it has no series.
    #[cfg(test)]
    fn render(&self, out: &mut String) {
        super::exposition::render_family(self, out);
    }
}

impl Lines for LatencyVec {
    type Cell = Cells;
    const TYPE: &'static str = "histogram";

    fn store(&self) -> &Store<Cells> {
        &self.0.store
    }

    fn lines(&self, e: &Entry<Cells>, out: &mut String) {
        let name = &self.0.store.name;
        let c = &e.cell;
        let mut cumulative = 0u64;
        for (bucket, le) in c.buckets.iter().zip(&self.0.le) {
            cumulative += bucket.load(Ordering::Relaxed);
            out.push_str(name);
            out.push_str("_bucket{");
            out.push_str(&e.labels);
            out.push_str(le);
            push_count_as_float(out, cumulative);
            out.push('\n');
        }
        for (suffix, last) in [("_sum{", false), ("_count{", true)] {
            out.push_str(name);
            out.push_str(suffix);
            out.push_str(&e.labels);
            out.push_str("} ");
            if last {
                push_count_as_float(out, cumulative);
            } else {
                push_f64(out, f64::from_bits(c.sum.load(Ordering::Relaxed)));
            }
            out.push('\n');
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
        // `a b` sorts after `a` by value but before it by label text (`a b"` < `a"`): the
        // crate orders by value.
        for (labels, v) in [
            (["a", "lo\"g\\in"], 0.0007),
            (["a", "lo\"g\\in"], 0.3),
            (["b", "x"], 500.0),
            (["b", "x"], 1.0),
            (["a b", "x"], 0.01),
            (["a", "x"], 0.02),
        ] {
            ours.with_label_values(&labels).observe(v);
            theirs.with_label_values(&labels).observe(v);
        }
        let mut text = String::new();
        ours.render(&mut text);
        let registry = prometheus::Registry::new();
        registry.register(Box::new(theirs)).unwrap_or_else(|e| panic!("{e}"));
        let mut expected = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut expected)
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
