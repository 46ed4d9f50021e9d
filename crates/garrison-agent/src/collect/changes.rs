//! Watched files' hashes, and the events that two successive readings of the listening
//! sockets or of the watched files imply.

use std::{collections::BTreeMap, fs, io::Read};

use aws_lc_rs::digest;
use garrison_contract::{DeviceEvent, EventKind, ListeningSocket, Protocol, WatchedFile};

use super::root::Root;

/// SHA-256 of each watched path (an absolute path on the device); unreadable files have none.
pub(crate) fn watched_files(root: &Root, paths: &[String]) -> Vec<WatchedFile> {
    paths
        .iter()
        .map(|p| WatchedFile {
            path: p.clone(),
            sha256: sha256_file(root, p),
        })
        .collect()
}

fn sha256_file(root: &Root, device_path: &str) -> Option<String> {
    let path = root.path(device_path);
    if !fs::metadata(&path).ok()?.is_file() {
        return None;
    }
    let mut file = fs::File::open(path).ok()?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => ctx.update(buf.get(..n)?),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(hex::encode(ctx.finish().as_ref()))
}

/// `ListeningPortOpened` for each (protocol, address, port) only in `after`, then
/// `ListeningPortClosed` for each only in `before`, each in socket order.
pub fn listening_changes(
    before: &[ListeningSocket],
    after: &[ListeningSocket],
    at_ms: i64,
) -> Vec<DeviceEvent> {
    let index = |list: &[ListeningSocket]| -> BTreeMap<(Protocol, u16, String), ListeningSocket> {
        list.iter()
            .map(|s| ((s.protocol, s.port, s.address.clone()), s.clone()))
            .collect()
    };
    let (old, new) = (index(before), index(after));
    let mut events = Vec::new();
    for (key, s) in &new {
        if !old.contains_key(key) {
            events.push(DeviceEvent {
                at: at_ms,
                kind: EventKind::ListeningPortOpened {
                    protocol: s.protocol,
                    port: s.port,
                    address: Some(s.address.clone()),
                    process: s.process.clone(),
                },
            });
        }
    }
    for (key, s) in &old {
        if !new.contains_key(key) {
            events.push(DeviceEvent {
                at: at_ms,
                kind: EventKind::ListeningPortClosed {
                    protocol: s.protocol,
                    port: s.port,
                    address: Some(s.address.clone()),
                },
            });
        }
    }
    events
}

/// `FileChanged` for each path in both readings whose hash differs (including becoming
/// unreadable or readable); paths added to or removed from the watch list are not changes.
pub fn watched_file_changes(
    before: &[WatchedFile],
    after: &[WatchedFile],
    at_ms: i64,
) -> Vec<DeviceEvent> {
    let old: BTreeMap<&str, &Option<String>> = before
        .iter()
        .map(|f| (f.path.as_str(), &f.sha256))
        .collect();
    after
        .iter()
        .filter_map(|f| {
            let previous = old.get(f.path.as_str())?;
            (**previous != f.sha256).then(|| DeviceEvent {
                at: at_ms,
                kind: EventKind::FileChanged {
                    path: f.path.clone(),
                    sha256: f.sha256.clone(),
                    previous_sha256: (*previous).clone(),
                },
            })
        })
        .collect()
}
