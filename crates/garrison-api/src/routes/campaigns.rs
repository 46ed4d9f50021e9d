//! Update campaigns: phased rollouts of a release to a group or a query, their devices and
//! each device's history, approvals and cancellation; and the groups' maintenance windows.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use garrison_campaigns::{CampaignError, CampaignSummary, NewCampaign, Target};
use garrison_core::{DeviceId, Permission, format_ms};
use garrison_store::campaigns::{CampaignDevice, CampaignHistoryEntry, CampaignRecord};
use garrison_update::campaign::{
    Action, CampaignSpec, MaintenanceWindow, PhaseSpec, PhaseTally, Stage,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    ApiError, ApiJson, ApiResult, ApiState, Caller, ErrorBody, Pagination, StrictQuery,
    routes::updates::actor, views::PageOf,
};

pub(crate) fn campaign_error(e: CampaignError) -> ApiError {
    match e {
        CampaignError::Spec(e) => ApiError::invalid_body(Some(e.field.clone()), e.to_string()),
        CampaignError::Invalid { field, .. } => {
            ApiError::invalid_body(Some(field.to_owned()), e.to_string())
        }
        CampaignError::NotFound(_) => ApiError::not_found(e.to_string()),
        CampaignError::Conflict(_) => ApiError::conflict(e.to_string()),
        CampaignError::Store(e) => e.into(),
        other => ApiError::internal(other),
    }
}

/// A campaign to start. Every rule but the target and release has a default: phases 1% →
/// 10% → 100% starting automatically, 90% success to advance, more than 10% failures abort,
/// forced installs, 3 attempts 1 min apart (doubling), 1 h device timeout, no rate limit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCampaign {
    /// For people.
    name: String,
    /// The release's id.
    release: String,
    /// `{"group": NAME}` or `{"query": DEVICE-QUERY}`; resolved once, at the start.
    #[schema(value_type = Object)]
    target: Target,
    /// Cumulative percentages with how each phase starts (`automatic` or `manual`).
    #[schema(value_type = Option<Vec<Object>>)]
    phases: Option<Vec<PhaseSpec>>,
    /// Percent of a phase that must succeed before the next starts.
    success_threshold: Option<u8>,
    /// Percent of a phase whose failure aborts the campaign (aborts when exceeded).
    error_threshold: Option<u8>,
    /// Notices per minute at most.
    rate_per_minute: Option<u32>,
    /// `forced`, `soft` (devices may defer) or `download-only`.
    #[schema(value_type = Option<String>)]
    action: Option<Action>,
    /// Attempts per device, 1–10.
    max_attempts: Option<u32>,
    /// Back-off before the first retry, ms (doubles per retry, at most a day).
    retry_backoff_ms: Option<i64>,
    /// A device silent this long (ms) fails its attempt.
    device_timeout_ms: Option<i64>,
    /// Require the release's SBOM (its `*.cdx.json` artifact) to pass the server's policy
    /// (`updates.sbom_deny`) before the campaign starts.
    sbom_gate: Option<bool>,
}

impl CreateCampaign {
    fn into_new(self) -> NewCampaign {
        let d = CampaignSpec::default();
        NewCampaign {
            name: self.name,
            release: self.release,
            target: self.target,
            spec: CampaignSpec {
                phases: self.phases.unwrap_or(d.phases),
                success_threshold: self.success_threshold.unwrap_or(d.success_threshold),
                error_threshold: self.error_threshold.unwrap_or(d.error_threshold),
                rate_per_minute: self.rate_per_minute.or(d.rate_per_minute),
                action: self.action.unwrap_or(d.action),
                max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
                retry_backoff_ms: self.retry_backoff_ms.unwrap_or(d.retry_backoff_ms),
                device_timeout_ms: self.device_timeout_ms.unwrap_or(d.device_timeout_ms),
                sbom_gate: self.sbom_gate.unwrap_or(d.sbom_gate),
            },
        }
    }
}

/// A campaign.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CampaignView {
    /// Id.
    id: String,
    /// Name.
    name: String,
    /// The release it rolls out.
    release: String,
    /// What it targeted.
    target: serde_json::Value,
    /// Its rules.
    spec: serde_json::Value,
    /// `running`, `waiting-approval`, `completed`, `aborted` or `cancelled`.
    state: String,
    /// The newest started phase (1-based).
    phase: i64,
    /// Why it stopped or waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Devices it holds.
    devices: i64,
    /// Per phase: total, succeeded, failed, open (absent in lists of finished campaigns).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    phases: Option<Vec<PhaseTally>>,
    /// Devices per stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    stages: Option<BTreeMap<&'static str, u64>>,
    /// Devices of the target left out, by reason (on creation only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    excluded: BTreeMap<&'static str, u64>,
    /// Created (RFC 3339).
    created_at: String,
    /// By whom.
    created_by: String,
    /// Last state change (RFC 3339).
    updated_at: String,
}

fn view(record: CampaignRecord, summary: Option<CampaignSummary>) -> CampaignView {
    let (record, phases, stages, excluded) = match summary {
        Some(s) => (s.record, Some(s.phases), Some(s.stages), s.excluded),
        None => (record, None, None, BTreeMap::new()),
    };
    CampaignView {
        id: record.id,
        name: record.name,
        release: record.release_id,
        target: record.target,
        spec: record.spec,
        state: record.state,
        phase: record.phase + 1,
        reason: record.reason,
        devices: record.devices,
        phases,
        stages,
        excluded,
        created_at: format_ms(record.created_at),
        created_by: record.created_by,
        updated_at: format_ms(record.updated_at),
    }
}

fn summary_view(s: CampaignSummary) -> CampaignView {
    view(s.record.clone(), Some(s))
}

/// Start a campaign: the target is resolved now to the devices of the release's model that
/// are not in another unfinished campaign, and each is put in its phase.
#[utoipa::path(
    post, path = "/api/v1/updates/campaigns", tag = "updates",
    request_body = CreateCampaign,
    security(("bearer" = ["campaigns:write"])),
    responses(
        (status = 201, description = "Started", body = CampaignView),
        (status = 400, description = "Invalid rules or query", body = ErrorBody),
        (status = 404, description = "No such release or group", body = ErrorBody),
        (status = 409, description = "The release expired or fails the SBOM gate, or no device of its model is free in the target", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateCampaign>,
) -> ApiResult<(StatusCode, Json<CampaignView>)> {
    caller.require(Permission::CampaignsWrite)?;
    let summary = state
        .campaigns()?
        .create(body.into_new(), &actor(&caller))
        .await
        .map_err(campaign_error)?;
    Ok((StatusCode::CREATED, Json(summary_view(summary))))
}

/// Campaigns, newest first.
#[utoipa::path(
    get, path = "/api/v1/updates/campaigns", tag = "updates",
    params(("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of campaigns", body = PageOf<CampaignView>))
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    page: Pagination,
) -> ApiResult<Json<PageOf<CampaignView>>> {
    caller.require(Permission::DevicesRead)?;
    let page = state
        .campaigns()?
        .list(&page.to_request())
        .await
        .map_err(campaign_error)?;
    Ok(Json(PageOf::from_page(page, |(r, s)| view(r, s))))
}

/// One campaign with its counts per phase and per stage.
#[utoipa::path(
    get, path = "/api/v1/updates/campaigns/{id}", tag = "updates",
    params(("id" = String, Path, description = "Campaign id")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "The campaign", body = CampaignView),
              (status = 404, description = "No such campaign", body = ErrorBody))
)]
pub(crate) async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    caller.require(Permission::DevicesRead)?;
    let summary = state.campaigns()?.get(&id).await.map_err(campaign_error)?;
    Ok(Json(summary_view(summary)))
}

/// Approve the next phase of a campaign waiting for approval.
#[utoipa::path(
    post, path = "/api/v1/updates/campaigns/{id}/approve", tag = "updates",
    params(("id" = String, Path, description = "Campaign id")),
    security(("bearer" = ["campaigns:write"])),
    responses((status = 200, description = "The next phase started", body = CampaignView),
              (status = 404, description = "No such campaign", body = ErrorBody),
              (status = 409, description = "It is not waiting for approval", body = ErrorBody))
)]
pub(crate) async fn approve(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    caller.require(Permission::CampaignsWrite)?;
    let summary = state
        .campaigns()?
        .approve(&id, &actor(&caller))
        .await
        .map_err(campaign_error)?;
    Ok(Json(summary_view(summary)))
}

/// Cancel a campaign: no further device is notified, unfinished devices are cancelled, and
/// devices working on it are told to stop.
#[utoipa::path(
    post, path = "/api/v1/updates/campaigns/{id}/cancel", tag = "updates",
    params(("id" = String, Path, description = "Campaign id")),
    security(("bearer" = ["campaigns:write"])),
    responses((status = 200, description = "Cancelled", body = CampaignView),
              (status = 404, description = "No such campaign", body = ErrorBody),
              (status = 409, description = "It has already finished", body = ErrorBody))
)]
pub(crate) async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    caller.require(Permission::CampaignsWrite)?;
    let summary = state
        .campaigns()?
        .cancel(&id, &actor(&caller))
        .await
        .map_err(campaign_error)?;
    Ok(Json(summary_view(summary)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevicesQuery {
    stage: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// A device in a campaign.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CampaignDeviceView {
    /// The device.
    device: String,
    /// Its phase (1-based).
    phase: i64,
    /// Its stage.
    stage: String,
    /// Notices sent.
    attempts: i64,
    /// When it is asked again (RFC 3339), for retries and deferrals.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<String>,
    /// Last change (RFC 3339).
    updated_at: String,
    /// The last failure or deferral reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl From<CampaignDevice> for CampaignDeviceView {
    fn from(d: CampaignDevice) -> Self {
        CampaignDeviceView {
            device: d.device.to_string(),
            phase: d.phase + 1,
            stage: d.stage,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(format_ms),
            updated_at: format_ms(d.updated_at),
            reason: d.reason,
        }
    }
}

/// A campaign's devices by id, optionally only those at one stage.
#[utoipa::path(
    get, path = "/api/v1/updates/campaigns/{id}/devices", tag = "updates",
    params(("id" = String, Path, description = "Campaign id"),
           ("stage" = Option<String>, Query, description = "Only devices at this stage (`failed`, `succeeded`, …)"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of devices", body = PageOf<CampaignDeviceView>),
              (status = 400, description = "Unknown stage", body = ErrorBody),
              (status = 404, description = "No such campaign", body = ErrorBody))
)]
pub(crate) async fn devices(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    StrictQuery(query): StrictQuery<DevicesQuery>,
) -> ApiResult<Json<PageOf<CampaignDeviceView>>> {
    caller.require(Permission::DevicesRead)?;
    let page = Pagination::parse(query.limit, query.cursor)?;
    let stage = query
        .stage
        .map(|s| {
            Stage::parse(&s).ok_or_else(|| {
                let names: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::invalid_query(
                    "stage",
                    format!("unknown stage {s:?}; one of {}", names.join(", ")),
                )
            })
        })
        .transpose()?;
    let page = state
        .campaigns()?
        .devices(&id, stage, &page.to_request())
        .await
        .map_err(campaign_error)?;
    Ok(Json(PageOf::from_page(page, CampaignDeviceView::from)))
}

/// One entry of a device's history in a campaign.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryView {
    /// When (RFC 3339).
    at: String,
    /// The stage it moved to.
    stage: String,
    /// What the device reported, if a report caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    reported: Option<String>,
    /// The attempt.
    attempt: i64,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl From<CampaignHistoryEntry> for HistoryView {
    fn from(h: CampaignHistoryEntry) -> Self {
        HistoryView {
            at: format_ms(h.at),
            stage: h.stage,
            reported: h.reported,
            attempt: h.attempt,
            reason: h.reason,
        }
    }
}

/// A device's path through a campaign, oldest first.
#[utoipa::path(
    get, path = "/api/v1/updates/campaigns/{id}/devices/{device}", tag = "updates",
    params(("id" = String, Path, description = "Campaign id"),
           ("device" = String, Path, description = "Device id")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "Its history", body = Vec<HistoryView>),
              (status = 404, description = "No such campaign, or the device is not in it", body = ErrorBody))
)]
pub(crate) async fn history(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, device)): Path<(String, String)>,
) -> ApiResult<Json<Vec<HistoryView>>> {
    caller.require(Permission::DevicesRead)?;
    let device =
        DeviceId::new(device).map_err(|e| ApiError::invalid_path("device", e.to_string()))?;
    let history = state
        .campaigns()?
        .history(&id, &device)
        .await
        .map_err(campaign_error)?;
    Ok(Json(history.into_iter().map(HistoryView::from).collect()))
}

/// A group's maintenance window.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WindowView {
    /// The group.
    group: String,
    /// The window: `days` (`mon`…`sun`, empty: every day), `start` (`HH:MM`),
    /// `duration_minutes`, `utc_offset_minutes`.
    #[schema(value_type = Object)]
    window: MaintenanceWindow,
    /// Whether it is open now.
    open: bool,
}

/// Every group's maintenance window.
#[utoipa::path(
    get, path = "/api/v1/updates/windows", tag = "updates",
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "The windows", body = Vec<WindowView>))
)]
pub(crate) async fn windows(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<WindowView>>> {
    caller.require(Permission::DevicesRead)?;
    let windows = state.campaigns()?.windows().await;
    Ok(Json(
        windows
            .into_iter()
            .map(|(group, window, open)| WindowView {
                group,
                window,
                open,
            })
            .collect(),
    ))
}

/// Set a group's maintenance window: campaigns notify its devices only while it is open
/// (a device in several windowed groups, while any of them is).
#[utoipa::path(
    put, path = "/api/v1/updates/windows/{group}", tag = "updates",
    params(("group" = String, Path, description = "Group name")),
    request_body(content = Object, description = "`{\"days\": [\"sat\", \"sun\"], \"start\": \"02:00\", \"duration_minutes\": 240, \"utc_offset_minutes\": 60}`"),
    security(("bearer" = ["campaigns:write"])),
    responses((status = 204, description = "Set"),
              (status = 400, description = "Invalid window", body = ErrorBody),
              (status = 404, description = "No such group", body = ErrorBody))
)]
pub(crate) async fn set_window(
    State(state): State<ApiState>,
    caller: Caller,
    Path(group): Path<String>,
    ApiJson(window): ApiJson<MaintenanceWindow>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::CampaignsWrite)?;
    state
        .campaigns()?
        .set_window(&group, window, &actor(&caller))
        .await
        .map_err(campaign_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a group's maintenance window.
#[utoipa::path(
    delete, path = "/api/v1/updates/windows/{group}", tag = "updates",
    params(("group" = String, Path, description = "Group name")),
    security(("bearer" = ["campaigns:write"])),
    responses((status = 204, description = "Removed"),
              (status = 404, description = "The group has no window", body = ErrorBody))
)]
pub(crate) async fn delete_window(
    State(state): State<ApiState>,
    caller: Caller,
    Path(group): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::CampaignsWrite)?;
    state
        .campaigns()?
        .delete_window(&group, &actor(&caller))
        .await
        .map_err(campaign_error)?;
    Ok(StatusCode::NO_CONTENT)
}
