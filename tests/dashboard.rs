//! `dashboards/wsprobe.json` kept honest: every metric it queries is one wsprobe registers
//! (or is explicitly announced but not yet implemented), every query is valid PromQL to
//! `promtool`, and the panels carry what an importer and an on-call reader rely on.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::promtool::promtool;
use wsprobe::daemon::metrics::Metrics;

/// Metrics the interface announces that wsprobe does not register yet. The dashboard
/// may already chart them; each entry leaves this list when it lands. The session
/// metrics come with `session:` targets; `wsprobe_sessions_configured` (the block's
/// `count`) is the panels' own request.
const ANNOUNCED_NOT_YET_REGISTERED: &[&str] = &[
    "wsprobe_sessions_open",
    "wsprobe_sessions_configured",
    "wsprobe_session_connects_total",
    "wsprobe_session_disconnects_total",
    "wsprobe_session_lifetime_seconds",
    "wsprobe_session_ping_rtt_seconds",
    "wsprobe_session_heartbeat_rtt_seconds",
];

fn load_dashboard() -> serde_json::Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/wsprobe.json");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", file.display()))
}

#[test]
fn dashboard_queries_only_metrics_wsprobe_exports() {
    let dashboard = load_dashboard();
    // Panel and annotation queries, and the template variables' `label_values(...)`.
    let mut queries = Vec::new();
    collect(&dashboard, "expr", &mut queries);
    assert!(queries.len() >= 10, "expected the dashboard's PromQL queries, found only {queries:?}");
    collect(&dashboard, "definition", &mut queries);

    let registered = registered_metric_names();
    let name = regex::Regex::new(r"wsprobe_[a-z_]+").unwrap();
    let mut used = BTreeSet::new();
    for query in &queries {
        for m in name.find_iter(query) {
            used.insert(base_name(m.as_str(), &registered));
        }
    }
    let unknown: Vec<_> = used
        .iter()
        .filter(|n| !registered.contains(*n) && !ANNOUNCED_NOT_YET_REGISTERED.contains(&n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "dashboards/wsprobe.json queries metrics wsprobe does not export: {unknown:?}\n\
         registered: {registered:?}\n\
         (a metric registered in a feature's metrics.rs but missing here needs a child in \
         `registered_metric_names`)"
    );
    // The allow-list must not outlive its reason.
    for announced in ANNOUNCED_NOT_YET_REGISTERED {
        assert!(
            !registered.contains(*announced),
            "`{announced}` is registered now; remove it from ANNOUNCED_NOT_YET_REGISTERED"
        );
    }

    assert_dashboard_shape(&dashboard);
}

#[test]
fn dashboard_queries_are_valid_promql() {
    let mut exprs = Vec::new();
    collect(&load_dashboard(), "expr", &mut exprs);
    // Grafana's variables become what they could expand to.
    let promql: Vec<String> = exprs
        .iter()
        .map(|q| q.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$target", ".*"))
        .collect();
    assert!(!promql.is_empty());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in promql.iter().enumerate() {
        // A JSON string is a YAML string, escapes and all.
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::json!(expr)
        ));
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, &rules).expect("write the rules file");
    let out = promtool(&["check", "rules", file.to_str().expect("a UTF-8 path")], "");
    assert!(
        out.status.success(),
        "a dashboard query is not valid PromQL:\n{}{}\n--- queries as rules ---\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every string value under `key`, anywhere in the dashboard.
fn collect(value: &serde_json::Value, key: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if k == key => out.push(s.clone()),
                    _ => collect(v, key, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, key, out)),
        _ => {}
    }
}

/// The metric family a sample name belongs to: histogram series carry suffixes.
fn base_name(name: &str, registered: &BTreeSet<String>) -> String {
    if registered.contains(name) {
        return name.to_owned();
    }
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base.to_owned();
        }
    }
    name.to_owned()
}

/// Names with a `# TYPE` line in a fresh registry where every vector has a child
/// (`Registry::gather` leaves out vectors without one).
fn registered_metric_names() -> BTreeSet<String> {
    let m = Metrics::new().expect("metrics register");
    m.target.add_target("t");
    let p = &m.target.probe;
    p.success.with_label_values(&["t"]).set(1.0);
    p.failures.with_label_values(&["t", "connect", "connect_refused"]).inc();
    p.duration.with_label_values(&["t"]).observe(0.1);
    p.phase_duration.with_label_values(&["t", "connect"]).observe(0.1);
    p.step_duration.with_label_values(&["t", "welcome"]).observe(0.1);
    p.message_gap.with_label_values(&["t"]).observe(0.1);
    p.last_success.with_label_values(&["t"]).set(1.0);
    p.handshake_status.with_label_values(&["t"]).set(101);
    p.tls_cert_expiry.with_label_values(&["t"]).set(1.0);
    m.target.circuit.set("t", wsprobe::breaker::State::Closed, 1.0);
    m.target.circuit.transition("t", wsprobe::breaker::State::Closed, wsprobe::breaker::State::Open);
    let h = &m.target.health;
    h.set_deployment("t", Some("1.0.0"), Some((false, 0.0)));
    h.set_remote_breaker("t", "auth", wsprobe::health::RemoteState::Closed);
    h.remote_poll_failed("t", wsprobe::health::HealthReason::Timeout);
    h.success.with_label_values(&["t", "c"]).set(1.0);
    h.failures.with_label_values(&["t", "c", "timeout"]).inc();
    h.http_status.with_label_values(&["t", "c"]).set(200);
    h.duration.with_label_values(&["t", "c", "total"]).observe(0.1);
    let location = std::collections::BTreeMap::from([("location".to_owned(), "eu-west-1".to_owned())]);
    m.identity(wsprobe::shard::Shard::ALL, &location).expect("identity metrics register");
    let a = m.alerting().expect("alerting metrics register");
    a.notifications.with_label_values(&["r", "sent"]).inc();
    a.alerts.with_label_values(&["ProbeFailing", "t", "", "page", "firing"]).set(1);
    m.render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// What an importer and a 3 a.m. reader rely on: titles, descriptions, the variables.
fn assert_dashboard_shape(d: &serde_json::Value) {
    let variables = d["templating"]["list"].as_array().expect("templating.list");
    let var = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("the dashboard has no `{name}` variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    let target = var("target");
    assert_eq!(target["multi"], true, "`target` is multi-select");
    assert_eq!(target["includeAll"], true, "`target` offers All");
    let definition = target["definition"].as_str().unwrap_or_default();
    assert!(definition.contains("label_values(wsprobe_probe_success, target)"), "{definition}");

    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut queried = 0;
    for p in panels.iter().chain(panels.iter().flat_map(|p| p["panels"].as_array().into_iter().flatten())) {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {p}");
        assert!(ids.insert(p["id"].as_u64().expect("a numeric panel id")), "panel id reused: {title}");
        if p["type"] == "row" {
            continue;
        }
        assert!(
            !p["description"].as_str().unwrap_or_default().is_empty(),
            "panel `{title}` has no description"
        );
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel `{title}` ignores the datasource variable"
        );
        for t in p["targets"].as_array().into_iter().flatten() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "a query of `{title}`");
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.is_empty(), "panel `{title}` has a query without `expr`");
            queried += 1;
        }
    }
    assert!(queried >= 10, "only {queried} panel queries");

    // What an on-call reader needs to find, each by a metric some panel charts.
    let mut exprs = Vec::new();
    collect(d, "expr", &mut exprs);
    for (what, metric) in [
        ("health check status", "wsprobe_health_success"),
        ("health check latency by phase", "wsprobe_health_duration_seconds_bucket"),
        ("deployment drift", "wsprobe_deployment_drift"),
        ("deployed versions", "wsprobe_deployment_info"),
        ("remote breakers", "wsprobe_remote_circuit_state"),
        ("breaker transitions (flapping)", "wsprobe_circuit_transitions_total"),
        ("wsprobe's own alerts", "wsprobe_alerts"),
        ("notification outcomes", "wsprobe_alert_notifications_total"),
        ("sessions open", "wsprobe_sessions_open"),
        ("sessions configured", "wsprobe_sessions_configured"),
        ("session disconnects by reason", "wsprobe_session_disconnects_total"),
        ("session lifetime distribution", "wsprobe_session_lifetime_seconds_bucket"),
        ("session ping RTT", "wsprobe_session_ping_rtt_seconds_bucket"),
        ("session heartbeat RTT", "wsprobe_session_heartbeat_rtt_seconds_bucket"),
    ] {
        let charted = exprs.iter().any(|e| regex::Regex::new(&format!(r"\b{metric}\b")).unwrap().is_match(e));
        assert!(charted, "no panel shows {what} (`{metric}`)");
    }
}
