//! Value types of the configuration file: humantime durations, byte sizes and percentages.
//!
//! Each parses from the human form users write (`250ms`, `1MiB`, `10%`) and prints back
//! in the same form, so `wsprobe check` and error messages show what the user typed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration written in humantime form: `250ms`, `15s`, `6m`, `1h 30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
    pub const fn from_secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| format!("invalid duration `{s}` ({e}); write e.g. `250ms`, `15s`, `6m`"))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FromStrVisitor::<HumanDuration>::new("a duration such as `15s`"))
    }
}

/// A size in bytes: a plain integer or a number with a unit (`B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn mib(n: u64) -> Self {
        Self(n << 20)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= size && n % size == 0 {
                return write!(f, "{}{unit}", n / size);
            }
        }
        write!(f, "{n}B")
    }
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || format!("invalid size `{s}`; write e.g. `1MiB`, `512KiB` or a number of bytes");
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FromStrVisitor::<ByteSize>::new("a size such as `1MiB`"))
    }
}

/// A percentage from 0 to 100, written `10%` (a bare number is accepted too).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct Percent(pub f64);

impl Percent {
    /// The fraction in `[0, 1]`.
    pub fn fraction(self) -> f64 {
        self.0 / 100.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let num = t.strip_suffix('%').unwrap_or(t).trim();
        match num.parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => Ok(Percent(v)),
            _ => Err(format!("invalid percentage `{s}`; write a value from `0%` to `100%`")),
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FromStrVisitor::<Percent>::new("a percentage such as `10%`"))
    }
}

/// Accepts strings and plain numbers, parsing both through `FromStr`.
struct FromStrVisitor<T> {
    expecting: &'static str,
    _t: std::marker::PhantomData<T>,
}

impl<T> FromStrVisitor<T> {
    fn new(expecting: &'static str) -> Self {
        Self { expecting, _t: std::marker::PhantomData }
    }
}

impl<T: FromStr<Err = String>> Visitor<'_> for FromStrVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!("1MiB".parse::<ByteSize>(), Ok(ByteSize(1 << 20)));
        assert_eq!("512KiB".parse::<ByteSize>(), Ok(ByteSize(512 << 10)));
        assert_eq!("1000".parse::<ByteSize>(), Ok(ByteSize(1000)));
        assert!("1 parsec".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize::mib(1).to_string(), "1MiB");
    }

    #[test]
    fn parses_percentages_and_durations() {
        assert_eq!("10%".parse::<Percent>(), Ok(Percent(10.0)));
        assert!("150%".parse::<Percent>().is_err());
        assert_eq!("250ms".parse::<HumanDuration>(), Ok(HumanDuration::from_millis(250)));
        assert!("soon".parse::<HumanDuration>().is_err());
    }
}
