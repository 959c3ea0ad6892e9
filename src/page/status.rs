//! Which of ok, failing, open circuit, drift (or not probed yet) a target is, as the page
//! shows it: the most urgent first.

use crate::breaker;
use crate::state::TargetStatus;

/// A target's state on the page. `as_str` is the `data-state` attribute and CSS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageState {
    /// The circuit breaker is open or half-open: clients would be tripping.
    Open,
    /// The last probe failed.
    Failing,
    /// Probes pass but the deployed version is not the expected one.
    Drift,
    Ok,
    /// No probe has finished yet.
    Pending,
}

impl PageState {
    pub fn of(t: &TargetStatus) -> Self {
        let circuit = t.watched.circuit.as_ref().map(|c| c.state);
        if circuit.is_some_and(|s| s != breaker::State::Closed) {
            return PageState::Open;
        }
        match &t.last_result {
            Some(r) if !r.success => PageState::Failing,
            _ if t.watched.deployment.as_ref().and_then(|d| d.drift) == Some(true) => PageState::Drift,
            Some(_) => PageState::Ok,
            None => PageState::Pending,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            PageState::Open => "open",
            PageState::Failing => "failing",
            PageState::Drift => "drift",
            PageState::Ok => "ok",
            PageState::Pending => "pending",
        }
    }

    /// The words shown.
    pub const fn label(self) -> &'static str {
        match self {
            PageState::Open => "open circuit",
            PageState::Failing => "failing",
            PageState::Drift => "drift",
            PageState::Ok => "ok",
            PageState::Pending => "not probed yet",
        }
    }

    pub const ALL: [PageState; 5] =
        [PageState::Open, PageState::Failing, PageState::Drift, PageState::Ok, PageState::Pending];
}
