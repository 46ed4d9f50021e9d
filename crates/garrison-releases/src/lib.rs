//! The release repository on the server: it verifies and serves, it never signs.
//!
//! - The **trust root**: the first upload pins it (it must carry its own threshold of root
//!   signatures); every later one must be the next version, signed by the threshold of the
//!   pinned root's keys and of its own ([`TrustRoot::rotate`]). Every version is kept.
//! - **Artifacts** are addressed by SHA-256: an upload names the digest it should have, is
//!   streamed to a temporary file while hashed (never held in memory), refused on the first
//!   byte past the size limit or at the end if the digest differs, then renamed into place and
//!   recorded. Uploading the same content twice is a no-op.
//! - A **release** is a signed manifest, published only if it verifies against the pinned root
//!   ([`verify_release`]) and every artifact it names is held with the size it states; one per
//!   vendor, model and sequence number. Devices get the manifest bytes as signed and verify
//!   them themselves.
//!
//! Every change is audited with the operator who made it.
#![forbid(unsafe_code)]

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use garrison_core::{TenantId, audit::AuditRecord, now_ms};
use garrison_store::{
    Store, StoreError,
    updates::{ArtifactRecord, Release, UpdateRoot},
};
use garrison_update::{
    Sha256Stream, SignedManifest, TrustRoot, UpdateError, is_sha256, verify_release,
};
use tokio::io::AsyncWriteExt;

/// Why a repository operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// No trust root is pinned yet.
    #[error(
        "no trust root is pinned: upload one first (`garrison release pin root.cose`, made with `garrison release root`)"
    )]
    NoRoot,
    /// The document or manifest does not verify.
    #[error(transparent)]
    Update(#[from] UpdateError),
    /// Not a SHA-256 in lowercase hex.
    #[error("{0:?} is not a SHA-256 digest (64 lowercase hex digits)")]
    BadDigest(String),
    /// The upload exceeds the limit.
    #[error("the artifact is larger than the {max} bytes allowed (updates.max_artifact_size)")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// The content does not hash to the digest it was uploaded under.
    #[error(
        "the uploaded content has SHA-256 {got}, not {expected}: it was corrupted or is another file"
    )]
    DigestMismatch {
        /// Named in the request.
        expected: String,
        /// Computed.
        got: String,
    },
    /// A manifest names an artifact the repository does not hold (with that size).
    #[error(
        "artifact {name:?} ({sha256}, {size} bytes) is not uploaded: upload it first (PUT /api/v1/updates/artifacts/{sha256})"
    )]
    MissingArtifact {
        /// Its name in the manifest.
        name: String,
        /// Its digest.
        sha256: String,
        /// Its size in the manifest.
        size: u64,
    },
    /// The upload stream failed.
    #[error("the upload was interrupted: {0}")]
    Upload(String),
    /// The store failed or refused (a conflict: the release exists).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The artifact directory failed.
    #[error("artifact storage failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Temporary files of uploads in progress start with this.
const UPLOAD_PREFIX: &str = ".upload-";
/// An upload that sends nothing for this long is abandoned.
const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes an upload's temporary file unless it was kept: also when the upload's task is
/// dropped midway (a client gone, shutdown).
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Who does it, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The operator's name.
    pub username: String,
    /// How the audit log names them.
    pub actor: garrison_core::audit::Actor,
    /// Their address.
    pub source: Option<String>,
}

impl Actor {
    /// The audit record of `action` on `target` by this operator.
    pub fn audit(&self, tenant: &TenantId, action: &str, target: String) -> AuditRecord {
        AuditRecord::new(tenant, self.actor.clone(), action, target).source(self.source.clone())
    }
}

/// The release repository. Cheap to clone.
#[derive(Clone)]
pub struct Releases {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    tenant: TenantId,
    dir: PathBuf,
    max_artifact_bytes: u64,
    /// SHA-1 and MD5 of artifacts, computed once when a hawkBit client first needs them.
    legacy: std::sync::Mutex<std::collections::HashMap<String, LegacyDigests>>,
}

/// The digests hawkBit clients check besides SHA-256 (swupdate checks SHA-1). They are not
/// what Garrison trusts — the signed manifest's SHA-256 is — only what those clients expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyDigests {
    /// SHA-1, lowercase hex.
    pub sha1: String,
    /// MD5, lowercase hex.
    pub md5: String,
}

impl Releases {
    /// A repository keeping artifact files in `dir` (created, mode 0700).
    pub fn open(
        store: Arc<dyn Store>,
        tenant: TenantId,
        dir: PathBuf,
        max_artifact_bytes: u64,
    ) -> std::io::Result<Releases> {
        std::fs::create_dir_all(&dir)?;
        // Uploads cut short by a crash leave their temporary files: nothing refers to them.
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(UPLOAD_PREFIX)
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Releases {
            inner: Arc::new(Inner {
                store,
                tenant,
                dir,
                max_artifact_bytes,
                legacy: std::sync::Mutex::new(std::collections::HashMap::new()),
            }),
        })
    }

    fn tenant(&self) -> &TenantId {
        &self.inner.tenant
    }

    /// The pinned trust root: parsed, and as stored.
    pub async fn root(&self) -> Result<Option<(TrustRoot, UpdateRoot)>, ReleaseError> {
        let Some(stored) = self.inner.store.update_root_current(self.tenant()).await? else {
            return Ok(None);
        };
        let root = TrustRoot::open(&stored.document)?;
        Ok(Some((root, stored)))
    }

    /// Pins `document` as the trust root: the first one on its own signatures, later ones as
    /// a rotation of the pinned one.
    pub async fn pin_root(&self, document: &[u8], by: &Actor) -> Result<TrustRoot, ReleaseError> {
        let root = match self.root().await? {
            None => TrustRoot::open(document)?,
            Some((pinned, _)) => pinned.rotate(document)?,
        };
        // Devices would refuse everything under it.
        if let Some(expired_at) = root.expires_at
            && expired_at <= now_ms()
        {
            return Err(UpdateError::Expired {
                what: "trust root",
                expired_at,
            }
            .into());
        }
        let stored = UpdateRoot {
            tenant: self.tenant().clone(),
            version: i64::try_from(root.root_version).unwrap_or(i64::MAX),
            document: document.to_vec(),
            uploaded_at: now_ms(),
            uploaded_by: by.username.clone(),
        };
        let audit = by.audit(
            self.tenant(),
            "update.root.pin",
            format!("update_root:{}", root.root_version),
        );
        self.inner.store.update_root_record(&stored, audit).await?;
        tracing::info!(
            version = root.root_version,
            "Pinned a new update trust root"
        );
        Ok(root)
    }

    /// Where the artifact with this digest is (or would be) stored.
    pub fn artifact_path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256(sha256).then(|| self.inner.dir.join(sha256))
    }

    /// SHA-1 and MD5 of a held artifact, for hawkBit clients; read from its file the first
    /// time (on a blocking thread), then remembered.
    pub async fn legacy_digests(&self, sha256: &str) -> Result<LegacyDigests, ReleaseError> {
        let path = self
            .artifact_path(sha256)
            .ok_or_else(|| ReleaseError::BadDigest(sha256.to_owned()))?;
        if let Some(d) = self.legacy_cached(sha256) {
            return Ok(d);
        }
        let digests = tokio::task::spawn_blocking(move || -> std::io::Result<LegacyDigests> {
            use std::io::Read;
            let mut file = std::fs::File::open(path)?;
            let mut sha1 =
                aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
            let mut md5 = <md5::Md5 as md5::Digest>::new();
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                sha1.update(&buffer[..n]);
                md5::Digest::update(&mut md5, &buffer[..n]);
            }
            Ok(LegacyDigests {
                sha1: hex::encode(sha1.finish()),
                md5: hex::encode(md5::Digest::finalize(md5)),
            })
        })
        .await
        .map_err(|e| ReleaseError::Io(std::io::Error::other(e)))??;
        if let Ok(mut cache) = self.inner.legacy.lock() {
            cache.insert(sha256.to_owned(), digests.clone());
        }
        Ok(digests)
    }

    fn legacy_cached(&self, sha256: &str) -> Option<LegacyDigests> {
        self.inner.legacy.lock().ok()?.get(sha256).cloned()
    }

    /// The record of a held artifact.
    pub async fn artifact(&self, sha256: &str) -> Result<Option<ArtifactRecord>, ReleaseError> {
        if !is_sha256(sha256) {
            return Err(ReleaseError::BadDigest(sha256.to_owned()));
        }
        Ok(self.inner.store.artifact_get(self.tenant(), sha256).await?)
    }

    /// Stores the artifact `sha256` from `body`; returns its record and whether it is new.
    pub async fn upload<S, E>(
        &self,
        sha256: &str,
        mut body: S,
        by: &Actor,
    ) -> Result<(ArtifactRecord, bool), ReleaseError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self
            .artifact_path(sha256)
            .ok_or_else(|| ReleaseError::BadDigest(sha256.to_owned()))?;
        if let Some(existing) = self.artifact(sha256).await?
            && path.exists()
        {
            // Read what the client sends anyway: answering before the body is read makes HTTP/2
            // reset the stream, and the client would see a failure. (Clients ask first with a
            // GET or HEAD to skip the upload.)
            let mut read = 0u64;
            while let Some(chunk) = body.next().await {
                read += chunk
                    .map_err(|e| ReleaseError::Upload(e.to_string()))?
                    .len() as u64;
                if read > self.inner.max_artifact_bytes {
                    break;
                }
            }
            return Ok((existing, false));
        }
        let tmp = self
            .inner
            .dir
            .join(format!("{UPLOAD_PREFIX}{}", uuid::Uuid::new_v4()));
        let mut guard = TempFile(Some(tmp.clone()));
        let (got, size) = self.receive(&tmp, &mut body).await?;
        if got != sha256 {
            return Err(ReleaseError::DigestMismatch {
                expected: sha256.to_owned(),
                got,
            });
        }
        tokio::fs::rename(&tmp, &path).await?;
        guard.0 = None;
        let record = ArtifactRecord {
            tenant: self.tenant().clone(),
            sha256: sha256.to_owned(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            uploaded_at: now_ms(),
            uploaded_by: by.username.clone(),
        };
        let audit = by.audit(
            self.tenant(),
            "update.artifact.upload",
            format!("artifact:{sha256}"),
        );
        let record = self.inner.store.artifact_record(&record, audit).await?;
        tracing::info!(sha256, size, "Stored an update artifact");
        Ok((record, true))
    }

    async fn receive<S, E>(&self, tmp: &Path, body: &mut S) -> Result<(String, u64), ReleaseError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        // HTTP/2 delivers 16 KiB frames; each write to a tokio file is a trip to the blocking
        // pool, so they are gathered into 1 MiB writes.
        let mut file =
            tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(tmp).await?);
        let mut hash = Sha256Stream::default();
        loop {
            let next = tokio::time::timeout(UPLOAD_IDLE, body.next())
                .await
                .map_err(|_| {
                    ReleaseError::Upload(format!("nothing arrived for {} s", UPLOAD_IDLE.as_secs()))
                })?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| ReleaseError::Upload(e.to_string()))?;
            if hash.len() + chunk.len() as u64 > self.inner.max_artifact_bytes {
                return Err(ReleaseError::TooLarge {
                    max: self.inner.max_artifact_bytes,
                });
            }
            hash.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        // Durable before it is recorded: an acknowledged upload survives a crash.
        file.get_ref().sync_all().await?;
        Ok(hash.finish())
    }

    /// Publishes a signed manifest after verifying it against the pinned root and checking
    /// that every artifact it names is held with the size it states.
    pub async fn publish(&self, manifest: &[u8], by: &Actor) -> Result<Release, ReleaseError> {
        let (root, _) = self.root().await?.ok_or(ReleaseError::NoRoot)?;
        let verified = verify_release(&root, manifest, now_ms())?;
        let signed = SignedManifest::parse(manifest)?;
        for a in &verified.artifacts {
            let held = self
                .inner
                .store
                .artifact_get(self.tenant(), &a.sha256)
                .await?;
            if held.is_none_or(|h| u64::try_from(h.size).ok() != Some(a.size)) {
                return Err(ReleaseError::MissingArtifact {
                    name: a.name.clone(),
                    sha256: a.sha256.clone(),
                    size: a.size,
                });
            }
        }
        let release = Release {
            id: uuid::Uuid::now_v7().to_string(),
            tenant: self.tenant().clone(),
            vendor: verified.vendor.clone(),
            model: verified.class.clone(),
            sequence: i64::try_from(verified.sequence).unwrap_or(i64::MAX),
            version: verified.version.clone(),
            signed_by: signed.key().to_string(),
            artifacts: serde_json::to_value(&verified.artifacts).unwrap_or_default(),
            expires_at: verified.expires_at,
            manifest: manifest.to_vec(),
            created_at: now_ms(),
            created_by: by.username.clone(),
        };
        let audit = by.audit(
            self.tenant(),
            "update.release.publish",
            format!("release:{}", release.id),
        );
        self.inner.store.release_create(&release, audit).await?;
        tracing::info!(
            id = %release.id,
            vendor = %release.vendor,
            model = %release.model,
            sequence = release.sequence,
            "Published a release"
        );
        Ok(release)
    }
}
