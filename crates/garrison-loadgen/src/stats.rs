//! Latency samples and percentiles.

use std::time::Duration;

/// Latency samples in nanoseconds.
#[derive(Default, Debug)]
pub(crate) struct Samples(Vec<u64>);

impl Samples {
    pub(crate) fn push(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn push_nanos(&mut self, nanos: u64) {
        self.0.push(nanos);
    }

    pub(crate) fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Percentile `p` (0–100) in milliseconds; `None` without samples.
    pub(crate) fn percentile_ms(&mut self, p: f64) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        self.0.sort_unstable();
        let rank = ((p / 100.0) * (self.0.len() - 1) as f64).round() as usize;
        let nanos = self.0[rank.min(self.0.len() - 1)];
        Some(nanos as f64 / 1e6)
    }
}

/// A JSON number rounded to `digits` decimals, or null.
pub(crate) fn num(value: Option<f64>, digits: i32) -> serde_json::Value {
    let scale = 10f64.powi(digits);
    value
        .map(|v| serde_json::json!((v * scale).round() / scale))
        .unwrap_or(serde_json::Value::Null)
}
