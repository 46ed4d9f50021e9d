//! The device's facts, telemetry counters and security events, read from files below a
//! filesystem root (`/` on a device, a fixture tree in tests).
//!
//! [`Collector::inventory`] builds the contract's [`Inventory`]; [`Collector::counters`] and
//! [`TelemetrySampler`] its [`Telemetry`](garrison_contract::Telemetry); [`AuthLogFollower`],
//! [`listening_changes`] and [`watched_file_changes`] its events. Every fact that cannot be
//! read is `None` (unknown), never a guess, and nothing read — however odd — makes a collector
//! panic. The only processes ever run are `rpm` (older RPM databases) and `nft`/`iptables-save`
//! (the packet filter), on the device itself only (`tools`).
//!
//! Sources, one module each: `os` (os-release, firmware version files), `hardware` (DMI,
//! device tree, cpuinfo, meminfo), `software` (dpkg, apk, opkg, rpm → CycloneDX), `net`
//! (/proc/net sockets, interfaces, counters), `procs` (the process table and socket owners),
//! `services` (sshd_config, Dropbear, telnet/FTP/UPnP/debug), `accounts` (passwd, shadow,
//! default-password check over `crypt`), `security` (time sync, Secure Boot, disk encryption,
//! logging) with `firewall` (the loaded packet-filter rules), `changes` (watched-file hashes
//! and change events), `telemetry`, `authlog`.

mod accounts;
mod authlog;
mod changes;
mod crypt;
mod firewall;
mod hardware;
mod net;
mod os;
mod procs;
mod root;
mod rpmdb;
mod security;
mod services;
mod software;
mod telemetry;
mod tools;

use std::path::PathBuf;

use garrison_contract::{Inventory, SCHEMA_VERSION};

pub use authlog::{AuthLogFollower, DEFAULT_AUTH_LOGS, MAX_READ_PER_POLL};
pub use changes::{listening_changes, watched_file_changes};
pub use telemetry::{InterfaceCounters, MAX_DESTINATIONS, NetCounters, TelemetrySampler};

use root::Root;

/// Reads a device's facts below one root.
#[derive(Debug)]
pub struct Collector {
    root: Root,
    watched: Vec<String>,
    defaults: accounts::DefaultCache,
}

impl Collector {
    /// A collector reading below `root` (`/` on the device).
    pub fn new(root: impl Into<PathBuf>) -> Collector {
        Collector {
            root: Root::new(root.into()),
            watched: Vec::new(),
            defaults: accounts::DefaultCache::default(),
        }
    }

    /// Files to hash in every inventory: absolute paths as seen on the device.
    pub fn watch_files(mut self, paths: Vec<String>) -> Collector {
        self.watched = paths;
        self
    }

    /// Everything the device's files tell, read now. `device_id` is left for the caller.
    pub fn inventory(&self, collected_at_ms: i64) -> Inventory {
        let root = &self.root;
        let release = os::Release::read(root);
        let os_id = release.id();
        let procs = procs::processes(root);
        let listening = net::Sockets::read(root).listening(root, procs.as_deref());
        Inventory {
            schema: SCHEMA_VERSION,
            device_id: None,
            collected_at: collected_at_ms,
            device_class: None,
            hardware: hardware::collect(root),
            firmware: release.firmware(root),
            os: release.os(root),
            software: software::collect(root, os_id.as_deref()),
            interfaces: net::interfaces(root),
            services: services::collect(root, listening.as_deref(), procs.as_deref()),
            listening,
            accounts: accounts::collect(root, &self.defaults),
            security: security::collect(root, procs.as_deref()),
            watched_files: changes::watched_files(root, &self.watched),
        }
    }

    /// A snapshot of the network counters, for [`TelemetrySampler::sample`].
    pub fn counters(&self) -> NetCounters {
        net::counters(&self.root)
    }

    /// The kernel's per-boot random id (`/proc/sys/kernel/random/boot_id`).
    pub fn boot_id(&self) -> Option<String> {
        self.root.read_value("/proc/sys/kernel/random/boot_id")
    }

    /// When the device booted, Unix ms (`btime` in `/proc/stat`, whole seconds).
    pub fn booted_at_ms(&self) -> Option<i64> {
        let stat = self.root.read_text("/proc/stat")?;
        stat.lines().find_map(|l| {
            let secs: i64 = l.strip_prefix("btime ")?.trim().parse().ok()?;
            secs.checked_mul(1000)
        })
    }
}
