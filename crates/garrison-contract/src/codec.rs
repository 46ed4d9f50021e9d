//! Bytes ↔ messages: size caps, gzip, JSON or CBOR.
//!
//! The format is recognised from the bytes themselves, because MQTT 3.1.1 has no content type:
//! gzip starts with `1f 8b`, JSON with `{` (after whitespace), anything else is tried as CBOR.
//! Decompression is capped at [`Limits::max_decoded_bytes`] so a small "zip bomb" cannot make the
//! server allocate gigabytes.

use std::io::Read;

use serde::{Serialize, de::DeserializeOwned};

use crate::ReportError;

/// Bounds every decoded payload must stay within. The defaults suit Linux-class devices with a
/// few thousand packages; the server may lower them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload as received (compressed or not), bytes.
    pub max_payload_bytes: usize,
    /// Largest payload after decompression, bytes.
    pub max_decoded_bytes: usize,
    /// Most SBOM components in one inventory.
    pub max_components: usize,
    /// Most entries in any other list (listening sockets, accounts, interfaces, destinations,
    /// watched files).
    pub max_list: usize,
    /// Most events in one `events` message.
    pub max_events: usize,
    /// Longest string field, bytes.
    pub max_string: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 1024 * 1024,
            max_decoded_bytes: 8 * 1024 * 1024,
            max_components: 20_000,
            max_list: 4096,
            max_events: 1000,
            max_string: 1024,
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The size of `payload` after decompression (its own size when not compressed), within the
/// limits. Reads a gzip stream to its end without keeping it.
pub(crate) fn decoded_len(payload: &[u8], limits: &Limits) -> Result<usize, ReportError> {
    if !payload.starts_with(&GZIP_MAGIC) {
        return Ok(payload.len());
    }
    let cap = u64::try_from(limits.max_decoded_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let n = std::io::copy(
        &mut flate2::read::GzDecoder::new(payload).take(cap),
        &mut std::io::sink(),
    )
    .map_err(|e| ReportError::Malformed(format!("bad gzip data: {e}")))?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Decodes `payload` into `T` within `limits` (size and decompression only; the caller checks
/// the content).
pub(crate) fn decode_bytes<T: DeserializeOwned>(
    payload: &[u8],
    limits: &Limits,
) -> Result<T, ReportError> {
    if payload.len() > limits.max_payload_bytes {
        return Err(ReportError::TooLarge {
            size: payload.len(),
            limit: limits.max_payload_bytes,
        });
    }
    let inflated;
    let bytes = if payload.starts_with(&GZIP_MAGIC) {
        inflated = inflate(payload, limits.max_decoded_bytes)?;
        &inflated[..]
    } else {
        payload
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Err(ReportError::Malformed("the payload is empty".into())),
        Some(b'{') => {
            serde_json::from_slice(bytes).map_err(|e| ReportError::Malformed(e.to_string()))
        }
        Some(_) => ciborium::from_reader(bytes).map_err(|e| {
            ReportError::Malformed(format!("neither a JSON object nor valid CBOR: {e}"))
        }),
    }
}

fn inflate(payload: &[u8], limit: usize) -> Result<Vec<u8>, ReportError> {
    let mut out = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(payload)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| ReportError::Malformed(format!("bad gzip data: {e}")))?;
    if out.len() > limit {
        return Err(ReportError::TooLarge {
            size: out.len(),
            limit,
        });
    }
    Ok(out)
}

/// Encodes a message as JSON.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Serialising these plain data types cannot fail (no maps with non-string keys).
    serde_json::to_vec(message).unwrap_or_default()
}

/// Encodes a message as JSON, gzip-compressed when that is smaller than `threshold` bytes of
/// plain JSON would allow (large inventories with an SBOM).
pub fn encode_compressed<T: Serialize>(message: &T, threshold: usize) -> Vec<u8> {
    let json = encode(message);
    if json.len() <= threshold {
        return json;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    if std::io::Write::write_all(&mut gz, &json).is_err() {
        return json;
    }
    gz.finish().unwrap_or(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn json_cbor_and_gzip_are_recognised() {
        let limits = Limits::default();
        let value = serde_json::json!({"schema": 1, "a": [1, 2, 3]});
        let json = encode(&value);
        assert_eq!(decode_bytes::<Value>(&json, &limits).unwrap(), value);
        let mut cbor = Vec::new();
        ciborium::into_writer(&value, &mut cbor).unwrap();
        assert_eq!(decode_bytes::<Value>(&cbor, &limits).unwrap(), value);
        let gz = encode_compressed(&value, 0);
        assert_eq!(&gz[..2], &GZIP_MAGIC);
        assert_eq!(decode_bytes::<Value>(&gz, &limits).unwrap(), value);
    }

    #[test]
    fn oversized_and_bombs_are_refused() {
        let limits = Limits {
            max_payload_bytes: 2000,
            max_decoded_bytes: 10_000,
            ..Limits::default()
        };
        let big = vec![b' '; 2001];
        assert!(matches!(
            decode_bytes::<Value>(&big, &limits),
            Err(ReportError::TooLarge { size: 2001, .. })
        ));
        // 1 MB of zeros compresses to about 1 KB: under the wire limit, over the decoded one.
        let bomb = serde_json::json!({"schema": 1, "pad": "0".repeat(1_000_000)});
        let gz = encode_compressed(&bomb, 0);
        assert!(gz.len() <= 2000, "{}", gz.len());
        assert!(matches!(
            decode_bytes::<Value>(&gz, &limits),
            Err(ReportError::TooLarge { limit: 10_000, .. })
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        let limits = Limits::default();
        for bad in [
            &b""[..],
            b"   ",
            b"{not json",
            b"\xff\xfe\xfd",
            b"\x1f\x8bnot gzip",
        ] {
            assert!(
                matches!(
                    decode_bytes::<Value>(bad, &limits),
                    Err(ReportError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }
}
