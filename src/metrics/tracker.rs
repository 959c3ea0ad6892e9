//! The per-target series tracker: which labelled series exist for which target.
//!
//! Every per-target metric is registered as a [`Tracked`] vector whose first label is
//! `target`. Creating a series through it also notes (metric, label values) under that
//! target, so dropping a target, or part of one (a step, a health check, a breaker), is one
//! call — [`Tracker::forget`] or [`Tracker::forget_where`] — and no feature keeps a list of
//! what to remove.
//!
//! One mutex guards the notes. It is held only for the note and the series' creation (never
//! across an await), and a scrape never takes it: the exposition reads the vectors
//! themselves. Creating the series under the same lock means a series made while its
//! target is being forgotten is either removed with it or noted afterwards, never lost.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A labelled per-target metric family of any kind (counter, gauge, histogram).
pub trait Vector: Clone + Send + Sync + 'static {
    /// One series of it.
    type Series;
    fn series(&self, values: &[&str]) -> Self::Series;
    fn remove(&self, values: &[&str]);
}

/// Removes one series of one registered vector, by its label values.
type Remover = Box<dyn Fn(&[&str]) + Send + Sync>;

/// A metric the tracker can remove series of.
struct Family {
    name: String,
    labels: Vec<String>,
    remove: Remover,
}

impl std::fmt::Debug for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family").field("name", &self.name).field("labels", &self.labels).finish()
    }
}

/// One noted series: which family, and its label values (the first is the target).
#[derive(Debug)]
struct Noted {
    family: usize,
    values: Box<[String]>,
}

#[derive(Debug, Default)]
struct Inner {
    families: Vec<Family>,
    /// target → hash of (family, label values) → the series with that hash.
    targets: HashMap<String, HashMap<u64, Vec<Noted>>>,
}

/// Which series each target has, across every tracked metric. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    inner: Arc<Mutex<Inner>>,
}

/// A noted series as [`Tracker::forget_where`] shows it.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    metric: &'a str,
    names: &'a [String],
    values: &'a [String],
}

impl<'a> Series<'a> {
    /// The metric's name, e.g. `wsprobe_step_duration_seconds`.
    pub fn metric(&self) -> &'a str {
        self.metric
    }

    /// The value of the label `name`, if the metric has that label.
    pub fn label(&self, name: &str) -> Option<&'a str> {
        let i = self.names.iter().position(|n| n == name)?;
        self.values.get(i).map(String::as_str)
    }
}

fn key(family: usize, values: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    family.hash(&mut h);
    for v in values {
        v.hash(&mut h);
    }
    h.finish()
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A poisoned lock only means a panic elsewhere mid-note; the notes are still usable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wraps `vec` (already registered; first label `target`) so its series are noted.
    pub(crate) fn track<V: Vector>(&self, name: &str, labels: &[&str], vec: V) -> Tracked<V> {
        let remover = vec.clone();
        let remove: Remover = Box::new(move |values| remover.remove(values));
        let mut inner = self.lock();
        let family = inner.families.len();
        inner.families.push(Family {
            name: name.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            remove,
        });
        Tracked { vec, family, tracker: self.clone() }
    }

    /// Removes every series noted under `target`, of every metric.
    pub fn forget(&self, target: &str) {
        self.forget_where(target, |_| true);
    }

    /// Removes the series noted under `target` for which `doomed` holds.
    pub fn forget_where(&self, target: &str, doomed: impl Fn(&Series<'_>) -> bool) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(series) = inner.targets.get_mut(target) else { return };
        let families = &inner.families;
        series.retain(|_, bucket| {
            bucket.retain(|n| {
                let family = &families[n.family];
                let view = Series { metric: &family.name, names: &family.labels, values: &n.values };
                if !doomed(&view) {
                    return true;
                }
                let values: Vec<&str> = n.values.iter().map(String::as_str).collect();
                (family.remove)(&values);
                false
            });
            !bucket.is_empty()
        });
        if series.is_empty() {
            inner.targets.remove(target);
        }
    }

    /// How many series are noted under `target`.
    #[cfg(test)]
    pub(crate) fn count(&self, target: &str) -> usize {
        self.lock().targets.get(target).map_or(0, |s| s.values().map(Vec::len).sum())
    }
}

/// A per-target metric vector: its series are created through the tracker.
#[derive(Debug, Clone)]
pub struct Tracked<V> {
    vec: V,
    family: usize,
    tracker: Tracker,
}

impl<V: Vector> Tracked<V> {
    /// The series with these label values (the first is the target), created and noted
    /// if new. Like the vector's own method, a wrong number of values is a programming
    /// error (the label sets are fixed in code) and panics.
    pub fn with_label_values(&self, values: &[&str]) -> V::Series {
        let target = values.first().copied().unwrap_or_default();
        let hash = key(self.family, values);
        let mut inner = self.tracker.lock();
        let metric = self.vec.series(values);
        // Looked up before inserting, so the hot path (a known series) allocates nothing.
        if !inner.targets.contains_key(target) {
            inner.targets.insert(target.to_owned(), HashMap::new());
        }
        let Some(series) = inner.targets.get_mut(target) else { return metric };
        let bucket = series.entry(hash).or_default();
        let known = bucket.iter().any(|n| {
            n.family == self.family && n.values.iter().map(String::as_str).eq(values.iter().copied())
        });
        if !known {
            bucket.push(Noted {
                family: self.family,
                values: values.iter().map(|v| (*v).to_owned()).collect(),
            });
        }
        metric
    }

    /// Removes one series, and its note.
    pub fn remove_label_values(&self, values: &[&str]) {
        let Some(target) = values.first() else { return };
        let hash = key(self.family, values);
        let mut inner = self.tracker.lock();
        if let Some(series) = inner.targets.get_mut(*target) {
            if let Some(bucket) = series.get_mut(&hash) {
                bucket.retain(|n| {
                    n.family != self.family || !n.values.iter().map(String::as_str).eq(values.iter().copied())
                });
                if bucket.is_empty() {
                    series.remove(&hash);
                }
            }
            if series.is_empty() {
                inner.targets.remove(*target);
            }
        }
        self.vec.remove(values);
    }
}
