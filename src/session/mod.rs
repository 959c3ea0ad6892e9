//! Long-lived sessions: a target with a `session:` block is held open, `count` sessions
//! at a time, the way real clients hold theirs, instead of being probed on an interval.
//!
//! This room owns the settings (`settings`), the loop that holds one open session
//! (`hold`: pings, heartbeat, silence, lifetime), the wait between reconnects
//! (`backoff`), the metrics (`metrics`), what the API shows per session (`status`) and
//! what is reported to the alert engine and the record file (`report`).
//! Opening a session is the probe's own connect ([`crate::probe::Prober::open`]), so it
//! is timed by phase and reported like a probe. Running a target's sessions (how many,
//! reconnecting, feeding the sink and the breaker, resizing) is `target::sessions`.

pub mod backoff;
pub mod hold;
pub mod metrics;
pub mod report;
pub mod settings;
pub mod status;

pub(crate) use settings::RawSession;
pub use settings::{Heartbeat, Reconnect, SessionSettings};
pub use status::SessionsView;
