//! What the update capability keeps: the trust root devices pin (every version), the
//! artifacts' records (their content lives in files, addressed by SHA-256), and releases
//! (signed manifests as uploaded, with what the server read from them).

use async_trait::async_trait;
use garrison_core::{TenantId, UnixMillis, audit::AuditRecord};

use crate::{Page, PageRequest, StoreResult};

/// One version of a tenant's trust root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRoot {
    /// Tenant.
    pub tenant: TenantId,
    /// Its `root_version`.
    pub version: i64,
    /// The signed document (COSE_Sign), as uploaded.
    pub document: Vec<u8>,
    /// When it was pinned.
    pub uploaded_at: UnixMillis,
    /// Who pinned it.
    pub uploaded_by: String,
}

/// An artifact the server holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRecord {
    /// Tenant.
    pub tenant: TenantId,
    /// SHA-256 of the content, lowercase hex: its address.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// When it was uploaded.
    pub uploaded_at: UnixMillis,
    /// Who uploaded it.
    pub uploaded_by: String,
}

/// A published release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Id (UUIDv7: newest sorts last).
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Vendor identifier.
    pub vendor: String,
    /// Device class (model).
    pub model: String,
    /// Sequence number.
    pub sequence: i64,
    /// Version, for people.
    pub version: String,
    /// Id of the release key that signed it.
    pub signed_by: String,
    /// The manifest's artifacts: `[{name, sha256, size}]`.
    pub artifacts: serde_json::Value,
    /// Expiry of the manifest, if any.
    pub expires_at: Option<UnixMillis>,
    /// The signed manifest (COSE_Sign1) as uploaded, which devices verify themselves.
    pub manifest: Vec<u8>,
    /// When it was published.
    pub created_at: UnixMillis,
    /// Who published it.
    pub created_by: String,
}

/// Storage for the update capability.
#[async_trait]
pub trait UpdateStore: Send + Sync {
    /// The newest pinned trust root.
    async fn update_root_current(&self, tenant: &TenantId) -> StoreResult<Option<UpdateRoot>>;

    /// One pinned version of the trust root (devices several rotations behind walk the chain).
    async fn update_root_version(
        &self,
        tenant: &TenantId,
        version: i64,
    ) -> StoreResult<Option<UpdateRoot>>;

    /// Pins a new trust root version, audited. A version already pinned is a conflict.
    async fn update_root_record(&self, root: &UpdateRoot, audit: AuditRecord) -> StoreResult<()>;

    /// Records an artifact, audited; one already recorded is returned as it was (content
    /// addressing makes uploads idempotent).
    async fn artifact_record(
        &self,
        artifact: &ArtifactRecord,
        audit: AuditRecord,
    ) -> StoreResult<ArtifactRecord>;

    /// The artifact with this digest.
    async fn artifact_get(
        &self,
        tenant: &TenantId,
        sha256: &str,
    ) -> StoreResult<Option<ArtifactRecord>>;

    /// Publishes a release, audited. Another release with the same vendor, model and
    /// sequence is a conflict.
    async fn release_create(&self, release: &Release, audit: AuditRecord) -> StoreResult<()>;

    /// One release.
    async fn release_get(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<Release>>;

    /// Releases, newest first.
    async fn releases_list(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<Release>>;
}
