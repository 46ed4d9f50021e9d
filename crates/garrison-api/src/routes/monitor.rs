//! Monitoring and response: alerts with their lifecycle and notes, the response actions
//! playbooks took (approve, reject, undo), and the playbooks in force.

use axum::{
    Json,
    extract::{Path, State},
};
use garrison_core::Permission;
use garrison_monitor::MonitorError;
use garrison_store::{
    PageRequest,
    monitor::{AlertFilter, AlertStatus, ResponseFilter, ResponseStatus},
};
use serde::Deserialize;

use crate::{
    ApiError, ApiJson, ApiResult, ApiState, Caller, ErrorBody, Pagination, StrictQuery,
    extract::MAX_PAGE,
    routes::inventory::{optional_device, optional_severity},
    views::{
        PageOf,
        monitor::{
            AlertDetailView, AlertNoteView, AlertUpdateBody, AlertView, IncidentView, PlaybookView,
            ResponseView,
        },
    },
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertQuery {
    status: Option<String>,
    open: Option<String>,
    device: Option<String>,
    rule: Option<String>,
    severity: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn alert_status(text: &str, field: &str) -> ApiResult<AlertStatus> {
    AlertStatus::parse(text).ok_or_else(|| {
        ApiError::invalid_query(
            field,
            "status must be new, acknowledged, resolved or false_positive",
        )
    })
}

/// Alerts, newest first.
#[utoipa::path(
    get, path = "/api/v1/alerts", tag = "monitoring",
    params(("status" = Option<String>, Query, description = "`new`, `acknowledged`, `resolved` or `false_positive`"),
           ("open" = Option<bool>, Query, description = "Only new or acknowledged alerts"),
           ("device" = Option<String>, Query, description = "Only this device's"),
           ("rule" = Option<String>, Query, description = "Only this rule's (id)"),
           ("severity" = Option<String>, Query, description = "At least this severe"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of alerts", body = PageOf<AlertView>),
              (status = 400, description = "A bad filter", body = ErrorBody))
)]
pub(crate) async fn alerts(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<AlertQuery>,
) -> ApiResult<Json<PageOf<AlertView>>> {
    caller.require(Permission::DevicesRead)?;
    let filter = AlertFilter {
        status: q
            .status
            .as_deref()
            .map(|s| alert_status(s, "status"))
            .transpose()?,
        open: match q.open.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(ApiError::invalid_query(
                    "open",
                    "open must be true or false",
                ));
            }
        },
        device: optional_device(q.device.as_deref())?,
        rule: q.rule.clone(),
        min_severity: optional_severity(q.severity.as_deref())?,
    };
    let alerts = state
        .store()
        .alerts_list(
            &caller.tenant,
            &filter,
            &Pagination::parse(q.limit, q.cursor)?.to_request(),
        )
        .await?;
    Ok(Json(PageOf::from_page(alerts, AlertView::from)))
}

/// One alert with its notes and the response actions it caused.
#[utoipa::path(
    get, path = "/api/v1/alerts/{id}", tag = "monitoring",
    params(("id" = String, Path, description = "Alert id")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "The alert", body = AlertDetailView),
              (status = 404, description = "No such alert", body = ErrorBody))
)]
pub(crate) async fn alert(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertDetailView>> {
    caller.require(Permission::DevicesRead)?;
    let store = state.store();
    let alert = store
        .alert_get(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("alert {id} not found")))?;
    let notes = store.alert_notes(&caller.tenant, &id).await?;
    let responses = store
        .responses_list(
            &caller.tenant,
            &ResponseFilter {
                alert: Some(id.clone()),
                ..ResponseFilter::default()
            },
            &PageRequest::first(MAX_PAGE),
        )
        .await?;
    Ok(Json(AlertDetailView {
        alert: alert.into(),
        notes: notes.into_iter().map(AlertNoteView::from).collect(),
        responses: responses
            .items
            .into_iter()
            .map(ResponseView::from)
            .collect(),
    }))
}

/// Triage an alert: change its status (acknowledge, resolve, mark false positive, reopen)
/// and/or add a note.
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}", tag = "monitoring",
    params(("id" = String, Path, description = "Alert id")),
    request_body = AlertUpdateBody,
    security(("bearer" = ["alerts:write"])),
    responses((status = 200, description = "The alert now", body = AlertView),
              (status = 400, description = "A bad status, or nothing to change", body = ErrorBody),
              (status = 404, description = "No such alert", body = ErrorBody),
              (status = 409, description = "Reopening it would duplicate an open alert", body = ErrorBody))
)]
pub(crate) async fn update_alert(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AlertUpdateBody>,
) -> ApiResult<Json<AlertView>> {
    caller.require(Permission::AlertsWrite)?;
    let status = body
        .status
        .as_deref()
        .map(|s| {
            AlertStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_body(
                    Some("status".into()),
                    "status must be new, acknowledged, resolved or false_positive",
                )
            })
        })
        .transpose()?;
    let note = body.note.trim();
    if note.chars().count() > 4000 {
        return Err(ApiError::invalid_body(
            Some("note".into()),
            "a note is at most 4000 characters",
        ));
    }
    if status.is_none() && note.is_empty() {
        return Err(ApiError::invalid_body(
            None,
            "give a new status, a note, or both",
        ));
    }
    let audit = caller.audit("alert.update", &format!("alert:{id}"));
    let alert = state
        .store()
        .alert_update(&caller.tenant, &id, status, note, caller.name(), audit)
        .await?;
    Ok(Json(alert.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResponseQuery {
    status: Option<String>,
    device: Option<String>,
    alert: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Response actions, newest first.
#[utoipa::path(
    get, path = "/api/v1/responses", tag = "monitoring",
    params(("status" = Option<String>, Query, description = "`pending_approval`, `executed`, `dry_run`, `failed`, …"),
           ("device" = Option<String>, Query, description = "Only this device's"),
           ("alert" = Option<String>, Query, description = "Only this alert's"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of response actions", body = PageOf<ResponseView>),
              (status = 400, description = "A bad filter", body = ErrorBody))
)]
pub(crate) async fn responses(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<ResponseQuery>,
) -> ApiResult<Json<PageOf<ResponseView>>> {
    caller.require(Permission::DevicesRead)?;
    let filter = ResponseFilter {
        alert: q.alert.clone(),
        status: q
            .status
            .as_deref()
            .map(|s| {
                ResponseStatus::parse(s).ok_or_else(|| {
                    ApiError::invalid_query(
                        "status",
                        "status must be started, pending_approval, executed, dry_run, failed, rejected, undone or expired",
                    )
                })
            })
            .transpose()?,
        device: optional_device(q.device.as_deref())?,
    };
    let page = state
        .store()
        .responses_list(
            &caller.tenant,
            &filter,
            &Pagination::parse(q.limit, q.cursor)?.to_request(),
        )
        .await?;
    Ok(Json(PageOf::from_page(page, ResponseView::from)))
}

/// Most open alerts grouped into incidents in one answer.
const MAX_GROUPED: usize = 10_000;

/// Open alerts grouped into incidents: one per device (alerts naming no device, one per
/// rule), the worst first — severity, then the most recent.
#[utoipa::path(
    get, path = "/api/v1/incidents", tag = "monitoring",
    params(("severity" = Option<String>, Query, description = "Only incidents with an alert at least this severe")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "The incidents", body = [IncidentView]),
              (status = 400, description = "A bad filter", body = ErrorBody))
)]
pub(crate) async fn incidents(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<IncidentQuery>,
) -> ApiResult<Json<Vec<IncidentView>>> {
    caller.require(Permission::DevicesRead)?;
    let filter = AlertFilter {
        open: true,
        min_severity: optional_severity(q.severity.as_deref())?,
        ..AlertFilter::default()
    };
    let mut alerts = Vec::new();
    let mut page = garrison_store::PageRequest::first(500);
    loop {
        let found = state
            .store()
            .alerts_list(&caller.tenant, &filter, &page)
            .await?;
        alerts.extend(found.items);
        match found.next {
            Some(next) if alerts.len() < MAX_GROUPED => page.after = Some(next),
            _ => break,
        }
    }
    Ok(Json(
        garrison_monitor::incident::group(&alerts)
            .into_iter()
            .map(IncidentView::from)
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IncidentQuery {
    severity: Option<String>,
}

fn monitor_error(e: MonitorError) -> ApiError {
    match e {
        MonitorError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
        MonitorError::Refused(reason) => ApiError::conflict(reason),
        MonitorError::Store(e) => e.into(),
        other => ApiError::internal(other),
    }
}

#[derive(Clone, Copy)]
enum Decision {
    Approve,
    Reject,
    Undo,
}

async fn decide(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    decision: Decision,
) -> ApiResult<Json<ResponseView>> {
    caller.require(Permission::ResponseWrite)?;
    let responses = state.responses()?;
    let by = caller.actor();
    let done = match decision {
        Decision::Approve => responses.approve(id, &by).await,
        Decision::Reject => responses.reject(id, &by).await,
        Decision::Undo => responses.undo(id, &by).await,
    }
    .map_err(monitor_error)?;
    Ok(Json(done.into()))
}

/// Approve a pending response action; it is carried out at once.
#[utoipa::path(
    post, path = "/api/v1/responses/{id}/approve", tag = "monitoring",
    params(("id" = String, Path, description = "Response action id")),
    security(("bearer" = ["response:write"])),
    responses((status = 200, description = "Carried out (see `status` and `detail`)", body = ResponseView),
              (status = 404, description = "No such response action", body = ErrorBody),
              (status = 409, description = "It is not pending approval", body = ErrorBody))
)]
pub(crate) async fn approve(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ResponseView>> {
    decide(&state, &caller, &id, Decision::Approve).await
}

/// Reject a pending response action.
#[utoipa::path(
    post, path = "/api/v1/responses/{id}/reject", tag = "monitoring",
    params(("id" = String, Path, description = "Response action id")),
    security(("bearer" = ["response:write"])),
    responses((status = 200, description = "Rejected", body = ResponseView),
              (status = 404, description = "No such response action", body = ErrorBody),
              (status = 409, description = "It is not pending approval", body = ErrorBody))
)]
pub(crate) async fn reject(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ResponseView>> {
    decide(&state, &caller, &id, Decision::Reject).await
}

/// Undo an executed response action (lift its quarantine, remove the group membership).
#[utoipa::path(
    post, path = "/api/v1/responses/{id}/undo", tag = "monitoring",
    params(("id" = String, Path, description = "Response action id")),
    security(("bearer" = ["response:write"])),
    responses((status = 200, description = "Undone", body = ResponseView),
              (status = 404, description = "No such response action", body = ErrorBody),
              (status = 409, description = "It is not executed, or cannot be undone", body = ErrorBody))
)]
pub(crate) async fn undo(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ResponseView>> {
    decide(&state, &caller, &id, Decision::Undo).await
}

/// The playbooks in force.
#[utoipa::path(
    get, path = "/api/v1/playbooks", tag = "monitoring",
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "Every playbook", body = Vec<PlaybookView>))
)]
pub(crate) async fn playbooks(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<PlaybookView>>> {
    caller.require(Permission::DevicesRead)?;
    Ok(Json(
        state
            .responses()?
            .playbooks()
            .iter()
            .map(PlaybookView::from)
            .collect(),
    ))
}
