//! `/api/v1/audit`: read and verify the audit chain.

use axum::{Json, extract::State};
use garrison_core::Permission;

use crate::{
    ApiResult, ApiState, Caller, ErrorBody, Pagination,
    views::{AuditEntryView, AuditVerifyView, PageOf},
};

/// Audit entries, newest first.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "A page of entries", body = PageOf<AuditEntryView>),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks audit:read", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    page: Pagination,
) -> ApiResult<Json<PageOf<AuditEntryView>>> {
    caller.require(Permission::AuditRead)?;
    if let Some(cursor) = &page.cursor
        && cursor.parse::<i64>().is_err()
    {
        return Err(crate::ApiError::invalid_query(
            "cursor",
            "audit cursors are sequence numbers",
        ));
    }
    let page = state
        .store()
        .audit_list(&caller.tenant, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(page, AuditEntryView::from)))
}

/// Walk the whole hash chain and report the first broken entry.
#[utoipa::path(
    get, path = "/api/v1/audit/verify", tag = "audit",
    security(("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "Verification result (check `intact`)", body = AuditVerifyView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks audit:read", body = ErrorBody),
    )
)]
pub(crate) async fn verify(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<AuditVerifyView>> {
    caller.require(Permission::AuditRead)?;
    let v = state.store().audit_verify().await?;
    Ok(Json(AuditVerifyView {
        intact: v.first_break.is_none(),
        verified: v.verified,
        head: v.head.to_hex(),
        first_break: v.first_break,
    }))
}
