//! How the page writes times and durations: UTC clock times, short durations, ages.

use crate::alerting::rfc3339_unix;

/// `13:45` (UTC).
pub fn clock(unix: f64) -> String {
    let t = rfc3339_unix(unix);
    t.get(11..16).unwrap_or("").to_owned()
}

/// `2026-12-01 13:45:37 UTC`.
pub fn when(unix: f64) -> String {
    let t = rfc3339_unix(unix);
    match (t.get(..10), t.get(11..19)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => t,
    }
}

/// `850 µs`, `12.3 ms`, `1.24 s`, `2 min 5 s`.
pub fn secs(s: f64) -> String {
    if !s.is_finite() {
        return "?".to_owned();
    }
    if s < 0.001 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 0.1 {
        format!("{:.1} ms", s * 1e3)
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else if s < 60.0 {
        format!("{s:.2} s")
    } else {
        let whole = s.round() as u64;
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

/// `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`.
pub fn ago(unix: f64, now: f64) -> String {
    let d = (now - unix).max(0.0);
    if d < 90.0 {
        format!("{d:.0} s ago")
    } else if d < 90.0 * 60.0 {
        format!("{:.0} min ago", d / 60.0)
    } else if d < 48.0 * 3600.0 {
        format!("{:.0} h ago", d / 3600.0)
    } else {
        format!("{:.0} d ago", d / 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_read_well() {
        assert_eq!(secs(0.00085), "850 µs");
        assert_eq!(secs(0.0123), "12.3 ms");
        assert_eq!(secs(0.25), "250 ms");
        assert_eq!(secs(1.239), "1.24 s");
        assert_eq!(secs(125.0), "2 min 5 s");
        assert_eq!(when(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(clock(3600.0 * 13.0 + 45.0 * 60.0), "13:45");
        assert_eq!(ago(100.0, 105.0), "5 s ago");
    }
}
