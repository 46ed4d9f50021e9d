//! Forwarding alerts to an external SIEM: one RFC 5424 syslog message per alert, over TLS
//! (RFC 5425, octet-counting framing) or — to this machine only, for a local relay — plain TCP
//! (RFC 6587), carrying ArcSight CEF or an OCSF Detection Finding (class 2004) as JSON.
//!
//! A connection per forwarded alert: response actions are rare, and a fresh connection cannot
//! be left half-broken by an earlier failure. The server is verified against the `ca_file`
//! given in the playbook, or else the platform's trust store.

use std::{sync::Arc, time::Duration};

use garrison_core::Severity;
use garrison_store::monitor::Alert;
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::{io::AsyncWriteExt, net::TcpStream};

/// What a forwarded alert is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiemFormat {
    /// ArcSight Common Event Format.
    Cef,
    /// OCSF 1.x Detection Finding, as JSON.
    Ocsf,
}

impl SiemFormat {
    /// The stable name (`cef`, `ocsf`).
    pub fn as_str(self) -> &'static str {
        match self {
            SiemFormat::Cef => "cef",
            SiemFormat::Ocsf => "ocsf",
        }
    }

    /// The format by name.
    pub fn parse(name: &str) -> Option<SiemFormat> {
        match name {
            "cef" => Some(SiemFormat::Cef),
            "ocsf" => Some(SiemFormat::Ocsf),
            _ => None,
        }
    }
}

/// Where forwarded alerts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiemTarget {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS (`syslog+tls://`) or plain TCP (`syslog+tcp://`, loopback only).
    pub tls: bool,
}

impl SiemTarget {
    /// Reads `syslog+tls://HOST:PORT` or `syslog+tcp://127.0.0.1:PORT`.
    pub fn parse(url: &str) -> Result<SiemTarget, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("syslog+tls://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("syslog+tcp://") {
            (false, rest)
        } else {
            return Err(format!(
                "SIEM url {url:?} must be syslog+tls://HOST:PORT (or syslog+tcp://127.0.0.1:PORT to a local relay)"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("SIEM url {url:?} names no port (6514 is syslog over TLS)"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port: u16 = port
            .parse()
            .map_err(|_| format!("SIEM url {url:?}: {port:?} is not a port"))?;
        if host.is_empty() {
            return Err(format!("SIEM url {url:?} names no host"));
        }
        if !tls && !is_loopback(&host) {
            return Err(format!(
                "SIEM url {url:?}: alerts leave this machine only over TLS (syslog+tls://)"
            ));
        }
        Ok(SiemTarget { host, port, tls })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The syslog message (without framing) for `alert`.
pub fn message(alert: &Alert, format: SiemFormat, hostname: &str) -> String {
    let severity = match alert.severity {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Info => 6,
    };
    // Facility 13, log audit: alerts are the security record, not the server's own log.
    let pri = 13 * 8 + severity;
    let timestamp = garrison_core::format_ms(alert.last_seen);
    let body = match format {
        SiemFormat::Cef => cef(alert),
        SiemFormat::Ocsf => ocsf(alert).to_string(),
    };
    format!(
        "<{pri}>1 {timestamp} {hostname} garrison - {} - {body}",
        match format {
            SiemFormat::Cef => "CEF",
            SiemFormat::Ocsf => "OCSF",
        }
    )
}

/// `CEF:0|Garrison|Garrison|VERSION|rule|title|severity|extensions`.
pub fn cef(alert: &Alert) -> String {
    let header = |text: &str| text.replace('\\', "\\\\").replace('|', "\\|");
    let value = |text: &str| {
        text.replace('\\', "\\\\")
            .replace('=', "\\=")
            .replace('\r', "\\r")
            .replace('\n', "\\n")
    };
    let severity = match alert.severity {
        Severity::Info => 1,
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    };
    let mut extensions = vec![
        format!("rt={}", alert.last_seen),
        format!("start={}", alert.first_seen),
        format!("externalId={}", value(&alert.id)),
        format!("cnt={}", alert.occurrences),
        format!("outcome={}", alert.status.as_str()),
    ];
    if let Some(device) = &alert.device {
        extensions.push(format!("dvchost={}", value(device.as_str())));
    }
    if !alert.techniques.is_empty() {
        extensions.push("cs1Label=mitreTechniques".to_owned());
        extensions.push(format!("cs1={}", value(&alert.techniques.join(","))));
    }
    if !alert.tags.is_empty() {
        extensions.push(format!("cat={}", value(&alert.tags.join(","))));
    }
    format!(
        "CEF:0|Garrison|Garrison|{}|{}|{}|{severity}|{}",
        env!("CARGO_PKG_VERSION"),
        header(&alert.rule_id),
        header(&alert.title),
        extensions.join(" ")
    )
}

/// An OCSF Detection Finding (class 2004).
pub fn ocsf(alert: &Alert) -> serde_json::Value {
    let severity_id = match alert.severity {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    };
    serde_json::json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "time": alert.last_seen,
        "severity_id": severity_id,
        "severity": alert.severity.as_str(),
        "status": alert.status.as_str(),
        "count": alert.occurrences,
        "metadata": {
            "version": "1.3.0",
            "product": {"name": "Garrison", "vendor_name": "Garrison", "version": env!("CARGO_PKG_VERSION")},
        },
        "finding_info": {
            "uid": alert.id,
            "title": alert.title,
            "analytic": {"uid": alert.rule_id, "name": alert.title, "type_id": 1, "type": "Rule"},
            "attacks": alert.techniques.iter().map(|t| serde_json::json!({"technique": {"uid": t}})).collect::<Vec<_>>(),
            "types": alert.tags,
            "first_seen_time": alert.first_seen,
            "last_seen_time": alert.last_seen,
        },
        "device": alert.device.as_ref().map(|d| serde_json::json!({"uid": d.as_str(), "name": d.as_str()})),
        "evidences": [alert.evidence],
    })
}

/// Sends alerts to SIEMs.
#[derive(Debug, Clone, Default)]
pub struct SiemForwarder;

impl SiemForwarder {
    /// Sends `alert` to `url` as `format`, trusting `ca_file` (PEM) or the platform's roots.
    /// Returns what it did, for the response's detail.
    pub async fn send(
        &self,
        url: &str,
        format: SiemFormat,
        ca_file: Option<&str>,
        alert: &Alert,
    ) -> Result<String, String> {
        let target = SiemTarget::parse(url)?;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty() && h.is_ascii())
            .unwrap_or_else(|| "garrison".into());
        let line = message(alert, format, &hostname);
        let frame = format!("{} {line}", line.len());
        let deadline = Duration::from_secs(5);
        let stream = tokio::time::timeout(
            deadline,
            TcpStream::connect((target.host.as_str(), target.port)),
        )
        .await
        .map_err(|_| format!("{url}: no connection within 5 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
        let write = async {
            if target.tls {
                let config = client_config(ca_file)?;
                let name =
                    ServerName::try_from(target.host.clone()).map_err(|e| format!("{url}: {e}"))?;
                let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("{url}: TLS: {e}"))?;
                tls.write_all(frame.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                tls.shutdown().await.map_err(|e| e.to_string())
            } else {
                let mut stream = stream;
                stream
                    .write_all(frame.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                stream.shutdown().await.map_err(|e| e.to_string())
            }
        };
        tokio::time::timeout(deadline, write)
            .await
            .map_err(|_| format!("{url}: not delivered within 5 s"))?
            .map_err(|e| format!("{url}: {e}"))?;
        metrics::counter!("garrison_monitor_siem_forwarded_total", "format" => format.as_str())
            .increment(1);
        Ok(format!(
            "forwarded to {url} as {} ({} bytes)",
            format.as_str(),
            frame.len()
        ))
    }
}

fn client_config(ca_file: Option<&str>) -> Result<rustls::ClientConfig, String> {
    match ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("ca_file {path}: {e}"))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("ca_file {path}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("ca_file {path} holds no certificate"));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {path}: {e}"))?;
            }
            Ok(rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth())
        }
        None => {
            use rustls_platform_verifier::ConfigVerifierExt;
            rustls::ClientConfig::with_platform_verifier()
                .map_err(|e| format!("the platform's trust store: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use garrison_core::{DeviceId, TenantId};
    use garrison_store::monitor::AlertStatus;

    fn alert() -> Alert {
        Alert {
            id: "0193-alert".into(),
            tenant: TenantId::default(),
            dedup_key: "k".into(),
            rule_id: "telnet|brute".into(),
            title: "Telnet brute force = bad".into(),
            severity: Severity::High,
            device: Some(DeviceId::new("cam-1").unwrap()),
            status: AlertStatus::New,
            techniques: vec!["T1110.001".into(), "T0812".into()],
            tags: vec!["attack.credential-access".into()],
            first_seen: 1_800_000_000_000,
            last_seen: 1_800_000_060_000,
            occurrences: 7,
            evidence: serde_json::json!({"event": {"kind": "login_failed"}}),
            updated_at: 0,
        }
    }

    #[test]
    fn cef_escapes_header_and_extension_values() {
        let text = cef(&alert());
        assert!(text.starts_with("CEF:0|Garrison|Garrison|"), "{text}");
        assert!(
            text.contains("|telnet\\|brute|Telnet brute force = bad|8|"),
            "{text}"
        );
        assert!(text.contains(" dvchost=cam-1"), "{text}");
        assert!(text.contains(" cs1=T1110.001,T0812"), "{text}");
        assert!(
            text.contains("rt=1800000060000 start=1800000000000"),
            "{text}"
        );
        assert!(text.contains(" cnt=7"), "{text}");
        let mut odd = alert();
        odd.device = None;
        odd.tags = vec!["a=b\nc".into()];
        assert!(cef(&odd).ends_with("cat=a\\=b\\nc"), "{}", cef(&odd));
    }

    #[test]
    fn ocsf_is_a_detection_finding() {
        let v = ocsf(&alert());
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["type_uid"], 200401);
        assert_eq!(v["severity_id"], 4);
        assert_eq!(v["finding_info"]["analytic"]["uid"], "telnet|brute");
        assert_eq!(v["finding_info"]["attacks"][1]["technique"]["uid"], "T0812");
        assert_eq!(v["device"]["uid"], "cam-1");
        let line = message(&alert(), SiemFormat::Ocsf, "gw");
        assert!(line.starts_with("<107>1 "), "{line}");
        assert!(line.contains(" gw garrison - OCSF - {"), "{line}");
    }

    #[test]
    fn targets_are_tls_unless_local() {
        assert_eq!(
            SiemTarget::parse("syslog+tls://siem.example:6514").unwrap(),
            SiemTarget {
                host: "siem.example".into(),
                port: 6514,
                tls: true
            }
        );
        assert!(!SiemTarget::parse("syslog+tcp://127.0.0.1:514").unwrap().tls);
        assert!(SiemTarget::parse("syslog+tcp://[::1]:514").is_ok());
        for (bad, needle) in [
            ("syslog+tcp://siem.example:514", "only over TLS"),
            ("https://siem.example/", "must be syslog+tls"),
            ("syslog+tls://siem.example", "no port"),
            ("syslog+tls://siem.example:x", "not a port"),
            ("syslog+tls://:6514", "no host"),
        ] {
            let err = SiemTarget::parse(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
