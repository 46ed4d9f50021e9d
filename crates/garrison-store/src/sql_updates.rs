//! The SQL behind [`UpdateStore`](crate::updates::UpdateStore), written once for both
//! backends (see [`sql`](crate::sql) for why it is a macro).

use garrison_core::TenantId;
use serde_json::json;

use crate::{
    StoreResult,
    sql_inventory::from_json,
    updates::{ArtifactRecord, Release},
};

pub(crate) const RELEASE_COLUMNS: &str = "id, tenant, vendor, model, sequence, version, \
     signed_by, artifacts, expires_at, manifest, created_at, created_by";

#[derive(sqlx::FromRow)]
pub(crate) struct ReleaseRow {
    id: String,
    tenant: String,
    vendor: String,
    model: String,
    sequence: i64,
    version: String,
    signed_by: String,
    artifacts: String,
    expires_at: Option<i64>,
    manifest: Vec<u8>,
    created_at: i64,
    created_by: String,
}

pub(crate) fn release_from_row(row: ReleaseRow) -> StoreResult<Release> {
    let what = format!("release {}", row.id);
    Ok(Release {
        tenant: TenantId::new(row.tenant)?,
        artifacts: from_json(&what, &row.artifacts)?,
        id: row.id,
        vendor: row.vendor,
        model: row.model,
        sequence: row.sequence,
        version: row.version,
        signed_by: row.signed_by,
        expires_at: row.expires_at,
        manifest: row.manifest,
        created_at: row.created_at,
        created_by: row.created_by,
    })
}

pub(crate) fn release_audit_json(r: &Release) -> serde_json::Value {
    json!({
        "id": r.id, "vendor": r.vendor, "model": r.model, "sequence": r.sequence,
        "version": r.version, "signed_by": r.signed_by, "artifacts": r.artifacts,
    })
}

pub(crate) type ArtifactRow = (String, String, i64, i64, String);

pub(crate) fn artifact_from_row(row: ArtifactRow) -> StoreResult<ArtifactRecord> {
    let (tenant, sha256, size, uploaded_at, uploaded_by) = row;
    Ok(ArtifactRecord {
        tenant: TenantId::new(tenant)?,
        sha256,
        size,
        uploaded_at,
        uploaded_by,
    })
}

/// Stamps `UpdateStore` onto a backend.
macro_rules! impl_update_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::updates::UpdateStore for $store {
            async fn update_root_current(
                &self,
                tenant: &garrison_core::TenantId,
            ) -> $crate::StoreResult<Option<$crate::updates::UpdateRoot>> {
                let row: Option<(i64, Vec<u8>, i64, String)> = sqlx::query_as(
                    "SELECT version, document, uploaded_at, uploaded_by FROM update_roots \
                     WHERE tenant = $1 ORDER BY version DESC LIMIT 1",
                )
                .bind(tenant.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(version, document, uploaded_at, uploaded_by)| {
                    $crate::updates::UpdateRoot {
                        tenant: tenant.clone(),
                        version,
                        document,
                        uploaded_at,
                        uploaded_by,
                    }
                }))
            }

            async fn update_root_version(
                &self,
                tenant: &garrison_core::TenantId,
                version: i64,
            ) -> $crate::StoreResult<Option<$crate::updates::UpdateRoot>> {
                let row: Option<(Vec<u8>, i64, String)> = sqlx::query_as(
                    "SELECT document, uploaded_at, uploaded_by FROM update_roots \
                     WHERE tenant = $1 AND version = $2",
                )
                .bind(tenant.as_str())
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(document, uploaded_at, uploaded_by)| {
                    $crate::updates::UpdateRoot {
                        tenant: tenant.clone(),
                        version,
                        document,
                        uploaded_at,
                        uploaded_by,
                    }
                }))
            }

            async fn update_root_record(
                &self,
                root: &$crate::updates::UpdateRoot,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO update_roots (tenant, version, document, uploaded_at, uploaded_by) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(root.tenant.as_str())
                .bind(root.version)
                .bind(&root.document)
                .bind(root.uploaded_at)
                .bind(&root.uploaded_by)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    $crate::error::conflict_or(e, || format!("trust root version {}", root.version))
                })?;
                Self::append_audit(&mut tx, audit.after(serde_json::json!({ "version": root.version })))
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn artifact_record(
                &self,
                artifact: &$crate::updates::ArtifactRecord,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<$crate::updates::ArtifactRecord> {
                let mut tx = self.begin_write().await?;
                let existing: Option<$crate::sql_updates::ArtifactRow> = sqlx::query_as(
                    "SELECT tenant, sha256, size, uploaded_at, uploaded_by FROM artifacts \
                     WHERE tenant = $1 AND sha256 = $2",
                )
                .bind(artifact.tenant.as_str())
                .bind(&artifact.sha256)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = existing {
                    return $crate::sql_updates::artifact_from_row(row);
                }
                sqlx::query(
                    "INSERT INTO artifacts (tenant, sha256, size, uploaded_at, uploaded_by) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(artifact.tenant.as_str())
                .bind(&artifact.sha256)
                .bind(artifact.size)
                .bind(artifact.uploaded_at)
                .bind(&artifact.uploaded_by)
                .execute(&mut *tx)
                .await?;
                Self::append_audit(
                    &mut tx,
                    audit.after(serde_json::json!({ "sha256": artifact.sha256, "size": artifact.size })),
                )
                .await?;
                tx.commit().await?;
                Ok(artifact.clone())
            }

            async fn artifact_get(
                &self,
                tenant: &garrison_core::TenantId,
                sha256: &str,
            ) -> $crate::StoreResult<Option<$crate::updates::ArtifactRecord>> {
                let row: Option<$crate::sql_updates::ArtifactRow> = sqlx::query_as(
                    "SELECT tenant, sha256, size, uploaded_at, uploaded_by FROM artifacts \
                     WHERE tenant = $1 AND sha256 = $2",
                )
                .bind(tenant.as_str())
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::sql_updates::artifact_from_row).transpose()
            }

            async fn release_create(
                &self,
                release: &$crate::updates::Release,
                audit: garrison_core::audit::AuditRecord,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO releases (id, tenant, vendor, model, sequence, version, signed_by, \
                     artifacts, expires_at, manifest, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&release.id)
                .bind(release.tenant.as_str())
                .bind(&release.vendor)
                .bind(&release.model)
                .bind(release.sequence)
                .bind(&release.version)
                .bind(&release.signed_by)
                .bind(release.artifacts.to_string())
                .bind(release.expires_at)
                .bind(&release.manifest)
                .bind(release.created_at)
                .bind(&release.created_by)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    $crate::error::conflict_or(e, || {
                        format!(
                            "a release of {} {} with sequence {}",
                            release.vendor, release.model, release.sequence
                        )
                    })
                })?;
                Self::append_audit(
                    &mut tx,
                    audit.after($crate::sql_updates::release_audit_json(release)),
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn release_get(
                &self,
                tenant: &garrison_core::TenantId,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::updates::Release>> {
                let row: Option<$crate::sql_updates::ReleaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM releases WHERE tenant = $1 AND id = $2",
                    $crate::sql_updates::RELEASE_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::sql_updates::release_from_row).transpose()
            }

            async fn releases_list(
                &self,
                tenant: &garrison_core::TenantId,
                page: &$crate::PageRequest,
            ) -> $crate::StoreResult<$crate::Page<$crate::updates::Release>> {
                let rows: Vec<$crate::sql_updates::ReleaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM releases WHERE tenant = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3",
                    $crate::sql_updates::RELEASE_COLUMNS
                )))
                .bind(tenant.as_str())
                .bind(page.after.as_deref().unwrap_or("\u{10ffff}"))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let items = rows
                    .into_iter()
                    .map($crate::sql_updates::release_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok($crate::sql::paginate(items, page.limit, |r| r.id.clone()))
            }
        }
    };
}

pub(crate) use impl_update_store;
