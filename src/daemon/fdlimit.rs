//! The process's file-descriptor budget: the soft `RLIMIT_NOFILE` raised to the hard limit
//! at start, and the share of it the HTTP listener may hold.
//!
//! Every probe, health check and session needs a descriptor; so does every HTTP client.
//! The common soft limit of 1024 is far below what the kernel allows a process (the hard
//! limit), so the daemon raises it as Go programs do. The listener's connection cap is
//! then kept to at most a quarter of the limit, so clients of `/metrics` can never take
//! the descriptors probes need.

/// The descriptor limit in force after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit now in force (`None`: the platform has no such limit).
    pub soft: Option<u64>,
    /// The soft limit before the raise, when it was raised.
    pub raised_from: Option<u64>,
}

/// Raises the soft descriptor limit to the hard one. Failure is logged, never fatal: the
/// daemon then works within the limit it has.
pub fn raise() -> FdLimit {
    #[cfg(unix)]
    {
        use rlimit::Resource;
        let before = match Resource::NOFILE.get() {
            Ok((soft, _)) => soft,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the file-descriptor limit.");
                return FdLimit { soft: None, raised_from: None };
            }
        };
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(soft) => FdLimit { soft: Some(soft), raised_from: (soft > before).then_some(before) },
            Err(e) => {
                tracing::warn!(error = %e, limit = before, "Cannot raise the file-descriptor limit; keeping it.");
                FdLimit { soft: Some(before), raised_from: None }
            }
        }
    }
    #[cfg(not(unix))]
    FdLimit { soft: None, raised_from: None }
}

/// The listener's connection cap: `wanted`, but at most a quarter of the descriptor limit
/// (the rest is headroom for probes, sessions, checks and files), and at least 1.
pub(crate) fn listener_cap(wanted: usize, limit: FdLimit) -> usize {
    let share = limit.soft.map_or(usize::MAX, |s| usize::try_from(s / 4).unwrap_or(usize::MAX));
    wanted.min(share).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_three_quarters_of_the_limit() {
        let at = |soft| FdLimit { soft: Some(soft), raised_from: None };
        assert_eq!(listener_cap(512, at(1_048_576)), 512);
        assert_eq!(listener_cap(512, at(1024)), 256);
        assert_eq!(listener_cap(512, at(2)), 1);
        assert_eq!(listener_cap(512, FdLimit { soft: None, raised_from: None }), 512);
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let limit = raise();
        #[cfg(unix)]
        {
            let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((0, 0));
            assert_eq!(limit.soft, Some(soft));
            assert_eq!(soft, hard);
        }
        let _ = limit;
    }
}
