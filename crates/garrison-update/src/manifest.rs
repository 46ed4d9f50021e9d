//! What a release is: the manifest (SUIT's information model, RFC 9124, in CBOR) and its
//! signed form.

use serde::{Deserialize, Serialize};

use crate::{
    UpdateError, cose,
    error::{invalid, malformed},
    keys::{KeyId, SigningKey},
};

/// The COSE content type of a signed manifest.
pub(crate) const MANIFEST_CONTENT_TYPE: &str = "application/vnd.garrison.manifest+cbor";

/// Most artifacts one release may carry.
pub const MAX_ARTIFACTS: usize = 256;
/// Longest name, vendor, class, version or description.
const MAX_TEXT: usize = 256;

/// Whether `s` is a SHA-256 digest as manifests and artifact addresses write it: 64
/// lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// File name, unique in the release (`rootfs.swu`, `app.deb`).
    pub name: String,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A release, as its vendor signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Structure version: 1.
    pub manifest_version: u32,
    /// Vendor identifier (SUIT `vendor-id`): which maker's devices may install it.
    pub vendor: String,
    /// Device class (SUIT `class-id`): the model it is built for.
    pub class: String,
    /// Monotonic sequence number: a device installs only a larger one than it has.
    pub sequence: u64,
    /// The release's version, for people (`2.4.1`).
    pub version: String,
    /// Its files.
    pub artifacts: Vec<Artifact>,
    /// When it was signed, Unix ms.
    pub created_at: i64,
    /// After this (Unix ms) devices refuse it; none: no expiry.
    pub expires_at: Option<i64>,
    /// Release notes, short.
    pub description: Option<String>,
}

fn text(what: &'static str, field: &str, value: &str) -> Result<(), UpdateError> {
    if value.trim().is_empty() || value.len() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(invalid(
            what,
            format!("{field} must be 1–{MAX_TEXT} printable characters, got {value:?}"),
        ));
    }
    Ok(())
}

impl Manifest {
    /// Checks the manifest's own rules: structure version 1, identifiers present, 1 to
    /// [`MAX_ARTIFACTS`] artifacts with unique plain file names and well-formed digests.
    pub fn validate(&self) -> Result<(), UpdateError> {
        const WHAT: &str = "manifest";
        if self.manifest_version != 1 {
            return Err(invalid(
                WHAT,
                format!(
                    "manifest_version {} is not supported (this build reads 1)",
                    self.manifest_version
                ),
            ));
        }
        text(WHAT, "vendor", &self.vendor)?;
        text(WHAT, "class", &self.class)?;
        text(WHAT, "version", &self.version)?;
        if let Some(d) = &self.description
            && d.len() > 4 * MAX_TEXT
        {
            return Err(invalid(WHAT, "description is longer than 1024 bytes"));
        }
        if self.artifacts.is_empty() || self.artifacts.len() > MAX_ARTIFACTS {
            return Err(invalid(
                WHAT,
                format!(
                    "a release has 1 to {MAX_ARTIFACTS} artifacts, this one {}",
                    self.artifacts.len()
                ),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for a in &self.artifacts {
            text(WHAT, "artifact name", &a.name)?;
            if a.name.contains('/') || a.name == "." || a.name == ".." {
                return Err(invalid(
                    WHAT,
                    format!("artifact name {:?} must be a plain file name", a.name),
                ));
            }
            if !names.insert(a.name.as_str()) {
                return Err(invalid(
                    WHAT,
                    format!("artifact {:?} is listed twice", a.name),
                ));
            }
            if !is_sha256(&a.sha256) {
                return Err(invalid(
                    WHAT,
                    format!("artifact {:?} has a malformed SHA-256", a.name),
                ));
            }
        }
        Ok(())
    }

    /// The artifact named `name`.
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }

    pub(crate) fn to_cbor(&self) -> Result<Vec<u8>, UpdateError> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).map_err(|e| malformed("manifest CBOR", e))?;
        Ok(out)
    }

    pub(crate) fn from_cbor(bytes: &[u8]) -> Result<Manifest, UpdateError> {
        let manifest: Manifest =
            ciborium::from_reader(bytes).map_err(|e| malformed("manifest CBOR", e))?;
        manifest.validate()?;
        Ok(manifest)
    }
}

/// A manifest with its COSE_Sign1, as devices receive it. Reading one does not verify it:
/// that is [`verify_manifest`](crate::verify_manifest)'s job, against a trust root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    bytes: Vec<u8>,
    manifest: Manifest,
    key: KeyId,
}

impl SignedManifest {
    /// Signs `manifest` (after [`Manifest::validate`]) with a release key.
    pub fn sign(manifest: &Manifest, key: &SigningKey) -> Result<SignedManifest, UpdateError> {
        manifest.validate()?;
        let bytes = cose::sign1(manifest.to_cbor()?, MANIFEST_CONTENT_TYPE, key)?;
        Ok(SignedManifest {
            bytes,
            manifest: manifest.clone(),
            key: key.public_key().id(),
        })
    }

    /// Reads a signed manifest's envelope and content, without verifying the signature.
    pub fn parse(bytes: &[u8]) -> Result<SignedManifest, UpdateError> {
        let opened = cose::open_sign1(bytes, MANIFEST_CONTENT_TYPE)?;
        let manifest = Manifest::from_cbor(&opened.payload)?;
        let key = opened
            .signatures
            .into_iter()
            .next()
            .map(|s| s.key)
            .ok_or_else(|| malformed("COSE_Sign1", "no signature"))?;
        Ok(SignedManifest {
            bytes: bytes.to_vec(),
            manifest,
            key,
        })
    }

    /// The COSE_Sign1 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The manifest (unverified until [`verify_manifest`](crate::verify_manifest) says so).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The key id the signature names.
    pub fn key(&self) -> &KeyId {
        &self.key
    }
}
