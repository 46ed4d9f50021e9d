//! The posture audit: the check catalogue, runs, findings (with suppression) and firmware
//! policies.

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use garrison_core::{DeviceId, Permission, now_ms};
use garrison_posture::PostureError;
use garrison_store::inventory::{FindingFilter, FindingStatus, Suppression};
use serde::Deserialize;

use crate::{
    ApiError, ApiJson, ApiResult, ApiState, Caller, ErrorBody, Pagination, StrictQuery,
    routes::inventory::{csv, inventory_error, optional_device, optional_severity},
    views::{
        PageOf,
        inventory::{
            CheckView, FindingView, FirmwarePolicyBody, FirmwarePolicyView, RunView, SuppressBody,
        },
    },
};

/// The built-in checks.
#[utoipa::path(
    get, path = "/api/v1/posture/checks", tag = "posture",
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "Every check with its rationale, remediation and ETSI/OWASP mapping", body = Vec<CheckView>))
)]
pub(crate) async fn checks(caller: Caller) -> ApiResult<Json<Vec<CheckView>>> {
    caller.require(Permission::DevicesRead)?;
    Ok(Json(
        garrison_posture::checks::CHECKS
            .iter()
            .map(CheckView::from)
            .collect(),
    ))
}

/// Run the audit now over the whole fleet; answers when it is done.
#[utoipa::path(
    post, path = "/api/v1/posture/runs", tag = "posture",
    security(("bearer" = ["posture:write"])),
    responses(
        (status = 201, description = "The finished run", body = RunView),
        (status = 409, description = "A run is already in progress", body = ErrorBody),
    )
)]
pub(crate) async fn run(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<RunView>)> {
    caller.require(Permission::PostureWrite)?;
    let audit = caller.audit("posture.run", "posture");
    let posture = state.posture()?.clone();
    let trigger = format!("operator:{}", caller.name());
    // A run over a large fleet can outlast the request timeout or the client: it runs on its
    // own task so it always finishes and is recorded (GET /api/v1/posture/runs shows it).
    let run = tokio::spawn(async move { posture.run(&trigger, Some(audit)).await })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            PostureError::Busy => ApiError::conflict(e.to_string()),
            PostureError::Store(e) => e.into(),
            other => ApiError::internal(other),
        })?;
    Ok((StatusCode::CREATED, Json(run.into())))
}

/// Past runs, newest first.
#[utoipa::path(
    get, path = "/api/v1/posture/runs", tag = "posture",
    params(("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of runs", body = PageOf<RunView>))
)]
pub(crate) async fn runs(
    State(state): State<ApiState>,
    caller: Caller,
    page: Pagination,
) -> ApiResult<Json<PageOf<RunView>>> {
    caller.require(Permission::DevicesRead)?;
    let runs = state
        .store()
        .posture_runs_list(&caller.tenant, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(runs, RunView::from)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FindingQuery {
    status: Option<String>,
    check: Option<String>,
    device: Option<String>,
    severity: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    format: Option<String>,
}

fn finding_filter(q: &FindingQuery) -> ApiResult<FindingFilter> {
    Ok(FindingFilter {
        status: q
            .status
            .as_deref()
            .map(|s| {
                FindingStatus::parse(s).ok_or_else(|| {
                    ApiError::invalid_query("status", "status must be open, suppressed or resolved")
                })
            })
            .transpose()?,
        check: q.check.clone(),
        device: optional_device(q.device.as_deref())?,
        min_severity: optional_severity(q.severity.as_deref())?,
    })
}

/// Findings, oldest first; filter by status, check, device and minimum severity.
#[utoipa::path(
    get, path = "/api/v1/findings", tag = "posture",
    params(("status" = Option<String>, Query, description = "`open`, `suppressed` or `resolved`"),
           ("check" = Option<String>, Query, description = "Only this check id"),
           ("device" = Option<String>, Query, description = "Only this device"),
           ("severity" = Option<String>, Query, description = "This severity or worse"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "A page of findings", body = PageOf<FindingView>),
        (status = 400, description = "Bad filter", body = ErrorBody),
    )
)]
pub(crate) async fn findings(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(query): StrictQuery<FindingQuery>,
) -> ApiResult<Json<PageOf<FindingView>>> {
    caller.require(Permission::DevicesRead)?;
    if query.format.is_some() {
        return Err(ApiError::invalid_query(
            "format",
            "use /api/v1/export/findings to export",
        ));
    }
    let filter = finding_filter(&query)?;
    let page = Pagination::parse(query.limit.clone(), query.cursor.clone())?;
    let found = state
        .store()
        .findings_list(&caller.tenant, &filter, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(found, FindingView::from)))
}

/// Export every finding matching the filter as CSV (default) or a JSON array.
#[utoipa::path(
    get, path = "/api/v1/export/findings", tag = "posture",
    params(("status" = Option<String>, Query, description = "`open`, `suppressed` or `resolved`"),
           ("check" = Option<String>, Query, description = "Only this check id"),
           ("device" = Option<String>, Query, description = "Only this device"),
           ("severity" = Option<String>, Query, description = "This severity or worse"),
           ("format" = Option<String>, Query, description = "`csv` (default) or `json`")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "Every matching finding", body = Vec<FindingView>))
)]
pub(crate) async fn export_findings(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(query): StrictQuery<FindingQuery>,
) -> ApiResult<Response> {
    caller.require(Permission::DevicesRead)?;
    if query.limit.is_some() || query.cursor.is_some() {
        return Err(ApiError::invalid_query("limit", "an export has no pages"));
    }
    let as_csv = match query.format.as_deref().unwrap_or("csv") {
        "csv" => true,
        "json" => false,
        other => {
            return Err(ApiError::invalid_query(
                "format",
                format!("format must be csv or json, not {other:?}"),
            ));
        }
    };
    let filter = finding_filter(&query)?;
    let mut page = garrison_store::PageRequest::first(5000);
    let mut all = Vec::new();
    loop {
        let got = state
            .store()
            .findings_list(&caller.tenant, &filter, &page)
            .await?;
        all.extend(got.items.into_iter().map(FindingView::from));
        match got.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    Ok(if as_csv {
        csv(
            "findings.csv",
            FindingView::CSV_HEADER,
            all.iter().map(FindingView::csv_row),
        )
    } else {
        Json(all).into_response()
    })
}

/// One finding.
#[utoipa::path(
    get, path = "/api/v1/findings/{id}", tag = "posture",
    params(("id" = String, Path, description = "Finding id")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "The finding", body = FindingView),
        (status = 404, description = "No such finding", body = ErrorBody),
    )
)]
pub(crate) async fn finding(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FindingView>> {
    caller.require(Permission::DevicesRead)?;
    let finding = state
        .store()
        .finding_get(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("finding {id} not found")))?;
    Ok(Json(finding.into()))
}

async fn refresh_device(state: &ApiState, device: Option<&DeviceId>) {
    // The index's open findings (and so the risk score) follow the suppression.
    if let (Some(device), Ok(posture)) = (device, state.posture())
        && let Err(e) = posture.reevaluate(std::slice::from_ref(device)).await
    {
        tracing::warn!(%device, error = %e, "Re-evaluating a device after a suppression failed");
    }
}

/// Accept a finding for a while (or until lifted): it stays visible as `suppressed`, stops
/// counting towards the device's risk, and opens again when the suppression lapses.
#[utoipa::path(
    post, path = "/api/v1/findings/{id}/suppress", tag = "posture",
    params(("id" = String, Path, description = "Finding id")),
    request_body = SuppressBody,
    security(("bearer" = ["posture:write"])),
    responses(
        (status = 200, description = "Suppressed", body = FindingView),
        (status = 400, description = "No reason, or a bad duration", body = ErrorBody),
        (status = 404, description = "No such finding", body = ErrorBody),
        (status = 409, description = "The finding is resolved", body = ErrorBody),
    )
)]
pub(crate) async fn suppress(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SuppressBody>,
) -> ApiResult<Json<FindingView>> {
    caller.require(Permission::PostureWrite)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(ApiError::invalid_body(
            Some("reason".into()),
            "a reason of 1–1000 characters is required",
        ));
    }
    let now = now_ms();
    let until = body
        .for_duration
        .as_deref()
        .map(|d| {
            humantime::parse_duration(d)
                .ok()
                .filter(|d| {
                    *d >= Duration::from_secs(60) && *d <= Duration::from_secs(5 * 366 * 86_400)
                })
                .map(|d| now + i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .ok_or_else(|| {
                    ApiError::invalid_body(
                        Some("for_duration".into()),
                        "for_duration must be a duration from 1m to 5 years, such as 30d",
                    )
                })
        })
        .transpose()?;
    let audit = caller.audit("finding.suppress", &format!("finding:{id}"));
    let finding = state
        .store()
        .finding_suppress(
            &caller.tenant,
            &id,
            Some(Suppression {
                reason: reason.to_owned(),
                by: caller.name().to_owned(),
                at: now,
                until,
            }),
            audit,
        )
        .await?;
    refresh_device(&state, finding.device.as_ref()).await;
    Ok(Json(finding.into()))
}

/// Lift a suppression: the finding is open again.
#[utoipa::path(
    post, path = "/api/v1/findings/{id}/unsuppress", tag = "posture",
    params(("id" = String, Path, description = "Finding id")),
    security(("bearer" = ["posture:write"])),
    responses(
        (status = 200, description = "Open again", body = FindingView),
        (status = 404, description = "No such finding", body = ErrorBody),
        (status = 409, description = "The finding is not suppressed", body = ErrorBody),
    )
)]
pub(crate) async fn unsuppress(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FindingView>> {
    caller.require(Permission::PostureWrite)?;
    let audit = caller.audit("finding.unsuppress", &format!("finding:{id}"));
    let finding = state
        .store()
        .finding_suppress(&caller.tenant, &id, None, audit)
        .await?;
    refresh_device(&state, finding.device.as_ref()).await;
    Ok(Json(finding.into()))
}

/// Minimum firmware versions per model (the `firmware-outdated` check).
#[utoipa::path(
    get, path = "/api/v1/posture/firmware-policies", tag = "posture",
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "Every policy", body = Vec<FirmwarePolicyView>))
)]
pub(crate) async fn firmware_policies(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<FirmwarePolicyView>>> {
    caller.require(Permission::DevicesRead)?;
    let policies = state.store().firmware_policies(&caller.tenant).await?;
    Ok(Json(
        policies.into_iter().map(FirmwarePolicyView::from).collect(),
    ))
}

/// Set a model's minimum firmware version.
#[utoipa::path(
    put, path = "/api/v1/posture/firmware-policies/{model}", tag = "posture",
    params(("model" = String, Path, description = "Hardware model")),
    request_body = FirmwarePolicyBody,
    security(("bearer" = ["posture:write"])),
    responses(
        (status = 200, description = "Set", body = FirmwarePolicyView),
        (status = 400, description = "Bad version", body = ErrorBody),
    )
)]
pub(crate) async fn set_firmware_policy(
    State(state): State<ApiState>,
    caller: Caller,
    Path(model): Path<String>,
    ApiJson(body): ApiJson<FirmwarePolicyBody>,
) -> ApiResult<Json<FirmwarePolicyView>> {
    caller.require(Permission::PostureWrite)?;
    let audit = caller.audit("posture.firmware_policy.set", &format!("model:{model}"));
    let policy = state
        .inventory()?
        .set_firmware_policy(&model, Some(&body.minimum_version), caller.name(), audit)
        .await
        .map_err(inventory_error)?
        .ok_or_else(|| ApiError::internal("the policy was not stored"))?;
    Ok(Json(policy.into()))
}

/// Remove a model's minimum firmware version.
#[utoipa::path(
    delete, path = "/api/v1/posture/firmware-policies/{model}", tag = "posture",
    params(("model" = String, Path, description = "Hardware model")),
    security(("bearer" = ["posture:write"])),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No policy for the model", body = ErrorBody),
    )
)]
pub(crate) async fn delete_firmware_policy(
    State(state): State<ApiState>,
    caller: Caller,
    Path(model): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::PostureWrite)?;
    let audit = caller.audit("posture.firmware_policy.delete", &format!("model:{model}"));
    state
        .inventory()?
        .set_firmware_policy(&model, None, caller.name(), audit)
        .await
        .map_err(inventory_error)?;
    Ok(StatusCode::NO_CONTENT)
}
