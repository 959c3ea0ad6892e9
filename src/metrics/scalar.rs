//! Per-target counters and gauges that render themselves, as the latency histograms do
//! ([`super::histogram`]).
//!
//! With thousands of targets these are about a hundred thousand series; going through
//! the `prometheus` crate's gather copied each into owned label pairs and sorted them on
//! every scrape. Here a series is one atomic word beside its label text, escaped once at
//! creation ([`super::series`]), and rendering appends that text and the value. The
//! output is what the crate writes for the same family, values included: an integer
//! counter or gauge is printed as the crate prints it after converting it to `f64`.
//!
//! Three kinds, one type each: [`CounterSeries`] (an integer counter), [`GaugeSeries`]
//! (an `f64` gauge) and [`IntGaugeSeries`] (an integer gauge), with the methods the
//! crate's types have that the daemon uses.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::series::{push_count_as_float, push_f64, push_int_as_float, Entry, Lines, Store};
use super::tracker::Vector;

/// What one kind stores in its word, and how it is written.
pub trait Kind: std::fmt::Debug + Send + Sync + 'static {
    /// The `# TYPE` of the family.
    const TYPE: &'static str;
    fn write(word: u64, out: &mut String);
    /// The word of a new series (zero for each kind).
    fn zero() -> u64 {
        0
    }
}

/// An integer counter: the word is the count.
#[derive(Debug)]
pub enum Count {}

/// A float gauge: the word is the `f64`'s bits.
#[derive(Debug)]
pub enum Float {}

/// An integer gauge: the word is the `i64`'s bits.
#[derive(Debug)]
pub enum Int {}

impl Kind for Count {
    const TYPE: &'static str = "counter";
    fn write(word: u64, out: &mut String) {
        push_count_as_float(out, word);
    }
}

impl Kind for Float {
    const TYPE: &'static str = "gauge";
    fn write(word: u64, out: &mut String) {
        push_f64(out, f64::from_bits(word));
    }
    fn zero() -> u64 {
        0f64.to_bits()
    }
}

impl Kind for Int {
    const TYPE: &'static str = "gauge";
    fn write(word: u64, out: &mut String) {
        push_int_as_float(out, word as i64);
    }
}

/// One series of a [`ScalarVec`], as `with_label_values` returns it. Cheap to clone.
#[derive(Debug)]
pub struct Scalar<K> {
    entry: Arc<Entry<AtomicU64>>,
    kind: PhantomData<K>,
}

impl<K> Clone for Scalar<K> {
    fn clone(&self) -> Self {
        Self { entry: self.entry.clone(), kind: PhantomData }
    }
}

impl<K> Scalar<K> {
    fn word(&self) -> &AtomicU64 {
        &self.entry.cell
    }

    /// Replaces the word by `f(word)`, however many others change it meanwhile.
    fn update(&self, f: impl Fn(u64) -> u64) {
        // `fetch_update` only fails when the closure returns `None`, which it never does.
        let _ = self.word().fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| Some(f(w)));
    }
}

pub type CounterSeries = Scalar<Count>;
pub type GaugeSeries = Scalar<Float>;
pub type IntGaugeSeries = Scalar<Int>;

impl Scalar<Count> {
    pub fn inc(&self) {
        self.inc_by(1);
    }

    pub fn inc_by(&self, n: u64) {
        self.word().fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.word().load(Ordering::Relaxed)
    }
}

impl Scalar<Float> {
    pub fn set(&self, v: f64) {
        self.word().store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.word().load(Ordering::Relaxed))
    }

    pub fn add(&self, v: f64) {
        self.update(|w| (f64::from_bits(w) + v).to_bits());
    }

    pub fn sub(&self, v: f64) {
        self.add(-v);
    }

    pub fn inc(&self) {
        self.add(1.0);
    }

    pub fn dec(&self) {
        self.add(-1.0);
    }
}

impl Scalar<Int> {
    pub fn set(&self, v: i64) {
        self.word().store(v as u64, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.word().load(Ordering::Relaxed) as i64
    }

    /// Adds `v`, wrapping as two's complement (a wrap is a bug elsewhere, not a panic here).
    pub fn add(&self, v: i64) {
        self.word().fetch_add(v as u64, Ordering::Relaxed);
    }

    pub fn sub(&self, v: i64) {
        self.word().fetch_sub(v as u64, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn dec(&self) {
        self.sub(1);
    }
}

/// A labelled counter or gauge of kind `K`. Cheap to clone (shared).
#[derive(Debug)]
pub struct ScalarVec<K> {
    store: Arc<Store<AtomicU64>>,
    kind: PhantomData<K>,
}

impl<K> Clone for ScalarVec<K> {
    fn clone(&self) -> Self {
        Self { store: self.store.clone(), kind: PhantomData }
    }
}

impl<K: Kind> ScalarVec<K> {
    pub(crate) fn new(name: &str, help: &str, labels: &[&str]) -> Self {
        Self { store: Arc::new(Store::new(name, help, labels)), kind: PhantomData }
    }

    pub fn name(&self) -> &str {
        &self.store.name
    }

    /// The series with these label values, created (at zero) if new. A wrong number of
    /// values is a programming error (the label sets are fixed in code) and panics, as in
    /// `prometheus`.
    pub fn with_label_values(&self, values: &[&str]) -> Scalar<K> {
        Scalar { entry: self.store.get_or_create(values, || AtomicU64::new(K::zero())), kind: PhantomData }
    }

    pub fn remove_label_values(&self, values: &[&str]) {
        self.store.remove(values);
    }

    /// Appends this family in the text format; nothing when it has no series.
    #[cfg(test)]
    fn render(&self, out: &mut String) {
        super::exposition::render_family(self, out);
    }
}

impl<K: Kind> Lines for ScalarVec<K> {
    type Cell = AtomicU64;
    const TYPE: &'static str = K::TYPE;

    fn store(&self) -> &Store<AtomicU64> {
        &self.store
    }

    fn lines(&self, e: &Entry<AtomicU64>, out: &mut String) {
        out.push_str(&self.store.name);
        out.push('{');
        out.push_str(&e.labels);
        out.push_str("} ");
        K::write(e.cell.load(Ordering::Relaxed), out);
        out.push('\n');
    }
}

impl<K: Kind> Vector for ScalarVec<K> {
    type Series = Scalar<K>;

    fn series(&self, values: &[&str]) -> Scalar<K> {
        self.with_label_values(values)
    }

    fn remove(&self, values: &[&str]) {
        self.remove_label_values(values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the crate writes for one family, gathered through its registry (which sorts).
    fn crate_text<C: prometheus::core::Collector + Clone + 'static>(c: &C) -> String {
        let registry = prometheus::Registry::new();
        registry.register(Box::new(c.clone())).unwrap_or_else(|e| panic!("{e}"));
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        out
    }

    fn ours<K: Kind>(v: &ScalarVec<K>) -> String {
        let mut out = String::new();
        v.render(&mut out);
        out
    }

    /// Label values whose order by text and by value differ (`a b` sorts after `a` as a
    /// value, before it as text, `a b"` < `a"`), an escaped one, and label names out of
    /// order.
    const LABELS: [&str; 2] = ["target", "check"];
    const VALUES: [[&str; 2]; 5] = [["a b", "x"], ["a", "lo\"g\\in\n"], ["b", "x"], ["a", "a"], ["a", "x"]];

    #[test]
    fn a_counter_renders_like_the_crates() {
        let mine = ScalarVec::<Count>::new("c_total", "Help \\ with\nnewline.", &LABELS);
        let theirs = prometheus::IntCounterVec::new(
            prometheus::Opts::new("c_total", "Help \\ with\nnewline."),
            &LABELS,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (values, n) in VALUES.iter().zip([0u64, 1, 1 << 53, u64::MAX, 5]) {
            mine.with_label_values(values).inc_by(n);
            theirs.with_label_values(values).inc_by(n);
        }
        mine.with_label_values(&VALUES[1]).inc();
        theirs.with_label_values(&VALUES[1]).inc();
        assert_eq!(ours(&mine), crate_text(&theirs));
        assert_eq!(mine.with_label_values(&VALUES[1]).get(), 2);
    }

    #[test]
    fn a_gauge_renders_like_the_crates() {
        let mine = ScalarVec::<Float>::new("g", "Gauge.", &LABELS);
        let theirs = prometheus::GaugeVec::new(prometheus::Opts::new("g", "Gauge."), &LABELS)
            .unwrap_or_else(|e| panic!("{e}"));
        let samples =
            [1.7e9, 0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 3.0, -0.0, 1e300, 1e-7, 0.1 + 0.2];
        for (i, v) in samples.into_iter().enumerate() {
            let target = format!("t{i}");
            mine.with_label_values(&[&target, "x"]).set(v);
            theirs.with_label_values(&[&target, "x"]).set(v);
        }
        for values in VALUES {
            mine.with_label_values(&values).inc();
            theirs.with_label_values(&values).inc();
        }
        mine.with_label_values(&VALUES[0]).add(0.25);
        theirs.with_label_values(&VALUES[0]).add(0.25);
        mine.with_label_values(&VALUES[2]).dec();
        theirs.with_label_values(&VALUES[2]).dec();
        assert_eq!(ours(&mine), crate_text(&theirs));
        assert_eq!(mine.with_label_values(&VALUES[0]).get(), 1.25);
    }

    #[test]
    fn an_integer_gauge_renders_like_the_crates() {
        let mine = ScalarVec::<Int>::new("s", "Status.", &["target"]);
        let theirs = prometheus::IntGaugeVec::new(prometheus::Opts::new("s", "Status."), &["target"])
            .unwrap_or_else(|e| panic!("{e}"));
        for (i, v) in [200i64, -1, 0, i64::MAX, i64::MIN, (1 << 53) + 1].into_iter().enumerate() {
            let target = format!("t{i}");
            mine.with_label_values(&[&target]).set(v);
            theirs.with_label_values(&[&target]).set(v);
        }
        let g = mine.with_label_values(&["up"]);
        g.inc();
        g.inc();
        g.dec();
        g.add(10);
        g.sub(3);
        let g = theirs.with_label_values(&["up"]);
        g.inc();
        g.inc();
        g.dec();
        g.add(10);
        g.sub(3);
        assert_eq!(ours(&mine), crate_text(&theirs));
        assert_eq!(mine.with_label_values(&["up"]).get(), 8);
    }

    #[test]
    fn a_removed_series_is_gone_and_restarts_at_zero() {
        let v = ScalarVec::<Count>::new("r_total", "h", &["target"]);
        v.with_label_values(&["a"]).inc();
        v.remove_label_values(&["a"]);
        assert_eq!(ours(&v), "", "a family without series writes nothing, as the crate prunes it");
        assert_eq!(v.with_label_values(&["a"]).get(), 0);
    }
}
