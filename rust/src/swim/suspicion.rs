//! Lifeguard suspicion timers: the timeout starts at `max` and shrinks towards
//! `min` as independent peers confirm the suspicion (memberlist's suspicion.go
//! behaviour, restated).

use std::collections::HashSet;

/// memberlist's suspicionTimeout: mult × max(1, log10(n)) × interval.
pub fn suspicion_timeout(mult: u32, n: usize, interval: u64) -> u64 {
    let scale = (n.max(1) as f64).log10().max(1.0);
    // memberlist rounds the scale to milliseconds of a second.
    let scale_ms = (scale * 1000.0) as u64;
    mult as u64 * scale_ms * interval / 1000
}

#[derive(Debug, Clone)]
pub struct Suspicion {
    k: u32,
    n: u32,
    min: u64,
    max: u64,
    start: u64,
    confirmations: HashSet<String>,
    /// When the node is declared dead unless refuted.
    pub deadline: u64,
}

impl Suspicion {
    pub fn new(now: u64, from: &str, k: u32, min: u64, max: u64) -> Self {
        let mut confirmations = HashSet::new();
        confirmations.insert(from.to_string());
        let timeout = if k < 1 { min } else { max };
        Suspicion { k, n: 0, min, max, start: now, confirmations, deadline: now + timeout }
    }

    /// An independent confirmation; true when it was new (and should be
    /// gossiped on). The deadline moves earlier.
    pub fn confirm(&mut self, now: u64, from: &str) -> bool {
        if self.n >= self.k || self.confirmations.contains(from) {
            return false;
        }
        self.confirmations.insert(from.to_string());
        self.n += 1;
        let frac = ((self.n as f64) + 1.0).ln() / ((self.k as f64) + 1.0).ln();
        let raw = self.max as f64 - frac * (self.max - self.min) as f64;
        // memberlist floors to whole milliseconds.
        let timeout = (((raw / 1000.0).floor() as u64) * 1000).max(self.min);
        self.deadline = self.start + timeout;
        let _ = now;
        true
    }

    pub fn confirmations(&self) -> u32 {
        self.n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swim::config::SEC;

    #[test]
    fn timeout_scales_with_log10_of_cluster() {
        assert_eq!(suspicion_timeout(4, 3, SEC), 4 * SEC);
        assert_eq!(suspicion_timeout(4, 100, SEC), 8 * SEC);
        assert_eq!(suspicion_timeout(4, 1000, SEC), 12 * SEC);
    }

    #[test]
    fn confirmations_shorten_to_min_and_dedupe() {
        let (min, max) = (4 * SEC, 24 * SEC);
        let mut s = Suspicion::new(0, "a", 2, min, max);
        assert_eq!(s.deadline, max);
        assert!(!s.confirm(1, "a"), "the accuser does not confirm itself");
        assert!(s.confirm(1, "b"));
        assert!(s.deadline < max && s.deadline > min);
        assert!(!s.confirm(1, "b"));
        assert!(s.confirm(1, "c"));
        assert_eq!(s.deadline, min);
        assert!(!s.confirm(1, "d"), "no more than k confirmations");
    }

    #[test]
    fn no_expected_confirmations_means_min() {
        let s = Suspicion::new(5, "a", 0, 3 * SEC, 18 * SEC);
        assert_eq!(s.deadline, 5 + 3 * SEC);
    }
}
