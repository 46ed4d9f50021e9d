//! The Eclipse hawkBit DDI API (`/{tenant}/controller/v1/{controllerId}`), so stock hawkBit
//! clients — swupdate's suricatta, rauc-hawkbit-updater — take part in Garrison's campaigns
//! unchanged. A protocol edge: it converts DDI's polls and feedback to the campaigns' own
//! terms and back; the campaigns decide everything.
//!
//! - Authentication: the device's certificate as the TLS client certificate, its CN equal to
//!   `controllerId` (not revoked), or the device's target token (`Authorization: TargetToken`,
//!   issued by `POST /api/v1/devices/{id}/ddi-token`); anything else is 401/403, logged.
//! - The poll answers with the polling interval and, when the device has work, a
//!   `deploymentBase` (or `cancelAction`) link whose action id is the campaign's number;
//!   `configData` is asked for until the device has sent its attributes once.
//! - `deploymentBase` describes the release: one chunk with the manifest's artifacts, their
//!   SHA-256 and the SHA-1 and MD5 hawkBit clients check, and download links back here.
//! - Feedback maps to update stages: `proceeding` (download started; all chunks installed),
//!   `downloaded`, `closed` with `success` or `failure`, `rejected`, `canceled`. Only
//!   HTTP 200 counts as accepted for these clients.
//! - Feedback bodies are parsed leniently (swupdate puts raw newlines in its error strings)
//!   but bounded (64 KiB).

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use garrison_campaigns::DdiPoll;
use garrison_contract::UpdateState;
use garrison_core::{DeviceId, now_ms};
use garrison_store::inventory::NewDeviceEvent;
use garrison_update::campaign::Action;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{ApiError, ApiResult, ApiState, ClientAddr, ClientCertificate};

const BASE: &str = "/{tenant}/controller/v1/{controller}";
/// Largest feedback or configData body read.
const MAX_BODY: usize = 64 * 1024;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route(BASE, get(poll))
        .route(
            &format!("{BASE}/deploymentBase/{{action}}"),
            get(deployment),
        )
        .route(&format!("{BASE}/installedBase/{{action}}"), get(deployment))
        .route(
            &format!("{BASE}/deploymentBase/{{action}}/feedback"),
            post(feedback),
        )
        .route(&format!("{BASE}/cancelAction/{{action}}"), get(cancel))
        .route(
            &format!("{BASE}/cancelAction/{{action}}/feedback"),
            post(cancel_feedback),
        )
        .route(&format!("{BASE}/configData"), put(config_data))
        .route(
            &format!("{BASE}/softwaremodules/{{action}}/artifacts/{{file}}"),
            get(artifact),
        )
}

/// What a request presents to authenticate, read before any await (a request is not `Sync`).
struct Presented {
    source: Option<String>,
    token: Option<String>,
    cert: Option<garrison_pki::PeerCertificate>,
}

fn presented(request: &Request) -> Presented {
    Presented {
        source: request
            .extensions()
            .get::<ClientAddr>()
            .map(|a| a.0.ip().to_string()),
        token: request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("TargetToken "))
            .map(|t| t.trim().to_owned()),
        cert: request
            .extensions()
            .get::<ClientCertificate>()
            .map(|c| c.0.clone()),
    }
}

/// The controller a request speaks for, after checking tenant and credentials. Not an
/// `async fn`: the future must not hold the request (which is not `Sync`) across awaits.
fn controller<'a>(
    state: &'a ApiState,
    request: &Request,
    tenant: &'a str,
    id: &'a str,
) -> impl std::future::Future<Output = ApiResult<DeviceId>> + Send + 'a {
    authenticate(state, presented(request), tenant, id)
}

async fn authenticate(
    state: &ApiState,
    presented: Presented,
    tenant: &str,
    id: &str,
) -> ApiResult<DeviceId> {
    let refuse = |why: String| {
        tracing::warn!(source = presented.source.as_deref().unwrap_or("-"), controller = id, %why, "hawkBit DDI request refused");
        why
    };
    if tenant != state.settings().tenant.as_str() {
        return Err(ApiError::not_found(refuse(format!(
            "no tenant {tenant:?} here"
        ))));
    }
    if let Some(token) = &presented.token {
        let owner = state
            .store()
            .ddi_token_device(
                &state.settings().tenant,
                &crate::auth::target_token_hash(token),
            )
            .await?;
        return match owner {
            Some(device) if device.as_str() == id => {
                // A token stands beside the device's identity, not in place of it: once its
                // certificate is revoked the token opens nothing either.
                let current = state
                    .store()
                    .device_get(&state.settings().tenant, &device)
                    .await?
                    .and_then(|d| d.current_serial);
                match current {
                    Some(serial) if !state.identity().directory().is_revoked(&serial) => Ok(device),
                    _ => Err(ApiError::unauthenticated(refuse(
                        "the device's certificate is revoked; its target token is void".into(),
                    ))),
                }
            }
            Some(_) => Err(ApiError::forbidden(refuse(format!(
                "the target token is not controller {id:?}'s"
            )))),
            None => Err(ApiError::unauthenticated(refuse(
                "unknown target token".into(),
            ))),
        };
    }
    let Some(cert) = &presented.cert else {
        return Err(ApiError::unauthenticated(refuse(
            "present the device's certificate as the TLS client certificate, or its target token"
                .into(),
        )));
    };
    if state.identity().directory().is_revoked(&cert.serial) {
        return Err(ApiError::unauthenticated(refuse(
            "this certificate is revoked".into(),
        )));
    }
    if cert.common_name != id {
        return Err(ApiError::forbidden(refuse(format!(
            "the certificate is for {:?}, not for controller {id:?}",
            cert.common_name
        ))));
    }
    DeviceId::new(id.to_owned()).map_err(|e| ApiError::invalid_path("controllerId", e.to_string()))
}

/// `https://host:port` as the client addressed us, for the links.
fn origin(request: &Request) -> String {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    format!("https://{host}")
}

fn hh_mm_ss(d: std::time::Duration) -> String {
    let s = d.as_secs().max(1);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

async fn poll(
    State(state): State<ApiState>,
    Path((tenant, id)): Path<(String, String)>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let device = controller(&state, &request, &tenant, &id).await?;
    let campaigns = state.campaigns()?;
    let base = format!("{}/{tenant}/controller/v1/{id}", origin(&request));
    let mut links = serde_json::Map::new();
    match campaigns.ddi_poll(&device).await {
        DdiPoll::Deployment(action) => {
            links.insert(
                "deploymentBase".into(),
                json!({"href": format!("{base}/deploymentBase/{action}")}),
            );
        }
        DdiPoll::Cancel(action) => {
            links.insert(
                "cancelAction".into(),
                json!({"href": format!("{base}/cancelAction/{action}")}),
            );
        }
        DdiPoll::Idle => {}
    }
    // As hawkBit does: ask for the attributes until they have come once (clients that have
    // them to send hold installs back while the link is offered).
    if !campaigns.ddi_config_received(&device).await {
        links.insert(
            "configData".into(),
            json!({"href": format!("{base}/configData")}),
        );
    }
    Ok(Json(json!({
        "config": {"polling": {"sleep": hh_mm_ss(campaigns.ddi_poll_interval())}},
        "_links": links,
    })))
}

fn action_of(text: &str) -> ApiResult<i64> {
    text.parse()
        .map_err(|_| ApiError::invalid_path("actionId", "not an action id (a number)"))
}

async fn deployment(
    State(state): State<ApiState>,
    Path((tenant, id, action)): Path<(String, String, String)>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let device = controller(&state, &request, &tenant, &id).await?;
    let action = action_of(&action)?;
    let d = state
        .campaigns()?
        .ddi_deployment(&device, action)
        .await
        .ok_or_else(|| ApiError::not_found(format!("no action {action} for {device}")))?;
    let releases = state.releases()?;
    let base = format!("{}/{tenant}/controller/v1/{id}", origin(&request));
    let mut artifacts = Vec::new();
    for a in d.release.artifacts.as_array().into_iter().flatten() {
        let (Some(name), Some(sha256), Some(size)) = (
            a.get("name").and_then(Value::as_str),
            a.get("sha256").and_then(Value::as_str),
            a.get("size").and_then(Value::as_u64),
        ) else {
            continue;
        };
        let legacy = releases
            .legacy_digests(sha256)
            .await
            .map_err(crate::routes::release_error)?;
        let href = format!("{base}/softwaremodules/{action}/artifacts/{name}");
        artifacts.push(json!({
            "filename": name,
            "size": size,
            "hashes": {"sha1": legacy.sha1, "md5": legacy.md5, "sha256": sha256},
            "_links": {"download": {"href": href}},
        }));
    }
    let (download, update) = match d.kind {
        Action::Forced => ("forced", "forced"),
        Action::Soft => ("attempt", "attempt"),
        Action::DownloadOnly => ("forced", "skip"),
    };
    Ok(Json(json!({
        "id": action.to_string(),
        "deployment": {
            "download": download,
            "update": update,
            "maintenanceWindow": "available",
            "chunks": [{
                "part": "os",
                "name": d.release.model,
                "version": d.release.version,
                "artifacts": artifacts,
            }],
        },
    })))
}

/// Reads a bounded JSON body leniently: control characters (raw newlines inside strings, as
/// swupdate sends) become spaces.
async fn lenient_json(request: Request) -> ApiResult<Value> {
    let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApiError::payload_too_large(MAX_BODY))?;
    let text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    serde_json::from_str(&text).map_err(|e| ApiError::invalid_body(None, e.to_string()))
}

/// A DDI status as an update stage; `None` when it changes nothing.
fn stage_of(status: &Value, kind: Option<Action>) -> Option<(UpdateState, Option<String>)> {
    let execution = status.get("execution").and_then(Value::as_str)?;
    let finished = status
        .pointer("/result/finished")
        .and_then(Value::as_str)
        .unwrap_or("none");
    let details: Vec<&str> = status
        .get("details")
        .and_then(Value::as_array)
        .map(|d| d.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let reason = (!details.is_empty()).then(|| details.join("; ").trim().to_owned());
    let progress = |key: &str| {
        status
            .pointer(&format!("/result/progress/{key}"))
            .and_then(Value::as_u64)
    };
    Some(match (execution, finished) {
        ("closed", "success") => (UpdateState::Succeeded, None),
        ("closed", "failure") => (UpdateState::Failed, reason),
        ("closed", _) => return None,
        // Every chunk done: the installer has finished.
        ("proceeding", _)
            if progress("of").is_some_and(|of| of > 0 && progress("cnt") == Some(of)) =>
        {
            (UpdateState::Installed, None)
        }
        ("proceeding" | "download", _) => (UpdateState::Downloading, None),
        ("downloaded", _) if kind == Some(Action::DownloadOnly) => (UpdateState::Verified, None),
        ("downloaded", _) => (UpdateState::Downloaded, None),
        ("rejected", _) if kind == Some(Action::Soft) => (UpdateState::Deferred, reason),
        ("rejected", _) => (
            UpdateState::Failed,
            Some(reason.unwrap_or_else(|| "the device rejected the update".into())),
        ),
        ("canceled", _) => (UpdateState::Cancelled, None),
        _ => return None,
    })
}

async fn feedback(
    State(state): State<ApiState>,
    Path((tenant, id, action)): Path<(String, String, String)>,
    request: Request,
) -> ApiResult<StatusCode> {
    let device = controller(&state, &request, &tenant, &id).await?;
    let action = action_of(&action)?;
    let body = lenient_json(request).await?;
    let campaigns = state.campaigns()?;
    let kind = campaigns
        .ddi_deployment(&device, action)
        .await
        .map(|d| d.kind);
    let status = body.get("status").cloned().unwrap_or(Value::Null);
    if let Some((stage, reason)) = stage_of(&status, kind) {
        campaigns
            .ddi_feedback(&device, action, stage, reason)
            .await
            .map_err(crate::routes::campaign_error)?;
    }
    Ok(StatusCode::OK)
}

async fn cancel(
    State(state): State<ApiState>,
    Path((tenant, id, action)): Path<(String, String, String)>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let device = controller(&state, &request, &tenant, &id).await?;
    let action = action_of(&action)?;
    match state.campaigns()?.ddi_poll(&device).await {
        DdiPoll::Cancel(a) if a == action => Ok(Json(json!({
            "id": action.to_string(),
            "cancelAction": {"stopId": action.to_string()},
        }))),
        _ => Err(ApiError::not_found(format!(
            "no cancellation of action {action} for {device}"
        ))),
    }
}

async fn cancel_feedback(
    State(state): State<ApiState>,
    Path((tenant, id, action)): Path<(String, String, String)>,
    request: Request,
) -> ApiResult<StatusCode> {
    let device = controller(&state, &request, &tenant, &id).await?;
    let action = action_of(&action)?;
    let body = lenient_json(request).await?;
    let execution = body.pointer("/status/execution").and_then(Value::as_str);
    if matches!(execution, Some("closed" | "rejected")) {
        state.campaigns()?.ddi_cancelled(&device, action).await;
    }
    Ok(StatusCode::OK)
}

async fn config_data(
    State(state): State<ApiState>,
    Path((tenant, id)): Path<(String, String)>,
    request: Request,
) -> ApiResult<StatusCode> {
    let device = controller(&state, &request, &tenant, &id).await?;
    let body = lenient_json(request).await?;
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    if !data.is_object() {
        return Err(ApiError::invalid_body(
            Some("data".into()),
            "configData needs a `data` object of attributes",
        ));
    }
    let now = now_ms();
    state
        .store()
        .device_events_append(&[NewDeviceEvent {
            tenant: state.settings().tenant.clone(),
            device: device.clone(),
            received_at: now,
            at: now,
            kind: "ddi_attributes".into(),
            body: data,
        }])
        .await?;
    state.campaigns()?.ddi_config_stored(&device).await;
    Ok(StatusCode::OK)
}

async fn artifact(
    State(state): State<ApiState>,
    Path((tenant, id, action, file)): Path<(String, String, String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let device = controller(&state, &request, &tenant, &id).await?;
    let action = action_of(&action)?;
    let d = state
        .campaigns()?
        .ddi_deployment(&device, action)
        .await
        .ok_or_else(|| {
            ApiError::forbidden(format!("{device} is not working on action {action}"))
        })?;
    let sha256 = d
        .release
        .artifacts
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a.get("name").and_then(Value::as_str) == Some(file.as_str()))
        .and_then(|a| a.get("sha256").and_then(Value::as_str))
        .ok_or_else(|| ApiError::not_found(format!("no artifact {file:?} in action {action}")))?
        .to_owned();
    let path = state
        .releases()?
        .artifact_path(&sha256)
        .ok_or_else(|| ApiError::invalid_path("file", "not an artifact"))?;
    let served = tower_http::services::ServeFile::new(&path)
        .oneshot(request)
        .await
        .map_err(ApiError::internal)?;
    metrics::counter!("garrison_device_artifact_downloads_total").increment(1);
    Ok(served.map(Body::new).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(execution: &str, finished: &str, cnt: u64, of: u64) -> Value {
        json!({"execution": execution, "result": {"finished": finished,
            "progress": {"cnt": cnt, "of": of}}, "details": ["step"]})
    }

    #[test]
    fn feedback_maps_to_update_stages() {
        let forced = Some(Action::Forced);
        // swupdate: "proceeding" before the download, then "all chunks installed" (cnt = of).
        assert_eq!(
            stage_of(&status("proceeding", "none", 0, 1), forced)
                .unwrap()
                .0,
            UpdateState::Downloading
        );
        assert_eq!(
            stage_of(&status("proceeding", "none", 1, 1), forced)
                .unwrap()
                .0,
            UpdateState::Installed
        );
        // A log line with progress 1 of 0 is still just progress.
        assert_eq!(
            stage_of(&status("proceeding", "none", 1, 0), forced)
                .unwrap()
                .0,
            UpdateState::Downloading
        );
        assert_eq!(
            stage_of(&status("closed", "success", 1, 1), forced)
                .unwrap()
                .0,
            UpdateState::Succeeded
        );
        let (state, reason) = stage_of(&status("closed", "failure", 0, 1), forced).unwrap();
        assert_eq!(
            (state, reason.as_deref()),
            (UpdateState::Failed, Some("step"))
        );
        assert!(stage_of(&status("closed", "none", 0, 1), forced).is_none());
        assert!(stage_of(&status("scheduled", "none", 0, 1), forced).is_none());
        // What "downloaded" and "rejected" mean depends on the campaign's action.
        assert_eq!(
            stage_of(
                &status("downloaded", "none", 1, 1),
                Some(Action::DownloadOnly)
            )
            .unwrap()
            .0,
            UpdateState::Verified
        );
        assert_eq!(
            stage_of(&status("rejected", "none", 0, 1), Some(Action::Soft))
                .unwrap()
                .0,
            UpdateState::Deferred
        );
        assert_eq!(
            stage_of(&status("rejected", "none", 0, 1), forced)
                .unwrap()
                .0,
            UpdateState::Failed
        );
    }

    #[test]
    fn polling_intervals_are_hh_mm_ss() {
        assert_eq!(hh_mm_ss(std::time::Duration::from_secs(30)), "00:00:30");
        assert_eq!(hh_mm_ss(std::time::Duration::from_secs(3_725)), "01:02:05");
        assert_eq!(hh_mm_ss(std::time::Duration::ZERO), "00:00:01");
    }
}
