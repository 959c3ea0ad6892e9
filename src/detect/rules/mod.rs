//! The alert rules, one file each.

mod latency;
mod probe_failing;
mod signal;
mod timeouts;

use super::alert::Finding;

pub(crate) use latency::latency;
pub(crate) use signal::signal_check;

/// A condition, and how to explain it. Most evaluations find nothing and keep nothing, so
/// the explanation is built only when an alert needs it.
pub(crate) struct Check<'a> {
    pub(crate) condition: bool,
    pub(crate) explain: Box<dyn FnOnce() -> Finding + 'a>,
}

impl<'a> Check<'a> {
    pub(crate) fn new(condition: bool, explain: impl FnOnce() -> Finding + 'a) -> Self {
        Self { condition, explain: Box::new(explain) }
    }
}
