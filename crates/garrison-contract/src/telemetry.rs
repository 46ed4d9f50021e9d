//! `telemetry`: what the device's network did over the last interval.
//!
//! The metrics are AWS IoT Device Defender's device-side set (bytes and packets in/out,
//! established TCP connections, destination addresses, listening ports), so baselines built on
//! them compare with what operators know. Counters are deltas over `interval_ms`, not totals
//! since boot: a lost message loses one interval, not the meaning of the next.

use serde::{Deserialize, Serialize};

use crate::{
    ReportError,
    report::{Check, Validate},
};

/// `garrison/v1/d/<id>/telemetry`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Always [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    pub schema: u32,
    /// The device id; must equal the publishing device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// End of the interval, Unix ms.
    pub at: i64,
    /// Length of the interval, ms.
    pub interval_ms: u64,
    /// Bytes received in the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    /// Bytes sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// Packets received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_in: Option<u64>,
    /// Packets sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_out: Option<u64>,
    /// Established TCP connections at the end of the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established_connections: Option<u32>,
    /// Remote addresses of established connections (at most [`Limits::max_list`](crate::Limits)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
    /// How many distinct remote addresses there were (may exceed `destinations.len()` when the
    /// list was cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct_destinations: Option<u32>,
    /// Listening TCP ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listening_tcp_ports: Option<u32>,
    /// Listening UDP ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listening_udp_ports: Option<u32>,
}

impl Validate for Telemetry {
    fn schema(&self) -> u32 {
        self.schema
    }
    fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }
    fn validate(&self, check: &mut Check<'_>) -> Result<(), ReportError> {
        check.time("at", self.at)?;
        if self.interval_ms == 0 || self.interval_ms > 86_400_000 {
            return Err(Check::fail(
                "interval_ms",
                "must be between 1 ms and one day",
            ));
        }
        check.list("destinations", &self.destinations, check.limits.max_list)?;
        for (i, d) in self.destinations.iter().enumerate() {
            if d.parse::<std::net::IpAddr>().is_err() {
                return Err(Check::fail(
                    format!("destinations[{i}]"),
                    "is not an IP address",
                ));
            }
        }
        Ok(())
    }
}
