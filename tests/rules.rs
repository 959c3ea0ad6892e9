//! The Prometheus alerting rules in `deploy/prometheus/`, checked the way Prometheus
//! loads them and kept in step with what wsprobe exports.
//!
//! promtool validates `alerts.yml` and runs the unit tests of `alerts.test.yml`. The rest
//! holds the rules to the metric contract: every metric they query is exported (or
//! announced), the timeout regex is exactly `Reason::is_timeout`, every alert has a
//! severity, numbers in its text and a runbook section in `ALERTS.md`, and every alert is
//! unit-tested firing (the important ones also staying silent).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regex::Regex;
use serde::Deserialize;

use wsprobe::breaker::State;
use wsprobe::daemon::metrics::Metrics;
use wsprobe::metrics::LATENCY_BUCKETS;
use wsprobe::probe::{Phase, PhaseTimings, ProbeResult, Reason, StepResult};

const RULES: &str = "deploy/prometheus/alerts.yml";
const RULE_TESTS: &str = "deploy/prometheus/alerts.test.yml";
const RUNBOOKS: &str = "deploy/prometheus/ALERTS.md";

/// Where `runbook_url`s point: ALERTS.md in the placeholder repository named in alerts.yml.
const RUNBOOK_BASE: &str = "https://github.com/wsprobe/wsprobe/blob/main/deploy/prometheus/ALERTS.md";

/// Metrics announced to the rules' authors but not registered by wsprobe yet.
/// Rules may query them ahead of time; each entry leaves this list when it lands, with a
/// comment saying what it is, e.g. `"wsprobe_example_state", // {target,state}, one-hot`.
/// The session metrics are the interface of `session:` targets, which land separately;
/// `wsprobe_sessions_configured` is the rules' own request (the `count` of the block,
/// without which "fewer open than configured" cannot be written).
const ANNOUNCED_NOT_YET_EXPORTED: &[&str] = &[
    "wsprobe_sessions_open",                 // {target}, gauge
    "wsprobe_sessions_configured",           // {target}, gauge: session.count
    "wsprobe_session_disconnects_total",     // {target,reason}, counter
    "wsprobe_session_lifetime_seconds",      // {target}, histogram
    "wsprobe_session_ping_rtt_seconds",      // {target}, histogram
    "wsprobe_session_heartbeat_rtt_seconds", // {target}, histogram
];

/// Alerts for which a unit test must also show them staying silent (healthy target, an
/// isolated failure, a regression under the floor).
const MUST_BE_TESTED_SILENT: &[&str] = &[
    "WSProbeProbeFailing",
    "WSProbeTimeoutRateHigh",
    "WSProbePhaseLatencyRegression",
    "WSProbeStepLatencyRegression",
    "WSProbeCircuitOpen",
    "WSProbeCircuitFlapping",
    "WSProbeSessionsDropping",
    "WSProbeSessionsBelowConfigured",
    "WSProbeSessionHeartbeatRTTRegression",
];

// ---------------------------------------------------------------------------------------
// promtool.

#[test]
fn promtool_accepts_the_rules() {
    let out = promtool(&["check", "rules", RULES]);
    let said = output_text(&out);
    assert!(out.status.success(), "`promtool check rules {RULES}` failed ({}):\n{said}", out.status);
    let count = load_rules().groups.iter().map(|g| g.rules.len()).sum::<usize>();
    assert!(
        said.contains(&format!("{count} rules found")),
        "promtool should have found all {count} rules of {RULES}:\n{said}"
    );
}

#[test]
fn promtool_unit_tests_pass() {
    let out = promtool(&["test", "rules", RULE_TESTS]);
    assert!(
        out.status.success(),
        "`promtool test rules {RULE_TESTS}` failed ({}):\n{}",
        out.status,
        output_text(&out)
    );
}

/// Runs promtool from the repository root. A missing promtool fails the test: it is a
/// declared dependency of the suite, and skipping would hide broken rules.
fn promtool(args: &[&str]) -> Output {
    match Command::new("promtool").args(args).current_dir(root()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`promtool` is not on PATH, so the alerting rules cannot be checked. \
             Run `bash scripts/install-deps.sh` (it installs the Debian package `prometheus`)."
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

fn output_text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

// ---------------------------------------------------------------------------------------
// The rules against the metric contract.

#[test]
fn rules_query_only_metrics_wsprobe_exports() {
    let exported = exported_samples();
    let families: BTreeSet<String> = exported.keys().map(|s| family(s, &exported)).collect();
    let name = Regex::new(r"\bwsprobe_[a-z0-9_]+").unwrap();

    let mut used = BTreeSet::new();
    for rule in all_rules() {
        // Annotations run queries too, when a notification is rendered.
        let texts = [Some(&rule.expr), rule.annotations.get("summary"), rule.annotations.get("description")];
        for text in texts.into_iter().flatten() {
            used.extend(name.find_iter(text).map(|m| family(m.as_str(), &exported)));
        }
    }
    assert!(used.contains("wsprobe_probe_success"), "no wsprobe metric found in {RULES}: {used:?}");

    let unknown: Vec<_> = used
        .iter()
        .filter(|n| !families.contains(*n) && !ANNOUNCED_NOT_YET_EXPORTED.contains(&n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "{RULES} queries metrics wsprobe does not export (renamed?): {unknown:?}\nexported: {families:?}"
    );
    // The allow-list must not outlive its reason, nor hold names nobody uses.
    for announced in ANNOUNCED_NOT_YET_EXPORTED {
        assert!(
            !families.contains(*announced),
            "`{announced}` is exported now; remove it from ANNOUNCED_NOT_YET_EXPORTED"
        );
        assert!(used.contains(*announced), "`{announced}` is allow-listed but no rule uses it");
    }
}

#[test]
fn timeout_regex_is_exactly_the_timeout_class_reasons() {
    let expected: BTreeSet<&str> =
        Reason::ALL.iter().filter(|r| r.is_timeout()).map(|r| r.as_str()).collect();
    let regex = Regex::new(r#"reason=~"([^"]*)""#).unwrap();

    let timeout_rule = all_rules()
        .into_iter()
        .find(|r| r.alert.as_deref() == Some("WSProbeTimeoutRateHigh"))
        .expect("WSProbeTimeoutRateHigh in alerts.yml");
    assert!(regex.is_match(&timeout_rule.expr), "WSProbeTimeoutRateHigh must select reasons with reason=~");

    let text = read(RULES);
    let mut seen = 0;
    for cap in regex.captures_iter(&text) {
        let listed: BTreeSet<&str> = cap[1].split('|').collect();
        assert_eq!(
            listed, expected,
            "a reason regex in {RULES} differs from `Reason::is_timeout` in src/probe/outcome.rs"
        );
        seen += 1;
    }
    assert!(seen >= 1);
}

#[test]
fn every_alert_has_a_severity_its_numbers_and_a_runbook_section() {
    let anchors = runbook_anchors();
    let mut names = BTreeSet::new();
    for rule in all_rules() {
        let Some(alert) = rule.alert.as_deref() else { continue };
        assert!(names.insert(alert.to_owned()), "alert `{alert}` is defined twice");
        let severity = rule.labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("page" | "ticket")),
            "{alert}: labels.severity must be page or ticket, is {severity:?}"
        );
        for key in ["summary", "description"] {
            let text = rule.annotations.get(key).map(String::as_str).unwrap_or_default();
            assert!(
                text.contains("{{") && !text.trim().is_empty(),
                "{alert}: annotations.{key} must say which target or instance and the numbers: {text:?}"
            );
        }
        let url = rule.annotations.get("runbook_url").map(String::as_str).unwrap_or_default();
        let anchor = format!("runbook-{}", alert.to_lowercase());
        assert_eq!(url, format!("{RUNBOOK_BASE}#{anchor}"), "{alert}: runbook_url");
        assert!(anchors.contains(&anchor), "{RUNBOOKS} has no section `Runbook: {alert}` (#{anchor})");
    }
    let stale: Vec<_> = anchors
        .iter()
        .filter(|a| !names.iter().any(|n| **a == format!("runbook-{}", n.to_lowercase())))
        .collect();
    assert!(stale.is_empty(), "{RUNBOOKS} has runbook sections for alerts that do not exist: {stale:?}");
}

/// GitHub's anchors for the `Runbook: ...` headings: lower case, punctuation dropped,
/// spaces as hyphens.
fn runbook_anchors() -> BTreeSet<String> {
    read(RUNBOOKS)
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|heading| {
            heading
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
                .map(|c| if c == ' ' { '-' } else { c })
                .collect::<String>()
        })
        .filter(|a| a.starts_with("runbook-"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The unit tests against the rules and the metric contract.

#[test]
fn every_alert_is_unit_tested_firing_and_the_important_ones_silent_too() {
    let alerts: BTreeSet<String> = all_rules().into_iter().filter_map(|r| r.alert).collect();
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for case in load_rule_tests().tests.iter().flat_map(|t| &t.alert_rule_test) {
        assert!(
            alerts.contains(&case.alertname),
            "{RULE_TESTS} tests `{}`, which {RULES} does not define (an empty exp_alerts would pass)",
            case.alertname
        );
        if case.exp_alerts.is_empty() { &mut silent } else { &mut firing }.insert(case.alertname.clone());
    }
    let untested: Vec<_> = alerts.difference(&firing).collect();
    assert!(untested.is_empty(), "alerts without a unit test in which they fire: {untested:?}");
    let never_silent: Vec<_> = MUST_BE_TESTED_SILENT.iter().filter(|a| !silent.contains(**a)).collect();
    assert!(
        never_silent.is_empty(),
        "alerts without a unit test in which they stay silent: {never_silent:?}"
    );
}

#[test]
fn unit_test_series_use_real_metric_names_labels_and_values() {
    let exported = exported_samples();
    let sample = Regex::new(r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}$"#).unwrap();
    let pair = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)""#).unwrap();
    let phases: BTreeSet<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
    let reasons: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    let states: BTreeSet<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
    let target_name = Regex::new("^[a-z0-9_-]+$").unwrap();
    let bounds: Vec<String> =
        LATENCY_BUCKETS.iter().map(|b| b.to_string()).chain(["+Inf".to_owned()]).collect();

    let mut checked = 0;
    for series in load_rule_tests().tests.iter().flat_map(|t| &t.input_series) {
        let caps = sample.captures(series.series.trim()).unwrap_or_else(|| {
            panic!("cannot read the input series `{}` (write it as name{{labels}})", series.series)
        });
        let name = &caps[1];
        let labels: BTreeMap<&str, &str> = pair
            .captures_iter(&caps[2])
            .map(|c| (c.get(1).unwrap().as_str(), c.get(2).unwrap().as_str()))
            .collect();
        let context = || format!("input series `{}` in {RULE_TESTS}", series.series);

        if name == "up" {
            continue;
        }
        assert!(name.starts_with("wsprobe_"), "{}: not a wsprobe metric", context());
        let base = family(name, &exported);
        let announced = ANNOUNCED_NOT_YET_EXPORTED.contains(&base.as_str());
        assert!(exported.contains_key(name) || announced, "{}: wsprobe exports no `{name}`", context());

        // What a scrape of wsprobe adds to the labels it exports.
        if let Some(expected) = exported.get(name) {
            let mut expected = expected.clone();
            expected.extend(["job".to_owned(), "instance".to_owned()]);
            let actual: BTreeSet<String> = labels.keys().map(|k| (*k).to_owned()).collect();
            assert_eq!(actual, expected, "{}: label names", context());
        }
        for (key, value) in &labels {
            let valid = match *key {
                "phase" => phases.contains(value),
                "reason" => reasons.contains(value),
                "result" => matches!(*value, "success" | "failure"),
                "state" | "from" | "to" => states.contains(value),
                "le" => bounds.iter().any(|b| b == value),
                "target" => target_name.is_match(value),
                _ => true,
            };
            assert!(valid, "{}: `{key}=\"{value}\"` is not a value wsprobe exports", context());
        }
        checked += 1;
    }
    assert!(checked >= 20, "expected the unit tests' wsprobe series, found {checked}");
}

// ---------------------------------------------------------------------------------------
// What wsprobe exports.

/// Sample names (`_bucket`, `_sum`, `_count` included) and their label names, from a
/// registry that has seen one successful and one failed probe, a breaker state and a
/// deployment check. `Registry::gather` leaves out vectors without a child, so each
/// vector the rules query needs one here.
fn exported_samples() -> BTreeMap<String, BTreeSet<String>> {
    let metrics = Metrics::new().expect("metrics register");
    metrics.target.add_target("t");
    let mut phases = PhaseTimings::default();
    phases.set(Phase::Connect, 0.002);
    phases.set(Phase::Handshake, 0.01);
    let ok = ProbeResult {
        http_status: Some(101),
        duration_seconds: 0.05,
        phases,
        steps: vec![StepResult { name: "welcome".to_owned(), ok: true, duration_seconds: 0.004 }],
        messages_received: 2,
        messages_sent: 1,
        tls_cert_expiry: Some(1_800_000_000),
        started_at: 1_700_000_000.0,
        message_gaps: vec![0.01],
        ..ProbeResult::new("t")
    };
    let failed = ProbeResult {
        success: false,
        reason: Some(Reason::ConnectTimeout),
        phase: Some(Phase::Connect),
        ..ok.clone()
    };
    metrics.target.probe.observe(&ok);
    metrics.target.probe.observe(&failed);
    for state in State::ALL {
        metrics
            .target
            .circuit
            .state
            .with_label_values(&["t", state.as_str()])
            .set(i64::from(state == State::Open));
    }
    metrics.target.circuit.transition("t", State::Closed, State::Open);
    metrics.target.health.deployment_info.with_label_values(&["t", "1.4.1"]).set(1);
    metrics.target.health.deployment_drift.with_label_values(&["t"]).set(1);
    let location = std::collections::BTreeMap::from([("location".to_owned(), "eu-west-1".to_owned())]);
    metrics.identity(wsprobe::shard::Shard::ALL, &location).expect("identity metrics register");

    let line = Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ").unwrap();
    let label = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="#).unwrap();
    let mut samples: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for text in metrics.render().lines().filter(|l| !l.starts_with('#')) {
        if let Some(caps) = line.captures(text) {
            let names = caps.get(2).map_or("", |m| m.as_str());
            samples
                .entry(caps[1].to_owned())
                .or_default()
                .extend(label.captures_iter(names).map(|c| c[1].to_owned()));
        }
    }
    samples
}

/// The metric family a sample name belongs to: histogram samples carry a suffix.
fn family(name: &str, exported: &BTreeMap<String, BTreeSet<String>>) -> String {
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = name.strip_suffix(suffix) {
            // A counter or gauge may itself end in `_count`; only histograms are stripped.
            if exported.contains_key(&format!("{base}_bucket")) || !exported.contains_key(name) {
                return base.to_owned();
            }
        }
    }
    name.to_owned()
}

// ---------------------------------------------------------------------------------------
// The files.

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
struct Rule {
    alert: Option<String>,
    expr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct RuleTestFile {
    tests: Vec<RuleTestGroup>,
}

#[derive(Debug, Deserialize)]
struct RuleTestGroup {
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertRuleTest>,
}

#[derive(Debug, Deserialize)]
struct InputSeries {
    series: String,
}

#[derive(Debug, Deserialize)]
struct AlertRuleTest {
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<serde_norway::Value>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn parse<T: for<'de> Deserialize<'de>>(relative: &str) -> T {
    serde_norway::from_str(&read(relative))
        .unwrap_or_else(|e| panic!("{}: {e}", Path::new(relative).display()))
}

fn load_rules() -> RuleFile {
    parse(RULES)
}

fn all_rules() -> Vec<Rule> {
    load_rules().groups.into_iter().flat_map(|g| g.rules).collect()
}

fn load_rule_tests() -> RuleTestFile {
    parse(RULE_TESTS)
}

#[test]
fn every_detector_alert_has_a_section_for_its_runbook_url() {
    // `alerting.runbook_url: ...ALERTS.md#{alertname}` lands on `### <alertname>`.
    let text = read(RUNBOOKS);
    let headings: BTreeSet<&str> =
        text.lines().filter_map(|l| l.strip_prefix("### ")).map(str::trim).collect();
    for kind in wsprobe::detect::AlertKind::ALL {
        assert!(headings.contains(kind.as_str()), "{RUNBOOKS} has no `### {kind}` section");
    }
}
