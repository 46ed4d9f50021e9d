//! The network as `/proc/net` and `/sys/class/net` show it: sockets (`tcp`, `tcp6`, `udp`,
//! `udp6`), interface counters (`dev`), interfaces with their addresses (`if_inet6`,
//! `fib_trie` joined with `route`).
//!
//! The kernel prints socket addresses as the in-memory 32-bit words of the address, each with
//! `%08X`, so they decode in the device's own byte order (the agent runs on the device; the
//! fixtures come from little-endian machines). Ports are printed already in host order.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use garrison_contract::{ListeningSocket, NetworkInterface, Protocol};

use super::{
    procs::{Process, socket_owners},
    root::{Root, clean},
    telemetry::{InterfaceCounters, NetCounters},
};

/// The contract's default list bound.
const MAX_LIST: usize = 4096;
/// The contract's bound on addresses per interface.
const MAX_ADDRESSES: usize = 64;

/// TCP states as `/proc/net/tcp` numbers them (include/net/tcp_states.h).
const TCP_ESTABLISHED: u8 = 0x01;
const TCP_CLOSE: u8 = 0x07;
const TCP_LISTEN: u8 = 0x0A;

/// One line of `/proc/net/{tcp,udp}[6]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SockLine {
    pub(crate) local: IpAddr,
    pub(crate) local_port: u16,
    pub(crate) remote: IpAddr,
    pub(crate) remote_port: u16,
    pub(crate) state: u8,
    pub(crate) inode: u64,
}

/// Decodes `0100007F:0016` (IPv4) or a 32-digit IPv6 address with its port.
pub(crate) fn parse_endpoint(text: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(addr.get(8 * i..8 * i + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Parses a socket table, skipping the header and any line that does not decode.
pub(crate) fn parse_table(text: &str) -> Vec<SockLine> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, local_port) = parse_endpoint(f.get(1)?)?;
            let (remote, remote_port) = parse_endpoint(f.get(2)?)?;
            Some(SockLine {
                local,
                local_port,
                remote,
                remote_port,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// The socket tables of one moment. A protocol is known when its IPv4 table was read; the
/// IPv6 table is absent on kernels without IPv6, which then have no IPv6 sockets.
#[derive(Debug, Default)]
pub(crate) struct Sockets {
    pub(crate) tcp: Option<Vec<SockLine>>,
    pub(crate) udp: Option<Vec<SockLine>>,
}

impl Sockets {
    pub(crate) fn read(root: &Root) -> Sockets {
        let table = |v4: &str, v6: &str| {
            let mut lines = parse_table(&root.read_text(v4)?);
            if let Some(t) = root.read_text(v6) {
                lines.extend(parse_table(&t));
            }
            Some(lines)
        };
        Sockets {
            tcp: table("/proc/net/tcp", "/proc/net/tcp6"),
            udp: table("/proc/net/udp", "/proc/net/udp6"),
        }
    }

    /// Listening TCP sockets and bound, unconnected UDP sockets (state CLOSE with no remote
    /// address: what a UDP server looks like).
    fn listeners(&self) -> Option<Vec<(Protocol, &SockLine)>> {
        let tcp = self.tcp.as_ref()?;
        let udp = self.udp.as_ref()?;
        let mut out: Vec<(Protocol, &SockLine)> = tcp
            .iter()
            .filter(|s| s.state == TCP_LISTEN)
            .map(|s| (Protocol::Tcp, s))
            .collect();
        out.extend(
            udp.iter()
                .filter(|s| s.state == TCP_CLOSE && s.remote.is_unspecified() && s.remote_port == 0)
                .map(|s| (Protocol::Udp, s)),
        );
        Some(out)
    }

    /// Listening sockets with their owners where the process table allows, one per
    /// (protocol, address, port), sorted.
    pub(crate) fn listening(
        &self,
        root: &Root,
        procs: Option<&[Process]>,
    ) -> Option<Vec<ListeningSocket>> {
        let listeners = self.listeners()?;
        let wanted: HashSet<u64> = listeners
            .iter()
            .map(|(_, s)| s.inode)
            .filter(|i| *i != 0)
            .collect();
        let owners = procs
            .map(|p| socket_owners(root, p, &wanted))
            .unwrap_or_default();
        let names: HashMap<u32, &str> = procs
            .unwrap_or_default()
            .iter()
            .map(|p| (p.pid, p.comm.as_str()))
            .collect();
        let mut seen = HashSet::new();
        let mut out: Vec<ListeningSocket> = Vec::new();
        let mut sorted = listeners;
        // Owned sockets first so that, of duplicates, the one with an owner is kept.
        sorted.sort_by_key(|(p, s)| (*p, s.local_port, s.local, !owners.contains_key(&s.inode)));
        for (protocol, s) in sorted {
            if !seen.insert((protocol, s.local, s.local_port)) {
                continue;
            }
            let pid = owners.get(&s.inode).copied();
            out.push(ListeningSocket {
                protocol,
                address: s.local.to_string(),
                port: s.local_port,
                process: pid.and_then(|p| names.get(&p)).map(|n| (*n).to_owned()),
                pid,
            });
        }
        (out.len() <= MAX_LIST).then_some(out)
    }
}

/// The telemetry counters of this moment.
pub(crate) fn counters(root: &Root) -> NetCounters {
    let sockets = Sockets::read(root);
    let established: Option<Vec<IpAddr>> = sockets.tcp.as_ref().map(|tcp| {
        tcp.iter()
            .filter(|s| s.state == TCP_ESTABLISHED)
            .map(|s| s.remote.to_canonical())
            // Loopback connections are the device talking to itself (and appear twice,
            // once per end), not network activity.
            .filter(|a| !a.is_loopback())
            .collect()
    });
    let listeners = sockets.listeners();
    let ports = |proto: Protocol| {
        listeners.as_ref().map(|l| {
            let set: BTreeSet<u16> = l
                .iter()
                .filter(|(p, _)| *p == proto)
                .map(|(_, s)| s.local_port)
                .collect();
            u32::try_from(set.len()).unwrap_or(u32::MAX)
        })
    };
    NetCounters {
        interfaces: root.read_text("/proc/net/dev").map(|t| parse_dev(&t)),
        established_connections: established
            .as_ref()
            .map(|e| u32::try_from(e.len()).unwrap_or(u32::MAX)),
        destinations: established.map(|e| e.into_iter().collect()),
        listening_tcp_ports: ports(Protocol::Tcp),
        listening_udp_ports: ports(Protocol::Udp),
    }
}

/// `/proc/net/dev` per interface, loopback left out. Old kernels write `eth0:123` with no
/// space after the colon, hence the split on the colon rather than on whitespace.
pub(crate) fn parse_dev(text: &str) -> BTreeMap<String, InterfaceCounters> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let name = name.trim();
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|n| n.parse().ok())
                .collect::<Option<Vec<u64>>>()?;
            if name == "lo" || name.is_empty() || f.len() < 10 {
                return None;
            }
            Some((
                name.to_owned(),
                InterfaceCounters {
                    bytes_in: f[0],
                    packets_in: f[1],
                    bytes_out: f[8],
                    packets_out: f[9],
                },
            ))
        })
        .collect()
}

/// Interfaces from `/sys/class/net` (or, without sysfs, the names in `/proc/net/dev`), with
/// hardware addresses and IP addresses.
pub(crate) fn interfaces(root: &Root) -> Option<Vec<NetworkInterface>> {
    let names = root.list("/sys/class/net").or_else(|| {
        let dev = root.read_text("/proc/net/dev")?;
        let mut names: Vec<String> = dev
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, _)| n.trim().to_owned())
            .filter(|n| !n.is_empty() && !n.contains(' ') && !n.contains('|'))
            .collect();
        names.sort();
        Some(names)
    })?;
    let mut addresses: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(text) = root.read_text("/proc/net/if_inet6") {
        for (name, addr) in parse_if_inet6(&text) {
            addresses.entry(name).or_default().push(addr);
        }
    }
    if let (Some(trie), Some(route)) = (
        root.read_text("/proc/net/fib_trie"),
        root.read_text("/proc/net/route"),
    ) {
        for (name, addr) in ipv4_addresses(&trie, &route) {
            addresses.entry(name).or_default().push(addr);
        }
    }
    let list: Vec<NetworkInterface> = names
        .into_iter()
        .filter_map(|name| {
            let name = clean(&name)?;
            let mac = root
                .read_value(&format!("/sys/class/net/{name}/address"))
                // Loopback and tunnels report all zeros: no hardware address.
                .filter(|m| m.chars().any(|c| c != '0' && c != ':'));
            let mut addrs = addresses.remove(&name).unwrap_or_default();
            addrs.sort();
            addrs.dedup();
            addrs.truncate(MAX_ADDRESSES);
            Some(NetworkInterface {
                name,
                mac,
                addresses: addrs,
            })
        })
        .collect();
    (list.len() <= MAX_LIST).then_some(list)
}

/// `/proc/net/if_inet6`: address (32 hex digits in network order), index, prefix length (hex),
/// scope, flags, name.
pub(crate) fn parse_if_inet6(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let hex = f.first()?;
            if hex.len() != 32 {
                return None;
            }
            let n = u128::from_str_radix(hex, 16).ok()?;
            let prefix = u8::from_str_radix(f.get(2)?, 16).ok()?;
            let name = clean(f.get(5)?)?;
            Some((name, format!("{}/{prefix}", Ipv6Addr::from(n))))
        })
        .collect()
}

/// IPv4 addresses per interface. `fib_trie` lists the device's own addresses (`/32 host
/// LOCAL` leaves) but not their interfaces; `route` lists the connected subnets per interface.
/// An address is attributed to the interface whose connected route (no gateway) is the longest
/// match, and left out when two interfaces tie or none matches (addresses configured with
/// `noprefixroute`, or loopback, whose route lives in the local table): unattributable, not
/// guessed.
pub(crate) fn ipv4_addresses(fib_trie: &str, route: &str) -> Vec<(String, String)> {
    let mut locals: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut leaf: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line
            .trim_start_matches(|c: char| c.is_whitespace() || c == '|' || c == '+' || c == '-');
        let t = t.trim();
        if line.trim_start().starts_with("|--") {
            leaf = t.parse().ok();
        } else if t.starts_with('/') {
            let words: Vec<&str> = t.split_whitespace().collect();
            if let (["/32", "host", "LOCAL"], Some(a)) = (words.as_slice(), leaf) {
                locals.insert(a);
            }
        } else {
            leaf = None;
        }
    }
    // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
    let routes: Vec<(String, u32, u32)> = route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let hex = |i: usize| {
                f.get(i)
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .map(|w| u32::from_be_bytes(w.to_ne_bytes()))
            };
            let (iface, dest, gateway, mask) = (f.first()?, hex(1)?, hex(2)?, hex(7)?);
            (gateway == 0 && mask != 0).then(|| ((*iface).to_owned(), dest, mask))
        })
        .collect();
    let mut out = Vec::new();
    for addr in locals {
        let a = u32::from(addr);
        let matching: Vec<&(String, u32, u32)> =
            routes.iter().filter(|(_, d, m)| a & m == *d).collect();
        let Some(best) = matching.iter().map(|(_, _, m)| m.count_ones()).max() else {
            continue;
        };
        let ifaces: BTreeSet<&str> = matching
            .iter()
            .filter(|(_, _, m)| m.count_ones() == best)
            .map(|(n, _, _)| n.as_str())
            .collect();
        if let [iface] = ifaces.into_iter().collect::<Vec<_>>().as_slice() {
            out.push(((*iface).to_owned(), format!("{addr}/{best}")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_decode() {
        assert_eq!(
            parse_endpoint("0100007F:0016"),
            Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 22))
        );
        assert_eq!(
            parse_endpoint("0A01A8C0:1F90"),
            Some(("192.168.1.10".parse().unwrap(), 8080))
        );
        assert_eq!(
            parse_endpoint("00000000000000000000000001000000:0277"),
            Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 631))
        );
        assert_eq!(
            parse_endpoint("B80D0120000000000000000001000000:01BB"),
            Some(("2001:db8::1".parse().unwrap(), 443))
        );
        assert_eq!(
            parse_endpoint("0000000000000000FFFF00000201A8C0:0050"),
            Some(("::ffff:192.168.1.2".parse().unwrap(), 80))
        );
        for bad in ["", "0100007F", "0100007G:0016", "01:0016", "0100007F:10000"] {
            assert_eq!(parse_endpoint(bad), None, "{bad}");
        }
    }

    #[test]
    fn fib_trie_join() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 127.0.0.0/8 2 0 2\n        +-- 127.0.0.0/31 1 0 0\n           |-- 127.0.0.0\n              /8 host LOCAL\n           |-- 127.0.0.1\n              /32 host LOCAL\n     +-- 192.168.1.0/24 2 0 2\n        |-- 192.168.1.0\n           /24 link UNICAST\n        |-- 192.168.1.10\n           /32 host LOCAL\n        |-- 192.168.1.255\n           /32 link BROADCAST\nLocal:\n        |-- 192.168.1.10\n           /32 host LOCAL\n        |-- 10.0.0.5\n           /32 host LOCAL\n";
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\nwg0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\nwg1\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n";
        assert_eq!(
            ipv4_addresses(trie, route),
            vec![("eth0".to_owned(), "192.168.1.10/24".to_owned())]
        );
    }
}
