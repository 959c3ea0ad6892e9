//! `wsprobe run --record FILE.jsonl`: every probe result appended as one JSON line.
//!
//! Each line is the result shape of `wsprobe once --format json` plus `"ts"`, the Unix time
//! the probe ended. `wsprobe replay` reads such files back, so users can tune alerting on
//! their own history. Writing happens on its own task behind a bounded queue: a slow disk
//! never delays probing; when the queue is full a line is dropped and logged.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::probe::ProbeResult;

/// Lines waiting to be written before new ones are dropped.
const QUEUE: usize = 4096;

#[derive(Serialize)]
struct Line<'a> {
    ts: f64,
    #[serde(flatten)]
    result: &'a ProbeResult,
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
