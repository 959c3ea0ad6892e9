//! Names that become label values and path segments: targets, steps, breakers, receivers.

/// Target names become the `target` label: short, lowercase, no surprises in a URL path.
pub(crate) fn is_valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_label_safe() {
        assert!(is_valid_name("staging-agent_2"));
        assert!(!is_valid_name("Staging"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"a".repeat(64)));
    }
}
