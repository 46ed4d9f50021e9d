//! Network counters and the telemetry message built from two snapshots of them.
//!
//! The contract wants deltas over an interval, so [`TelemetrySampler`] keeps the previous
//! snapshot. Deltas are computed per interface: an interface that appeared in the interval
//! counts from zero (its counters started then), one that went away is left out, and one whose
//! counter went backwards (a driver reset, a 32-bit wrap) makes that counter unknown for the
//! interval rather than a guess.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use garrison_contract::{SCHEMA_VERSION, Telemetry};

/// Most destination addresses listed in one message.
pub const MAX_DESTINATIONS: usize = 256;

/// The longest interval the contract accepts, ms.
const MAX_INTERVAL_MS: u64 = 86_400_000;

/// One interface's totals since it appeared (`/proc/net/dev`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// Bytes received.
    pub bytes_in: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Packets sent.
    pub packets_out: u64,
}

/// A snapshot of the device's network counters; each `None` is "could not be read".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Totals per interface, loopback excluded.
    pub interfaces: Option<BTreeMap<String, InterfaceCounters>>,
    /// Established TCP connections (IPv4 and IPv6), loopback excluded.
    pub established_connections: Option<u32>,
    /// Distinct remote addresses of those connections (IPv4-mapped IPv6 shown as IPv4).
    pub destinations: Option<BTreeSet<IpAddr>>,
    /// Distinct listening TCP ports.
    pub listening_tcp_ports: Option<u32>,
    /// Distinct UDP ports bound by unconnected sockets.
    pub listening_udp_ports: Option<u32>,
}

/// Turns successive [`NetCounters`] snapshots into [`Telemetry`] messages.
#[derive(Debug, Default)]
pub struct TelemetrySampler {
    previous: Option<(NetCounters, i64)>,
}

impl TelemetrySampler {
    /// A sampler with no previous snapshot.
    pub fn new() -> TelemetrySampler {
        TelemetrySampler::default()
    }

    /// The telemetry for the interval since the previous call, ending at `at_ms`. `None` on the
    /// first call, and when the clock did not move forward or moved more than a day (the
    /// contract's longest interval); `now` becomes the baseline either way.
    pub fn sample(&mut self, now: NetCounters, at_ms: i64) -> Option<Telemetry> {
        let previous = self.previous.replace((now.clone(), at_ms));
        let (before, before_at) = previous?;
        let interval_ms = u64::try_from(at_ms.checked_sub(before_at)?).ok()?;
        if interval_ms == 0 || interval_ms > MAX_INTERVAL_MS {
            return None;
        }
        let delta = |get: fn(&InterfaceCounters) -> u64| -> Option<u64> {
            let (old, new) = (before.interfaces.as_ref()?, now.interfaces.as_ref()?);
            let mut sum = 0u64;
            for (name, n) in new {
                let start = old.get(name).map_or(0, get);
                sum = sum.checked_add(get(n).checked_sub(start)?)?;
            }
            Some(sum)
        };
        let (destinations, distinct) = match &now.destinations {
            Some(d) => (
                d.iter()
                    .take(MAX_DESTINATIONS)
                    .map(ToString::to_string)
                    .collect(),
                Some(u32::try_from(d.len()).unwrap_or(u32::MAX)),
            ),
            None => (Vec::new(), None),
        };
        Some(Telemetry {
            schema: SCHEMA_VERSION,
            device_id: None,
            at: at_ms,
            interval_ms,
            bytes_in: delta(|c| c.bytes_in),
            bytes_out: delta(|c| c.bytes_out),
            packets_in: delta(|c| c.packets_in),
            packets_out: delta(|c| c.packets_out),
            established_connections: now.established_connections,
            destinations,
            distinct_destinations: distinct,
            listening_tcp_ports: now.listening_tcp_ports,
            listening_udp_ports: now.listening_udp_ports,
        })
    }
}
