//! `wsprobe demo` through the real binary: it starts with no configuration and shows
//! every feature against its embedded service. Each behaviour is observed where a user
//! would look: `/metrics`, `/api/targets`, `/api/alerts`, the banner.
//!
//! The demo's normal 5 s interval would make a flaky cycle last about two minutes, so
//! these tests run it with `--interval 300ms` (the cycle counts connections, not time,
//! and the breaker's recovery timeout is three intervals, so the sequence of states is
//! the same, only faster). The upgrade that never answers still waits out the demo's
//! fixed 3 s handshake timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::http::{get, sample};
use common::poll::poll;

const FAST: &str = "300ms";

async fn metrics(addr: SocketAddr) -> String {
    get(addr, "/metrics").await.body
}

async fn alerts(addr: SocketAddr) -> Vec<serde_json::Value> {
    let body = get(addr, "/api/alerts").await.body;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["alerts"].as_array().cloned().unwrap_or_default()
}

fn has_alert(alerts: &[serde_json::Value], kind: &str, target: &str) -> bool {
    alerts.iter().any(|a| a["key"]["kind"] == kind && a["key"]["target"] == target && a["state"] == "firing")
}

/// Polls `/metrics` until `check` holds on a scrape, failing with the last one.
async fn metrics_until(
    addr: SocketAddr,
    within: Duration,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let done = poll(within, Duration::from_millis(100), || async {
        let m = metrics(addr).await;
        if check(&m) {
            Ok(m)
        } else {
            Err(m)
        }
    });
    done.await.unwrap_or_else(|m| panic!("not within {within:?}: {what}\n{m}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_probes_every_target_kind_and_stops_on_ctrl_c() {
    let (mut child, banner) = common::demo::start("500ms", &[], &[]);
    let addr = banner.addr;
    assert!(banner.lines[0].starts_with("wsprobe demo"), "{:?}", banner.lines);
    assert_eq!(
        banner.first_url,
        format!("http://{addr}/"),
        "the status page comes first: {:?}",
        banner.lines
    );
    assert!(banner.ca_file.is_file(), "the CA file {} the banner names exists", banner.ca_file.display());

    let m = metrics_until(
        addr,
        Duration::from_secs(15),
        "every target probed, the wss:// one successfully",
        |m| {
            let ok = |t| sample(m, "wsprobe_probes_total", &[("target", t), ("result", "success")]);
            ok("demo-agent").is_some_and(|n| n >= 1.0)
                && ok("demo-tls").is_some_and(|n| n >= 1.0)
                && sample(m, "wsprobe_probe_success", &[("target", "demo-flaky")]).is_some()
        },
    )
    .await;
    for step in ["welcome", "request", "agent_started", "agent_completed"] {
        let labels = [("target", "demo-agent"), ("step", step)];
        let count = sample(&m, "wsprobe_step_duration_seconds_count", &labels);
        assert!(count.is_some_and(|n| n >= 1.0), "no timing for step {step}:\n{m}");
    }
    // The certificate made at start verifies against the CA the demo wrote: TLS is timed
    // and no probe of the wss:// target failed.
    let tls = [("target", "demo-tls"), ("phase", "tls")];
    assert!(sample(&m, "wsprobe_phase_duration_seconds_count", &tls).is_some_and(|n| n >= 1.0), "{m}");
    let tls_failures = [("target", "demo-tls"), ("result", "failure")];
    assert_eq!(sample(&m, "wsprobe_probes_total", &tls_failures), Some(0.0), "{m}");
    let expiry = sample(&m, "wsprobe_tls_cert_expiry_timestamp_seconds", &[("target", "demo-tls")]);
    assert!(expiry.is_some_and(|t| t > wsprobe::util::time::unix_now()), "{m}");

    assert_eq!(get(addr, "/readyz").await.status, 200);
    let api: serde_json::Value = serde_json::from_str(&get(addr, "/api/targets").await.body).unwrap();
    let names: Vec<&str> =
        api["targets"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["demo-agent", "demo-flaky", "demo-stream-session", "demo-tls"]);

    child.signal("INT");
    let status = child.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    assert!(!banner.ca_file.exists(), "the demo leaves its CA file behind: {}", banner.ca_file.display());
}

/// The flaky cycle: four failures in a row (stalled, 1011 crash, upgrade timeout,
/// stalled) open the breaker and raise ProbeFailing; the healthy stretch after them
/// closes the breaker and resolves the alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_flaky_cycle_opens_and_closes_the_breaker_and_raises_and_resolves_probe_failing() {
    let (_child, banner) = common::demo::start(FAST, &[], &[]);
    let addr = banner.addr;
    let started = Instant::now();

    // Raised: about 6 connections in (2 s), then 1 s of stall and 3 s of handshake timeout.
    let raised = poll(Duration::from_secs(30), Duration::from_millis(100), || async {
        let now = alerts(addr).await;
        if has_alert(&now, "ProbeFailing", "demo-flaky") {
            Ok(now)
        } else {
            Err(now)
        }
    });
    let raised = raised.await.unwrap_or_else(|a| panic!("ProbeFailing not raised within 30s: {a:#?}"));
    let raised_after = started.elapsed();
    let failing = raised.iter().find(|a| a["key"]["kind"] == "ProbeFailing").unwrap();
    assert_eq!(failing["severity"], "page");
    let description = failing["description"].as_str().unwrap();
    assert!(description.starts_with("3 consecutive failures, last: "), "{description}");
    assert!(has_alert(&raised, "CircuitOpen", "demo-flaky") || description.contains("handshake_timeout"));

    // Resolved: the next stall, then two successes.
    let resolved = poll(Duration::from_secs(30), Duration::from_millis(100), || async {
        let now = alerts(addr).await;
        if has_alert(&now, "ProbeFailing", "demo-flaky") {
            Err(now)
        } else {
            Ok(())
        }
    });
    resolved.await.unwrap_or_else(|a| panic!("ProbeFailing still firing 30s after it was raised: {a:#?}"));

    let m = metrics_until(addr, Duration::from_secs(20), "the breaker opened and closed again", |m| {
        let t = |from, to| {
            sample(
                m,
                "wsprobe_circuit_transitions_total",
                &[("target", "demo-flaky"), ("from", from), ("to", to)],
            )
            .unwrap_or(0.0)
        };
        t("closed", "open") >= 1.0 && t("open", "half_open") >= 1.0 && t("half_open", "closed") >= 1.0
    })
    .await;
    // Each failure of the cycle, with its exact reason and phase.
    for (phase, reason) in
        [("step", "stalled"), ("step", "unexpected_close"), ("handshake", "handshake_timeout")]
    {
        let labels = [("target", "demo-flaky"), ("phase", phase), ("reason", reason)];
        assert!(
            sample(&m, "wsprobe_probe_failures_total", &labels).is_some_and(|n| n >= 1.0),
            "no {reason} in {phase}:\n{m}"
        );
    }
    let first = [("target", "demo-flaky"), ("phase", "first_message"), ("reason", "first_message_timeout")];
    assert_eq!(
        sample(&m, "wsprobe_probe_failures_total", &first),
        None,
        "the stall is no first-message timeout"
    );

    // The stall as /api/targets tells it: a stream that went quiet mid-way.
    let api: serde_json::Value = serde_json::from_str(&get(addr, "/api/targets").await.body).unwrap();
    let flaky = api["targets"].as_array().unwrap().iter().find(|t| t["name"] == "demo-flaky").unwrap();
    let stalled = flaky["recent_failures"].as_array().unwrap().iter().find(|f| f["reason"] == "stalled");
    let stalled = stalled.unwrap_or_else(|| panic!("no stalled failure in {flaky:#}"));
    assert_eq!(stalled["step"], "agent_completed", "{stalled}");
    assert!(stalled["message"].as_str().unwrap().contains("went quiet"), "{stalled}");
    eprintln!("ProbeFailing raised after {raised_after:?}");
}

/// The session target holds its three sessions; in the service's cut stretch (after 10
/// intervals, for 4) each is cut after about one interval, alternately with 1001 and by a
/// dropped connection; both are counted with their reason and their lifetimes observed,
/// and the sessions come back. At 300 ms a cycle is 4.2 s: the first sessions live
/// through the held stretch (about 3 s), the ones opened in the cut stretch about 300 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_session_target_holds_its_sessions_and_counts_the_cycle_cuts_and_comes_back() {
    const T: &str = "demo-stream-session";
    let (_child, banner) = common::demo::start(FAST, &[], &[]);
    let addr = banner.addr;
    let target = [("target", T)];
    let open = |m: &str| sample(m, "wsprobe_sessions_open", &target);
    let disconnects = |m: &str, reason| {
        sample(m, "wsprobe_session_disconnects_total", &[("target", T), ("reason", reason)])
    };
    let lifetimes = |m: &str, le| {
        sample(m, "wsprobe_session_lifetime_seconds_bucket", &[("target", T), ("le", le)]).unwrap_or(0.0)
    };

    let m =
        metrics_until(addr, Duration::from_secs(10), "every session open", |m| open(m) == Some(3.0)).await;
    assert_eq!(sample(&m, "wsprobe_sessions_configured", &target), Some(3.0), "{m}");

    // Cut with both kinds, young (under 0.5 s) and, for the sessions held through the held
    // stretch, old (over 2.5 s).
    let m = metrics_until(addr, Duration::from_secs(30), "cuts of both kinds, young and old", |m| {
        disconnects(m, "unexpected_close").is_some_and(|n| n >= 2.0)
            && disconnects(m, "connection_reset").is_some_and(|n| n >= 2.0)
            && lifetimes(m, "0.5") >= 1.0
            && lifetimes(m, "+Inf") - lifetimes(m, "2.5") >= 1.0
    })
    .await;
    let cut = disconnects(&m, "unexpected_close").unwrap() + disconnects(&m, "connection_reset").unwrap();
    let observed = sample(&m, "wsprobe_session_lifetime_seconds_count", &target).unwrap();
    assert_eq!(observed, cut, "one lifetime per disconnect:\n{m}");
    let reasons: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("wsprobe_session_disconnects_total{") && l.contains(T))
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert_eq!(reasons.len(), 2, "only the two cuts end sessions: {reasons:#?}");
    for series in ["wsprobe_session_ping_rtt_seconds_count", "wsprobe_session_heartbeat_rtt_seconds_count"] {
        assert!(sample(&m, series, &target).is_some_and(|n| n >= 1.0), "no {series}:\n{m}");
    }

    // They come back: all three open again, after more connects than sessions.
    let m =
        metrics_until(addr, Duration::from_secs(10), "every session open again", |m| open(m) == Some(3.0))
            .await;
    let connects = [("target", T), ("result", "success")];
    assert!(sample(&m, "wsprobe_session_connects_total", &connects).is_some_and(|n| n >= 3.0 + cut), "{m}");

    // /api/targets: the sessions block, each cut with its reason, close code and a
    // lifetime of a cut session.
    let api: serde_json::Value = serde_json::from_str(&get(addr, "/api/targets").await.body).unwrap();
    let t = api["targets"].as_array().unwrap().iter().find(|t| t["name"] == T).unwrap();
    let sessions = &t["sessions"];
    assert_eq!(sessions["configured"], 3, "{sessions:#}");
    let held = sessions["sessions"].as_array().unwrap();
    assert_eq!(held.len(), 3, "{sessions:#}");
    let hour = &sessions["disconnects_last_hour"];
    assert!(hour["unexpected_close"].as_u64().is_some_and(|n| n >= 2), "{sessions:#}");
    assert!(hour["connection_reset"].as_u64().is_some_and(|n| n >= 2), "{sessions:#}");
    for s in held {
        assert!(s["connects"].as_u64().is_some_and(|n| n >= 2), "{s:#}");
        let last = &s["last_disconnect"];
        let lifetime = last["lifetime_seconds"].as_f64().unwrap_or_else(|| panic!("{s:#}"));
        assert!(lifetime > 0.0 && lifetime < 4.2 + 1.0, "a cut within one cycle and a second: {s:#}");
        match last["reason"].as_str() {
            Some("unexpected_close") => {
                assert_eq!(last["close_code"], 1001, "{s:#}");
                assert!(last["message"].as_str().unwrap().contains("load balancer"), "{s:#}");
            }
            Some("connection_reset") => assert_eq!(last["close_code"], serde_json::Value::Null, "{s:#}"),
            other => panic!("unexpected reason {other:?}: {s:#}"),
        }
        assert!(s["last_rtt_seconds"].as_f64().is_some(), "{s:#}");
    }
}

/// The health endpoint reports the old build for a stretch of every cycle: drift is
/// exported and alerted, then clears; the service's own `llm` breaker opens and closes;
/// both endpoints answer 503 once per cycle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_health_check_drifts_and_comes_back_and_remote_breakers_move() {
    let (_child, banner) = common::demo::start(FAST, &[], &[]);
    let addr = banner.addr;
    let drift = |m: &str| sample(m, "wsprobe_deployment_drift", &[("target", "demo-agent")]);
    let version =
        |m: &str, v| sample(m, "wsprobe_deployment_info", &[("target", "demo-agent"), ("version", v)]);

    // Checks run every 300 ms; the 7th to 10th of every 12 report the old build.
    let m = metrics_until(addr, Duration::from_secs(15), "drift seen", |m| drift(m) == Some(1.0)).await;
    assert_eq!(version(&m, wsprobe::demo::DRIFTED_VERSION), Some(1.0), "{m}");
    assert_eq!(version(&m, wsprobe::demo::EXPECTED_VERSION), None, "one version series per target:\n{m}");
    eventually_alert(addr, "DeploymentDrift", true).await;

    let m = metrics_until(addr, Duration::from_secs(15), "drift cleared", |m| drift(m) == Some(0.0)).await;
    assert_eq!(version(&m, wsprobe::demo::EXPECTED_VERSION), Some(1.0), "{m}");
    eventually_alert(addr, "DeploymentDrift", false).await;

    let llm = |state| [("target", "demo-agent"), ("breaker", "llm"), ("state", state)];
    let state = |m: &str, s| sample(m, "wsprobe_remote_circuit_state", &llm(s));
    metrics_until(addr, Duration::from_secs(15), "the remote llm breaker open", |m| {
        state(m, "open") == Some(1.0)
    })
    .await;
    metrics_until(addr, Duration::from_secs(15), "the remote llm breaker closed again", |m| {
        state(m, "closed") == Some(1.0)
    })
    .await;
    let auth = [("target", "demo-agent"), ("breaker", "auth"), ("state", "closed")];
    assert_eq!(sample(&metrics(addr).await, "wsprobe_remote_circuit_state", &auth), Some(1.0));
    // One health check and one breaker poll in each cycle get a 503.
    let m = metrics(addr).await;
    let health_503 = [("target", "demo-agent"), ("check", "version"), ("reason", "http_status")];
    assert!(sample(&m, "wsprobe_health_failures_total", &health_503).is_some_and(|n| n >= 1.0), "{m}");
    let poll_503 = [("target", "demo-agent"), ("reason", "http_status")];
    assert!(
        sample(&m, "wsprobe_remote_breaker_poll_failures_total", &poll_503).is_some_and(|n| n >= 1.0),
        "{m}"
    );
    // Notifications reach the demo's own webhook.
    let sent = [("receiver", "demo-webhook"), ("outcome", "sent")];
    assert!(sample(&m, "wsprobe_alert_notifications_total", &sent).is_some_and(|n| n >= 1.0), "{m}");
}

async fn eventually_alert(addr: SocketAddr, kind: &str, firing: bool) {
    let done = poll(Duration::from_secs(10), Duration::from_millis(100), || async {
        let now = alerts(addr).await;
        if has_alert(&now, kind, "demo-agent") == firing {
            Ok(())
        } else {
            Err(now)
        }
    });
    done.await.unwrap_or_else(|a| panic!("{kind} firing={firing} not seen within 10s: {a:#?}"));
}

/// `--open` starts `$BROWSER` on the status page, trying each `:`-separated command in
/// turn; with none to start, the demo says so and runs anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_open_starts_a_browser_on_the_status_page_and_never_fails_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("opened");
    let script = dir.path().join("browser");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$1\" > {}\n", seen.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let browser = format!("/nonexistent/browser:{}", script.display());

    let (_child, banner) = common::demo::start("5s", &["--open"], &[("BROWSER", &browser)]);
    let page = format!("http://{}/", banner.addr);
    let opened = poll(Duration::from_secs(5), Duration::from_millis(20), || async {
        std::fs::read_to_string(&seen).map_err(|e| e.to_string())
    });
    assert_eq!(opened.await.unwrap().trim(), page);
    assert!(
        banner.lines.iter().any(|l| l.contains("browser") && l.contains("started")),
        "{:?}",
        banner.lines
    );

    // No browser anywhere: no $BROWSER and no opener on PATH.
    let (_child, banner) = common::demo::start(
        "5s",
        &["--open"],
        &[("BROWSER", "/nonexistent/browser"), ("PATH", "/nonexistent")],
    );
    assert!(banner.lines.iter().any(|l| l.contains("none opened")), "{:?}", banner.lines);
    assert_eq!(get(banner.addr, "/healthz").await.status, 200, "the demo runs without a browser");
}
