//! Device certificates: reading certificate signing requests, issuing from them, claim
//! certificates, certificate revocation lists, and the PKCS#7 "certs-only" envelope EST uses.
//!
//! A device's private key never reaches the server: the device sends a CSR, and only the
//! public key and the subject CN are taken from it. Everything else in the certificate (key
//! usage, validity, serial) is decided here, whatever extensions the CSR asked for.

use garrison_core::DeviceId;
use rcgen::{
    CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256, PublicKeyData, RevocationReason,
    RevokedCertParams, SerialNumber, SignatureAlgorithm,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::{
    certification_request::X509CertificationRequest, prelude::FromDer,
    public_key::PublicKey as ParsedKey,
};

use crate::{CertificateAuthority, PkiError, ca::random_serial, certificate_fingerprint};

/// Largest CSR accepted. A P-256 CSR is ~400 bytes and an RSA-4096 one ~1.7 KB.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// Why a CSR was refused. Each says what the device (or its operator) should fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Larger than [`MAX_CSR_BYTES`].
    #[error("the CSR is larger than {MAX_CSR_BYTES} bytes")]
    TooLarge,
    /// Not base64, PEM or DER of a PKCS#10 request.
    #[error("the body is not a PKCS#10 certificate request (expected base64 DER, PEM or DER)")]
    Malformed,
    /// The request's self-signature does not verify: it was altered or forged.
    #[error("the CSR signature does not verify")]
    BadSignature,
    /// No subject CN.
    #[error("the CSR subject has no common name (CN); set CN to the device id")]
    MissingCommonName,
    /// The CN is not a valid device id.
    #[error("the CSR common name is not a valid device id: {0}")]
    BadCommonName(String),
    /// A key type or size Garrison does not issue for.
    #[error(
        "unsupported key {0}: use ECDSA P-256 (recommended), P-384, Ed25519 or RSA of at least 2048 bits"
    )]
    UnsupportedKey(String),
}

/// The parts of a verified CSR that Garrison uses.
#[derive(Debug, Clone)]
pub struct DeviceCsr {
    /// The subject CN, validated as a device id.
    pub device_id: DeviceId,
    /// SHA-256 of the SubjectPublicKeyInfo, hex: the key's identity across requests.
    pub public_key_sha256: String,
    /// A short name of the key type (`ecdsa-p256`).
    pub key_type: &'static str,
    /// The request as PEM, for the approval queue.
    pub pem: String,
    key: CsrPublicKey,
}

#[derive(Debug, Clone)]
struct CsrPublicKey {
    raw: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for CsrPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// Decodes EST's base64 body, PEM, or raw DER into DER bytes.
fn csr_der(body: &[u8]) -> Result<Vec<u8>, CsrError> {
    use base64::Engine;
    if body.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge);
    }
    if body.first() == Some(&0x30) {
        return Ok(body.to_vec());
    }
    let text = std::str::from_utf8(body).map_err(|_| CsrError::Malformed)?;
    let b64: String = if text.contains("-----BEGIN") {
        text.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat()
    } else {
        text.split_whitespace().collect()
    };
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| CsrError::Malformed)
}

fn pem_wrap(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl DeviceCsr {
    /// Parses and verifies a CSR from an EST body (base64 DER), PEM, or DER. Requested
    /// extensions are ignored rather than refused: stock clients add some, and none of them
    /// decide anything here.
    pub fn parse(body: &[u8]) -> Result<DeviceCsr, CsrError> {
        let der = csr_der(body)?;
        let (rest, csr) =
            X509CertificationRequest::from_der(&der).map_err(|_| CsrError::Malformed)?;
        if !rest.is_empty() {
            return Err(CsrError::Malformed);
        }
        csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
        let info = &csr.certification_request_info;
        let cn = info
            .subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .ok_or(CsrError::MissingCommonName)?;
        let device_id = DeviceId::new(cn).map_err(|e| CsrError::BadCommonName(e.to_string()))?;
        let spki = &info.subject_pki;
        let parsed = spki
            .parsed()
            .map_err(|_| CsrError::UnsupportedKey("that cannot be read".into()))?;
        let (alg, key_type): (&'static SignatureAlgorithm, &'static str) = match parsed {
            ParsedKey::EC(point) => match point.key_size() {
                256 => (&PKCS_ECDSA_P256_SHA256, "ecdsa-p256"),
                384 => (&PKCS_ECDSA_P384_SHA384, "ecdsa-p384"),
                bits => return Err(CsrError::UnsupportedKey(format!("EC {bits}-bit"))),
            },
            ParsedKey::RSA(rsa) if rsa.key_size() >= 2048 => (&PKCS_RSA_SHA256, "rsa"),
            ParsedKey::RSA(rsa) => {
                return Err(CsrError::UnsupportedKey(format!(
                    "RSA {}-bit",
                    rsa.key_size()
                )));
            }
            _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => {
                (&PKCS_ED25519, "ed25519")
            }
            _ => {
                return Err(CsrError::UnsupportedKey(
                    spki.algorithm.algorithm.to_id_string(),
                ));
            }
        };
        Ok(DeviceCsr {
            device_id,
            public_key_sha256: hex_sha256(spki.raw),
            key_type,
            pem: pem_wrap("CERTIFICATE REQUEST", &der),
            key: CsrPublicKey {
                raw: spki.subject_public_key.data.to_vec(),
                alg,
            },
        })
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A certificate Garrison just issued.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
    /// The certificate, PEM.
    pub pem: String,
    /// Serial number, lowercase hex without separators.
    pub serial: String,
    /// SHA-256 fingerprint (`AA:BB:…`).
    pub fingerprint: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// A shared claim certificate with its private key, which the factory installs on devices.
pub struct IssuedClaim {
    /// The certificate.
    pub certificate: IssuedCertificate,
    /// The private key, PKCS#8 PEM. Shown once; Garrison keeps no copy.
    pub key_pem: String,
}

/// One entry of a CRL.
#[derive(Debug, Clone)]
pub struct RevokedSerial {
    /// Serial, lowercase hex.
    pub serial: String,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: garrison_core::device::RevocationReason,
}

/// A signed CRL.
pub struct SignedCrl {
    /// DER encoding (`application/pkix-crl`).
    pub der: Vec<u8>,
    /// PEM encoding.
    pub pem: String,
}

fn client_params(
    common_name: &str,
    validity: Duration,
) -> Result<(CertificateParams, SerialNumber), PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = OffsetDateTime::now_utc();
    // A little back-dating tolerates devices whose clocks run slightly behind.
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + validity;
    let serial = random_serial()?;
    params.serial_number = Some(serial.clone());
    params.use_authority_key_identifier_extension = true;
    Ok((params, serial))
}

fn serial_hex(serial: &SerialNumber) -> String {
    serial.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn serial_from_hex(hex: &str) -> Result<SerialNumber, PkiError> {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| PkiError::Pem {
            what: "serial number".into(),
            detail: format!("{hex:?} is not hex"),
        })?;
    Ok(SerialNumber::from_slice(&bytes))
}

impl CertificateAuthority {
    /// Issues a device certificate for the key in `csr`, with CN = the CSR's device id and
    /// client-authentication usage only.
    pub fn issue_device(
        &self,
        csr: &DeviceCsr,
        validity: Duration,
    ) -> Result<IssuedCertificate, PkiError> {
        let (params, serial) = client_params(csr.device_id.as_str(), validity)?;
        let cert = params.signed_by(&csr.key, self.issuer())?;
        Ok(IssuedCertificate {
            fingerprint: certificate_fingerprint(cert.der()),
            pem: cert.pem(),
            der: cert.der().clone(),
            serial: serial_hex(&serial),
            not_before: params.not_before,
            not_after: params.not_after,
        })
    }

    /// Issues a claim certificate named `name` (CN `claim:<name>`), generating its key here
    /// because it is a shared factory secret rather than one device's identity.
    pub fn issue_claim(&self, name: &str, validity: Duration) -> Result<IssuedClaim, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let (params, serial) = client_params(&format!("claim:{name}"), validity)?;
        let cert = params.signed_by(&key, self.issuer())?;
        Ok(IssuedClaim {
            certificate: IssuedCertificate {
                fingerprint: certificate_fingerprint(cert.der()),
                pem: cert.pem(),
                der: cert.der().clone(),
                serial: serial_hex(&serial),
                not_before: params.not_before,
                not_after: params.not_after,
            },
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a CRL listing `revoked`, numbered `crl_number` (which must grow with each CRL),
    /// valid until `next_update`.
    pub fn sign_crl(
        &self,
        revoked: &[RevokedSerial],
        crl_number: u64,
        next_update: Duration,
    ) -> Result<SignedCrl, PkiError> {
        use garrison_core::device::RevocationReason as R;
        let now = OffsetDateTime::now_utc();
        let revoked_certs = revoked
            .iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: serial_from_hex(&r.serial)?,
                    revocation_time: r.revoked_at,
                    reason_code: Some(match r.reason {
                        R::Unspecified => RevocationReason::Unspecified,
                        R::KeyCompromise => RevocationReason::KeyCompromise,
                        R::AffiliationChanged => RevocationReason::AffiliationChanged,
                        R::Superseded => RevocationReason::Superseded,
                        R::CessationOfOperation => RevocationReason::CessationOfOperation,
                        R::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
                    }),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(1),
            next_update: now + next_update,
            crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(self.issuer())?;
        Ok(SignedCrl {
            der: crl.der().to_vec(),
            pem: crl.pem()?,
        })
    }
}

/// The certificates as a degenerate PKCS#7 SignedData ("certs-only", RFC 7030 §4.1.3 and
/// RFC 5652 §5): no content, no signers, just the certificate set.
///
/// Written with `yasna` (already in the tree through rcgen): the structure is six fixed fields,
/// and the `cms` crate would bring a second X.509 stack for them.
pub fn pkcs7_certs_only(certs: &[CertificateDer<'_>]) -> Vec<u8> {
    use yasna::{Tag, models::ObjectIdentifier};
    let signed_data = ObjectIdentifier::from_slice(&[1, 2, 840, 113549, 1, 7, 2]);
    let data = ObjectIdentifier::from_slice(&[1, 2, 840, 113549, 1, 7, 1]);
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&signed_data);
            w.next().write_tagged(Tag::context(0), |w| {
                w.write_sequence(|w| {
                    w.next().write_u8(1); // version
                    w.next().write_set(|_| {}); // digestAlgorithms
                    w.next().write_sequence(|w| w.next().write_oid(&data));
                    w.next().write_tagged_implicit(Tag::context(0), |w| {
                        w.write_set(|w| {
                            for cert in certs {
                                w.next().write_der(cert.as_ref());
                            }
                        })
                    });
                    w.next().write_set(|_| {}); // signerInfos
                })
            });
        })
    })
}

/// The EST CSR attributes (RFC 7030 §4.5) Garrison asks for: an ECDSA P-256 key
/// (`id-ecPublicKey` with `secp256r1`) and `ecdsa-with-SHA256` signatures, as DER.
pub fn csr_attributes() -> Vec<u8> {
    use yasna::models::ObjectIdentifier;
    let ecdsa_with_sha256 = ObjectIdentifier::from_slice(&[1, 2, 840, 10045, 4, 3, 2]);
    let ec_public_key = ObjectIdentifier::from_slice(&[1, 2, 840, 10045, 2, 1]);
    let secp256r1 = ObjectIdentifier::from_slice(&[1, 2, 840, 10045, 3, 1, 7]);
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&ecdsa_with_sha256);
            w.next().write_sequence(|w| {
                w.next().write_oid(&ec_public_key);
                w.next().write_set(|w| w.next().write_oid(&secp256r1));
            });
        })
    })
}

/// What Garrison reads from a client certificate it is shown (EST re-enrollment, the broker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject CN.
    pub common_name: String,
    /// Serial, lowercase hex (the form the store keys certificates by).
    pub serial: String,
    /// End of validity, Unix milliseconds.
    pub not_after_ms: i64,
}

/// Reads CN, serial and expiry from a DER certificate the TLS layer has already verified.
pub fn read_peer_certificate(der: &[u8]) -> Option<PeerCertificate> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    let serial = cert
        .raw_serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(PeerCertificate {
        common_name,
        serial,
        not_after_ms: cert.validity().not_after.timestamp().saturating_mul(1000),
    })
}

/// The public key of a certificate, as the posture audit judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateKey {
    /// `ecdsa`, `rsa`, `ed25519` or the algorithm's OID.
    pub algorithm: String,
    /// Key size in bits (Ed25519: 256).
    pub bits: u32,
    /// SHA-256 over the algorithm and the key's defining value, lowercase hex: equal for every
    /// certificate of one key pair whatever its subject *and* however the key is encoded — an
    /// EC key by its X coordinate (compressed and uncompressed points, explicit or named
    /// curve parameters alike; a point and its negation share it, and so do their private
    /// keys' holders), RSA by its modulus, Ed25519 by its 32 bytes, anything else by its
    /// SubjectPublicKeyInfo.
    pub fingerprint: String,
}

/// Reads the public key type and size of a PEM (or DER) certificate.
pub fn certificate_key(pem_or_der: &[u8]) -> Option<CertificateKey> {
    let der = if pem_or_der.starts_with(b"-----") {
        x509_parser::pem::parse_x509_pem(pem_or_der)
            .ok()?
            .1
            .contents
    } else {
        pem_or_der.to_vec()
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let spki = cert.public_key();
    let (algorithm, bits, material) = match spki.parsed().ok()? {
        ParsedKey::EC(point) => {
            let data = point.data();
            // SEC 1: 0x04 ‖ X ‖ Y, or 0x02/0x03 ‖ X.
            let x_len = match data.first() {
                Some(0x04) => data.len().saturating_sub(1) / 2,
                _ => data.len().saturating_sub(1),
            };
            let x = data.get(1..1 + x_len).unwrap_or(data);
            ("ecdsa".to_owned(), point.key_size(), x.to_vec())
        }
        ParsedKey::RSA(rsa) => {
            let modulus = rsa
                .modulus
                .iter()
                .skip_while(|b| **b == 0)
                .copied()
                .collect();
            ("rsa".to_owned(), rsa.key_size(), modulus)
        }
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => (
            "ed25519".to_owned(),
            256,
            spki.subject_public_key.data.to_vec(),
        ),
        _ => (
            spki.algorithm.algorithm.to_id_string(),
            0,
            spki.raw.to_vec(),
        ),
    };
    let mut hashed = algorithm.clone().into_bytes();
    hashed.push(0);
    hashed.extend_from_slice(&material);
    Some(CertificateKey {
        algorithm,
        bits: u32::try_from(bits).unwrap_or(0),
        fingerprint: hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &hashed,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> CertificateAuthority {
        let g = CertificateAuthority::generate("Test").unwrap();
        CertificateAuthority::load(&g.root_cert_pem, &g.issuing_cert_pem, &g.issuing_key_pem)
            .unwrap()
    }

    fn csr_for(cn: &str) -> (KeyPair, Vec<u8>) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let csr = params.serialize_request(&key).unwrap();
        (key, csr.der().to_vec())
    }

    #[test]
    fn issues_from_csr_with_cn_serial_and_client_auth_only() {
        let ca = ca();
        let (key, der) = csr_for("dev-1");
        let csr = DeviceCsr::parse(&der).unwrap();
        assert_eq!(csr.device_id.as_str(), "dev-1");
        assert_eq!(csr.key_type, "ecdsa-p256");
        let issued = ca.issue_device(&csr, Duration::days(90)).unwrap();
        let peer = read_peer_certificate(&issued.der).unwrap();
        assert_eq!(peer.common_name, "dev-1");
        assert_eq!(peer.serial, issued.serial);
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
        assert_eq!(cert.public_key().raw, &key.subject_public_key_info()[..]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!cert.is_ca());
        let days = (issued.not_after - issued.not_before).whole_days();
        assert_eq!(days, 90);
        assert_eq!(
            certificate_key(issued.pem.as_bytes()),
            Some(CertificateKey {
                algorithm: "ecdsa".into(),
                bits: 256,
                // "ecdsa" ‖ 0 ‖ X, X being bytes 1..33 of the uncompressed point.
                fingerprint: hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &{
                    let mut m = b"ecdsa\0".to_vec();
                    m.extend_from_slice(&key.public_key_raw()[1..33]);
                    m
                })),
            })
        );
        assert_eq!(
            certificate_key(&issued.der),
            certificate_key(issued.pem.as_bytes())
        );
        assert_eq!(certificate_key(b"-----BEGIN CERTIFICATE-----\nnope"), None);
    }

    #[test]
    fn refuses_forged_malformed_oversized_and_badly_named_csrs() {
        let (_, mut der) = csr_for("dev-1");
        let last = der.len() - 1;
        der[last] ^= 0x01;
        assert_eq!(DeviceCsr::parse(&der).unwrap_err(), CsrError::BadSignature);
        assert_eq!(
            DeviceCsr::parse(b"not a csr").unwrap_err(),
            CsrError::Malformed
        );
        assert_eq!(
            DeviceCsr::parse(&vec![b'A'; MAX_CSR_BYTES + 1]).unwrap_err(),
            CsrError::TooLarge
        );
        let (_, der) = csr_for("dev/1");
        assert!(matches!(
            DeviceCsr::parse(&der).unwrap_err(),
            CsrError::BadCommonName(_)
        ));
    }

    #[test]
    fn accepts_base64_and_pem_bodies() {
        use base64::Engine;
        let (_, der) = csr_for("dev-2");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let wrapped: String = b64
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
            .collect();
        assert_eq!(
            DeviceCsr::parse(wrapped.as_bytes())
                .unwrap()
                .device_id
                .as_str(),
            "dev-2"
        );
        let pem = pem_wrap("CERTIFICATE REQUEST", &der);
        assert_eq!(
            DeviceCsr::parse(pem.as_bytes()).unwrap().device_id.as_str(),
            "dev-2"
        );
    }

    #[test]
    fn crl_lists_revoked_serials_and_verifies_against_the_issuer() {
        let ca = ca();
        let (_, der) = csr_for("dev-1");
        let issued = ca
            .issue_device(&DeviceCsr::parse(&der).unwrap(), Duration::days(1))
            .unwrap();
        let crl = ca
            .sign_crl(
                &[RevokedSerial {
                    serial: issued.serial.clone(),
                    revoked_at: OffsetDateTime::now_utc(),
                    reason: garrison_core::device::RevocationReason::KeyCompromise,
                }],
                7,
                Duration::hours(24),
            )
            .unwrap();
        let (_, parsed) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&crl.der).unwrap();
        let serials: Vec<String> = parsed
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        assert_eq!(serials, vec![issued.serial]);
        assert_eq!(parsed.crl_number().map(|n| n.to_string()), Some("7".into()));
        let issuing = crate::ca::pem_certificates(ca.issuing_pem(), "issuing").unwrap();
        let (_, issuing) = x509_parser::parse_x509_certificate(&issuing[0]).unwrap();
        parsed.verify_signature(issuing.public_key()).unwrap();
    }

    #[test]
    fn pkcs7_wraps_every_certificate() {
        let ca = ca();
        let certs =
            crate::ca::pem_certificates(&format!("{}{}", ca.issuing_pem(), ca.root_pem()), "chain")
                .unwrap();
        let p7 = pkcs7_certs_only(&certs);
        // The certificates appear verbatim, in order, inside the envelope.
        let first = p7
            .windows(certs[0].len())
            .position(|w| w == certs[0].as_ref())
            .unwrap();
        let second = p7
            .windows(certs[1].len())
            .position(|w| w == certs[1].as_ref())
            .unwrap();
        assert!(first < second);
        let (_, any) = x509_parser::der_parser::parse_der(&p7).unwrap();
        assert!(any.as_sequence().is_ok());
    }
}
