//! The statistics behind the thresholds: how likely a count of timeouts is at the
//! baseline's rate, and which quantile a few latency samples can bear.

use super::window::Counts;

/// The baseline's timeout rate taken at the upper end of what its count allows (about one
/// standard deviation above, and never below 2 timeouts' worth), so that a young or lucky
/// baseline without timeouts does not make two of them look impossible.
pub(crate) fn rate_bound(base: Counts) -> f64 {
    let x = base.timeouts as f64;
    ((x + 1.0 + (x + 1.0).sqrt()) / base.probes.max(1) as f64).min(1.0)
}

/// Slow samples a window of `n` must hold: `min_slow` for up to 39 samples (a 10-minute
/// window probed every 30 s holds about 20), one more for every further 20. More probes
/// give chance outliers more tries; with this the chance that they reach the count stays
/// about what it is at 30 s (at a 0.5 % outlier rate, 4 of 20 happen in 1 in 350,000
/// windows and 5 of 40 in 1 in 560,000, but 4 of 40 in 1 in 20,000).
pub(crate) fn slow_samples_needed(min_slow: u64, n: u64) -> u64 {
    min_slow + n.saturating_sub(20) / 20
}

/// The quantile to read from `n` samples so that at least `min_slow` of them are at or
/// above it: `q` itself unless that would rest on fewer samples.
///
/// DDSketch returns the value of rank `floor(q × (n − 1))` (0-based), which has
/// `n − rank` samples at or above it.
pub(crate) fn robust_quantile(q: f64, n: u64, min_slow: u64) -> f64 {
    if n <= 1 || min_slow <= 1 {
        return q;
    }
    let rank = (q * (n - 1) as f64).floor() as u64;
    if n - rank.min(n) >= min_slow {
        return q;
    }
    let wanted = n.saturating_sub(min_slow);
    // The middle of the rank's interval, so that flooring lands on it exactly.
    ((wanted as f64 + 0.5) / (n - 1) as f64).min(q)
}

/// The chance of at least `k` timeouts among `n` probes if each timed out with probability
/// `p`: the binomial upper tail, summed from its `k`-th term so that tiny values keep their
/// precision.
pub(crate) fn binomial_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 || p >= 1.0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    let ln_choose: f64 = (1..=k).map(|j| ((n - k + j) as f64 / j as f64).ln()).sum();
    let mut term = (ln_choose + k as f64 * p.ln() + (n - k) as f64 * (-p).ln_1p()).exp();
    let odds = p / (1.0 - p);
    let mut sum = 0.0;
    for i in k..=n {
        sum += term;
        // Past the mode the terms only shrink; stop once they no longer count.
        if term <= sum * 1e-17 {
            break;
        }
        term *= (n - i) as f64 / (i + 1) as f64 * odds;
    }
    sum.min(1.0)
}

/// The chance of at least `k` events when `mean` are expected (the Poisson upper tail),
/// summed from its `k`-th term so that tiny values keep their precision.
pub(crate) fn poisson_tail(mean: f64, k: u64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if mean.is_nan() || mean <= 0.0 {
        return 0.0;
    }
    let ln_factorial: f64 = (1..=k).map(|j| (j as f64).ln()).sum();
    let mut term = (-mean + k as f64 * mean.ln() - ln_factorial).exp();
    let mut sum = 0.0;
    let mut i = k;
    // Past the mode the terms only shrink; stop once they no longer count.
    while term > sum * 1e-17 && i < k + 100_000 {
        sum += term;
        i += 1;
        term *= mean / i as f64;
    }
    sum.min(1.0)
}
