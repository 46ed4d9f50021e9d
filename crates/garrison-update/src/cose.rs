//! The two COSE envelopes (RFC 9052): COSE_Sign1 for a manifest (one release key) and
//! COSE_Sign for a trust root (several root keys, for thresholds). Both are tagged, carry the
//! algorithm and key id in each signature's protected header, and a content type naming what
//! the payload is, so one kind of document cannot be passed off as the other.

use coset::{
    CoseSign, CoseSign1, CoseSign1Builder, CoseSignBuilder, CoseSignatureBuilder, HeaderBuilder,
    TaggedCborSerializable,
};

use crate::{
    UpdateError,
    error::malformed,
    keys::{KeyId, SigningKey},
};

/// No manifest or trust root is larger (a manifest of 256 artifacts is about 40 KiB).
pub(crate) const MAX_DOCUMENT: usize = 256 * 1024;
/// Most signatures a COSE_Sign may carry: a rotation is signed by the old root's keys and
/// the new one's, at most 32 each.
const MAX_SIGNATURES: usize = 64;

/// A payload and the signatures over it, not yet checked: each as (key id, algorithm as
/// COSE names it, the bytes the signature covers, the signature).
pub(crate) struct Opened {
    pub(crate) payload: Vec<u8>,
    pub(crate) signatures: Vec<OpenedSignature>,
}

pub(crate) struct OpenedSignature {
    pub(crate) key: KeyId,
    pub(crate) algorithm: Option<coset::Algorithm>,
    pub(crate) signed: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

fn header(key: &SigningKey) -> coset::Header {
    HeaderBuilder::new()
        .algorithm(key.algorithm().cose())
        .key_id(key.public_key().id().as_str().as_bytes().to_vec())
        .build()
}

/// COSE_Sign1 over `payload` by `key`.
pub(crate) fn sign1(
    payload: Vec<u8>,
    content_type: &str,
    key: &SigningKey,
) -> Result<Vec<u8>, UpdateError> {
    let mut protected = header(key);
    protected.content_type = Some(coset::ContentType::Text(content_type.to_owned()));
    CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .try_create_signature(b"", |data| key.sign(data))?
        .build()
        .to_tagged_vec()
        .map_err(|e| malformed("COSE_Sign1", e))
}

/// COSE_Sign over `payload` by every key in `keys`.
pub(crate) fn sign(
    payload: Vec<u8>,
    content_type: &str,
    keys: &[&SigningKey],
) -> Result<Vec<u8>, UpdateError> {
    let protected = HeaderBuilder::new()
        .content_type(content_type.to_owned())
        .build();
    let mut builder = CoseSignBuilder::new().protected(protected).payload(payload);
    for key in keys {
        let signature = CoseSignatureBuilder::new().protected(header(key)).build();
        builder = builder.try_add_created_signature(signature, b"", |data| key.sign(data))?;
    }
    builder
        .build()
        .to_tagged_vec()
        .map_err(|e| malformed("COSE_Sign", e))
}

fn check_size(bytes: &[u8], what: &'static str) -> Result<(), UpdateError> {
    if bytes.len() > MAX_DOCUMENT {
        return Err(malformed(
            what,
            format!(
                "{} bytes, more than the {MAX_DOCUMENT} allowed",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

fn content_type_is(
    header: &coset::Header,
    expected: &str,
    what: &'static str,
) -> Result<(), UpdateError> {
    match &header.content_type {
        Some(coset::ContentType::Text(t)) if t == expected => Ok(()),
        other => Err(malformed(
            what,
            format!("content type {other:?}, expected {expected:?}"),
        )),
    }
}

fn payload(p: Option<Vec<u8>>, what: &'static str) -> Result<Vec<u8>, UpdateError> {
    p.ok_or_else(|| malformed(what, "no payload (detached payloads are not used)"))
}

/// Opens a tagged COSE_Sign1 whose content type must be `content_type`.
pub(crate) fn open_sign1(bytes: &[u8], content_type: &str) -> Result<Opened, UpdateError> {
    const WHAT: &str = "COSE_Sign1";
    check_size(bytes, WHAT)?;
    let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(|e| malformed(WHAT, e))?;
    content_type_is(&sign1.protected.header, content_type, WHAT)?;
    let signed = sign1.tbs_data(b"");
    Ok(Opened {
        signatures: vec![OpenedSignature {
            key: KeyId::from_bytes(&sign1.protected.header.key_id),
            algorithm: sign1.protected.header.alg.clone(),
            signed,
            signature: sign1.signature,
        }],
        payload: payload(sign1.payload, WHAT)?,
    })
}

/// Opens a tagged COSE_Sign whose content type must be `content_type`.
pub(crate) fn open_sign(bytes: &[u8], content_type: &str) -> Result<Opened, UpdateError> {
    const WHAT: &str = "COSE_Sign";
    check_size(bytes, WHAT)?;
    let sign = CoseSign::from_tagged_slice(bytes).map_err(|e| malformed(WHAT, e))?;
    content_type_is(&sign.protected.header, content_type, WHAT)?;
    // Each signature's to-be-signed bytes repeat the payload: bound how many are looked at.
    if sign.signatures.len() > MAX_SIGNATURES {
        return Err(malformed(
            WHAT,
            format!(
                "{} signatures, more than the {MAX_SIGNATURES} a trust root can use",
                sign.signatures.len()
            ),
        ));
    }
    let signatures = (0..sign.signatures.len())
        .map(|i| {
            let s = &sign.signatures[i];
            OpenedSignature {
                key: KeyId::from_bytes(&s.protected.header.key_id),
                algorithm: s.protected.header.alg.clone(),
                signed: sign.tbs_data(b"", s),
                signature: s.signature.clone(),
            }
        })
        .collect();
    Ok(Opened {
        signatures,
        payload: payload(sign.payload, WHAT)?,
    })
}
