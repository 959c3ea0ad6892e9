//! The demo's configuration, as YAML a user could have written: every target kind the
//! demo service can answer (held sessions among them), the circuit breaker, health and
//! drift checks, remote breakers, and alerting with windows short enough to show alerts within a minute or
//! two of starting.

use std::net::SocketAddr;
use std::time::Duration;

use super::http::EXPECTED_VERSION;
use super::Endpoints;

/// The configuration probing `at`, every target on `interval`. The breaker's recovery
/// timeout is three intervals, so the flaky cycle opens and closes it at any pace; the
/// session target's pings, heartbeat and back-off scale with the interval too, as does
/// the service's cut cycle.
pub fn config_yaml(listen: SocketAddr, at: &Endpoints, interval: Duration) -> String {
    let recovery = humantime::format_duration(interval.saturating_mul(3));
    let Held { ping, stale, initial, max, beat_every, beat_within } = Held::new(interval);
    let interval = humantime::format_duration(interval);
    let handshake = humantime::format_duration(super::flaky::HANDSHAKE_TIMEOUT);
    let Endpoints { ws, wss, http, ca_file, pin_sha256 } = at;
    let ca_file = ca_file.display();
    format!(
        r#"listen: {listen}
defaults:
  interval: {interval}
  jitter: 10%
  timeouts: {{ handshake: {handshake}, first_message: 2s, ping: 2s, close: 2s, idle: 10s, probe: 20s }}
  circuit_breaker: {{ failure_threshold: 3, recovery_timeout: {recovery}, success_threshold: 2 }}
targets:
  # The incident's streaming check: request an agent run, expect its five events. The
  # service's health endpoint reports a build that drifts from the deployed one now and
  # then, and its own circuit breakers.
  - name: demo-agent
    url: ws://{ws}/agent
    fail_on: [ {{ json: {{ type: error_message }} }} ]
    respond: [ {{ when: {{ json: {{ type: ping }} }}, send: {{ json: {{ type: pong }} }} }} ]
    steps:
      - name: welcome
        expect: {{ json: {{ data.event: connection_established }} }}
        within: 2s
      - name: request
        send: {{ json: {{ type: execute_agent, message: synthetic check, request_id: "${{uuid}}" }} }}
      - name: agent_started
        expect: {{ json: {{ type: agent_started }} }}
        within: 3s
      - name: agent_thinking
        expect: {{ json: {{ type: agent_thinking }} }}
        within: 3s
        max_gap: 2s
      - name: tool_executing
        expect: {{ json: {{ type: tool_executing }} }}
        within: 3s
        max_gap: 2s
      - name: tool_completed
        expect: {{ json: {{ type: tool_completed }} }}
        within: 3s
        max_gap: 2s
      - name: agent_completed
        expect: {{ json: {{ type: agent_completed }} }}
        within: 3s
        max_gap: 2s
      - ping: {{}}
    health:
      - name: version
        url: http://{http}/health
        expect: {{ json: {{ status: ok }} }}
        version_path: build.version
        expected_version: "{EXPECTED_VERSION}"
    remote_breakers:
      url: http://{http}/health/breakers
      interval: {interval}
      paths:
        auth: circuit_breakers.auth.state
        llm: circuit_breakers.llm.state
  # The same request, answered quickly; misbehaves on a cycle: slow upgrades, a stream
  # that stalls mid-way, a crash (1011), an upgrade that never answers.
  - name: demo-flaky
    url: ws://{ws}/flaky
    steps:
      - name: welcome
        expect: {{ json: {{ data.event: connection_established }} }}
        within: 2s
      - name: request
        send: {{ json: {{ type: execute_agent, message: flaky check }} }}
      - name: agent_completed
        expect: {{ json: {{ type: agent_completed }} }}
        within: 3s
        max_gap: 1s
  # Held sessions, as real clients keep them: three open at once, each subscribed once,
  # pinged and heartbeated. For a stretch of every cycle the service cuts each session
  # after a short life (close code 1001, or a dropped connection), then holds them again.
  - name: demo-stream-session
    url: ws://{ws}/session
    session:
      count: 3
      ping_interval: {ping}
      stale_after: {stale}
      reconnect: {{ initial: {initial}, max: {max} }}
      heartbeat:
        send: {{ json: {{ type: ping }} }}
        expect: {{ json: {{ type: pong }} }}
        every: {beat_every}
        within: {beat_within}
    steps:
      - name: welcome
        expect: {{ json: {{ data.event: connection_established }} }}
        within: 2s
      - name: subscribe
        send: {{ json: {{ type: subscribe, channel: agent_events }} }}
      - name: subscribed
        expect: {{ json: {{ type: subscribed }} }}
        within: 2s
  # TLS with a certificate made at start, signed by a CA made at start, and its key
  # pinned on top of the chain check.
  - name: demo-tls
    url: wss://{wss}/tls
    tls: {{ ca_file: "{ca_file}", pin_sha256: ["{pin_sha256}"] }}
alerting:
  # Delivered to the demo service's own webhook, so notifications are counted as sent.
  webhooks:
    - {{ name: demo-webhook, url: "http://{http}/hooks/alerts", format: json, timeout: 2s }}
  detector:
    recent_window: 2m
    recent_bucket: 10s
    baseline_window: 30m
    baseline_bucket: 1m
    probe_failing: {{ failures: 3, successes: 2 }}
    latency: {{ baseline: window, for: 30s }}
    timeouts: {{ for: 30s, resolve_after: 1m }}
    circuit_open: {{ for: 0s }}
    deployment_drift: {{ for: 0s }}
"#
    )
}

/// The session target's timings, from the demo's interval: a ping every interval, the
/// heartbeat every two (at least 1 s, so a loaded machine does not miss its answer), a
/// back-off from a fifth of an interval to one, so cut sessions come back within the
/// service's cut stretch and are cut again.
struct Held {
    ping: String,
    stale: String,
    initial: String,
    max: String,
    beat_every: String,
    beat_within: String,
}

impl Held {
    fn new(interval: Duration) -> Self {
        let ms = |d: Duration| {
            let millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(10);
            humantime::format_duration(Duration::from_millis(millis)).to_string()
        };
        let beat_every = interval.saturating_mul(2).max(Duration::from_secs(1));
        Self {
            ping: ms(interval),
            stale: ms(interval.saturating_mul(6).max(Duration::from_secs(3))),
            initial: ms(interval / 5),
            max: ms(interval),
            beat_every: ms(beat_every),
            beat_within: ms(beat_every / 2),
        }
    }
}
