//! Where a held session's news goes besides its metrics: the alert engine (the session
//! rules of the detector) and the record file (so that `wsprobe replay` feeds the same
//! rules). One per session target, shared by its holders; without alerting and recording
//! a report costs nothing.

use crate::alerting::AlertsHandle;
use crate::detect::SessionEvent;
use crate::record::RecordHandle;

#[derive(Debug, Clone)]
pub struct Reporter {
    target: String,
    alerts: Option<AlertsHandle>,
    record: Option<RecordHandle>,
}

impl Reporter {
    pub fn new(target: &str, alerts: Option<AlertsHandle>, record: Option<RecordHandle>) -> Self {
        Self { target: target.to_owned(), alerts, record }
    }

    /// Hands `event` to the alert engine and the record file, never waiting on either.
    pub fn report(&self, event: SessionEvent) {
        if let Some(r) = &self.record {
            r.record_session(&self.target, &event);
        }
        if let Some(a) = &self.alerts {
            a.session(&self.target, event);
        }
    }
}
