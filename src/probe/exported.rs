//! Which phase histograms a target exports (`phase_histograms:`), for very large fleets.
//!
//! `wsprobe_phase_duration_seconds` has one histogram per target and phase, twenty
//! samples each: three quarters of a scrape's bytes. A fleet of thousands of targets may
//! keep only the phases it alerts on (say `[connect, handshake]`). The default is every
//! phase. Probe results, the API, the record file and the detector keep every phase
//! either way; only the histogram series are left out.

use super::Phase;

/// A set of phases, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseHistograms(u16);

impl Default for PhaseHistograms {
    fn default() -> Self {
        Self::ALL
    }
}

impl PhaseHistograms {
    pub const ALL: Self = Self(u16::MAX);

    pub fn exports(self, phase: Phase) -> bool {
        self.0 & (1 << phase as u16) != 0
    }

    pub fn is_all(self) -> bool {
        Phase::ALL.iter().all(|p| self.exports(*p))
    }

    /// Reads the configured list; each problem names `at.phase_histograms`.
    pub fn parse(at: &str, names: &[String], problems: &mut Vec<String>) -> Self {
        let mut set = 0u16;
        for (i, name) in names.iter().enumerate() {
            match Phase::from_label(name) {
                Some(p) if set & (1 << p as u16) != 0 => {
                    problems.push(format!("{at}.phase_histograms[{i}]: `{name}` is listed twice"));
                }
                Some(p) => set |= 1 << p as u16,
                None => {
                    let known: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
                    problems.push(format!(
                        "{at}.phase_histograms[{i}]: `{}` is not a phase (one of {})",
                        crate::util::text::excerpt(&crate::util::text::escape_control(name), 40),
                        known.join(", ")
                    ));
                }
            }
        }
        Self(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_keeps_exactly_its_phases() {
        let mut problems = Vec::new();
        let set = PhaseHistograms::parse("t", &["connect".into(), "handshake".into()], &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(set.exports(Phase::Connect) && set.exports(Phase::Handshake));
        assert!(!set.exports(Phase::Dns) && !set.exports(Phase::Close) && !set.is_all());
        assert!(PhaseHistograms::default().is_all());
        assert!(!PhaseHistograms::parse("t", &[], &mut problems).exports(Phase::Connect));
    }
}
