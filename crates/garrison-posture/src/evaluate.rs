//! Evaluating the checks: pure functions from what is known about devices to observations
//! ("check X fails for subject Y, because …"). No I/O; the runner gathers the inputs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use garrison_contract::{Inventory, PasswordState};
use garrison_core::{DeviceId, Severity, UnixMillis, version::compare_versions};
use garrison_inventory::DeviceRecord;
use garrison_pki::CertificateKey;
use garrison_store::inventory::Observation;
use serde_json::json;

use crate::checks::{self, Check};

const DAY_MS: i64 = 86_400_000;

/// The thresholds checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Minimum firmware version per model.
    pub firmware_minimum: HashMap<String, String>,
    /// `certificate-expiring` fires this many days before expiry.
    pub certificate_expiry_days: i64,
    /// `certificate-too-old` fires for certificates issued longer ago than this.
    pub certificate_max_age_days: i64,
    /// `stale-inventory` fires when the last inventory is older than this.
    pub stale_after_days: i64,
    /// Weakest acceptable RSA key.
    pub min_rsa_bits: u32,
    /// Weakest acceptable elliptic-curve key.
    pub min_ec_bits: u32,
    /// Session takeovers between two runs that make `conflicting-client-ids` fire.
    pub takeover_threshold: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            firmware_minimum: HashMap::new(),
            certificate_expiry_days: 14,
            certificate_max_age_days: 365,
            stale_after_days: 7,
            min_rsa_bits: 2048,
            min_ec_bits: 256,
            takeover_threshold: 3,
        }
    }
}

/// What the audit knows about a device's current certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// Serial.
    pub serial: String,
    /// Issued.
    pub issued_at: UnixMillis,
    /// Expires.
    pub not_after: UnixMillis,
    /// Its key.
    pub key: Option<CertificateKey>,
}

/// Everything a device-scope check may look at.
#[derive(Debug, Clone, Copy)]
pub struct DeviceInput<'a> {
    /// The fleet index's record.
    pub record: &'a DeviceRecord,
    /// The last inventory report (without SBOM).
    pub inventory: Option<&'a Inventory>,
    /// The current certificate.
    pub certificate: Option<&'a CertFacts>,
    /// Listening services its groups allow (`None`: no allow-list applies).
    pub allowed_services: Option<&'a [String]>,
}

/// What the broker knows about a device's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionFacts {
    /// The device.
    pub device: DeviceId,
    /// Serial of the certificate its live session authenticated with, if connected.
    pub connected_serial: Option<String>,
    /// Whether that serial is revoked.
    pub connected_revoked: bool,
    /// Sessions taken over since the previous run.
    pub takeovers: u64,
    /// Distinct source addresses seen recently.
    pub addresses: Vec<String>,
}

fn observe(
    check: &Check,
    device: &DeviceId,
    severity: Severity,
    evidence: serde_json::Value,
) -> Observation {
    Observation {
        check: check.id.to_owned(),
        subject: device.to_string(),
        device: Some(device.clone()),
        severity,
        evidence,
    }
}

fn known(id: &str) -> &'static Check {
    // Every id passed here is one of the catalogue's constants.
    checks::check(id).unwrap_or(&checks::CHECKS[0])
}

/// The device-scope checks for one device.
pub fn evaluate_device(
    input: &DeviceInput<'_>,
    policy: &Policy,
    now: UnixMillis,
) -> Vec<Observation> {
    let mut out = Vec::new();
    let id = &input.record.id;
    let mut push = |check_id: &str, severity: Option<Severity>, evidence: serde_json::Value| {
        let check = known(check_id);
        out.push(observe(
            check,
            id,
            severity.unwrap_or(check.severity),
            evidence,
        ));
    };

    if let Some(inv) = input.inventory {
        let weak: Vec<serde_json::Value> = inv
            .accounts
            .iter()
            .flatten()
            .filter_map(|a| {
                let why = if a.password == PasswordState::Empty {
                    "empty password"
                } else if a.default_password == Some(true) {
                    "vendor default password"
                } else {
                    return None;
                };
                Some(json!({"account": a.name, "uid": a.uid, "problem": why}))
            })
            .collect();
        if !weak.is_empty() {
            push(
                checks::DEFAULT_CREDENTIALS,
                None,
                json!({ "accounts": weak }),
            );
        }

        let summary = garrison_inventory::facts::risky_services(inv);
        if !summary.is_empty() {
            let ports: Vec<String> = inv
                .listening
                .iter()
                .flatten()
                .filter(|s| !s.is_loopback())
                .filter(|s| {
                    garrison_inventory::facts::RISKY_PORTS
                        .iter()
                        .any(|(p, _)| *p == s.port)
                })
                .map(|s| format!("{}/{}", s.protocol.as_str(), s.port))
                .collect();
            push(
                checks::INSECURE_SERVICE,
                None,
                json!({ "services": summary, "ports": ports }),
            );
        }

        if let Some(allowed) = input.allowed_services {
            let extra: BTreeSet<String> = inv
                .listening
                .iter()
                .flatten()
                .filter(|s| !s.is_loopback())
                .map(|s| format!("{}/{}", s.protocol.as_str(), s.port))
                .filter(|s| !allowed.contains(s))
                .collect();
            if !extra.is_empty() {
                push(
                    checks::UNNEEDED_SERVICE,
                    None,
                    json!({ "not_allowed": extra, "allowed": allowed }),
                );
            }
        }

        if let Some(ssh) = &inv.services.ssh
            && ssh.password_authentication == Some(true)
        {
            push(
                checks::SSH_PASSWORD_AUTH,
                None,
                json!({ "password_authentication": true, "permit_root_login": ssh.permit_root_login, "port": ssh.port }),
            );
        }

        if let (Some(model), Some(version)) = (&inv.hardware.model, &inv.firmware.version)
            && let Some(minimum) = policy.firmware_minimum.get(model)
            && compare_versions(version, minimum).is_lt()
        {
            push(
                checks::FIRMWARE_OUTDATED,
                None,
                json!({ "model": model, "firmware": version, "minimum": minimum }),
            );
        }

        let sec = &inv.security;
        for (value, check_id, fact) in [
            (sec.logging, checks::LOGGING_DISABLED, "logging"),
            (sec.time_sync, checks::NO_TIME_SYNC, "time_sync"),
            (sec.firewall, checks::FIREWALL_DISABLED, "firewall"),
            (sec.secure_boot, checks::SECURE_BOOT_DISABLED, "secure_boot"),
        ] {
            if value == Some(false) {
                push(check_id, None, json!({ fact: false }));
            }
        }
    }

    if let Some(cert) = input.certificate {
        let days_left = (cert.not_after - now).div_euclid(DAY_MS);
        if cert.not_after - now < policy.certificate_expiry_days * DAY_MS {
            let severity = if days_left < 7 {
                Severity::High
            } else {
                Severity::Medium
            };
            push(
                checks::CERTIFICATE_EXPIRING,
                Some(severity),
                json!({ "serial": cert.serial, "not_after": cert.not_after, "days_left": days_left, "expired": cert.not_after <= now }),
            );
        }
        let age_days = (now - cert.issued_at).div_euclid(DAY_MS);
        if age_days > policy.certificate_max_age_days {
            push(
                checks::CERTIFICATE_TOO_OLD,
                None,
                json!({ "serial": cert.serial, "issued_at": cert.issued_at, "age_days": age_days, "max_age_days": policy.certificate_max_age_days }),
            );
        }
        if let Some(key) = &cert.key {
            let weak = match key.algorithm.as_str() {
                "rsa" => key.bits < policy.min_rsa_bits,
                "ecdsa" => key.bits < policy.min_ec_bits,
                "ed25519" => false,
                _ => true,
            };
            if weak {
                push(
                    checks::CERTIFICATE_WEAK_KEY,
                    None,
                    json!({ "serial": cert.serial, "algorithm": key.algorithm, "bits": key.bits }),
                );
            }
        }
    }

    let stale_ms = policy.stale_after_days * DAY_MS;
    match input.record.reported_at {
        Some(at) if now - at > stale_ms => push(
            checks::STALE_INVENTORY,
            None,
            json!({ "last_inventory": at, "days_ago": (now - at).div_euclid(DAY_MS) }),
        ),
        None if now - input.record.created_at > DAY_MS => push(
            checks::STALE_INVENTORY,
            None,
            json!({ "last_inventory": null, "enrolled_at": input.record.created_at }),
        ),
        _ => {}
    }
    out
}

/// An account's credential fingerprint on a device, for the shared-credentials check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Credential {
    /// The device.
    pub device: DeviceId,
    /// The account.
    pub account: String,
    /// Truncated SHA-256 of its password hash.
    pub fingerprint: String,
}

/// The credentials an inventory shows (accounts with a password set and a fingerprint).
pub fn credentials(device: &DeviceId, inv: &Inventory) -> Vec<Credential> {
    inv.accounts
        .iter()
        .flatten()
        .filter(|a| a.password == PasswordState::Set)
        .filter_map(|a| {
            Some(Credential {
                device: device.clone(),
                account: a.name.clone(),
                fingerprint: a.credential_fingerprint.clone()?,
            })
        })
        .collect()
}

/// A device's current certificate key, for the shared-key half of `certificate-shared`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyUse {
    /// The device.
    pub device: DeviceId,
    /// Its current certificate's serial.
    pub serial: String,
    /// [`CertificateKey::fingerprint`].
    pub fingerprint: String,
}

/// The fleet-scope checks.
pub fn evaluate_fleet(
    credentials: &[Credential],
    keys: &[KeyUse],
    connections: &[ConnectionFacts],
    policy: &Policy,
) -> Vec<Observation> {
    let mut out = Vec::new();

    // Shared credentials: one salted hash on several devices.
    let mut holders: BTreeMap<&str, BTreeSet<(&DeviceId, &str)>> = BTreeMap::new();
    for c in credentials {
        holders
            .entry(c.fingerprint.as_str())
            .or_default()
            .insert((&c.device, c.account.as_str()));
    }
    let mut shared: BTreeMap<&DeviceId, Vec<serde_json::Value>> = BTreeMap::new();
    for (fp, list) in &holders {
        let devices: BTreeSet<&DeviceId> = list.iter().map(|(d, _)| *d).collect();
        if devices.len() < 2 {
            continue;
        }
        for (device, account) in list {
            let others: Vec<&str> = devices
                .iter()
                .filter(|d| *d != device)
                .take(20)
                .map(|d| d.as_str())
                .collect();
            shared.entry(device).or_default().push(json!({
                "account": account, "fingerprint": fp,
                "shared_with": others, "devices_sharing": devices.len(),
            }));
        }
    }
    for (device, accounts) in shared {
        out.push(observe(
            known(checks::SHARED_CREDENTIALS),
            device,
            known(checks::SHARED_CREDENTIALS).severity,
            json!({ "accounts": accounts }),
        ));
    }

    // Shared certificates, two ways: one key pair behind several devices' certificates (a
    // factory image with a baked-in key), and one certificate connecting from several
    // addresses and taking over its own sessions (copied to another machine). One finding
    // per device, with whichever evidence applies.
    let mut copies: BTreeMap<&DeviceId, serde_json::Map<String, serde_json::Value>> =
        BTreeMap::new();
    let mut by_key: BTreeMap<&str, Vec<&KeyUse>> = BTreeMap::new();
    for k in keys {
        by_key.entry(k.fingerprint.as_str()).or_default().push(k);
    }
    for (fingerprint, users) in &by_key {
        let devices: BTreeSet<&DeviceId> = users.iter().map(|k| &k.device).collect();
        if devices.len() < 2 {
            continue;
        }
        for k in users {
            let others: Vec<&str> = devices
                .iter()
                .filter(|d| **d != &k.device)
                .take(20)
                .map(|d| d.as_str())
                .collect();
            let evidence = copies.entry(&k.device).or_default();
            evidence.insert("serial".into(), json!(k.serial));
            evidence.insert(
                "key".into(),
                json!({ "fingerprint": fingerprint, "shared_with": others, "devices_sharing": devices.len() }),
            );
        }
    }
    for c in connections {
        if c.takeovers >= 1 && c.addresses.len() >= 2 {
            let evidence = copies.entry(&c.device).or_default();
            evidence
                .entry("serial")
                .or_insert_with(|| json!(c.connected_serial));
            evidence.insert(
                "sessions".into(),
                json!({ "addresses": c.addresses, "takeovers": c.takeovers }),
            );
        }
    }
    for (device, evidence) in copies {
        out.push(observe(
            known(checks::CERTIFICATE_SHARED),
            device,
            Severity::High,
            serde_json::Value::Object(evidence),
        ));
    }

    for c in connections {
        if c.connected_revoked {
            out.push(observe(
                known(checks::REVOKED_CERTIFICATE_CONNECTED),
                &c.device,
                Severity::Critical,
                json!({ "serial": c.connected_serial }),
            ));
        }
        if c.takeovers >= policy.takeover_threshold {
            out.push(observe(
                known(checks::CONFLICTING_CLIENT_IDS),
                &c.device,
                Severity::Medium,
                json!({ "takeovers": c.takeovers, "addresses": c.addresses }),
            ));
        }
    }
    out
}
