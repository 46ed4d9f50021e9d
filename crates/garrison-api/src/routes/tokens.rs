//! `/api/v1/tokens`: API tokens. Everyone manages their own; `tokens:all` sees everyone's.

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use garrison_core::{Permission, audit::AuditRecord, now_ms};
use garrison_store::{NewToken, TokenKind};

use crate::{
    ApiError, ApiJson, ApiResult, ApiState, Caller, ErrorBody, Pagination,
    routes::mint_blocking,
    views::{CreateToken, CreatedToken, PageOf, TokenView},
};

const DEFAULT_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
const MAX_LIFETIME: Duration = Duration::from_secs(3650 * 24 * 3600);

/// List API tokens: the caller's own, or everyone's with `tokens:all`. Newest first.
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens",
    params(("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["self:manage"])),
    responses(
        (status = 200, description = "A page of tokens", body = PageOf<TokenView>),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks self:manage", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    page: Pagination,
) -> ApiResult<Json<PageOf<TokenView>>> {
    caller.require(Permission::SelfManage)?;
    let owner = (!caller.may(Permission::TokensAll)).then_some(&caller.username);
    let page = state
        .store()
        .tokens_list(&caller.tenant, owner, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(page, TokenView::from)))
}

/// Create an API token. Its role defaults to the caller's and may not exceed it.
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens",
    request_body = CreateToken,
    security(("bearer" = ["self:manage"])),
    responses(
        (status = 201, description = "Created; the token string is shown only here", body = CreatedToken),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Requested role exceeds the caller's", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    caller.require(Permission::SelfManage)?;
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid_body(
            Some("name".into()),
            "name must be 1 to 100 characters",
        ));
    }
    let role = body.role.unwrap_or(caller.role);
    if !caller.role.covers(role) || !caller.owner_role.covers(role) {
        return Err(ApiError::forbidden(format!(
            "a {} cannot create a token with role {role}: a token's role may not exceed its creator's",
            caller.role
        )));
    }
    let lifetime = match body.expires_in.as_deref() {
        None => DEFAULT_LIFETIME,
        Some(text) => humantime::parse_duration(text)
            .ok()
            .filter(|d| *d >= Duration::from_secs(60) && *d <= MAX_LIFETIME)
            .ok_or_else(|| {
                ApiError::invalid_body(
                    Some("expires_in".into()),
                    format!("expires_in must be a duration from 1m to 3650d such as \"30d\" or \"12h\", got {text:?}"),
                )
            })?,
    };
    let minted = mint_blocking().await?;
    let record = AuditRecord::new(
        &caller.tenant,
        caller.actor(),
        "token.create",
        format!("token:{}", minted.id),
    )
    .source(caller.source_text());
    let info = state
        .store()
        .token_create(
            NewToken {
                id: minted.id,
                tenant: caller.tenant.clone(),
                owner: caller.username.clone(),
                kind: TokenKind::Api,
                name,
                role,
                secret_hash: minted.secret_hash,
                expires_at: Some(now_ms().saturating_add(lifetime.as_millis() as i64)),
            },
            record,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: minted.token,
            info: info.into(),
        }),
    ))
}

/// Revoke a token: one's own, or anyone's with `tokens:all`.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    security(("bearer" = ["self:manage"])),
    responses(
        (status = 200, description = "Revoked (idempotent)", body = TokenView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such token visible to the caller", body = ErrorBody),
    )
)]
pub(crate) async fn revoke(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    caller.require(Permission::SelfManage)?;
    let id = uuid::Uuid::try_parse(&id)
        .map_err(|_| ApiError::invalid_path("id", "token ids are UUIDs"))?
        .to_string();
    let not_found = || ApiError::not_found(format!("token {id} not found"));
    let token = state
        .store()
        .token_auth(&id)
        .await?
        .ok_or_else(not_found)?
        .token;
    let visible = token.tenant == caller.tenant
        && (token.owner == caller.username || caller.may(Permission::TokensAll));
    if !visible {
        return Err(not_found());
    }
    let record = AuditRecord::new(
        &caller.tenant,
        caller.actor(),
        "token.revoke",
        format!("token:{id}"),
    )
    .source(caller.source_text());
    let info = state
        .store()
        .token_revoke(&caller.tenant, &id, record)
        .await?;
    state.inner.auth.forget(&id);
    Ok(Json(info.into()))
}
