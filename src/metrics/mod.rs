//! The metrics room: one registry per daemon, the helpers every feature registers its
//! metrics through, the per-target series tracker, and the text exposition.
//!
//! It knows no feature. Each feature registers and records its own metrics in a
//! `metrics.rs` beside its code: the probe (`probe/metrics.rs`), the circuit breaker
//! (`breaker/metrics.rs`), health checks, drift and remote breakers (`health/metrics.rs`),
//! alerting (`alerting/metrics.rs`), the target task (`target/metrics.rs`: skipped and
//! in-flight probes, probe slots), the listener (`listener/mod.rs`) and the daemon
//! (`daemon/metrics.rs`: targets, reloads). Label values come only from configured names
//! and closed enums, so cardinality is bounded by the configuration.
//!
//! Per-target families, which are nearly all of a scrape's series, render themselves:
//! `series` keeps each series' label text (escaped once) in the order the text format
//! wants, `histogram` and `scalar` write their kind's lines, and `exposition` merges them
//! by name with the daemon-wide families the `prometheus` crate keeps and writes the
//! text a page at a time, so `/metrics` streams it. Every family name is registered once,
//! whichever side renders it.
//!
//! A per-target metric is registered with one of the `target_*` helpers: its first label
//! is `target`, and every series made through it is noted by the [`Tracker`], so removing
//! a target (or one of its steps, checks or breakers) is [`Tracker::forget`] or
//! [`Tracker::forget_where`], never a list of what to remove. Adding a metric is
//! therefore a change to one file, the feature's own `metrics.rs`:
//!
//! ```ignore
//! // In the feature's `register`: the name, help and labels, once.
//! let retries = registry.target_counter("wsprobe_probe_retries_total", "Probes retried.", &["target"])?;
//! // Where it is recorded:
//! self.retries.with_label_values(&[&r.target]).inc_by(r.retries);
//! // Nothing else: when the target leaves, `tracker.forget(target)` takes this series too.
//! ```

mod exposition;
mod histogram;
mod scalar;
mod series;
mod tracker;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::{Gauge, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use exposition::Family;
pub use exposition::{Scrape, PAGE};
pub use histogram::{LatencyHistogram, LatencyVec};
pub use prometheus::Error;
pub use scalar::{CounterSeries, GaugeSeries, IntGaugeSeries, ScalarVec};
pub use tracker::{Series, Tracked, Tracker, Vector};

/// One bucket set for every latency: 1 ms to 120 s (the longest default timeout).
pub const LATENCY_BUCKETS: [f64; 17] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0];

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("WSPROBE_REVISION");

/// A per-target counter, gauge, integer gauge and latency histogram.
pub type TargetCounter = Tracked<ScalarVec<scalar::Count>>;
pub type TargetGauge = Tracked<ScalarVec<scalar::Float>>;
pub type TargetIntGauge = Tracked<ScalarVec<scalar::Int>>;
pub type TargetHistogram = Tracked<LatencyVec>;

/// The daemon's registry and its series tracker. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Registry {
    inner: prometheus::Registry,
    tracker: Tracker,
    /// The per-target families, which render themselves ([`histogram`], [`scalar`]),
    /// in order of name.
    own: Arc<RwLock<Vec<Arc<dyn Family>>>>,
    /// Every family name registered, here or with the crate: one family per name.
    names: Arc<Mutex<HashSet<String>>>,
    /// The size of the last exposition: the next one starts with that much room, rather
    /// than copying tens of megabytes each time the buffer doubles.
    last_size: Arc<AtomicUsize>,
}

impl Registry {
    /// An empty registry with `wsprobe_build_info`. Fails only on a programming error
    /// (a bad name, a metric registered twice), as every register helper does.
    pub fn new() -> Result<Self, Error> {
        let r = Self {
            inner: prometheus::Registry::new(),
            tracker: Tracker::new(),
            own: Arc::default(),
            names: Arc::default(),
            last_size: Arc::default(),
        };
        let build = r.int_gauge_vec(
            "wsprobe_build_info",
            "Always 1; labels carry the running build.",
            &["version", "revision"],
        )?;
        build.with_label_values(&[VERSION, REVISION]).set(1);
        Ok(r)
    }

    /// The tracker of every per-target series registered here.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    fn add<C: Collector + Clone + 'static>(&self, c: C) -> Result<C, Error> {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if c.desc().iter().any(|d| names.contains(&d.fq_name)) {
            return Err(Error::AlreadyReg);
        }
        self.inner.register(Box::new(c.clone()))?;
        names.extend(c.desc().iter().map(|d| d.fq_name.clone()));
        Ok(c)
    }

    /// Registers a self-rendering per-target family made by `make` from the checked name.
    fn own<F: Family + Vector>(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        make: impl FnOnce(&str) -> F,
    ) -> Result<Tracked<F>, Error> {
        if labels.first() != Some(&"target") {
            return Err(Error::Msg(format!(
                "per-target metric `{name}` must have `target` as its first label"
            )));
        }
        // The same checks of the name and labels the crate makes of its own metrics.
        let desc = Desc::new(
            name.to_owned(),
            help.to_owned(),
            labels.iter().map(|l| (*l).to_owned()).collect(),
            Default::default(),
        )?;
        let family = make(&desc.fq_name);
        {
            let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
            if !names.insert(desc.fq_name.clone()) {
                return Err(Error::AlreadyReg);
            }
            let mut own = self.own.write().unwrap_or_else(PoisonError::into_inner);
            let at = own.partition_point(|f| f.name() < family.name());
            own.insert(at, Arc::new(family.clone()));
        }
        Ok(self.tracker.track(name, labels, family))
    }

    pub fn counter(&self, name: &str, help: &str) -> Result<IntCounter, Error> {
        self.add(IntCounter::new(name, help)?)
    }

    pub fn int_gauge(&self, name: &str, help: &str) -> Result<IntGauge, Error> {
        self.add(IntGauge::new(name, help)?)
    }

    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, Error> {
        self.add(Gauge::new(name, help)?)
    }

    /// A labelled counter whose series belong to no target (a receiver, a close reason).
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, Error> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    /// A labelled gauge whose series belong to no target, or whose owner removes them.
    pub fn int_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, Error> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    /// A histogram on [`LATENCY_BUCKETS`] whose one series belongs to no target.
    pub fn latency_histogram(&self, name: &str, help: &str) -> Result<prometheus::Histogram, Error> {
        let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
        self.add(prometheus::Histogram::with_opts(opts)?)
    }

    pub fn target_counter(&self, name: &str, help: &str, labels: &[&str]) -> Result<TargetCounter, Error> {
        self.own(name, help, labels, |name| ScalarVec::new(name, help, labels))
    }

    pub fn target_gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<TargetGauge, Error> {
        self.own(name, help, labels, |name| ScalarVec::new(name, help, labels))
    }

    pub fn target_int_gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<TargetIntGauge, Error> {
        self.own(name, help, labels, |name| ScalarVec::new(name, help, labels))
    }

    /// A per-target histogram on [`LATENCY_BUCKETS`].
    pub fn target_histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<TargetHistogram, Error> {
        self.own(name, help, labels, |name| LatencyVec::new(name, help, labels))
    }

    /// The Prometheus text exposition of every metric, families in order of name.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(self.last_size.load(Ordering::Relaxed) + 64 * 1024);
        self.scrape().fill(&mut text, usize::MAX);
        self.last_size.store(text.len(), Ordering::Relaxed);
        text
    }

    /// The same exposition, to be written a page at a time ([`Scrape`]).
    pub fn scrape(&self) -> Scrape {
        let own = self.own.read().unwrap_or_else(PoisonError::into_inner).clone();
        Scrape::new(self.inner.gather(), own)
    }
}

#[cfg(test)]
mod tests;
