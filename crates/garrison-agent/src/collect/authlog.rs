//! Login events from the system's authentication log: a follower that survives rotation and
//! truncation, and a parser for the lines sshd, Dropbear and login programs write.
//!
//! Only lines whose syslog tag names one of those programs are parsed, so text another
//! program logs (a web application echoing a user name) cannot forge a login event. Times come
//! from the line's own timestamp: RFC 3164's `Mmm dd HH:MM:SS` is local time without a year
//! (the year is the poll's, or the one before when that would put the line in the future, as
//! in January reading December's lines); RFC 3339 timestamps carry their offset. The local
//! zone is the device's (`/etc/TZ` as uClibc and OpenWrt write it, else `/etc/localtime`),
//! UTC when it has none — what the C library itself falls back to.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    os::unix::fs::MetadataExt,
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use garrison_contract::{DeviceEvent, EventKind};
use jiff::{Timestamp, civil::DateTime, tz::TimeZone};

use super::root::{Root, bounded};

/// Most bytes read from the log in one poll; the rest waits for the next.
pub const MAX_READ_PER_POLL: u64 = 1024 * 1024;
/// Lines longer than this are skipped whole (no login line comes close).
const MAX_LINE: usize = 8 * 1024;
const CHUNK: usize = 64 * 1024;
/// Longest user or source string reported (attackers choose user names).
const MAX_FIELD: usize = 256;
/// Most events one `message repeated N times` line expands to.
const MAX_REPEAT: usize = 100;

/// Where distributions write authentication messages, in order of preference.
pub const DEFAULT_AUTH_LOGS: &[&str] =
    &["/var/log/auth.log", "/var/log/secure", "/var/log/messages"];

/// Follows the first existing authentication log under a root.
#[derive(Debug)]
pub struct AuthLogFollower {
    root: Root,
    candidates: Vec<String>,
    from_beginning: bool,
    started: bool,
    tz: TimeZone,
    current: Option<Followed>,
}

#[derive(Debug)]
struct Followed {
    path: PathBuf,
    file: File,
    id: (u64, u64),
    offset: u64,
    /// Inside an over-long line: discard up to the next newline.
    skipping: bool,
}

impl AuthLogFollower {
    /// A follower of [`DEFAULT_AUTH_LOGS`] under `root` that starts at the end of the log (old
    /// lines were reported by whoever ran before, or are history, not events).
    pub fn new(root: impl Into<PathBuf>) -> AuthLogFollower {
        let root = Root::new(root.into());
        let tz = local_zone(&root);
        AuthLogFollower {
            root,
            candidates: DEFAULT_AUTH_LOGS.iter().map(|s| (*s).to_owned()).collect(),
            from_beginning: false,
            started: false,
            tz,
            current: None,
        }
    }

    /// Follows these logs (absolute paths on the device) instead of the defaults.
    pub fn with_candidates(mut self, paths: Vec<String>) -> AuthLogFollower {
        self.candidates = paths;
        self
    }

    /// Reads the log from its beginning at the first open (tests, or a first run that should
    /// report what is already there).
    pub fn from_beginning(mut self) -> AuthLogFollower {
        self.from_beginning = true;
        self
    }

    /// The login events written since the last poll, oldest first.
    pub fn poll(&mut self) -> Vec<DeviceEvent> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.poll_at(now)
    }

    /// [`poll`](Self::poll) with the current time given (used for lines without a parseable
    /// timestamp, and to place RFC 3164 timestamps in a year).
    pub fn poll_at(&mut self, now_ms: i64) -> Vec<DeviceEvent> {
        let mut lines = Vec::new();
        let mut budget = MAX_READ_PER_POLL;
        if self.current.is_none() {
            let at_end = !self.started && !self.from_beginning;
            self.current = self.open_current(at_end);
            if self.current.is_some() {
                self.started = true;
            }
        }
        while let Some(f) = self.current.as_mut() {
            // Truncated in place (copytruncate): start again from the top.
            if f.file.metadata().is_ok_and(|m| m.len() < f.offset) {
                f.offset = 0;
                f.skipping = false;
            }
            let eof = read_lines(f, &mut budget, &mut lines);
            if !eof || budget == 0 {
                break;
            }
            // Everything in the old file is read; switch if the path now names another file.
            let followed = f.id;
            match self.open_current(false) {
                Some(next) if next.id != followed => self.current = Some(next),
                _ => break,
            }
        }
        self.started = true;
        let mut events = Vec::new();
        for line in &lines {
            events.extend(parse_line(line, now_ms, &self.tz));
        }
        events
    }

    /// Opens the followed path again (a rotation puts a new file there), or, before anything
    /// was followed, the first candidate that exists. Once a log is followed the others are
    /// not tried: in the moment between a rotation's rename and the new file's creation the
    /// next candidate (often `/var/log/messages`) exists, but it is another stream.
    fn open_current(&self, at_end: bool) -> Option<Followed> {
        let paths: Vec<PathBuf> = match &self.current {
            Some(f) => vec![f.path.clone()],
            None => self.candidates.iter().map(|c| self.root.path(c)).collect(),
        };
        for path in paths {
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            return Some(Followed {
                offset: if at_end { meta.len() } else { 0 },
                id: (meta.dev(), meta.ino()),
                path,
                file,
                skipping: false,
            });
        }
        None
    }
}

/// Reads complete lines from the followed file into `out`; true at end of file.
fn read_lines(f: &mut Followed, budget: &mut u64, out: &mut Vec<String>) -> bool {
    let mut buf = vec![0u8; CHUNK];
    loop {
        if *budget == 0 {
            return false;
        }
        let want = usize::try_from((*budget).min(CHUNK as u64)).unwrap_or(CHUNK);
        if f.file.seek(SeekFrom::Start(f.offset)).is_err() {
            return true;
        }
        let mut n = 0;
        while n < want {
            match f.file.read(&mut buf[n..want]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        *budget = budget.saturating_sub(n as u64);
        if n == 0 {
            return true;
        }
        let data = &buf[..n];
        let mut consumed = 0;
        while let Some(pos) = data[consumed..].iter().position(|b| *b == b'\n') {
            let line = &data[consumed..consumed + pos];
            if f.skipping {
                f.skipping = false;
            } else if line.len() <= MAX_LINE {
                let text = String::from_utf8_lossy(line);
                out.push(text.trim_end_matches('\r').to_owned());
            }
            consumed += pos + 1;
        }
        if consumed == 0 && (f.skipping || n >= MAX_LINE) {
            // No newline in a whole chunk: an over-long line, dropped as it streams past.
            f.skipping = true;
            consumed = n;
        }
        f.offset += consumed as u64;
        if n < want {
            // End of file; an unterminated last line waits for its newline.
            return true;
        }
        if consumed == 0 {
            return false;
        }
    }
}

/// The device's local time zone.
fn local_zone(root: &Root) -> TimeZone {
    if let Some(tz) = root
        .read_value("/etc/TZ")
        .and_then(|s| TimeZone::posix(&s).ok())
    {
        return tz;
    }
    root.read_bytes("/etc/localtime", 1024 * 1024)
        .and_then(|b| TimeZone::tzif("localtime", &b).ok())
        .unwrap_or(TimeZone::UTC)
}

/// The events one log line describes (several for `message repeated N times`).
pub(crate) fn parse_line(line: &str, now_ms: i64, tz: &TimeZone) -> Vec<DeviceEvent> {
    let (at, rest) = match timestamp(line, now_ms, tz) {
        Some((at, rest)) => (at, rest),
        None => (now_ms, line),
    };
    let Some((program, message)) = tag(rest) else {
        return Vec::new();
    };
    let (message, times) = repeated(message);
    let kind = match program {
        "sshd" | "sshd-session" | "sshd-auth" => sshd(message),
        "dropbear" => dropbear(message),
        "login" => login(message),
        _ => None,
    };
    kind.map(|k| vec![DeviceEvent { at, kind: k }; times])
        .unwrap_or_default()
}

/// rsyslog's and BusyBox's duplicate suppression: `message repeated 3 times: [ text]`.
fn repeated(message: &str) -> (&str, usize) {
    let Some(rest) = message.strip_prefix("message repeated ") else {
        return (message, 1);
    };
    let Some((n, inner)) = rest.split_once(" times: [") else {
        return (message, 1);
    };
    let Ok(n) = n.parse::<usize>() else {
        return (message, 1);
    };
    let inner = inner.trim().trim_end_matches(']').trim();
    (inner, n.clamp(1, MAX_REPEAT))
}

/// The line's timestamp in Unix ms and the text after it.
fn timestamp<'a>(line: &'a str, now_ms: i64, tz: &TimeZone) -> Option<(i64, &'a str)> {
    let (first, rest) = split_word(line)?;
    if first.len() >= 19 && first.as_bytes().get(10) == Some(&b'T') {
        let at = if let Ok(ts) = first.parse::<Timestamp>() {
            ts.as_millisecond()
        } else {
            let dt: DateTime = first.parse().ok()?;
            tz.to_ambiguous_timestamp(dt)
                .compatible()
                .ok()?
                .as_millisecond()
        };
        return Some((at, rest));
    }
    let month = month(first)?;
    let (day, rest) = split_word(rest)?;
    let (time, rest) = split_word(rest)?;
    let day: i8 = day.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<i8>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let now = Timestamp::from_millisecond(now_ms).ok()?;
    let year = now.to_zoned_datetime(tz.clone()).year();
    let at = |year: i16| -> Option<i64> {
        let dt = DateTime::new(year, month, day, h, m, s, 0).ok()?;
        Some(
            tz.to_ambiguous_timestamp(dt)
                .compatible()
                .ok()?
                .as_millisecond(),
        )
    };
    let this_year = at(year);
    // A day of slack for clock differences; anything later is last year's line.
    let at = match this_year {
        Some(t) if t <= now_ms.saturating_add(86_400_000) => t,
        _ => at(year.checked_sub(1)?)?,
    };
    Some((at, rest))
}

fn month(name: &str) -> Option<i8> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let i = MONTHS.iter().position(|m| *m == name)?;
    i8::try_from(i + 1).ok()
}

/// The first whitespace-separated word and what follows it (leading whitespace removed).
fn split_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    Some((&s[..end], s[end..].trim_start()))
}

/// The program named by the syslog tag (`sshd[812]:`, `/usr/sbin/sshd[1]:`, `login:`) and
/// the message after it. Words before the tag (host name, BusyBox's `auth.info`) are skipped.
fn tag(rest: &str) -> Option<(&str, &str)> {
    let mut s = rest;
    for _ in 0..6 {
        let (word, after) = split_word(s)?;
        if let Some(t) = word.strip_suffix(':') {
            let name = match t.split_once('[') {
                Some((name, pid)) if pid.ends_with(']') => name,
                Some(_) => return None,
                None => t,
            };
            let name = name.rsplit('/').next().unwrap_or(name);
            return Some((name, after));
        }
        s = after;
    }
    None
}

/// The source address: a `host:port` (Dropbear) loses its port; brackets are removed.
fn source(text: &str) -> Option<String> {
    let t = text.trim().trim_matches(['\'', '"']);
    if t.is_empty() {
        return None;
    }
    Some(bounded(
        t.trim_start_matches('[').trim_end_matches(']'),
        MAX_FIELD,
    ))
}

/// `Failed password for [invalid user ]X from IP port N ssh2` and
/// `Accepted publickey for X from IP port N ssh2[: key]`.
fn sshd(message: &str) -> Option<EventKind> {
    let (accepted, rest) = if let Some(r) = message.strip_prefix("Failed ") {
        (false, r)
    } else if let Some(r) = message.strip_prefix("Accepted ") {
        (true, r)
    } else {
        return None;
    };
    let (method, rest) = rest.split_once(" for ")?;
    // `none` is the probe every client sends first, not a login attempt.
    if method.contains(' ') || method == "none" {
        return None;
    }
    // The user name is the attacker's choice and may contain " from "; sshd writes the address
    // last, so the last " from " is the separator.
    let at = rest.rfind(" from ")?;
    let mut user = &rest[..at];
    if !accepted {
        user = user.strip_prefix("invalid user ").unwrap_or(user);
    }
    let src = rest[at + 6..].split_whitespace().next().and_then(source);
    let user = bounded(user, MAX_FIELD);
    let service = "sshd".to_owned();
    Some(if accepted {
        EventKind::LoginSucceeded {
            user,
            service,
            source: src,
            method: Some(bounded(method, 64)),
        }
    } else {
        EventKind::LoginFailed {
            user,
            service,
            source: src,
        }
    })
}

/// The user in `'…'` after `prefix`.
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    let rest = rest.strip_prefix('\'')?;
    Some(&rest[..rest.find('\'')?])
}

/// Dropbear: `Bad password attempt for 'X' from IP:port`, `Password auth succeeded for 'X'
/// from IP:port`, `Pubkey auth succeeded for 'X' with … from IP:port`, `Login attempt for
/// nonexistent user 'X' from IP:port`.
fn dropbear(message: &str) -> Option<EventKind> {
    let from = message.rfind(" from ").map(|i| {
        let hp = message[i + 6..].trim();
        // The port follows the last colon, for IPv6 addresses too.
        let host = hp.rsplit_once(':').map_or(hp, |(h, _)| h);
        source(host)
    });
    let src = from.flatten();
    let service = "dropbear".to_owned();
    for (prefix, ok, method) in [
        ("Bad password attempt for ", false, None),
        ("Bad PAM password attempt for ", false, None),
        ("Login attempt for nonexistent user ", false, None),
        ("Password auth succeeded for ", true, Some("password")),
        ("PAM password auth succeeded for ", true, Some("password")),
        ("Pubkey auth succeeded for ", true, Some("publickey")),
    ] {
        if !message.starts_with(prefix) {
            continue;
        }
        let user = bounded(quoted_after(message, prefix)?, MAX_FIELD);
        return Some(if ok {
            EventKind::LoginSucceeded {
                user,
                service,
                source: src,
                method: method.map(str::to_owned),
            }
        } else {
            EventKind::LoginFailed {
                user,
                service,
                source: src,
            }
        });
    }
    None
}

/// A quoted value or a bare word ending at whitespace or a comma.
fn word_or_quoted(text: &str) -> Option<&str> {
    let t = text.trim_start();
    if let Some(q) = t.strip_prefix('\'') {
        return Some(&q[..q.find('\'')?]);
    }
    let end = t
        .find(|c: char| c.is_whitespace() || c == ',')
        .unwrap_or(t.len());
    (end > 0).then(|| &t[..end])
}

fn after_word<'a>(message: &'a str, marker: &str) -> Option<&'a str> {
    let i = message.find(marker)?;
    word_or_quoted(&message[i + marker.len()..])
}

/// shadow-utils, util-linux and BusyBox `login`.
fn login(message: &str) -> Option<EventKind> {
    let from = after_word(message, " FROM ")
        .or_else(|| after_word(message, " from "))
        .and_then(source);
    let service = "login".to_owned();
    let failed = |user: &str| EventKind::LoginFailed {
        user: bounded(user, MAX_FIELD),
        service: service.clone(),
        source: from.clone(),
    };
    let succeeded = |user: &str| EventKind::LoginSucceeded {
        user: bounded(user, MAX_FIELD),
        service: service.clone(),
        source: from.clone(),
        method: Some("password".to_owned()),
    };
    if message.starts_with("FAILED LOGIN") {
        return Some(failed(after_word(message, " FOR ")?));
    }
    if let Some(rest) = message.strip_prefix("invalid password for ") {
        return Some(failed(word_or_quoted(rest)?));
    }
    if message.starts_with("ROOT LOGIN") || message.starts_with("root login") {
        return Some(succeeded("root"));
    }
    if message.starts_with("LOGIN ON ") {
        return Some(succeeded(after_word(message, " BY ")?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2025-03-01T12:00:00Z
    const NOW: i64 = 1_740_830_400_000;

    fn one(line: &str) -> Option<DeviceEvent> {
        let mut v = parse_line(line, NOW, &TimeZone::UTC);
        assert!(v.len() <= 1, "{v:?}");
        v.pop()
    }

    fn failed(user: &str, service: &str, source: Option<&str>) -> EventKind {
        EventKind::LoginFailed {
            user: user.into(),
            service: service.into(),
            source: source.map(Into::into),
        }
    }

    fn ok(user: &str, service: &str, source: Option<&str>, method: &str) -> EventKind {
        EventKind::LoginSucceeded {
            user: user.into(),
            service: service.into(),
            source: source.map(Into::into),
            method: Some(method.into()),
        }
    }

    #[test]
    fn lines() {
        let t = |s: &str| {
            jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%z", s)
                .unwrap()
                .as_millisecond()
        };
        let cases: &[(&str, Option<(i64, EventKind)>)] = &[
            (
                "Mar  1 11:59:58 gw sshd[812]: Failed password for invalid user admin from 198.51.100.7 port 50522 ssh2",
                Some((
                    t("2025-03-01T11:59:58+0000"),
                    failed("admin", "sshd", Some("198.51.100.7")),
                )),
            ),
            (
                "Mar  1 11:00:00 gw sshd-session[9]: Failed password for root from 2001:db8::7 port 1 ssh2",
                Some((
                    t("2025-03-01T11:00:00+0000"),
                    failed("root", "sshd", Some("2001:db8::7")),
                )),
            ),
            (
                "2025-03-01T12:00:01.123456+01:00 gw sshd[812]: Accepted publickey for ops from 192.0.2.5 port 4022 ssh2: ED25519 SHA256:abc",
                Some((
                    t("2025-03-01T11:00:01+0000") + 123,
                    ok("ops", "sshd", Some("192.0.2.5"), "publickey"),
                )),
            ),
            (
                "Dec 31 23:59:59 gw sshd[1]: Accepted password for a from b from 192.0.2.9 port 1 ssh2",
                Some((
                    t("2024-12-31T23:59:59+0000"),
                    ok("a from b", "sshd", Some("192.0.2.9"), "password"),
                )),
            ),
            (
                "Mar  1 10:00:00 router authpriv.warn dropbear[1234]: Bad password attempt for 'root' from 203.0.113.9:40000",
                Some((
                    t("2025-03-01T10:00:00+0000"),
                    failed("root", "dropbear", Some("203.0.113.9")),
                )),
            ),
            (
                "Mar  1 10:00:00 router dropbear[1234]: Pubkey auth succeeded for 'root' with ssh-ed25519 key SHA256:x from 2001:db8::1:5555",
                Some((
                    t("2025-03-01T10:00:00+0000"),
                    ok("root", "dropbear", Some("2001:db8::1"), "publickey"),
                )),
            ),
            (
                "Mar  1 10:00:00 gw login[77]: FAILED LOGIN (1) on '/dev/pts/0' FROM '198.51.100.8' FOR 'root', Authentication failure",
                Some((
                    t("2025-03-01T10:00:00+0000"),
                    failed("root", "login", Some("198.51.100.8")),
                )),
            ),
            (
                "Mar  1 10:00:00 gw login[77]: FAILED LOGIN 1 FROM 198.51.100.8 FOR admin, Authentication failure",
                Some((
                    t("2025-03-01T10:00:00+0000"),
                    failed("admin", "login", Some("198.51.100.8")),
                )),
            ),
            (
                "Mar  1 10:00:00 cam auth.notice login[123]: root login on 'pts/0'",
                Some((
                    t("2025-03-01T10:00:00+0000"),
                    ok("root", "login", None, "password"),
                )),
            ),
            (
                "Mar  1 10:00:00 cam auth.warn login[123]: invalid password for 'admin' on 'pts/1'",
                Some((
                    t("2025-03-01T10:00:00+0000"),
                    failed("admin", "login", None),
                )),
            ),
            (
                "garbage without any time at all sshd[1]: Failed password for x from 192.0.2.1 port 1 ssh2",
                None,
            ),
            (
                "sshd[1]: Failed password for x from 192.0.2.1 port 1 ssh2",
                Some((NOW, failed("x", "sshd", Some("192.0.2.1")))),
            ),
            // Another program cannot forge a login.
            (
                "Mar  1 10:00:00 gw webapp[5]: Failed password for root from 192.0.2.1 port 1 ssh2",
                None,
            ),
            (
                "Mar  1 10:00:00 gw sshd[5]: Failed none for invalid user x from 192.0.2.1 port 1 ssh2",
                None,
            ),
            (
                "Mar  1 10:00:00 gw sshd[5]: Connection closed by 192.0.2.1 port 1",
                None,
            ),
            (
                "Feb 30 10:00:00 gw sshd[5]: Failed password for x from 192.0.2.1 port 1 ssh2",
                Some((NOW, failed("x", "sshd", Some("192.0.2.1")))),
            ),
            ("", None),
            ("Mar", None),
        ];
        for (line, want) in cases {
            let got = one(line).map(|e| (e.at, e.kind));
            assert_eq!(&got, want, "{line}");
        }
    }

    #[test]
    fn repeats_expand() {
        let v = parse_line(
            "Mar  1 10:00:00 gw sshd[5]: message repeated 3 times: [ Failed password for root from 192.0.2.1 port 1 ssh2]",
            NOW,
            &TimeZone::UTC,
        );
        assert_eq!(v.len(), 3);
        assert_eq!(v[2].kind, failed("root", "sshd", Some("192.0.2.1")));
    }

    #[test]
    fn local_time_zones_apply() {
        let tz = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let v = parse_line(
            "Mar  1 13:00:00 gw sshd[5]: Failed password for root from 192.0.2.1 port 1 ssh2",
            NOW,
            &tz,
        );
        assert_eq!(v[0].at, NOW);
    }
}
