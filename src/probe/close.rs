//! Close codes: which ones a server may put on the wire (RFC 6455 §7.4), and the failure
//! a forbidden one means.
//!
//! The WebSocket library replaces a forbidden code with 1002 before we see the frame, and
//! it also counts 1014 (registered since) as forbidden, so the code is judged here from
//! what the [`Tap`](super::tap::Tap) read off the wire.

use super::{ProbeError, Reason};

/// Whether an endpoint may send `code` in a close frame: 1000–1003, 1007–1014 and the
/// ranges for registered (3000–3999) and private (4000–4999) use. 1004, 1005, 1006 and
/// 1015 are reserved or only for reporting, the rest of 0–2999 is unassigned, 5000 and
/// above are undefined.
pub(crate) fn may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The failure for a close frame whose code no endpoint may send.
pub(crate) fn forbidden(code: u16) -> ProbeError {
    let why = match code {
        1005 | 1006 | 1015 => "which must never be sent",
        1004 => "which is reserved",
        0..=999 => "which is not a close code",
        1016..=2999 => "which is unassigned",
        _ => "which is outside the defined range",
    };
    let mut e = ProbeError::new(Reason::ProtocolError, format!("server sent close code {code}, {why}"));
    e.close_code = Some(code);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_follow_the_registry() {
        let allowed: Vec<u16> = (0..=u16::MAX).filter(|&c| may_be_sent(c)).collect();
        assert_eq!(allowed.len(), 4 + 8 + 2000);
        for c in [1004, 1005, 1006, 1015, 999, 1016, 2999, 5000, 0] {
            assert!(!may_be_sent(c), "{c}");
        }
        assert_eq!(forbidden(1005).message, "server sent close code 1005, which must never be sent");
    }
}
