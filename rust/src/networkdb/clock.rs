//! Lamport clocks, with the semantics of hashicorp/serf's `LamportClock`
//! (which networkdb uses for its table clock and its network clock).

/// A logical clock. `increment` stamps a local event; `witness` folds in the
/// time carried by a remote event so that the next local event is ordered
/// after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LamportClock {
    counter: u64,
}

impl LamportClock {
    /// A clock at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current time, without advancing the clock.
    pub fn time(&self) -> u64 {
        self.counter
    }

    /// Advance the clock for a local event and return the new time.
    pub fn increment(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Observe the time `t` of a remote event: a time at or past ours moves
    /// the clock to `t + 1`, an older one leaves it alone.
    pub fn witness(&mut self, t: u64) {
        if t >= self.counter {
            self.counter = t.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_zero_and_increments() {
        let mut c = LamportClock::new();
        assert_eq!(c.time(), 0);
        assert_eq!(c.increment(), 1);
        assert_eq!(c.increment(), 2);
        assert_eq!(c.time(), 2);
    }

    #[test]
    fn witness_moves_past_newer_and_equal_times() {
        let mut c = LamportClock::new();
        c.witness(10);
        assert_eq!(c.time(), 11);
        // Equal to current: serf still moves past it.
        c.witness(11);
        assert_eq!(c.time(), 12);
        assert_eq!(c.increment(), 13);
    }

    #[test]
    fn witness_ignores_older_times() {
        let mut c = LamportClock::new();
        c.witness(5);
        c.witness(3);
        c.witness(0);
        assert_eq!(c.time(), 6);
    }

    #[test]
    fn witness_saturates() {
        let mut c = LamportClock::new();
        c.witness(u64::MAX);
        assert_eq!(c.time(), u64::MAX);
    }
}
