//! From an inventory report to what Garrison keeps of it: the searchable summary, the device
//! class, and the flat list of named facts whose changes make up the fact history.
//!
//! Facts are flattened to `name → JSON value` so any change is one comparable entry
//! (`firmware.version: "2.0.1" → "2.1.0"`). Unknown facts are absent, so "unknown → known" is a
//! change like any other, while equal values never are. The SBOM is summarised as a count and a
//! digest; when it changes, each added, removed or changed package is its own entry
//! (`package:openssl`), capped so a full OS upgrade stays a bounded write.

use std::collections::{BTreeMap, BTreeSet};

use garrison_contract::{DeviceClass, Inventory, PasswordState};
use garrison_store::inventory::{DeviceSummary, FactChange};
use serde_json::{Value, json};

/// Most interface addresses kept per device: enough for any real device, and a bound on what
/// one report can add to the fleet index.
pub const MAX_ADDRESSES: usize = 64;

/// Most per-package entries one report adds to the history.
pub const MAX_PACKAGE_CHANGES: usize = 200;

/// Ports whose services are insecure by design (cleartext logins, discovery, debugging).
pub const RISKY_PORTS: &[(u16, &str)] = &[
    (21, "ftp"),
    (23, "telnet"),
    (2323, "telnet"),
    (1900, "upnp"),
    (5555, "adb"),
    (7547, "tr-069"),
];

/// The device class: what the device says, else derived from its capability: RFC 7228
/// constrained devices have no general-purpose OS or under 1 MiB of memory; a Linux-class
/// device with a package database and at least 512 MiB is `rich`; other Linux-class devices are
/// `embedded`. Unknown when nothing tells.
pub fn device_class(inv: &Inventory) -> Option<DeviceClass> {
    const MIB: u64 = 1024 * 1024;
    if let Some(class) = inv.device_class {
        return Some(class);
    }
    let memory = inv.hardware.memory_bytes;
    if memory.is_some_and(|m| m < MIB) {
        return Some(DeviceClass::Constrained);
    }
    let has_os = inv.os.kernel.is_some() || inv.os.id.is_some();
    if !has_os {
        return None;
    }
    let has_packages = inv
        .software
        .as_ref()
        .is_some_and(|s| !s.components.is_empty());
    if has_packages && memory.is_some_and(|m| m >= 512 * MIB) {
        Some(DeviceClass::Rich)
    } else {
        Some(DeviceClass::Embedded)
    }
}

/// Risky services a report shows: the flags the device set, and listening ports of services
/// that are insecure by design.
pub fn risky_services(inv: &Inventory) -> Vec<String> {
    let mut found = BTreeSet::new();
    let s = &inv.services;
    for (flag, name) in [(s.telnet, "telnet"), (s.ftp, "ftp"), (s.upnp, "upnp")] {
        if flag == Some(true) {
            found.insert(name.to_owned());
        }
    }
    for debug in s.debug.iter().flatten() {
        found.insert(debug.clone());
    }
    for socket in inv.listening.iter().flatten() {
        if socket.is_loopback() {
            continue;
        }
        if let Some((_, name)) = RISKY_PORTS.iter().find(|(p, _)| *p == socket.port) {
            found.insert((*name).to_owned());
        }
    }
    found.into_iter().collect()
}

/// The summary the fleet index and search use.
pub fn summarize(inv: &Inventory) -> DeviceSummary {
    let mut tcp = BTreeSet::new();
    let mut udp = BTreeSet::new();
    for socket in inv.listening.iter().flatten() {
        if socket.is_loopback() {
            continue;
        }
        match socket.protocol {
            garrison_contract::Protocol::Tcp => tcp.insert(socket.port),
            garrison_contract::Protocol::Udp => udp.insert(socket.port),
        };
    }
    let addresses = inv
        .interfaces
        .iter()
        .flatten()
        .flat_map(|nic| nic.addresses.iter())
        .map(|a| a.split('/').next().unwrap_or(a).to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(MAX_ADDRESSES)
        .collect();
    DeviceSummary {
        manufacturer: inv.hardware.manufacturer.clone(),
        model: inv.hardware.model.clone(),
        serial: inv.hardware.serial.clone(),
        firmware: inv.firmware.version.clone(),
        os: inv.os.id.clone(),
        os_version: inv.os.version.clone(),
        kernel: inv.os.kernel.clone(),
        hostname: inv.os.hostname.clone(),
        architecture: inv.hardware.architecture.clone(),
        class: device_class(inv).map(|c| c.as_str().to_owned()),
        tcp_ports: tcp.into_iter().collect(),
        udp_ports: udp.into_iter().collect(),
        risky_services: risky_services(inv),
        ssh_password_auth: inv
            .services
            .ssh
            .as_ref()
            .and_then(|s| s.password_authentication),
        packages: inv
            .software
            .as_ref()
            .map(|s| u32::try_from(s.components.len()).unwrap_or(u32::MAX)),
        software_digest: packages(inv).as_ref().and_then(|p| {
            software_fact(p)
                .get("digest")
                .and_then(|d| d.as_str())
                .map(str::to_owned)
        }),
        addresses,
    }
}

/// Installed packages as `name → version` (the first of duplicate names wins).
fn packages(inv: &Inventory) -> Option<BTreeMap<&str, &str>> {
    let sbom = inv.software.as_ref()?;
    let mut map = BTreeMap::new();
    for c in &sbom.components {
        map.entry(c.name.as_str())
            .or_insert(c.version.as_deref().unwrap_or(""));
    }
    Some(map)
}

fn software_fact(packages: &BTreeMap<&str, &str>) -> Value {
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for (name, version) in packages {
        digest.update(name.as_bytes());
        digest.update(b"\0");
        digest.update(version.as_bytes());
        digest.update(b"\n");
    }
    json!({
        "components": packages.len(),
        "digest": hex::encode(&digest.finish().as_ref()[..16]),
    })
}

/// Every known fact of a report as `name → value`.
pub fn fact_values(inv: &Inventory) -> BTreeMap<String, Value> {
    let mut facts = BTreeMap::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(v) = value {
            facts.insert(name.to_owned(), v);
        }
    };
    let text = |v: &Option<String>| v.as_ref().map(|s| json!(s));
    let flag = |v: Option<bool>| v.map(Value::Bool);
    let h = &inv.hardware;
    put("device_class", device_class(inv).map(|c| json!(c.as_str())));
    put("hardware.manufacturer", text(&h.manufacturer));
    put("hardware.model", text(&h.model));
    put("hardware.serial", text(&h.serial));
    put("hardware.architecture", text(&h.architecture));
    put("hardware.cpu_model", text(&h.cpu_model));
    put("hardware.cpu_count", h.cpu_count.map(|n| json!(n)));
    put("hardware.memory_bytes", h.memory_bytes.map(|n| json!(n)));
    put("firmware.version", text(&inv.firmware.version));
    put("firmware.build", text(&inv.firmware.build));
    put("os.id", text(&inv.os.id));
    put("os.name", text(&inv.os.name));
    put("os.version", text(&inv.os.version));
    put("os.kernel", text(&inv.os.kernel));
    put("os.hostname", text(&inv.os.hostname));
    put("software", packages(inv).map(|p| software_fact(&p)));
    put(
        "interfaces",
        inv.interfaces.as_ref().map(|list| {
            let mut lines: Vec<String> = list
                .iter()
                .map(|nic| {
                    let mut line = nic.name.clone();
                    if let Some(mac) = &nic.mac {
                        line.push(' ');
                        line.push_str(mac);
                    }
                    for a in &nic.addresses {
                        line.push(' ');
                        line.push_str(a);
                    }
                    line
                })
                .collect();
            lines.sort();
            json!(lines)
        }),
    );
    put(
        "listening",
        inv.listening.as_ref().map(|list| {
            let lines: BTreeSet<String> = list
                .iter()
                .map(|s| {
                    let process = s
                        .process
                        .as_deref()
                        .map(|p| format!(" {p}"))
                        .unwrap_or_default();
                    format!("{} {}:{}{process}", s.protocol.as_str(), s.address, s.port)
                })
                .collect();
            json!(lines)
        }),
    );
    if let Some(ssh) = &inv.services.ssh {
        put(
            "services.ssh.password_authentication",
            flag(ssh.password_authentication),
        );
        put(
            "services.ssh.permit_root_login",
            text(&ssh.permit_root_login),
        );
        put("services.ssh.port", ssh.port.map(|p| json!(p)));
    }
    put("services.telnet", flag(inv.services.telnet));
    put("services.ftp", flag(inv.services.ftp));
    put("services.upnp", flag(inv.services.upnp));
    put(
        "services.debug",
        inv.services.debug.as_ref().map(|d| {
            let set: BTreeSet<&String> = d.iter().collect();
            json!(set)
        }),
    );
    put(
        "accounts",
        inv.accounts.as_ref().map(|list| {
            let lines: BTreeSet<String> = list
                .iter()
                .map(|a| {
                    let password = match a.password {
                        PasswordState::Set => "set",
                        PasswordState::Empty => "empty",
                        PasswordState::Locked => "locked",
                        PasswordState::Unknown => "unknown",
                    };
                    let default = match a.default_password {
                        Some(true) => " default-password",
                        _ => "",
                    };
                    format!(
                        "{} uid={} shell={} password={password}{default}",
                        a.name,
                        a.uid,
                        a.shell.as_deref().unwrap_or("?")
                    )
                })
                .collect();
            json!(lines)
        }),
    );
    let sec = &inv.security;
    put("security.firewall", flag(sec.firewall));
    put("security.time_sync", flag(sec.time_sync));
    put("security.secure_boot", flag(sec.secure_boot));
    put("security.disk_encryption", flag(sec.disk_encryption));
    put("security.logging", flag(sec.logging));
    for file in &inv.watched_files {
        put(
            &format!("watched_file:{}", file.path),
            Some(file.sha256.as_ref().map_or(Value::Null, |h| json!(h))),
        );
    }
    facts
}

/// The fact history entries from `before` (absent for a first report) to `after`.
pub fn changes(before: Option<&Inventory>, after: &Inventory, at: i64) -> Vec<FactChange> {
    let old = before.map(fact_values).unwrap_or_default();
    let new = fact_values(after);
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut out: Vec<FactChange> = names
        .into_iter()
        .filter(|name| old.get(*name) != new.get(*name))
        .map(|name| FactChange {
            fact: name.clone(),
            at,
            before: old.get(name).cloned(),
            after: new.get(name).cloned(),
        })
        .collect();
    // Per-package entries only on a change, not for the first inventory (the SBOM is the
    // baseline then, not news).
    if let (Some(old_pkgs), Some(new_pkgs)) = (before.and_then(packages), packages(after)) {
        let mut package_changes = Vec::new();
        for name in old_pkgs
            .keys()
            .chain(new_pkgs.keys())
            .collect::<BTreeSet<_>>()
        {
            let (was, is) = (old_pkgs.get(name), new_pkgs.get(name));
            if was != is {
                package_changes.push(FactChange {
                    fact: format!("package:{name}"),
                    at,
                    before: was.map(|v| json!(v)),
                    after: is.map(|v| json!(v)),
                });
            }
        }
        package_changes.truncate(MAX_PACKAGE_CHANGES);
        out.extend(package_changes);
    }
    out
}

#[cfg(test)]
mod tests {
    use garrison_contract::{
        Component, ComponentType, Hardware, ListeningSocket, Os, Protocol, Sbom, Services,
    };

    use super::*;

    fn socket(port: u16, address: &str) -> ListeningSocket {
        ListeningSocket {
            protocol: Protocol::Tcp,
            address: address.into(),
            port,
            process: None,
            pid: None,
        }
    }

    fn component(name: &str, version: &str) -> Component {
        Component {
            component_type: ComponentType::Library,
            name: name.into(),
            version: Some(version.into()),
            purl: None,
        }
    }

    fn camera() -> Inventory {
        Inventory {
            schema: 1,
            collected_at: 1_764_633_600_000,
            hardware: Hardware {
                model: Some("cam-x".into()),
                memory_bytes: Some(64 << 20),
                ..Hardware::default()
            },
            os: Os {
                id: Some("linux".into()),
                kernel: Some("4.9.37".into()),
                ..Os::default()
            },
            listening: Some(vec![
                socket(554, "0.0.0.0"),
                socket(23, "0.0.0.0"),
                socket(8080, "127.0.0.1"),
            ]),
            software: Some(Sbom::new(vec![
                component("busybox", "1.31.0"),
                component("openssl", "1.1.1k"),
            ])),
            ..Inventory::default()
        }
    }

    #[test]
    fn summary_and_class() {
        let s = summarize(&camera());
        assert_eq!(s.tcp_ports, vec![23, 554]);
        assert_eq!(s.risky_services, vec!["telnet"]);
        assert_eq!(s.class.as_deref(), Some("embedded"));
        assert_eq!(s.packages, Some(2));
        let mut gw = camera();
        gw.hardware.memory_bytes = Some(2 << 30);
        assert_eq!(device_class(&gw), Some(DeviceClass::Rich));
        gw.device_class = Some(DeviceClass::Gateway);
        assert_eq!(device_class(&gw), Some(DeviceClass::Gateway));
        let sensor = Inventory {
            hardware: Hardware {
                memory_bytes: Some(256 << 10),
                ..Hardware::default()
            },
            ..Inventory::default()
        };
        assert_eq!(device_class(&sensor), Some(DeviceClass::Constrained));
        assert_eq!(device_class(&Inventory::default()), None);
    }

    #[test]
    fn first_report_is_all_changes_and_equal_reports_none() {
        let cam = camera();
        let first = changes(None, &cam, 1);
        assert!(first.iter().all(|c| c.before.is_none()));
        assert!(first.iter().any(|c| c.fact == "listening"));
        assert!(!first.iter().any(|c| c.fact.starts_with("package:")));
        assert!(changes(Some(&cam), &cam, 2).is_empty());
    }

    #[test]
    fn changes_name_what_changed() {
        let before = camera();
        let mut after = camera();
        after.services = Services {
            telnet: Some(false),
            ..Services::default()
        };
        after.software = Some(Sbom::new(vec![
            component("busybox", "1.36.1"),
            component("curl", "8.0"),
        ]));
        after.hardware.model = None;
        let facts: Vec<(String, Option<Value>, Option<Value>)> = changes(Some(&before), &after, 5)
            .into_iter()
            .map(|c| (c.fact, c.before, c.after))
            .collect();
        let names: Vec<&str> = facts.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "hardware.model",
                "services.telnet",
                "software",
                "package:busybox",
                "package:curl",
                "package:openssl"
            ]
        );
        assert_eq!(facts[0].2, None, "model became unknown");
        assert_eq!(facts[3].1, Some(json!("1.31.0")));
        assert_eq!(facts[5].2, None, "openssl removed");
    }
}
