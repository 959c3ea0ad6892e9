//! The tracker, through the registry as the features use it.

use super::*;

fn registry() -> Registry {
    Registry::new().unwrap_or_else(|e| panic!("{e}"))
}

/// The exposed sample lines that mention `target="<name>"`.
fn samples_of(r: &Registry, target: &str) -> Vec<String> {
    let needle = format!("target=\"{target}\"");
    r.render().lines().filter(|l| !l.starts_with('#') && l.contains(&needle)).map(str::to_owned).collect()
}

struct Three {
    counter: TargetCounter,
    gauge: TargetGauge,
    hist: TargetHistogram,
    status: TargetIntGauge,
}

fn three(r: &Registry) -> Three {
    fn ok<T>(e: Error) -> T {
        panic!("{e}")
    }
    Three {
        counter: r.target_counter("t_total", "c", &["target", "result"]).unwrap_or_else(ok),
        gauge: r.target_gauge("t_gauge", "g", &["target"]).unwrap_or_else(ok),
        hist: r.target_histogram("t_seconds", "h", &["target", "step"]).unwrap_or_else(ok),
        status: r.target_int_gauge("t_status", "s", &["target", "check"]).unwrap_or_else(ok),
    }
}

fn record(m: &Three, target: &str) {
    m.counter.with_label_values(&[target, "success"]).inc();
    m.counter.with_label_values(&[target, "failure"]).inc_by(2);
    m.gauge.with_label_values(&[target]).set(1.0);
    m.hist.with_label_values(&[target, "login"]).observe(0.01);
    m.hist.with_label_values(&[target, "subscribe"]).observe(0.02);
    m.status.with_label_values(&[target, "live"]).set(200);
}

#[test]
fn forget_removes_exactly_that_targets_series_of_every_metric() {
    let r = registry();
    let m = three(&r);
    record(&m, "a");
    record(&m, "b");
    // The same series recorded again is noted once.
    record(&m, "a");
    assert_eq!(r.tracker().count("a"), 6);
    let b_before = samples_of(&r, "b");
    assert!(!samples_of(&r, "a").is_empty());

    r.tracker().forget("a");

    assert_eq!(samples_of(&r, "a"), Vec::<String>::new(), "every series of `a` is gone");
    assert_eq!(r.tracker().count("a"), 0);
    assert_eq!(samples_of(&r, "b"), b_before, "`b` is untouched");
    assert_eq!(r.tracker().count("b"), 6);
    assert!(r.render().contains("wsprobe_build_info{"), "untracked series stay");
}

#[test]
fn a_re_added_target_starts_fresh() {
    let r = registry();
    let m = three(&r);
    record(&m, "a");
    assert_eq!(m.counter.with_label_values(&["a", "failure"]).get(), 2);
    r.tracker().forget("a");

    let again = m.counter.with_label_values(&["a", "failure"]);
    assert_eq!(again.get(), 0, "a counter of a forgotten target restarts at zero");
    assert_eq!(m.hist.with_label_values(&["a", "login"]).get_sample_count(), 0);
    assert_eq!(r.tracker().count("a"), 2, "only what was created since is noted");
    // And forgetting it again takes those too.
    r.tracker().forget("a");
    assert!(samples_of(&r, "a").is_empty());
}

#[test]
fn forget_where_removes_only_the_matching_series_of_that_target() {
    let r = registry();
    let m = three(&r);
    record(&m, "a");
    record(&m, "b");

    // Step `subscribe` of `a` left its scenario.
    r.tracker().forget_where("a", |s| s.label("step") == Some("subscribe"));
    let a = samples_of(&r, "a");
    assert!(!a.iter().any(|l| l.contains("step=\"subscribe\"")), "{a:?}");
    assert!(a.iter().any(|l| l.contains("step=\"login\"")), "other steps stay: {a:?}");
    assert!(a.iter().any(|l| l.starts_with("t_total{")), "other metrics stay: {a:?}");
    assert!(samples_of(&r, "b").iter().any(|l| l.contains("step=\"subscribe\"")), "`b` keeps its step");
    assert_eq!(r.tracker().count("a"), 5);

    // By metric name, as health removes a stale version's series.
    r.tracker().forget_where("a", |s| s.metric() == "t_status");
    assert!(!samples_of(&r, "a").iter().any(|l| l.starts_with("t_status")));
    assert_eq!(r.tracker().count("a"), 4);
}

#[test]
fn removing_one_series_removes_its_note() {
    let r = registry();
    let m = three(&r);
    record(&m, "a");
    m.gauge.remove_label_values(&["a"]);
    assert!(!samples_of(&r, "a").iter().any(|l| l.starts_with("t_gauge")));
    assert_eq!(r.tracker().count("a"), 5);
    // Removing what is not there is harmless.
    m.gauge.remove_label_values(&["a"]);
    m.gauge.remove_label_values(&["nobody"]);
    assert_eq!(r.tracker().count("a"), 5);
}

#[test]
fn a_per_target_metric_must_be_labelled_by_target_first() {
    let r = registry();
    let err = r.target_counter("x_total", "x", &["receiver", "target"]).err();
    assert!(
        err.is_some_and(|e| e.to_string().contains("`x_total` must have `target` as its first label")),
        "accepted a per-target metric without a leading `target` label"
    );
}

#[test]
fn families_appear_once_each_in_order_of_name() {
    fn ok<T>(e: Error) -> T {
        panic!("{e}")
    }
    let r = registry();
    let crate_kept = r.counter("m_b_total", "crate").unwrap_or_else(ok);
    let own = r.target_counter("m_c_total", "own", &["target"]).unwrap_or_else(ok);
    let hist = r.target_histogram("m_a_seconds", "own", &["target"]).unwrap_or_else(ok);
    let gauge = r.target_gauge("m_bb", "own", &["target"]).unwrap_or_else(ok);
    crate_kept.inc();
    own.with_label_values(&["t"]).inc();
    hist.with_label_values(&["t"]).observe(0.1);
    gauge.with_label_values(&["t"]).set(2.0);

    let text = r.render();
    let types: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
    let mut sorted = types.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(types, sorted, "one `# TYPE` per family, in order of name:\n{text}");
    for family in ["m_a_seconds histogram", "m_b_total counter", "m_bb gauge", "m_c_total counter"] {
        assert!(types.contains(&family), "{family} missing:\n{text}");
    }
}

#[test]
fn a_name_is_one_family_whoever_renders_it() {
    let r = registry();
    assert!(r.counter("dup_total", "crate").is_ok());
    assert!(matches!(r.target_counter("dup_total", "own", &["target"]), Err(Error::AlreadyReg)));
    assert!(r.target_gauge("own_g", "own", &["target"]).is_ok());
    assert!(matches!(r.int_gauge("own_g", "crate"), Err(Error::AlreadyReg)));
    assert!(matches!(r.target_histogram("own_g", "own", &["target"]), Err(Error::AlreadyReg)));
    assert!(
        matches!(r.target_int_gauge("bad name", "own", &["target"]), Err(Error::Msg(_))),
        "the crate's name checks apply to self-rendered families too"
    );
}

#[test]
fn the_pages_of_a_scrape_are_the_exposition() {
    let r = registry();
    let m = three(&r);
    for i in 0..400 {
        record(&m, &format!("target-{i:03}"));
    }
    let whole = r.render();
    let pages: Vec<String> = r.scrape().collect();
    assert!(pages.len() > 3, "{} bytes in {} pages", whole.len(), pages.len());
    assert_eq!(pages.concat(), whole);
    for p in &pages {
        assert!(p.ends_with('\n'), "a page ends between lines");
        // A page stops at the first line past `PAGE`; the longest series here is a
        // histogram's 19 lines of under 100 bytes each.
        assert!(p.len() < PAGE + 19 * 100, "page of {} bytes", p.len());
    }
}
