//! The daemon in-process for a test: its configuration file written, the daemon started
//! from that file, and the token that stops it.

use std::path::Path;

use tokio_util::sync::CancellationToken;
use wsprobe::daemon::{self, Options, Running, Source};

/// Writes a configuration that listens on a free loopback port, with a 2 s shutdown grace
/// and probes every 100 ms without jitter; `targets` are the lines under `targets:`.
pub fn write_config(path: &Path, targets: &str) {
    let yaml = format!(
        "listen: 127.0.0.1:0\nshutdown_grace: 2s\ndefaults:\n  interval: 100ms\n  jitter: 0%\ntargets:\n{targets}"
    );
    std::fs::write(path, yaml).expect("write config");
}

/// Starts the daemon from the configuration file at `path`.
pub async fn start(path: &Path) -> (Running, CancellationToken) {
    start_with(path, Options::default()).await
}

/// [`start`] with options.
pub async fn start_with(path: &Path, options: Options) -> (Running, CancellationToken) {
    let config = wsprobe::config::load(path).unwrap_or_else(|e| panic!("{e}"));
    let cancel = CancellationToken::new();
    let running = daemon::start_with(config, Source::File(path.to_owned()), cancel.clone(), options)
        .await
        .expect("daemon starts");
    (running, cancel)
}

/// Writes `yaml` to `wsprobe.yaml` in `dir` and starts the daemon from it, with options.
pub async fn start_yaml(dir: &Path, yaml: &str, options: Options) -> (Running, CancellationToken) {
    let path = dir.join("wsprobe.yaml");
    std::fs::write(&path, yaml).expect("write config");
    start_with(&path, options).await
}
