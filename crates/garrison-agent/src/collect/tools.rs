//! Running a system tool of the device itself, for the few facts only the kernel or a binary
//! database holds (the RPM database, the packet-filter rule set).
//!
//! Only under the host root: a fixture tree or a mounted image is another system, and the
//! host's tools would describe the host. The tool is looked up on `PATH` and then in the
//! `sbin` directories (where `nft` and `iptables-save` live, often outside an unprivileged
//! `PATH`), gets no input, has its output capped and is killed when it runs too long. Any
//! failure — not installed, not permitted, non-zero exit, timeout — is `None`: unknown.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::root::{LARGE_FILE, Root};

/// Directories searched after `PATH`.
const SBIN: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// The standard output of `name args…`, if it ran and succeeded within `timeout`.
pub(crate) fn output(root: &Root, name: &str, args: &[&str], timeout: Duration) -> Option<Vec<u8>> {
    if !root.is_host() {
        return None;
    }
    let binary = find(name)?;
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    // Read on another thread so a full pipe cannot stall the child while we wait on it.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(LARGE_FILE).read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let out = reader.join().ok()?;
    status.success().then_some(out)
}

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // Relative entries (`.`, an empty one) would run a file from the working directory, as
    // root: only absolute directories are searched.
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_run_only_under_the_host_root_and_fail_as_unknown() {
        let host = Root::new(PathBuf::from("/"));
        let out = output(&host, "sh", &["-c", "echo hi"], Duration::from_secs(10));
        assert_eq!(out.as_deref(), Some(&b"hi\n"[..]));
        assert_eq!(
            output(&host, "sh", &["-c", "exit 3"], Duration::from_secs(10)),
            None
        );
        let started = Instant::now();
        assert_eq!(
            output(&host, "sleep", &["30"], Duration::from_millis(200)),
            None
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(
            output(&host, "no-such-tool-garrison", &[], Duration::from_secs(1)),
            None
        );
        let fixture = Root::new(PathBuf::from("/tmp"));
        assert_eq!(
            output(&fixture, "sh", &["-c", "echo hi"], Duration::from_secs(10)),
            None
        );
    }
}
