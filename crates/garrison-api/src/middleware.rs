//! Layers applied to every request: whole-body reading, authentication for protected routes,
//! HTTP metrics, and JSON answers for unknown routes and methods.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{ApiState, auth::ClientAddr, error::ApiError};

/// Reads the whole request body (up to the limit) before any handler runs. A handler that
/// answers without reading a body (a `POST` with `{}` to an action route) would otherwise make
/// HTTP/2 reset the stream while the client is still sending, which some clients (curl)
/// report as a failed request although the action happened.
pub(crate) async fn read_whole_body(
    State(limit): State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => next.run(Request::from_parts(parts, bytes.into())).await,
        Err(_) => ApiError::payload_too_large(limit).into_response(),
    }
}

/// Authenticates the bearer token and puts the [`Caller`](crate::Caller) into the request's
/// extensions; 401 otherwise. Applied to the whole protected router, so a route added there is
/// authenticated whether or not its handler asks for the caller.
pub(crate) async fn require_auth(
    State(state): State<ApiState>,
    req: Request,
    next: Next,
) -> Response {
    match authenticate(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(refusal) => refusal,
    }
}

/// Reads and discards up to 64 MiB of a refused streamed upload, for at most 10 s, before
/// answering: an answer sent while the client is still sending makes HTTP/2 reset the
/// stream, and clients (curl) then report a transport failure instead of the refusal. Nothing
/// is kept in memory; larger or slower bodies are cut off.
pub(crate) async fn drain(mut body: axum::body::Body) {
    use http_body_util::BodyExt;
    let discard = async {
        let mut read = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len());
            if read > 64 * 1024 * 1024 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), discard).await;
}

/// [`require_auth`] for routes whose bodies are streamed (and so not read beforehand): a
/// refused request's body is [`drain`]ed first, so clients see the 401.
pub(crate) async fn require_auth_streaming(
    State(state): State<ApiState>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let probe = Request::from_parts(parts.clone(), axum::body::Body::empty());
    match authenticate(&state, probe).await {
        Ok(authenticated) => {
            let (parts, _) = authenticated.into_parts();
            next.run(Request::from_parts(parts, body)).await
        }
        Err(refusal) => {
            drain(body).await;
            refusal
        }
    }
}

async fn authenticate(state: &ApiState, mut req: Request) -> Result<Request, Response> {
    let source = req.extensions().get::<ClientAddr>().map(|a| a.0.ip());
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let Some(token) = token else {
        return Err(ApiError::unauthenticated(
            "authentication required: send `Authorization: Bearer <token>` (get one with `garrison login`)",
        )
        .into_response());
    };
    match state.inner.auth.authenticate(token, source).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            Ok(req)
        }
        Err(e) => Err(e.into_response()),
    }
}

/// Counts requests and their latency by method, matched route and status.
pub(crate) async fn record_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "garrison_http_requests_total",
        "method" => method.clone(), "route" => route.clone(), "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "garrison_http_request_duration_seconds",
        "method" => method, "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    response
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API reference is at /api/docs")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    let mut e = ApiError::not_found("method not allowed on this route");
    e = e.with_status(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    e
}
