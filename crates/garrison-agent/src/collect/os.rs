//! The operating system and firmware image: `os-release`, OpenWrt's `openwrt_release`, the
//! kernel's release and host name, and explicit firmware version files.
//!
//! A firmware version is only taken from files that say they hold one; an OS version is not
//! promoted to a firmware version.

use std::collections::HashMap;

use garrison_contract::{Firmware, Os};

use super::root::{Root, clean};

/// The release files, read once per inventory: the OS facts, the firmware facts and the
/// package URLs' namespace all come from them.
#[derive(Debug, Default)]
pub(crate) struct Release {
    os_release: Option<HashMap<String, String>>,
    openwrt: Option<HashMap<String, String>>,
}

impl Release {
    pub(crate) fn read(root: &Root) -> Release {
        let os_release = root
            .read_text("/etc/os-release")
            .or_else(|| root.read_text("/usr/lib/os-release"))
            .map(|t| parse_env(&t));
        let openwrt = root
            .read_text("/etc/openwrt_release")
            .map(|t| parse_env(&t));
        Release {
            os_release,
            openwrt,
        }
    }

    fn os_field(&self, key: &str) -> Option<String> {
        self.os_release
            .as_ref()
            .and_then(|m| m.get(key))
            .and_then(|v| clean(v))
    }

    fn openwrt_field(&self, key: &str) -> Option<String> {
        self.openwrt
            .as_ref()
            .and_then(|m| m.get(key))
            .and_then(|v| clean(v))
    }

    /// `ID` (lowercase by the os-release spec), or OpenWrt's `DISTRIB_ID` lowercased.
    pub(crate) fn id(&self) -> Option<String> {
        self.os_field("ID")
            .or_else(|| self.openwrt_field("DISTRIB_ID"))
            .map(|s| s.to_ascii_lowercase())
    }

    pub(crate) fn os(&self, root: &Root) -> Os {
        let hostname = root
            .read_value("/proc/sys/kernel/hostname")
            .or_else(|| root.read_value("/etc/hostname"))
            // The kernel's placeholder before anything set a name.
            .filter(|h| h != "(none)");
        Os {
            id: self.id(),
            name: self
                .os_field("NAME")
                .or_else(|| self.os_field("PRETTY_NAME"))
                .or_else(|| self.openwrt_field("DISTRIB_ID")),
            version: self
                .os_field("VERSION_ID")
                .or_else(|| self.openwrt_field("DISTRIB_RELEASE")),
            kernel: root.read_value("/proc/sys/kernel/osrelease"),
            hostname,
        }
    }

    pub(crate) fn firmware(&self, root: &Root) -> Firmware {
        let version = [
            "/etc/garrison/firmware-version",
            "/etc/version",
            "/etc/firmware_version",
        ]
        .iter()
        .find_map(|p| root.read_value(p))
        .or_else(|| self.openwrt_field("DISTRIB_REVISION"));
        Firmware {
            version,
            build: self.os_field("BUILD_ID"),
        }
    }
}

/// Parses `KEY=value` lines with shell quoting (`"…"` with backslash escapes, `'…'`
/// literal), as os-release(5) and OpenWrt's release file are written. Comments, blank lines
/// and lines that are not assignments are skipped; the last assignment of a key wins, as in a
/// shell.
pub(crate) fn parse_env(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        out.insert(key.to_owned(), shell_word(raw));
    }
    out
}

/// The first shell word of `raw`, unquoted.
fn shell_word(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars();
    #[derive(PartialEq)]
    enum Q {
        None,
        Single,
        Double,
    }
    let mut q = Q::None;
    while let Some(c) = chars.next() {
        match (&q, c) {
            (Q::None, '"') => q = Q::Double,
            (Q::None, '\'') => q = Q::Single,
            (Q::None, '\\') | (Q::Double, '\\') => match chars.next() {
                Some(n) if q == Q::None || matches!(n, '"' | '\\' | '$' | '`') => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => {}
            },
            (Q::None, c) if c.is_whitespace() => break,
            (Q::Double, '"') | (Q::Single, '\'') => q = Q::None,
            (_, c) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_quoting() {
        let m = parse_env(
            "# comment\nNAME=\"Debian GNU/Linux\"\nID=debian\nX='a \"b\"'\nY=\"say \\\"hi\\\" \\n\"\nZ=plain # trailing\nexport W=1\nbad line\n",
        );
        assert_eq!(m["NAME"], "Debian GNU/Linux");
        assert_eq!(m["ID"], "debian");
        assert_eq!(m["X"], "a \"b\"");
        assert_eq!(m["Y"], "say \"hi\" \\n");
        assert_eq!(m["Z"], "plain");
        assert_eq!(m["W"], "1");
        assert_eq!(m.len(), 6);
    }
}
