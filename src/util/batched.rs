//! A log writer that hands informational lines to the system in batches.
//!
//! At `debug` the daemon writes a line per probe, and at start a first success per
//! target: at hundreds of lines a second, one `write` call per line costs about as much
//! as formatting it. Lines below `WARN` wait here until [`BATCH_BYTES`] have gathered or
//! the flusher's next turn ([`FLUSH_EVERY`]); a warning or an error goes out at once,
//! with whatever waits ahead of it, so lines never change order and a failure is never
//! held back. Call [`Batched::flush`] before exiting.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long an informational line may wait.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Waiting lines are written once they reach this size.
pub const BATCH_BYTES: usize = 16 * 1024;

/// The shared buffer in front of `W` (stderr in the daemon). Cheap to clone.
#[derive(Debug)]
pub struct Batched<W> {
    shared: Arc<Mutex<Pending<W>>>,
}

impl<W> Clone for Batched<W> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared) }
    }
}

#[derive(Debug)]
struct Pending<W> {
    waiting: Vec<u8>,
    out: W,
    /// Every line goes out at once ([`Batched::immediate`], or no flusher could start).
    immediate: bool,
}

impl<W: Write> Pending<W> {
    fn write_out(&mut self) {
        if !self.waiting.is_empty() {
            // A log that cannot be written has nowhere to report it; the lines are dropped.
            let _ = self.out.write_all(&self.waiting);
            let _ = self.out.flush();
            self.waiting.clear();
        }
    }
}

impl<W: Write + Send + 'static> Batched<W> {
    /// Wraps `out` without a flusher: lines wait until a warning, a full batch or
    /// [`Batched::flush`]. [`Batched::start`] adds the flusher.
    pub fn new(out: W) -> Self {
        let pending = Pending { waiting: Vec::with_capacity(BATCH_BYTES), out, immediate: false };
        Self { shared: Arc::new(Mutex::new(pending)) }
    }

    /// Wraps `out` with every line written at once: for a short command whose log lines
    /// should stay in order with what it prints itself.
    pub fn immediate(out: W) -> Self {
        let batched = Self::new(out);
        batched.lock().immediate = true;
        batched
    }

    /// Wraps `out` and starts the thread that writes waiting lines every [`FLUSH_EVERY`].
    /// The thread runs as long as the process; if it cannot be started, every line is
    /// written at once instead.
    pub fn start(out: W) -> Self {
        let batched = Self::new(out);
        let flusher = batched.clone();
        let started = std::thread::Builder::new().name("log-flush".to_owned()).spawn(move || loop {
            std::thread::sleep(FLUSH_EVERY);
            flusher.flush();
        });
        if started.is_err() {
            batched.lock().immediate = true;
        }
        batched
    }

    /// Writes every waiting line now.
    pub fn flush(&self) {
        self.lock().write_out();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending<W>> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_line(&self, line: &[u8], urgent: bool) {
        let mut pending = self.lock();
        pending.waiting.extend_from_slice(line);
        if urgent || pending.immediate || pending.waiting.len() >= BATCH_BYTES {
            pending.write_out();
        }
    }
}

/// One event's output: the formatter writes a whole line through it.
#[derive(Debug)]
pub struct Line<'a, W> {
    batched: &'a Batched<W>,
    urgent: bool,
}

impl<W: Write + Send + 'static> Write for Line<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.batched.write_line(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for Batched<W> {
    type Writer = Line<'a, W>;

    /// Without the event's level, the line is treated as urgent.
    fn make_writer(&'a self) -> Self::Writer {
        Line { batched: self, urgent: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Line { batched: self, urgent: *meta.level() <= Level::WARN }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink whose writes can be counted and read.
    #[derive(Debug, Clone, Default)]
    struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn writes(&self) -> Vec<String> {
            let w = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            w.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
        }
    }

    fn line(b: &Batched<Sink>, text: &str, urgent: bool) {
        let mut l = Line { batched: b, urgent };
        let _ = l.write_all(text.as_bytes());
    }

    #[test]
    fn informational_lines_wait_and_go_out_together() {
        let sink = Sink::default();
        let b = Batched::new(sink.clone());
        line(&b, "a\n", false);
        line(&b, "b\n", false);
        assert!(sink.writes().is_empty());
        b.flush();
        assert_eq!(sink.writes(), ["a\nb\n"]);
    }

    #[test]
    fn a_warning_goes_out_at_once_behind_what_waited() {
        let sink = Sink::default();
        let b = Batched::new(sink.clone());
        line(&b, "info\n", false);
        line(&b, "warn\n", true);
        assert_eq!(sink.writes(), ["info\nwarn\n"]);
    }

    #[test]
    fn an_immediate_writer_writes_every_line_as_it_comes() {
        let sink = Sink::default();
        let b = Batched::immediate(sink.clone());
        line(&b, "a\n", false);
        line(&b, "b\n", false);
        assert_eq!(sink.writes(), ["a\n", "b\n"]);
    }

    #[test]
    fn a_full_batch_goes_out_without_waiting() {
        let sink = Sink::default();
        let b = Batched::new(sink.clone());
        let long = "x".repeat(BATCH_BYTES / 4);
        for _ in 0..4 {
            line(&b, &long, false);
        }
        assert_eq!(sink.writes().len(), 1);
        assert_eq!(sink.writes()[0].len(), BATCH_BYTES);
    }

    #[test]
    fn the_flusher_writes_waiting_lines_within_its_period() {
        let sink = Sink::default();
        let b = Batched::start(sink.clone());
        line(&b, "later\n", false);
        let deadline = std::time::Instant::now() + FLUSH_EVERY * 20;
        while sink.writes().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(sink.writes(), ["later\n"]);
    }

    #[test]
    fn warnings_and_errors_are_urgent_and_info_waits() {
        let sink = Sink::default();
        let b = Batched::new(sink.clone());
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(b.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("first");
            assert!(sink.writes().is_empty(), "{:?}", sink.writes());
            tracing::warn!("second");
            assert_eq!(sink.writes().len(), 1);
            tracing::info!("third");
            tracing::error!("fourth");
        });
        let writes = sink.writes();
        assert_eq!(writes.len(), 2, "{writes:?}");
        let order: Vec<&str> = writes
            .iter()
            .flat_map(|w| w.lines())
            .filter_map(|l| ["first", "second", "third", "fourth"].into_iter().find(|w| l.ends_with(w)))
            .collect();
        assert_eq!(order, ["first", "second", "third", "fourth"]);
    }
}
