//! `/api/v1/operators`: operator accounts (admin only to change, admin and auditor to read).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use garrison_core::{Permission, Role, Username, audit::AuditRecord};
use garrison_store::{NewOperator, PageRequest};

use crate::{
    ApiError, ApiJson, ApiResult, ApiState, Caller, ErrorBody, Pagination, generate_password,
    routes::{check_password, hash_blocking, path_username},
    views::{CreateOperator, CreatedOperator, OperatorView, PageOf},
};

/// List operators, ordered by username.
#[utoipa::path(
    get, path = "/api/v1/operators", tag = "operators",
    params(("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["operators:read"])),
    responses(
        (status = 200, description = "A page of operators", body = PageOf<OperatorView>),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks operators:read", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    page: Pagination,
) -> ApiResult<Json<PageOf<OperatorView>>> {
    caller.require(Permission::OperatorsRead)?;
    let page = state
        .store()
        .operators_list(&caller.tenant, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(page, OperatorView::from)))
}

/// Create an operator. Without a password, one is generated and returned once.
#[utoipa::path(
    post, path = "/api/v1/operators", tag = "operators",
    request_body = CreateOperator,
    security(("bearer" = ["operators:write"])),
    responses(
        (status = 201, description = "Created", body = CreatedOperator),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks operators:write", body = ErrorBody),
        (status = 409, description = "Username taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOperator>,
) -> ApiResult<(StatusCode, Json<CreatedOperator>)> {
    caller.require(Permission::OperatorsWrite)?;
    let username = Username::new(body.username)
        .map_err(|e| ApiError::invalid_body(Some("username".into()), e.to_string()))?;
    let (password, generated) = match body.password {
        Some(p) => {
            check_password("password", &p)?;
            (p, false)
        }
        None => (generate_password().map_err(ApiError::internal)?, true),
    };
    let hash = hash_blocking(password.clone()).await?;
    let record = AuditRecord::new(
        &caller.tenant,
        caller.actor(),
        "operator.create",
        format!("operator:{username}"),
    )
    .source(caller.source_text());
    let op = state
        .store()
        .operator_create(
            NewOperator {
                tenant: caller.tenant.clone(),
                username,
                role: body.role,
                password_hash: hash,
            },
            record,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOperator {
            operator: op.into(),
            initial_password: generated.then_some(password),
        }),
    ))
}

/// One operator.
#[utoipa::path(
    get, path = "/api/v1/operators/{username}", tag = "operators",
    params(("username" = String, Path, description = "Operator username")),
    security(("bearer" = ["operators:read"])),
    responses(
        (status = 200, description = "The operator", body = OperatorView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks operators:read", body = ErrorBody),
        (status = 404, description = "No such operator", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult<Json<OperatorView>> {
    caller.require(Permission::OperatorsRead)?;
    let username = path_username(&username)?;
    state
        .store()
        .operator_get(&caller.tenant, &username)
        .await?
        .map(|o| Json(o.into()))
        .ok_or_else(|| ApiError::not_found(format!("operator {username:?} not found")))
}

/// Disable an operator: they can no longer log in and all their tokens are revoked.
#[utoipa::path(
    post, path = "/api/v1/operators/{username}/disable", tag = "operators",
    params(("username" = String, Path, description = "Operator username")),
    security(("bearer" = ["operators:write"])),
    responses(
        (status = 200, description = "Disabled", body = OperatorView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks operators:write", body = ErrorBody),
        (status = 404, description = "No such operator", body = ErrorBody),
        (status = 409, description = "Would disable yourself or the last enabled admin", body = ErrorBody),
    )
)]
pub(crate) async fn disable(
    State(state): State<ApiState>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult<Json<OperatorView>> {
    caller.require(Permission::OperatorsWrite)?;
    let username = path_username(&username)?;
    if username == caller.username {
        return Err(ApiError::conflict("you cannot disable your own account"));
    }
    let target = state
        .store()
        .operator_get(&caller.tenant, &username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("operator {username:?} not found")))?;
    if target.role == Role::Admin && !target.disabled && enabled_admins(&state, &caller).await? <= 1
    {
        return Err(ApiError::conflict("cannot disable the last enabled admin"));
    }
    set_disabled(&state, &caller, username, true).await
}

/// Enable a disabled operator (their old tokens stay revoked).
#[utoipa::path(
    post, path = "/api/v1/operators/{username}/enable", tag = "operators",
    params(("username" = String, Path, description = "Operator username")),
    security(("bearer" = ["operators:write"])),
    responses(
        (status = 200, description = "Enabled", body = OperatorView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks operators:write", body = ErrorBody),
        (status = 404, description = "No such operator", body = ErrorBody),
    )
)]
pub(crate) async fn enable(
    State(state): State<ApiState>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult<Json<OperatorView>> {
    caller.require(Permission::OperatorsWrite)?;
    let username = path_username(&username)?;
    set_disabled(&state, &caller, username, false).await
}

async fn set_disabled(
    state: &ApiState,
    caller: &Caller,
    username: Username,
    disabled: bool,
) -> ApiResult<Json<OperatorView>> {
    let action = if disabled {
        "operator.disable"
    } else {
        "operator.enable"
    };
    let record = AuditRecord::new(
        &caller.tenant,
        caller.actor(),
        action,
        format!("operator:{username}"),
    )
    .source(caller.source_text());
    let op = state
        .store()
        .operator_set_disabled(&caller.tenant, &username, disabled, record)
        .await?;
    Ok(Json(op.into()))
}

async fn enabled_admins(state: &ApiState, caller: &Caller) -> ApiResult<usize> {
    let mut count = 0;
    let mut page = PageRequest::first(500);
    loop {
        let batch = state.store().operators_list(&caller.tenant, &page).await?;
        count += batch
            .items
            .iter()
            .filter(|o| o.role == Role::Admin && !o.disabled)
            .count();
        match batch.next {
            Some(next) => page.after = Some(next),
            None => return Ok(count),
        }
    }
}
