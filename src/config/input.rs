//! Limits on the configuration text itself, checked before the YAML parser sees it.
//!
//! The file is read with a size cap (never whole whatever its size), and its flow
//! nesting (`[[[...`, `{{{...`) is measured by a cheap scan: the YAML scanner's cost grows
//! with the square of that depth (100 000 levels took minutes), while the deserializer
//! would refuse anything past 128 levels anyway. Block nesting needs no scan: it costs
//! indentation, so the size cap bounds it, and the deserializer's own depth limit
//! applies. Aliases are bounded by the deserializer too (its repetition limit).

use std::path::Path;

use crate::util::units::ByteSize;

/// The largest configuration file read: far beyond any real one (the example is 10 KiB).
pub(crate) const MAX_CONFIG_SIZE: ByteSize = ByteSize::mib(4);

/// The deepest flow nesting accepted, the same depth the deserializer stops at.
pub(crate) const MAX_FLOW_DEPTH: usize = 128;

/// Reads at most [`MAX_CONFIG_SIZE`] of `path`; the error completes "`<file>`: ...".
pub fn read(path: &Path) -> Result<String, String> {
    let bytes = crate::util::files::read_capped(path, MAX_CONFIG_SIZE).map_err(|e| match e.kind() {
        std::io::ErrorKind::FileTooLarge => too_large(),
        _ => format!("cannot read: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|_| "cannot read: stream did not contain valid UTF-8".to_owned())
}

fn too_large() -> String {
    format!("the file is larger than {MAX_CONFIG_SIZE}, the most a configuration may be")
}

/// Refuses text the parser could not handle in bounded time.
pub fn check(text: &str) -> Result<(), String> {
    if text.len() as u64 > MAX_CONFIG_SIZE.0 {
        return Err(too_large());
    }
    match flow_depth_exceeded(text.as_bytes()) {
        Some(line) => Err(format!("nested more than {MAX_FLOW_DEPTH} levels deep at line {line}")),
        None => Ok(()),
    }
}

/// A serde error cut to a readable length, keeping where it happened (` at line N column M`).
pub(crate) fn shorten_error(message: String) -> String {
    const MAX: usize = 400;
    if message.chars().count() <= MAX {
        return message;
    }
    let location = message.rfind(" at line ").map_or("", |at| &message[at..]);
    format!("{}{location}", crate::util::text::excerpt(&message, MAX))
}

fn is_blank(b: Option<&u8>) -> bool {
    matches!(b, None | Some(b' ' | b'\t' | b'\r' | b'\n'))
}

fn is_flow_indicator(b: Option<&u8>) -> bool {
    matches!(b, Some(b',' | b'[' | b']' | b'{' | b'}'))
}

/// The line where flow nesting first passes [`MAX_FLOW_DEPTH`], if it does.
///
/// A `[` or `{` counts where a node can begin (after `: `, `- `, `? `, `,`, another
/// bracket, a property, or at a line's start), not inside a quoted or plain scalar, a
/// comment or a block scalar, so regular expressions such as `^[a-z]+$` do not count.
fn flow_depth_exceeded(b: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut i = 0usize;
    let mut at_node = true;
    let mut line_start = true;
    let mut line_indent = 0usize;
    // Indentation of the line that opened a block scalar (`|`, `>`): deeper lines are text.
    let mut block_scalar: Option<usize> = None;
    let skip_line = |i: &mut usize| {
        while *i < b.len() && b[*i] != b'\n' {
            *i += 1;
        }
    };
    while i < b.len() {
        if line_start {
            let first = i;
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            let indent = i - first;
            if let Some(parent) = block_scalar {
                let blank = matches!(b.get(i), None | Some(b'\n' | b'\r'));
                if blank || indent > parent {
                    skip_line(&mut i);
                    if i < b.len() {
                        i += 1;
                        line += 1;
                    }
                    continue;
                }
                block_scalar = None;
            }
            line_indent = indent;
            line_start = false;
            if depth == 0 {
                at_node = true;
            }
            continue;
        }
        let c = b[i];
        let next = b.get(i + 1);
        match c {
            b'\n' => {
                line += 1;
                line_start = true;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' if i == 0 || is_blank(b.get(i - 1)) => skip_line(&mut i),
            b'[' | b'{' if at_node || depth > 0 => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some(line);
                }
                at_node = true;
                i += 1;
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                at_node = false;
                i += 1;
            }
            b',' if depth > 0 => {
                at_node = true;
                i += 1;
            }
            b'\'' | b'"' if at_node => {
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\n' => line += 1,
                        b'\\' if c == b'"' => i += 1,
                        b'\'' if c == b'\'' && b.get(i + 1) == Some(&b'\'') => i += 1,
                        q if q == c => break,
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
                at_node = false;
            }
            // Anchors and tags precede a node; aliases are one.
            b'&' | b'!' | b'*' if at_node => {
                while i < b.len() && !is_blank(b.get(i)) && !(depth > 0 && is_flow_indicator(b.get(i))) {
                    i += 1;
                }
                at_node = c != b'*';
            }
            b'|' | b'>' if at_node && depth == 0 => {
                block_scalar = Some(line_indent);
                skip_line(&mut i);
            }
            b'-' | b'?' | b':' if is_blank(next) || (c == b':' && depth > 0 && is_flow_indicator(next)) => {
                at_node = true;
                i += 1;
            }
            _ => {
                // A plain scalar: up to the end of the line, `: `, ` #`, or in flow a
                // flow indicator.
                while i < b.len() {
                    let here = b[i];
                    let after = b.get(i + 1);
                    let ends = here == b'\n'
                        || (here == b':' && (is_blank(after) || (depth > 0 && is_flow_indicator(after))))
                        || (here == b'#' && is_blank(b.get(i.wrapping_sub(1))))
                        || (depth > 0 && is_flow_indicator(Some(&here)));
                    if ends {
                        break;
                    }
                    i += 1;
                }
                at_node = false;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str) -> bool {
        flow_depth_exceeded(text.as_bytes()).is_none()
    }

    #[test]
    fn deep_flow_nesting_is_refused_where_it_starts() {
        let deep = format!("a: 1\nb: {}{}\n", "[".repeat(129), "]".repeat(129));
        assert_eq!(flow_depth_exceeded(deep.as_bytes()), Some(2));
        assert!(depth_ok(&format!("b: {}{}\n", "{a: ".repeat(128), "}".repeat(128))));
        assert_eq!(
            flow_depth_exceeded(format!("- - {}", "[".repeat(200)).as_bytes()),
            Some(1),
            "after sequence indicators"
        );
        assert!(!depth_ok(&format!("x: &a !!seq {}", "[".repeat(200))));
    }

    #[test]
    fn brackets_inside_scalars_and_comments_do_not_count() {
        let many = "[".repeat(300);
        assert!(depth_ok(&format!("text: '{many}'\n")));
        assert!(depth_ok(&format!("text: \"\\\"{many}\"\n")));
        assert!(depth_ok(&format!("text: it's {many}\n")));
        assert!(depth_ok(&format!("a: 1 # {many}\n")));
        assert!(depth_ok(&format!("text: |\n  {many}\n\n  {many}\nnext: 1\n")));
        assert!(depth_ok(&format!("list: [\"{many}\", 'it''s {many}', http://x/{{a}}]\n")));
        // A quote inside a plain scalar opens nothing: the brackets after it still count.
        assert!(!depth_ok(&format!("list: [it's, {many}\n")));
    }

    #[test]
    fn size_is_capped() {
        assert!(check(&"#".repeat(5 << 20)).unwrap_err().contains("larger than 4MiB"));
    }
}
