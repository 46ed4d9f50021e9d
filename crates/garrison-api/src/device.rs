//! Routes for devices, authenticated by their certificate rather than an operator's token:
//! the artifacts of the campaign a device is working on (`/device/v1/artifacts/{sha256}`,
//! with `Range` so an interrupted download resumes). A device may fetch only the artifacts of
//! a release it is being updated to; everything else is 403, and every refusal is logged.
//! `/device/v1/root` is the pinned trust root (COSE_Sign) for a device to pin or to rotate to;
//! `/device/v1/root/{version}` each earlier version, so a device several rotations behind
//! walks the chain one signed step at a time.

use axum::{
    Router,
    body::Body,
    extract::{Path, Request, State},
    response::Response,
    routing::get,
};
use garrison_core::DeviceId;
use tower::ServiceExt;

use crate::{ApiError, ApiResult, ApiState, ClientAddr, ClientCertificate};

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/device/v1/artifacts/{sha256}", get(artifact))
        .route("/device/v1/root", get(root))
        .route("/device/v1/root/{version}", get(root_version))
}

/// The device the request's client certificate names, if it is one and not revoked.
fn device_of(state: &ApiState, request: &Request) -> ApiResult<DeviceId> {
    let source = request
        .extensions()
        .get::<ClientAddr>()
        .map(|a| a.0.ip().to_string());
    let refuse = |why: &'static str| {
        tracing::warn!(
            source = source.as_deref().unwrap_or("-"),
            why,
            "Device download refused"
        );
        why
    };
    let Some(ClientCertificate(cert)) = request.extensions().get::<ClientCertificate>() else {
        return Err(ApiError::unauthenticated(refuse(
            "present the device's certificate as the TLS client certificate",
        )));
    };
    if state.identity().directory().is_revoked(&cert.serial) {
        return Err(ApiError::unauthenticated(refuse(
            "this certificate is revoked",
        )));
    }
    DeviceId::new(cert.common_name.clone())
        .map_err(|_| ApiError::forbidden(refuse("this certificate does not name a device")))
}

async fn artifact(
    State(state): State<ApiState>,
    Path(sha256): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    let device = device_of(&state, &request)?;
    if !state.campaigns()?.may_fetch(&device, &sha256).await {
        tracing::warn!(%device, sha256, "A device asked for an artifact of no update it is working on");
        return Err(ApiError::forbidden(
            "this device is not being updated to a release with this artifact",
        ));
    }
    let path = state
        .releases()?
        .artifact_path(&sha256)
        .ok_or_else(|| ApiError::invalid_path("sha256", "not a SHA-256"))?;
    let served = tower_http::services::ServeFile::new(&path)
        .oneshot(request)
        .await
        .map_err(ApiError::internal)?;
    metrics::counter!("garrison_device_artifact_downloads_total").increment(1);
    Ok(served.map(Body::new))
}

async fn root(State(state): State<ApiState>, request: Request) -> ApiResult<Response> {
    device_of(&state, &request)?;
    let (_, stored) = state
        .releases()?
        .root()
        .await
        .map_err(crate::routes::release_error)?
        .ok_or_else(|| ApiError::not_found("no trust root is pinned yet"))?;
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/cose")
        .body(Body::from(stored.document))
        .map_err(ApiError::internal)
}

async fn root_version(
    State(state): State<ApiState>,
    Path(version): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    device_of(&state, &request)?;
    let version: i64 = version
        .parse()
        .map_err(|_| ApiError::invalid_path("version", "not a root version (a number)"))?;
    let stored = state
        .store()
        .update_root_version(&state.settings().tenant, version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no trust root version {version}")))?;
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/cose")
        .body(Body::from(stored.document))
        .map_err(ApiError::internal)
}
