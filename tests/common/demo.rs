//! `wsprobe demo` as a child process, with the addresses its banner prints.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::process::{self, ChildGuard, Output};

/// The demo's process, killed on drop, and its scratch directory (the CA file), removed
/// on drop: a killed demo cannot remove it itself.
#[derive(Debug)]
pub struct DemoChild {
    child: ChildGuard,
    scratch: Option<PathBuf>,
}

impl std::ops::Deref for DemoChild {
    type Target = ChildGuard;
    fn deref(&self) -> &ChildGuard {
        &self.child
    }
}

impl std::ops::DerefMut for DemoChild {
    fn deref_mut(&mut self) -> &mut ChildGuard {
        &mut self.child
    }
}

impl Drop for DemoChild {
    fn drop(&mut self) {
        if let Some(dir) = self.scratch.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What the banner said.
#[derive(Debug)]
pub struct Banner {
    pub lines: Vec<String>,
    /// The daemon's listener (status page, /metrics, the API).
    pub addr: SocketAddr,
    /// The first URL printed.
    pub first_url: String,
    /// The CA file the demo wrote for its `wss://` target.
    pub ca_file: PathBuf,
}

/// Starts `wsprobe demo --listen 127.0.0.1:0 --interval INTERVAL EXTRA...` and reads the
/// banner up to its last line.
pub fn start(interval: &str, extra: &[&str], env: &[(&str, &str)]) -> (DemoChild, Banner) {
    let mut args = vec!["demo", "--listen", "127.0.0.1:0", "--interval", interval];
    args.extend_from_slice(extra);
    let (child, lines) = process::spawn(&args, env, Output::Stdout);
    let mut printed = Vec::new();
    while !printed.last().is_some_and(|l: &String| l.contains("press Ctrl-C")) && printed.len() < 20 {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) else { break };
        printed.push(line);
    }
    let words = || printed.iter().flat_map(|l| l.split_whitespace());
    let first_url =
        words().find(|w| ["http://", "ws://", "wss://"].iter().any(|s| w.starts_with(s))).map(str::to_owned);
    let metrics = words().find(|w| w.starts_with("http://") && w.ends_with("/metrics"));
    let addr =
        metrics.and_then(|u| u.trim_start_matches("http://").trim_end_matches("/metrics").parse().ok());
    let ca_file = words().find(|w| w.ends_with(".pem)")).map(|w| PathBuf::from(w.trim_end_matches(')')));
    match (addr, first_url, ca_file) {
        (Some(addr), Some(first_url), Some(ca_file)) => {
            let scratch = ca_file
                .parent()
                .filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().starts_with("wsprobe-demo-")))
                .map(PathBuf::from);
            (DemoChild { child, scratch }, Banner { lines: printed, addr, first_url, ca_file })
        }
        _ => panic!("the demo's banner lacks an address:\n{}", printed.join("\n")),
    }
}
