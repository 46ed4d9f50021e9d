//! Local accounts that can log in (`/etc/passwd`, `/etc/shadow`), the kind of password each
//! has, and whether that password is a well-known default.
//!
//! The default check hashes each candidate password for the account's name with the account's
//! own salt and compares: nothing leaves the device but the yes/no. The candidates are the
//! credential list of the Mirai botnet's scanner (public since its source was published in
//! 2016, and still what IoT botnets try first) plus a few vendor defaults it lacks. Results are
//! cached per (account, hash) because the hash does not change between inventories and
//! sha512-crypt costs thousands of SHA-512 calls per candidate.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use aws_lc_rs::digest;
use garrison_contract::{Account, PasswordState};

use super::{
    crypt,
    root::{Root, clean},
};

/// The contract's default list bound.
const MAX_ACCOUNTS: usize = 4096;

/// Most hash rounds spent on one account's candidates (root has ~35 candidates; at
/// sha512-crypt's default 5000 rounds that is 175 000). A hash whose rounds push the total
/// past this stays unchecked (unknown) rather than stall a small device for minutes.
const ROUND_BUDGET: u64 = 400_000;

/// Well-known default credentials: Mirai's scanner table, then common vendor defaults.
const DEFAULTS: &[(&str, &str)] = &[
    ("root", "xc3511"),
    ("root", "vizxv"),
    ("root", "admin"),
    ("admin", "admin"),
    ("root", "888888"),
    ("root", "xmhdipc"),
    ("root", "default"),
    ("root", "juantech"),
    ("root", "123456"),
    ("root", "54321"),
    ("support", "support"),
    ("root", ""),
    ("admin", "password"),
    ("root", "root"),
    ("root", "12345"),
    ("user", "user"),
    ("admin", ""),
    ("root", "pass"),
    ("admin", "admin1234"),
    ("root", "1111"),
    ("admin", "smcadmin"),
    ("admin", "1111"),
    ("root", "666666"),
    ("root", "password"),
    ("root", "1234"),
    ("root", "klv123"),
    ("Administrator", "admin"),
    ("service", "service"),
    ("supervisor", "supervisor"),
    ("guest", "guest"),
    ("guest", "12345"),
    ("admin1", "password"),
    ("administrator", "1234"),
    ("666666", "666666"),
    ("888888", "888888"),
    ("ubnt", "ubnt"),
    ("root", "klv1234"),
    ("root", "Zte521"),
    ("root", "hi3518"),
    ("root", "jvbzd"),
    ("root", "anko"),
    ("root", "zlxx."),
    ("root", "7ujMko0vizxv"),
    ("root", "7ujMko0admin"),
    ("root", "system"),
    ("root", "ikwb"),
    ("root", "dreambox"),
    ("root", "user"),
    ("root", "realtek"),
    ("root", "00000000"),
    ("admin", "1111111"),
    ("admin", "1234"),
    ("admin", "12345"),
    ("admin", "54321"),
    ("admin", "123456"),
    ("admin", "7ujMko0admin"),
    ("admin", "pass"),
    ("admin", "meinsm"),
    ("tech", "tech"),
    ("mother", "fucker"),
    // Not in Mirai's table.
    ("pi", "raspberry"),
    ("root", "toor"),
    ("root", "openwrt"),
    ("admin", "changeme"),
];

/// Candidates for `user`, without duplicates.
fn candidates(user: &str) -> Vec<&'static str> {
    let mut seen = HashSet::new();
    DEFAULTS
        .iter()
        .filter(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .filter(|p| seen.insert(*p))
        .collect()
}

/// Remembers default-password verdicts between inventories.
#[derive(Default)]
pub(crate) struct DefaultCache(Mutex<HashMap<(String, String), Option<bool>>>);

impl std::fmt::Debug for DefaultCache {
    // The keys are password hashes: not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.0.lock().map_or(0, |c| c.len());
        f.debug_struct("DefaultCache")
            .field("entries", &entries)
            .finish()
    }
}

impl DefaultCache {
    fn check(&self, user: &str, hash: &str) -> Option<bool> {
        let key = (user.to_owned(), hash.to_owned());
        if let Ok(cache) = self.0.lock()
            && let Some(v) = cache.get(&key)
        {
            return *v;
        }
        let verdict = default_password(user, hash);
        if let Ok(mut cache) = self.0.lock() {
            cache.insert(key, verdict);
        }
        verdict
    }
}

/// Whether `hash` is one of `user`'s well-known default passwords; `None` when the scheme
/// cannot be checked here or would cost more than [`ROUND_BUDGET`].
pub(crate) fn default_password(user: &str, hash: &str) -> Option<bool> {
    let scheme = crypt::scheme(hash)?;
    let list = candidates(user);
    let count = u64::try_from(list.len()).unwrap_or(u64::MAX);
    if scheme.cost().saturating_mul(count) > ROUND_BUDGET {
        return None;
    }
    for candidate in list {
        if crypt::verify(candidate, hash)? {
            return Some(true);
        }
    }
    Some(false)
}

/// What a password field says.
#[derive(Debug, PartialEq, Eq)]
enum Field<'a> {
    /// `x`: look in the shadow file.
    Shadowed,
    Empty,
    Locked,
    Hash(&'a str),
}

fn field(value: &str) -> Field<'_> {
    match value {
        "x" => Field::Shadowed,
        "" => Field::Empty,
        // `!` prefixes a locked account's hash (`passwd -l`); `*` and `!!` mean no password.
        v if v.starts_with('!') || v.starts_with('*') => Field::Locked,
        v => Field::Hash(v),
    }
}

/// Accounts with a login shell, or `None` when `/etc/passwd` cannot be read.
pub(crate) fn collect(root: &Root, cache: &DefaultCache) -> Option<Vec<Account>> {
    let passwd = root.read_text("/etc/passwd")?;
    let shadow: Option<HashMap<String, String>> = root.read_text("/etc/shadow").map(|t| {
        t.lines()
            .filter_map(|l| {
                let mut f = l.split(':');
                Some((f.next()?.to_owned(), f.next()?.to_owned()))
            })
            .collect()
    });
    let shells: Option<HashSet<String>> = root.read_text("/etc/shells").map(|t| {
        t.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    });
    let mut out = Vec::new();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        // NIS compat lines (`+`/`-`) name no local account.
        let [name, pw, uid, _gid, _gecos, _home, shell] = f.as_slice() else {
            continue;
        };
        if name.starts_with(['+', '-']) {
            continue;
        }
        let (Some(name), Ok(uid)) = (clean(name), uid.parse::<u32>()) else {
            continue;
        };
        // passwd(5): an empty shell is /bin/sh.
        let effective_shell = if shell.is_empty() { "/bin/sh" } else { shell };
        if !login_shell(effective_shell, shells.as_ref()) {
            continue;
        }
        let stored = match field(pw) {
            Field::Shadowed => shadow
                .as_ref()
                .and_then(|s| s.get(&name))
                // `x` in the shadow file again points elsewhere: nothing to go on.
                .and_then(|h| match field(h) {
                    Field::Shadowed => None,
                    other => Some(other),
                }),
            other => Some(other),
        };
        let (password, default_password, credential_fingerprint) = match stored {
            None => (PasswordState::Unknown, None, None),
            Some(Field::Empty) => (
                PasswordState::Empty,
                Some(candidates(&name).contains(&"")),
                None,
            ),
            Some(Field::Locked) => (PasswordState::Locked, None, None),
            Some(Field::Hash(h)) => (
                PasswordState::Set,
                cache.check(&name, h),
                Some(fingerprint(h)),
            ),
            Some(Field::Shadowed) => (PasswordState::Unknown, None, None),
        };
        out.push(Account {
            name,
            uid,
            shell: clean(shell),
            password,
            default_password,
            credential_fingerprint,
        });
    }
    (out.len() <= MAX_ACCOUNTS).then_some(out)
}

/// A shell one can log in with: listed in `/etc/shells` when the device has one, otherwise
/// anything but the usual "no login" programs.
fn login_shell(shell: &str, shells: Option<&HashSet<String>>) -> bool {
    match shells {
        Some(list) => list.contains(shell),
        None => {
            let base = shell.rsplit('/').next().unwrap_or(shell);
            !matches!(
                base,
                "nologin" | "false" | "sync" | "shutdown" | "halt" | ""
            )
        }
    }
}

/// The first 16 hex digits of SHA-256 over the stored hash.
fn fingerprint(hash: &str) -> String {
    let d = digest::digest(&digest::SHA256, hash.as_bytes());
    let mut hex = hex::encode(d.as_ref());
    hex.truncate(16);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_found_and_budgeted() {
        // `openssl passwd -6 -salt abc root`
        let root_root = "$6$abc$WVzy1mzYOy5NbS.iVoa0XmNYJ6YUTZvtfDgbXOJ2AVO/IWzz5.koR6GZdcjtK6As0Rw.UtsEl/1qT4nKeCxKT1";
        assert_eq!(default_password("root", root_root), Some(true));
        // Same hash, but "root" is not a candidate for this user.
        assert_eq!(default_password("alice", root_root), Some(false));
        // DES crypt of "xc3511".
        assert_eq!(default_password("root", "absxcfbgXtb3o"), Some(true));
        assert_eq!(default_password("root", "$y$j9T$salt$hash"), None);
        assert_eq!(
            default_password("root", "$6$rounds=900000$abc$WVzy1mzYOy5NbS"),
            None
        );
    }

    #[test]
    fn fields() {
        assert_eq!(field("!$6$abc$def"), Field::Locked);
        assert_eq!(field("!!"), Field::Locked);
        assert_eq!(field("*"), Field::Locked);
        assert_eq!(field(""), Field::Empty);
        assert_eq!(field("x"), Field::Shadowed);
        assert_eq!(field("$1$a$b"), Field::Hash("$1$a$b"));
    }
}
