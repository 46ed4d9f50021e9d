//! The release repository: the pinned trust root, content-addressed artifacts (streamed in,
//! served with ranges) and signed releases. The server verifies and serves; signing happens
//! offline with `garrison release`.

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Path, Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use garrison_core::{Permission, format_ms};
use garrison_releases::{Actor, ReleaseError};
use garrison_update::TrustRoot;
use serde::Serialize;
use tower::ServiceExt;
use utoipa::ToSchema;

use crate::{ApiError, ApiResult, ApiState, Caller, ErrorBody, extract::Pagination, views::PageOf};

/// COSE documents (RFC 9052 §2: `application/cose`).
const COSE: &str = "application/cose";

pub(crate) fn release_error(e: ReleaseError) -> ApiError {
    match e {
        ReleaseError::Store(e) => e.into(),
        ReleaseError::NoRoot | ReleaseError::MissingArtifact { .. } => {
            ApiError::conflict(e.to_string())
        }
        ReleaseError::TooLarge { .. } => ApiError::invalid_body(None, e.to_string())
            .with_status(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ReleaseError::BadDigest(_) => ApiError::invalid_path("sha256", e.to_string()),
        ReleaseError::Update(_) | ReleaseError::DigestMismatch { .. } | ReleaseError::Upload(_) => {
            ApiError::invalid_body(None, e.to_string())
        }
        other => ApiError::internal(other),
    }
}

pub(crate) fn actor(caller: &Caller) -> Actor {
    let r = caller.requester();
    Actor {
        username: r.username.to_string(),
        actor: r.actor,
        source: r.source,
    }
}

/// A key a trust root lists.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyView {
    /// Key id (first 16 bytes of the SHA-256 of its SubjectPublicKeyInfo, hex).
    id: String,
    /// `ed25519` or `ecdsa-p256`.
    algorithm: String,
}

/// The pinned trust root.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RootView {
    /// Its version (1, then one more per rotation).
    version: u64,
    /// Keys that may sign trust roots.
    root_keys: Vec<KeyView>,
    /// How many of them must.
    root_threshold: u32,
    /// Keys that may sign releases.
    release_keys: Vec<KeyView>,
    /// When devices stop accepting it (RFC 3339), if ever.
    expires_at: Option<String>,
    /// When it was pinned here (RFC 3339).
    pinned_at: String,
    /// By whom.
    pinned_by: String,
}

fn keys(keys: &[garrison_update::PublicKey]) -> Vec<KeyView> {
    keys.iter()
        .map(|k| KeyView {
            id: k.id().to_string(),
            algorithm: k.algorithm.name().to_owned(),
        })
        .collect()
}

fn root_view(root: &TrustRoot, pinned_at: i64, pinned_by: String) -> RootView {
    RootView {
        version: root.root_version,
        root_keys: keys(&root.root_keys),
        root_threshold: root.root_threshold,
        release_keys: keys(&root.release_keys),
        expires_at: root.expires_at.map(format_ms),
        pinned_at: format_ms(pinned_at),
        pinned_by,
    }
}

async fn pinned(state: &ApiState) -> ApiResult<(TrustRoot, garrison_store::updates::UpdateRoot)> {
    state
        .releases()?
        .root()
        .await
        .map_err(release_error)?
        .ok_or_else(|| ApiError::not_found("no trust root is pinned yet"))
}

/// The pinned trust root.
#[utoipa::path(
    get, path = "/api/v1/updates/root", tag = "updates",
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "The pinned root", body = RootView),
              (status = 404, description = "No root is pinned yet", body = ErrorBody))
)]
pub(crate) async fn root(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<RootView>> {
    caller.require(Permission::DevicesRead)?;
    let (root, stored) = pinned(&state).await?;
    Ok(Json(root_view(
        &root,
        stored.uploaded_at,
        stored.uploaded_by,
    )))
}

/// The pinned trust root's signed document (COSE_Sign), for devices to pin.
#[utoipa::path(
    get, path = "/api/v1/updates/root/document", tag = "updates",
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "The document", content_type = "application/cose", body = Vec<u8>),
              (status = 404, description = "No root is pinned yet", body = ErrorBody))
)]
pub(crate) async fn root_document(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Permission::DevicesRead)?;
    let (_, stored) = pinned(&state).await?;
    Ok(([(header::CONTENT_TYPE, COSE)], stored.document).into_response())
}

/// Pin the trust root (the body is the COSE_Sign document `garrison release root` writes).
/// The first must carry its own threshold of root signatures; each later one must be the next
/// version, signed by the threshold of the pinned root's keys and of its own.
#[utoipa::path(
    put, path = "/api/v1/updates/root", tag = "updates",
    request_body(content = Vec<u8>, description = "The signed trust root", content_type = "application/cose"),
    security(("bearer" = ["trust-root:write"])),
    responses(
        (status = 200, description = "Pinned", body = RootView),
        (status = 400, description = "It does not verify (the message says why)", body = ErrorBody),
        (status = 409, description = "That version is already pinned", body = ErrorBody),
    )
)]
pub(crate) async fn pin_root(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<RootView>> {
    caller.require(Permission::TrustRootWrite)?;
    let by = actor(&caller);
    let root = state
        .releases()?
        .pin_root(&body, &by)
        .await
        .map_err(release_error)?;
    Ok(Json(root_view(&root, garrison_core::now_ms(), by.username)))
}

/// An artifact held.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ArtifactView {
    /// SHA-256, its address.
    sha256: String,
    /// Bytes.
    size: i64,
    /// Uploaded (RFC 3339).
    uploaded_at: String,
    /// By whom.
    uploaded_by: String,
}

/// Upload an artifact under the SHA-256 it must have. The body is streamed to storage while
/// hashed; more than `updates.max_artifact_size` bytes, or content with another digest, is
/// refused and nothing is kept. Uploading content already held is a no-op (200).
#[utoipa::path(
    put, path = "/api/v1/updates/artifacts/{sha256}", tag = "updates",
    params(("sha256" = String, Path, description = "SHA-256 of the content, lowercase hex")),
    request_body(content = Vec<u8>, description = "The file", content_type = "application/octet-stream"),
    security(("bearer" = ["releases:write"])),
    responses(
        (status = 201, description = "Stored", body = ArtifactView),
        (status = 200, description = "Already held", body = ArtifactView),
        (status = 400, description = "The content's digest differs, or the digest is malformed", body = ErrorBody),
        (status = 413, description = "Larger than updates.max_artifact_size", body = ErrorBody),
    )
)]
pub(crate) async fn upload_artifact(
    State(state): State<ApiState>,
    caller: Caller,
    Path(sha256): Path<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<ArtifactView>)> {
    let checked = caller
        .require(Permission::ReleasesWrite)
        .and_then(|()| state.releases())
        .and_then(|releases| {
            releases
                .artifact_path(&sha256)
                .map(|_| releases)
                .ok_or_else(|| release_error(ReleaseError::BadDigest(sha256.clone())))
        });
    let releases = match checked {
        Ok(releases) => releases,
        Err(e) => {
            crate::middleware::drain(body).await;
            return Err(e);
        }
    };
    let (record, created) = releases
        .upload(&sha256, body.into_data_stream(), &actor(&caller))
        .await
        .map_err(release_error)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(ArtifactView {
            sha256: record.sha256,
            size: record.size,
            uploaded_at: format_ms(record.uploaded_at),
            uploaded_by: record.uploaded_by,
        }),
    ))
}

/// Download an artifact. `Range` requests are answered with 206 and the part asked for, so
/// an interrupted download resumes where it stopped.
#[utoipa::path(
    get, path = "/api/v1/updates/artifacts/{sha256}", tag = "updates",
    params(("sha256" = String, Path, description = "SHA-256 of the content, lowercase hex")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "Not held", body = ErrorBody),
        (status = 416, description = "The range is outside the file"),
    )
)]
pub(crate) async fn download_artifact(
    State(state): State<ApiState>,
    caller: Caller,
    Path(sha256): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    caller.require(Permission::DevicesRead)?;
    let releases = state.releases()?;
    releases
        .artifact(&sha256)
        .await
        .map_err(release_error)?
        .ok_or_else(|| ApiError::not_found(format!("artifact {sha256} not found")))?;
    let path = releases
        .artifact_path(&sha256)
        .ok_or_else(|| ApiError::invalid_path("sha256", "not a SHA-256"))?;
    // Files are named by digest, without an extension: served as application/octet-stream.
    let served = tower_http::services::ServeFile::new(&path)
        .oneshot(request)
        .await
        .map_err(ApiError::internal)?;
    Ok(served.map(Body::new))
}

/// A published release.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReleaseView {
    /// Id.
    id: String,
    /// Vendor identifier.
    vendor: String,
    /// Device class (model).
    model: String,
    /// Sequence number (devices install only higher ones).
    sequence: i64,
    /// Version.
    version: String,
    /// Id of the release key that signed it.
    signed_by: String,
    /// Its artifacts: name, sha256, size.
    artifacts: serde_json::Value,
    /// When devices stop accepting it (RFC 3339), if ever.
    expires_at: Option<String>,
    /// Published (RFC 3339).
    created_at: String,
    /// By whom.
    created_by: String,
}

impl From<garrison_store::updates::Release> for ReleaseView {
    fn from(r: garrison_store::updates::Release) -> Self {
        ReleaseView {
            id: r.id,
            vendor: r.vendor,
            model: r.model,
            sequence: r.sequence,
            version: r.version,
            signed_by: r.signed_by,
            artifacts: r.artifacts,
            expires_at: r.expires_at.map(format_ms),
            created_at: format_ms(r.created_at),
            created_by: r.created_by,
        }
    }
}

/// Publish a release: the body is the signed manifest (COSE_Sign1) `garrison release sign`
/// writes. It must verify against the pinned root, and every artifact it names must be
/// uploaded with the size it states.
#[utoipa::path(
    post, path = "/api/v1/updates/releases", tag = "updates",
    request_body(content = Vec<u8>, description = "The signed manifest", content_type = "application/cose"),
    security(("bearer" = ["releases:write"])),
    responses(
        (status = 201, description = "Published", body = ReleaseView),
        (status = 400, description = "It does not verify (forged, unknown key, expired, malformed)", body = ErrorBody),
        (status = 409, description = "No root pinned, an artifact not uploaded, or this vendor, model and sequence already published", body = ErrorBody),
    )
)]
pub(crate) async fn publish(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ReleaseView>)> {
    caller.require(Permission::ReleasesWrite)?;
    let release = state
        .releases()?
        .publish(&body, &actor(&caller))
        .await
        .map_err(release_error)?;
    Ok((StatusCode::CREATED, Json(release.into())))
}

/// Releases, newest first.
#[utoipa::path(
    get, path = "/api/v1/updates/releases", tag = "updates",
    params(("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of releases", body = PageOf<ReleaseView>))
)]
pub(crate) async fn releases(
    State(state): State<ApiState>,
    caller: Caller,
    page: Pagination,
) -> ApiResult<Json<PageOf<ReleaseView>>> {
    caller.require(Permission::DevicesRead)?;
    let page = state
        .store()
        .releases_list(&caller.tenant, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(page, ReleaseView::from)))
}

/// The release `id`, for a caller who may read releases.
async fn published(
    state: &ApiState,
    caller: &Caller,
    id: &str,
) -> ApiResult<garrison_store::updates::Release> {
    caller.require(Permission::DevicesRead)?;
    state
        .store()
        .release_get(&caller.tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("release {id} not found")))
}

/// One release.
#[utoipa::path(
    get, path = "/api/v1/updates/releases/{id}", tag = "updates",
    params(("id" = String, Path, description = "Release id")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "The release", body = ReleaseView),
              (status = 404, description = "No such release", body = ErrorBody))
)]
pub(crate) async fn release(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ReleaseView>> {
    let release = published(&state, &caller, &id).await?;
    Ok(Json(release.into()))
}

/// A release's signed manifest (COSE_Sign1), exactly as published: devices verify it
/// themselves against the root they pin.
#[utoipa::path(
    get, path = "/api/v1/updates/releases/{id}/manifest", tag = "updates",
    params(("id" = String, Path, description = "Release id")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "The manifest", content_type = "application/cose", body = Vec<u8>),
              (status = 404, description = "No such release", body = ErrorBody))
)]
pub(crate) async fn manifest(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let release = published(&state, &caller, &id).await?;
    Ok(([(header::CONTENT_TYPE, COSE)], release.manifest).into_response())
}
