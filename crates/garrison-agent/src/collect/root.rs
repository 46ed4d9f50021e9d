//! The filesystem root every collector reads below, and bounded, panic-free reads from it.
//!
//! On a device the root is `/` and paths go to the kernel as they are. Any other root (a
//! fixture tree, a mounted image) resolves symbolic links itself so that an absolute link such
//! as `/etc/localtime -> /usr/share/zoneinfo/UTC` stays inside the root instead of reading the
//! host's file. Nothing here writes.

use std::{
    ffi::OsString,
    fs,
    io::Read,
    path::{Component, Path, PathBuf},
};

/// Files read whole are refused beyond this (proc and config files are far smaller).
pub(crate) const SMALL_FILE: u64 = 1024 * 1024;
/// Package databases may be large (a desktop's dpkg status is a few MB).
pub(crate) const LARGE_FILE: u64 = 64 * 1024 * 1024;
/// The contract's default string bound: longer values would make the server refuse the whole
/// report, so they are treated as unreadable.
pub(crate) const MAX_TEXT: usize = 1024;

/// Most symbolic links followed while resolving one path (Linux's own limit).
const MAX_LINKS: usize = 40;

/// A filesystem root.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    base: PathBuf,
    host: bool,
}

impl Root {
    pub(crate) fn new(base: PathBuf) -> Root {
        let host = base == Path::new("/");
        Root { base, host }
    }

    /// Whether this is the running system's own root, where facts about the running process
    /// (its architecture, its `PATH`) are facts about the device.
    pub(crate) fn is_host(&self) -> bool {
        self.host
    }

    /// The host path of `device_path` (an absolute path as seen on the device), following
    /// links inside the root; with `follow_last` false the last component is not followed (for
    /// reading a link itself).
    pub(crate) fn resolve(&self, device_path: &str, follow_last: bool) -> PathBuf {
        if self.host {
            return PathBuf::from("/").join(device_path.trim_start_matches('/'));
        }
        let mut pending: Vec<OsString> = components(Path::new(device_path));
        pending.reverse();
        let mut resolved: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                resolved.pop();
                continue;
            }
            let mut candidate = self.base.clone();
            candidate.extend(&resolved);
            candidate.push(&part);
            let is_last = pending.is_empty();
            let link = if (is_last && !follow_last) || links >= MAX_LINKS {
                None
            } else {
                fs::symlink_metadata(&candidate)
                    .ok()
                    .filter(|m| m.file_type().is_symlink())
                    .and_then(|_| fs::read_link(&candidate).ok())
            };
            match link {
                Some(target) => {
                    links += 1;
                    if target.is_absolute() {
                        resolved.clear();
                    }
                    let mut more = components(&target);
                    more.reverse();
                    pending.extend(more);
                }
                None => resolved.push(part),
            }
        }
        let mut out = self.base.clone();
        out.extend(&resolved);
        out
    }

    /// The host path of `device_path`, following links.
    pub(crate) fn path(&self, device_path: &str) -> PathBuf {
        self.resolve(device_path, true)
    }

    /// The file's bytes, or `None` when it is unreadable or larger than `max`.
    pub(crate) fn read_bytes(&self, device_path: &str, max: u64) -> Option<Vec<u8>> {
        read_bounded(&self.path(device_path), max)
    }

    /// The file as text (invalid UTF-8 replaced), at most [`SMALL_FILE`].
    pub(crate) fn read_text(&self, device_path: &str) -> Option<String> {
        self.read_text_max(device_path, SMALL_FILE)
    }

    /// The file as text, at most `max` bytes.
    pub(crate) fn read_text_max(&self, device_path: &str, max: u64) -> Option<String> {
        // Valid UTF-8 (nearly every file) is taken as it is, without a second copy.
        self.read_bytes(device_path, max).map(|b| {
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        })
    }

    /// The first line of a one-value file (`/proc/sys/kernel/osrelease`), cleaned.
    pub(crate) fn read_value(&self, device_path: &str) -> Option<String> {
        let text = self.read_text(device_path)?;
        text.lines().map(clean).find_map(|l| l)
    }

    /// Whether anything (file, directory, link target) exists at the path.
    pub(crate) fn exists(&self, device_path: &str) -> bool {
        self.path(device_path).exists()
    }

    /// Whether the path is a directory.
    pub(crate) fn is_dir(&self, device_path: &str) -> bool {
        self.path(device_path).is_dir()
    }

    /// The names in a directory, sorted; `None` when it cannot be listed.
    pub(crate) fn list(&self, device_path: &str) -> Option<Vec<String>> {
        let entries = fs::read_dir(self.path(device_path)).ok()?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Some(names)
    }

    /// The target of a symbolic link, as written.
    pub(crate) fn read_link(&self, device_path: &str) -> Option<String> {
        fs::read_link(self.resolve(device_path, false))
            .ok()
            .and_then(|t| t.into_os_string().into_string().ok())
    }

    /// Device paths matching a glob whose components may hold `*` and `?` (the subset sshd's
    /// `Include` lines use in practice), sorted like glob(3).
    pub(crate) fn glob(&self, pattern: &str) -> Vec<String> {
        let mut found = vec![String::new()];
        for part in pattern.split('/').filter(|p| !p.is_empty()) {
            let mut next = Vec::new();
            for dir in &found {
                if part.contains(['*', '?']) {
                    let listing = self.list(if dir.is_empty() { "/" } else { dir });
                    for name in listing.unwrap_or_default() {
                        // glob(3) does not let wildcards match a leading dot.
                        if (!name.starts_with('.') || part.starts_with('.'))
                            && wildcard(part, &name)
                        {
                            next.push(format!("{dir}/{name}"));
                        }
                    }
                } else {
                    next.push(format!("{dir}/{part}"));
                }
            }
            found = next;
        }
        found.retain(|p| !p.is_empty() && self.exists(p));
        found.sort();
        found
    }
}

fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Reads at most `max` bytes; a longer file is refused rather than cut, since a cut file
/// would be read as a different (shorter) fact.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Option<Vec<u8>> {
    let file = fs::File::open(path).ok()?;
    // Sized from the file's length so reading a package database does not grow the buffer
    // by doubling (proc files report 0 and grow as they are read).
    let hint = file.metadata().map(|m| m.len().min(max)).unwrap_or(0);
    let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0).saturating_add(1));
    file.take(max.saturating_add(1))
        .read_to_end(&mut out)
        .ok()?;
    (u64::try_from(out.len()).ok()? <= max).then_some(out)
}

/// `*` and `?` matching over whole names.
pub(crate) fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A fact as text: trimmed of whitespace and NULs; `None` when empty, longer than
/// [`MAX_TEXT`], or holding control characters the contract refuses.
pub(crate) fn clean(value: &str) -> Option<String> {
    let v = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if v.is_empty() || v.len() > MAX_TEXT || v.chars().any(|c| c.is_control() && c != '\t') {
        return None;
    }
    Some(v.to_owned())
}

/// `s` cut to at most `max` bytes at a character boundary, control characters dropped: for
/// text that comes from outside (log lines) and must still be reported.
pub(crate) fn bounded(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("*.conf", "50-cloud.conf"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("*.conf", "x.conf.bak"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("a", ""));
    }

    #[test]
    fn links_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        fs::create_dir_all(base.join("usr/lib")).unwrap();
        fs::create_dir_all(base.join("etc")).unwrap();
        fs::write(base.join("usr/lib/os-release"), "ID=inside\n").unwrap();
        std::os::unix::fs::symlink("/usr/lib/os-release", base.join("etc/os-release")).unwrap();
        std::os::unix::fs::symlink("../../../../../../usr/lib", base.join("etc/up")).unwrap();
        let root = Root::new(base.to_path_buf());
        assert_eq!(root.read_text("/etc/os-release").unwrap(), "ID=inside\n");
        assert_eq!(root.read_text("/etc/up/os-release").unwrap(), "ID=inside\n");
        assert_eq!(
            root.read_text("/../../etc/os-release").unwrap(),
            "ID=inside\n"
        );
        assert_eq!(
            root.read_link("/etc/os-release").as_deref(),
            Some("/usr/lib/os-release")
        );
    }

    #[test]
    fn clean_refuses_what_the_contract_refuses() {
        assert_eq!(clean("  x86_64\n").as_deref(), Some("x86_64"));
        assert_eq!(clean("model\0").as_deref(), Some("model"));
        assert_eq!(clean(""), None);
        assert_eq!(clean("a\u{1b}[31mb"), None);
        assert_eq!(clean(&"x".repeat(MAX_TEXT + 1)), None);
        assert_eq!(bounded("ab\u{7}cdé", 5), "abcd");
    }
}
