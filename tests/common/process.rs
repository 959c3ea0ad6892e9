//! The real `wsprobe` binary as a child process: output read line by line on a thread
//! (so a full pipe never blocks it), signals, and a kill on drop so a failing test never
//! leaves a daemon behind.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A running child, killed and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ChildGuard {
    /// Sends a signal by name (`INT`, `TERM`, `HUP`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.0.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Waits for the exit, failing the test after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "wsprobe did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Which output stream to read lines from (the other is discarded).
#[derive(Debug, Clone, Copy)]
pub enum Output {
    Stdout,
    Stderr,
}

/// Spawns `wsprobe ARGS`; lines of the chosen stream arrive on the receiver.
pub fn spawn(args: &[&str], env: &[(&str, &str)], output: Output) -> (ChildGuard, Receiver<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsprobe"));
    cmd.args(args).envs(env.iter().copied()).stdin(Stdio::null());
    match output {
        Output::Stdout => cmd.stdout(Stdio::piped()).stderr(Stdio::null()),
        Output::Stderr => cmd.stdout(Stdio::null()).stderr(Stdio::piped()),
    };
    let mut child = ChildGuard(cmd.spawn().expect("spawn wsprobe"));
    let stream: Box<dyn Read + Send> = match output {
        Output::Stdout => Box::new(child.0.stdout.take().expect("stdout")),
        Output::Stderr => Box::new(child.0.stderr.take().expect("stderr")),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            // Keep draining after the test stops listening, so the child never sees EPIPE.
            let _ = tx.send(line);
        }
    });
    (child, rx)
}
