//! `promtool`, Prometheus's own checker, run on what the tests produce.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs promtool with `stdin`; a missing promtool fails the test (it is a declared
/// dependency of the suite, not an optional one).
pub fn promtool(args: &[&str], stdin: &str) -> std::process::Output {
    let spawned = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`promtool` is not on PATH; run `bash scripts/install-deps.sh` (Debian package `prometheus`)"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child.stdin.take().expect("promtool's stdin").write_all(stdin.as_bytes()).expect("feed promtool");
    child.wait_with_output().expect("wait for promtool")
}
