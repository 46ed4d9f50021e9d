//! STIX 2.1 bundles: the `indicator` objects whose `pattern` is one of the simple comparison
//! forms a feed of addresses, networks, domains and hashes uses.
//!
//! Accepted: observation expressions joined by `OR`, each holding comparisons joined by `OR`,
//! each comparison `ipv4-addr:value`, `ipv6-addr:value`, `domain-name:value` or
//! `file:hashes.'SHA-256'` with `=`, `IN (…)` or (for networks) `ISSUBSET`. Anything else —
//! `AND`, `FOLLOWEDBY`, qualifiers, other objects, non-STIX pattern types — cannot be reduced
//! to a list of indicators without changing its meaning, so the indicator is skipped with the
//! reason (and counted), never half-loaded. No crate parses STIX patterns for our toolchain
//! (`rstix` is only reserved), and the subset is small.

use garrison_core::UnixMillis;
use serde::Deserialize;

use super::{Candidate, IndicatorKind, Skipped, parse_time};

#[derive(Debug, Deserialize)]
struct Bundle {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    objects: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct StixIndicator {
    id: String,
    pattern: String,
    #[serde(default)]
    pattern_type: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
    #[serde(default)]
    confidence: Option<u8>,
    #[serde(default)]
    revoked: bool,
}

/// Whether `text` looks like a STIX bundle (so the loader can tell it from MISP JSON).
pub(super) fn is_bundle(value: &serde_json::Value) -> bool {
    value.get("type").and_then(|t| t.as_str()) == Some("bundle")
}

/// The indicators of a bundle, and the ones skipped with why.
pub(super) fn read(
    value: serde_json::Value,
    default_confidence: u8,
    now: UnixMillis,
) -> Result<(Vec<Candidate>, Vec<Skipped>), String> {
    let bundle: Bundle =
        serde_json::from_value(value).map_err(|e| format!("not a STIX 2.1 bundle: {e}"))?;
    if bundle.kind != "bundle" {
        return Err(format!("type is {:?}, expected \"bundle\"", bundle.kind));
    }
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for object in bundle.objects {
        if object.get("type").and_then(|t| t.as_str()) != Some("indicator") {
            continue;
        }
        let id = object
            .get("id")
            .and_then(|i| i.as_str())
            .unwrap_or("indicator without id")
            .to_owned();
        let indicator: StixIndicator = match serde_json::from_value(object) {
            Ok(i) => i,
            Err(e) => {
                skipped.push(Skipped::new(id, format!("malformed indicator: {e}")));
                continue;
            }
        };
        let mut skip = |reason: String| skipped.push(Skipped::new(indicator.id.clone(), reason));
        if indicator.revoked {
            skip("revoked".into());
            continue;
        }
        match indicator.pattern_type.as_deref() {
            None | Some("stix") => {}
            Some(other) => {
                skip(format!(
                    "pattern_type {other:?} (only stix patterns are read)"
                ));
                continue;
            }
        }
        let expires_at = match indicator.valid_until.as_deref() {
            None => None,
            Some(t) => match parse_time(t) {
                Some(ms) => Some(ms),
                None => {
                    skip(format!("valid_until {t:?} is not a timestamp"));
                    continue;
                }
            },
        };
        if expires_at.is_some_and(|e| e <= now) {
            skip("expired (valid_until has passed)".into());
            continue;
        }
        let confidence = match indicator.confidence {
            Some(c) if c <= 100 => c,
            Some(c) => {
                skip(format!("confidence {c} is not 0–100"));
                continue;
            }
            None => default_confidence,
        };
        match pattern_values(&indicator.pattern) {
            Ok(values) => found.extend(values.into_iter().map(|(kind, value)| Candidate {
                value,
                kind: Some(kind),
                confidence,
                expires_at,
                reference: indicator.id.clone(),
            })),
            Err(reason) => skip(reason),
        }
    }
    Ok((found, skipped))
}

/// One lexical unit of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenParen,
    CloseParen,
    Comma,
    Word(String),
    Text(String),
}

fn tokens(pattern: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '[' | ']' | '(' | ')' | ',' => {
                chars.next();
                out.push(match c {
                    '[' => Token::Open,
                    ']' => Token::Close,
                    '(' => Token::OpenParen,
                    ')' => Token::CloseParen,
                    _ => Token::Comma,
                });
            }
            '=' | '!' | '<' | '>' => {
                let mut op = String::new();
                while let Some(&c) = chars.peek().filter(|c| matches!(c, '=' | '!' | '<' | '>')) {
                    op.push(c);
                    chars.next();
                }
                out.push(Token::Word(op));
            }
            '\'' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(e @ ('\'' | '\\')) => text.push(e),
                            _ => return Err("a bad escape in a string".into()),
                        },
                        Some('\'') => break,
                        Some(c) => text.push(c),
                        None => return Err("an unterminated string".into()),
                    }
                }
                out.push(Token::Text(text));
            }
            _ => {
                // A word: an object path (`file:hashes.'SHA-256'` keeps its quoted key), an
                // operator or a keyword.
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace()
                        || matches!(c, '[' | ']' | '(' | ')' | ',' | '=' | '!' | '<' | '>')
                    {
                        break;
                    }
                    if c == '\'' {
                        if !word.ends_with('.') {
                            break;
                        }
                        chars.next();
                        word.push('\'');
                        for c in chars.by_ref() {
                            word.push(c);
                            if c == '\'' {
                                break;
                            }
                        }
                        continue;
                    }
                    word.push(c);
                    chars.next();
                }
                if word.is_empty() {
                    return Err(format!("unexpected {c:?}"));
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

/// What an object path's values are.
fn path_kind(path: &str) -> Option<IndicatorKind> {
    match path {
        "ipv4-addr:value" | "ipv6-addr:value" => Some(IndicatorKind::Ip),
        "domain-name:value" => Some(IndicatorKind::Domain),
        "file:hashes.'SHA-256'" | "file:hashes.SHA256" | "file:hashes.'SHA256'" => {
            Some(IndicatorKind::Sha256)
        }
        _ => None,
    }
}

/// The values a simple pattern matches, or why it is not simple.
fn pattern_values(pattern: &str) -> Result<Vec<(IndicatorKind, String)>, String> {
    let tokens = tokens(pattern).map_err(|e| format!("pattern {pattern:?}: {e}"))?;
    let unsupported =
        |what: &str| format!("pattern {pattern:?}: {what} is not a simple comparison");
    let mut values = Vec::new();
    let mut i = 0;
    let mut in_observation = false;
    let mut expect_term = true;
    while i < tokens.len() {
        match (&tokens[i], in_observation, expect_term) {
            (Token::Open, false, true) => {
                in_observation = true;
                i += 1;
            }
            (Token::Close, true, false) => {
                in_observation = false;
                i += 1;
            }
            (Token::Word(w), _, false) if w.eq_ignore_ascii_case("or") => {
                expect_term = true;
                i += 1;
            }
            (Token::Word(path), true, true) => {
                let kind =
                    path_kind(path).ok_or_else(|| unsupported(&format!("object path {path}")))?;
                let op = match tokens.get(i + 1) {
                    Some(Token::Word(op)) => op.to_ascii_uppercase(),
                    _ => return Err(unsupported("a comparison without an operator")),
                };
                i += 2;
                match op.as_str() {
                    "=" => match tokens.get(i) {
                        Some(Token::Text(v)) => {
                            values.push(value_kind(kind, v));
                            i += 1;
                        }
                        _ => return Err(unsupported("a comparison without a string value")),
                    },
                    "ISSUBSET" if kind == IndicatorKind::Ip => match tokens.get(i) {
                        Some(Token::Text(v)) if v.contains('/') => {
                            values.push((IndicatorKind::Cidr, v.to_ascii_lowercase()));
                            i += 1;
                        }
                        _ => return Err(unsupported("ISSUBSET without a network")),
                    },
                    "IN" => {
                        if tokens.get(i) != Some(&Token::OpenParen) {
                            return Err(unsupported("IN without a list"));
                        }
                        i += 1;
                        loop {
                            match tokens.get(i) {
                                Some(Token::Text(v)) => values.push(value_kind(kind, v)),
                                _ => return Err(unsupported("an IN list of other than strings")),
                            }
                            i += 1;
                            match tokens.get(i) {
                                Some(Token::Comma) => i += 1,
                                Some(Token::CloseParen) => {
                                    i += 1;
                                    break;
                                }
                                _ => return Err(unsupported("an unterminated IN list")),
                            }
                        }
                    }
                    other => return Err(unsupported(&format!("operator {other}"))),
                }
                expect_term = false;
            }
            (Token::Word(w), _, false) => return Err(unsupported(&w.to_ascii_uppercase())),
            _ => return Err(format!("pattern {pattern:?} does not parse")),
        }
    }
    if in_observation || expect_term || values.is_empty() {
        return Err(format!("pattern {pattern:?} does not parse"));
    }
    Ok(values)
}

/// An address value may be a network (`ipv4-addr:value = '198.51.100.0/24'`).
fn value_kind(kind: IndicatorKind, value: &str) -> (IndicatorKind, String) {
    let value = value.to_ascii_lowercase();
    if kind == IndicatorKind::Ip && value.contains('/') {
        (IndicatorKind::Cidr, value)
    } else {
        (kind, value)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn simple_patterns_become_values() {
        use IndicatorKind::*;
        let cases: &[(&str, &[(IndicatorKind, &str)])] = &[
            (
                "[ipv4-addr:value = '198.51.100.1']",
                &[(Ip, "198.51.100.1")],
            ),
            (
                "[ipv4-addr:value = '198.51.100.0/24']",
                &[(Cidr, "198.51.100.0/24")],
            ),
            (
                "[ipv4-addr:value ISSUBSET '203.0.113.0/25']",
                &[(Cidr, "203.0.113.0/25")],
            ),
            ("[ipv6-addr:value = '2001:DB8::1']", &[(Ip, "2001:db8::1")]),
            (
                "[domain-name:value = 'c2.Example']",
                &[(Domain, "c2.example")],
            ),
            (
                "[file:hashes.'SHA-256' = 'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855']",
                &[(
                    Sha256,
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                )],
            ),
            (
                "[ipv4-addr:value = '192.0.2.1' OR domain-name:value = 'x.example']",
                &[(Ip, "192.0.2.1"), (Domain, "x.example")],
            ),
            (
                "[ipv4-addr:value = '192.0.2.1'] OR [ipv4-addr:value = '192.0.2.2']",
                &[(Ip, "192.0.2.1"), (Ip, "192.0.2.2")],
            ),
            (
                "[ipv4-addr:value IN ('192.0.2.3', '192.0.2.4')]",
                &[(Ip, "192.0.2.3"), (Ip, "192.0.2.4")],
            ),
            (
                "[domain-name:value = 'it\\'s.example']",
                &[(Domain, "it's.example")],
            ),
            ("[ipv4-addr:value='192.0.2.9']", &[(Ip, "192.0.2.9")]),
        ];
        for (pattern, expected) in cases {
            let got = pattern_values(pattern).unwrap();
            let expected: Vec<(IndicatorKind, String)> = expected
                .iter()
                .map(|(k, v)| (*k, (*v).to_owned()))
                .collect();
            assert_eq!(got, expected, "{pattern}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for (pattern, needle) in [
            (
                "[ipv4-addr:value = '192.0.2.1' AND domain-name:value = 'x.example']",
                "AND",
            ),
            (
                "[ipv4-addr:value = '1.1.1.1'] FOLLOWEDBY [ipv4-addr:value = '1.1.1.2']",
                "FOLLOWEDBY",
            ),
            ("[ipv4-addr:value = '1.1.1.1'] WITHIN 300 SECONDS", "WITHIN"),
            ("[url:value = 'http://x.example/a']", "url:value"),
            ("[ipv4-addr:value != '1.1.1.1']", "!="),
            ("[domain-name:value LIKE '%.example']", "LIKE"),
            ("[ipv4-addr:value = '1.1.1.1'", "does not parse"),
            ("[ipv4-addr:value = 'open", "unterminated"),
            ("", "does not parse"),
        ] {
            let err = pattern_values(pattern).unwrap_err();
            assert!(err.contains(needle), "{pattern}: {err}");
        }
    }

    #[test]
    fn bundles_keep_confidence_and_expiry_and_skip_with_reasons() {
        let bundle = serde_json::json!({
            "type": "bundle", "id": "bundle--1",
            "objects": [
                {"type": "identity", "id": "identity--1", "name": "CERT"},
                {"type": "indicator", "spec_version": "2.1", "id": "indicator--a",
                 "pattern": "[ipv4-addr:value = '198.51.100.9']", "pattern_type": "stix",
                 "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z",
                 "confidence": 85},
                {"type": "indicator", "id": "indicator--b",
                 "pattern": "[url:value = 'http://x.example/']", "pattern_type": "stix"},
                {"type": "indicator", "id": "indicator--c",
                 "pattern": "alert tcp any any -> any any", "pattern_type": "snort"},
                {"type": "indicator", "id": "indicator--d",
                 "pattern": "[domain-name:value = 'old.example']",
                 "valid_until": "2020-01-01T00:00:00Z"},
                {"type": "indicator", "id": "indicator--e",
                 "pattern": "[domain-name:value = 'gone.example']", "revoked": true},
                {"type": "indicator", "id": "indicator--f",
                 "pattern": "[domain-name:value = 'c2.example']"},
            ]
        });
        let now = 1_800_000_000_000;
        let (found, skipped) = read(bundle, 60, now).unwrap();
        let got: Vec<(&str, u8, bool, &str)> = found
            .iter()
            .map(|c| {
                (
                    c.value.as_str(),
                    c.confidence,
                    c.expires_at.is_some(),
                    c.reference.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("198.51.100.9", 85, true, "indicator--a"),
                ("c2.example", 60, false, "indicator--f"),
            ]
        );
        let reasons: Vec<(&str, bool)> = skipped
            .iter()
            .map(|s| (s.what.as_str(), !s.reason.is_empty()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("indicator--b", true),
                ("indicator--c", true),
                ("indicator--d", true),
                ("indicator--e", true),
            ]
        );
        assert!(skipped[1].reason.contains("snort"));
        assert!(skipped[2].reason.contains("expired"));
        assert!(read(serde_json::json!({"type": "report"}), 50, now).is_err());
    }
}
