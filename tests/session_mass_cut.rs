//! A mass cut: every held session ends at once, and the alert engine evaluates all of
//! what follows (disconnects, open counts, failed reconnects: about 9,000 inputs within a
//! second or two). Alone in its test binary, since it holds both ends of thousands of
//! sockets. The queue's bound and what it never drops are shown in `alerting::queue`'s
//! unit tests; here, that a real burst fits whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::poll::eventually;
use common::session::{held, value, value_or_zero, Behaviour};
use wsprobe::daemon::Options;

const SESSIONS: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_of_every_session_at_once_reaches_the_detector_whole() {
    rlimit::increase_nofile_limit(4 * SESSIONS as u64).unwrap();
    let server = held(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
targets:
  - name: fleet
    url: {}
    session: {{ count: {SESSIONS}, ping_interval: 30s, stale_after: 1m, reconnect: {{ initial: 1s, max: 1s }} }}
alerting: {{}}
",
        server.url()
    );
    let (running, cancel) = common::daemon::start_yaml(dir.path(), &yaml, Options::default()).await;
    eventually(Duration::from_secs(60), "every session is open", || {
        let m = running.shared.metrics.render();
        async move { value(&m, "wsprobe_sessions_open{target=\"fleet\"}") == Some(SESSIONS as f64) }
    })
    .await;

    // The server goes away: every session ends within a moment, each one a disconnect, an
    // open count and, a second later, a refused reconnect for the detector.
    drop(server);
    eventually(Duration::from_secs(30), "every session ended and tried again", || {
        let m = running.shared.metrics.render();
        async move {
            let refused = value_or_zero(&m, "wsprobe_probes_total{result=\"failure\",target=\"fleet\"}");
            value(&m, "wsprobe_sessions_open{target=\"fleet\"}") == Some(0.0) && refused >= SESSIONS as f64
        }
    })
    .await;
    let m = running.shared.metrics.render();
    assert_eq!(value(&m, "wsprobe_alert_inputs_dropped_total"), Some(0.0), "nothing was dropped");
    cancel.cancel();
    running.wait().await;
}
