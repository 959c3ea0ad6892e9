//! The daemon's metrics: the one registry, every feature's metrics registered on it, and
//! the daemon's own (targets loaded, configuration reloads).

use prometheus::{Gauge, IntGauge};

use crate::alerting::metrics::AlertingMetrics;
use crate::listener::ListenerMetrics;
use crate::metrics::{Error, Registry};
use crate::target::metrics::TargetMetrics;

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// What the target tasks record.
    pub target: TargetMetrics,
    /// Connections to `/metrics` and the API.
    pub listener: ListenerMetrics,
    pub targets: IntGauge,
    pub reload_successful: IntGauge,
    pub reload_timestamp: Gauge,
}

impl Metrics {
    /// Creates the registry and registers every metric but alerting's. Fails only on a
    /// programming error (a bad name).
    pub fn new() -> Result<Self, Error> {
        let registry = Registry::new()?;
        Ok(Self {
            target: TargetMetrics::register(&registry)?,
            listener: ListenerMetrics::register(&registry)?,
            targets: registry.int_gauge("wsprobe_targets", "Targets in the loaded configuration.")?,
            reload_successful: registry.int_gauge(
                "wsprobe_config_last_reload_successful",
                "Whether the last configuration (re)load succeeded (1) or was rejected (0).",
            )?,
            reload_timestamp: registry.gauge(
                "wsprobe_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load.",
            )?,
            registry,
        })
    }

    /// Registers the alerting metrics; call once per process.
    pub fn alerting(&self) -> Result<AlertingMetrics, Error> {
        AlertingMetrics::register(&self.registry)
    }

    /// Exports who this instance is: `wsprobe_shard_info{index,total}` and
    /// `wsprobe_instance_info` with the configuration's `labels:` (fixed until restart,
    /// like the listen address). Call once per process.
    pub fn identity(
        &self,
        shard: crate::shard::Shard,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let info = self.registry.int_gauge_vec(
            "wsprobe_shard_info",
            "Always 1; which shard of the configuration's targets this instance probes (index from 0).",
            &["index", "total"],
        )?;
        info.with_label_values(&[&shard.index().to_string(), &shard.total().to_string()]).set(1);
        let names: Vec<&str> = labels.keys().map(String::as_str).collect();
        let values: Vec<&str> = labels.values().map(String::as_str).collect();
        let instance = self.registry.int_gauge_vec(
            "wsprobe_instance_info",
            "Always 1; labels carry the configuration's top-level `labels:` (e.g. location).",
            &names,
        )?;
        instance.with_label_values(&values).set(1);
        Ok(())
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.registry.render()
    }

    /// The same exposition, a page at a time, as `/metrics` sends it.
    pub fn scrape(&self) -> crate::metrics::Scrape {
        self.registry.scrape()
    }
}
