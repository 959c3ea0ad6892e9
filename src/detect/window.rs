//! Time-bucketed aggregates: a fine ring for the recent window, a coarse ring for the
//! baseline.
//!
//! A sample goes into the fine bucket of its time. When a fine bucket has aged out of the
//! recent window it is merged into the coarse bucket that contains its start, unless the
//! caller says not to learn (an alert on this data is active), in which case it is dropped.
//! Coarse buckets older than the baseline window are dropped. Both rings therefore hold a
//! bounded number of buckets, and the recent window never overlaps the baseline.

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::fmt;

use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of every latency sketch: quantiles are within 2 % of the true value,
/// ample for a detector that compares ratios of 1.5 and 2.
pub(crate) const SKETCH_ALPHA: f64 = 0.02;
/// Latencies are clamped to this many seconds (nearly 3 hours; probes are cut long before),
/// so the values a sketch holds span at most 10⁻⁹ to 10⁴ s (smaller ones count as zero):
/// ln(10¹³) / ln((1 + α) / (1 − α)) = 749 keys, allocated in chunks of 128, so at most 768
/// bins in use. A sketch whose values span less than a factor of about 160 (nearly always)
/// uses one chunk: 1 KiB.
pub(crate) const SKETCH_MAX_SECONDS: f64 = 1e4;
/// Bytes one sketch occupies at most: 768 bins, which `Vec` growth may round up to a
/// capacity of 1024, plus the struct.
#[cfg(test)]
pub(crate) const SKETCH_MAX_BYTES: usize = 1024 * 8 + 256;
/// The crate's defaults for these two, which its binary encoding (our persistence format)
/// assumes on decoding: a sketch made with other values could not be restored.
const SKETCH_BIN_LIMIT: u32 = 2048;
const SKETCH_MIN_VALUE: f64 = 1e-9;

/// Something that can be accumulated per bucket and merged across buckets.
pub(crate) trait Aggregate: Clone {
    fn empty() -> Self;
    fn merge(&mut self, other: &Self);
}

/// A latency quantile sketch (DDSketch) with the detector's fixed parameters.
///
/// Persisted as the DDSketch binary encoding (shared with DataDog's Java and Go
/// implementations) in base64: compact, and exact, where a text form of the sketch's
/// floating-point parameters might not parse back to the same bits.
#[derive(Clone)]
pub(crate) struct Sketch(DDSketch);

impl Sketch {
    pub(crate) fn add(&mut self, seconds: f64) {
        self.0.add(seconds.clamp(0.0, SKETCH_MAX_SECONDS));
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.count() as u64
    }

    /// The `q` quantile, `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile(q.clamp(0.0, 1.0)).ok().flatten()
    }

    /// Whether this sketch (typically restored from a file) has the current parameters, so
    /// that it can be merged with the sketches this build creates.
    pub(crate) fn is_compatible(&self) -> bool {
        Self::empty().0.merge(&self.0).is_ok()
    }
}

impl Aggregate for Sketch {
    fn empty() -> Self {
        Sketch(DDSketch::new(Config::new(SKETCH_ALPHA, SKETCH_BIN_LIMIT, SKETCH_MIN_VALUE)))
    }

    fn merge(&mut self, other: &Self) {
        // Fails only for different parameters, which restore filters out.
        let _ = self.0.merge(&other.0);
    }
}

impl fmt::Debug for Sketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sketch")
            .field("count", &self.0.count())
            .field("min", &self.0.min())
            .field("max", &self.0.max())
            .finish()
    }
}

impl Serialize for Sketch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64_STANDARD.encode(self.0.to_java_bytes()))
    }
}

impl<'de> Deserialize<'de> for Sketch {
    /// Any well-formed sketch is accepted here; [`Sketch::is_compatible`] tells whether it
    /// can be used.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = BASE64_STANDARD.decode(text.as_bytes()).map_err(de::Error::custom)?;
        DDSketch::from_java_bytes(&bytes).map(Sketch).map_err(|e| de::Error::custom(format!("{e:?}")))
    }
}

/// Probe and timeout counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub(crate) probes: u64,
    pub(crate) timeouts: u64,
}

impl Aggregate for Counts {
    fn empty() -> Self {
        Self::default()
    }

    fn merge(&mut self, other: &Self) {
        self.probes += other.probes;
        self.timeouts += other.timeouts;
    }
}

/// Bucket widths and window lengths in seconds, all positive (the config is validated).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Layout {
    pub(crate) recent_bucket: f64,
    pub(crate) baseline_bucket: f64,
    pub(crate) recent_window: f64,
    pub(crate) baseline_window: f64,
}

impl Layout {
    /// Buckets one series holds at most while time moves forward: each ring's window in
    /// buckets, plus one partly outside the window at its old end and the one being filled.
    /// The tests hold the windows to it.
    #[cfg(test)]
    pub(crate) fn max_buckets(&self) -> usize {
        let recent = (self.recent_window / self.recent_bucket).ceil() as usize + 2;
        let baseline = (self.baseline_window / self.baseline_bucket).ceil() as usize + 2;
        recent + baseline
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Bucket<A> {
    /// Start of the bucket divided by its width.
    pub(crate) slot: i64,
    pub(crate) agg: A,
}

/// One series: fine buckets for the recent window, coarse buckets for the baseline, both
/// in ascending slot order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(deserialize = "A: Deserialize<'de>"))]
pub(crate) struct Windowed<A> {
    pub(crate) recent: VecDeque<Bucket<A>>,
    pub(crate) baseline: VecDeque<Bucket<A>>,
    /// The merged baseline, which changes only when buckets move: once a `recent_bucket`.
    #[serde(skip)]
    baseline_merged: OnceCell<A>,
    /// The last [`Windowed::baseline_between`]: its slot range and merged aggregate.
    #[serde(skip)]
    between_merged: Option<(i64, i64, A)>,
}

impl<A: Aggregate> Default for Windowed<A> {
    fn default() -> Self {
        Self {
            recent: VecDeque::new(),
            baseline: VecDeque::new(),
            baseline_merged: OnceCell::new(),
            between_merged: None,
        }
    }
}

fn slot(t: f64, width: f64) -> i64 {
    (t / width).floor() as i64
}

/// The aggregate of `slot` in a ring sorted by slot, created if missing.
fn bucket_mut<A: Aggregate>(ring: &mut VecDeque<Bucket<A>>, slot: i64) -> &mut A {
    let i = match ring.back() {
        // The common case: time moves forward.
        Some(b) if b.slot == slot => ring.len() - 1,
        _ => match ring.binary_search_by_key(&slot, |b| b.slot) {
            Ok(i) => i,
            Err(i) => {
                ring.insert(i, Bucket { slot, agg: A::empty() });
                i
            }
        },
    };
    &mut ring[i].agg
}

fn merged<'a, A: Aggregate + 'a>(buckets: impl Iterator<Item = &'a Bucket<A>>) -> A {
    buckets.fold(A::empty(), |mut acc, b| {
        acc.merge(&b.agg);
        acc
    })
}

impl<A: Aggregate> Windowed<A> {
    /// Adds to the fine bucket that holds `now`.
    pub(crate) fn record(&mut self, layout: &Layout, now: f64, add: impl FnOnce(&mut A)) {
        add(bucket_mut(&mut self.recent, slot(now, layout.recent_bucket)));
    }

    /// Moves fine buckets that left the recent window into the baseline (or drops them when
    /// `learn` is false) and drops coarse buckets that left the baseline window.
    pub(crate) fn roll(&mut self, layout: &Layout, now: f64, learn: bool) {
        let recent_start = now - layout.recent_window;
        while let Some(front) = self.recent.front() {
            if (front.slot + 1) as f64 * layout.recent_bucket > recent_start {
                break;
            }
            let Some(old) = self.recent.pop_front() else { break };
            if learn {
                self.baseline_merged.take();
                self.between_merged = None;
                let start = old.slot as f64 * layout.recent_bucket;
                bucket_mut(&mut self.baseline, slot(start, layout.baseline_bucket)).merge(&old.agg);
            }
        }
        let baseline_start = recent_start - layout.baseline_window;
        while let Some(front) = self.baseline.front() {
            if (front.slot + 1) as f64 * layout.baseline_bucket > baseline_start {
                break;
            }
            self.baseline.pop_front();
            self.baseline_merged.take();
            self.between_merged = None;
        }
    }

    /// Everything in the recent window.
    pub(crate) fn recent(&self) -> A {
        merged(self.recent.iter())
    }

    /// Everything in the baseline window.
    pub(crate) fn baseline(&self) -> &A {
        self.baseline_merged.get_or_init(|| merged(self.baseline.iter()))
    }

    /// The baseline buckets whose middle lies within `from..=to` (seconds), merged: as
    /// close to the range as whole buckets get, without the outer buckets that merely
    /// touch it. The range moves by whole buckets, so the result is cached until it or the
    /// buckets change.
    pub(crate) fn baseline_between(&mut self, layout: &Layout, from: f64, to: f64) -> &A {
        let first = (from / layout.baseline_bucket - 0.5).ceil() as i64;
        let last = (to / layout.baseline_bucket - 0.5).floor() as i64;
        if !matches!(&self.between_merged, Some((f, l, _)) if (*f, *l) == (first, last)) {
            self.between_merged = None;
        }
        let baseline = &self.baseline;
        let (_, _, agg) = self.between_merged.get_or_insert_with(|| {
            (first, last, merged(baseline.iter().filter(|b| (first..=last).contains(&b.slot))))
        });
        agg
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.recent.is_empty() && self.baseline.is_empty()
    }

    /// Restores order and drops buckets `keep` rejects; for data read from a file.
    pub(crate) fn sanitize(&mut self, keep: impl Fn(&A) -> bool) -> usize {
        self.baseline_merged.take();
        self.between_merged = None;
        let before = self.recent.len() + self.baseline.len();
        for ring in [&mut self.recent, &mut self.baseline] {
            ring.retain(|b| keep(&b.agg));
            ring.make_contiguous().sort_by_key(|b| b.slot);
            // Two buckets with one slot cannot come from `record`; keep the first.
            let mut last = None;
            ring.retain(|b| {
                let fresh = last != Some(b.slot);
                last = Some(b.slot);
                fresh
            });
        }
        before - (self.recent.len() + self.baseline.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: Layout = Layout {
        recent_bucket: 60.0,
        baseline_bucket: 3600.0,
        recent_window: 600.0,
        baseline_window: 86400.0,
    };

    /// One probe a minute, learning, until `until` seconds; the window and the time after
    /// the last probe. The buckets held stay within the bound all along.
    fn probe_every_minute(until: f64) -> (Windowed<Counts>, f64) {
        let mut w = Windowed::<Counts>::default();
        let mut now = 0.0;
        while now < until {
            w.roll(&LAYOUT, now, true);
            w.record(&LAYOUT, now, |c| c.probes += 1);
            assert!(w.recent.len() + w.baseline.len() <= LAYOUT.max_buckets());
            now += 60.0;
        }
        (w, now)
    }

    #[test]
    fn buckets_move_from_recent_to_baseline_and_age_out() {
        let (mut w, now) = probe_every_minute(2.0 * 86400.0);
        w.roll(&LAYOUT, now, true);
        // The recent window holds the last ten minutes (the bucket at its start included).
        assert_eq!(w.recent().probes, 10);
        // The baseline covers 24 h before that, rounded to whole hours.
        let base = w.baseline().probes;
        assert!((24 * 60..=25 * 60).contains(&base), "{base}");
    }

    #[test]
    fn not_learning_drops_what_leaves_the_recent_window() {
        let mut w = Windowed::<Counts>::default();
        for m in 0..30 {
            let now = f64::from(m) * 60.0;
            w.roll(&LAYOUT, now, m < 20);
            w.record(&LAYOUT, now, |c| c.probes += 1);
        }
        // Minutes 0..=8 aged out while learning; those that aged out later were dropped.
        assert_eq!(w.baseline().probes, 9);
    }

    #[test]
    fn a_range_of_the_baseline_takes_the_buckets_whose_middle_is_in_it() {
        // A day and a half; hour h holds 60 probes.
        let (mut w, now) = probe_every_minute(36.0 * 3600.0);
        // 13:00 ± 1 h: the hours starting at 12:00 and 13:00 (middles 12:30 and 13:30);
        // those starting at 11:00 and 14:00 only touch the range.
        let center = now - 23.0 * 3600.0;
        assert_eq!(center, 13.0 * 3600.0);
        assert_eq!(w.baseline_between(&LAYOUT, center - 3600.0, center + 3600.0).probes, 120);
        // 13:30 ± 1 h holds three middles: 12:30, 13:30 and 14:30.
        let later = center + 1800.0;
        assert_eq!(w.baseline_between(&LAYOUT, later - 3600.0, later + 3600.0).probes, 180);
        // The cache follows the range.
        assert_eq!(w.baseline_between(&LAYOUT, center - 3600.0, center + 3600.0).probes, 120);
    }

    #[test]
    fn sketches_merge_across_buckets() {
        let mut w = Windowed::<Sketch>::default();
        for i in 0..100 {
            w.record(&LAYOUT, f64::from(i) * 5.0, |s| s.add(0.1 + f64::from(i) * 0.001));
        }
        let s = w.recent();
        assert_eq!(s.count(), 100);
        let median = s.quantile(0.5).unwrap_or_default();
        assert!((median - 0.15).abs() < 0.15 * SKETCH_ALPHA * 2.0, "{median}");
        assert!(s.is_compatible());
    }

    #[test]
    fn sketches_persist_exactly() {
        let mut s = Sketch::empty();
        for i in 0..1000 {
            s.add(0.001 * 1.01f64.powi(i));
        }
        s.add(0.0);
        s.add(2e-9);
        s.add(1e9);
        let json = serde_json::to_string(&s).unwrap_or_default();
        let back: Sketch = serde_json::from_str(&json).unwrap_or_else(|_| Sketch::empty());
        assert!(back.is_compatible());
        assert_eq!(back.count(), 1003);
        for q in [0.0, 0.01, 0.5, 0.95, 0.999, 1.0] {
            assert_eq!(back.quantile(q), s.quantile(q));
        }
        assert_eq!(back.quantile(1.0), Some(SKETCH_MAX_SECONDS));
        // The store spans 10^-9 to 10^4 s at most.
        assert!(s.0.length() <= 768, "{}", s.0.length());
    }
}
