//! Threat intelligence: indicator sets (addresses, networks, domains, file hashes) with source,
//! confidence and expiry, and the lookups that enrich events with `threat.*`.
//!
//! Two formats today, both checked line by line with the line named in errors: a plain list
//! (one indicator per line, `#` comments) and CSV (`indicator[,type][,confidence][,expires]`,
//! an optional header line; `expires` is RFC 3339 or Unix ms). The kind of a plain entry is
//! told from its shape: an address, a CIDR network, a 64-hex SHA-256, or a domain.

use std::{collections::HashMap, net::IpAddr};

use garrison_core::UnixMillis;

use crate::{MonitorError, event::Threat};

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
}

impl Indicator {
    fn live(&self, now: UnixMillis) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }

    fn threat(&self, field: &'static str) -> Threat {
        Threat {
            indicator: self.value.clone(),
            source: self.source.clone(),
            confidence: self.confidence,
            field,
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

    /// Adds a file's indicators: CSV when `name` ends in `.csv`, else a plain list.
    /// `confidence` applies where the file gives none.
    pub fn load(
        &mut self,
        name: &str,
        text: &str,
        source: &str,
        confidence: u8,
    ) -> Result<usize, MonitorError> {
        let csv = name.to_ascii_lowercase().ends_with(".csv");
        let bad = |line: usize, reason: String| MonitorError::Intel {
            file: name.to_owned(),
            line,
            reason,
        };
        let mut added = 0;
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
            let kind = match kind {
                Some(k) => k,
                None => shape(&value).ok_or_else(|| {
                    bad(
                        i + 1,
                        format!("{value:?} is not an address, network, domain or SHA-256"),
                    )
                })?,
            };
            let indicator = Indicator {
                value: value.clone(),
                kind,
                source: source.to_owned(),
                confidence,
                expires_at,
            };
            match kind {
                IndicatorKind::Ip => {
                    let ip = value
                        .parse::<IpAddr>()
                        .map_err(|e| bad(i + 1, format!("{value:?}: {e}")))?;
                    self.ips.insert(ip, indicator);
                }
                IndicatorKind::Cidr => {
                    let (bits, prefix) = parse_cidr(&value)
                        .ok_or_else(|| bad(i + 1, format!("{value:?} is not a CIDR network")))?;
                    self.networks.push((bits, prefix, indicator));
                }
                IndicatorKind::Domain => {
                    self.domains
                        .insert(value.trim_end_matches('.').to_owned(), indicator);
                }
                IndicatorKind::Sha256 => {
                    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad(i + 1, format!("{value:?} is not a SHA-256")));
                    }
                    self.hashes.insert(value, indicator);
                }
            }
            added += 1;
        }
        self.networks.sort_by_key(|n| std::cmp::Reverse(n.1));
        Ok(added)
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

fn parse_time(text: &str) -> Option<UnixMillis> {
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
            )
            .unwrap();
        assert_eq!(n, 4);
        let n = intel
            .load(
                "iocs.csv",
                "indicator,type,confidence,expires\n\
                 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855,sha256,90,\n\
                 192.0.2.7,ip,40,2000-01-01T00:00:00Z\n",
                "misp",
                50,
            )
            .unwrap();
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
                .load(name, text, "s", 50)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle) && err.contains(name), "{text}: {err}");
        }
    }
}
