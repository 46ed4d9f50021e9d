//! The audit on a mixed fleet: every device's facts are built to fail exactly the checks the
//! table names, and the observed (check, device) pairs must be exactly that table — nothing
//! missing, nothing extra.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;

use serde_json::json;

use garrison_contract::{
    Account, Firmware, Hardware, Inventory, ListeningSocket, PasswordState, Protocol,
    SecurityState, Services, SshConfig,
};
use garrison_core::{DeviceId, device::EnrollmentMethod};
use garrison_inventory::{DeviceRecord, risk::Risk};
use garrison_pki::CertificateKey;
use garrison_posture::evaluate::{
    CertFacts, ConnectionFacts, DeviceInput, KeyUse, Policy, credentials, evaluate_device,
    evaluate_fleet,
};

const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

fn record(name: &str, reported_days_ago: Option<i64>) -> DeviceRecord {
    DeviceRecord {
        id: id(name),
        quarantined: false,
        enrolled_via: EnrollmentMethod::Token,
        current_serial: Some(format!("{name}-serial")),
        created_at: NOW - 400 * DAY,
        summary: None,
        reported_at: reported_days_ago.map(|d| NOW - d * DAY),
        presence: None,
        tags: Default::default(),
        static_groups: vec![],
        dynamic_groups: vec![],
        findings: vec![],
        impact: None,
        risk: Risk::unknown(),
    }
}

fn tcp(port: u16) -> ListeningSocket {
    ListeningSocket {
        protocol: Protocol::Tcp,
        address: "0.0.0.0".into(),
        port,
        process: None,
        pid: None,
    }
}

fn account(
    name: &str,
    password: PasswordState,
    default: Option<bool>,
    fp: Option<&str>,
) -> Account {
    Account {
        name: name.into(),
        uid: 1000,
        shell: Some("/bin/sh".into()),
        password,
        default_password: default,
        credential_fingerprint: fp.map(str::to_owned),
    }
}

/// A well-configured device: passes every check.
fn hardened(model: &str, firmware: &str) -> Inventory {
    hardened_with(model, firmware, &format!("fp-{model}-{firmware}"))
}

fn hardened_with(model: &str, firmware: &str, fingerprint: &str) -> Inventory {
    Inventory {
        schema: 1,
        collected_at: NOW,
        hardware: Hardware {
            model: Some(model.into()),
            ..Hardware::default()
        },
        firmware: Firmware {
            version: Some(firmware.into()),
            build: None,
        },
        listening: Some(vec![tcp(443)]),
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
        accounts: Some(vec![account(
            "admin",
            PasswordState::Set,
            Some(false),
            Some(fingerprint),
        )]),
        security: SecurityState {
            firewall: Some(true),
            time_sync: Some(true),
            secure_boot: Some(true),
            disk_encryption: Some(true),
            logging: Some(true),
        },
        ..Inventory::default()
    }
}

fn good_cert(serial: &str) -> CertFacts {
    CertFacts {
        serial: serial.into(),
        issued_at: NOW - 30 * DAY,
        not_after: NOW + 60 * DAY,
        key: Some(CertificateKey {
            algorithm: "ecdsa".into(),
            bits: 256,
            fingerprint: format!("key-of-{serial}"),
        }),
    }
}

/// A certificate for the same key pair as `good_cert(of)`.
fn same_key_cert(serial: &str, of: &str) -> CertFacts {
    let mut cert = good_cert(serial);
    if let Some(key) = &mut cert.key {
        key.fingerprint = format!("key-of-{of}");
    }
    cert
}

/// (device, inventory, certificate, allow-list, reported days ago)
type Planned<'a> = (
    &'a str,
    Option<Inventory>,
    Option<CertFacts>,
    Option<&'a [String]>,
    Option<i64>,
);

#[test]
fn findings_are_exactly_the_failures() {
    let mut policy = Policy::default();
    policy.firmware_minimum.insert("cam-x".into(), "2.1".into());
    let allowed = vec!["tcp/443".to_owned()];

    // (device, inventory, certificate, allow-list, reported days ago)
    let mut fleet: Vec<Planned<'_>> = Vec::new();
    fleet.push((
        "good-1",
        Some(hardened("cam-x", "2.3")),
        Some(good_cert("s1")),
        Some(&allowed),
        Some(0),
    ));
    let mut telnet = hardened_with("cam-x", "2.3", "fp-telnet");
    telnet.services.telnet = Some(true);
    telnet.listening = Some(vec![tcp(443), tcp(23)]);
    fleet.push((
        "telnet-1",
        Some(telnet),
        Some(good_cert("s2")),
        Some(&allowed),
        Some(0),
    ));
    let mut weak = hardened("cam-x", "1.9.9");
    weak.accounts = Some(vec![
        account("root", PasswordState::Set, Some(true), Some("cloned")),
        account("guest", PasswordState::Empty, None, None),
    ]);
    weak.services.ssh = Some(SshConfig {
        password_authentication: Some(true),
        ..SshConfig::default()
    });
    fleet.push(("weak-1", Some(weak), Some(good_cert("s3")), None, Some(0)));
    let mut clone = hardened("plug-2", "1.0");
    clone.accounts = Some(vec![account(
        "root",
        PasswordState::Set,
        Some(false),
        Some("cloned"),
    )]);
    clone.security = SecurityState {
        firewall: Some(false),
        time_sync: Some(false),
        secure_boot: None,
        disk_encryption: None,
        logging: Some(false),
    };
    clone.listening = Some(vec![tcp(443), tcp(8080)]);
    fleet.push((
        "clone-1",
        Some(clone),
        Some(same_key_cert("s4", "s3")),
        Some(&allowed),
        Some(0),
    ));
    let expiring = CertFacts {
        not_after: NOW + 3 * DAY,
        issued_at: NOW - 500 * DAY,
        key: Some(CertificateKey {
            algorithm: "rsa".into(),
            bits: 1024,
            fingerprint: "rsa-key".into(),
        }),
        ..good_cert("s5")
    };
    fleet.push((
        "old-cert-1",
        Some(hardened("gw-1", "5.0")),
        Some(expiring),
        None,
        Some(10),
    ));
    fleet.push(("silent-1", None, Some(good_cert("s6")), None, None));

    let mut observed = BTreeSet::new();
    let mut creds = Vec::new();
    let mut keys = Vec::new();
    for (name, inventory, cert, allowed, reported) in &fleet {
        let record = record(name, *reported);
        let input = DeviceInput {
            record: &record,
            inventory: inventory.as_ref(),
            certificate: cert.as_ref(),
            allowed_services: *allowed,
        };
        for o in evaluate_device(&input, &policy, NOW) {
            observed.insert((o.check, o.subject, o.severity.as_str().to_owned()));
        }
        if let Some(inv) = inventory {
            creds.extend(credentials(&record.id, inv));
        }
        if let Some(CertFacts {
            serial,
            key: Some(key),
            ..
        }) = cert
        {
            keys.push(KeyUse {
                device: record.id.clone(),
                serial: serial.clone(),
                fingerprint: key.fingerprint.clone(),
            });
        }
    }
    let connections = vec![
        ConnectionFacts {
            device: id("good-1"),
            connected_serial: Some("s1".into()),
            connected_revoked: false,
            takeovers: 0,
            addresses: vec!["10.0.0.1".into()],
        },
        ConnectionFacts {
            device: id("telnet-1"),
            connected_serial: Some("s2".into()),
            connected_revoked: true,
            takeovers: 4,
            addresses: vec!["10.0.0.2".into(), "10.0.9.9".into()],
        },
    ];
    for o in evaluate_fleet(&creds, &keys, &connections, &policy) {
        if o.check == "certificate-shared" {
            let how: Vec<&str> = ["key", "sessions"]
                .into_iter()
                .filter(|k| o.evidence.get(k).is_some())
                .collect();
            match o.subject.as_str() {
                "telnet-1" => assert_eq!(how, ["sessions"], "{}", o.evidence),
                "weak-1" => {
                    assert_eq!(how, ["key"], "{}", o.evidence);
                    assert_eq!(o.evidence["key"]["shared_with"], json!(["clone-1"]));
                    assert_eq!(o.evidence["serial"], "s3");
                }
                _ => assert_eq!(how, ["key"], "{}", o.evidence),
            }
        }
        observed.insert((o.check, o.subject, o.severity.as_str().to_owned()));
    }

    let expected: BTreeSet<(String, String, String)> = [
        ("insecure-service", "telnet-1", "high"),
        ("unneeded-service", "telnet-1", "medium"),
        ("revoked-certificate-connected", "telnet-1", "critical"),
        ("certificate-shared", "telnet-1", "high"),
        ("certificate-shared", "weak-1", "high"),
        ("certificate-shared", "clone-1", "high"),
        ("conflicting-client-ids", "telnet-1", "medium"),
        ("default-credentials", "weak-1", "critical"),
        ("ssh-password-auth", "weak-1", "medium"),
        ("firmware-outdated", "weak-1", "high"),
        ("shared-credentials", "weak-1", "high"),
        ("shared-credentials", "clone-1", "high"),
        ("unneeded-service", "clone-1", "medium"),
        ("firewall-disabled", "clone-1", "low"),
        ("no-time-sync", "clone-1", "medium"),
        ("logging-disabled", "clone-1", "low"),
        ("certificate-expiring", "old-cert-1", "high"),
        ("certificate-too-old", "old-cert-1", "low"),
        ("certificate-weak-key", "old-cert-1", "high"),
        ("stale-inventory", "old-cert-1", "low"),
        ("stale-inventory", "silent-1", "low"),
    ]
    .into_iter()
    .map(|(c, d, s)| (c.to_owned(), d.to_owned(), s.to_owned()))
    .collect();
    let missing: Vec<_> = expected.difference(&observed).collect();
    let extra: Vec<_> = observed.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
}
