//! Threat-intelligence sources: import a list, CSV, STIX 2.1 bundle or MISP feed under a name
//! (replacing an earlier import of that name), list them, remove them. Each import is in force
//! at once and hunted for in the events already stored.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
};
use garrison_core::{Permission, format_ms};
use garrison_monitor::{MonitorError, feeds::FeedFormat};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ApiError, ApiResult, ApiState, Caller, ErrorBody, StrictQuery};

/// An imported source.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IntelSourceView {
    /// Its name, also the `threat.source` of what it matches.
    name: String,
    /// `list`, `csv`, `stix` or `misp`.
    format: String,
    /// Indicators in force from it.
    indicators: i64,
    /// Entries skipped when it was imported.
    skipped: i64,
    /// When (RFC 3339).
    imported_at: String,
    /// By whom.
    imported_by: String,
}

/// An entry of a feed that was not loaded.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SkippedView {
    /// Which entry (STIX indicator id, MISP `event/attribute` uuid).
    entry: String,
    /// Why.
    reason: String,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportView {
    /// The source.
    name: String,
    /// How it was read: `list`, `csv`, `stix` or `misp`.
    format: String,
    /// Indicators now in force from it.
    indicators: usize,
    /// Entries skipped (kinds Garrison cannot match, expired, revoked …).
    skipped_count: usize,
    /// The first 100 of them, with why.
    skipped: Vec<SkippedView>,
    /// Whether it replaced an earlier import of the same name.
    replaced: bool,
    /// The stored events of the look-back window are being searched for its indicators;
    /// matches raise `garrison.intel.retro_hunt` alerts, and the hunt is audited as
    /// `intel.retro_hunt`.
    retro_hunt: &'static str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportQuery {
    format: Option<String>,
}

/// Imported threat-intelligence sources, by name (configured `monitor.intel` files are not
/// listed: they are the server's configuration).
#[utoipa::path(
    get, path = "/api/v1/intel/sources", tag = "intel",
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "The sources", body = [IntelSourceView]),
              (status = 503, description = "Monitoring is off on this server", body = ErrorBody))
)]
pub(crate) async fn sources(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<IntelSourceView>>> {
    caller.require(Permission::DevicesRead)?;
    let sources = state.intel()?.sources().await.map_err(intel_error)?;
    Ok(Json(
        sources
            .into_iter()
            .map(|s| IntelSourceView {
                name: s.name,
                format: s.format,
                indicators: s.indicators,
                skipped: s.skipped,
                imported_at: format_ms(s.imported_at),
                imported_by: s.imported_by,
            })
            .collect(),
    ))
}

/// Import a source under `name`, replacing an earlier import of that name. The body is the
/// file itself: `application/json` for a STIX 2.1 bundle or MISP feed JSON, `text/csv` for
/// `indicator,type,confidence,expires`, `text/plain` for one indicator per line (or say
/// `?format=list|csv|json`). A list or CSV with a bad line is refused whole, naming the line;
/// from STIX and MISP the entries Garrison cannot match are skipped and listed.
#[utoipa::path(
    put, path = "/api/v1/intel/sources/{name}", tag = "intel",
    params(("name" = String, Path, description = "Source name: 1–64 letters, digits, '-', '_', '.'"),
           ("format" = Option<String>, Query, description = "`list`, `csv` or `json`; default from Content-Type")),
    request_body(content = String, description = "The feed file", content_type = "application/json"),
    security(("bearer" = ["intel:write"])),
    responses(
        (status = 201, description = "Imported", body = ImportView),
        (status = 200, description = "Imported, replacing the earlier import", body = ImportView),
        (status = 400, description = "The file does not load (the message says where and why) or the name is not allowed", body = ErrorBody),
        (status = 413, description = "Over api.max_body_bytes: raise it for large feeds", body = ErrorBody),
        (status = 503, description = "Monitoring is off on this server", body = ErrorBody),
    )
)]
pub(crate) async fn import(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    StrictQuery(query): StrictQuery<ImportQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ImportView>)> {
    caller.require(Permission::IntelWrite)?;
    let format = match query.format.as_deref() {
        Some(f) => FeedFormat::parse(f)
            .ok_or_else(|| ApiError::invalid_query("format", "format must be list, csv or json"))?,
        None => {
            let mime = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(|m| m.trim().to_ascii_lowercase())
                .unwrap_or_default();
            match mime.as_str() {
                "application/json" | "application/stix+json" => FeedFormat::Json,
                "text/csv" => FeedFormat::Csv,
                "text/plain" | "application/octet-stream" | "" => FeedFormat::List,
                other => {
                    return Err(ApiError::invalid_body(
                        None,
                        format!(
                            "cannot tell the format from Content-Type {other:?}: use application/json, text/csv or text/plain, or ?format="
                        ),
                    ));
                }
            }
        }
    };
    let content = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::invalid_body(None, "the feed is not UTF-8 text"))?;
    let imported = state
        .intel()?
        .import(
            &name,
            format,
            content,
            caller.actor().to_string(),
            caller.audit("intel.import", &format!("intel:{name}")),
        )
        .await
        .map_err(intel_error)?;
    let summary = imported.summary;
    let status = if imported.replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(ImportView {
            name: imported.source,
            format: summary.format.to_owned(),
            indicators: summary.added,
            skipped_count: summary.skipped.len(),
            skipped: summary
                .skipped
                .into_iter()
                .take(100)
                .map(|s| SkippedView {
                    entry: s.what,
                    reason: s.reason,
                })
                .collect(),
            replaced: imported.replaced,
            retro_hunt: "queued",
        }),
    ))
}

/// Remove an imported source; its indicators stop matching at once.
#[utoipa::path(
    delete, path = "/api/v1/intel/sources/{name}", tag = "intel",
    params(("name" = String, Path, description = "Source name")),
    security(("bearer" = ["intel:write"])),
    responses((status = 204, description = "Removed"),
              (status = 404, description = "No such source", body = ErrorBody))
)]
pub(crate) async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::IntelWrite)?;
    state
        .intel()?
        .delete(
            &name,
            caller.audit("intel.delete", &format!("intel:{name}")),
        )
        .await
        .map_err(intel_error)?;
    Ok(StatusCode::NO_CONTENT)
}

fn intel_error(e: MonitorError) -> ApiError {
    match e {
        MonitorError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
        MonitorError::Refused(reason) => ApiError::invalid_body(None, reason),
        e @ MonitorError::Intel { .. } => ApiError::invalid_body(None, e.to_string()),
        MonitorError::Store(e) => e.into(),
        other => ApiError::internal(other),
    }
}
