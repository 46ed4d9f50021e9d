//! Probes, metrics, server information and the API's own documentation.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use garrison_core::Permission;

use crate::{
    ApiResult, ApiState, Caller, ErrorBody,
    views::{Status, SystemInfo},
};

/// Liveness: the process is up and serving. Unauthenticated.
#[utoipa::path(
    get, path = "/healthz", tag = "system",
    security(()),
    responses((status = 200, description = "Alive", body = Status))
)]
pub(crate) async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
        detail: None,
    })
}

/// Readiness: the store answers within two seconds. Unauthenticated.
#[utoipa::path(
    get, path = "/readyz", tag = "system",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Not ready", body = Status),
    )
)]
pub(crate) async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Status>) {
    match tokio::time::timeout(Duration::from_secs(2), state.store().ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(Status {
                status: "ready".into(),
                detail: None,
            }),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Status {
                    status: "unavailable".into(),
                    detail: Some("the store is unavailable".into()),
                }),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Status {
                status: "unavailable".into(),
                detail: Some("the store did not answer within 2s".into()),
            }),
        ),
    }
}

/// Server information: version, store backend, uptime, CA fingerprint.
#[utoipa::path(
    get, path = "/api/v1/system/info", tag = "system",
    security(("bearer" = ["system:read"])),
    responses(
        (status = 200, description = "Server information", body = SystemInfo),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks system:read", body = ErrorBody),
    )
)]
pub(crate) async fn info(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<SystemInfo>> {
    caller.require(Permission::SystemRead)?;
    Ok(Json(SystemInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        store: state.store().backend().as_str().into(),
        uptime_seconds: state.inner.started.elapsed().as_secs(),
        ca_fingerprint: state.inner.facts.ca_fingerprint.clone(),
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get, path = "/metrics", tag = "system",
    security(("bearer" = ["metrics:read"])),
    responses(
        (status = 200, description = "Metrics", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks metrics:read", body = ErrorBody),
    )
)]
pub(crate) async fn metrics(State(state): State<ApiState>, caller: Caller) -> ApiResult<Response> {
    caller.require(Permission::MetricsRead)?;
    let mut response = state.inner.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// This OpenAPI document.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "system",
    security(("bearer" = ["system:read"])),
    responses(
        (status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
pub(crate) async fn openapi_json(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.require(Permission::SystemRead)?;
    let spec = state.openapi();
    Ok(Json(spec).into_response())
}

/// The API reference as an HTML page, rendered on the server from the OpenAPI document.
#[utoipa::path(
    get, path = "/api/docs", tag = "system",
    security(("bearer" = ["system:read"])),
    responses(
        (status = 200, description = "HTML reference", content_type = "text/html", body = String),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
pub(crate) async fn docs(State(state): State<ApiState>, caller: Caller) -> ApiResult<Response> {
    caller.require(Permission::SystemRead)?;
    let spec = state.openapi();
    let mut response = Html(crate::docs::render(&spec)).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    Ok(response)
}
