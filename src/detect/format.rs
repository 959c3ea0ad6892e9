//! Numbers as alert descriptions write them: latencies, rates, window lengths, chances
//! and ranks.

use std::time::Duration;

/// Seconds as people read latencies: `850µs`, `4.2ms`, `210ms`, `1.8s`, `38s`.
pub(crate) fn fmt_secs(s: f64) -> String {
    let sig2 = |v: f64, unit: &str| {
        if v < 10.0 {
            format!("{}{unit}", (v * 10.0).round() / 10.0)
        } else {
            format!("{}{unit}", v.round())
        }
    };
    if s < 1e-3 {
        sig2(s * 1e6, "µs")
    } else if s < 1.0 {
        sig2(s * 1e3, "ms")
    } else {
        sig2(s, "s")
    }
}

/// A rate as a percentage: `12%`, `0.4%`, `0%`.
pub(crate) fn fmt_rate(r: f64) -> String {
    let p = r * 100.0;
    if p == 0.0 || p >= 10.0 {
        format!("{}%", p.round())
    } else {
        format!("{}%", (p * 10.0).round() / 10.0)
    }
}

/// A window length as written in configurations: `10m`, `24h`, `1h30m`, `45s`.
pub(crate) fn fmt_window(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (h, m) = (s / 3600, s % 3600 / 60);
    match (h, m, s % 60) {
        (0, 0, _) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, 0) => format!("{h}h{m}m"),
        _ => humantime::format_duration(Duration::from_secs(s)).to_string(),
    }
}

/// A session lifetime or time held: `850ms`, `60s`, `95s`, then minutes and hours as
/// windows are written (`2m`, `1h30m`; seconds are dropped past two minutes).
pub(crate) fn fmt_lifetime(seconds: f64) -> String {
    if seconds < 120.0 {
        fmt_secs(seconds.max(0.0))
    } else {
        fmt_window((seconds / 60.0).round() * 60.0)
    }
}

/// A small probability as people read it: `1 in 59,000`, `3%`.
pub(crate) fn fmt_chance(p: f64) -> String {
    if p >= 0.01 {
        return format!("{}%", (p * 100.0).round());
    }
    let one_in = 1.0 / p.max(1e-15);
    // Two significant digits.
    let scale = 10f64.powi(one_in.log10().floor() as i32 - 1).max(1.0);
    let n = ((one_in / scale).round() * scale) as u64;
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("1 in {grouped}")
}

/// `1st`, `2nd`, `3rd`, `4th`, `11th`, `22nd`.
pub(crate) fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_secs(0.00085), "850µs");
        assert_eq!(fmt_secs(0.0042), "4.2ms");
        assert_eq!(fmt_secs(0.21), "210ms");
        assert_eq!(fmt_secs(1.8), "1.8s");
        assert_eq!(fmt_secs(38.2), "38s");
        assert_eq!(fmt_rate(0.12), "12%");
        assert_eq!(fmt_rate(0.004), "0.4%");
        assert_eq!(fmt_rate(0.0), "0%");
        assert_eq!(fmt_window(600.0), "10m");
        assert_eq!(fmt_window(86400.0), "24h");
        assert_eq!(fmt_window(5400.0), "1h30m");
        assert_eq!(fmt_window(45.0), "45s");
        assert_eq!(fmt_lifetime(60.2), "60s");
        assert_eq!(fmt_lifetime(7230.0), "2h1m");
        assert_eq!(fmt_lifetime(0.85), "850ms");
    }
}
