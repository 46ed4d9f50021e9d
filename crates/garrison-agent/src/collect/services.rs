//! Remote-access and risky services: the SSH server's effective settings (OpenSSH's
//! `sshd_config`, or Dropbear's configuration), telnet, FTP, UPnP and debug interfaces.
//!
//! OpenSSH's rules are followed as sshd applies them: the first value of a keyword wins,
//! `Include` globs are relative to `/etc/ssh` and read in sorted order, a `Match` block
//! applies only to matching connections (so the global value stops at the first `Match`), and
//! a `Match` inside an included file ends with that file. An option sshd_config does not set
//! has OpenSSH's compiled-in default where that default has not changed across versions.

use garrison_contract::{ListeningSocket, Protocol, Services, SshConfig};

use super::{
    os::parse_env,
    procs::{Process, comm_is},
    root::Root,
};

/// sshd's own limit on nested `Include`s.
const MAX_INCLUDE_DEPTH: usize = 16;

pub(crate) fn collect(
    root: &Root,
    listening: Option<&[ListeningSocket]>,
    procs: Option<&[Process]>,
) -> Services {
    let seen = Seen { listening, procs };
    Services {
        ssh: sshd(root).or_else(|| dropbear(root)),
        telnet: seen.service(
            &[(Protocol::Tcp, 23)],
            &["telnetd", "utelnetd", "in.telnetd"],
        ),
        ftp: seen.service(
            &[(Protocol::Tcp, 21)],
            &["ftpd", "vsftpd", "proftpd", "pure-ftpd", "in.ftpd", "bftpd"],
        ),
        upnp: seen.service(&[(Protocol::Udp, 1900)], &["miniupnpd", "upnpd"]),
        debug: debug(root, &seen),
    }
}

/// What the socket and process tables show, each possibly unknown.
struct Seen<'a> {
    listening: Option<&'a [ListeningSocket]>,
    procs: Option<&'a [Process]>,
}

impl Seen<'_> {
    fn running(&self, names: &[&str]) -> Option<bool> {
        self.procs
            .map(|ps| ps.iter().any(|p| names.iter().any(|n| p.is(n))))
    }

    fn listening_on(&self, ports: &[(Protocol, u16)], names: &[&str]) -> Option<bool> {
        self.listening.map(|ls| {
            ls.iter().any(|s| {
                ports.contains(&(s.protocol, s.port))
                    || s.process
                        .as_deref()
                        .is_some_and(|c| names.iter().any(|n| comm_is(c, n)))
            })
        })
    }

    /// True when a socket is on a usual port or owned by a named server, or a named server
    /// runs; false only when the listening sockets were read and showed none of that.
    fn service(&self, ports: &[(Protocol, u16)], names: &[&str]) -> Option<bool> {
        match (self.listening_on(ports, names), self.running(names)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), _) => Some(false),
            (None, _) => None,
        }
    }
}

fn debug(root: &Root, seen: &Seen<'_>) -> Option<Vec<String>> {
    let mut found = Vec::new();
    let mut looked = false;
    let adb = match (
        seen.listening_on(&[(Protocol::Tcp, 5555)], &["adbd"]),
        seen.running(&["adbd"]),
    ) {
        (None, None) => None,
        (a, b) => Some(a == Some(true) || b == Some(true)),
    };
    let gdb = match (
        seen.listening_on(&[], &["gdbserver"]),
        seen.running(&["gdbserver"]),
    ) {
        (None, None) => None,
        (a, b) => Some(a == Some(true) || b == Some(true)),
    };
    for (known, name) in [(adb, "adb"), (gdb, "gdbserver")] {
        if let Some(on) = known {
            looked = true;
            if on {
                found.push(name.to_owned());
            }
        }
    }
    if let Some(serial) = serial_console(root) {
        looked = true;
        if serial {
            found.push("serial-console".to_owned());
        }
    }
    looked.then_some(found)
}

/// Serial terminal names as Linux drivers call them (8250, PL011, USB serial, i.MX, OMAP,
/// Qualcomm).
const SERIAL_TTYS: &[&str] = &[
    "ttyS", "ttyAMA", "ttyUSB", "ttymxc", "ttyO", "ttyMSM", "ttyHS",
];

/// A login on a serial line: an inittab entry running getty (or BusyBox's `askfirst` shell)
/// on a serial tty, or a systemd `serial-getty@` unit enabled. `None` when neither init
/// system's configuration could be read.
fn serial_console(root: &Root) -> Option<bool> {
    let mut looked = false;
    let mut found = false;
    if let Some(inittab) = root.read_text("/etc/inittab") {
        looked = true;
        found |= inittab.lines().any(|line| {
            let line = line.trim();
            if line.starts_with('#') || line.is_empty() {
                return false;
            }
            let serial = SERIAL_TTYS.iter().any(|t| line.contains(t));
            let login = line.contains("getty")
                || line.contains("login")
                || line.contains(":askfirst:")
                || line.contains(":askconsole:");
            serial && login
        });
    }
    if let Some(units) = root.list("/etc/systemd/system/getty.target.wants") {
        looked = true;
        found |= units.iter().any(|u| u.starts_with("serial-getty@"));
    } else if root.is_dir("/etc/systemd/system") {
        looked = true;
    }
    looked.then_some(found)
}

/// What one sshd_config pass has found so far.
#[derive(Default)]
struct SshdSettings {
    password_authentication: Option<bool>,
    permit_root_login: Option<String>,
    port: Option<u16>,
}

/// OpenSSH's effective global settings, or `None` when there is no sshd_config.
fn sshd(root: &Root) -> Option<SshConfig> {
    let mut s = SshdSettings::default();
    if !apply_sshd_file(root, "/etc/ssh/sshd_config", 0, &mut s) {
        return None;
    }
    Some(SshConfig {
        // `yes` has been OpenSSH's default in every release.
        password_authentication: Some(s.password_authentication.unwrap_or(true)),
        // The default changed from `yes` to `prohibit-password` in OpenSSH 7.0, and the
        // installed version is not known here: unset is unknown.
        permit_root_login: s.permit_root_login,
        port: Some(s.port.unwrap_or(22)),
    })
}

/// Applies one file; false when it could not be read.
fn apply_sshd_file(root: &Root, path: &str, depth: usize, s: &mut SshdSettings) -> bool {
    let Some(text) = root.read_text(path) else {
        return false;
    };
    for line in text.lines() {
        let Some((keyword, args)) = sshd_line(line) else {
            continue;
        };
        match keyword.as_str() {
            // Everything after a Match is conditional, up to the end of this file.
            "match" => break,
            "include" if depth < MAX_INCLUDE_DEPTH => {
                for pattern in &args {
                    let pattern = if pattern.starts_with('/') {
                        pattern.clone()
                    } else {
                        format!("/etc/ssh/{pattern}")
                    };
                    for file in root.glob(&pattern) {
                        apply_sshd_file(root, &file, depth + 1, s);
                    }
                }
            }
            "passwordauthentication" if s.password_authentication.is_none() => {
                s.password_authentication = match args.first().map(|a| a.to_ascii_lowercase()) {
                    Some(a) if a == "yes" => Some(true),
                    Some(a) if a == "no" => Some(false),
                    _ => None,
                };
            }
            "permitrootlogin" if s.permit_root_login.is_none() => {
                s.permit_root_login = args.first().map(|a| a.to_ascii_lowercase()).filter(|a| {
                    matches!(
                        a.as_str(),
                        "yes"
                            | "no"
                            | "prohibit-password"
                            | "without-password"
                            | "forced-commands-only"
                    )
                });
            }
            "port" if s.port.is_none() => {
                s.port = args
                    .first()
                    .and_then(|a| a.parse().ok())
                    .filter(|p| *p != 0);
            }
            _ => {}
        }
    }
    true
}

/// Splits a config line into its lowercased keyword and arguments (sshd separates the keyword
/// by whitespace or one `=`, and arguments may be double-quoted).
fn sshd_line(line: &str) -> Option<(String, Vec<String>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line.find(|c: char| c.is_whitespace() || c == '=')?;
    let keyword = line[..end].to_ascii_lowercase();
    let mut rest = line[end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in rest.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    args.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            // An unquoted `#` starts a comment.
            '#' if !quoted && !any => break,
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(current);
    }
    Some((keyword, args))
}

/// Dropbear, as OpenWrt's UCI (`/etc/config/dropbear`) or Debian's and Alpine's init scripts
/// (`/etc/default/dropbear`, `/etc/conf.d/dropbear`) configure it; `None` when none exists.
fn dropbear(root: &Root) -> Option<SshConfig> {
    if let Some(text) = root.read_text("/etc/config/dropbear") {
        return Some(dropbear_uci(&text));
    }
    for (path, var) in [
        ("/etc/default/dropbear", "DROPBEAR_EXTRA_ARGS"),
        ("/etc/conf.d/dropbear", "DROPBEAR_OPTS"),
    ] {
        if let Some(text) = root.read_text(path) {
            let env = parse_env(&text);
            let args = env.get(var).map(String::as_str).unwrap_or("");
            let mut c = dropbear_args(args);
            if let Some(p) = env.get("DROPBEAR_PORT").and_then(|p| p.parse().ok()) {
                c.port = Some(p);
            }
            return Some(c);
        }
    }
    None
}

/// Dropbear's command-line flags: `-s` no password logins, `-g` no password logins for root,
/// `-w` no root logins, `-p [addr:]port`. Flags may be combined (`-sg`), as dropbear allows.
pub(crate) fn dropbear_args(args: &str) -> SshConfig {
    let (mut no_password, mut no_root_password, mut no_root) = (false, false, false);
    let mut port = None;
    let mut words = args.split_whitespace();
    while let Some(w) = words.next() {
        let Some(flags) = w.strip_prefix('-') else {
            continue;
        };
        for (i, c) in flags.char_indices() {
            match c {
                's' => no_password = true,
                'g' => no_root_password = true,
                'w' => no_root = true,
                'p' => {
                    let value = match &flags[i + 1..] {
                        "" => words.next().unwrap_or(""),
                        v => v,
                    };
                    if port.is_none() {
                        port = value.rsplit(':').next().and_then(|p| p.parse().ok());
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    SshConfig {
        password_authentication: Some(!no_password),
        permit_root_login: Some(root_login(!no_root, !no_root_password && !no_password).into()),
        port: Some(port.unwrap_or(22)),
    }
}

fn root_login(allowed: bool, with_password: bool) -> &'static str {
    match (allowed, with_password) {
        (false, _) => "no",
        (true, false) => "prohibit-password",
        (true, true) => "yes",
    }
}

/// The first `config dropbear` section of OpenWrt's UCI file, with the defaults OpenWrt's
/// init script applies (`PasswordAuth`, `RootPasswordAuth` and `RootLogin` on, port 22).
pub(crate) fn dropbear_uci(text: &str) -> SshConfig {
    let mut in_section = false;
    let mut seen_section = false;
    let (mut password, mut root_password, mut root_ok) = (true, true, true);
    let mut port = None;
    for line in text.lines() {
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| w.trim_matches(['\'', '"']).to_owned())
            .collect();
        match words
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["config", kind, ..] => {
                if seen_section {
                    break;
                }
                in_section = *kind == "dropbear";
                seen_section = in_section;
            }
            ["option", key, value, ..] if in_section => {
                let on = matches!(*value, "1" | "on" | "yes" | "true" | "enabled");
                match *key {
                    "PasswordAuth" => password = on,
                    "RootPasswordAuth" => root_password = on,
                    "RootLogin" => root_ok = on,
                    "Port" => port = value.parse().ok(),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    SshConfig {
        password_authentication: Some(password),
        permit_root_login: Some(root_login(root_ok, password && root_password).into()),
        port: Some(port.unwrap_or(22)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_lines() {
        assert_eq!(
            sshd_line("  PasswordAuthentication=no # trailing"),
            Some(("passwordauthentication".into(), vec!["no".into()]))
        );
        assert_eq!(
            sshd_line("Include \"/etc/ssh/my dir/*.conf\" other"),
            Some((
                "include".into(),
                vec!["/etc/ssh/my dir/*.conf".into(), "other".into()]
            ))
        );
        assert_eq!(sshd_line("# comment"), None);
        assert_eq!(sshd_line("lonely"), None);
    }

    #[test]
    fn dropbear_flags() {
        assert_eq!(
            dropbear_args("-sg -p 2222"),
            SshConfig {
                password_authentication: Some(false),
                permit_root_login: Some("prohibit-password".into()),
                port: Some(2222)
            }
        );
        assert_eq!(
            dropbear_args("-w -p192.0.2.1:22"),
            SshConfig {
                password_authentication: Some(true),
                permit_root_login: Some("no".into()),
                port: Some(22)
            }
        );
        assert_eq!(
            dropbear_uci(
                "config dropbear\n\toption PasswordAuth 'off'\n\toption Port '2022'\nconfig dropbear\n\toption Port '1'\n"
            ),
            SshConfig {
                password_authentication: Some(false),
                permit_root_login: Some("prohibit-password".into()),
                port: Some(2022)
            }
        );
    }
}
