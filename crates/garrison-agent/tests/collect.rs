//! The collectors against fixture device trees (a Debian gateway, an OpenWrt router, an
//! Alpine camera, an empty root), the auth-log follower against a log written during the test,
//! and the telemetry and change-event arithmetic.
//!
//! Fixture trees are copied into a scratch directory per test, where the `/proc/<pid>/fd`
//! socket links are made (git keeps no such links portably, and the follower tests write).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::Write,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use garrison_agent::collect::{
    AuthLogFollower, Collector, InterfaceCounters, NetCounters, TelemetrySampler,
    listening_changes, watched_file_changes,
};
use garrison_contract::{
    Account, Channel, Component, ComponentType, DeviceEvent, EventKind, Firmware, Hardware,
    Inventory, Limits, ListeningSocket, NetworkInterface, Os, PasswordState, Protocol, Report,
    Sbom, SecurityState, Services, SshConfig, Telemetry, WatchedFile, decode_report, encode,
};
use garrison_core::DeviceId;

const AT: i64 = 1_740_830_400_000;

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A scratch copy of a fixture, with `(pid, fd, link target)` descriptor links made.
fn fixture(name: &str, fds: &[(u32, u32, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    copy_tree(&src, dir.path());
    for (pid, fd, target) in fds {
        let fd_dir = dir.path().join(format!("proc/{pid}/fd"));
        fs::create_dir_all(&fd_dir).unwrap();
        symlink(target, fd_dir.join(fd.to_string())).unwrap();
    }
    dir
}

fn lib(name: &str, version: &str, purl: &str) -> Component {
    Component {
        component_type: ComponentType::Library,
        name: name.into(),
        version: Some(version.into()),
        purl: Some(purl.into()),
    }
}

fn sock(
    protocol: Protocol,
    address: &str,
    port: u16,
    owner: Option<(&str, u32)>,
) -> ListeningSocket {
    ListeningSocket {
        protocol,
        address: address.into(),
        port,
        process: owner.map(|(n, _)| n.into()),
        pid: owner.map(|(_, p)| p),
    }
}

fn account(
    name: &str,
    uid: u32,
    shell: Option<&str>,
    password: PasswordState,
    default_password: Option<bool>,
    fingerprint: Option<&str>,
) -> Account {
    Account {
        name: name.into(),
        uid,
        shell: shell.map(Into::into),
        password,
        default_password,
        credential_fingerprint: fingerprint.map(Into::into),
    }
}

fn nic(name: &str, mac: Option<&str>, addresses: &[&str]) -> NetworkInterface {
    NetworkInterface {
        name: name.into(),
        mac: mac.map(Into::into),
        addresses: addresses.iter().map(|a| (*a).into()).collect(),
    }
}

/// The server accepts what the collector produced.
fn assert_accepted(inv: &Inventory) {
    let device = DeviceId::new("dev-1").unwrap();
    let decoded = decode_report(
        Channel::Inventory,
        &device,
        &encode(inv),
        &Limits::default(),
    )
    .unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(decoded, Report::Inventory(Box::new(inv.clone())));
}

#[test]
fn debian_gateway() {
    let dir = fixture(
        "debian-gateway",
        &[
            (512, 0, "/dev/null"),
            (512, 3, "socket:[1001]"),
            (512, 4, "socket:[1003]"),
            (512, 5, "socket:[1010]"),
            (600, 5, "socket:[1002]"),
            (601, 5, "socket:[1002]"),
            (601, 6, "pipe:[77]"),
            (700, 6, "socket:[1006]"),
            (700, 7, "socket:[1008]"),
            (710, 4, "socket:[1005]"),
            (800, 3, "socket:[1004]"),
        ],
    );
    let collector = Collector::new(dir.path())
        .watch_files(vec!["/etc/ssh/sshd_config".into(), "/etc/missing".into()]);
    let inv = collector.inventory(AT);
    let want = Inventory {
        schema: 1,
        device_id: None,
        collected_at: AT,
        device_class: None,
        hardware: Hardware {
            manufacturer: Some("Supermicro".into()),
            model: Some("SYS-E200-9A".into()),
            serial: Some("S214365X9B07".into()),
            architecture: Some("x86_64".into()),
            cpu_model: Some("Intel(R) Atom(TM) CPU C3558 @ 2.20GHz".into()),
            cpu_count: Some(2),
            memory_bytes: Some(8_038_576 * 1024),
        },
        firmware: Firmware::default(),
        os: Os {
            id: Some("debian".into()),
            name: Some("Debian GNU/Linux".into()),
            version: Some("12".into()),
            kernel: Some("6.1.0-18-amd64".into()),
            hostname: Some("gw-01".into()),
        },
        software: Some(Sbom::new(vec![
            lib(
                "libc6",
                "2.36-9+deb12u4",
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64",
            ),
            lib(
                "libstdc++6",
                "12.2.0-14",
                "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64",
            ),
            lib(
                "openssh-server",
                "1:9.2p1-2+deb12u2",
                "pkg:deb/debian/openssh-server@1:9.2p1-2%2Bdeb12u2?arch=amd64",
            ),
            lib(
                "tzdata",
                "2024a-0+deb12u1",
                "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all",
            ),
        ])),
        interfaces: Some(vec![
            nic(
                "eth0",
                Some("00:11:22:33:44:55"),
                &[
                    "192.168.1.10/24",
                    "2001:db8:1::10/64",
                    "fe80::211:2233:4455:6677/64",
                ],
            ),
            nic("eth1", Some("00:11:22:33:44:56"), &[]),
            nic("lo", None, &["::1/128"]),
        ]),
        listening: Some(vec![
            sock(Protocol::Tcp, "0.0.0.0", 22, Some(("sshd", 512))),
            sock(Protocol::Tcp, "::", 22, Some(("sshd", 512))),
            sock(Protocol::Tcp, "::1", 631, Some(("cupsd", 800))),
            sock(Protocol::Tcp, "127.0.0.1", 5432, Some(("postgres", 600))),
            sock(Protocol::Udp, "0.0.0.0", 53, Some(("dnsmasq", 710))),
            sock(Protocol::Udp, "127.0.0.1", 323, Some(("chronyd", 700))),
            sock(Protocol::Udp, "::1", 323, Some(("chronyd", 700))),
        ]),
        services: Services {
            // The conf.d file's `no` comes first and wins; the Match block is not global.
            ssh: Some(SshConfig {
                password_authentication: Some(false),
                permit_root_login: Some("prohibit-password".into()),
                port: Some(22),
            }),
            telnet: Some(false),
            ftp: Some(false),
            upnp: Some(false),
            debug: Some(vec![]),
        },
        accounts: Some(vec![
            // `root`/`root` in sha512-crypt.
            account(
                "root",
                0,
                Some("/bin/bash"),
                PasswordState::Set,
                Some(true),
                Some("a229340f042db931"),
            ),
            // yescrypt cannot be checked here.
            account(
                "ops",
                1000,
                Some("/bin/bash"),
                PasswordState::Set,
                None,
                Some("e1506bd646c1867f"),
            ),
            account(
                "svc-backup",
                1001,
                Some("/bin/sh"),
                PasswordState::Locked,
                None,
                None,
            ),
        ]),
        security: SecurityState {
            firewall: None,
            time_sync: Some(true),
            secure_boot: Some(true),
            disk_encryption: Some(true),
            logging: Some(true),
        },
        watched_files: vec![
            WatchedFile {
                path: "/etc/ssh/sshd_config".into(),
                sha256: Some(
                    "77a1a32f0d256dc57fda162a18cf2f413aeb90d45cdf419790b6240edcbb1481".into(),
                ),
            },
            WatchedFile {
                path: "/etc/missing".into(),
                sha256: None,
            },
        ],
    };
    assert_eq!(inv, want);
    assert_accepted(&inv);

    assert_eq!(
        collector.boot_id().as_deref(),
        Some("1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    );
    assert_eq!(collector.booted_at_ms(), Some(1_740_787_200_000));

    let counters = collector.counters();
    assert_eq!(
        counters,
        NetCounters {
            interfaces: Some(BTreeMap::from([
                (
                    "eth0".to_owned(),
                    InterfaceCounters {
                        bytes_in: 1_000_000,
                        packets_in: 2000,
                        bytes_out: 500_000,
                        packets_out: 1500
                    }
                ),
                (
                    "eth1".to_owned(),
                    InterfaceCounters {
                        bytes_in: 300,
                        packets_in: 3,
                        bytes_out: 200,
                        packets_out: 2
                    }
                ),
            ])),
            // Two to 198.51.100.7, one each to 2001:db8::7 and (IPv4-mapped) 203.0.113.5; the
            // loopback pair is left out.
            established_connections: Some(4),
            destinations: Some(BTreeSet::from([
                "198.51.100.7".parse().unwrap(),
                "203.0.113.5".parse().unwrap(),
                "2001:db8::7".parse().unwrap(),
            ])),
            listening_tcp_ports: Some(3),
            listening_udp_ports: Some(2),
        }
    );
}

#[test]
fn dmi_serial_unreadable_is_unknown_and_the_secure_boot_flag_is_read() {
    let dir = fixture("debian-gateway", &[]);
    fs::remove_file(dir.path().join("sys/class/dmi/id/product_serial")).unwrap();
    let efivar = dir
        .path()
        .join("sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c");
    fs::write(&efivar, [6, 0, 0, 0, 0]).unwrap();
    // Without descriptor links nothing owns a socket, which must not hide the sockets.
    let inv = Collector::new(dir.path()).inventory(AT);
    assert_eq!(inv.hardware.serial, None);
    assert_eq!(inv.security.secure_boot, Some(false));
    let listening = inv.listening.unwrap();
    assert_eq!(listening.len(), 7);
    assert!(
        listening
            .iter()
            .all(|s| s.pid.is_none() && s.process.is_none())
    );
    // A plain partition as root: unencrypted.
    fs::write(dir.path().join("proc/mounts"), "/dev/sda1 / ext4 rw 0 0\n").unwrap();
    assert_eq!(
        Collector::new(dir.path())
            .inventory(AT)
            .security
            .disk_encryption,
        Some(false)
    );
}

#[test]
fn openwrt_router() {
    let dir = fixture(
        "openwrt-router",
        &[
            (800, 3, "socket:[2002]"),
            (900, 3, "socket:[2001]"),
            (900, 4, "socket:[2010]"),
            (1000, 3, "socket:[2003]"),
            (1100, 7, "socket:[2005]"),
            (1200, 4, "socket:[2006]"),
        ],
    );
    let inv = Collector::new(dir.path()).inventory(AT);
    let generic =
        |name: &str, version: &str| lib(name, version, &format!("pkg:generic/{name}@{version}"));
    let want = Inventory {
        schema: 1,
        device_id: None,
        collected_at: AT,
        device_class: None,
        hardware: Hardware {
            manufacturer: None,
            model: Some("Xiaomi Mi Router 4A Gigabit Edition".into()),
            serial: None,
            // No /proc/sys/kernel/arch, and the collector's own architecture is not the
            // fixture's.
            architecture: None,
            cpu_model: Some("MIPS 1004Kc V2.15".into()),
            cpu_count: Some(4),
            memory_bytes: Some(123_456 * 1024),
        },
        firmware: Firmware {
            version: Some("r23630-842932a63d".into()),
            build: None,
        },
        os: Os {
            id: Some("openwrt".into()),
            name: Some("OpenWrt".into()),
            version: Some("23.05.2".into()),
            kernel: Some("5.15.137".into()),
            hostname: Some("OpenWrt".into()),
        },
        software: Some(Sbom::new(vec![
            generic("busybox", "1.36.1-1"),
            generic("dropbear", "2022.82-5"),
            generic("libc", "1.2.4-4"),
            generic("miniupnpd-iptables", "2.3.3-1"),
        ])),
        interfaces: Some(vec![
            nic("br-lan", Some("64:64:4a:00:00:01"), &[]),
            nic("lo", None, &[]),
        ]),
        listening: Some(vec![
            sock(Protocol::Tcp, "192.168.1.1", 22, Some(("dropbear", 800))),
            sock(Protocol::Tcp, "0.0.0.0", 23, Some(("telnetd", 900))),
            // Two sockets on the same address and port: the one with an owner is kept.
            sock(Protocol::Tcp, "0.0.0.0", 80, Some(("uhttpd", 1000))),
            sock(Protocol::Udp, "0.0.0.0", 53, Some(("dnsmasq", 1200))),
            sock(Protocol::Udp, "0.0.0.0", 1900, Some(("miniupnpd", 1100))),
        ]),
        services: Services {
            ssh: Some(SshConfig {
                password_authentication: Some(true),
                permit_root_login: Some("yes".into()),
                port: Some(22),
            }),
            telnet: Some(true),
            ftp: Some(false),
            upnp: Some(true),
            debug: Some(vec!["serial-console".into()]),
        },
        accounts: Some(vec![account(
            "root",
            0,
            Some("/bin/ash"),
            PasswordState::Empty,
            // An empty root password is on the list (Mirai tries it).
            Some(true),
            None,
        )]),
        security: SecurityState {
            firewall: None,
            time_sync: Some(true),
            secure_boot: None,
            disk_encryption: None,
            logging: Some(true),
        },
        watched_files: vec![],
    };
    assert_eq!(inv, want);
    assert_accepted(&inv);
}

#[test]
fn alpine_camera() {
    let dir = fixture(
        "alpine-camera",
        &[
            (150, 3, "socket:[3001]"),
            (160, 3, "socket:[3002]"),
            (170, 3, "socket:[3003]"),
            (180, 3, "socket:[3004]"),
        ],
    );
    let collector = Collector::new(dir.path()).watch_files(vec!["/etc/passwd".into()]);
    let inv = collector.inventory(AT);
    let want = Inventory {
        schema: 1,
        device_id: None,
        collected_at: AT,
        device_class: None,
        hardware: Hardware {
            manufacturer: None,
            model: Some("Acme IPC-200 Camera".into()),
            // From the device tree; cpuinfo's all-zero serial is a placeholder.
            serial: Some("ACME0001234".into()),
            architecture: None,
            cpu_model: Some("ARMv7 Processor rev 5 (v7l)".into()),
            cpu_count: Some(1),
            memory_bytes: Some(61_440 * 1024),
        },
        firmware: Firmware {
            version: Some("2.4.1".into()),
            build: None,
        },
        os: Os {
            id: Some("alpine".into()),
            name: Some("Alpine Linux".into()),
            version: Some("3.19.1".into()),
            kernel: Some("5.10.160-acme".into()),
            hostname: Some("cam-lobby".into()),
        },
        software: Some(Sbom::new(vec![
            lib(
                "busybox",
                "1.36.1-r15",
                "pkg:apk/alpine/busybox@1.36.1-r15?arch=armv7",
            ),
            lib(
                "libcrypto3",
                "3.1.4-r5",
                "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=armv7",
            ),
            lib(
                "musl",
                "1.2.4_git20230717-r4",
                "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=armv7",
            ),
        ])),
        // No sysfs: names from /proc/net/dev, nothing more.
        interfaces: Some(vec![nic("eth0", None, &[]), nic("lo", None, &[])]),
        listening: Some(vec![
            sock(Protocol::Tcp, "0.0.0.0", 23, Some(("telnetd", 150))),
            sock(Protocol::Tcp, "0.0.0.0", 80, Some(("httpd", 160))),
            sock(Protocol::Tcp, "0.0.0.0", 554, Some(("rtspd", 170))),
            sock(Protocol::Tcp, "0.0.0.0", 2345, Some(("gdbserver", 180))),
        ]),
        services: Services {
            ssh: None,
            telnet: Some(true),
            ftp: Some(false),
            upnp: Some(false),
            debug: Some(vec!["gdbserver".into(), "serial-console".into()]),
        },
        accounts: Some(vec![
            // Shadowed, and no shadow file to read.
            account(
                "root",
                0,
                Some("/bin/sh"),
                PasswordState::Unknown,
                None,
                None,
            ),
            // A DES hash of "admin" right in /etc/passwd.
            account(
                "admin",
                1000,
                Some("/bin/sh"),
                PasswordState::Set,
                Some(true),
                Some("457c4e567025be2d"),
            ),
            account(
                "guest",
                1001,
                Some("/bin/sh"),
                PasswordState::Locked,
                None,
                None,
            ),
            // Empty shell field: /bin/sh by passwd(5). The password ("vizxv") is a default
            // for root, not for this account.
            account(
                "viewer",
                1002,
                None,
                PasswordState::Set,
                Some(false),
                Some("bf6e4692ff7e5f0e"),
            ),
        ]),
        security: SecurityState {
            firewall: None,
            time_sync: Some(false),
            secure_boot: None,
            disk_encryption: Some(false),
            logging: Some(false),
        },
        watched_files: vec![WatchedFile {
            path: "/etc/passwd".into(),
            sha256: Some("d12456c7669201e07857265828221e60b696c2039733a0ab4e96df5cc5ea7e1c".into()),
        }],
    };
    assert_eq!(inv, want);
    assert_accepted(&inv);
    assert_eq!(collector.boot_id(), None);
}

#[test]
fn empty_root_is_all_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::new(dir.path()).watch_files(vec!["/bin/busybox".into()]);
    let inv = collector.inventory(AT);
    assert_eq!(
        inv,
        Inventory {
            schema: 1,
            collected_at: AT,
            watched_files: vec![WatchedFile {
                path: "/bin/busybox".into(),
                sha256: None
            }],
            ..Inventory::default()
        }
    );
    assert_eq!(collector.counters(), NetCounters::default());
    assert_eq!(collector.boot_id(), None);
    assert_eq!(collector.booted_at_ms(), None);
    let mut follower = AuthLogFollower::new(dir.path());
    assert_eq!(follower.poll_at(AT), vec![]);
}

#[test]
fn odd_contents_do_not_panic() {
    let dir = fixture("debian-gateway", &[]);
    let junk: &[u8] =
        b"\xff\xfe\0\0:::\n\n\n=\"\x00\x01 \t:\nPackage:\nStatus: install ok installed\n\n";
    for rel in [
        "etc/os-release",
        "proc/cpuinfo",
        "proc/meminfo",
        "var/lib/dpkg/status",
        "etc/ssh/sshd_config",
        "etc/passwd",
        "etc/shadow",
        "proc/net/tcp",
        "proc/net/tcp6",
        "proc/net/udp",
        "proc/net/udp6",
        "proc/net/dev",
        "proc/net/if_inet6",
        "proc/net/fib_trie",
        "proc/net/route",
        "proc/mounts",
        "proc/stat",
        "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
    ] {
        fs::write(dir.path().join(rel), junk).unwrap();
    }
    // An Include loop must end.
    fs::write(
        dir.path().join("etc/ssh/sshd_config.d/50-hardening.conf"),
        "Include /etc/ssh/sshd_config.d/*.conf\n",
    )
    .unwrap();
    let collector = Collector::new(dir.path());
    let inv = collector.inventory(AT);
    assert_accepted(&inv);
    assert_eq!(inv.listening, Some(vec![]));
    assert_eq!(inv.software, Some(Sbom::new(vec![])));
    assert_eq!(collector.booted_at_ms(), None);
    let _ = collector.counters();
}

fn append(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn failed(user: &str, source: &str) -> EventKind {
    EventKind::LoginFailed {
        user: user.into(),
        service: "sshd".into(),
        source: Some(source.into()),
    }
}

fn users(events: &[DeviceEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::LoginFailed { user, .. } | EventKind::LoginSucceeded { user, .. } => {
                user.clone()
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn ssh_fail(user: &str) -> String {
    format!(
        "Mar  1 11:00:00 gw sshd[812]: Failed password for {user} from 198.51.100.7 port 50522 ssh2\n"
    )
}

#[test]
fn auth_log_follows_appends_rotation_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("var/log");
    fs::create_dir_all(&log_dir).unwrap();
    let log = log_dir.join("auth.log");
    append(&log, &ssh_fail("before"));
    // Another candidate, which must not be switched to while auth.log is being rotated.
    append(&log_dir.join("messages"), &ssh_fail("in-messages"));

    let mut follower = AuthLogFollower::new(dir.path()).from_beginning();
    let first = follower.poll_at(AT);
    assert_eq!(
        first,
        vec![DeviceEvent {
            at: 1_740_826_800_000,
            kind: failed("before", "198.51.100.7")
        }]
    );
    assert_eq!(follower.poll_at(AT), vec![]);

    // Appends are read once; an unfinished line waits for its newline.
    append(&log, &ssh_fail("a1"));
    append(
        &log,
        "Mar  1 11:00:01 gw CRON[9]: pam_unix(cron:session): session opened\n",
    );
    append(
        &log,
        "Mar  1 11:00:02 gw sshd[812]: Accepted password for ops from 192.0.2.5 port 1 ssh2",
    );
    assert_eq!(users(&follower.poll_at(AT)), ["a1"]);
    append(&log, "\n");
    let accepted = follower.poll_at(AT);
    assert_eq!(
        accepted,
        vec![DeviceEvent {
            at: 1_740_826_802_000,
            kind: EventKind::LoginSucceeded {
                user: "ops".into(),
                service: "sshd".into(),
                source: Some("192.0.2.5".into()),
                method: Some("password".into()),
            }
        }]
    );

    // Rotation: the old file is renamed, gets one last line, and a new file appears (polled
    // once in between, when only the old file and /var/log/messages exist).
    fs::rename(&log, log_dir.join("auth.log.1")).unwrap();
    append(&log_dir.join("auth.log.1"), &ssh_fail("late-in-old"));
    assert_eq!(users(&follower.poll_at(AT)), ["late-in-old"]);
    append(&log_dir.join("auth.log.1"), &ssh_fail("later-in-old"));
    append(&log, &ssh_fail("new1"));
    append(&log, &ssh_fail("new2"));
    assert_eq!(
        users(&follower.poll_at(AT)),
        ["later-in-old", "new1", "new2"]
    );
    append(
        &log_dir.join("auth.log.1"),
        &ssh_fail("after-switch-in-old"),
    );
    append(&log, &ssh_fail("new3"));
    assert_eq!(users(&follower.poll_at(AT)), ["new3"]);

    // Truncation in place (copytruncate).
    fs::write(&log, ssh_fail("after-truncate")).unwrap();
    assert_eq!(users(&follower.poll_at(AT)), ["after-truncate"]);

    // An over-long line is skipped whole, the next one is read.
    append(
        &log,
        &format!("Mar  1 11:00:00 gw sshd[1]: {}\n", "x".repeat(200_000)),
    );
    append(&log, &ssh_fail("after-long"));
    assert_eq!(users(&follower.poll_at(AT)), ["after-long"]);

    // The log disappears and comes back: the new file is read from its start.
    fs::remove_file(&log).unwrap();
    assert_eq!(follower.poll_at(AT), vec![]);
    append(&log, &ssh_fail("recreated"));
    assert_eq!(users(&follower.poll_at(AT)), ["recreated"]);
}

#[test]
fn auth_log_starts_at_the_end_and_falls_back_to_other_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("var/log");
    fs::create_dir_all(&log_dir).unwrap();
    // OpenWrt/BusyBox: everything goes to /var/log/messages.
    let messages = log_dir.join("messages");
    append(&messages, &ssh_fail("old"));
    let mut follower = AuthLogFollower::new(dir.path());
    assert_eq!(follower.poll_at(AT), vec![]);
    append(
        &messages,
        "Mar  1 10:00:00 router authpriv.warn dropbear[1234]: Bad password attempt for 'root' from 203.0.113.9:40000\n",
    );
    assert_eq!(
        follower.poll_at(AT),
        vec![DeviceEvent {
            at: 1_740_823_200_000,
            kind: EventKind::LoginFailed {
                user: "root".into(),
                service: "dropbear".into(),
                source: Some("203.0.113.9".into()),
            }
        }]
    );
}

#[test]
fn auth_log_reads_at_most_a_mebibyte_per_poll() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("var/log");
    fs::create_dir_all(&log_dir).unwrap();
    let log = log_dir.join("auth.log");
    let line = ssh_fail("bulk");
    let count = 1024 * 1024 / line.len() + 500;
    append(&log, &line.repeat(count));
    let mut follower = AuthLogFollower::new(dir.path()).from_beginning();
    let first = follower.poll_at(AT).len();
    assert!(first < count, "{first} of {count}");
    assert_eq!(first + follower.poll_at(AT).len(), count);
}

fn counters(ifaces: &[(&str, u64, u64, u64, u64)], established: u32, dest: &[&str]) -> NetCounters {
    NetCounters {
        interfaces: Some(
            ifaces
                .iter()
                .map(|(n, bi, pi, bo, po)| {
                    (
                        (*n).to_owned(),
                        InterfaceCounters {
                            bytes_in: *bi,
                            packets_in: *pi,
                            bytes_out: *bo,
                            packets_out: *po,
                        },
                    )
                })
                .collect(),
        ),
        established_connections: Some(established),
        destinations: Some(dest.iter().map(|d| d.parse().unwrap()).collect()),
        listening_tcp_ports: Some(3),
        listening_udp_ports: Some(1),
    }
}

#[test]
fn telemetry_deltas() {
    let mut sampler = TelemetrySampler::new();
    assert_eq!(
        sampler.sample(
            counters(&[("eth0", 1000, 10, 500, 5)], 1, &["192.0.2.1"]),
            AT
        ),
        None
    );
    let t = sampler
        .sample(
            counters(
                &[("eth0", 4000, 40, 700, 7), ("wlan0", 100, 1, 50, 1)],
                2,
                &["2001:db8::1", "192.0.2.1", "192.0.2.10"],
            ),
            AT + 60_000,
        )
        .unwrap();
    assert_eq!(
        t,
        Telemetry {
            schema: 1,
            device_id: None,
            at: AT + 60_000,
            interval_ms: 60_000,
            // eth0's growth plus the new interface from zero.
            bytes_in: Some(3100),
            bytes_out: Some(250),
            packets_in: Some(31),
            packets_out: Some(3),
            established_connections: Some(2),
            destinations: vec![
                "192.0.2.1".into(),
                "192.0.2.10".into(),
                "2001:db8::1".into()
            ],
            distinct_destinations: Some(3),
            listening_tcp_ports: Some(3),
            listening_udp_ports: Some(1),
        }
    );
    // eth0's receive counters reset; transmit kept growing; wlan0 went away.
    let t = sampler
        .sample(counters(&[("eth0", 10, 1, 900, 9)], 0, &[]), AT + 120_000)
        .unwrap();
    assert_eq!(
        (t.bytes_in, t.packets_in, t.bytes_out, t.packets_out),
        (None, None, Some(200), Some(2))
    );
    assert_eq!(t.destinations, Vec::<String>::new());
    assert_eq!(t.distinct_destinations, Some(0));
    // The clock went backwards: no interval; the next one is measured from the new baseline.
    assert_eq!(
        sampler.sample(counters(&[("eth0", 20, 2, 910, 10)], 0, &[]), AT),
        None
    );
    let t = sampler
        .sample(counters(&[("eth0", 25, 3, 915, 11)], 0, &[]), AT + 1000)
        .unwrap();
    assert_eq!((t.interval_ms, t.bytes_in), (1000, Some(5)));
    // Unknown counters stay unknown.
    assert_eq!(
        sampler.sample(NetCounters::default(), AT + 2000).unwrap(),
        Telemetry {
            schema: 1,
            at: AT + 2000,
            interval_ms: 1000,
            ..Telemetry::default()
        }
    );
}

#[test]
fn destinations_are_capped_but_counted() {
    let many: Vec<String> = (0..300)
        .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut sampler = TelemetrySampler::new();
    sampler.sample(counters(&[], 0, &[]), AT);
    let t = sampler.sample(counters(&[], 300, &refs), AT + 1).unwrap();
    assert_eq!(t.destinations.len(), 256);
    assert_eq!(t.destinations[0], "10.0.0.0");
    assert_eq!(t.distinct_destinations, Some(300));
}

#[test]
fn listening_changes_name_opened_and_closed_ports() {
    let before = vec![
        sock(Protocol::Tcp, "0.0.0.0", 22, Some(("sshd", 1))),
        sock(Protocol::Tcp, "0.0.0.0", 23, Some(("telnetd", 2))),
    ];
    let after = vec![
        // Same socket under a new owner pid: not a change.
        sock(Protocol::Tcp, "0.0.0.0", 22, Some(("sshd", 9))),
        sock(Protocol::Udp, "0.0.0.0", 23, None),
        sock(Protocol::Tcp, "::", 4444, Some(("nc", 3))),
    ];
    assert_eq!(
        listening_changes(&before, &after, AT),
        vec![
            DeviceEvent {
                at: AT,
                kind: EventKind::ListeningPortOpened {
                    protocol: Protocol::Tcp,
                    port: 4444,
                    address: Some("::".into()),
                    process: Some("nc".into()),
                }
            },
            DeviceEvent {
                at: AT,
                kind: EventKind::ListeningPortOpened {
                    protocol: Protocol::Udp,
                    port: 23,
                    address: Some("0.0.0.0".into()),
                    process: None,
                }
            },
            DeviceEvent {
                at: AT,
                kind: EventKind::ListeningPortClosed {
                    protocol: Protocol::Tcp,
                    port: 23,
                    address: Some("0.0.0.0".into()),
                }
            },
        ]
    );
    assert_eq!(listening_changes(&after, &after, AT), vec![]);
}

#[test]
fn watched_file_changes_compare_hashes() {
    let file = |path: &str, sha: Option<&str>| WatchedFile {
        path: path.into(),
        sha256: sha.map(Into::into),
    };
    let before = vec![
        file("/bin/busybox", Some("aa")),
        file("/etc/passwd", Some("bb")),
        file("/etc/gone", Some("cc")),
        file("/etc/unwatched", Some("dd")),
    ];
    let after = vec![
        file("/bin/busybox", Some("aa")),
        file("/etc/passwd", Some("ee")),
        file("/etc/gone", None),
        file("/etc/newly-watched", Some("ff")),
    ];
    let changed = |path: &str, sha: Option<&str>, previous: Option<&str>| DeviceEvent {
        at: AT,
        kind: EventKind::FileChanged {
            path: path.into(),
            sha256: sha.map(Into::into),
            previous_sha256: previous.map(Into::into),
        },
    };
    assert_eq!(
        watched_file_changes(&before, &after, AT),
        vec![
            changed("/etc/passwd", Some("ee"), Some("bb")),
            changed("/etc/gone", None, Some("cc")),
        ]
    );
}

#[test]
fn watched_files_follow_edits_on_disk() {
    let dir = fixture("alpine-camera", &[]);
    let collector = Collector::new(dir.path()).watch_files(vec!["/etc/passwd".into()]);
    let before = collector.inventory(AT).watched_files;
    fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    let after = collector.inventory(AT + 1).watched_files;
    let events = watched_file_changes(&before, &after, AT + 1);
    assert_eq!(events.len(), 1);
    let EventKind::FileChanged {
        sha256,
        previous_sha256,
        ..
    } = &events[0].kind
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        previous_sha256.as_deref(),
        Some("d12456c7669201e07857265828221e60b696c2039733a0ab4e96df5cc5ea7e1c")
    );
    assert_eq!(
        sha256.as_deref(),
        Some("037d604c1c026b9f815eaeda9bad221290c9f6354587d3ca87f54c4b7466fad4")
    );
}

/// The running machine as its own device: whatever it holds must read without a panic and be
/// accepted by the contract (nothing is asserted about its contents, which vary).
#[test]
fn the_host_root_reads_and_is_accepted() {
    let collector = Collector::new("/").watch_files(vec!["/etc/hostname".into()]);
    let inv = collector.inventory(AT);
    assert!(inv.hardware.architecture.is_some());
    println!("{}", String::from_utf8_lossy(&encode(&inv)));
    assert_accepted(&inv);
    println!("{:?}", collector.counters());
    let mut follower = AuthLogFollower::new("/");
    let _ = follower.poll();
}

#[test]
fn rpm_sqlite_database_is_read_without_the_rpm_tool() {
    let dir = fixture("rocky-server", &[]);
    let inv = Collector::new(dir.path()).inventory(AT);
    assert_eq!(inv.os.name.as_deref(), Some("Rocky Linux"));
    let purls: Vec<(String, Option<String>, Option<String>)> = inv
        .software
        .as_ref()
        .expect("the RPM database is readable")
        .components
        .iter()
        .map(|c| (c.name.clone(), c.version.clone(), c.purl.clone()))
        .collect();
    let want = |name: &str, version: &str, purl: &str| {
        (
            name.to_owned(),
            Some(version.to_owned()),
            Some(purl.to_owned()),
        )
    };
    assert_eq!(
        purls,
        vec![
            want(
                "bash",
                "5.2.15-3.el9",
                "pkg:rpm/rocky/bash@5.2.15-3.el9?arch=x86_64"
            ),
            want(
                "openssh-server",
                "8.7p1-38.el9",
                "pkg:rpm/rocky/openssh-server@8.7p1-38.el9?arch=x86_64"
            ),
            want(
                "openssl-libs",
                "3.0.7-27.el9",
                "pkg:rpm/rocky/openssl-libs@3.0.7-27.el9?arch=x86_64"
            ),
            want(
                "shadow-utils",
                "2:4.9-8.el9",
                "pkg:rpm/rocky/shadow-utils@4.9-8.el9?arch=x86_64&epoch=2"
            ),
            want(
                "tzdata",
                "2024a-1.el9",
                "pkg:rpm/rocky/tzdata@2024a-1.el9?arch=noarch"
            ),
        ]
    );
    assert_accepted(&inv);

    // A database that is there but unreadable makes the SBOM unknown, not empty.
    fs::write(
        dir.path().join("var/lib/rpm/rpmdb.sqlite"),
        b"not a database",
    )
    .unwrap();
    assert_eq!(Collector::new(dir.path()).inventory(AT).software, None);
}
