//! `config/example.yaml`, the documented example: it must pass `check`, name the variables
//! it needs, and its `# default: X` comments must equal the built-in defaults (see
//! [`example_documents_the_real_defaults`]).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::config::{parse, run, text, wsprobe, STAGING_JWT};
use wsprobe::config::{self, Config};
use wsprobe::probe::Timeouts;
use wsprobe::util::units::{ByteSize, HumanDuration, Percent};

const EXAMPLE: &str = "config/example.yaml";

#[test]
fn example_passes_check() {
    let out = run(&["check", "--config", EXAMPLE]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with(&format!("{EXAMPLE}: valid; ")), "{stdout}");
    assert!(!stdout.contains(STAGING_JWT), "a substituted value was printed: {stdout}");
}

#[test]
fn example_names_the_variables_it_needs() {
    let out = wsprobe().env_remove("STAGING_JWT").args(["check", "--config", EXAMPLE]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`STAGING_JWT` is not set"));
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE)).unwrap();
    assert!(
        example.contains("STAGING_JWT=dummy-token wsprobe check"),
        "the header should say how to check it"
    );
}

/// How a documented default is written and compared.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Duration,
    Percent,
    Size,
    Bool,
    Addr,
    Count,
    /// A YAML list of HTTP statuses, `[200, 204]`.
    Statuses,
}

/// Every key whose default the example must document with `# default: X`, and its kind.
const DOCUMENTED: [(&str, Kind); 32] = [
    ("listen", Kind::Addr),
    ("shutdown_grace", Kind::Duration),
    ("defaults.interval", Kind::Duration),
    ("defaults.jitter", Kind::Percent),
    ("defaults.timeouts.dns", Kind::Duration),
    ("defaults.timeouts.connect", Kind::Duration),
    ("defaults.timeouts.proxy", Kind::Duration),
    ("defaults.timeouts.tls", Kind::Duration),
    ("defaults.timeouts.handshake", Kind::Duration),
    ("defaults.timeouts.first_message", Kind::Duration),
    ("defaults.timeouts.ping", Kind::Duration),
    ("defaults.timeouts.close", Kind::Duration),
    ("defaults.timeouts.idle", Kind::Duration),
    ("defaults.timeouts.probe", Kind::Duration),
    ("defaults.max_message_size", Kind::Size),
    ("defaults.server_speaks_first", Kind::Bool),
    ("defaults.tls.insecure_skip_verify", Kind::Bool),
    ("defaults.circuit_breaker.failure_threshold", Kind::Count),
    ("defaults.circuit_breaker.recovery_timeout", Kind::Duration),
    ("defaults.circuit_breaker.success_threshold", Kind::Count),
    ("targets.health.expect_status", Kind::Statuses),
    ("targets.health.timeout", Kind::Duration),
    ("targets.health.max_body_size", Kind::Size),
    ("targets.remote_breakers.interval", Kind::Duration),
    ("targets.remote_breakers.timeout", Kind::Duration),
    ("targets.remote_breakers.max_body_size", Kind::Size),
    ("targets.fail_on_drift", Kind::Bool),
    ("targets.session.count", Kind::Count),
    ("targets.session.ping_interval", Kind::Duration),
    ("targets.session.stale_after", Kind::Duration),
    ("targets.session.reconnect.initial", Kind::Duration),
    ("targets.session.reconnect.max", Kind::Duration),
];

/// A value written in the file, in a form that compares equal across spellings
/// (`2m` and `120s`, `1MiB` and `1048576`).
fn canonical(kind: Kind, written: &str) -> Result<String, String> {
    let w = written.trim().trim_matches('"');
    Ok(match kind {
        Kind::Duration => format!("{:?}", w.parse::<HumanDuration>()?.get()),
        Kind::Percent => w.parse::<Percent>()?.0.to_string(),
        Kind::Size => w.parse::<ByteSize>()?.0.to_string(),
        Kind::Bool => w.parse::<bool>().map_err(|e| e.to_string())?.to_string(),
        Kind::Addr => w.parse::<SocketAddr>().map_err(|e| e.to_string())?.to_string(),
        Kind::Count => w.parse::<usize>().map_err(|e| e.to_string())?.to_string(),
        Kind::Statuses => format!("{:?}", serde_norway::from_str::<Vec<u16>>(w).map_err(|e| e.to_string())?),
    })
}

/// The value of a documented key as loaded: top-level keys from the configuration,
/// `defaults.*` from `target`, which must not override them.
fn loaded(path: &str, c: &Config, target: usize) -> String {
    let remote = |t: &config::Target| t.remote_breakers.clone().expect("the target polls remote breakers");
    // The first target holding sessions: the defaults' first target does not.
    let session = || c.targets.iter().find_map(|t| t.session.clone()).expect("a session target");
    let t = &c.targets[target];
    let timeouts = &t.timeouts;
    let d = |d: Duration| format!("{d:?}");
    match path {
        "listen" => c.listen.to_string(),
        "shutdown_grace" => d(c.shutdown_grace),
        "defaults.interval" => d(t.interval),
        "defaults.jitter" => t.jitter.0.to_string(),
        "defaults.timeouts.dns" => d(timeouts.dns),
        "defaults.timeouts.connect" => d(timeouts.connect),
        "defaults.timeouts.proxy" => d(timeouts.proxy),
        "defaults.timeouts.tls" => d(timeouts.tls),
        "defaults.timeouts.handshake" => d(timeouts.handshake),
        "defaults.timeouts.first_message" => d(timeouts.first_message),
        "defaults.timeouts.ping" => d(timeouts.ping),
        "defaults.timeouts.close" => d(timeouts.close),
        "defaults.timeouts.idle" => d(timeouts.idle),
        "defaults.timeouts.probe" => d(timeouts.probe),
        "defaults.max_message_size" => t.max_message_size.to_string(),
        "defaults.server_speaks_first" => t.server_speaks_first.to_string(),
        "defaults.tls.insecure_skip_verify" => t.tls.insecure_skip_verify.to_string(),
        "defaults.circuit_breaker.failure_threshold" => t.circuit_breaker.failure_threshold.to_string(),
        "defaults.circuit_breaker.recovery_timeout" => d(t.circuit_breaker.recovery_timeout),
        "defaults.circuit_breaker.success_threshold" => t.circuit_breaker.success_threshold.to_string(),
        "targets.health.expect_status" => format!("{:?}", t.health[0].expect_status),
        "targets.health.timeout" => d(t.health[0].timeout),
        "targets.health.max_body_size" => t.health[0].max_body_size.to_string(),
        "targets.remote_breakers.interval" => d(remote(t).interval),
        "targets.remote_breakers.timeout" => d(remote(t).timeout),
        "targets.remote_breakers.max_body_size" => remote(t).max_body_size.to_string(),
        "targets.fail_on_drift" => t.fail_on_drift.to_string(),
        "targets.session.count" => session().count.to_string(),
        "targets.session.ping_interval" => d(session().ping_interval),
        "targets.session.stale_after" => d(session().stale_after),
        "targets.session.reconnect.initial" => d(session().reconnect.initial),
        "targets.session.reconnect.max" => d(session().reconnect.max),
        other => panic!("no accessor for `{other}`"),
    }
}

/// One `key: value  # default: X` line of the example.
#[derive(Debug)]
struct Documented {
    line: usize,
    written: String,
    default: String,
}

/// Finds every active `key: value  # default: X` line, keyed by its dotted path (from
/// indentation; `X` is the first word after `default:`). Commented-out lines are skipped.
fn documented_defaults(yaml: &str) -> BTreeMap<String, Documented> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut found = BTreeMap::new();
    for (n, line) in yaml.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut indent = line.len() - trimmed.len();
        let mut rest = trimmed;
        if let Some(item) = rest.strip_prefix("- ") {
            indent += 2;
            rest = item;
        }
        let Some((key, after)) = rest.split_once(':') else { continue };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_owned()));
        let Some((value, comment)) = after.split_once('#') else { continue };
        let Some(default) = comment.trim().strip_prefix("default:") else { continue };
        let path = stack.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>().join(".");
        let default = default.split_whitespace().next().unwrap_or("").to_owned();
        let previous =
            found.insert(path.clone(), Documented { line: n + 1, written: value.trim().to_owned(), default });
        assert!(previous.is_none(), "`{path}` documents its default twice");
    }
    found
}

/// The example's `# default: X` comments are compared with the defaults the code applies
/// to a minimal configuration, and each documented key's written value with what loading
/// the example yields. Changing a default without its comment, or adding a default to
/// [`DOCUMENTED`] without documenting it, fails here.
#[test]
fn example_documents_the_real_defaults() {
    // `load` expands the example's `${STAGING_JWT}` from this process's environment. The
    // other readers here are std (`Command`, `env::var`), which share std's lock with this.
    std::env::set_var("STAGING_JWT", STAGING_JWT);
    let example_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE);
    let yaml = std::fs::read_to_string(&example_path).unwrap();
    let example = config::load(&example_path).unwrap_or_else(|e| panic!("{e}"));
    // With one health check and a remote-breaker poll, so their defaults show too.
    let builtin = parse(
        "targets:\n  - name: t\n    url: ws://127.0.0.1/\n    health: [ { name: h, url: 'http://127.0.0.1/' } ]\n\
         \x20   remote_breakers: { url: 'http://127.0.0.1/', paths: { a: b } }\n\
         \x20 - { name: s, url: 'ws://127.0.0.1/', session: {} }\n",
    )
    .unwrap();
    assert_eq!(builtin.targets[0].timeouts, Timeouts::default());
    // The first target inherits everything, so it shows what `defaults` sets.
    assert_eq!(example.targets[0].name, "staging-agent");

    let documented = documented_defaults(&yaml);
    let expected: BTreeSet<&str> = DOCUMENTED.iter().map(|(p, _)| *p).collect();
    let found: BTreeSet<&str> = documented.keys().map(String::as_str).collect();
    assert_eq!(found, expected, "keys with a `# default:` comment in {EXAMPLE}");

    let mut failures = Vec::new();
    for (path, kind) in DOCUMENTED {
        let doc = &documented[path];
        let at = format!("{EXAMPLE}:{} `{path}`", doc.line);
        match canonical(kind, &doc.default) {
            Ok(v) if v == loaded(path, &builtin, 0) => {}
            Ok(v) => {
                failures.push(format!("{at}: documented default {v}, built-in {}", loaded(path, &builtin, 0)))
            }
            Err(e) => failures.push(format!("{at}: cannot read the documented default: {e}")),
        }
        match canonical(kind, &doc.written) {
            Ok(v) if v == loaded(path, &example, 0) => {}
            Ok(v) => failures.push(format!("{at}: written {v}, loaded {}", loaded(path, &example, 0))),
            Err(e) => failures.push(format!("{at}: cannot read the written value: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn defaults_comment_parser_reads_paths_from_indentation() {
    let found = documented_defaults(
        "a: 1  # default: 1\nb:\n  c: 2s  # default: 3s  why\n  # d: 4  # default: 4\ne:\n- f: x  # default: y\n  g: 1\n",
    );
    let summary: Vec<(String, String, String)> =
        found.into_iter().map(|(k, d)| (k, d.written, d.default)).collect();
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(summary, [s("a", "1", "1"), s("b.c", "2s", "3s"), s("e.f", "x", "y")]);
}
