//! The circuit breaker's metrics, per target ([`crate::breaker`]).
//!
//! Kept beside the breaker rather than in it, so the state machine stays free of I/O;
//! the target task records through it. Its series are tracked, so removing the target
//! removes them.

use crate::breaker::State;
use crate::metrics::{Error, Registry, TargetCounter, TargetGauge, TargetIntGauge};

#[derive(Debug, Clone)]
pub struct CircuitMetrics {
    /// `wsprobe_circuit_state{target,state}`: 1 on the current state, 0 on the others.
    pub state: TargetIntGauge,
    pub transitions: TargetCounter,
    pub since: TargetGauge,
}

impl CircuitMetrics {
    pub fn register(registry: &Registry) -> Result<Self, Error> {
        Ok(Self {
            state: registry.target_int_gauge(
                "wsprobe_circuit_state",
                "Circuit breaker state per target: 1 on the current state (closed, open, half_open).",
                &["target", "state"],
            )?,
            transitions: registry.target_counter(
                "wsprobe_circuit_transitions_total",
                "Circuit breaker transitions, by the state left and the state entered.",
                &["target", "from", "to"],
            )?,
            since: registry.target_gauge(
                "wsprobe_circuit_state_since_timestamp_seconds",
                "Unix time at which the circuit breaker entered its current state.",
                &["target"],
            )?,
        })
    }

    /// Sets the one-hot state and the time it began.
    pub fn set(&self, target: &str, state: State, since_unix: f64) {
        self.since.with_label_values(&[target]).set(since_unix);
        for s in State::ALL {
            self.state.with_label_values(&[target, s.as_str()]).set(i64::from(s == state));
        }
    }

    pub fn transition(&self, target: &str, from: State, to: State) {
        self.transitions.with_label_values(&[target, from.as_str(), to.as_str()]).inc();
    }
}
