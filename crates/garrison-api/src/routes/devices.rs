//! `/api/v1/devices` and `/api/v1/certificates`: devices with Garrison identities, their
//! quarantine profile, and the certificates issued to them.

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State},
};
use garrison_core::{DeviceId, Permission, device::RevocationReason, now_ms};
use garrison_store::identity::CertificateFilter;
use serde::Deserialize;

use crate::{
    ApiError, ApiJson, ApiResult, ApiState, Caller, ErrorBody, Pagination, StrictQuery,
    views::{
        CertificateView, DeviceMessageBody, DeviceView, PageOf, RevokeCertificate, SessionView,
    },
};

pub(crate) fn path_device(raw: &str) -> ApiResult<DeviceId> {
    DeviceId::new(raw).map_err(|e| ApiError::invalid_path("id", e.to_string()))
}

pub(crate) fn identity_error(e: garrison_identity::IdentityError) -> ApiError {
    match e {
        garrison_identity::IdentityError::Store(e) => e.into(),
        e @ garrison_identity::IdentityError::ValidityTooLong { .. } => {
            ApiError::invalid_body(Some("certificate_validity".into()), e.to_string())
        }
        other => ApiError::internal(other),
    }
}

async fn set_quarantine(
    state: ApiState,
    caller: Caller,
    id: String,
    quarantined: bool,
) -> ApiResult<Json<DeviceView>> {
    caller.require(Permission::DevicesWrite)?;
    let id = path_device(&id)?;
    let device = state
        .identity()
        .set_quarantined(&caller.tenant, &id, quarantined, &caller.requester())
        .await
        .map_err(identity_error)?;
    Ok(Json(device.into()))
}

/// Quarantine a device: only its `update` and `cmd` channels stay open (and the
/// `cmd/result` and `update/status` replies); everything else is refused and logged. Takes
/// effect on its next message.
#[utoipa::path(
    post, path = "/api/v1/devices/{id}/quarantine", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 200, description = "Quarantined", body = DeviceView),
        (status = 404, description = "No such device", body = ErrorBody),
    )
)]
pub(crate) async fn quarantine(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceView>> {
    set_quarantine(state, caller, id, true).await
}

/// Release a device from quarantine.
#[utoipa::path(
    post, path = "/api/v1/devices/{id}/release", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 200, description = "Released", body = DeviceView),
        (status = 404, description = "No such device", body = ErrorBody),
    )
)]
pub(crate) async fn release(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceView>> {
    set_quarantine(state, caller, id, false).await
}

/// Rotate a device's key: the device is told (a `rotate-certificate` command on its `cmd`
/// channel, when the broker runs) to make a new key and renew over EST; that renewal revokes
/// the certificate it renews with (reason `superseded`).
#[utoipa::path(
    post, path = "/api/v1/devices/{id}/rotate", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 200, description = "Rotation requested", body = DeviceView),
        (status = 404, description = "No such device", body = ErrorBody),
    )
)]
pub(crate) async fn rotate(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceView>> {
    caller.require(Permission::DevicesWrite)?;
    let id = path_device(&id)?;
    let device = state
        .identity()
        .request_rotation(&caller.tenant, &id, &caller.requester())
        .await
        .map_err(identity_error)?;
    if let Some(broker) = state.broker() {
        let command = serde_json::json!({
            "schema": 1,
            "command": "rotate-certificate",
            "current_serial": device.current_serial,
        });
        let payload = serde_json::to_vec(&command).map_err(ApiError::internal)?;
        if let Err(e) = broker.send_to_device(&id, "cmd", payload.into()).await {
            // The request stands; the device also learns of it when it next renews.
            tracing::warn!(device = %id, error = %e, "Could not send the rotation command");
        }
    }
    Ok(Json(device.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateQuery {
    limit: Option<String>,
    cursor: Option<String>,
    subject: Option<String>,
    kind: Option<String>,
    expiring_within: Option<String>,
}

/// List certificates, ordered by serial; filter by subject, kind, or "valid and expiring
/// within" a duration (`30d`).
#[utoipa::path(
    get, path = "/api/v1/certificates", tag = "certificates",
    params(("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("subject" = Option<String>, Query, description = "Only this device id or claim name"),
           ("kind" = Option<String>, Query, description = "`device` or `claim`"),
           ("expiring_within" = Option<String>, Query, description = "Only valid certificates expiring within this duration, e.g. `30d`")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "A page of certificates", body = PageOf<CertificateView>),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
    )
)]
pub(crate) async fn certificates(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<CertificateQuery>,
) -> ApiResult<Json<PageOf<CertificateView>>> {
    caller.require(Permission::DevicesRead)?;
    let page = Pagination::parse(q.limit, q.cursor)?;
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => Some(
            garrison_core::device::CertificateKind::parse(k).ok_or_else(|| {
                ApiError::invalid_query("kind", "kind must be `device` or `claim`")
            })?,
        ),
    };
    let expiring_before = match q.expiring_within.as_deref() {
        None => None,
        Some(text) => {
            let within = humantime::parse_duration(text)
                .ok()
                .filter(|d| *d <= Duration::from_secs(3650 * 86_400))
                .ok_or_else(|| {
                    ApiError::invalid_query(
                        "expiring_within",
                        format!("expiring_within must be a duration such as \"30d\", got {text:?}"),
                    )
                })?;
            Some(now_ms().saturating_add(within.as_millis() as i64))
        }
    };
    let filter = CertificateFilter {
        subject: q.subject,
        expiring_before,
        kind,
    };
    let page = state
        .store()
        .certificates_list(&caller.tenant, &filter, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(page, CertificateView::from)))
}

/// One certificate, with its PEM.
#[utoipa::path(
    get, path = "/api/v1/certificates/{serial}", tag = "certificates",
    params(("serial" = String, Path, description = "Serial number, hex")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "The certificate", body = CertificateView),
        (status = 404, description = "No such certificate", body = ErrorBody),
    )
)]
pub(crate) async fn certificate(
    State(state): State<ApiState>,
    caller: Caller,
    Path(serial): Path<String>,
) -> ApiResult<Json<CertificateView>> {
    caller.require(Permission::DevicesRead)?;
    let serial = normalise_serial(&serial)?;
    let cert = state
        .store()
        .certificate_get(&caller.tenant, &serial)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("certificate {serial} not found")))?;
    Ok(Json(cert.into()))
}

/// Serials are accepted as hex with or without colons, any case.
fn normalise_serial(raw: &str) -> ApiResult<String> {
    let hex: String = raw
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_lowercase();
    if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid_path("serial", "serial numbers are hex"));
    }
    Ok(hex)
}

/// Revoke a certificate. The CRL is re-signed at once and a device connected with it is
/// disconnected within a second.
#[utoipa::path(
    post, path = "/api/v1/certificates/{serial}/revoke", tag = "certificates",
    params(("serial" = String, Path, description = "Serial number, hex")),
    request_body = RevokeCertificate,
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 200, description = "Revoked", body = CertificateView),
        (status = 400, description = "Unknown reason", body = ErrorBody),
        (status = 404, description = "No such certificate", body = ErrorBody),
        (status = 409, description = "Already revoked", body = ErrorBody),
    )
)]
pub(crate) async fn revoke(
    State(state): State<ApiState>,
    caller: Caller,
    Path(serial): Path<String>,
    ApiJson(body): ApiJson<RevokeCertificate>,
) -> ApiResult<Json<CertificateView>> {
    caller.require(Permission::DevicesWrite)?;
    let serial = normalise_serial(&serial)?;
    let reason = match body.reason.as_deref() {
        None => RevocationReason::Unspecified,
        Some(r) => r
            .parse::<RevocationReason>()
            .map_err(|e| ApiError::invalid_body(Some("reason".into()), e.to_string()))?,
    };
    let cert = state
        .identity()
        .revoke(&caller.tenant, &serial, reason, &caller.requester())
        .await
        .map_err(identity_error)?;
    Ok(Json(cert.into()))
}

fn broker(state: &ApiState) -> ApiResult<&dyn garrison_broker::DeviceBroker> {
    state.broker().ok_or_else(|| {
        ApiError::unavailable("the MQTT broker is not running on this server (broker.enabled)")
    })
}

/// The device's MQTT session: whether it is connected, and what the broker counted.
#[utoipa::path(
    get, path = "/api/v1/devices/{id}/session", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "Session state", body = SessionView),
        (status = 503, description = "No broker on this server", body = ErrorBody),
    )
)]
pub(crate) async fn session(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionView>> {
    caller.require(Permission::DevicesRead)?;
    let id = path_device(&id)?;
    let broker = broker(&state)?;
    let counters = broker.device_counters(&id).unwrap_or_default();
    Ok(Json(SessionView {
        connected: broker.is_connected(&id).await,
        messages_in: counters.messages_in,
        bytes_in: counters.bytes_in,
        authorization_failures: counters.authorization_failures,
        connects: counters.connects,
        disconnects: counters.disconnects,
        last_address: counters.last_address,
    }))
}

/// Send a message to a device on its `cmd` or `update` channel (QoS 1). Quarantined devices
/// still receive both: they are how a device is repaired.
#[utoipa::path(
    post, path = "/api/v1/devices/{id}/messages", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    request_body = DeviceMessageBody,
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 202, description = "Handed to the broker"),
        (status = 400, description = "Unknown channel", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 503, description = "No broker on this server", body = ErrorBody),
    )
)]
pub(crate) async fn send_message(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeviceMessageBody>,
) -> ApiResult<axum::http::StatusCode> {
    caller.require(Permission::DevicesWrite)?;
    let id = path_device(&id)?;
    if !garrison_core::device::SERVER_TO_DEVICE.contains(&body.channel.as_str()) {
        return Err(ApiError::invalid_body(
            Some("channel".into()),
            "channel must be `cmd` or `update`",
        ));
    }
    state
        .store()
        .device_get(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device {id} not found")))?;
    let broker = broker(&state)?;
    let payload = serde_json::to_vec(&body.payload).map_err(ApiError::internal)?;
    let audit = garrison_core::audit::AuditRecord::new(
        &caller.tenant,
        caller.actor(),
        "device.message",
        format!("device:{id}"),
    )
    .after(serde_json::json!({ "channel": body.channel, "bytes": payload.len() }))
    .source(caller.source_text());
    state.store().audit_append(audit).await?;
    broker
        .send_to_device(&id, &body.channel, payload.into())
        .await
        .map_err(ApiError::internal)?;
    Ok(axum::http::StatusCode::ACCEPTED)
}

/// A hawkBit target token, shown once.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct TargetTokenView {
    /// The device.
    device: String,
    /// `gdt_…`: give it to the device's hawkBit client (`Authorization: TargetToken …`,
    /// swupdate's `targettoken`); it is not shown again.
    token: String,
}

/// Issue the device's hawkBit DDI target token, replacing any earlier one: for hawkBit
/// clients that cannot present the device certificate. Shown once; only its SHA-256 is kept.
#[utoipa::path(
    post, path = "/api/v1/devices/{id}/ddi-token", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 201, description = "Issued", body = TargetTokenView),
        (status = 404, description = "No such device", body = ErrorBody),
    )
)]
pub(crate) async fn create_ddi_token(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(axum::http::StatusCode, Json<TargetTokenView>)> {
    caller.require(Permission::DevicesWrite)?;
    let id = path_device(&id)?;
    if state
        .store()
        .device_get(&caller.tenant, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("device {id} not found")));
    }
    let (token, hash) = crate::auth::mint_target_token().map_err(ApiError::internal)?;
    let audit = caller.audit("device.ddi_token.issue", &format!("device:{id}"));
    state
        .store()
        .ddi_token_set(&caller.tenant, &id, &hash, now_ms(), caller.name(), audit)
        .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(TargetTokenView {
            device: id.to_string(),
            token,
        }),
    ))
}

/// Withdraw the device's hawkBit DDI target token.
#[utoipa::path(
    delete, path = "/api/v1/devices/{id}/ddi-token", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 404, description = "The device has no token", body = ErrorBody),
    )
)]
pub(crate) async fn delete_ddi_token(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    caller.require(Permission::DevicesWrite)?;
    let id = path_device(&id)?;
    let audit = caller.audit("device.ddi_token.withdraw", &format!("device:{id}"));
    if state
        .store()
        .ddi_token_delete(&caller.tenant, &id, audit)
        .await?
    {
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "device {id} has no target token"
        )))
    }
}

/// Marks a device as one that cannot be patched.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MarkUnpatchable {
    /// Why: `end-of-support`, `no-update-path`, or your own words.
    reason: String,
    /// What stands in for the patch: `quarantine` (Garrison narrows the device to its `update`
    /// and `cmd` channels and enforces it), `partial-deactivation` (functions switched off on
    /// the device; you attest it, Garrison cannot check it) or `none` (listed as uncovered).
    control: String,
    /// For people.
    note: Option<String>,
}

/// A device that cannot be patched, with its compensating control.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct UnpatchableView {
    /// The device.
    device: String,
    /// Why it cannot be patched.
    reason: String,
    /// `quarantine`, `partial-deactivation` or `none`.
    control: String,
    /// Whether the control is in force as far as Garrison can tell: quarantine is checked
    /// against the device's profile now; partial deactivation is attested; none never is.
    in_force: Option<bool>,
    /// For people.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    /// Model, if reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// Firmware, if reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    firmware: Option<String>,
    /// When it was marked (RFC 3339).
    marked_at: String,
    /// By whom.
    marked_by: String,
}

const CONTROLS: &[&str] = &["quarantine", "partial-deactivation", "none"];

/// Mark a device unpatchable (end of support, no update path) with its compensating control;
/// `quarantine` is applied at once. Campaigns leave the device out from then on.
#[utoipa::path(
    put, path = "/api/v1/devices/{id}/unpatchable", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    request_body = MarkUnpatchable,
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 200, description = "Marked", body = UnpatchableView),
        (status = 400, description = "Unknown control or empty reason", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
    )
)]
pub(crate) async fn mark_unpatchable(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MarkUnpatchable>,
) -> ApiResult<Json<UnpatchableView>> {
    caller.require(Permission::DevicesWrite)?;
    let id = path_device(&id)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 200 {
        return Err(ApiError::invalid_body(
            Some("reason".into()),
            "give a reason of 1–200 characters (end-of-support, no-update-path, …)",
        ));
    }
    if !CONTROLS.contains(&body.control.as_str()) {
        return Err(ApiError::invalid_body(
            Some("control".into()),
            format!("control must be one of {}", CONTROLS.join(", ")),
        ));
    }
    if state
        .store()
        .device_get(&caller.tenant, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("device {id} not found")));
    }
    let entry = garrison_store::campaigns::UnpatchableDevice {
        tenant: caller.tenant.clone(),
        device: id.clone(),
        reason: reason.to_owned(),
        control: body.control,
        note: body.note,
        marked_at: now_ms(),
        marked_by: caller.name().to_owned(),
    };
    let audit = caller.audit("device.unpatchable.mark", &format!("device:{id}"));
    // The mark first: a quarantine is then never left without the record of why.
    state.store().unpatchable_put(&entry, audit).await?;
    if entry.control == "quarantine" {
        state
            .identity()
            .set_quarantined(&caller.tenant, &id, true, &caller.requester())
            .await
            .map_err(identity_error)?;
    }
    // Out of the campaigns running now, too, not only the ones to come.
    state
        .campaigns()?
        .withdraw(&id, &format!("marked unpatchable: {}", entry.reason))
        .await
        .map_err(super::campaign_error)?;
    Ok(Json(unpatchable_view(&state, entry)))
}

fn unpatchable_view(
    state: &ApiState,
    u: garrison_store::campaigns::UnpatchableDevice,
) -> UnpatchableView {
    let record = state
        .inventory()
        .ok()
        .and_then(|i| i.index().get(&u.device));
    let quarantined = state.identity().directory().is_quarantined(&u.device);
    let summary = record.and_then(|r| r.summary);
    UnpatchableView {
        in_force: match u.control.as_str() {
            "quarantine" => Some(quarantined),
            "none" => Some(false),
            _ => None,
        },
        device: u.device.to_string(),
        reason: u.reason,
        control: u.control,
        note: u.note,
        model: summary.as_ref().and_then(|s| s.model.clone()),
        firmware: summary.and_then(|s| s.firmware),
        marked_at: garrison_core::format_ms(u.marked_at),
        marked_by: u.marked_by,
    }
}

/// Remove a device's unpatchable mark (its quarantine, if any, stays until released).
#[utoipa::path(
    delete, path = "/api/v1/devices/{id}/unpatchable", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "The device is not marked", body = ErrorBody),
    )
)]
pub(crate) async fn unmark_unpatchable(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    caller.require(Permission::DevicesWrite)?;
    let id = path_device(&id)?;
    let audit = caller.audit("device.unpatchable.unmark", &format!("device:{id}"));
    if state
        .store()
        .unpatchable_delete(&caller.tenant, &id, audit)
        .await?
    {
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "device {id} is not marked unpatchable"
        )))
    }
}

/// Devices that cannot be patched, with their compensating control and whether it is in
/// force — the fleet's standing exceptions to patching.
#[utoipa::path(
    get, path = "/api/v1/updates/unpatchable", tag = "updates",
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "The devices", body = Vec<UnpatchableView>))
)]
pub(crate) async fn unpatchable(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<UnpatchableView>>> {
    caller.require(Permission::DevicesRead)?;
    let list = state.store().unpatchable_list(&caller.tenant).await?;
    Ok(Json(
        list.into_iter()
            .map(|u| unpatchable_view(&state, u))
            .collect(),
    ))
}
