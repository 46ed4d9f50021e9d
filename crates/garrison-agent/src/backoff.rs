//! Reconnect back-off with full jitter: each wait is uniformly random between zero and an
//! exponentially growing cap, so a fleet that lost its broker at the same moment does not come
//! back at the same moment (ETSI EN 303 645 provision 5.9-3: no reconnect storms).

use std::time::Duration;

/// Exponential back-off with full jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Waits start below `base` and never exceed `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// No waiting at all (the simulator's reconnect-storm scenario).
    pub fn none() -> Backoff {
        Backoff::new(Duration::ZERO, Duration::ZERO)
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(random_u64() % (millis + 1))
    }

    /// Back to the first step (after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // The system RNG failing is not worth stopping a reconnect for: fall back to the clock.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
        );
    }
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_within_the_cap_and_are_spread() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let waits: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (i, w) in waits.iter().enumerate() {
            let cap = Duration::from_millis(100 * (1 << i.min(20))).min(Duration::from_secs(2));
            assert!(*w <= cap, "attempt {i}: {w:?} > {cap:?}");
        }
        // 1,000 devices at attempt 5 (cap 2 s) do not all pick the same moment.
        let spread: std::collections::BTreeSet<u128> = (0..1000)
            .map(|_| {
                let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
                (0..5).for_each(|_| {
                    b.next_delay();
                });
                b.next_delay().as_millis() / 100
            })
            .collect();
        assert!(
            spread.len() >= 15,
            "only {} distinct 100 ms slots",
            spread.len()
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        assert_eq!(Backoff::none().next_delay(), Duration::ZERO);
    }
}
