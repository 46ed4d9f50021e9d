//! Ordering of firmware and package version strings: [`compare_versions`].
//!
//! This module owns one total order over arbitrary version text, used wherever Garrison asks
//! "is this firmware older than that?" (device queries, rollouts, vulnerability matching). It
//! refuses nothing: every string is a version, and garbage simply sorts somewhere consistent.
//! It allocates nothing, so it is cheap enough to call per device per query.

use std::cmp::Ordering;

/// Compares two version strings, e.g. `compare_versions("2.10", "2.9") == Ordering::Greater`.
///
/// The rules, in order:
///
/// 1. **Epoch.** A prefix of ASCII digits followed by `:` is a Debian epoch and is compared
///    first, numerically; no epoch means epoch 0. So `1:2.0 > 3.0` and `0:3.0 == 3.0`.
/// 2. **`v` prefix.** A leading `v` or `V` directly followed by a digit is ignored (after any
///    epoch): `v2.1 == 2.1`. (`vendor1` keeps its `v`.)
/// 3. **Tokens.** The rest is split at the separators `.` `-` `_` `+` `~` into segments, and
///    each segment into runs of ASCII digits (*numbers*) and runs of anything else (*words*).
///    Separators only delimit: `1.0-1`, `1.0.1` and `1_0_1` are equal, as are `1.0a` and `1.0.a`.
/// 4. **Pre-release marker.** `~` anywhere, and a `-` that follows a digit and precedes an ASCII
///    letter (`1.0.0-rc1`, `2.0-beta`), is a *pre-release marker*, which sorts before everything,
///    including the end of the version: `1.0~rc1 < 1.0`, `1.0.0-rc1 < 1.0.0`, `1.0~~ < 1.0~`.
///    A `-` before a digit (`1.0-2`, a Debian revision) is a plain separator, so `1.0-2 > 1.0`.
/// 5. **Trailing zeros.** Zero numbers that are followed only by zeros up to the end of the
///    version or up to a pre-release marker are dropped: `2.1 == 2.1.0 == 2.1.0.0`,
///    `1.0~rc1 == 1~rc1`, `v3 == 3.0`.
/// 6. **Comparison.** The token sequences are compared left to right. Numbers compare
///    numerically at any length (leading zeros ignored, no overflow: `01.2 == 1.2`,
///    `1.100000000000000000000 > 1.99999999999999999999`); words compare by bytes, ASCII
///    case-insensitively (`1.0RC1 == 1.0rc1`). Between different kinds of token, and against
///    the end of a shorter version, the order is
///    **pre-release marker < end of version < word < number**. Hence:
///    * a longer version with further non-zero parts is greater: `2.1.1 > 2.1`;
///    * a letter suffix without a `-` is a *post*-release, OpenSSL style: `1.0.0a > 1.0.0`
///      and `1.1.1w > 1.1.1a`, yet `1.0.0a < 1.0.1` (a number beats a word at the same place,
///      as in RPM);
///    * unlike SemVer, a numeric pre-release identifier sorts *after* a word one
///      (`1.0-alpha.1 > 1.0-alpha.beta`), and build metadata after `+` counts
///      (`1.0+build5 > 1.0`), since Debian-style `+` suffixes mark newer packages.
///
/// This is a total order (reflexive, antisymmetric up to the equalities above, transitive):
/// every version maps to a normalised token sequence and sequences are compared
/// lexicographically, so sorting with it is well-defined.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (epoch_a, rest_a) = split_epoch(a);
    let (epoch_b, rest_b) = split_epoch(b);
    compare_numbers(epoch_a, epoch_b).then_with(|| {
        let mut left = Tokens::new(rest_a);
        let mut right = Tokens::new(rest_b);
        loop {
            let (x, y) = (left.next(), right.next());
            if x.is_none() && y.is_none() {
                return Ordering::Equal;
            }
            let order = compare_tokens(x, y);
            if order != Ordering::Equal {
                return order;
            }
        }
    })
}

/// One token of a version, after separators are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A pre-release marker (`~`, or `-` between a digit and a letter).
    Pre,
    /// A run of non-digit, non-separator characters.
    Word(&'a str),
    /// A run of digits with its leading zeros removed (`""` is zero).
    Number(&'a str),
}

/// Rank of a token kind (or `None`, the end of the version) in the cross-kind order.
fn rank(token: Option<Token<'_>>) -> u8 {
    match token {
        Some(Token::Pre) => 0,
        None => 1,
        Some(Token::Word(_)) => 2,
        Some(Token::Number(_)) => 3,
    }
}

fn compare_tokens(x: Option<Token<'_>>, y: Option<Token<'_>>) -> Ordering {
    match (x, y) {
        (Some(Token::Number(a)), Some(Token::Number(b))) => compare_numbers(a, b),
        (Some(Token::Word(a)), Some(Token::Word(b))) => a
            .bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase())),
        _ => rank(x).cmp(&rank(y)),
    }
}

/// Compares digit strings numerically, without parsing: longer (after stripping leading
/// zeros) is greater, equal lengths compare lexically.
fn compare_numbers(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Splits off a Debian epoch (`"1:2.0"` → `("1", "2.0")`) and a `v` prefix before a digit.
fn split_epoch(version: &str) -> (&str, &str) {
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => {
            (epoch, rest)
        }
        _ => ("", version),
    };
    let rest = match rest.as_bytes() {
        [b'v' | b'V', next, ..] if next.is_ascii_digit() => rest.get(1..).unwrap_or(rest),
        _ => rest,
    };
    (epoch, rest)
}

fn is_separator(byte: u8) -> bool {
    matches!(byte, b'.' | b'-' | b'_' | b'+' | b'~')
}

/// Splits a version (without epoch) into raw tokens.
struct RawTokens<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for RawTokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let bytes = self.text.as_bytes();
        loop {
            let byte = *bytes.get(self.pos)?;
            let start = self.pos;
            match byte {
                b'~' => {
                    self.pos += 1;
                    return Some(Token::Pre);
                }
                b'-' => {
                    self.pos += 1;
                    let after_digit = start > 0
                        && bytes
                            .get(start - 1)
                            .is_some_and(|prev| prev.is_ascii_digit());
                    let before_letter = bytes
                        .get(self.pos)
                        .is_some_and(|next| next.is_ascii_alphabetic());
                    if after_digit && before_letter {
                        return Some(Token::Pre);
                    }
                }
                b'.' | b'_' | b'+' => self.pos += 1,
                b'0'..=b'9' => {
                    while bytes.get(self.pos).is_some_and(|b| b.is_ascii_digit()) {
                        self.pos += 1;
                    }
                    // Runs end at ASCII bytes or the end, so these are char boundaries.
                    let run = self.text.get(start..self.pos).unwrap_or_default();
                    return Some(Token::Number(run.trim_start_matches('0')));
                }
                _ => {
                    while bytes
                        .get(self.pos)
                        .is_some_and(|&b| !b.is_ascii_digit() && !is_separator(b))
                    {
                        self.pos += 1;
                    }
                    let run = self.text.get(start..self.pos).unwrap_or_default();
                    return Some(Token::Word(run));
                }
            }
        }
    }
}

/// [`RawTokens`] with rule 5 applied: zeros followed only by zeros up to the end or a
/// pre-release marker are dropped. Linear time: a run of zeros is scanned once and replayed.
struct Tokens<'a> {
    raw: RawTokens<'a>,
    /// Zeros still to be emitted before `stashed`.
    zeros: usize,
    /// The token that ended a run of zeros which turned out to be significant.
    stashed: Option<Token<'a>>,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            raw: RawTokens { text, pos: 0 },
            zeros: 0,
            stashed: None,
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        if self.zeros > 0 {
            self.zeros -= 1;
            return Some(Token::Number(""));
        }
        if let Some(token) = self.stashed.take() {
            return Some(token);
        }
        let token = self.raw.next()?;
        if token != Token::Number("") {
            return Some(token);
        }
        let mut run = 1;
        loop {
            match self.raw.next() {
                Some(Token::Number("")) => run += 1,
                // Insignificant zeros: drop them.
                None => return None,
                Some(Token::Pre) => return Some(Token::Pre),
                Some(other) => {
                    self.zeros = run - 1;
                    self.stashed = Some(other);
                    return Some(Token::Number(""));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::compare_versions;
    use std::cmp::Ordering::{self, Equal, Greater, Less};

    /// `(a, b, compare_versions(a, b))`.
    const CASES: &[(&str, &str, Ordering)] = &[
        // Numbers compare numerically.
        ("2.10", "2.9", Greater),
        ("1.2.3", "1.2.3", Equal),
        ("1.2.3", "1.2.4", Less),
        ("10", "9", Greater),
        ("1.10.0", "1.9.9", Greater),
        // Leading zeros and arbitrary length.
        ("01.2", "1.2", Equal),
        ("1.002", "1.2", Equal),
        (
            "1.99999999999999999999999999999",
            "1.100000000000000000000000000000",
            Less,
        ),
        (
            "123456789012345678901234567890",
            "123456789012345678901234567891",
            Less,
        ),
        ("0000000000000000000000000000001", "1", Equal),
        // `v` prefix.
        ("v2.1", "2.1", Equal),
        ("v3", "3.0", Equal),
        ("V1.0", "v1", Equal),
        ("vendor1", "1", Less),
        // Trailing zeros.
        ("2.1", "2.1.0", Equal),
        ("2.1.0.0", "2.1", Equal),
        ("0", "", Equal),
        ("1.0.0", "1", Equal),
        // Extra non-zero parts.
        ("2.1.1", "2.1", Greater),
        ("2.1.0.1", "2.1", Greater),
        ("1.0.0.0.1", "1.0.0.1", Less),
        // Pre-releases: `~` and `-` between a digit and a letter.
        ("1.0~rc1", "1.0", Less),
        ("1.0~rc1", "1.0~rc2", Less),
        ("1.0~~", "1.0~", Less),
        ("1.0~", "1.0", Less),
        ("1.0~rc1", "1~rc1", Equal),
        ("1.0.0-rc1", "1.0.0", Less),
        ("1.0.0-rc1", "1.0.0-rc2", Less),
        ("1.0.0-alpha", "1.0.0-beta", Less),
        ("1.0.0-rc.1", "1.0.0-rc1", Equal),
        ("1.0.0-RC1", "1.0.0-rc1", Equal),
        ("1.0.0-rc1", "0.9.9", Greater),
        ("1.0.0-alpha.1", "1.0.0-alpha", Greater),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta", Greater),
        ("2.0-beta", "2.0~beta", Equal),
        // `-` before a digit is a plain separator (Debian revision).
        ("1.0-2", "1.0", Greater),
        ("1.0-2", "1.0-10", Less),
        ("1.0-1", "1.0.1", Equal),
        // Letter suffixes without `-` are post-releases.
        ("1.0.0a", "1.0.0", Greater),
        ("1.0.0a", "1.0.1", Less),
        ("1.1.1w", "1.1.1a", Greater),
        ("1.0.2k", "1.0.3", Less),
        ("1.0a", "1.0.a", Equal),
        ("1.0a", "1.0.0", Greater),
        // `+` suffixes count.
        ("1.0+build5", "1.0", Greater),
        ("1.2+dfsg", "1.2", Greater),
        // FIXME: a Debian revision is not compared apart from the upstream version, so a
        // `+dfsg` repack sorts before the upstream's revision: `1.2+dfsg-1 < 1.2-1`.
        ("1.2+dfsg-1", "1.2-1", Less),
        // Epochs.
        ("1:2.0", "3.0", Greater),
        ("0:3.0", "3.0", Equal),
        ("2:1.0", "1:9.9", Greater),
        ("1:v2.0", "1:2", Equal),
        ("abc:1", "abc:1", Equal),
        // Anything is a version.
        ("", "1", Less),
        ("", "~", Greater),
        ("abc", "abd", Less),
        ("abc", "1", Less),
        ("1.0 beta", "1.0", Greater),
        ("ünïcode", "ünïcode", Equal),
        ("--..__", "", Equal),
        ("a-b", "a.b", Equal),
    ];

    #[test]
    fn table() {
        for &(a, b, expected) in CASES {
            assert_eq!(compare_versions(a, b), expected, "{a:?} vs {b:?}");
            assert_eq!(compare_versions(b, a), expected.reverse(), "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn total_order_over_all_inputs() {
        let inputs: Vec<&str> = CASES.iter().flat_map(|&(a, b, _)| [a, b]).collect();
        for &a in &inputs {
            assert_eq!(
                compare_versions(a, a),
                Equal,
                "{a:?} is not equal to itself"
            );
            for &b in &inputs {
                let ab = compare_versions(a, b);
                assert_eq!(
                    compare_versions(b, a),
                    ab.reverse(),
                    "antisymmetry: {a:?} {b:?}"
                );
                for &c in &inputs {
                    let bc = compare_versions(b, c);
                    if ab != Greater && bc != Greater {
                        let ac = compare_versions(a, c);
                        assert_ne!(ac, Greater, "transitivity: {a:?} <= {b:?} <= {c:?}");
                        if ab == Equal && bc == Equal {
                            assert_eq!(ac, Equal, "equality: {a:?} = {b:?} = {c:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn hostile_input_is_linear() {
        let zeros = "0.".repeat(100_000);
        let with_tail = format!("{zeros}1");
        assert_eq!(compare_versions(&zeros, "0"), Equal);
        assert_eq!(compare_versions(&with_tail, "0"), Greater);
        assert_eq!(compare_versions(&with_tail, &with_tail), Equal);
        let digits = "9".repeat(100_000);
        assert_eq!(compare_versions(&digits, &format!("1{digits}")), Less);
    }

    #[test]
    fn sorting_is_stable_and_sensible() {
        let mut versions = vec![
            "1.10",
            "1.2",
            "1.2.0~rc1",
            "1.2.0-rc2",
            "v1.2.1",
            "1:0.1",
            "1.9",
            "1.2a",
        ];
        versions.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            versions,
            [
                "1.2.0~rc1",
                "1.2.0-rc2",
                "1.2",
                "1.2a",
                "v1.2.1",
                "1.9",
                "1.10",
                "1:0.1"
            ]
        );
    }
}
