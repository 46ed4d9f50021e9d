//! Glob patterns for `~`: `*` matches any run of characters, `?` exactly one, everything else
//! itself, ignoring case. Compiled once at parse time; matching allocates nothing and runs in
//! O(pattern × text) time without recursion.

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// `*`
    Any,
    /// `?`
    One,
    /// A character, case-folded.
    Char(char),
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    source: Box<str>,
    parts: Vec<Part>,
}

/// Simple case folding that stays one character: `É` → `é`; characters whose lower case is
/// several characters (`İ`) are kept as they are, on both sides, so folding is consistent.
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(single), None) => single,
        _ => c,
    }
}

impl Glob {
    pub(crate) fn new(source: &str) -> Glob {
        let mut parts: Vec<Part> = Vec::with_capacity(source.len());
        for c in source.chars() {
            let part = match c {
                '*' => Part::Any,
                '?' => Part::One,
                c => Part::Char(fold(c)),
            };
            // `**` matches what `*` does; collapsing keeps matching linear in the common case.
            if !(part == Part::Any && parts.last() == Some(&Part::Any)) {
                parts.push(part);
            }
        }
        Glob {
            source: source.into(),
            parts,
        }
    }

    /// The pattern as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        let next_char = |at: usize| text.get(at..).and_then(|rest| rest.chars().next());
        let (mut p, mut t) = (0usize, 0usize);
        // Where to resume after the last `*`: the part after it and the text position it
        // currently stands for.
        let mut resume: Option<(usize, usize)> = None;
        loop {
            let c = next_char(t);
            match (self.parts.get(p), c) {
                (Some(Part::Any), _) => {
                    p += 1;
                    resume = Some((p, t));
                    continue;
                }
                (Some(Part::One), Some(c)) => {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
                (Some(&Part::Char(expected)), Some(c)) if fold(c) == expected => {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            // Mismatch: let the last `*` swallow one more character, or fail.
            let Some((after_star, star_t)) = resume else {
                return false;
            };
            let Some(swallowed) = next_char(star_t) else {
                return false;
            };
            let star_t = star_t + swallowed.len_utf8();
            resume = Some((after_star, star_t));
            p = after_star;
            t = star_t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn globs() {
        let cases = [
            ("cam-*", "cam-x", true),
            ("cam-*", "CAM-X200", true),
            ("cam-*", "cam-", true),
            ("cam-*", "cam", false),
            ("CAM-?", "cam-x", true),
            ("cam-?", "cam-xy", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("*x*", "abxcd", true),
            ("*x*", "abcd", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a**c", "abc", true),
            ("*.*.*", "1.2.3", true),
            ("*.*.*", "1.2", false),
            ("?ürich", "Zürich", true),
            ("zÜrich", "ZüRICH", true),
            ("???", "äöü", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                Glob::new(pattern).matches(text),
                expected,
                "{pattern:?} ~ {text:?}"
            );
        }
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let pattern = Glob::new(&"*a".repeat(100));
        let text = "a".repeat(99) + "b";
        assert!(!pattern.matches(&text));
    }
}
