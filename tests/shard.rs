//! Sharding: parsing `INDEX/TOTAL` (and pod names), the stable rendezvous assignment,
//! `wsprobe check --shard`, and three real `wsprobe run --shard i/3` processes scraped by
//! one real Prometheus, which must see every target probed by exactly one shard.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::prometheus_stack::{self, run_wsprobe};
use common::{echo, echoing, ServerOpts};
use wsprobe::shard::{shard_of, Shard};

#[test]
fn shards_parse_from_numbers_and_pod_names() {
    let ok = [
        ("0/1", 0, 1),
        ("1/3", 1, 3),
        ("wsprobe-2/3", 2, 3),
        ("probe-eu-west-1-0/2", 0, 2),
        ("7/1024", 7, 1024),
    ];
    for (text, index, total) in ok {
        let s: Shard = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!((s.index(), s.total()), (index, total), "{text}");
    }
    let expected_tail =
        "(expected INDEX/TOTAL, e.g. `0/3` or `wsprobe-0/3`, with 0 <= INDEX < TOTAL <= 1024)";
    let bad = [
        ("3", "`3` has no `/`"),
        ("3/3", "`3/3` has an INDEX not below TOTAL"),
        ("0/0", "`0/0` has a TOTAL out of range"),
        ("0/1025", "`0/1025` has a TOTAL out of range"),
        ("1/x", "`1/x` has a TOTAL that is not a whole number"),
        ("wsprobe/3", "`wsprobe/3` has an INDEX that is neither a number nor a name ending in `-N`"),
        ("wsprobe-/3", "`wsprobe-/3` has an INDEX that is neither a number nor a name ending in `-N`"),
        ("-1/3", "`-1/3` has an INDEX that is neither a number nor a name ending in `-N`"),
        ("99999999999/3", "`99999999999/3` has an INDEX that is too large"),
    ];
    for (text, why) in bad {
        let e = text.parse::<Shard>().expect_err(text).to_string();
        assert_eq!(e, format!("{why} {expected_tail}"), "{text}");
    }
}

/// The assignment is part of the interface: instances built from different versions
/// must agree on it during a rolling upgrade, so it is pinned here.
#[test]
fn the_assignment_is_pinned_across_builds() {
    let names = ["staging-agent", "staging-stream", "prod-agent", "demo-agent", "t01", "t02", "t03", "t04"];
    let got: Vec<u32> = names.iter().map(|n| shard_of(n, 3)).collect();
    assert_eq!(got, PINNED_3);
    assert!(names.iter().all(|n| shard_of(n, 1) == 0));
    assert!(names.iter().all(|n| Shard::ALL.owns(n)));
}

const PINNED_3: [u32; 8] = [2, 1, 1, 0, 1, 2, 2, 1];

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("target-{i:04}")).collect()
}

#[test]
fn shards_are_balanced() {
    let all = names(3000);
    for total in [2u32, 3, 5, 10] {
        let mut counts = vec![0usize; total as usize];
        for n in &all {
            counts[shard_of(n, total) as usize] += 1;
        }
        let mean = all.len() as f64 / f64::from(total);
        for (i, c) in counts.iter().enumerate() {
            // ±15 % of the mean: far outside what a uniform hash produces at these sizes.
            assert!(
                (*c as f64 - mean).abs() < 0.15 * mean,
                "{total} shards: shard {i} has {c} (mean {mean})"
            );
        }
    }
}

#[test]
fn adding_a_shard_moves_only_targets_to_the_new_shard_and_about_their_share() {
    let all = names(3000);
    for total in [1u32, 2, 3, 7] {
        let mut moved = 0;
        for n in &all {
            let (before, after) = (shard_of(n, total), shard_of(n, total + 1));
            if before != after {
                assert_eq!(after, total, "{n} moved between two old shards ({before} -> {after})");
                moved += 1;
            }
        }
        let share = moved as f64 / all.len() as f64;
        let expected = 1.0 / f64::from(total + 1);
        assert!(
            (share - expected).abs() < 0.2 * expected,
            "{total}->{}: {share} moved, expected ~{expected}",
            total + 1
        );
    }
}

#[test]
fn check_lists_exactly_this_shards_targets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let all = names(12);
    let targets: String =
        all.iter().map(|n| format!("  - {{ name: {n}, url: \"ws://127.0.0.1:1/\" }}\n")).collect();
    std::fs::write(&path, format!("targets:\n{targets}")).unwrap();
    let mut seen = BTreeSet::new();
    for i in 0..3u32 {
        // Once as a flag, once from the environment with a pod name.
        for (args, env) in [
            (vec!["check", "--config", path.to_str().unwrap(), "--shard", &format!("{i}/3")], None),
            (vec!["check", "--config", path.to_str().unwrap()], Some(format!("wsprobe-{i}/3"))),
        ] {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wsprobe"));
            cmd.args(&args).env_remove("WSPROBE_SHARD");
            if let Some(v) = &env {
                cmd.env("WSPROBE_SHARD", v);
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let stdout = String::from_utf8(out.stdout).unwrap();
            let listed: Vec<&str> = stdout
                .lines()
                .filter(|l| l.starts_with("  "))
                .map(|l| l.split_whitespace().next().unwrap())
                .collect();
            let expected: Vec<&str> =
                all.iter().filter(|n| shard_of(n, 3) == i).map(String::as_str).collect();
            assert_eq!(listed, expected, "shard {i}/3 ({env:?})");
            assert!(
                stdout.contains(&format!("shard {i}/3 probes {} of the 12 target(s):", expected.len())),
                "{stdout}"
            );
            seen.extend(listed.iter().map(|s| (*s).to_owned()));
        }
    }
    assert_eq!(seen.len(), 12, "the shards together list every target");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsprobe"))
        .args(["check", "--config", path.to_str().unwrap()])
        .env("WSPROBE_SHARD", "wsprobe-3/3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`wsprobe-3/3` has an INDEX not below TOTAL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_probe_every_target_exactly_once_as_prometheus_sees_it() {
    let server = echo(ServerOpts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let all = names(9);
    let targets: String =
        all.iter().map(|n| format!("  - {{ name: {n}, url: \"{}\" }}\n", server.url())).collect();
    let yaml =
        format!("listen: 127.0.0.1:0\ndefaults: {{ interval: 200ms, jitter: 0% }}\ntargets:\n{targets}");
    let instances: Vec<_> = (0..3)
        .map(|i| run_wsprobe(dir.path(), &format!("shard{i}"), &yaml, &["--shard", &format!("{i}/3")]))
        .collect();
    let addrs: Vec<_> = instances.iter().map(|i| i.addr).collect();
    let prometheus = prometheus_stack::start(&addrs).await;

    // Every shard scraped, each saying which shard it is.
    let info = prometheus.until("wsprobe_shard_info", Duration::from_secs(20), |r| r.len() == 3).await;
    let index_of: BTreeMap<String, u32> = info
        .iter()
        .map(|(l, _)| {
            assert_eq!(l["total"], "3");
            (l["instance"].as_str().unwrap().to_owned(), l["index"].as_str().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(index_of.values().copied().collect::<BTreeSet<_>>(), BTreeSet::from([0, 1, 2]));

    // Every target has probes from exactly one instance: the shard its name hashes to.
    let per_instance = "sum by (target, instance) (wsprobe_probes_total) > 0";
    let seen = prometheus
        .until(per_instance, Duration::from_secs(20), |r| {
            r.iter().map(|(l, _)| l["target"].as_str().unwrap()).collect::<BTreeSet<_>>().len() == 9
        })
        .await;
    let exactly_once = prometheus.query(&format!("count by (target) ({per_instance})")).await;
    assert_eq!(exactly_once.len(), 9, "{exactly_once:?}");
    assert!(exactly_once.iter().all(|(_, n)| *n == 1.0), "a target probed by two shards: {exactly_once:?}");
    for (labels, _) in &seen {
        let target = labels["target"].as_str().unwrap();
        let index = index_of[labels["instance"].as_str().unwrap()];
        assert_eq!(index, shard_of(target, 3), "{target} probed by shard {index}");
    }
    // And each instance exports only its own targets' series.
    let loaded = prometheus.query("wsprobe_targets").await;
    let sum: f64 = loaded.iter().map(|(_, v)| v).sum();
    assert_eq!(sum, 9.0, "{loaded:?}");
}

/// Target names whose series of `metric` are in the exposition.
fn series_targets(exposition: &str, metric: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter_map(|l| l.split("target=\"").nth(1)?.split('"').next().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_shard_is_applied_again_at_reload_and_health_checks_follow_their_target() {
    let server = echo(ServerOpts::default()).await;
    let health = echoing::http(|_| 200, |_, _| "ok".to_owned()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    let write = |count: usize| {
        let targets: String = names(count)
            .iter()
            .map(|n| {
                format!(
                    "  - name: {n}\n    url: \"{}\"\n    health: [ {{ name: api, url: \"http://{}/health\", interval: 100ms }} ]\n",
                    server.url(),
                    health.addr
                )
            })
            .collect();
        common::daemon::write_config(&path, &targets);
    };
    let shard: Shard = "1/2".parse().unwrap();
    let owned =
        |count: usize| -> BTreeSet<String> { names(count).into_iter().filter(|n| shard.owns(n)).collect() };
    write(6);
    let options = wsprobe::daemon::Options { shard: Some(shard), ..Default::default() };
    let (running, cancel) = common::daemon::start_with(&path, options).await;
    let addr = running.addr;
    let scrape = || async move { common::http::get(addr, "/metrics").await.body };

    common::poll::eventually(Duration::from_secs(5), "shard 1/2 of 6 probed and checked", || async {
        let m = scrape().await;
        series_targets(&m, "wsprobe_probe_success") == owned(6)
            && series_targets(&m, "wsprobe_health_success") == owned(6)
    })
    .await;
    assert!(scrape().await.contains("wsprobe_shard_info{index=\"1\",total=\"2\"} 1"));

    write(14);
    let resp = common::http::request(addr, "POST", "/-/reload").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let expected = owned(14);
    assert!(
        resp.body.contains(&format!("configuration reloaded: {} targets", expected.len())),
        "{}",
        resp.body
    );
    assert!(owned(6).is_subset(&expected), "a new target moved an old one");
    common::poll::eventually(Duration::from_secs(5), "shard 1/2 of 14 probed and checked", || async {
        let m = scrape().await;
        series_targets(&m, "wsprobe_probe_success") == expected
            && series_targets(&m, "wsprobe_health_success") == expected
    })
    .await;
    // Nothing outside the shard, ever: no probe, no health check.
    let m = scrape().await;
    for n in names(14).iter().filter(|n| !shard.owns(n)) {
        assert!(!m.contains(&format!("target=\"{n}\"")), "{n} is shard 0's:\n{m}");
    }
    assert!(health.requests().len() >= expected.len(), "health checks ran");
    cancel.cancel();
    running.wait().await;
}

#[tokio::test]
async fn a_shard_without_targets_is_ready_and_says_which_shard_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsprobe.yaml");
    // t01 hashes to shard 2 of 3 (pinned above): shard 0 owns nothing.
    common::daemon::write_config(&path, "  - { name: t01, url: \"ws://127.0.0.1:1/ws\" }\n");
    let options =
        wsprobe::daemon::Options { shard: Some("wsprobe-0/3".parse().unwrap()), ..Default::default() };
    let (running, cancel) = common::daemon::start_with(&path, options).await;
    let ready = common::http::get(running.addr, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let m = common::http::get(running.addr, "/metrics").await.body;
    assert!(m.contains("wsprobe_shard_info{index=\"0\",total=\"3\"} 1"), "{m}");
    assert!(m.contains("\nwsprobe_targets 0\n"), "{m}");
    assert!(!m.contains("target=\"t01\""), "{m}");
    cancel.cancel();
    running.wait().await;
}
