//! `/api/v1/auth`: login, logout, whoami, password change.

use axum::{Extension, Json, extract::State, http::StatusCode};
use garrison_core::{
    Permission, Username,
    audit::{Actor, AuditRecord},
    format_ms, now_ms,
};
use garrison_store::{NewToken, TokenKind};

use crate::{
    ApiError, ApiJson, ApiResult, ApiState, Caller, ErrorBody,
    auth::ClientAddr,
    routes::{check_password, hash_blocking, mint_blocking},
    verify_secret,
    views::{ChangePassword, LoginRequest, LoginResponse, WhoAmI, credential_name},
};

/// A real argon2id hash to verify against when the username does not exist, so a failed login
/// costs the same time whether or not the account exists.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::hash_secret("no such operator").unwrap_or_default());

/// Log in with a username and password; returns a session token.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    security(()),
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "Wrong username or password, or account disabled", body = ErrorBody),
        (status = 429, description = "Too many failed logins; see Retry-After", body = ErrorBody),
    )
)]
pub(crate) async fn login(
    State(state): State<ApiState>,
    addr: Option<Extension<ClientAddr>>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let source = addr.map(|Extension(a)| a.0.ip());
    let tenant = state.settings().tenant.clone();
    let claimed: String = body.username.chars().take(64).collect();
    if let Err(wait) = state.inner.throttle.check(&claimed, source) {
        metrics::counter!("garrison_api_login_throttled_total").increment(1);
        return Err(ApiError::rate_limited(
            format!("too many failed logins; try again in {wait} seconds"),
            wait,
        ));
    }
    let operator = match Username::new(claimed.clone()) {
        Ok(username) => state.store().operator_auth(&tenant, &username).await?,
        Err(_) => None,
    };
    let (hash, found) = match &operator {
        Some(op) => (op.password_hash.clone(), true),
        None => (DUMMY_HASH.clone(), false),
    };
    let password = body.password;
    let password_ok = tokio::task::spawn_blocking(move || verify_secret(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let reason = match &operator {
        _ if !found => Some("unknown_user"),
        _ if !password_ok => Some("wrong_password"),
        Some(op) if op.operator.disabled => Some("disabled"),
        _ => None,
    };
    let (Some(op), None) = (operator, reason) else {
        let reason = reason.unwrap_or("unknown_user");
        metrics::counter!("garrison_api_login_failures_total", "reason" => reason).increment(1);
        let tripped = state.inner.throttle.record_failure(&claimed, source);
        let record = AuditRecord::new(
            &tenant,
            Actor::anonymous(&claimed),
            "auth.login_failed",
            format!("operator:{claimed}"),
        )
        .after(serde_json::json!({ "reason": reason, "throttled": tripped }))
        .source(source.map(|s| s.to_string()));
        state.store().audit_append(record).await?;
        tracing::warn!(username = %claimed, ?source, reason, "Login failed");
        return Err(ApiError::unauthenticated(
            "wrong username or password, or the account is disabled",
        ));
    };
    state.inner.throttle.record_success(&claimed);
    let minted = mint_blocking().await?;
    let expires_at = now_ms().saturating_add(state.settings().session_ttl.as_millis() as i64);
    let info = state
        .store()
        .token_create(
            NewToken {
                id: minted.id.clone(),
                tenant: tenant.clone(),
                owner: op.operator.username.clone(),
                kind: TokenKind::Session,
                name: "login".into(),
                role: op.operator.role,
                secret_hash: minted.secret_hash,
                expires_at: Some(expires_at),
            },
            AuditRecord::new(
                &tenant,
                Actor::operator(op.operator.username.as_str()),
                "auth.login",
                format!("operator:{}", op.operator.username),
            )
            .source(source.map(|s| s.to_string())),
        )
        .await?;
    Ok(Json(LoginResponse {
        token: minted.token,
        token_id: info.id,
        username: op.operator.username.into(),
        role: op.operator.role,
        expires_at: format_ms(expires_at),
    }))
}

/// End the current session (revokes the session token).
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = ["self:manage"])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, description = "The credential is an API token; revoke it instead", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks self:manage", body = ErrorBody),
    )
)]
pub(crate) async fn logout(State(state): State<ApiState>, caller: Caller) -> ApiResult<StatusCode> {
    caller.require(Permission::SelfManage)?;
    if caller.kind != TokenKind::Session {
        return Err(ApiError::invalid_body(
            None,
            "this is an API token, not a session: revoke it with `DELETE /api/v1/tokens/{id}`",
        ));
    }
    let record = AuditRecord::new(
        &caller.tenant,
        caller.actor(),
        "auth.logout",
        format!("token:{}", caller.token_id),
    )
    .source(caller.source_text());
    state
        .store()
        .token_revoke(&caller.tenant, &caller.token_id, record)
        .await?;
    state.inner.auth.forget(&caller.token_id);
    Ok(StatusCode::NO_CONTENT)
}

/// Who am I: the caller's username, role, credential and permissions.
#[utoipa::path(
    get, path = "/api/v1/auth/whoami", tag = "auth",
    security(("bearer" = ["system:read"])),
    responses(
        (status = 200, description = "The caller", body = WhoAmI),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks system:read", body = ErrorBody),
    )
)]
pub(crate) async fn whoami(caller: Caller) -> ApiResult<Json<WhoAmI>> {
    caller.require(Permission::SystemRead)?;
    Ok(Json(WhoAmI {
        username: caller.username.to_string(),
        role: caller.role,
        credential: credential_name(caller.kind).to_owned(),
        token_id: caller.token_id.clone(),
        permissions: Permission::ALL
            .iter()
            .filter(|p| caller.may(**p))
            .map(|p| p.as_str().to_owned())
            .collect(),
    }))
}

/// Change one's own password (ends one's other sessions).
#[utoipa::path(
    post, path = "/api/v1/auth/password", tag = "auth",
    request_body = ChangePassword,
    security(("bearer" = ["self:manage"])),
    responses(
        (status = 204, description = "Password changed; all sessions ended"),
        (status = 400, description = "New password too weak or body malformed", body = ErrorBody),
        (status = 401, description = "Not authenticated, or current password wrong", body = ErrorBody),
        (status = 403, description = "Role lacks self:manage", body = ErrorBody),
    )
)]
pub(crate) async fn change_password(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChangePassword>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::SelfManage)?;
    check_password("new_password", &body.new_password)?;
    let current = state
        .store()
        .operator_auth(&caller.tenant, &caller.username)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the account no longer exists"))?;
    let (given, hash) = (body.current_password, current.password_hash);
    let ok = tokio::task::spawn_blocking(move || verify_secret(&given, &hash))
        .await
        .map_err(ApiError::internal)?;
    if !ok {
        return Err(ApiError::unauthenticated("the current password is wrong"));
    }
    let new_hash = hash_blocking(body.new_password).await?;
    let record = AuditRecord::new(
        &caller.tenant,
        caller.actor(),
        "operator.password_change",
        format!("operator:{}", caller.username),
    )
    .source(caller.source_text());
    state
        .store()
        .operator_set_password(&caller.tenant, &caller.username, &new_hash, record)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
