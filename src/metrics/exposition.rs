//! The text exposition: the few families the `prometheus` crate keeps (daemon-wide
//! counters and gauges) and the per-target families that render themselves, merged in
//! order of family name, as the crate alone would order them.

use std::fmt::Debug;

use prometheus::proto::MetricFamily;
use prometheus::TextEncoder;

use super::histogram::LatencyVec;
use super::scalar::{Kind, ScalarVec};

/// A metric family that writes its own text.
pub(crate) trait Family: Debug + Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Appends the family's `# HELP`, `# TYPE` and sample lines; nothing without series.
    fn render(&self, out: &mut String);
}

impl Family for LatencyVec {
    fn name(&self) -> &str {
        LatencyVec::name(self)
    }
    fn render(&self, out: &mut String) {
        LatencyVec::render(self, out);
    }
}

impl<K: Kind + Debug> Family for ScalarVec<K> {
    fn name(&self) -> &str {
        ScalarVec::name(self)
    }
    fn render(&self, out: &mut String) {
        ScalarVec::render(self, out);
    }
}

/// Appends `gathered` (sorted by name, as the crate gathers) and `own` (sorted by name)
/// to `out`, merged by name. The names are distinct: the registry refuses a second one.
pub(crate) fn render<F: AsRef<dyn Family>>(gathered: &[MetricFamily], own: &[F], out: &mut String) {
    let encoder = TextEncoder::new();
    let mut own = own.iter().map(AsRef::as_ref).peekable();
    for mf in gathered {
        while let Some(f) = own.next_if(|f| f.name() < mf.name()) {
            f.render(out);
        }
        if let Err(e) = encoder.encode_utf8(std::slice::from_ref(mf), out) {
            tracing::error!(error = %e, family = mf.name(), "Could not encode a metric family.");
        }
    }
    for f in own {
        f.render(out);
    }
}
