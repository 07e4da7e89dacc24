//! A process's resident memory, sampled from `/proc/PID/status`, and the verdict on a
//! series of samples: flat, or growing.

use crate::harness::{Error, Result};

/// Growth allowed on top of the early maximum: a tenth of it …
const GROWTH_SHARE: u64 = 10;
/// … plus this much (allocator and page-cache noise), in KiB.
const GROWTH_SLACK_KIB: u64 = 4 * 1024;

/// The resident set size of `pid` (`VmRSS`), in KiB.
///
/// # Errors
///
/// The process is gone or its status has no `VmRSS`.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(Error::io(format!("reading {path}")))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| Error::Output(format!("{path} has no VmRSS line")))
}

/// The verdict on samples taken after warm-up: the maximum of the last third may exceed
/// the maximum of the first third by at most a tenth plus 4 MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatness {
    /// The maximum of the first third, KiB.
    pub early_max: u64,
    /// The maximum of the last third, KiB.
    pub late_max: u64,
    /// The most the late maximum may be, KiB.
    pub limit: u64,
    /// The smallest sample, KiB.
    pub min: u64,
    /// The largest sample, KiB.
    pub max: u64,
}

impl Flatness {
    /// Judges `samples` (KiB, in order); `None` with fewer than three.
    pub fn of(samples: &[u64]) -> Option<Self> {
        let third = samples.len() / 3;
        if third == 0 {
            return None;
        }
        let early_max = *samples[..third].iter().max()?;
        Some(Self {
            early_max,
            late_max: *samples[samples.len() - third..].iter().max()?,
            limit: early_max + early_max / GROWTH_SHARE + GROWTH_SLACK_KIB,
            min: *samples.iter().min()?,
            max: *samples.iter().max()?,
        })
    }

    /// Whether the memory stayed flat.
    pub fn flat(&self) -> bool {
        self.late_max <= self.limit
    }
}

/// `kib` in MiB with one decimal, for reports.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::{Flatness, rss_kib};

    #[test]
    fn a_plateau_is_flat_and_a_climb_is_not() {
        let plateau = [100_000, 101_000, 99_000, 102_000, 100_500, 101_500];
        assert!(Flatness::of(&plateau).unwrap().flat());
        let climb = [100_000, 110_000, 120_000, 130_000, 140_000, 150_000];
        let verdict = Flatness::of(&climb).unwrap();
        assert_eq!((verdict.early_max, verdict.late_max), (110_000, 150_000));
        assert!(!verdict.flat());
        assert_eq!(Flatness::of(&[1, 2]), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
