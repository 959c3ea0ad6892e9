//! Keeping secrets out of everything wsprobe reports: one [`Redactor`] per probe, health
//! check or receiver, holding the values it must never show.
//!
//! Server text goes through many transformations before anyone reads it (cut short,
//! `{:?}`-quoted, JSON-encoded), and each one can turn a secret into a form a plain
//! search no longer finds: half of it at a cut, `\"` for `"`. So the redactor knows every
//! form a secret takes (as is, Debug- and JSON-escaped, control-escaped, base64url), is
//! applied to server text before it is cut or quoted and again to the final message, and
//! removes fragments too: any run of [`FRAGMENT`] characters taken from a secret, and at a
//! cut, a tail that begins a secret.

use std::collections::HashSet;

use base64::Engine as _;

use super::text::escape_control;

/// What replaces a secret.
pub(crate) const MASK: &str = "***";

/// Values shorter than this are not secrets (`1`, `true` would redact half of every message).
pub(crate) const MIN_SECRET: usize = 4;

/// Runs of this many characters that also occur in a secret are redacted wherever they
/// appear: a server that shows "the first characters of your token" shows too much.
pub(crate) const FRAGMENT: usize = 8;

/// The secrets of one probe (or check, or receiver) in every form they may take in output,
/// longest first.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    forms: Vec<String>,
    /// Every run of [`FRAGMENT`] characters of every form, so that checking a window of
    /// text is one lookup (previews are redacted for every message a flood sends).
    fragments: HashSet<String>,
}

impl Redactor {
    /// A redactor for these values; those shorter than [`MIN_SECRET`] are ignored.
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut r = Self::default();
        for s in secrets {
            r.add(s.as_ref());
        }
        r
    }

    /// Adds one secret with its escaped and encoded forms.
    pub fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SECRET {
            return;
        }
        let debug = format!("{secret:?}");
        let json = serde_json::to_string(secret).unwrap_or_default();
        let forms = [
            secret.to_owned(),
            strip_quotes(&debug).to_owned(),
            strip_quotes(&json).to_owned(),
            escape_control(secret).into_owned(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.as_bytes()),
            base64::engine::general_purpose::STANDARD.encode(secret.as_bytes()),
        ];
        for form in forms {
            self.add_form(form);
        }
        // Longest first: a secret that is a prefix of another never exposes the rest.
        self.forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    fn add_form(&mut self, form: String) {
        if form.chars().count() < MIN_SECRET || self.forms.contains(&form) {
            return;
        }
        let bounds: Vec<usize> = form.char_indices().map(|(i, _)| i).chain([form.len()]).collect();
        for w in bounds.windows(FRAGMENT + 1) {
            self.fragments.insert(form[w[0]..w[FRAGMENT]].to_owned());
        }
        self.forms.push(form);
    }

    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// `text` with every secret, in any of its forms, and every run of [`FRAGMENT`]
    /// characters of one replaced by [`MASK`]. Overlapping matches become one mask.
    pub fn redact(&self, text: &str) -> String {
        if self.forms.is_empty() || text.is_empty() {
            return text.to_owned();
        }
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for form in &self.forms {
            let mut from = 0;
            while let Some(pos) = text[from..].find(form.as_str()) {
                let start = from + pos;
                spans.push((start, start + form.len()));
                // Step one character, so overlapping occurrences are all found.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        for w in bounds.windows(FRAGMENT + 1) {
            let window = &text[w[0]..w[FRAGMENT]];
            if self.fragments.contains(window) {
                spans.push((w[0], w[FRAGMENT]));
            }
        }
        if spans.is_empty() {
            return text.to_owned();
        }
        spans.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut iter = spans.into_iter().peekable();
        while let Some((start, mut end)) = iter.next() {
            while let Some(&(s, e)) = iter.peek() {
                if s > end {
                    break;
                }
                end = end.max(e);
                iter.next();
            }
            if start >= at {
                out.push_str(&text[at..start]);
                out.push_str(MASK);
                at = end;
            } else if end > at {
                at = end;
            }
        }
        out.push_str(&text[at..]);
        out
    }

    /// At most `max_chars` characters of `text`, redacted before the cut, with `…` where
    /// something was cut. A cut inside a secret leaves no beginning of it behind: a tail
    /// of [`MIN_SECRET`] or more characters that starts a secret is dropped too.
    ///
    /// Only the start of `text` is searched (what is shown plus the longest secret), so a
    /// megabyte message costs no more than a short one.
    pub fn excerpt(&self, text: &str, max_chars: usize) -> String {
        let longest = self.forms.iter().map(|f| f.chars().count()).max().unwrap_or(0);
        let searched = match text.char_indices().nth(max_chars.saturating_add(longest)) {
            Some((end, _)) => &text[..end],
            None => text,
        };
        let redacted = self.redact(searched);
        match redacted.char_indices().nth(max_chars) {
            None if searched.len() == text.len() => redacted,
            None => format!("{}…", self.drop_dangling(&redacted)),
            Some((cut, _)) => format!("{}…", self.drop_dangling(&redacted[..cut])),
        }
    }

    /// `head` without a tail that begins one of the secrets.
    fn drop_dangling<'a>(&self, head: &'a str) -> &'a str {
        let starts: Vec<usize> = head.char_indices().map(|(i, _)| i).collect();
        for &i in &starts {
            let tail = &head[i..];
            if tail.chars().count() < MIN_SECRET {
                break;
            }
            if self.forms.iter().any(|f| f.starts_with(tail)) {
                return &head[..i];
            }
        }
        head
    }
}

fn strip_quotes(s: &str) -> &str {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "tok\"en\\é-1234567890";

    #[test]
    fn every_form_is_masked() {
        let r = Redactor::new([SECRET]);
        assert_eq!(r.redact(&format!("a {SECRET} b")), "a *** b");
        assert_eq!(r.redact(&format!("a {SECRET:?} b")), "a \"***\" b");
        let json = serde_json::to_string(SECRET).unwrap();
        assert_eq!(r.redact(&format!("a {json} b")), "a \"***\" b");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
        assert_eq!(r.redact(&format!("jwt.{b64}")), "jwt.***");
    }

    #[test]
    fn a_prefix_secret_does_not_expose_the_longer_one() {
        let r = Redactor::new(["abcd", "abcd-the-rest"]);
        assert_eq!(r.redact("x abcd-the-rest y abcd z"), "x *** y *** z");
    }

    #[test]
    fn fragments_are_masked() {
        let r = Redactor::new(["0123456789abcdef"]);
        assert_eq!(r.redact("token 23456789ab… is bad"), "token ***… is bad");
        assert_eq!(r.redact("short 0123 stays"), "short 0123 stays");
    }

    #[test]
    fn a_cut_never_leaves_the_start_of_a_secret() {
        let r = Redactor::new(["Zq7-secret-value"]);
        // The server's text holds the secret's first 7 characters, and the cut falls
        // right after them.
        let text = "ééééé closing: Zq7-sec and more text";
        assert_eq!(r.excerpt(text, 22), "ééééé closing: …");
        assert_eq!(r.excerpt(&format!("ééééé closing: {}", "Zq7-secret-value"), 20), "ééééé closing: ***");
        assert_eq!(r.excerpt("plain text that is long", 5), "plain…");
        assert_eq!(r.excerpt("short", 50), "short");
        // A long text is searched only as far as the cut needs.
        let long = format!("{}Zq7-secret-value{}", "x".repeat(10), "y".repeat(1 << 20));
        assert_eq!(r.excerpt(&long, 20), format!("{}***yyyyyyy…", "x".repeat(10)));
    }

    #[test]
    fn short_values_are_not_secrets() {
        let r = Redactor::new(["1", "true"]);
        assert_eq!(r.redact("1 true"), "1 ***");
        assert!(Redactor::new(["ab"]).is_empty());
    }
}
