//! Garrison's syslog intake: RFC 5424 and RFC 3164 messages over UDP, TCP and TLS (RFC 5425,
//! port 6514), turned into [`SyslogRecord`]s at the edge.
//!
//! Parsing is lenient (`syslog_loose`, the parser Vector uses): real senders bend both RFCs.
//! A line that is not syslog at all (no `<PRI>`) is still kept, as a record with
//! `parsed = false` and the whole line as its message, and counted — never dropped silently.
//! Stream transports (TCP, TLS) apply back-pressure: a reader waits for the consumer before
//! reading more, so a slow pipeline slows the sender instead of losing what TCP acknowledged.
//! UDP cannot be slowed; what does not fit the queue is counted as dropped.
#![forbid(unsafe_code)]

mod frame;
mod listen;

pub use frame::{FrameError, Framer};
pub use listen::{SyslogError, SyslogListeners, SyslogSettings};

use std::net::IpAddr;

/// How a record arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP datagram.
    Udp,
    /// Plain TCP stream.
    Tcp,
    /// TLS stream.
    Tls,
}

impl Transport {
    /// `udp`, `tcp` or `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// One syslog message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogRecord {
    /// When it arrived, Unix ms.
    pub received_at: i64,
    /// The sender's address.
    pub peer: IpAddr,
    /// How.
    pub transport: Transport,
    /// Whether it parsed as syslog (has a `<PRI>`); `false`: only `message` and `raw` are set.
    pub parsed: bool,
    /// `5424`, `3164`, or `None` when not parsed.
    pub protocol: Option<u16>,
    /// Facility name (`auth`, `authpriv`, `daemon`, `kern` …).
    pub facility: Option<&'static str>,
    /// Severity 0 (emergency) … 7 (debug).
    pub severity: Option<u8>,
    /// The message's own timestamp, Unix ms.
    pub timestamp: Option<i64>,
    /// HOSTNAME.
    pub hostname: Option<String>,
    /// APP-NAME / TAG (`sshd`).
    pub appname: Option<String>,
    /// PROCID.
    pub procid: Option<String>,
    /// MSGID.
    pub msgid: Option<String>,
    /// Structured data: `(SD-ID, [(name, value)])`.
    pub structured: Vec<(String, Vec<(String, String)>)>,
    /// MSG.
    pub message: String,
    /// The whole line as received (lossily decoded if it was not UTF-8).
    pub raw: String,
}

/// Parses one syslog line. Never fails: see [`SyslogRecord::parsed`].
pub fn parse(line: &[u8], peer: IpAddr, transport: Transport, received_at: i64) -> SyslogRecord {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n', '\0']);
    let mut record = SyslogRecord {
        received_at,
        peer,
        transport,
        parsed: false,
        protocol: None,
        facility: None,
        severity: None,
        timestamp: None,
        hostname: None,
        appname: None,
        procid: None,
        msgid: None,
        structured: Vec::new(),
        message: text.to_owned(),
        raw: text.to_owned(),
    };
    // Without a PRI it is not syslog; syslog_loose would still guess fields from any text.
    if !has_pri(text) {
        return record;
    }
    let m = syslog_loose::parse_message(text, syslog_loose::Variant::Either);
    record.parsed = true;
    record.protocol = Some(match m.protocol {
        syslog_loose::Protocol::RFC5424(_) => 5424,
        syslog_loose::Protocol::RFC3164 => 3164,
    });
    record.facility = m.facility.map(|f| f.as_str());
    record.severity = m.severity.map(|s| s as u8);
    record.timestamp = m.timestamp.map(|t| t.timestamp_millis());
    record.hostname = m.hostname.map(str::to_owned);
    record.appname = m.appname.map(str::to_owned);
    record.procid = m.procid.map(|p| p.to_string());
    record.msgid = m.msgid.map(str::to_owned);
    record.structured = m
        .structured_data
        .iter()
        .map(|e| {
            (
                e.id.to_owned(),
                e.params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        })
        .collect();
    record.message = m.msg.to_owned();
    record
}

fn has_pri(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('<') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (1..=3).contains(&digits) && rest.as_bytes().get(digits) == Some(&b'>')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(line: &str) -> SyslogRecord {
        parse(
            line.as_bytes(),
            "127.0.0.1".parse().unwrap(),
            Transport::Udp,
            0,
        )
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let r = p(
            r#"<38>1 2026-12-04T10:00:00.123Z cam-7 sshd 4242 AUTH [meta sequenceId="1"] Failed password for root from 203.0.113.9 port 4242 ssh2"#,
        );
        assert!(r.parsed);
        assert_eq!(r.protocol, Some(5424));
        assert_eq!(r.facility, Some("auth"));
        assert_eq!(r.severity, Some(6));
        assert_eq!(r.hostname.as_deref(), Some("cam-7"));
        assert_eq!(r.appname.as_deref(), Some("sshd"));
        assert_eq!(r.procid.as_deref(), Some("4242"));
        assert_eq!(r.msgid.as_deref(), Some("AUTH"));
        assert_eq!(r.timestamp, Some(1_796_378_400_123));
        assert_eq!(
            r.structured,
            [(
                "meta".to_owned(),
                vec![("sequenceId".to_owned(), "1".to_owned())]
            )]
        );
        assert!(r.message.starts_with("Failed password for root"));
    }

    #[test]
    fn rfc3164() {
        let r = p("<86>Dec  4 10:00:00 gw-1 sshd[311]: Accepted publickey for ops from 10.0.0.2");
        assert!(r.parsed);
        assert_eq!(r.protocol, Some(3164));
        assert_eq!(r.facility, Some("authpriv"));
        assert_eq!(r.hostname.as_deref(), Some("gw-1"));
        assert_eq!(r.appname.as_deref(), Some("sshd"));
        assert_eq!(r.procid.as_deref(), Some("311"));
        assert_eq!(r.message, "Accepted publickey for ops from 10.0.0.2");
    }

    #[test]
    fn not_syslog_is_kept_raw() {
        for line in ["hello there", "<x>1 nope", "<1234>too big", ""] {
            let r = p(line);
            assert!(!r.parsed, "{line}");
            assert_eq!(r.message, line);
            assert_eq!(r.raw, line);
        }
        let r = parse(
            b"<13>bad \xff utf8",
            "::1".parse().unwrap(),
            Transport::Tcp,
            0,
        );
        assert!(r.parsed);
        assert!(r.raw.contains('\u{fffd}'));
    }
}
