//! The API's error type and its JSON form.
//!
//! Every error response is `{"code": "...", "message": "...", "field": "..."?}` with a stable,
//! machine-readable `code` (documented in the OpenAPI schema [`ErrorBody`]) and a sentence for
//! people that says what to do next where there is something to do.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use garrison_store::StoreError;
use serde::Serialize;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `unauthenticated`, `forbidden`, `invalid_body`,
    /// `payload_too_large`, `not_found`, `conflict`, `rate_limited`, `internal`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The offending field or query parameter, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error an API handler returns.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    pub(crate) body: ErrorBody,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                field: None,
            },
            retry_after_secs: None,
        }
    }

    /// 401: no or bad credentials.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 400 for a request body field (or the body as a whole when `field` is `None`).
    pub fn invalid_body(field: Option<String>, message: impl Into<String>) -> ApiError {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_body", message);
        e.body.field = field;
        e
    }

    /// 400 for a query parameter.
    pub fn invalid_query(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_query", message);
        e.body.field = Some(field.into());
        e
    }

    /// 400 for a path segment.
    pub fn invalid_path(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_path", message);
        e.body.field = Some(field.into());
        e
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413.
    pub fn payload_too_large(limit: usize) -> ApiError {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 415.
    pub fn unsupported_media_type() -> ApiError {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        )
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> ApiError {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    /// 503: a dependency (the store) is unavailable.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500. The detail is logged, never sent: it may name internals.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "Internal error while handling a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    /// The same message under another status and code.
    pub(crate) fn with_status(mut self, status: StatusCode, code: &'static str) -> ApiError {
        self.status = status;
        self.body.code = code;
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.body.code
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict { what } => ApiError::conflict(format!("{what} already exists")),
            StoreError::Refused { reason } => ApiError::conflict(reason),
            StoreError::Connect { .. } => ApiError::unavailable("the database is unavailable"),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"garrison\""),
            );
        }
        response
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
