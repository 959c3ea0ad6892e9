//! The text exposition: the few families the `prometheus` crate keeps (daemon-wide
//! counters and gauges) and the per-target families that render themselves, merged in
//! order of family name, as the crate alone would order them.
//!
//! A [`Scrape`] writes the exposition a page at a time: each call appends lines until
//! the page holds [`PAGE`] bytes, taking a family's series (sorted) when it reaches that
//! family. `/metrics` sends those pages as they are written, so a scrape of tens of
//! megabytes never needs a buffer of that size: the allocator hands the same few
//! page-sized blocks back each time, where one fresh 70 MB buffer per scrape was
//! thousands of page faults. [`super::Registry::render`] writes the same text into one
//! string, for callers that want it whole.

use std::fmt::Debug;
use std::sync::Arc;

use prometheus::proto::MetricFamily;
use prometheus::TextEncoder;

use super::series::{Lines, Sorted};

/// How much a page of the exposition holds, give or take a line: small enough to stay
/// below the allocator's threshold for mapping fresh memory (128 KiB in glibc).
pub const PAGE: usize = 64 * 1024;

/// A metric family that writes its own text.
pub(crate) trait Family: Debug + Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Its series as they are now, in exposition order; `None` when it has none (then the
    /// family is left out, as the crate leaves out an empty family).
    fn pager(&self) -> Option<Box<dyn Pager>>;
}

/// The rest of one family's text, written a page at a time.
pub(crate) trait Pager: Send {
    /// Appends lines while `out` is shorter than `limit`; true once the family is done.
    fn fill(&mut self, out: &mut String, limit: usize) -> bool;
}

struct Paged<L: Lines> {
    family: L,
    series: Sorted<L::Cell>,
    next: usize,
    headed: bool,
}

impl<L: Lines> Pager for Paged<L> {
    fn fill(&mut self, out: &mut String, limit: usize) -> bool {
        if !self.headed {
            self.family.store().head(L::TYPE, out);
            self.headed = true;
        }
        while let Some(series) = self.series.get(self.next) {
            if out.len() >= limit {
                return false;
            }
            self.family.lines(series, out);
            self.next += 1;
        }
        true
    }
}

impl<L: Lines> Family for L {
    fn name(&self) -> &str {
        &self.store().name
    }

    fn pager(&self) -> Option<Box<dyn Pager>> {
        let series = self.store().sorted();
        if series.is_empty() {
            return None;
        }
        Some(Box::new(Paged { family: self.clone(), series, next: 0, headed: false }))
    }
}

/// Appends one family whole.
#[cfg(test)]
pub(crate) fn render_family<L: Lines>(family: &L, out: &mut String) {
    if let Some(mut p) = Family::pager(family) {
        p.fill(out, usize::MAX);
    }
}

/// One scrape of the exposition, in progress. An [`Iterator`] of pages.
pub struct Scrape {
    /// What is left of both lists, each in reverse order of name (the next one last).
    gathered: Vec<MetricFamily>,
    own: Vec<Arc<dyn Family>>,
    current: Option<Box<dyn Pager>>,
    done: bool,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrape")
            .field("gathered", &self.gathered.len())
            .field("own", &self.own.len())
            .finish()
    }
}

impl Scrape {
    /// `gathered` sorted by name, as the crate gathers; `own` sorted by name. The names
    /// are distinct: the registry refuses a second family of a name.
    pub(crate) fn new(mut gathered: Vec<MetricFamily>, mut own: Vec<Arc<dyn Family>>) -> Self {
        gathered.reverse();
        own.reverse();
        Self { gathered, own, current: None, done: false }
    }

    /// Appends the exposition while `out` is shorter than `limit`, stopping between two
    /// lines; true once all of it is written.
    pub fn fill(&mut self, out: &mut String, limit: usize) -> bool {
        loop {
            if let Some(pager) = self.current.as_mut() {
                if !pager.fill(out, limit) {
                    return false;
                }
                self.current = None;
            }
            if out.len() >= limit {
                return self.gathered.is_empty() && self.own.is_empty();
            }
            let crate_first = match (self.gathered.last(), self.own.last()) {
                (None, None) => return true,
                (Some(mf), Some(f)) => mf.name() < f.name(),
                (gathered, _) => gathered.is_some(),
            };
            if crate_first {
                if let Some(mf) = self.gathered.pop() {
                    if let Err(e) = TextEncoder::new().encode_utf8(std::slice::from_ref(&mf), out) {
                        tracing::error!(error = %e, family = mf.name(), "Could not encode a metric family.");
                    }
                }
            } else if let Some(f) = self.own.pop() {
                self.current = f.pager();
            }
        }
    }
}

impl Iterator for Scrape {
    /// The next page, about [`PAGE`] bytes (the last one shorter).
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        // Room for the line that crosses the limit, so a page is one allocation.
        let mut page = String::with_capacity(PAGE + PAGE / 4);
        self.done = self.fill(&mut page, PAGE);
        (!page.is_empty()).then_some(page)
    }
}
