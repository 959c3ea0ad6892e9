//! HTML escaping for everything the page did not write itself: target names, URLs, and
//! above all what servers sent (failure messages, close reasons, versions, alert text).
//!
//! [`Esc`] escapes as it is formatted, so `write!(out, "<td>{}</td>", Esc(text))` never
//! builds an unescaped copy. It is safe in text and in double- or single-quoted attribute
//! values. Characters that could reorder or garble what is shown (controls, bidirectional
//! overrides) are written as `\u{..}`, as the logs do.

use std::fmt;

use crate::util::text::is_forging;

/// `&str` that formats HTML-escaped.
#[derive(Debug, Clone, Copy)]
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let replacement = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                c if is_forging(c) => "",
                _ => continue,
            };
            f.write_str(&s[plain..i])?;
            if replacement.is_empty() {
                write!(f, "\\u{{{:x}}}", u32::from(c))?;
            } else {
                f.write_str(replacement)?;
            }
            plain = i + c.len_utf8();
        }
        f.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_quotes_and_controls_are_neutralised() {
        let hostile = "</td><script>alert('x')</script>\"onload=\"x\u{202e}\n&amp;";
        let out = Esc(hostile).to_string();
        assert_eq!(
            out,
            "&lt;/td&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;onload=&quot;x\\u{202e}\\u{a}&amp;amp;"
        );
        assert_eq!(Esc("plain ünïcode").to_string(), "plain ünïcode");
    }
}
