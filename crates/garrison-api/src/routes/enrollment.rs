//! `/api/v1/enrollment/…`: the ways devices get in — bootstrap tokens, claim certificates, and
//! the approval queue with pre-authorisation. The devices themselves enroll over EST
//! (`/.well-known/est/…`, see the `est` module).

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use garrison_core::{DeviceId, Permission, audit::AuditRecord};
use garrison_store::identity::RequestStatus;
use serde::Deserialize;

use crate::{
    ApiError, ApiJson, ApiResult, ApiState, Caller, ErrorBody, Pagination, StrictQuery,
    routes::devices::{identity_error, path_device},
    views::{
        BootstrapTokenView, ClaimView, CreateBootstrapToken, CreateClaim, CreatedBootstrapToken,
        CreatedClaim, EnrollmentRequestView, PageOf, Preauthorize,
    },
};

fn duration_field(
    field: &str,
    text: Option<&str>,
    default: Duration,
    min: Duration,
    max: Duration,
) -> ApiResult<Duration> {
    match text {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text)
            .ok()
            .filter(|d| *d >= min && *d <= max)
            .ok_or_else(|| {
                ApiError::invalid_body(
                    Some(field.to_owned()),
                    format!(
                        "{field} must be a duration from {} to {} such as \"24h\", got {text:?}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                )
            }),
    }
}

fn count_field(field: &str, value: Option<i64>, default: i64, max: i64) -> ApiResult<i64> {
    let n = value.unwrap_or(default);
    if !(1..=max).contains(&n) {
        return Err(ApiError::invalid_body(
            Some(field.to_owned()),
            format!("{field} must be from 1 to {max}"),
        ));
    }
    Ok(n)
}

/// List bootstrap tokens, newest first.
#[utoipa::path(
    get, path = "/api/v1/enrollment/tokens", tag = "enrollment",
    params(("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of bootstrap tokens", body = PageOf<BootstrapTokenView>))
)]
pub(crate) async fn tokens(
    State(state): State<ApiState>,
    caller: Caller,
    page: Pagination,
) -> ApiResult<Json<PageOf<BootstrapTokenView>>> {
    caller.require(Permission::DevicesRead)?;
    let page = state
        .store()
        .bootstrap_tokens_list(&caller.tenant, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(page, BootstrapTokenView::from)))
}

/// Create a bootstrap token for a device id or id prefix (`line4-*`). The device presents it as
/// the HTTP Basic password to `/.well-known/est/simpleenroll`.
#[utoipa::path(
    post, path = "/api/v1/enrollment/tokens", tag = "enrollment",
    request_body = CreateBootstrapToken,
    security(("bearer" = ["enrollment:write"])),
    responses(
        (status = 201, description = "Created; the token is shown only here", body = CreatedBootstrapToken),
        (status = 400, description = "Invalid field", body = ErrorBody),
    )
)]
pub(crate) async fn create_token(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBootstrapToken>,
) -> ApiResult<(StatusCode, Json<CreatedBootstrapToken>)> {
    caller.require(Permission::EnrollmentWrite)?;
    let pattern = body.device_pattern.trim();
    let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
    if !(prefix.is_empty() && pattern == "*") && DeviceId::new(prefix).is_err() {
        return Err(ApiError::invalid_body(
            Some("device_pattern".into()),
            "device_pattern must be a device id, or a device-id prefix followed by `*`",
        ));
    }
    let max_uses = count_field("max_uses", body.max_uses, 1, 100_000)?;
    let ttl = duration_field(
        "expires_in",
        body.expires_in.as_deref(),
        Duration::from_secs(86_400),
        Duration::from_secs(60),
        Duration::from_secs(365 * 86_400),
    )?;
    let certificate_validity = match body.certificate_validity.as_deref() {
        None => None,
        text => Some(duration_field(
            "certificate_validity",
            text,
            Duration::ZERO,
            Duration::from_secs(3600),
            Duration::from_secs(365 * 86_400),
        )?),
    };
    let (token, secret) = state
        .identity()
        .create_bootstrap_token(
            &caller.tenant,
            pattern,
            max_uses,
            ttl,
            certificate_validity,
            &caller.requester(),
        )
        .await
        .map_err(identity_error)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedBootstrapToken {
            token: secret.token,
            info: token.into(),
        }),
    ))
}

/// Revoke a bootstrap token.
#[utoipa::path(
    delete, path = "/api/v1/enrollment/tokens/{id}", tag = "enrollment",
    params(("id" = String, Path, description = "Bootstrap token id")),
    security(("bearer" = ["enrollment:write"])),
    responses(
        (status = 200, description = "Revoked (idempotent)", body = BootstrapTokenView),
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_token(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<BootstrapTokenView>> {
    caller.require(Permission::EnrollmentWrite)?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid_path(
            "id",
            "bootstrap token ids are 16 hex characters",
        ));
    }
    let audit = AuditRecord::new(
        &caller.tenant,
        caller.actor(),
        "bootstrap_token.revoke",
        format!("bootstrap_token:{id}"),
    )
    .source(caller.source_text());
    let token = state
        .store()
        .bootstrap_token_revoke(&caller.tenant, &id, audit)
        .await?;
    Ok(Json(token.into()))
}

/// List claim certificates.
#[utoipa::path(
    get, path = "/api/v1/enrollment/claims", tag = "enrollment",
    params(("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of claims", body = PageOf<ClaimView>))
)]
pub(crate) async fn claims(
    State(state): State<ApiState>,
    caller: Caller,
    page: Pagination,
) -> ApiResult<Json<PageOf<ClaimView>>> {
    caller.require(Permission::DevicesRead)?;
    let page = state
        .store()
        .claims_list(&caller.tenant, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(page, ClaimView::from)))
}

/// Create a claim certificate for factory provisioning. It may only enroll devices over EST
/// (as the TLS client certificate), never connect to the broker; revoke it like any
/// certificate to stop further enrollments.
#[utoipa::path(
    post, path = "/api/v1/enrollment/claims", tag = "enrollment",
    request_body = CreateClaim,
    security(("bearer" = ["enrollment:write"])),
    responses(
        (status = 201, description = "Created; the private key is shown only here", body = CreatedClaim),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
    )
)]
pub(crate) async fn create_claim(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateClaim>,
) -> ApiResult<(StatusCode, Json<CreatedClaim>)> {
    caller.require(Permission::EnrollmentWrite)?;
    let name = DeviceId::new(body.name.trim())
        .map_err(|e| ApiError::invalid_body(Some("name".into()), e.to_string()))?;
    let max_uses = count_field("max_uses", body.max_uses, 1000, 10_000_000)?;
    let validity = duration_field(
        "valid_for",
        body.valid_for.as_deref(),
        Duration::from_secs(365 * 86_400),
        Duration::from_secs(3600),
        Duration::from_secs(3650 * 86_400),
    )?;
    let (claim, certificate_pem, private_key_pem) = state
        .identity()
        .create_claim(
            &caller.tenant,
            name.as_str(),
            max_uses,
            validity,
            &caller.requester(),
        )
        .await
        .map_err(identity_error)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedClaim {
            claim: claim.into(),
            certificate_pem,
            private_key_pem,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestQuery {
    limit: Option<String>,
    cursor: Option<String>,
    status: Option<String>,
}

/// The approval queue: enrollment requests by device id, optionally of one status.
#[utoipa::path(
    get, path = "/api/v1/enrollment/requests", tag = "enrollment",
    params(("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("status" = Option<String>, Query, description = "`pending`, `approved`, `rejected` or `issued`")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "A page of requests", body = PageOf<EnrollmentRequestView>),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
    )
)]
pub(crate) async fn requests(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<RequestQuery>,
) -> ApiResult<Json<PageOf<EnrollmentRequestView>>> {
    caller.require(Permission::DevicesRead)?;
    let page = Pagination::parse(q.limit, q.cursor)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(RequestStatus::parse(s).ok_or_else(|| {
            ApiError::invalid_query(
                "status",
                "status must be pending, approved, rejected or issued",
            )
        })?),
    };
    let page = state
        .store()
        .enrollment_requests_list(&caller.tenant, status, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(page, EnrollmentRequestView::from)))
}

async fn decide(
    state: ApiState,
    caller: Caller,
    device: String,
    approve: bool,
) -> ApiResult<Json<EnrollmentRequestView>> {
    caller.require(Permission::EnrollmentWrite)?;
    let device = path_device(&device)?;
    let action = if approve {
        "enrollment.approve"
    } else {
        "enrollment.reject"
    };
    let audit = AuditRecord::new(
        &caller.tenant,
        caller.actor(),
        action,
        format!("device:{device}"),
    )
    .source(caller.source_text());
    let request = state
        .store()
        .enrollment_request_decide(&caller.tenant, &device, approve, &caller.username, audit)
        .await?;
    Ok(Json(request.into()))
}

/// Approve a pending request; the device's next EST attempt gets its certificate.
#[utoipa::path(
    post, path = "/api/v1/enrollment/requests/{id}/approve", tag = "enrollment",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["enrollment:write"])),
    responses(
        (status = 200, description = "Approved", body = EnrollmentRequestView),
        (status = 404, description = "No request for that device", body = ErrorBody),
        (status = 409, description = "Not pending", body = ErrorBody),
    )
)]
pub(crate) async fn approve(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<EnrollmentRequestView>> {
    decide(state, caller, id, true).await
}

/// Reject a pending request; the device's further requests are refused.
#[utoipa::path(
    post, path = "/api/v1/enrollment/requests/{id}/reject", tag = "enrollment",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["enrollment:write"])),
    responses(
        (status = 200, description = "Rejected", body = EnrollmentRequestView),
        (status = 404, description = "No request for that device", body = ErrorBody),
        (status = 409, description = "Not pending", body = ErrorBody),
    )
)]
pub(crate) async fn reject(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<EnrollmentRequestView>> {
    decide(state, caller, id, false).await
}

/// Pre-authorise a device id (optionally pinning its public key): its first EST request is
/// issued without waiting for approval.
#[utoipa::path(
    post, path = "/api/v1/enrollment/preauthorized", tag = "enrollment",
    request_body = Preauthorize,
    security(("bearer" = ["enrollment:write"])),
    responses(
        (status = 200, description = "Pre-authorised", body = EnrollmentRequestView),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "A pending request carries another key", body = ErrorBody),
    )
)]
pub(crate) async fn preauthorize(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<Preauthorize>,
) -> ApiResult<Json<EnrollmentRequestView>> {
    caller.require(Permission::EnrollmentWrite)?;
    let device = DeviceId::new(body.device_id.trim())
        .map_err(|e| ApiError::invalid_body(Some("device_id".into()), e.to_string()))?;
    let key = match body.public_key_sha256 {
        None => None,
        Some(k) => {
            let k = k.trim().to_lowercase().replace(':', "");
            if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::invalid_body(
                    Some("public_key_sha256".into()),
                    "public_key_sha256 must be 64 hex characters",
                ));
            }
            Some(k)
        }
    };
    let audit = AuditRecord::new(
        &caller.tenant,
        caller.actor(),
        "enrollment.preauthorize",
        format!("device:{device}"),
    )
    .source(caller.source_text());
    let request = state
        .store()
        .enrollment_preauthorize(&caller.tenant, &device, key, &caller.username, audit)
        .await?;
    Ok(Json(request.into()))
}
