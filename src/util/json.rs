//! JSON values as configurations address and outputs write them: dot paths, number
//! equality, and seconds rounded for output.

use serde::Serializer;
use serde_json::Value;

use super::text::{escape_control, excerpt};

/// Splits a dot path (`build.git_commit`, `items.0.id`) into its keys. An empty path or
/// an empty key is an error that shows `example`, the caller's idea of a good path.
pub fn split_path(path: &str, example: &str) -> Result<Vec<String>, String> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!(
            "`{}` is not a valid path (write e.g. {example})",
            escape_control(&excerpt(path, 80))
        ));
    }
    Ok(path.split('.').map(str::to_owned).collect())
}

/// Equality where `1` and `1.0` are the same number.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Seconds rounded to the microsecond, as durations are written out.
pub fn round_micros(s: f64) -> f64 {
    (s * 1e6).round() / 1e6
}

/// Seconds rounded to the millisecond, as points in time are written out.
pub fn round_millis(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// `serialize_with` for seconds (durations, Unix times): rounded to the microsecond.
pub fn ser_secs<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round_micros(*v))
}
