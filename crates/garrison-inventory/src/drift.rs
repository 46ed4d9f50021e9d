//! Configuration drift: the changes between two reports that weaken a device's security.
//!
//! Only known → known changes count (a fact becoming readable is not drift). Each drift event
//! has a stable `kind` the monitoring capability keys its rules on:
//!
//! | kind | when | severity |
//! |---|---|---|
//! | `new_listening_port` | a non-loopback port starts listening | high for risky ports, else medium |
//! | `ssh_password_auth_enabled` | SSH password authentication turned on | high |
//! | `insecure_service_enabled` | telnet, FTP or UPnP turned on | high |
//! | `debug_interface_enabled` | a debug interface appeared | high |
//! | `firmware_downgrade` | the firmware version went down | high |
//! | `os_downgrade` | the OS version went down | medium |
//! | `protection_disabled` | firewall, time sync, logging, disk encryption or secure boot went off | medium (secure boot: high) |
//! | `new_login_account` | an account with a login shell appeared | medium |
//! | `weak_credential` | an account's password became empty, or known-default | critical |
//! | `watched_file_changed` | a watched file's hash changed | high |

use std::collections::{BTreeSet, HashMap};

use garrison_contract::{Inventory, PasswordState, Protocol};
use garrison_core::{Severity, version::compare_versions};
use garrison_store::inventory::NewDrift;
use serde_json::json;

use crate::facts::RISKY_PORTS;

fn drift(
    kind: &str,
    fact: &str,
    severity: Severity,
    before: serde_json::Value,
    after: serde_json::Value,
    detail: String,
) -> NewDrift {
    NewDrift {
        kind: kind.to_owned(),
        fact: fact.to_owned(),
        severity,
        before: Some(before),
        after: Some(after),
        detail,
    }
}

/// Drift from `before` to `after`.
pub fn detect(before: &Inventory, after: &Inventory) -> Vec<NewDrift> {
    let mut out = Vec::new();

    if let (Some(old), Some(new)) = (&before.listening, &after.listening) {
        let exposed = |list: &[garrison_contract::ListeningSocket]| -> BTreeSet<(Protocol, u16)> {
            list.iter()
                .filter(|s| !s.is_loopback())
                .map(|s| (s.protocol, s.port))
                .collect()
        };
        let (old, new_set) = (exposed(old), exposed(new));
        // One pass to find each new socket's process (no scan per new port).
        let mut processes: HashMap<(Protocol, u16), Option<String>> = HashMap::new();
        for s in new.iter().filter(|s| !s.is_loopback()) {
            processes
                .entry((s.protocol, s.port))
                .or_insert_with(|| s.process.clone());
        }
        for &(protocol, port) in new_set.difference(&old) {
            let process = processes.get(&(protocol, port)).cloned().flatten();
            let risky = RISKY_PORTS.iter().find(|(p, _)| *p == port);
            let severity = if risky.is_some() {
                Severity::High
            } else {
                Severity::Medium
            };
            let what = match (&process, risky) {
                (Some(p), _) => format!(" ({p})"),
                (None, Some((_, name))) => format!(" (usually {name})"),
                (None, None) => String::new(),
            };
            out.push(drift(
                "new_listening_port",
                "listening",
                severity,
                json!(null),
                json!({"protocol": protocol.as_str(), "port": port, "process": process}),
                format!("{} port {port} started listening{what}", protocol.as_str()),
            ));
        }
    }

    let ssh = |i: &Inventory| {
        i.services
            .ssh
            .as_ref()
            .and_then(|s| s.password_authentication)
    };
    if ssh(before) == Some(false) && ssh(after) == Some(true) {
        out.push(drift(
            "ssh_password_auth_enabled",
            "services.ssh.password_authentication",
            Severity::High,
            json!(false),
            json!(true),
            "SSH password authentication was turned on".into(),
        ));
    }

    for (name, old, new) in [
        ("telnet", before.services.telnet, after.services.telnet),
        ("ftp", before.services.ftp, after.services.ftp),
        ("upnp", before.services.upnp, after.services.upnp),
    ] {
        if old == Some(false) && new == Some(true) {
            out.push(drift(
                "insecure_service_enabled",
                &format!("services.{name}"),
                Severity::High,
                json!(false),
                json!(true),
                format!("{name} was turned on"),
            ));
        }
    }

    if let (Some(old), Some(new)) = (&before.services.debug, &after.services.debug) {
        for added in new.iter().filter(|d| !old.contains(d)) {
            out.push(drift(
                "debug_interface_enabled",
                "services.debug",
                Severity::High,
                json!(old),
                json!(new),
                format!("debug interface {added} appeared"),
            ));
        }
    }

    for (kind, fact, severity, old, new) in [
        (
            "firmware_downgrade",
            "firmware.version",
            Severity::High,
            &before.firmware.version,
            &after.firmware.version,
        ),
        (
            "os_downgrade",
            "os.version",
            Severity::Medium,
            &before.os.version,
            &after.os.version,
        ),
    ] {
        if let (Some(old), Some(new)) = (old, new)
            && compare_versions(new, old).is_lt()
        {
            out.push(drift(
                kind,
                fact,
                severity,
                json!(old),
                json!(new),
                format!("{fact} went down from {old} to {new}"),
            ));
        }
    }

    let (b, a) = (&before.security, &after.security);
    for (name, old, new, severity) in [
        ("firewall", b.firewall, a.firewall, Severity::Medium),
        ("time_sync", b.time_sync, a.time_sync, Severity::Medium),
        ("logging", b.logging, a.logging, Severity::Medium),
        (
            "disk_encryption",
            b.disk_encryption,
            a.disk_encryption,
            Severity::Medium,
        ),
        ("secure_boot", b.secure_boot, a.secure_boot, Severity::High),
    ] {
        if old == Some(true) && new == Some(false) {
            out.push(drift(
                "protection_disabled",
                &format!("security.{name}"),
                severity,
                json!(true),
                json!(false),
                format!("{} was turned off", name.replace('_', " ")),
            ));
        }
    }

    if let (Some(old), Some(new)) = (&before.accounts, &after.accounts) {
        let previous: HashMap<&str, &garrison_contract::Account> =
            old.iter().map(|a| (a.name.as_str(), a)).collect();
        for account in new {
            match previous.get(account.name.as_str()) {
                None => out.push(drift(
                    "new_login_account",
                    "accounts",
                    Severity::Medium,
                    json!(null),
                    json!({"name": account.name, "uid": account.uid, "shell": account.shell}),
                    format!("account {} with a login shell appeared", account.name),
                )),
                Some(prev) => {
                    // An empty password is always news; a default one only when the previous
                    // report could tell it was not one.
                    let emptied = prev.password != PasswordState::Empty
                        && account.password == PasswordState::Empty;
                    let defaulted = prev.default_password == Some(false)
                        && account.default_password == Some(true);
                    if emptied || defaulted {
                        let what = if emptied { "an empty" } else { "a default" };
                        out.push(drift(
                            "weak_credential",
                            "accounts",
                            Severity::Critical,
                            json!({"name": prev.name}),
                            json!({"name": account.name, "password": what}),
                            format!("account {} now has {what} password", account.name),
                        ));
                    }
                }
            }
        }
    }

    let previous_files: HashMap<&str, &Option<String>> = before
        .watched_files
        .iter()
        .map(|f| (f.path.as_str(), &f.sha256))
        .collect();
    for file in &after.watched_files {
        if let Some(Some(prev)) = previous_files.get(file.path.as_str())
            && file.sha256.as_ref() != Some(prev)
        {
            out.push(drift(
                "watched_file_changed",
                &format!("watched_file:{}", file.path),
                Severity::High,
                json!(prev),
                json!(file.sha256),
                format!("{} changed", file.path),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use garrison_contract::{
        Account, Firmware, ListeningSocket, SecurityState, Services, SshConfig, WatchedFile,
    };

    use super::*;

    fn base() -> Inventory {
        Inventory {
            schema: 1,
            collected_at: 1_764_633_600_000,
            firmware: Firmware {
                version: Some("2.10.0".into()),
                build: None,
            },
            listening: Some(vec![ListeningSocket {
                protocol: Protocol::Tcp,
                address: "0.0.0.0".into(),
                port: 443,
                process: Some("httpd".into()),
                pid: None,
            }]),
            services: Services {
                ssh: Some(SshConfig {
                    password_authentication: Some(false),
                    ..SshConfig::default()
                }),
                telnet: Some(false),
                ftp: Some(false),
                upnp: Some(false),
                debug: Some(vec![]),
            },
            accounts: Some(vec![Account {
                name: "root".into(),
                uid: 0,
                shell: Some("/bin/sh".into()),
                password: PasswordState::Set,
                default_password: Some(false),
                credential_fingerprint: None,
            }]),
            security: SecurityState {
                firewall: Some(true),
                secure_boot: Some(true),
                ..SecurityState::default()
            },
            watched_files: vec![WatchedFile {
                path: "/bin/busybox".into(),
                sha256: Some("a".repeat(64)),
            }],
            ..Inventory::default()
        }
    }

    fn kinds(after: &Inventory) -> Vec<(String, Severity)> {
        detect(&base(), after)
            .into_iter()
            .map(|d| (d.kind, d.severity))
            .collect()
    }

    #[test]
    fn nothing_changed_is_no_drift() {
        assert!(kinds(&base()).is_empty());
        // Known → unknown is not drift either.
        assert!(
            kinds(&Inventory {
                schema: 1,
                collected_at: 1_764_633_600_000,
                ..Inventory::default()
            })
            .is_empty()
        );
    }

    #[test]
    fn each_weakening_is_named() {
        let mut after = base();
        if let Some(list) = after.listening.as_mut() {
            list.push(ListeningSocket {
                protocol: Protocol::Tcp,
                address: "0.0.0.0".into(),
                port: 23,
                process: Some("telnetd".into()),
                pid: None,
            });
            list.push(ListeningSocket {
                protocol: Protocol::Tcp,
                address: "127.0.0.1".into(),
                port: 9000,
                process: None,
                pid: None,
            });
        }
        after.services.telnet = Some(true);
        after.services.ssh = Some(SshConfig {
            password_authentication: Some(true),
            ..SshConfig::default()
        });
        after.services.debug = Some(vec!["adb".into()]);
        after.firmware.version = Some("2.9.5".into());
        after.security.firewall = Some(false);
        after.security.secure_boot = None;
        if let Some(a) = after.accounts.as_mut() {
            a[0].default_password = Some(true);
            a.push(Account {
                name: "backdoor".into(),
                uid: 0,
                shell: Some("/bin/sh".into()),
                password: PasswordState::Set,
                default_password: None,
                credential_fingerprint: None,
            });
        }
        after.watched_files[0].sha256 = Some("b".repeat(64));
        assert_eq!(
            kinds(&after),
            [
                ("new_listening_port".into(), Severity::High),
                ("ssh_password_auth_enabled".into(), Severity::High),
                ("insecure_service_enabled".into(), Severity::High),
                ("debug_interface_enabled".into(), Severity::High),
                ("firmware_downgrade".into(), Severity::High),
                ("protection_disabled".into(), Severity::Medium),
                ("weak_credential".into(), Severity::Critical),
                ("new_login_account".into(), Severity::Medium),
                ("watched_file_changed".into(), Severity::High),
            ]
        );
    }

    #[test]
    fn upgrades_are_not_drift() {
        let mut after = base();
        after.firmware.version = Some("2.11".into());
        assert!(kinds(&after).is_empty());
    }
}
