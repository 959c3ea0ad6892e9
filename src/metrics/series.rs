//! The labelled series of one self-rendering metric family, shared by the histograms
//! ([`super::histogram`]) and the counters and gauges ([`super::scalar`]).
//!
//! A series is created once per label set and keeps, besides its cell (the atomics its
//! kind needs), the label text already escaped and in the order the text format wants
//! (label names alphabetical), so rendering it is appending that text. The family's
//! series are ordered for the exposition the way the `prometheus` crate orders them — by
//! label values, compared in alphabetical order of the label names — so a scrape reads
//! the same whichever way a family is rendered.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// One labelled series: its label values (in the family's label order), its label text
/// (`phase="dns",target="a"`, escaped, names alphabetical) and its cell.
#[derive(Debug)]
pub(crate) struct Entry<C> {
    values: Box<[String]>,
    pub(crate) labels: String,
    pub(crate) cell: C,
}

impl<C> Entry<C> {
    fn is(&self, values: &[&str]) -> bool {
        self.values.iter().map(String::as_str).eq(values.iter().copied())
    }
}

/// A family's name, help, label names and series.
#[derive(Debug)]
pub(crate) struct Store<C> {
    pub(crate) name: String,
    pub(crate) help: String,
    labels: Vec<String>,
    /// Indexes into `labels`, in alphabetical order of the names.
    order: Vec<usize>,
    series: RwLock<HashMap<u64, Vec<Arc<Entry<C>>>>>,
    /// Bumped (under the write lock) whenever a series is added or removed.
    generation: AtomicU64,
    /// The series in exposition order as of a generation: sorting 100,000 series was
    /// most of a scrape, and the set changes rarely (a new target, reason or step).
    sorted: Mutex<Option<(u64, Sorted<C>)>>,
}

/// A family's series in exposition order.
pub(crate) type Sorted<C> = Arc<[Arc<Entry<C>>]>;

fn hash(values: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    values.hash(&mut h);
    h.finish()
}

impl<C> Store<C> {
    pub(crate) fn new(name: &str, help: &str, labels: &[&str]) -> Self {
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.sort_by_key(|&i| labels[i]);
        Self {
            name: name.to_owned(),
            help: help.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            order,
            series: RwLock::default(),
            generation: AtomicU64::new(0),
            sorted: Mutex::default(),
        }
    }

    /// The series with these label values, made by `cell` if new. A wrong number of
    /// values is a programming error (the label sets are fixed in code) and panics, as in
    /// the `prometheus` crate.
    pub(crate) fn get_or_create(&self, values: &[&str], cell: impl FnOnce() -> C) -> Arc<Entry<C>> {
        assert_eq!(
            values.len(),
            self.labels.len(),
            "`{}` takes {} label values",
            self.name,
            self.labels.len()
        );
        let key = hash(values);
        {
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = series.get(&key).and_then(|b| b.iter().find(|e| e.is(values))) {
                return e.clone();
            }
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let bucket = series.entry(key).or_default();
        if let Some(e) = bucket.iter().find(|e| e.is(values)) {
            return e.clone();
        }
        let mut labels = String::new();
        for (n, &i) in self.order.iter().enumerate() {
            if n > 0 {
                labels.push(',');
            }
            let _ = write!(labels, "{}=\"{}\"", self.labels[i], escape(values[i]));
        }
        let entry = Arc::new(Entry {
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            labels,
            cell: cell(),
        });
        bucket.push(entry.clone());
        self.changed();
        entry
    }

    pub(crate) fn remove(&self, values: &[&str]) {
        let key = hash(values);
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = series.get_mut(&key) {
            let before = bucket.len();
            bucket.retain(|e| !e.is(values));
            if bucket.len() != before {
                self.changed();
            }
            if bucket.is_empty() {
                series.remove(&key);
            }
        }
    }

    /// Called with the write lock held: the sorted list is stale (and dropped now, so it
    /// keeps no removed series alive).
    fn changed(&self) {
        self.generation.fetch_add(1, AtomicOrdering::Relaxed);
        *self.sorted.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Every series, in exposition order; empty when the family has none. Sorted again
    /// only after a series was added or removed.
    pub(crate) fn sorted(&self) -> Sorted<C> {
        let (generation, mut all) = {
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            // Read under the read lock: no series is added or removed meanwhile, so what is
            // collected below is exactly this generation.
            let generation = self.generation.load(AtomicOrdering::Relaxed);
            if let Some((g, sorted)) = &*self.sorted.lock().unwrap_or_else(PoisonError::into_inner) {
                if *g == generation {
                    return sorted.clone();
                }
            }
            let all: Vec<Arc<Entry<C>>> = series.values().flatten().cloned().collect();
            (generation, all)
        };
        all.sort_unstable_by(|a, b| self.compare(a, b));
        let sorted: Sorted<C> = all.into();
        // Kept only if still current; a change since then made it stale already.
        if self.generation.load(AtomicOrdering::Relaxed) == generation {
            *self.sorted.lock().unwrap_or_else(PoisonError::into_inner) = Some((generation, sorted.clone()));
        }
        sorted
    }

    fn compare(&self, a: &Entry<C>, b: &Entry<C>) -> Ordering {
        self.order.iter().map(|&i| &a.values[i]).cmp(self.order.iter().map(|&i| &b.values[i]))
    }

    /// The `# HELP` (unless the help is empty, as the crate does) and `# TYPE` lines.
    pub(crate) fn head(&self, kind: &str, out: &mut String) {
        if !self.help.is_empty() {
            let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(&self.help));
        }
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
    }
}

/// How one self-rendering family writes a series; ordering and paging are shared
/// ([`super::exposition`]).
pub(crate) trait Lines: Clone + std::fmt::Debug + Send + Sync + 'static {
    type Cell: Send + Sync + 'static;
    /// The `# TYPE` of the family.
    const TYPE: &'static str;
    fn store(&self) -> &Store<Self::Cell>;
    /// Appends every sample line of one series.
    fn lines(&self, series: &Entry<Self::Cell>, out: &mut String);
}

/// Appends `n` in decimal.
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
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

/// The largest integer every smaller one of which an `f64` holds exactly.
const EXACT: u64 = 1 << 53;

/// Appends an integer as the `prometheus` crate writes it: converted to `f64` and
/// printed, which is the plain decimal up to 2^53 and the float's digits above.
pub(crate) fn push_int_as_float(out: &mut String, n: i64) {
    if n.unsigned_abs() <= EXACT {
        if n < 0 {
            out.push('-');
        }
        push_u64(out, n.unsigned_abs());
    } else {
        let _ = write!(out, "{}", n as f64);
    }
}

/// As [`push_int_as_float`], for an unsigned count.
pub(crate) fn push_count_as_float(out: &mut String, n: u64) {
    if n <= EXACT {
        push_u64(out, n);
    } else {
        let _ = write!(out, "{}", n as f64);
    }
}

/// Appends a float as the `prometheus` crate writes it: Rust's shortest round-trip
/// decimal, never an exponent (`1700000000`, `0.5`), and `NaN`, `inf`, `-inf`, which
/// Prometheus parses.
pub(crate) fn push_f64(out: &mut String, v: f64) {
    let _ = write!(out, "{v}");
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
    fn integers_print_as_the_crate_prints_their_float() {
        for n in [0i64, 7, -7, 1 << 53, -(1 << 53), (1 << 53) + 1, i64::MAX, i64::MIN, 1_700_000_000] {
            let mut s = String::new();
            push_int_as_float(&mut s, n);
            assert_eq!(s, (n as f64).to_string(), "{n}");
        }
        for n in [0u64, 1, 1 << 53, (1 << 53) + 3, u64::MAX] {
            let mut s = String::new();
            push_count_as_float(&mut s, n);
            assert_eq!(s, (n as f64).to_string(), "{n}");
        }
    }

    fn targets(s: &Store<()>) -> Vec<String> {
        s.sorted().iter().map(|e| e.values[0].clone()).collect()
    }

    #[test]
    fn the_sorted_list_is_kept_until_a_series_comes_or_goes() {
        let s = Store::<()>::new("f", "h", &["target"]);
        s.get_or_create(&["b"], || ());
        s.get_or_create(&["a"], || ());
        let first = s.sorted();
        assert!(Arc::ptr_eq(&first, &s.sorted()), "unchanged: not sorted again");
        s.get_or_create(&["a"], || ());
        assert!(Arc::ptr_eq(&first, &s.sorted()), "an existing series changes nothing");
        assert_eq!(targets(&s), ["a", "b"]);

        s.get_or_create(&["c"], || ());
        assert_eq!(targets(&s), ["a", "b", "c"], "a new series is in the next scrape");
        s.remove(&["a"]);
        assert_eq!(targets(&s), ["b", "c"], "a removed one is not");
        s.remove(&["nobody"]);
        assert_eq!(targets(&s), ["b", "c"]);
    }
}
