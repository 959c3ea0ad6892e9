//! Deployment drift end to end: the version a health check reads from the service against
//! the version the pipeline expects. `wsprobe once` (the real binary) reports drift and
//! fails on it only when asked; the daemon's detector raises `DeploymentDrift` after its
//! `for` and resolves it when the expectation catches up.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::daemon::{start, write_config};
use common::health::{service, until_json, until_metrics};
use common::http::sample;
use common::process::{self, Output};
use common::ServerOpts;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_reports_drift_and_fails_on_it_only_when_asked() {
    let (svc, _shared) = service().await;
    let ws = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let run = |fail_on_drift: bool, format: &'static str| {
        write_config(
            &path,
            &format!(
                "  - name: staging
    url: {ws}
    fail_on_drift: {fail_on_drift}
    health:
      - name: version
        url: http://{svc}/health
        version_path: version
        expected_version: ${{EXPECTED_VERSION}}
",
                ws = ws.url()
            ),
        );
        let config = path.to_str().unwrap().to_owned();
        async move {
            tokio::task::spawn_blocking(move || {
                let (mut child, lines) = process::spawn(
                    &["once", "--config", &config, "--format", format],
                    &[("EXPECTED_VERSION", "1.4.2")],
                    Output::Stdout,
                );
                let status = child.wait_exit(Duration::from_secs(10));
                // The reader thread ends with the child's stdout.
                std::thread::sleep(Duration::from_millis(50));
                (status.code(), lines.try_iter().collect::<Vec<_>>().join("\n"))
            })
            .await
            .unwrap()
        }
    };

    let (code, out) = run(true, "text").await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("drift: deployed 1.4.2, staging still serves 1.4.1"), "{out}");
    assert!(out.contains("health `version`  ok"), "{out}");
    assert!(out.contains("1 of 1 targets ok") && out.contains("1 of 1 health checks ok"), "{out}");

    let (code, out) = run(false, "text").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("drift: deployed 1.4.2, staging still serves 1.4.1"), "{out}");

    let (code, out) = run(true, "json").await;
    assert_eq!(code, Some(1), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let r = &json["results"][0];
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["health"][0]["check"], "version");
    assert_eq!(r["health"][0]["version"], "1.4.1");
    assert_eq!(r["deployment"]["drift"], true);
    assert_eq!(r["deployment"]["expected_version"], "1.4.2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_drift_raises_the_detector_alert_and_resolves_it() {
    let (svc, shared) = service().await;
    let ws = common::echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("expected-version");
    std::fs::write(&expected, "1.4.1\n").unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let yaml = format!(
        "listen: 127.0.0.1:0
shutdown_grace: 2s
defaults: {{ interval: 100ms, jitter: 0% }}
alerting:
  detector:
    deployment_drift: {{ for: 300ms }}
targets:
  - name: svc
    url: {ws}
    health:
      - name: version
        url: http://{svc}/health
        version_path: version
        expected_version: '${{file:{expected}}}'
",
        ws = ws.url(),
        expected = expected.display()
    );
    std::fs::write(&path, yaml).unwrap();
    let (running, cancel) = start(&path).await;
    let addr = running.addr;
    let drift_alerts = |api: &serde_json::Value| -> Vec<serde_json::Value> {
        let alerts = api["alerts"].as_array().unwrap().iter();
        alerts.filter(|a| a["key"]["kind"] == "DeploymentDrift").cloned().collect()
    };
    let poll = |what: &'static str, done: fn(&[serde_json::Value]) -> bool| async move {
        drift_alerts(&until_json(addr, "/api/alerts", what, |api| done(&drift_alerts(api))).await)
    };

    // The expected build: checks run, no alert.
    until_metrics(addr, "the first check", |m| {
        sample(m, "wsprobe_deployment_drift", &[("target", "svc")]) == Some(0.0)
    })
    .await;
    assert!(poll("no drift alert", |a| a.is_empty()).await.is_empty());

    // A build nobody deployed goes live: pending, then firing after `for`.
    shared.set(|s| s.version = "1.4.2".to_owned());
    let firing = poll("DeploymentDrift fires", |a| a.iter().any(|x| x["state"] == "firing")).await;
    let alert = &firing[0];
    assert_eq!(alert["key"]["target"], "svc");
    assert_eq!(alert["severity"], "ticket");
    assert_eq!(alert["summary"], "svc does not run the expected deployment");
    assert_eq!(alert["description"], "deployed 1.4.1, svc still serves 1.4.2");

    // The pipeline records the new build: the alert resolves and leaves the list.
    std::fs::write(&expected, "1.4.2\n").unwrap();
    poll("DeploymentDrift resolves", |a| a.is_empty()).await;
    cancel.cancel();
    running.wait().await;
}
