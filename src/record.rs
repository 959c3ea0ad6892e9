//! `wsprobe run --record FILE.jsonl`: every probe result appended as one JSON line.
//!
//! Each line is the result shape of `wsprobe once --format json` plus `"ts"`, the Unix time
//! the probe ended. `wsprobe replay` reads such files back, so users can tune alerting on
//! their own history. What held sessions report (disconnects, open counts, round trips) is
//! recorded too, one line each: `{"ts": …, "target": …, "session": {"event": …, …}}`, so
//! that a replay feeds the session rules as the daemon did. Writing happens on its own task behind a bounded queue: a slow disk
//! never delays probing; when the queue is full a line is dropped and logged.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::detect::SessionEvent;
use crate::probe::ProbeResult;

/// Lines waiting to be written before new ones are dropped.
const QUEUE: usize = 4096;

#[derive(Serialize)]
struct Line<'a> {
    ts: f64,
    #[serde(flatten)]
    result: &'a ProbeResult,
}

#[derive(Serialize)]
struct SessionLine<'a> {
    ts: f64,
    target: &'a str,
    session: &'a SessionEvent,
}

/// One trace line for a session event of `target` at `ts` (Unix seconds).
pub fn session_line(target: &str, event: &SessionEvent, ts: f64) -> String {
    let line = SessionLine { ts: crate::util::json::round_millis(ts), target, session: event };
    serde_json::to_string(&line).unwrap_or_default()
}

/// One trace line for `result`.
pub fn line(result: &ProbeResult) -> String {
    let ts = result.started_at + result.duration_seconds;
    serde_json::to_string(&Line { ts: crate::util::json::round_millis(ts), result }).unwrap_or_default()
}

/// The sending side, cloned into the recorder of every target.
#[derive(Debug, Clone)]
pub struct RecordHandle {
    tx: mpsc::Sender<String>,
}

impl RecordHandle {
    pub fn record(&self, result: &ProbeResult) {
        if self.tx.try_send(line(result)).is_err() {
            tracing::warn!(target_name = %result.target, "The record file is not keeping up; a result was not recorded.");
        }
    }
}

impl RecordHandle {
    /// Appends a session event of `target`, timed now.
    pub fn record_session(&self, target: &str, event: &SessionEvent) {
        let line = session_line(target, event, crate::util::time::unix_now());
        if self.tx.try_send(line).is_err() {
            tracing::warn!(target_name = %target, "The record file is not keeping up; a session event was not recorded.");
        }
    }
}

/// Opens `path` for appending (creating it) and starts the writer. The task ends, after
/// flushing, when every handle is dropped.
pub async fn open(path: &Path) -> std::io::Result<(RecordHandle, JoinHandle<()>)> {
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
    let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
    let path: PathBuf = path.to_owned();
    let task = tokio::spawn(async move {
        while let Some(mut line) = rx.recv().await {
            line.push('\n');
            if let Err(e) = file.write_all(line.as_bytes()).await {
                tracing::error!(file = %path.display(), error = %e, "Cannot write to the record file.");
            }
        }
        let _ = file.flush().await;
    });
    Ok((RecordHandle { tx }, task))
}
