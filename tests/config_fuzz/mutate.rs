//! The mutations of the configuration fuzzer: on the parsed document and on the text.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_norway::{Mapping, Value};

#[derive(Clone, Debug)]
enum Seg {
    Key(Value),
    Index(usize),
}

fn paths(v: &Value, at: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(at.clone());
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                at.push(Seg::Key(k.clone()));
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Sequence(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(Seg::Index(i));
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn node<'v>(v: &'v mut Value, path: &[Seg]) -> Option<&'v mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Mapping(m)) => m.get_mut(k)?,
            (Seg::Index(i), Value::Sequence(s)) => s.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Keys the format knows, so that inserted keys land on real fields with wrong values.
const KEYS: &[&str] = &[
    "interval",
    "timeouts",
    "probe",
    "within",
    "hold",
    "sleep",
    "max_gap",
    "headers",
    "steps",
    "send",
    "expect",
    "text",
    "json",
    "any_of",
    "health",
    "url",
    "name",
    "tls",
    "ca_file",
    "circuit_breaker",
    "failure_ratio",
    "window",
    "min_probes",
    "remote_breakers",
    "paths",
    "alerting",
    "detector",
    "recent_bucket",
    "baseline_window",
    "for",
    "resolve_after",
    "max_message_size",
    "jitter",
    "capture",
    "close",
    "code",
    "reason",
    "ping",
    "timeout",
    "subprotocols",
    "expect_status",
    "version_path",
    "expected_version",
    "max_body_size",
    "zz_unknown",
];

fn random_string(rng: &mut StdRng) -> String {
    let fixed = [
        "500000000000y",
        "18446744073709551615s",
        "0s",
        "1ns",
        "-5s",
        "1e400",
        "NaN",
        "5%",
        "-1%",
        "1000%",
        "0B",
        "99999999999GiB",
        "${file:/dev/zero}",
        "${WSPROBE_FUZZ_UNSET}",
        "${",
        "$${x",
        "${file:}",
        "${base64url:file:/dev/null}",
        "(((((",
        "[a-",
        "\\",
        "ws://[::1",
        "ws://u:p@h/#f",
        "wss://:0/",
        "http://h:99999/",
        "/dev/zero",
        "/proc/self/mem",
        "p95",
        "p200",
        "a..b",
        ".",
        "",
        "\u{0}\u{1b}[31mred\r\nforged: line",
        "é\u{202e}🙂\u{2028}",
        "a\tb",
    ];
    match rng.random_range(0..10) {
        0 => "x".repeat(rng.random_range(1..200_000)),
        1 => (0..rng.random_range(1..64))
            .map(|_| char::from_u32(rng.random_range(0..0x11_0000)).unwrap_or('?'))
            .collect(),
        2 => format!("${{{}}}", "A".repeat(rng.random_range(1..5000))),
        _ => fixed[rng.random_range(0..fixed.len())].to_owned(),
    }
}

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..12) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => Value::Number(u64::MAX.into()),
        3 => Value::Number(i64::MIN.into()),
        4 => Value::Number([-1i64, 0, 1, 65536, 4_294_967_296][rng.random_range(0..5)].into()),
        5 => Value::Number([1e308, -0.5, 0.1, f64::INFINITY, f64::NAN][rng.random_range(0..5)].into()),
        6 if depth < 3 => {
            Value::Sequence((0..rng.random_range(0..4)).map(|_| random_value(rng, depth + 1)).collect())
        }
        7 if depth < 3 => {
            let mut m = Mapping::new();
            for _ in 0..rng.random_range(0..3) {
                m.insert(
                    Value::String(KEYS[rng.random_range(0..KEYS.len())].into()),
                    random_value(rng, depth + 1),
                );
            }
            Value::Mapping(m)
        }
        _ => Value::String(random_string(rng)),
    }
}

fn mutate_document(rng: &mut StdRng, doc: &mut Value) {
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    let path = all[rng.random_range(0..all.len())].clone();
    let donor = &all[rng.random_range(0..all.len())];
    match rng.random_range(0..6) {
        // Delete the node from its parent.
        0 if !path.is_empty() => {
            let (last, parent) = path.split_last().unwrap();
            match (last, node(doc, parent)) {
                (Seg::Key(k), Some(Value::Mapping(m))) => {
                    m.remove(k);
                }
                (Seg::Index(i), Some(Value::Sequence(s))) if *i < s.len() => {
                    s.remove(*i);
                }
                _ => {}
            }
        }
        // Nest it deep, in sequences or mappings.
        1 => {
            if let Some(n) = node(doc, &path) {
                let levels = rng.random_range(1..300);
                let as_map = rng.random::<bool>();
                for _ in 0..levels {
                    let inner = std::mem::take(n);
                    *n = if as_map {
                        let mut m = Mapping::new();
                        m.insert(Value::String("k".into()), inner);
                        Value::Mapping(m)
                    } else {
                        Value::Sequence(vec![inner])
                    };
                }
            }
        }
        // Copy another subtree over it.
        2 => {
            let donor = node(doc, donor).cloned();
            if let (Some(n), Some(d)) = (node(doc, &path), donor) {
                *n = d;
            }
        }
        // Add a known key (or an element) with a random value.
        3 => {
            let v = random_value(rng, 0);
            match node(doc, &path) {
                Some(Value::Mapping(m)) => {
                    m.insert(Value::String(KEYS[rng.random_range(0..KEYS.len())].into()), v);
                }
                Some(Value::Sequence(s)) => s.push(v),
                Some(n) => *n = v,
                None => {}
            }
        }
        // Swap its type or value.
        _ => {
            let v = random_value(rng, 0);
            if let Some(n) = node(doc, &path) {
                *n = v;
            }
        }
    }
}

fn char_boundary_at(text: &str, rng: &mut StdRng) -> usize {
    let mut at = rng.random_range(0..=text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn mutate_text(rng: &mut StdRng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        return text.to_owned();
    }
    let values: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(": ") && !lines[i].trim_start().starts_with('#'))
        .collect();
    match rng.random_range(0..6) {
        // A duplicated key (or list item).
        0 => {
            let i = rng.random_range(0..lines.len());
            let copy = lines[i].clone();
            lines.insert(i + 1, copy);
        }
        // An anchor on one value and aliases to it elsewhere (or before it: undefined).
        1 if values.len() >= 2 => {
            let a = values[rng.random_range(0..values.len())];
            let (key, value) = lines[a].split_once(": ").map(|(k, v)| (k.to_owned(), v.to_owned())).unwrap();
            lines[a] = format!("{key}: &fz {value}");
            for _ in 0..rng.random_range(1..4) {
                let b = values[rng.random_range(0..values.len())];
                if b != a {
                    let key = lines[b].split_once(": ").unwrap().0.to_owned();
                    lines[b] = format!("{key}: *fz");
                }
            }
        }
        // Deep flow nesting where a value was.
        2 if !values.is_empty() => {
            let i = values[rng.random_range(0..values.len())];
            let key = lines[i].split_once(": ").unwrap().0.to_owned();
            let n = rng.random_range(1..400);
            let close = if rng.random_range(0..4) == 0 { String::new() } else { "]".repeat(n) };
            lines[i] = format!("{key}: {}{close}", "[".repeat(n));
        }
        // Truncated anywhere.
        3 => {
            let joined = lines.join("\n");
            let at = char_boundary_at(&joined, rng);
            return joined[..at].to_owned();
        }
        // A stray control or odd character.
        4 => {
            let mut joined = lines.join("\n");
            let at = char_boundary_at(&joined, rng);
            let c = [
                '\u{0}', '\u{1b}', '\t', '\r', '\u{feff}', '\u{202e}', '"', '\'', '&', '*', '!', '|', '%',
                '@',
            ][rng.random_range(0..14)];
            joined.insert(at, c);
            return joined;
        }
        // Indentation shifted on one line.
        _ => {
            let i = rng.random_range(0..lines.len());
            lines[i] = format!("{}{}", " ".repeat(rng.random_range(0..7)), lines[i].trim_start());
        }
    }
    lines.join("\n")
}

/// The text of one case: 1 to 3 document mutations, then (half the time) 1 or 2 textual.
///
/// A third of the cases mutate only the text as shipped; the others mutate the document
/// and write it back as YAML (block style) or as JSON (flow style, also YAML).
pub fn case(seed: u64, bases: &[(String, String, Value)]) -> (String, String) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (name, base, parsed) = &bases[(seed % bases.len() as u64) as usize];
    let mut text = match rng.random_range(0..3) {
        0 => base.clone(),
        style => {
            let mut doc = parsed.clone();
            for _ in 0..rng.random_range(1..=3) {
                mutate_document(&mut rng, &mut doc);
            }
            let written = if style == 1 {
                serde_norway::to_string(&doc).ok()
            } else {
                serde_json::to_string(&doc).ok()
            };
            written.unwrap_or_else(|| base.clone())
        }
    };
    if text == *base || rng.random::<bool>() {
        for _ in 0..rng.random_range(1..=2) {
            text = mutate_text(&mut rng, &text);
        }
    }
    (name.clone(), text)
}
