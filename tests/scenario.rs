//! Streaming scenarios against a fake agent server: the incident's `execute_agent` flow,
//! with events dropped, delayed, stalled, closed, wrapped in envelopes, or replaced by an
//! error message. Each failure is asserted by exact reason and step name; step durations
//! against injected gaps within `[d, d + 40ms)`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Push, ServerOpts};
use tokio_util::sync::CancellationToken;
use wsprobe::probe::{Phase, ProbeResult, Prober, Reason};

const TOLERANCE: Duration = Duration::from_millis(40);
const EVENTS: [&str; 5] =
    ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn event(kind: &str) -> String {
    format!(r#"{{"type":"{kind}","run_id":"run-7"}}"#)
}

/// The five events, each `gap` after the previous one.
fn agent_script(gap: Duration) -> Vec<Push> {
    EVENTS.iter().map(|e| Push::Text(gap, event(e))).collect()
}

/// The incident's check: welcome, request, then each event with its own deadline.
fn agent_steps(within: &str) -> String {
    let mut s = String::from(
        "    steps:
      - name: welcome
        expect: { json: { type: welcome } }
        within: 1s
      - name: request
        send: { json: { type: execute_agent, message: synthetic check } }
",
    );
    for e in EVENTS {
        s.push_str(&format!(
            "      - name: {e}\n        expect: {{ json: {{ type: {e} }} }}\n        within: {within}\n"
        ));
    }
    s
}

fn prober(url: &str, extra: &str) -> Prober {
    let yaml = format!("targets:\n  - name: agent\n    url: {url}\n{extra}");
    let config = wsprobe::config::parse(Path::new("scenario.yaml"), &yaml)
        .unwrap_or_else(|e| panic!("invalid test config:\n{e}\n---\n{yaml}"));
    Prober::new(config.targets[0].clone()).expect("prober")
}

async fn probe(url: &str, extra: &str) -> ProbeResult {
    prober(url, extra).probe(&CancellationToken::new()).await.expect("not cancelled")
}

fn assert_failed_at(r: &ProbeResult, reason: Reason, step: &str) {
    assert!(!r.success, "expected a failure: {r:?}");
    assert_eq!(r.reason, Some(reason), "message: {:?}", r.message);
    assert_eq!(r.step.as_deref(), Some(step), "message: {:?}", r.message);
}

fn step_seconds(r: &ProbeResult, name: &str) -> f64 {
    r.steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name} in {r:?}"))
        .duration_seconds
}

fn assert_step_near(r: &ProbeResult, name: &str, injected: Duration) {
    let got = step_seconds(r, name);
    let (lo, hi) = (injected.as_secs_f64(), (injected + TOLERANCE).as_secs_f64());
    assert!((lo..hi).contains(&got), "step {name}: {got:.4}s, injected {lo:.3}s (up to {hi:.3}s)");
}

#[tokio::test]
async fn full_agent_run_passes_with_per_step_timings() {
    let server = common::push(ServerOpts::default(), agent_script(ms(60))).await;
    let r = probe(&server.url(), &agent_steps("1s")).await;
    assert!(r.success, "{r:?}");
    let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [&["welcome", "request"][..], &EVENTS[..]].concat());
    for e in EVENTS {
        assert_step_near(&r, e, ms(60));
    }
    assert_eq!(r.messages_sent, 1);
    assert_eq!(r.messages_received, 6);
    assert!(r.phases.get(Phase::Close).is_some(), "the session is closed after the steps: {r:?}");
    assert!(server.received()[0].contains("execute_agent"));
}

#[tokio::test]
async fn dropped_event_is_named_and_what_came_instead_is_reported() {
    let mut script = agent_script(ms(20));
    script.remove(3); // tool_completed never comes
    let server = common::push(ServerOpts::default(), script).await;
    let r = probe(&server.url(), &agent_steps("300ms")).await;
    assert_failed_at(&r, Reason::ExpectTimeout, "tool_completed");
    assert_eq!(r.phase, Some(Phase::Step));
    assert_eq!(
        r.message.as_deref(),
        Some("no message matched within 300ms (1 others received, last: type=agent_completed)")
    );
    assert_step_near(&r, "tool_completed", ms(300));
}

#[tokio::test]
async fn late_event_fails_its_own_step_deadline() {
    let mut script = agent_script(ms(20));
    script[4] = Push::Text(ms(500), event("agent_completed"));
    let server = common::push(ServerOpts::default(), script).await;
    let r = probe(&server.url(), &agent_steps("250ms")).await;
    assert_failed_at(&r, Reason::ExpectTimeout, "agent_completed");
    assert_step_near(&r, "agent_completed", ms(250));
    assert_eq!(r.message.as_deref(), Some("no message matched within 250ms (nothing else received)"));
}

#[tokio::test]
async fn stream_that_goes_quiet_is_stalled_not_a_timeout() {
    let mut script = agent_script(ms(20));
    script.truncate(2); // started, thinking, then silence
    let server = common::push(ServerOpts::default(), script).await;
    let steps = agent_steps("5s").replace("within: 5s", "within: 5s\n        max_gap: 150ms");
    let r = probe(&server.url(), &steps).await;
    assert_failed_at(&r, Reason::Stalled, "tool_executing");
    assert_eq!(r.message.as_deref(), Some("the stream went quiet: no message for 150ms (max_gap)"));
    assert_step_near(&r, "tool_executing", ms(150));
}

#[tokio::test]
async fn close_mid_scenario_reports_step_and_code() {
    let mut script = agent_script(ms(20));
    script.truncate(2);
    script.push(Push::Close(ms(20), 4001, "agent crashed".into()));
    let server = common::push(ServerOpts::default(), script).await;
    let r = probe(&server.url(), &agent_steps("1s")).await;
    assert_failed_at(&r, Reason::UnexpectedClose, "tool_executing");
    assert_eq!(r.close_code, Some(4001));
}

#[tokio::test]
async fn events_wrapped_in_an_envelope_match_by_nested_path() {
    let welcome = r#"{"type":"system_message","data":{"event":"connection_established"}}"#;
    let script = EVENTS
        .iter()
        .map(|e| {
            Push::Text(
                ms(10),
                format!(r#"{{"type":"system_message","data":{{"event":"{e}","items":[{{"id":1}}]}}}}"#),
            )
        })
        .collect();
    let opts = ServerOpts { welcome: Some(welcome.into()), ..ServerOpts::default() };
    let server = common::push(opts, script).await;
    let mut steps = String::from(
        "    steps:
      - expect: { json: { data.event: connection_established } }
        within: 1s
      - send: { text: go }
",
    );
    for e in EVENTS {
        steps.push_str(&format!(
            "      - name: {e}\n        expect: {{ json: {{ data.event: {e}, data.items.0.id: 1 }} }}\n        within: 1s\n"
        ));
    }
    let r = probe(&server.url(), &steps).await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.steps[0].name, "expect_1", "default names are <kind>_<position>");
    assert_eq!(r.steps[1].name, "send_2");
}

#[tokio::test]
async fn error_message_fails_at_once_with_the_message() {
    let script = vec![
        Push::Text(ms(10), event("agent_started")),
        Push::Text(ms(10), r#"{"type":"error_message","error":"tool quota exceeded"}"#.into()),
        Push::Text(ms(10), event("agent_thinking")),
    ];
    let server = common::push(ServerOpts::default(), script).await;
    let extra = format!("    fail_on: [ {{ json: {{ type: error_message }} }} ]\n{}", agent_steps("2s"));
    let r = probe(&server.url(), &extra).await;
    assert_failed_at(&r, Reason::ErrorMessage, "agent_thinking");
    assert!(r.message.as_deref().unwrap().contains("tool quota exceeded"), "{:?}", r.message);
    assert!(r.duration_seconds < 0.5, "failed at once, not at the deadline: {r:?}");
}

#[tokio::test]
async fn captures_feed_later_sends() {
    let welcome = r#"{"type":"welcome","session":{"thread_id":"th-42"}}"#;
    let opts = ServerOpts { welcome: Some(welcome.into()), ..ServerOpts::default() };
    let server = common::push(opts, vec![Push::Text(ms(5), event("agent_started"))]).await;
    let steps = "    steps:
      - name: welcome
        expect: { json: { type: welcome } }
        within: 1s
        capture: { thread: session.thread_id }
      - name: request
        send: { json: { type: execute_agent, thread_id: '${thread}', target: '${target}', id: '${uuid}' } }
      - name: started
        expect: { json: { type: agent_started } }
        within: 1s
        capture: { run: run_id }
      - name: follow_up
        send: { text: 'status ${run} ${thread}' }
";
    let r = probe(&server.url(), steps).await;
    assert!(r.success, "{r:?}");
    let received = server.received();
    let request: serde_json::Value = serde_json::from_str(&received[0]).unwrap();
    assert_eq!(request["thread_id"], "th-42");
    assert_eq!(request["target"], "agent");
    assert_eq!(request["id"].as_str().unwrap().len(), 36);
    assert_eq!(received[1], "status run-7 th-42");
}

#[tokio::test]
async fn expect_all_accepts_any_order_and_names_what_is_missing() {
    let script = vec![Push::Text(ms(5), event("tool_completed")), Push::Text(ms(5), event("agent_started"))];
    let server = common::push(ServerOpts::default(), script.clone()).await;
    let steps = "    steps:
      - send: { text: go }
      - name: both
        expect_all: [ { json: { type: agent_started } }, { json: { type: tool_completed } } ]
        within: 1s
";
    assert!(probe(&server.url(), steps).await.success);
    let three = steps
        .replace("]\n        within", ", { json: { type: agent_completed } } ]\n        within")
        .replace("1s", "200ms");
    let r = probe(&server.url(), &three).await;
    assert_failed_at(&r, Reason::ExpectTimeout, "both");
    assert!(
        r.message.as_deref().unwrap().starts_with("1 of 3 expected messages did not arrive (matchers #3)"),
        "{:?}",
        r.message
    );
}

#[tokio::test]
async fn application_heartbeats_are_answered_and_not_matched() {
    let script = vec![
        Push::Text(ms(5), r#"{"type":"ping"}"#.into()),
        Push::Text(ms(5), r#"{"type":"ping"}"#.into()),
        Push::Text(ms(5), event("agent_completed")),
    ];
    let server = common::push(ServerOpts::default(), script).await;
    let steps = "    respond: [ { when: { json: { type: ping } }, send: { json: { type: pong } } } ]
    steps:
      - send: { text: go }
      - name: done
        expect: { json: { type: agent_completed } }
        within: 1s
";
    let r = probe(&server.url(), steps).await;
    assert!(r.success, "{r:?}");
    assert_eq!(server.received(), ["go", r#"{"type":"pong"}"#, r#"{"type":"pong"}"#]);
}

#[tokio::test]
async fn hold_requires_traffic_every_max_gap() {
    let script: Vec<Push> = (0..3).map(|i| Push::Text(ms(40), format!("tick {i}"))).collect();
    let server = common::push(ServerOpts::default(), script).await;
    let steps = "    steps:
      - send: { text: go }
      - name: stream
        hold: 1s
        max_gap: 150ms
";
    let r = probe(&server.url(), steps).await;
    assert_failed_at(&r, Reason::Stalled, "stream");
    // Three ticks 40 ms apart, then 150 ms of silence.
    assert_step_near(&r, "stream", ms(120 + 150));

    let steps = steps
        .replace("max_gap: 150ms", "max_gap: 150ms\n      - sleep: 50ms\n      - ping: {}")
        .replace("hold: 1s", "hold: 100ms");
    let r = probe(&server.url(), &steps).await;
    assert!(r.success, "{r:?}");
    assert!(r.phases.get(Phase::Ping).is_some(), "a ping step records the ping phase");
}

#[tokio::test]
async fn close_step_sends_its_code_and_ends_the_session() {
    let server = common::echo(ServerOpts::default()).await;
    let steps = "    steps:
      - expect: { text: welcome }
        within: 1s
      - send: { binary: aGVsbG8= }
      - send: { json: { type: x } }
      - expect: { json_exists: [type] }
        within: 1s
      - close: { code: 4000, reason: done }
";
    let r = probe(&server.url(), steps).await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.steps.len(), 5);
    assert_eq!(r.messages_received, 3, "welcome, the binary echo, the JSON echo");
    assert!(r.phases.get(Phase::Close).is_some());
}

#[tokio::test]
async fn tokens_travel_as_subprotocol_query_and_rotated_file() {
    std::env::set_var("WSPROBE_SCENARIO_JWT", "header.payload.sig");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "first-token\n").unwrap();
    let server = common::echo(ServerOpts::default()).await;
    let url = format!("{}?access_token=${{WSPROBE_SCENARIO_JWT}}", server.url());
    let extra = format!(
        "    subprotocols: ['jwt.${{base64url:WSPROBE_SCENARIO_JWT}}']\n    headers: {{ X-Api-Key: '${{file:{}}}' }}\n",
        token_file.display()
    );
    let p = prober(&url, &extra);
    assert!(p.probe(&CancellationToken::new()).await.unwrap().success);
    std::fs::write(&token_file, "second-token\n").unwrap();
    assert!(p.probe(&CancellationToken::new()).await.unwrap().success);

    let requests = server.requests();
    assert!(requests[0].contains("GET /ws?access_token=header.payload.sig "), "{}", requests[0]);
    let protocol =
        requests[0].lines().find(|l| l.to_ascii_lowercase().starts_with("sec-websocket-protocol:"));
    assert_eq!(protocol.map(|l| l.split_once(':').unwrap().1.trim()), Some("jwt.aGVhZGVyLnBheWxvYWQuc2ln"));
    assert!(requests[0].contains("first-token"));
    assert!(requests[1].contains("second-token"), "the rotated token is read at the next probe");
}

#[tokio::test]
async fn secrets_are_redacted_from_failure_messages() {
    std::env::set_var("WSPROBE_SCENARIO_SECRET", "hunter2-very-secret");
    let script = vec![Push::Text(
        ms(5),
        r#"{"type":"error_message","detail":"bad token hunter2-very-secret"}"#.into(),
    )];
    let server = common::push(ServerOpts::default(), script).await;
    let extra = "    headers: { Authorization: 'Bearer ${WSPROBE_SCENARIO_SECRET}' }
    fail_on: [ { json: { type: error_message } } ]
    steps:
      - send: { text: go }
      - expect: { json: { type: never } }
        within: 1s
";
    let r = probe(&server.url(), extra).await;
    assert_eq!(r.reason, Some(Reason::ErrorMessage));
    let message = r.message.unwrap();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("bad token ***"), "{message}");
}

/// The shipped incident configs, pointed at a fake agent, pass when the service behaves
/// and name the missing event when it does not.
#[tokio::test]
async fn shipped_incident_configs_work_against_an_agent_service() {
    std::env::set_var("STAGING_JWT", "example-token");
    let enveloped =
        |e: &str| format!(r#"{{"type":"system_message","data":{{"event":"{e}"}},"run_id":"r1"}}"#);
    let welcome = enveloped("connection_established");
    for (file, wrap) in
        [("config/critical-event-delivery.yaml", true), ("config/streaming-partial-results.yaml", false)]
    {
        let opts = ServerOpts { welcome: Some(welcome.clone()), ..ServerOpts::default() };
        let script: Vec<Push> =
            EVENTS.iter().map(|e| Push::Text(ms(10), if wrap { enveloped(e) } else { event(e) })).collect();
        let server = common::push(opts, script).await;
        let text =
            std::fs::read_to_string(file).unwrap().replace("wss://api.staging.example.com/ws", &server.url());
        let config = wsprobe::config::parse(Path::new(file), &text).unwrap();
        let r =
            Prober::new(config.targets[0].clone()).unwrap().probe(&CancellationToken::new()).await.unwrap();
        assert!(r.success, "{file}: {r:?}");
        assert!(server.received()[0].contains("execute_agent"), "{file}");
    }
}
