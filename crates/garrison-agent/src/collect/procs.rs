//! The process table (`/proc/<pid>/comm`) and which process holds a socket
//! (`/proc/<pid>/fd/*` links of the form `socket:[INODE]`).
//!
//! Names are the kernel's `comm`, cut to 15 bytes (`systemd-timesyncd` appears as
//! `systemd-timesyn`), so every name comparison goes through [`Process::is`].

use std::collections::{HashMap, HashSet};

use super::root::{Root, clean};

/// The kernel's TASK_COMM_LEN less the terminating NUL.
const COMM_LEN: usize = 15;

/// A running process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    pub(crate) comm: String,
}

impl Process {
    /// Whether this process runs the program `name` (compared as the kernel cuts names).
    pub(crate) fn is(&self, name: &str) -> bool {
        comm_is(&self.comm, name)
    }
}

/// Whether a `comm` value names the program `name`.
pub(crate) fn comm_is(comm: &str, name: &str) -> bool {
    let cut = &name.as_bytes()[..name.len().min(COMM_LEN)];
    comm.as_bytes() == cut
}

/// Every process whose name could be read, by pid; `None` when `/proc` cannot be listed or
/// holds no readable process (then nothing can be said about what runs).
pub(crate) fn processes(root: &Root) -> Option<Vec<Process>> {
    let mut pids: Vec<u32> = root
        .list("/proc")?
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    pids.sort_unstable();
    let table: Vec<Process> = pids
        .into_iter()
        .filter_map(|pid| {
            let comm = root.read_value(&format!("/proc/{pid}/comm"))?;
            Some(Process {
                pid,
                comm: clean(&comm)?,
            })
        })
        .collect();
    (!table.is_empty()).then_some(table)
}

/// The lowest pid holding each wanted socket inode (a listening socket shared by forked
/// workers belongs to their parent, which has the lowest pid in the usual case). Processes
/// whose descriptors cannot be read (another user's, without root) are skipped.
pub(crate) fn socket_owners(
    root: &Root,
    procs: &[Process],
    wanted: &HashSet<u64>,
) -> HashMap<u64, u32> {
    let mut owners = HashMap::new();
    for p in procs {
        if owners.len() == wanted.len() {
            break;
        }
        let dir = format!("/proc/{}/fd", p.pid);
        for fd in root.list(&dir).unwrap_or_default() {
            let Some(target) = root.read_link(&format!("{dir}/{fd}")) else {
                continue;
            };
            let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if wanted.contains(&inode) {
                owners.entry(inode).or_insert(p.pid);
            }
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_compared_as_cut() {
        assert!(comm_is("systemd-timesyn", "systemd-timesyncd"));
        assert!(comm_is("sshd", "sshd"));
        assert!(!comm_is("sshd-session", "sshd"));
        assert!(!comm_is("ntp", "ntpd"));
    }
}
