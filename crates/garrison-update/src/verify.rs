//! What a device checks before it installs: the manifest against its pinned trust root and
//! its own state, then each artifact against the manifest as the bytes arrive.

use aws_lc_rs::digest;

use crate::{
    UpdateError, cose,
    error::malformed,
    manifest::{MANIFEST_CONTENT_TYPE, Manifest},
    root::{KeyRole, TrustRoot},
};

/// What the device knows about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// Its vendor identifier.
    pub vendor: String,
    /// Its device class (model).
    pub class: String,
    /// The sequence number of the release installed now (0: none yet).
    pub installed_sequence: u64,
}

/// Verifies a signed manifest for `device` at `now_ms`: [`verify_release`]'s checks, then
/// that it is for this vendor and class, and its sequence number is above the
/// installed one — a validly signed older release is still refused.
pub fn verify_manifest(
    root: &TrustRoot,
    bytes: &[u8],
    device: &DeviceState,
    now_ms: i64,
) -> Result<Manifest, UpdateError> {
    let manifest = verify_release(root, bytes, now_ms)?;
    for (field, offered, expected) in [
        ("vendor", &manifest.vendor, &device.vendor),
        ("class", &manifest.class, &device.class),
    ] {
        if offered != expected {
            return Err(UpdateError::WrongTarget {
                field,
                offered: offered.clone(),
                expected: expected.clone(),
            });
        }
    }
    if manifest.sequence <= device.installed_sequence {
        return Err(UpdateError::Rollback {
            offered: manifest.sequence,
            installed: device.installed_sequence,
        });
    }
    Ok(manifest)
}

/// The checks that do not depend on a device — what the server makes before it publishes a
/// release: the root is not expired, the signature is by a release key the root lists and
/// verifies, and the manifest is well formed and not expired.
pub fn verify_release(
    root: &TrustRoot,
    bytes: &[u8],
    now_ms: i64,
) -> Result<Manifest, UpdateError> {
    if let Some(expired_at) = root.expires_at
        && expired_at <= now_ms
    {
        return Err(UpdateError::Expired {
            what: "trust root",
            expired_at,
        });
    }
    let opened = cose::open_sign1(bytes, MANIFEST_CONTENT_TYPE)?;
    let signature = opened
        .signatures
        .first()
        .ok_or_else(|| malformed("COSE_Sign1", "no signature"))?;
    let key =
        root.key(KeyRole::Release, &signature.key)
            .ok_or_else(|| UpdateError::UnknownKey {
                key: signature.key.to_string(),
                role: "release",
            })?;
    if signature.algorithm != Some(coset::Algorithm::Assigned(key.algorithm.cose()))
        || !key.verify(&signature.signed, &signature.signature)
    {
        return Err(UpdateError::BadSignature {
            key: signature.key.to_string(),
            what: "manifest",
        });
    }
    let manifest = Manifest::from_cbor(&opened.payload)?;
    if let Some(expired_at) = manifest.expires_at
        && expired_at <= now_ms
    {
        return Err(UpdateError::Expired {
            what: "manifest",
            expired_at,
        });
    }
    Ok(manifest)
}

/// SHA-256 and length of a stream, fed in chunks.
pub struct Sha256Stream {
    context: digest::Context,
    len: u64,
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Sha256Stream {
            context: digest::Context::new(&digest::SHA256),
            len: 0,
        }
    }
}

impl Sha256Stream {
    /// Adds a chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.context.update(chunk);
        self.len += chunk.len() as u64;
    }

    /// Bytes so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Lowercase hex digest and length.
    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.context.finish().as_ref()), self.len)
    }
}

/// Checks one artifact as it streams in: refuses it on the first byte past the manifest's
/// size, and at the end unless both size and SHA-256 match.
pub struct ArtifactCheck {
    name: String,
    sha256: String,
    size: u64,
    stream: Sha256Stream,
}

impl ArtifactCheck {
    /// A check for the artifact `name` of a verified manifest.
    pub fn new(manifest: &Manifest, name: &str) -> Result<ArtifactCheck, UpdateError> {
        let artifact = manifest
            .artifact(name)
            .ok_or_else(|| UpdateError::NoSuchArtifact(name.to_owned()))?;
        Ok(ArtifactCheck {
            name: artifact.name.clone(),
            sha256: artifact.sha256.clone(),
            size: artifact.size,
            stream: Sha256Stream::default(),
        })
    }

    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), UpdateError> {
        if self.stream.len() + chunk.len() as u64 > self.size {
            return Err(UpdateError::TooLong {
                name: self.name.clone(),
                size: self.size,
            });
        }
        self.stream.update(chunk);
        Ok(())
    }

    /// Ends the stream: size and digest must both match.
    pub fn finish(self) -> Result<(), UpdateError> {
        let (got, len) = self.stream.finish();
        if len != self.size {
            return Err(UpdateError::TooShort {
                name: self.name,
                got: len,
                size: self.size,
            });
        }
        if got != self.sha256 {
            return Err(UpdateError::DigestMismatch {
                name: self.name,
                got,
                expected: self.sha256,
            });
        }
        Ok(())
    }
}
