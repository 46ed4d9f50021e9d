//! Per-device counters the broker keeps for monitoring (messages and bytes in, authorization
//! failures, connects, disconnects, session takeovers, the last source address).
//!
//! rmqtt keeps no per-client message counts, so the hooks count here. Entries are keyed by the
//! device id in a certificate from Garrison's CA (never by a client id a connection merely
//! claims), so the map cannot be grown by strangers.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

/// What the broker has counted for one device since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Messages accepted from the device.
    pub messages_in: u64,
    /// Payload bytes accepted from the device.
    pub bytes_in: u64,
    /// Publishes and subscriptions refused by the ACL, and refused connects.
    pub authorization_failures: u64,
    /// Successful connects.
    pub connects: u64,
    /// Disconnects, clean or not.
    pub disconnects: u64,
    /// Connections that replaced a live session of this device.
    pub takeovers: u64,
    /// Address of the most recent connection attempt.
    pub last_address: Option<String>,
    /// Distinct addresses of recent connection attempts, most recent last (at most
    /// [`RECENT_ADDRESSES`]).
    pub recent_addresses: Vec<String>,
}

/// How many distinct recent source addresses are kept per device.
pub const RECENT_ADDRESSES: usize = 8;

impl DeviceCounters {
    /// Records a connection attempt from `address`.
    pub(crate) fn saw_address(&mut self, address: Option<String>) {
        if let Some(a) = &address {
            self.recent_addresses.retain(|r| r != a);
            self.recent_addresses.push(a.clone());
            if self.recent_addresses.len() > RECENT_ADDRESSES {
                self.recent_addresses.remove(0);
            }
        }
        self.last_address = address;
    }
}

#[derive(Debug, Default)]
pub(crate) struct CounterMap(Mutex<HashMap<String, DeviceCounters>>);

impl CounterMap {
    pub(crate) fn update(&self, device: &str, f: impl FnOnce(&mut DeviceCounters)) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Called for every message: look up before paying for an owned key.
        match map.get_mut(device) {
            Some(counters) => f(counters),
            None => f(map.entry(device.to_owned()).or_default()),
        }
    }

    pub(crate) fn all(&self) -> Vec<(String, DeviceCounters)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(d, c)| (d.clone(), c.clone()))
            .collect()
    }

    pub(crate) fn get(&self, device: &str) -> Option<DeviceCounters> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(device)
            .cloned()
    }
}
