//! Time and number formatting shared by the notification bodies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix seconds → `SystemTime`.
pub fn at(unix: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0))
}

/// RFC 3339 with milliseconds, as Alertmanager's API expects.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Unix seconds as RFC 3339.
pub fn rfc3339_unix(unix: f64) -> String {
    rfc3339(at(unix))
}
