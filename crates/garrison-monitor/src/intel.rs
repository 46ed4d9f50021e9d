//! Threat intelligence: indicator sets (addresses, networks, domains, file hashes) with source,
//! confidence and expiry, and the lookups that enrich events with `threat.*`.
//!
//! Four formats, told apart by the file name and content:
//! - a plain list (one indicator per line, `#` comments), the kind told from its shape: an
//!   address, a CIDR network, a 64-hex SHA-256, or a domain;
//! - CSV (`indicator[,type][,confidence][,expires]`, an optional header line; `expires` is
//!   RFC 3339 or Unix ms);
//! - a STIX 2.1 bundle ([`stix`]): indicators with simple comparison patterns;
//! - MISP feed JSON ([`misp`]): events and their detection attributes.
//!
//! Lists and CSV are our own formats: a bad line stops the load with the line named. Feeds
//! from elsewhere carry indicators of kinds Garrison cannot match (URLs, e-mail addresses,
//! patterns with `AND`): each is skipped with its reason and counted, and the rest load.

mod misp;
mod stix;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, RwLock},
};

use garrison_core::UnixMillis;

use crate::{MonitorError, event::Threat};

/// An indicator a feed offers, before it is checked.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    value: String,
    /// `None`: told from the value's shape.
    kind: Option<IndicatorKind>,
    confidence: u8,
    expires_at: Option<UnixMillis>,
    /// Its id in the feed.
    reference: String,
}

/// An entry of a feed that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Which entry (a STIX indicator id, a MISP `event/attribute` uuid).
    pub what: String,
    /// Why.
    pub reason: String,
}

impl Skipped {
    fn new(what: String, reason: String) -> Skipped {
        Skipped { what, reason }
    }
}

/// What loading one file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// What it was: `list`, `csv`, `stix` or `misp`.
    pub format: &'static str,
    /// Indicators added.
    pub added: usize,
    /// Entries skipped, with why.
    pub skipped: Vec<Skipped>,
}

/// The indicators in force, shared between the monitor (which reads them for every batch) and
/// whoever replaces them (an import through the API): readers take the current set and keep
/// it for the batch, a replacement swaps in a whole new set.
#[derive(Debug, Clone, Default)]
pub struct SharedIntel(Arc<RwLock<Arc<ThreatIntel>>>);

impl SharedIntel {
    /// A handle holding `intel`.
    pub fn new(intel: ThreatIntel) -> SharedIntel {
        SharedIntel(Arc::new(RwLock::new(Arc::new(intel))))
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<ThreatIntel> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `intel` in force.
    pub fn replace(&self, intel: ThreatIntel) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(intel);
    }
}

/// What an indicator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndicatorKind {
    /// One address.
    Ip,
    /// A network.
    Cidr,
    /// A domain (and its subdomains).
    Domain,
    /// A file's SHA-256.
    Sha256,
}

/// One indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    /// As written (normalised to lower case).
    pub value: String,
    /// Its kind.
    pub kind: IndicatorKind,
    /// The set it came from.
    pub source: String,
    /// 0–100.
    pub confidence: u8,
    /// When it stops counting.
    pub expires_at: Option<UnixMillis>,
    /// Its id in its feed, when it has one.
    pub reference: Option<String>,
}

impl Indicator {
    fn live(&self, now: UnixMillis) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }

    /// This indicator as the `threat` of an event, matched in `field`.
    pub fn threat(&self, field: &'static str) -> Threat {
        Threat {
            indicator: self.value.clone(),
            source: self.source.clone(),
            confidence: self.confidence,
            field,
            reference: self.reference.clone(),
        }
    }
}

/// Every loaded indicator, indexed for lookup.
#[derive(Debug, Default, Clone)]
pub struct ThreatIntel {
    ips: HashMap<IpAddr, Indicator>,
    /// (network as IPv6 bits, prefix length over 128 bits, indicator), longest prefix first.
    networks: Vec<(u128, u8, Indicator)>,
    domains: HashMap<String, Indicator>,
    hashes: HashMap<String, Indicator>,
}

impl ThreatIntel {
    /// How many indicators are loaded.
    pub fn len(&self) -> usize {
        self.ips.len() + self.networks.len() + self.domains.len() + self.hashes.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds every indicator of `other` (a source loaded on its own).
    pub fn merge(&mut self, other: &ThreatIntel) {
        self.ips
            .extend(other.ips.iter().map(|(k, v)| (*k, v.clone())));
        self.domains
            .extend(other.domains.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.hashes
            .extend(other.hashes.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.networks.extend(other.networks.iter().cloned());
        self.networks.sort_by_key(|n| std::cmp::Reverse(n.1));
    }

    /// Adds a file's indicators: a STIX 2.1 bundle or MISP JSON when `name` ends in `.json`,
    /// CSV when it ends in `.csv`, else a plain list. `confidence` applies where the file gives
    /// none; `now` decides what has already expired.
    pub fn load(
        &mut self,
        name: &str,
        text: &str,
        source: &str,
        confidence: u8,
        now: UnixMillis,
    ) -> Result<LoadSummary, MonitorError> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".json") {
            return self.load_json(name, text, source, confidence, now);
        }
        let csv = lower.ends_with(".csv");
        let bad = |line: usize, reason: String| MonitorError::Intel {
            file: name.to_owned(),
            line,
            reason,
        };
        let mut candidates = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut columns = line.split(',').map(str::trim);
            let value = columns.next().unwrap_or_default().to_ascii_lowercase();
            if csv && i == 0 && value == "indicator" {
                continue;
            }
            let (kind, confidence, expires_at) = if csv {
                let kind = match columns.next().filter(|k| !k.is_empty()) {
                    Some(k) => Some(parse_kind(k).ok_or_else(|| {
                        bad(
                            i + 1,
                            format!("unknown type {k:?} (ip, cidr, domain or sha256)"),
                        )
                    })?),
                    None => None,
                };
                let confidence = match columns.next().filter(|c| !c.is_empty()) {
                    Some(c) => c
                        .parse::<u8>()
                        .ok()
                        .filter(|c| *c <= 100)
                        .ok_or_else(|| bad(i + 1, format!("confidence {c:?} is not 0–100")))?,
                    None => confidence,
                };
                let expires = match columns.next().filter(|e| !e.is_empty()) {
                    Some(e) => Some(parse_time(e).ok_or_else(|| {
                        bad(
                            i + 1,
                            format!("expires {e:?} is neither RFC 3339 nor Unix ms"),
                        )
                    })?),
                    None => None,
                };
                (kind, confidence, expires)
            } else {
                (None, confidence, None)
            };
            candidates.push((
                i + 1,
                Candidate {
                    value,
                    kind,
                    confidence,
                    expires_at,
                    reference: String::new(),
                },
            ));
        }
        let mut summary = LoadSummary {
            format: if csv { "csv" } else { "list" },
            ..LoadSummary::default()
        };
        for (line, candidate) in candidates {
            self.insert(candidate, source, false)
                .map_err(|reason| bad(line, reason))?;
            summary.added += 1;
        }
        self.networks.sort_by_key(|n| std::cmp::Reverse(n.1));
        Ok(summary)
    }

    fn load_json(
        &mut self,
        name: &str,
        text: &str,
        source: &str,
        confidence: u8,
        now: UnixMillis,
    ) -> Result<LoadSummary, MonitorError> {
        let fail = |reason: String| MonitorError::Intel {
            file: name.to_owned(),
            line: 0,
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| MonitorError::Intel {
                file: name.to_owned(),
                line: e.line(),
                reason: format!("not JSON: {e}"),
            })?;
        let (format, (candidates, skipped)) = if stix::is_bundle(&value) {
            ("stix", stix::read(value, confidence, now).map_err(fail)?)
        } else if misp::is_misp(&value) {
            ("misp", misp::read(value, confidence).map_err(fail)?)
        } else {
            return Err(fail(
                "neither a STIX 2.1 bundle (\"type\": \"bundle\") nor MISP JSON (\"Event\")".into(),
            ));
        };
        let mut summary = LoadSummary {
            format,
            added: 0,
            skipped,
        };
        for candidate in candidates {
            let what = candidate.reference.clone();
            match self.insert(candidate, source, true) {
                Ok(()) => summary.added += 1,
                Err(reason) => summary.skipped.push(Skipped::new(what, reason)),
            }
        }
        self.networks.sort_by_key(|n| std::cmp::Reverse(n.1));
        Ok(summary)
    }

    /// Checks one indicator and adds it (call `networks.sort…` after a batch).
    fn insert(&mut self, c: Candidate, source: &str, keep_reference: bool) -> Result<(), String> {
        let value = c.value;
        let kind = match c.kind {
            Some(IndicatorKind::Ip) if value.contains('/') => IndicatorKind::Cidr,
            Some(k) => k,
            None => shape(&value).ok_or_else(|| {
                format!("{value:?} is not an address, network, domain or SHA-256")
            })?,
        };
        let indicator = Indicator {
            value: value.clone(),
            kind,
            source: source.to_owned(),
            confidence: c.confidence,
            expires_at: c.expires_at,
            reference: keep_reference.then_some(c.reference),
        };
        match kind {
            IndicatorKind::Ip => {
                let ip = value
                    .parse::<IpAddr>()
                    .map_err(|e| format!("{value:?}: {e}"))?;
                self.ips.insert(ip, indicator);
            }
            IndicatorKind::Cidr => {
                let (bits, prefix) =
                    parse_cidr(&value).ok_or_else(|| format!("{value:?} is not a CIDR network"))?;
                self.networks.push((bits, prefix, indicator));
            }
            IndicatorKind::Domain => {
                if !matches!(shape(&value), Some(IndicatorKind::Domain)) {
                    return Err(format!("{value:?} is not a domain"));
                }
                self.domains
                    .insert(value.trim_end_matches('.').to_owned(), indicator);
            }
            IndicatorKind::Sha256 => {
                if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("{value:?} is not a SHA-256"));
                }
                self.hashes.insert(value, indicator);
            }
        }
        Ok(())
    }

    /// The live indicator an address matches (exactly, or by the longest network).
    pub fn address(&self, text: &str, now: UnixMillis) -> Option<&Indicator> {
        let ip: IpAddr = text.parse().ok()?;
        if let Some(i) = self.ips.get(&ip).filter(|i| i.live(now)) {
            return Some(i);
        }
        let bits = v6_bits(ip);
        self.networks
            .iter()
            .find(|(net, prefix, i)| masked(bits, *prefix) == *net && i.live(now))
            .map(|(_, _, i)| i)
    }

    /// The live indicator a domain (or a parent domain) matches.
    pub fn domain(&self, name: &str, now: UnixMillis) -> Option<&Indicator> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let mut rest = name.as_str();
        loop {
            if let Some(i) = self.domains.get(rest).filter(|i| i.live(now)) {
                return Some(i);
            }
            rest = rest.split_once('.')?.1;
        }
    }

    /// The live indicator a SHA-256 matches.
    pub fn hash(&self, hex: &str, now: UnixMillis) -> Option<&Indicator> {
        self.hashes
            .get(&hex.to_ascii_lowercase())
            .filter(|i| i.live(now))
    }

    /// Sets `event.threat` from the first of its addresses or hashes that is listed.
    pub fn enrich(&self, event: &mut crate::event::SecurityEvent, now: UnixMillis) {
        if self.is_empty() || event.threat.is_some() {
            return;
        }
        let dst = event.dst_endpoint.as_ref().and_then(|e| e.ip.as_deref());
        let src = event.src_endpoint.as_ref().and_then(|e| e.ip.as_deref());
        let found = dst
            .and_then(|ip| self.address(ip, now))
            .map(|i| i.threat("dst_endpoint.ip"))
            .or_else(|| {
                src.and_then(|ip| self.address(ip, now))
                    .map(|i| i.threat("src_endpoint.ip"))
            })
            .or_else(|| {
                event.telemetry.as_ref().and_then(|t| {
                    t.destinations
                        .iter()
                        .find_map(|d| self.address(d, now))
                        .map(|i| i.threat("telemetry.destinations"))
                })
            })
            .or_else(|| {
                event
                    .file
                    .as_ref()
                    .and_then(|f| f.hash_sha256.as_deref())
                    .and_then(|h| self.hash(h, now))
                    .map(|i| i.threat("file.hash_sha256"))
            });
        if let Some(threat) = found {
            event.threat = Some(threat);
        }
    }
}

fn parse_kind(text: &str) -> Option<IndicatorKind> {
    Some(match text.to_ascii_lowercase().as_str() {
        "ip" | "ipv4" | "ipv6" | "ip-dst" | "ip-src" => IndicatorKind::Ip,
        "cidr" | "network" | "subnet" => IndicatorKind::Cidr,
        "domain" | "hostname" | "fqdn" => IndicatorKind::Domain,
        "sha256" | "sha-256" => IndicatorKind::Sha256,
        _ => return None,
    })
}

fn shape(value: &str) -> Option<IndicatorKind> {
    if value.parse::<IpAddr>().is_ok() {
        Some(IndicatorKind::Ip)
    } else if value.contains('/') {
        Some(IndicatorKind::Cidr)
    } else if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(IndicatorKind::Sha256)
    } else if value.contains('.')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        Some(IndicatorKind::Domain)
    } else {
        None
    }
}

pub(crate) fn parse_time(text: &str) -> Option<UnixMillis> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// An address as 128 bits, IPv4 mapped into `::ffff:0:0/96` so one table holds both.
fn v6_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn masked(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix)))
    }
}

fn parse_cidr(text: &str) -> Option<(u128, u8)> {
    let (address, prefix) = text.split_once('/')?;
    let ip: IpAddr = address.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let prefix = match ip {
        IpAddr::V4(_) if prefix <= 32 => prefix + 96,
        IpAddr::V6(_) if prefix <= 128 => prefix,
        _ => return None,
    };
    Some((masked(v6_bits(ip), prefix), prefix))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lists_and_csv_load_and_match() {
        let mut intel = ThreatIntel::default();
        let n = intel
            .load(
                "c2.txt",
                "# feodo\n198.51.100.23\n203.0.113.0/24\nevil.example\n2001:db8:bad::/48\n",
                "feodo",
                80,
                0,
            )
            .unwrap()
            .added;
        assert_eq!(n, 4);
        let n = intel
            .load(
                "iocs.csv",
                "indicator,type,confidence,expires\n\
                 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855,sha256,90,\n\
                 192.0.2.7,ip,40,2000-01-01T00:00:00Z\n",
                "misp",
                50,
                0,
            )
            .unwrap()
            .added;
        assert_eq!(n, 2);
        let now = 1_800_000_000_000;
        let hit = intel.address("198.51.100.23", now).unwrap();
        assert_eq!((hit.source.as_str(), hit.confidence), ("feodo", 80));
        assert_eq!(
            intel.address("203.0.113.200", now).unwrap().value,
            "203.0.113.0/24"
        );
        assert!(intel.address("203.0.114.1", now).is_none());
        assert!(intel.address("2001:db8:bad:1::5", now).is_some());
        assert!(intel.address("2001:db8:bae::5", now).is_none());
        assert!(intel.domain("cdn.EVIL.example.", now).is_some());
        assert!(intel.domain("notevil.example", now).is_none());
        assert_eq!(
            intel
                .hash(
                    "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                    now
                )
                .unwrap()
                .confidence,
            90
        );
        assert!(intel.address("192.0.2.7", now).is_none(), "expired");
        assert!(intel.address("192.0.2.7", 0).is_some());
    }

    #[test]
    fn stix_and_misp_files_load_beside_lists() {
        let now = 1_800_000_000_000;
        let mut intel = ThreatIntel::default();
        let stix = r#"{"type": "bundle", "id": "bundle--9", "objects": [
            {"type": "indicator", "id": "indicator--c2", "spec_version": "2.1",
             "pattern": "[ipv4-addr:value = '198.51.100.23' OR ipv4-addr:value = '198.51.100.0/28']",
             "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z", "confidence": 90},
            {"type": "indicator", "id": "indicator--bad", "pattern": "[domain-name:value = 'not a domain']"},
            {"type": "indicator", "id": "indicator--url", "pattern": "[url:value = 'http://a.example/']"}
        ]}"#;
        let summary = intel.load("cert.json", stix, "cert", 50, now).unwrap();
        assert_eq!(summary.added, 2);
        let skipped: Vec<&str> = summary.skipped.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(skipped, ["indicator--url", "indicator--bad"]);
        let hit = intel.address("198.51.100.23", now).unwrap();
        assert_eq!(
            (hit.confidence, hit.reference.as_deref()),
            (90, Some("indicator--c2"))
        );
        assert_eq!(
            intel.address("198.51.100.7", now).unwrap().value,
            "198.51.100.0/28"
        );
        let misp = r#"{"Event": {"uuid": "ev-1", "Attribute": [
            {"type": "domain", "value": "cnc.example", "to_ids": true, "uuid": "at-1"}]}}"#;
        let summary = intel.load("misp-feed.JSON", misp, "misp", 50, now).unwrap();
        assert_eq!((summary.added, summary.skipped.len()), (1, 0));
        let hit = intel.domain("x.cnc.example", now).unwrap();
        assert_eq!(
            (hit.source.as_str(), hit.reference.as_deref()),
            ("misp", Some("ev-1/at-1"))
        );
        for (text, needle) in [
            ("{\"type\": \"report\"}", "neither a STIX"),
            ("{\"type\": ", "not JSON"),
        ] {
            let err = intel
                .load("x.json", text, "s", 50, now)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle) && err.contains("x.json"), "{err}");
        }
    }

    #[test]
    fn bad_lines_are_named() {
        for (name, text, needle) in [
            ("a.txt", "198.51.100.23\nnot an indicator\n", "line 2"),
            ("a.txt", "10.0.0.0/33\n", "CIDR"),
            ("a.csv", "1.2.3.4,colour\n", "unknown type"),
            ("a.csv", "1.2.3.4,ip,101\n", "0–100"),
            ("a.csv", "1.2.3.4,ip,5,tomorrow\n", "expires"),
            ("a.csv", "abcd,sha256\n", "SHA-256"),
        ] {
            let err = ThreatIntel::default()
                .load(name, text, "s", 50, 0)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle) && err.contains(name), "{text}: {err}");
        }
    }
}
