//! Hardware facts: DMI on PCs, the device tree on boards, `/proc/cpuinfo` and
//! `/proc/meminfo`.
//!
//! Firmware vendors fill unset DMI fields with placeholders ("To be filled by O.E.M."); those
//! say nothing about the device and are reported as unknown.

use garrison_contract::Hardware;

use super::root::{Root, clean};

/// DMI values that mean "not set".
const PLACEHOLDERS: &[&str] = &[
    "to be filled by o.e.m.",
    "to be filled by oem",
    "system manufacturer",
    "system product name",
    "system serial number",
    "default string",
    "not specified",
    "not applicable",
    "none",
    "o.e.m.",
    "oem",
    "unknown",
    "0123456789",
    "123456789",
];

fn real(value: Option<String>) -> Option<String> {
    value.filter(|v| {
        let lower = v.to_ascii_lowercase();
        !PLACEHOLDERS.contains(&lower.as_str()) && !v.chars().all(|c| c == '0' || c == ' ')
    })
}

/// A device-tree property: NUL-terminated (and possibly a NUL-separated list; the first
/// string is the value).
fn device_tree(root: &Root, name: &str) -> Option<String> {
    ["/proc/device-tree/", "/sys/firmware/devicetree/base/"]
        .iter()
        .find_map(|dir| {
            let bytes = root.read_bytes(&format!("{dir}{name}"), 4096)?;
            let first = bytes.split(|b| *b == 0).next()?;
            clean(&String::from_utf8_lossy(first))
        })
}

pub(crate) fn collect(root: &Root) -> Hardware {
    let dmi = |f: &str| real(root.read_value(&format!("/sys/class/dmi/id/{f}")));
    let cpuinfo = root.read_text("/proc/cpuinfo");
    let cpu = cpuinfo.as_deref().map(parse_cpuinfo).unwrap_or_default();
    let architecture = root
        .read_value("/proc/sys/kernel/arch")
        // On the device itself, the architecture the agent was built for and runs as is a fact
        // about the device; under any other root it would be a guess.
        .or_else(|| root.is_host().then(|| std::env::consts::ARCH.to_owned()));
    Hardware {
        manufacturer: dmi("sys_vendor"),
        model: dmi("product_name").or_else(|| device_tree(root, "model")),
        serial: dmi("product_serial")
            .or_else(|| real(device_tree(root, "serial-number")))
            .or_else(|| real(cpu.serial.clone())),
        architecture,
        cpu_model: cpu.model,
        cpu_count: cpu.count,
        memory_bytes: root
            .read_text("/proc/meminfo")
            .as_deref()
            .and_then(mem_total),
    }
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct CpuInfo {
    pub(crate) model: Option<String>,
    pub(crate) count: Option<u32>,
    pub(crate) serial: Option<String>,
}

/// x86 and newer ARM kernels write `model name`; MIPS writes `cpu model`; ARM SoCs name
/// themselves in `Hardware`. `processor` (lowercase: old ARM kernels also have a `Processor`
/// line naming the core) is one line per logical CPU.
pub(crate) fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut model_name = None;
    let mut cpu_model = None;
    let mut hardware = None;
    let mut serial = None;
    let mut count = 0u32;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let value = clean(value);
        match key {
            "processor" => count = count.saturating_add(1),
            "model name" if model_name.is_none() => model_name = value,
            "cpu model" if cpu_model.is_none() => cpu_model = value,
            "Hardware" if hardware.is_none() => hardware = value,
            "Serial" if serial.is_none() => serial = value,
            _ => {}
        }
    }
    CpuInfo {
        model: model_name.or(cpu_model).or(hardware),
        count: (count > 0).then_some(count),
        serial,
    }
}

/// `MemTotal:  16303412 kB` → bytes (the kernel's "kB" is KiB).
pub(crate) fn mem_total(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let mut parts = rest.split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") => n.checked_mul(1024),
            None => Some(n),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_variants() {
        let mips = "system type\t\t: MediaTek MT7621 ver:1 eco:3\nmachine\t\t\t: Xiaomi Router\nprocessor\t\t: 0\ncpu model\t\t: MIPS 1004Kc V2.15\nprocessor\t\t: 1\ncpu model\t\t: MIPS 1004Kc V2.15\n";
        assert_eq!(
            parse_cpuinfo(mips),
            CpuInfo {
                model: Some("MIPS 1004Kc V2.15".into()),
                count: Some(2),
                serial: None
            }
        );
        let old_arm = "Processor\t: ARMv7 Processor rev 5 (v7l)\nprocessor\t: 0\nHardware\t: BCM2709\nSerial\t\t: 00000000deadbeef\n";
        assert_eq!(
            parse_cpuinfo(old_arm),
            CpuInfo {
                model: Some("BCM2709".into()),
                count: Some(1),
                serial: Some("00000000deadbeef".into())
            }
        );
        assert_eq!(parse_cpuinfo("garbage\n:::\n"), CpuInfo::default());
    }

    #[test]
    fn meminfo() {
        assert_eq!(
            mem_total("MemTotal:        1000 kB\nMemFree: 1 kB\n"),
            Some(1_024_000)
        );
        assert_eq!(mem_total("MemTotal: lots\n"), None);
        assert_eq!(mem_total(""), None);
    }
}
