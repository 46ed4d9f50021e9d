//! Protective configuration: a packet filter (see [`firewall`]), clock synchronisation, UEFI
//! Secure Boot, root filesystem encryption, a system logger.

use garrison_contract::SecurityState;

use super::{firewall, procs::Process, root::Root};

/// The EFI global-variable GUID's SecureBoot variable.
const SECURE_BOOT_VAR: &str = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

pub(crate) fn collect(root: &Root, procs: Option<&[Process]>) -> SecurityState {
    let running = |names: &[&str]| procs.map(|ps| ps.iter().any(|p| names.iter().any(|n| p.is(n))));
    SecurityState {
        firewall: firewall::collect(root),
        time_sync: time_sync(root, &running),
        secure_boot: secure_boot(root),
        disk_encryption: disk_encryption(root),
        logging: running(&[
            "rsyslogd",
            "syslogd",
            "syslog-ng",
            "systemd-journald",
            "logd",
            "metalog",
        ]),
    }
}

/// timesyncd writes its flag file once the clock is synchronised; otherwise a running NTP
/// daemon is taken as synchronising (a daemon that has not yet reached a server still reads as
/// true: the contract's question is whether the device keeps its clock, not its current
/// offset).
fn time_sync(root: &Root, running: &dyn Fn(&[&str]) -> Option<bool>) -> Option<bool> {
    if root.exists("/run/systemd/timesync/synchronized") {
        return Some(true);
    }
    running(&[
        "chronyd",
        "ntpd",
        "systemd-timesyncd",
        "openntpd",
        "ntpclient",
        "sntpd",
    ])
}

/// The SecureBoot variable's data byte (efivarfs prefixes 4 bytes of attributes; the old
/// sysfs interface has a `data` file without them). A UEFI system that lists its variables but
/// has no SecureBoot one does not enforce it; a system without `/sys/firmware/efi` is not UEFI
/// and says nothing about other verified-boot schemes.
fn secure_boot(root: &Root) -> Option<bool> {
    if !root.is_dir("/sys/firmware/efi") {
        return None;
    }
    let efivars = format!("/sys/firmware/efi/efivars/{SECURE_BOOT_VAR}");
    if let Some(bytes) = root.read_bytes(&efivars, 64) {
        return bytes.get(4).and_then(|b| flag(*b));
    }
    let sysfs = format!("/sys/firmware/efi/vars/{SECURE_BOOT_VAR}/data");
    if let Some(bytes) = root.read_bytes(&sysfs, 64) {
        return bytes.first().and_then(|b| flag(*b));
    }
    match root.list("/sys/firmware/efi/efivars") {
        Some(vars) if !vars.is_empty() => Some(false),
        _ => None,
    }
}

fn flag(b: u8) -> Option<bool> {
    match b {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// Whether the device mounted on `/` is (or sits on) a dm-crypt mapping. A plain disk
/// partition is unencrypted; overlay, flash and network filesystems, `/dev/root` and anything
/// not found in sysfs are unknown.
fn disk_encryption(root: &Root) -> Option<bool> {
    let mounts = root.read_text("/proc/mounts")?;
    // The last mount on `/` is the visible one; the initramfs' `rootfs` lies beneath it.
    let device = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?))
        })
        .filter(|(dev, mnt)| *mnt == "/" && *dev != "rootfs")
        .map(|(dev, _)| dev)
        .next_back()?;
    let name = device.strip_prefix("/dev/")?;
    let block = if let Some(mapped) = name.strip_prefix("mapper/") {
        dm_by_name(root, mapped)?
    } else {
        name.to_owned()
    };
    if block == "root" || block.contains('/') {
        return None;
    }
    stack_encrypted(root, &block, 0)
}

/// The `dm-N` whose mapping name is `name`.
fn dm_by_name(root: &Root, name: &str) -> Option<String> {
    root.list("/sys/block")?
        .into_iter()
        .filter(|b| b.starts_with("dm-"))
        .find(|b| {
            root.read_value(&format!("/sys/block/{b}/dm/name"))
                .as_deref()
                == Some(name)
        })
}

/// Walks a device-mapper stack down through its slaves (LVM on LUKS is the common case).
fn stack_encrypted(root: &Root, block: &str, depth: usize) -> Option<bool> {
    if depth > 8 {
        return None;
    }
    if !root.exists(&format!("/sys/class/block/{block}")) {
        return None;
    }
    if !block.starts_with("dm-") {
        return Some(false);
    }
    let uuid = root.read_value(&format!("/sys/block/{block}/dm/uuid"))?;
    if uuid.starts_with("CRYPT-") {
        return Some(true);
    }
    let slaves = root.list(&format!("/sys/block/{block}/slaves"))?;
    if slaves.is_empty() {
        return None;
    }
    let mut all_plain = true;
    for s in slaves {
        match stack_encrypted(root, &s, depth + 1) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => all_plain = false,
        }
    }
    all_plain.then_some(false)
}
