//! The statistics and the numbers they are written with.

use super::super::format::{fmt_chance, ordinal};
use super::super::stats::{binomial_tail, rate_bound, robust_quantile};
use super::*;

#[test]
fn few_samples_need_several_slow_ones_for_a_high_quantile() {
    let sketch = |slow: usize| {
        let mut s = Sketch::empty();
        for i in 0..20 {
            s.add(if i < slow { 1.0 } else { 0.1 });
        }
        s
    };
    let q = |slow| {
        let s = sketch(slow);
        s.quantile(robust_quantile(0.95, s.count(), 3)).unwrap()
    };
    assert!(q(2) < 0.11);
    assert!(q(3) > 0.99);
    // Enough samples: the plain quantile.
    assert_eq!(robust_quantile(0.95, 1000, 3), 0.95);
}

#[test]
fn binomial_tails_and_chances_read_right() {
    let close = |a: f64, b: f64| ((a - b) / b).abs() < 1e-9;
    // Reference values from exact sums.
    assert!(close(binomial_tail(21, 3, 0.0025), 2.009_167_463_230_471_6e-5));
    assert!(close(binomial_tail(20, 2, 0.1), 0.608_253_001_874_832_7));
    assert!(close(binomial_tail(600, 5, 0.001), 3.894_643_934_549_589e-4));
    assert!(close(binomial_tail(20, 20, 0.5), 9.536_743_164_062_5e-7));
    assert_eq!(binomial_tail(20, 0, 0.1), 1.0);
    assert_eq!(binomial_tail(20, 21, 0.1), 0.0);
    assert_eq!(binomial_tail(20, 3, 0.0), 0.0);
    assert_eq!(fmt_chance(2.009e-5), "1 in 50,000");
    assert_eq!(fmt_chance(8.56e-5), "1 in 12,000");
    assert_eq!(fmt_chance(0.003), "1 in 330");
    assert_eq!(fmt_chance(0.608), "61%");
    // The example in README.md and ALERTS.md: 3 of 22 against 6 of 3118.
    let base = Counts { probes: 3118, timeouts: 6 };
    assert_eq!(fmt_chance(binomial_tail(22, 3, rate_bound(base))), "1 in 23,000");
    assert_eq!(
        [1, 2, 3, 4, 11, 12, 13, 21, 22, 101].map(ordinal).join(" "),
        "1st 2nd 3rd 4th 11th 12th 13th 21st 22nd 101st"
    );
}
