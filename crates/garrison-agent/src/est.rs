//! The EST client (RFC 7030): a CSR out, a certificate back.
//!
//! `simpleenroll` authenticates with a bootstrap token (HTTP Basic, the device id as user) or
//! a claim certificate (TLS client certificate), or with nothing, in which case the server may
//! answer 202 with `Retry-After` while an operator approves the request. `simplereenroll`
//! authenticates with the device's current certificate. Bodies are base64 DER: a PKCS#10 CSR
//! in, a PKCS#7 "certs-only" SignedData out, from which the first certificate is taken.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use garrison_core::DeviceId;

/// What can go wrong enrolling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EstError {
    /// The request could not be made or answered.
    #[error("EST request to {url} failed: {detail}")]
    Transport {
        /// The URL.
        url: String,
        /// What happened.
        detail: String,
    },
    /// The server refused (4xx/5xx) with this message.
    #[error("the server refused the enrollment ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The answer was not a PKCS#7 certs-only structure with a certificate.
    #[error("the server's answer is not a PKCS#7 certificate: {0}")]
    BadResponse(String),
    /// A CSR could not be made.
    #[error("cannot make a CSR: {0}")]
    Csr(String),
    /// The TLS identity or trust anchors are unusable.
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// How a `simpleenroll` authenticates.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A bootstrap token (`gbt_…`).
    Token(String),
    /// A claim certificate and its key (PEM), presented as TLS client certificate.
    Claim {
        /// Certificate chain, PEM.
        cert_pem: String,
        /// Key, PEM.
        key_pem: String,
    },
    /// Nothing: the request waits for an operator's approval.
    None,
}

/// The server's answer to an enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrolled {
    /// The certificate, PEM.
    Issued(String),
    /// Waiting for approval; ask again after this long.
    Pending(Duration),
}

/// Makes a PKCS#10 CSR (DER) for `device` signed by `key_pem`.
pub fn make_csr(device: &DeviceId, key_pem: &str) -> Result<Vec<u8>, EstError> {
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| EstError::Csr(e.to_string()))?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, device.as_str());
    let csr = params
        .serialize_request(&key)
        .map_err(|e| EstError::Csr(e.to_string()))?;
    Ok(csr.der().to_vec())
}

/// An EST client for one server.
#[derive(Debug, Clone)]
pub struct EstClient {
    base: String,
    ca_pem: Vec<u8>,
    timeout: Duration,
}

impl EstClient {
    /// A client for the server at `base` (`https://host:8443`) trusting `ca_pem`.
    pub fn new(base: &str, ca_pem: Vec<u8>) -> EstClient {
        EstClient {
            base: base.trim_end_matches('/').to_owned(),
            ca_pem,
            timeout: Duration::from_secs(30),
        }
    }

    /// The server's base address (`https://host:8443`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// An HTTPS client for this server, presenting `identity` (certificate and key PEM) when
    /// given.
    pub fn http(&self, identity: Option<(&str, &str)>) -> Result<reqwest::Client, EstError> {
        let roots = reqwest::Certificate::from_pem_bundle(&self.ca_pem)
            .map_err(|e| EstError::Tls(format!("the CA file is not PEM certificates: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .tls_certs_only(roots)
            .timeout(self.timeout)
            .https_only(true);
        if let Some((cert, key)) = identity {
            let pem = format!("{cert}\n{key}");
            let id = reqwest::Identity::from_pem(pem.as_bytes())
                .map_err(|e| EstError::Tls(format!("client certificate: {e}")))?;
            builder = builder.identity(id);
        }
        builder.build().map_err(|e| EstError::Tls(e.to_string()))
    }

    /// `simpleenroll` for `device` with `credential`.
    pub async fn enroll(
        &self,
        device: &DeviceId,
        csr_der: &[u8],
        credential: &Credential,
    ) -> Result<Enrolled, EstError> {
        let identity = match credential {
            Credential::Claim { cert_pem, key_pem } => Some((cert_pem.as_str(), key_pem.as_str())),
            _ => None,
        };
        let client = self.http(identity)?;
        let url = format!("{}/.well-known/est/simpleenroll", self.base);
        let mut request = client
            .post(&url)
            .header("Content-Type", "application/pkcs10")
            .body(STANDARD.encode(csr_der));
        if let Credential::Token(token) = credential {
            request = request.basic_auth(device.as_str(), Some(token));
        }
        self.send(request, &url).await
    }

    /// `simplereenroll` with the current certificate and key; `csr_der` may carry a new key.
    pub async fn reenroll(
        &self,
        csr_der: &[u8],
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Enrolled, EstError> {
        let client = self.http(Some((cert_pem, key_pem)))?;
        let url = format!("{}/.well-known/est/simplereenroll", self.base);
        let request = client
            .post(&url)
            .header("Content-Type", "application/pkcs10")
            .body(STANDARD.encode(csr_der));
        self.send(request, &url).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<Enrolled, EstError> {
        let transport = |e: reqwest::Error| EstError::Transport {
            url: url.to_owned(),
            detail: e.to_string(),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        if status == 202 {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(60)
                .clamp(1, 3600);
            return Ok(Enrolled::Pending(Duration::from_secs(wait)));
        }
        let body = response.bytes().await.map_err(transport)?;
        if status != 200 {
            let text = String::from_utf8_lossy(&body);
            // Garrison answers JSON errors; other servers plain text.
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(EstError::Refused { status, message });
        }
        let text: String = String::from_utf8_lossy(&body)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = STANDARD
            .decode(text.as_bytes())
            .map_err(|_| EstError::BadResponse("not base64".into()))?;
        let cert = first_certificate(&der)
            .ok_or_else(|| EstError::BadResponse("no certificate in the SignedData".into()))?;
        Ok(Enrolled::Issued(pem("CERTIFICATE", cert)))
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// One DER TLV: (tag, contents, rest). Bounds-checked; `None` on anything malformed.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The whole TLV (header included) of the first element of `input`.
fn whole(input: &[u8]) -> Option<&[u8]> {
    let (_, contents, rest) = tlv(input)?;
    let _ = contents;
    Some(&input[..input.len() - rest.len()])
}

/// The first certificate of a PKCS#7 certs-only `ContentInfo`.
pub fn first_certificate(der: &[u8]) -> Option<&[u8]> {
    const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    let (0x30, content_info, _) = tlv(der)? else {
        return None;
    };
    let (0x06, oid, rest) = tlv(content_info)? else {
        return None;
    };
    if oid != SIGNED_DATA {
        return None;
    }
    let (0xa0, explicit, _) = tlv(rest)? else {
        return None;
    };
    let (0x30, signed_data, _) = tlv(explicit)? else {
        return None;
    };
    let (0x02, _version, rest) = tlv(signed_data)? else {
        return None;
    };
    let (0x31, _digests, rest) = tlv(rest)? else {
        return None;
    };
    let (0x30, _encap, rest) = tlv(rest)? else {
        return None;
    };
    let (0xa0, certificates, _) = tlv(rest)? else {
        return None;
    };
    let cert = whole(certificates)?;
    (cert.first() == Some(&0x30)).then_some(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_foreign_structures_are_refused() {
        assert_eq!(first_certificate(&[]), None);
        assert_eq!(first_certificate(&[0x30, 0x82, 0xff, 0xff]), None);
        assert_eq!(first_certificate(&[0x30, 0x03, 0x06, 0x01, 0x01]), None);
        // A plain certificate is not a SignedData.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(first_certificate(cert.der()), None);
    }

    #[test]
    fn the_certificate_comes_out_of_garrisons_pkcs7() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let p7 = garrison_pki::pkcs7_certs_only(&[cert.der().clone()]);
        assert_eq!(first_certificate(&p7), Some(&cert.der()[..]));
        assert_eq!(first_certificate(&p7[..p7.len() - 1]), None, "truncated");
    }

    #[test]
    fn csr_names_the_device() {
        let key = crate::keystore::generate_key().unwrap();
        let der = make_csr(&DeviceId::new("cam-1").unwrap(), &key).unwrap();
        let text = format!("{der:02x?}");
        assert!(
            !der.is_empty() && text.contains("63, 61, 6d, 2d, 31"),
            "CN=cam-1 in the CSR"
        );
    }
}
