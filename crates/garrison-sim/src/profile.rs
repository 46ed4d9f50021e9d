//! Device profiles: what each simulated kind of device is, runs, exposes and sends.
//!
//! The vendors are fictional; the shapes are not. Each profile is modelled on its real class:
//! IP cameras run embedded Linux with busybox, an RTSP server and a web UI, and stream video to
//! a recorder; smart plugs are microcontrollers with a tiny HTTP server; industrial gateways
//! are Debian boxes speaking Modbus/TCP and OPC UA; infusion pumps run a locked-down embedded
//! Linux with a TLS service port; building controllers speak BACnet/IP. Weak variants add what
//! field audits keep finding: a vendor default password, telnet left on, old firmware.

use garrison_contract::{
    Account, Component, ComponentType, DeviceClass, Firmware, Hardware, Inventory, ListeningSocket,
    NetworkInterface, Os, PasswordState, Protocol, Sbom, SecurityState, Services, SshConfig,
    WatchedFile,
};
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// The kinds of simulated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// IP camera.
    IpCamera,
    /// Smart plug (microcontroller).
    SmartPlug,
    /// PLC / industrial gateway.
    IndustrialGateway,
    /// Infusion pump.
    InfusionPump,
    /// Building controller (BACnet).
    BuildingController,
}

/// One listening service of a profile.
struct Port(Protocol, u16, &'static str);

/// What a profile is made of.
pub struct Spec {
    /// Short name used in device ids.
    pub short: &'static str,
    /// Maker.
    pub manufacturer: &'static str,
    /// Model.
    pub model: &'static str,
    /// Current firmware.
    pub firmware: &'static str,
    /// Old (vulnerable) firmware, for weak devices.
    pub old_firmware: &'static str,
    /// The minimum a sensible policy requires.
    pub minimum_firmware: &'static str,
    class: DeviceClass,
    memory: u64,
    arch: &'static str,
    os: Option<(&'static str, &'static str, &'static str, &'static str)>,
    ports: &'static [Port],
    packages: &'static [(&'static str, &'static str)],
    ssh: bool,
    accounts: &'static [&'static str],
    /// Typical bytes sent per minute.
    pub bytes_out_per_min: u64,
    /// Typical bytes received per minute.
    pub bytes_in_per_min: u64,
    /// Addresses it normally talks to.
    pub peers: &'static [&'static str],
}

const CAMERA: Spec = Spec {
    short: "cam",
    manufacturer: "Acme Vision",
    model: "AV-CAM-220",
    firmware: "5.7.3",
    old_firmware: "5.4.0",
    minimum_firmware: "5.6.0",
    class: DeviceClass::Embedded,
    memory: 128 << 20,
    arch: "armv7l",
    os: Some(("linux", "Acme Vision Linux", "5.7", "4.9.37")),
    ports: &[
        Port(Protocol::Tcp, 80, "lighttpd"),
        Port(Protocol::Tcp, 443, "lighttpd"),
        Port(Protocol::Tcp, 554, "rtspd"),
        Port(Protocol::Udp, 3702, "wsdd"),
    ],
    packages: &[
        ("busybox", "1.31.1"),
        ("openssl", "1.1.1k"),
        ("lighttpd", "1.4.59"),
        ("live555", "2020.08.19"),
        ("dropbear", "2020.81"),
        ("zlib", "1.2.11"),
    ],
    ssh: false,
    accounts: &["admin"],
    bytes_out_per_min: 18_000_000,
    bytes_in_per_min: 400_000,
    peers: &["10.20.0.5", "10.20.0.1"],
};

const PLUG: Spec = Spec {
    short: "plug",
    manufacturer: "Voltly",
    model: "VP-100",
    firmware: "1.4.2",
    old_firmware: "1.2.0",
    minimum_firmware: "1.3.0",
    class: DeviceClass::Constrained,
    memory: 320 << 10,
    arch: "xtensa",
    os: None,
    ports: &[Port(Protocol::Tcp, 80, "httpd")],
    packages: &[],
    ssh: false,
    accounts: &[],
    bytes_out_per_min: 2_000,
    bytes_in_per_min: 1_500,
    peers: &["10.20.0.1"],
};

const GATEWAY: Spec = Spec {
    short: "gw",
    manufacturer: "Industrie Systems",
    model: "IG-5000",
    firmware: "3.2.0",
    old_firmware: "2.9.4",
    minimum_firmware: "3.0.0",
    class: DeviceClass::Gateway,
    memory: 2 << 30,
    arch: "aarch64",
    os: Some((
        "debian",
        "Debian GNU/Linux 11 (bullseye)",
        "11",
        "5.10.0-28-arm64",
    )),
    ports: &[
        Port(Protocol::Tcp, 22, "sshd"),
        Port(Protocol::Tcp, 443, "nginx"),
        Port(Protocol::Tcp, 502, "modbusd"),
        Port(Protocol::Tcp, 4840, "opcua-server"),
    ],
    packages: &[
        ("openssh-server", "1:8.4p1-5+deb11u3"),
        ("openssl", "1.1.1w-0+deb11u1"),
        ("nginx", "1.18.0-6.1+deb11u3"),
        ("libmodbus5", "3.1.6-2"),
        ("open62541", "1.3.5"),
        ("systemd", "247.3-7+deb11u4"),
        ("bash", "5.1-2+deb11u1"),
        ("libc6", "2.31-13+deb11u8"),
    ],
    ssh: true,
    accounts: &["root", "operator"],
    bytes_out_per_min: 600_000,
    bytes_in_per_min: 900_000,
    peers: &["10.20.0.1", "10.30.0.10", "10.30.0.11"],
};

const PUMP: Spec = Spec {
    short: "pump",
    manufacturer: "MediFlow",
    model: "MF-300",
    firmware: "2.8.1",
    old_firmware: "2.5.3",
    minimum_firmware: "2.7.0",
    class: DeviceClass::Embedded,
    memory: 256 << 20,
    arch: "armv7l",
    os: Some(("linux", "MediFlow OS", "2.8", "5.4.180")),
    ports: &[
        Port(Protocol::Tcp, 443, "pumpd"),
        Port(Protocol::Tcp, 8443, "servicepd"),
    ],
    packages: &[
        ("openssl", "3.0.13"),
        ("busybox", "1.35.0"),
        ("pumpd", "2.8.1"),
    ],
    ssh: false,
    accounts: &["service"],
    bytes_out_per_min: 40_000,
    bytes_in_per_min: 20_000,
    peers: &["10.40.0.2", "10.20.0.1"],
};

const BUILDING: Spec = Spec {
    short: "bms",
    manufacturer: "Buildwise",
    model: "BC-40",
    firmware: "6.1.0",
    old_firmware: "5.8.2",
    minimum_firmware: "6.0.0",
    class: DeviceClass::Embedded,
    memory: 512 << 20,
    arch: "armv7l",
    os: Some(("linux", "Buildwise Linux", "6.1", "5.15.92")),
    ports: &[
        Port(Protocol::Udp, 47808, "bacnetd"),
        Port(Protocol::Tcp, 80, "httpd"),
        Port(Protocol::Tcp, 443, "httpd"),
    ],
    packages: &[
        ("openssl", "3.0.8"),
        ("busybox", "1.36.0"),
        ("bacnet-stack", "1.0.0"),
    ],
    ssh: false,
    accounts: &["admin"],
    bytes_out_per_min: 80_000,
    bytes_in_per_min: 60_000,
    peers: &["10.50.0.3", "10.20.0.1"],
};

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 5] = [
        Profile::IpCamera,
        Profile::SmartPlug,
        Profile::IndustrialGateway,
        Profile::InfusionPump,
        Profile::BuildingController,
    ];

    /// The stable name (`ip-camera`).
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::IpCamera => "ip-camera",
            Profile::SmartPlug => "smart-plug",
            Profile::IndustrialGateway => "industrial-gateway",
            Profile::InfusionPump => "infusion-pump",
            Profile::BuildingController => "building-controller",
        }
    }

    /// What it is made of.
    pub fn spec(self) -> &'static Spec {
        match self {
            Profile::IpCamera => &CAMERA,
            Profile::SmartPlug => &PLUG,
            Profile::IndustrialGateway => &GATEWAY,
            Profile::InfusionPump => &PUMP,
            Profile::BuildingController => &BUILDING,
        }
    }

    /// The fleet mix: device `index` of a fleet gets this profile (35% cameras, 25% plugs,
    /// 20% building controllers, 10% gateways, 10% pumps).
    pub fn for_index(index: usize) -> Profile {
        match index % 20 {
            0..=6 => Profile::IpCamera,
            7..=11 => Profile::SmartPlug,
            12..=15 => Profile::BuildingController,
            16 | 17 => Profile::IndustrialGateway,
            _ => Profile::InfusionPump,
        }
    }

    /// The listening services its members should have, for a group allow-list.
    pub fn allowed_services(self) -> Vec<String> {
        self.spec()
            .ports
            .iter()
            .map(|p| format!("{}/{}", p.0.as_str(), p.1))
            .collect()
    }
}

/// A weakness a simulated device can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weakness {
    /// An account still has the vendor's default password.
    DefaultPassword,
    /// Telnet is enabled.
    TelnetOpen,
    /// Firmware older than the vendor's fixed release.
    OldFirmware,
    /// SSH accepts passwords (devices with SSH only).
    SshPasswordAuth,
    /// The root password hash is the one from the factory image, on every such device.
    SharedCredential,
    /// The device's TLS key is the factory image's, the same on every such device.
    SharedKey,
    /// The certificate is short-lived and close to expiry (enrolled with a token that
    /// shortens certificates; without one the fleet plans no such device).
    ExpiringCertificate,
}

impl Weakness {
    /// The posture check each weakness must trip.
    pub fn check(self) -> &'static str {
        match self {
            Weakness::DefaultPassword => "default-credentials",
            Weakness::TelnetOpen => "insecure-service",
            Weakness::OldFirmware => "firmware-outdated",
            Weakness::SshPasswordAuth => "ssh-password-auth",
            Weakness::SharedCredential => "shared-credentials",
            Weakness::SharedKey => "certificate-shared",
            Weakness::ExpiringCertificate => "certificate-expiring",
        }
    }

    /// The weaknesses that make sense for a profile (constrained devices have no accounts or
    /// shells; every device has firmware, a key and a certificate).
    pub fn applicable(profile: Profile) -> Vec<Weakness> {
        let spec = profile.spec();
        let mut out = vec![
            Weakness::OldFirmware,
            Weakness::SharedKey,
            Weakness::ExpiringCertificate,
        ];
        if !spec.accounts.is_empty() {
            out.extend([Weakness::DefaultPassword, Weakness::SharedCredential]);
        }
        if spec.os.is_some() {
            out.push(Weakness::TelnetOpen);
        }
        if spec.ssh {
            out.push(Weakness::SshPasswordAuth);
        }
        out
    }
}

/// The simulated attacker-facing binary whose hash the scenarios change.
pub const BUSYBOX: &str = "/bin/busybox";

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

/// The inventory a device of `profile` reports.
pub fn inventory(
    profile: Profile,
    index: usize,
    weaknesses: &[Weakness],
    tampered: bool,
    now: i64,
) -> Inventory {
    let spec = profile.spec();
    let mut rng = Rng::new(index as u64 ^ 0x5eed);
    let has = |w: Weakness| weaknesses.contains(&w);
    let mut listening: Vec<ListeningSocket> = spec
        .ports
        .iter()
        .map(|p| ListeningSocket {
            protocol: p.0,
            address: "0.0.0.0".into(),
            port: p.1,
            process: Some(p.2.into()),
            pid: Some(100 + u32::from(p.1 % 900)),
        })
        .collect();
    if has(Weakness::TelnetOpen) {
        listening.push(ListeningSocket {
            protocol: Protocol::Tcp,
            address: "0.0.0.0".into(),
            port: 23,
            process: Some("telnetd".into()),
            pid: Some(99),
        });
    }
    let accounts = (!spec.accounts.is_empty()).then(|| {
        spec.accounts
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let shared = has(Weakness::SharedCredential) && i == 0;
                // A unique salted hash per device, unless the image's one was never changed.
                let fingerprint = if shared {
                    sha256_hex(format!("factory-image-{}", spec.model).as_bytes())
                } else {
                    sha256_hex(format!("{}-{index}-{name}", spec.model).as_bytes())
                };
                Account {
                    name: (*name).into(),
                    uid: if i == 0 { 0 } else { 1000 + i as u32 },
                    shell: Some("/bin/sh".into()),
                    password: PasswordState::Set,
                    default_password: Some(has(Weakness::DefaultPassword) && i == 0),
                    credential_fingerprint: Some(fingerprint[..16].to_owned()),
                }
            })
            .collect()
    });
    let busybox = if tampered {
        sha256_hex(format!("mirai-{index}").as_bytes())
    } else {
        sha256_hex(format!("busybox-{}", spec.model).as_bytes())
    };
    let last_octet = 10 + (index % 240);
    let subnet = 20 + (index / 240) % 200;
    Inventory {
        schema: garrison_contract::SCHEMA_VERSION,
        device_id: None,
        collected_at: now,
        device_class: Some(spec.class),
        hardware: Hardware {
            manufacturer: Some(spec.manufacturer.into()),
            model: Some(spec.model.into()),
            serial: Some(format!(
                "{}{:08X}",
                spec.short.to_uppercase(),
                rng.next_u64() as u32
            )),
            architecture: Some(spec.arch.into()),
            cpu_model: None,
            cpu_count: Some(if spec.class == DeviceClass::Gateway {
                4
            } else {
                1
            }),
            memory_bytes: Some(spec.memory),
        },
        firmware: Firmware {
            version: Some(
                if has(Weakness::OldFirmware) {
                    spec.old_firmware
                } else {
                    spec.firmware
                }
                .into(),
            ),
            build: None,
        },
        os: spec
            .os
            .map(|(id, name, version, kernel)| Os {
                id: Some(id.into()),
                name: Some(name.into()),
                version: Some(version.into()),
                kernel: Some(kernel.into()),
                hostname: Some(format!("{}-{index:04}", spec.short)),
            })
            .unwrap_or_default(),
        software: spec.os.map(|(os_id, ..)| {
            Sbom::new(
                spec.packages
                    .iter()
                    .map(|(name, version)| Component {
                        component_type: ComponentType::Library,
                        name: (*name).into(),
                        version: Some((*version).into()),
                        purl: Some(format!(
                            "pkg:generic/{os_id}/{name}@{}",
                            version.replace('+', "%2B").replace(':', "%3A")
                        )),
                    })
                    .collect(),
            )
        }),
        interfaces: Some(vec![NetworkInterface {
            name: "eth0".into(),
            mac: Some(format!(
                "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
                subnet,
                (index >> 8) & 0xff,
                index & 0xff,
                last_octet
            )),
            addresses: vec![format!("10.{subnet}.1.{last_octet}/16")],
        }]),
        listening: Some(listening),
        services: Services {
            ssh: spec.ssh.then(|| SshConfig {
                password_authentication: Some(has(Weakness::SshPasswordAuth)),
                permit_root_login: Some("prohibit-password".into()),
                port: Some(22),
            }),
            telnet: spec.os.map(|_| has(Weakness::TelnetOpen)),
            ftp: spec.os.map(|_| false),
            upnp: spec.os.map(|_| false),
            debug: spec.os.map(|_| Vec::new()),
        },
        accounts,
        security: match spec.os {
            None => SecurityState::default(),
            // Like the real agent, the simulator knows a packet filter is on only where it
            // configured one (gateways); elsewhere it cannot tell.
            Some(_) => SecurityState {
                firewall: (spec.class == DeviceClass::Gateway).then_some(true),
                time_sync: Some(true),
                secure_boot: None,
                disk_encryption: None,
                logging: Some(true),
            },
        },
        watched_files: spec
            .os
            .map(|_| {
                vec![WatchedFile {
                    path: BUSYBOX.into(),
                    sha256: Some(busybox),
                }]
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weaknesses_show_in_the_facts() {
        let clean = inventory(Profile::IpCamera, 3, &[], false, 1_800_000_000_000);
        let weak = inventory(
            Profile::IpCamera,
            3,
            &[
                Weakness::TelnetOpen,
                Weakness::DefaultPassword,
                Weakness::OldFirmware,
            ],
            false,
            1_800_000_000_000,
        );
        assert_eq!(clean.services.telnet, Some(false));
        assert_eq!(weak.services.telnet, Some(true));
        assert!(weak.listening.unwrap().iter().any(|s| s.port == 23));
        assert_eq!(weak.firmware.version.as_deref(), Some("5.4.0"));
        assert_eq!(weak.accounts.unwrap()[0].default_password, Some(true));
        assert_eq!(
            Weakness::applicable(Profile::SmartPlug),
            vec![
                Weakness::OldFirmware,
                Weakness::SharedKey,
                Weakness::ExpiringCertificate
            ]
        );
        let a = inventory(
            Profile::IndustrialGateway,
            1,
            &[Weakness::SharedCredential],
            false,
            0,
        );
        let b = inventory(
            Profile::IndustrialGateway,
            2,
            &[Weakness::SharedCredential],
            false,
            0,
        );
        let c = inventory(Profile::IndustrialGateway, 3, &[], false, 0);
        let fp = |i: &Inventory| {
            i.accounts.as_ref().unwrap()[0]
                .credential_fingerprint
                .clone()
        };
        assert_eq!(fp(&a), fp(&b));
        assert_ne!(fp(&a), fp(&c));
        let tampered = inventory(Profile::IpCamera, 3, &[], true, 0);
        assert_ne!(tampered.watched_files, clean.watched_files);
    }

    #[test]
    fn every_sim_inventory_passes_the_contract() {
        let limits = garrison_contract::Limits::default();
        for (i, p) in Profile::ALL.into_iter().enumerate() {
            let inv = inventory(p, i, &Weakness::applicable(p), false, 1_800_000_000_000);
            let device = garrison_core::DeviceId::new(format!("sim-{i}")).unwrap();
            let bytes = garrison_contract::encode(&inv);
            garrison_contract::decode_report(
                garrison_contract::Channel::Inventory,
                &device,
                &bytes,
                &limits,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", p.as_str()));
        }
    }
}
