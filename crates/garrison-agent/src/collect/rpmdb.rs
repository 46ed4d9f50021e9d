//! RPM's SQLite package database (`rpmdb.sqlite`, the default since RPM 4.16: Fedora 33,
//! RHEL 9, openSUSE), read directly: each row of `Packages` is one package's binary header.
//!
//! Reading it ourselves (rather than running `rpm -qa`) works under any root — a fixture tree,
//! a mounted image — and on devices whose image left the `rpm` binary out. The older Berkeley
//! DB and NDB formats are left to the `rpm` tool. No crate reads a header blob on its own (the
//! `rpm` crate parses whole package files), and the format is small and stable: a header
//! (RPM's `lib/header.c`) is
//!
//! ```text
//! il: u32 BE   number of index entries
//! dl: u32 BE   length of the data store
//! il × { tag: u32, type: u32, offset: u32, count: u32 }   (big-endian)
//! dl bytes of data; a STRING (type 6) is NUL-terminated at `offset`, an INT32 (type 4) is
//! `count` big-endian u32s at `offset`
//! ```

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_ARCH: u32 = 1022;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;

/// Headers larger than this are refused (RPM itself caps them at 256 MiB; real ones are tens
/// of KiB).
const MAX_HEADER: usize = 16 * 1024 * 1024;
/// More packages than this is not a real database.
const MAX_PACKAGES: usize = 100_000;

/// One installed package, as the header names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RpmPackage {
    pub(crate) name: String,
    pub(crate) epoch: Option<u32>,
    pub(crate) version: String,
    pub(crate) release: String,
    /// Absent for packages without one (imported signing keys).
    pub(crate) arch: Option<String>,
}

/// Every package in the database at `path` (a host path), or `None` if it cannot be opened
/// or read, or a header is malformed: a partial list would claim packages are absent.
pub(crate) fn packages(path: &Path) -> Option<Vec<RpmPackage>> {
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    let mut statement = db.prepare("SELECT blob FROM Packages ORDER BY hnum").ok()?;
    let mut rows = statement.query([]).ok()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().ok()? {
        let blob = row.get_ref(0).ok()?.as_blob().ok()?;
        if out.len() >= MAX_PACKAGES || blob.len() > MAX_HEADER {
            return None;
        }
        out.push(parse_header(blob)?);
    }
    Some(out)
}

/// The package named by one header blob.
pub(crate) fn parse_header(blob: &[u8]) -> Option<RpmPackage> {
    let word = |at: usize| -> Option<u32> {
        let bytes = blob.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    };
    let entries = usize::try_from(word(0)?).ok()?;
    let data_len = usize::try_from(word(4)?).ok()?;
    let data_start = entries.checked_mul(16)?.checked_add(8)?;
    let data = blob.get(data_start..data_start.checked_add(data_len)?)?;
    let (mut name, mut version, mut release, mut arch, mut epoch) = (None, None, None, None, None);
    for i in 0..entries {
        let at = 8 + i * 16;
        let (tag, kind, offset) = (
            word(at)?,
            word(at + 4)?,
            usize::try_from(word(at + 8)?).ok()?,
        );
        let text = || -> Option<String> {
            let rest = data.get(offset..)?;
            let end = rest.iter().position(|b| *b == 0)?;
            String::from_utf8(rest[..end].to_vec()).ok()
        };
        match (tag, kind) {
            (TAG_NAME, TYPE_STRING) => name = Some(text()?),
            (TAG_VERSION, TYPE_STRING) => version = Some(text()?),
            (TAG_RELEASE, TYPE_STRING) => release = Some(text()?),
            (TAG_ARCH, TYPE_STRING) => arch = Some(text()?),
            (TAG_EPOCH, TYPE_INT32) => {
                let bytes = data.get(offset..offset.checked_add(4)?)?;
                epoch = Some(u32::from_be_bytes(bytes.try_into().ok()?));
            }
            _ => {}
        }
    }
    Some(RpmPackage {
        name: name.filter(|n| !n.is_empty())?,
        epoch,
        version: version?,
        release: release?,
        arch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with the given (tag, type, data) entries.
    fn header(entries: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, bytes) in entries {
            for word in [*tag, *kind, data.len() as u32, 1] {
                index.extend(word.to_be_bytes());
            }
            data.extend_from_slice(bytes);
        }
        let mut out = Vec::new();
        out.extend((entries.len() as u32).to_be_bytes());
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    #[test]
    fn headers_parse_and_malformed_ones_are_refused() {
        let good = header(&[
            (TAG_NAME, TYPE_STRING, b"bash\0"),
            (TAG_EPOCH, TYPE_INT32, &2u32.to_be_bytes()),
            (TAG_VERSION, TYPE_STRING, b"5.2\0"),
            (TAG_RELEASE, TYPE_STRING, b"1.el9\0"),
        ]);
        assert_eq!(
            parse_header(&good),
            Some(RpmPackage {
                name: "bash".into(),
                epoch: Some(2),
                version: "5.2".into(),
                release: "1.el9".into(),
                arch: None,
            })
        );
        for cut in [0, 7, 20, good.len() - 1] {
            assert_eq!(parse_header(&good[..cut]), None, "cut at {cut}");
        }
        let unterminated = header(&[
            (TAG_VERSION, TYPE_STRING, b"5.2\0"),
            (TAG_RELEASE, TYPE_STRING, b"1\0"),
            (TAG_NAME, TYPE_STRING, b"bash"),
        ]);
        assert_eq!(parse_header(&unterminated), None);
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(parse_header(&huge), None);
        assert_eq!(
            parse_header(&header(&[(TAG_NAME, TYPE_STRING, b"x\0")])),
            None,
            "no version"
        );
    }
}
