//! Text helpers for anything that shows server-controlled text: cutting it short on a
//! character boundary and escaping what could forge output (newlines, terminal escapes).

use std::borrow::Cow;
use std::fmt::Write as _;

/// At most `max_chars` characters of `s`, with `…` appended when something was cut.
/// Never splits a character, whatever the input.
pub(crate) fn excerpt(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

/// The longest prefix of `s` that is at most `max_bytes` long and ends on a character
/// boundary.
pub fn prefix_within(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `c` could forge or garble a line of output: C0 and C1 controls, DEL, the
/// Unicode line and paragraph separators and the bidirectional overrides.
pub(crate) fn is_forging(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every character that [`is_forging`] escaped as `\n`, `\r`, `\t` or `\u{..}`,
/// so one server string stays on one line and cannot drive a terminal.
pub(crate) fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_forging) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_forging(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// User input as a message shows it: at most 80 characters, control characters escaped,
/// so a megabyte of YAML is not echoed back nor can it forge output lines.
pub fn shown(s: &str) -> String {
    escape_control(&excerpt(s, 80)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_never_split_a_character() {
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("abc", 3), "abc");
        assert_eq!(excerpt("ééééé", 2), "éé…");
        assert_eq!(prefix_within("aé", 2), "a");
        assert_eq!(prefix_within("€€", 4), "€");
        assert_eq!(prefix_within("ab", 9), "ab");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_control("plain"), "plain");
        assert_eq!(escape_control("a\nb\r\t\u{1b}[31m"), "a\\nb\\r\\t\\u{1b}[31m");
        assert_eq!(escape_control("x\u{2028}y\u{202e}"), "x\\u{2028}y\\u{202e}");
    }
}
