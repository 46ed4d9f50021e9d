//! Abuse limits: per-device message and byte rates, and connection attempts per source
//! address.
//!
//! Rates are enforced as back-pressure, not refusal: a device over its rate waits (its PUBACK
//! is held back) until its bucket refills, which slows only that device's connection task and
//! never drops what it sent. Connection attempts over the per-source limit are refused at
//! CONNECT and counted.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// The limits; zero disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbuseLimits {
    /// Messages per second each device may publish (sustained; bursts up to one second's worth).
    pub messages_per_second: u32,
    /// Payload bytes per second each device may publish.
    pub bytes_per_second: u64,
    /// Connection attempts per source address per minute.
    pub connects_per_minute_per_source: u32,
}

impl AbuseLimits {
    /// No limits (tests, lab use).
    pub const NONE: AbuseLimits = AbuseLimits {
        messages_per_second: 0,
        bytes_per_second: 0,
        connects_per_minute_per_source: 0,
    };
}

#[derive(Debug)]
struct Bucket {
    messages: f64,
    bytes: f64,
    at: Instant,
}

/// Token buckets per device and attempt windows per source.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: AbuseLimits,
    buckets: Mutex<HashMap<String, Bucket>>,
    attempts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Limiter {
    pub(crate) fn new(limits: AbuseLimits) -> Limiter {
        Limiter {
            limits,
            buckets: Mutex::default(),
            attempts: Mutex::default(),
        }
    }

    /// How long `device` must wait before a message of `bytes` fits its rate (zero: go).
    /// The message is charged now, so waiting callers queue up fairly.
    pub(crate) fn charge(&self, device: &str, bytes: usize) -> Duration {
        let l = self.limits;
        if l.messages_per_second == 0 && l.bytes_per_second == 0 {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        // Called for every message: look up before paying for an owned key.
        if !buckets.contains_key(device) {
            buckets.insert(
                device.to_owned(),
                Bucket {
                    messages: f64::from(l.messages_per_second),
                    bytes: l.bytes_per_second as f64,
                    at: now,
                },
            );
        }
        let Some(bucket) = buckets.get_mut(device) else {
            return Duration::ZERO;
        };
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.at = now;
        let mut wait: f64 = 0.0;
        if l.messages_per_second > 0 {
            let rate = f64::from(l.messages_per_second);
            bucket.messages = (bucket.messages + elapsed * rate).min(rate) - 1.0;
            if bucket.messages < 0.0 {
                wait = wait.max(-bucket.messages / rate);
            }
        }
        if l.bytes_per_second > 0 {
            let rate = l.bytes_per_second as f64;
            bucket.bytes = (bucket.bytes + elapsed * rate).min(rate) - bytes as f64;
            if bucket.bytes < 0.0 {
                wait = wait.max(-bucket.bytes / rate);
            }
        }
        Duration::from_secs_f64(wait)
    }

    /// Records a connection attempt from `source`; false when it is over the limit.
    pub(crate) fn admit_connect(&self, source: IpAddr) -> bool {
        let max = self.limits.connects_per_minute_per_source;
        if max == 0 {
            return true;
        }
        let now = Instant::now();
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        if attempts.len() > 100_000 {
            attempts.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = attempts.entry(source).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_rate_turns_into_waiting_not_refusal() {
        let l = Limiter::new(AbuseLimits {
            messages_per_second: 10,
            ..AbuseLimits::NONE
        });
        let waits: Vec<Duration> = (0..15).map(|_| l.charge("d", 10)).collect();
        assert!(
            waits[..10].iter().all(|w| *w == Duration::ZERO),
            "{waits:?}"
        );
        assert!(waits[10] > Duration::from_millis(50), "{waits:?}");
        assert!(
            waits[14] > waits[10],
            "waits grow with the backlog: {waits:?}"
        );
        assert_eq!(
            l.charge("other", 10),
            Duration::ZERO,
            "devices are independent"
        );
    }

    #[test]
    fn byte_rate_counts_payload_size() {
        let l = Limiter::new(AbuseLimits {
            bytes_per_second: 1000,
            ..AbuseLimits::NONE
        });
        assert_eq!(l.charge("d", 1000), Duration::ZERO);
        let wait = l.charge("d", 500);
        assert!(
            wait >= Duration::from_millis(400) && wait <= Duration::from_millis(600),
            "{wait:?}"
        );
    }

    #[test]
    fn connect_attempts_are_limited_per_source() {
        let l = Limiter::new(AbuseLimits {
            connects_per_minute_per_source: 3,
            ..AbuseLimits::NONE
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| l.admit_connect(a)));
        assert!(!l.admit_connect(a));
        assert!(l.admit_connect(b));
        assert!(Limiter::new(AbuseLimits::NONE).admit_connect(a));
    }
}
