//! The inventory: device search with the query language, device detail, last report, SBOM,
//! fact history, drift, events, tags, groups, unmanaged sightings, and CSV/JSON export.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use garrison_core::{DeviceId, Impact, Permission};
use garrison_inventory::{GroupSpec, InventoryError, device_schema};
use garrison_query::FieldKind;
use serde::Deserialize;

use crate::{
    ApiError, ApiJson, ApiResult, ApiState, Caller, ErrorBody, Pagination, StrictQuery,
    routes::devices::path_device,
    views::{
        PageOf,
        inventory::{
            DestinationView, DeviceDetailView, DeviceEventView, DeviceListItem, DriftView,
            FactChangeView, GroupBody, GroupView, InventoryView, MembersBody, MembersChanged,
            QueryFieldView, TagUpdate, UnmanagedView,
        },
    },
};

/// Maps inventory errors to API errors: bad queries and values are 400s naming the field.
pub(crate) fn inventory_error(e: InventoryError) -> ApiError {
    match e {
        InventoryError::Store(e) => e.into(),
        InventoryError::Query(e) => ApiError::invalid_query("q", e.to_string()),
        InventoryError::GroupQuery(e) => {
            ApiError::invalid_body(Some("query".into()), e.to_string())
        }
        InventoryError::Invalid { field, reason } => {
            ApiError::invalid_body(Some(field.into()), format!("{field} {reason}"))
        }
        other => ApiError::internal(other),
    }
}

/// A CSV document, with cells that spreadsheet programs would run as formulas neutralised.
pub(crate) fn csv(
    filename: &str,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Response {
    fn cell(out: &mut String, value: &str) {
        // "=cmd|…" in a cell is code to Excel (CSV injection): prefix such cells with a quote.
        let guarded = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
        let needs_quotes = guarded || value.contains([',', '"', '\n', '\r']);
        if needs_quotes {
            out.push('"');
            if guarded {
                out.push('\'');
            }
            out.push_str(&value.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(value);
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        for (i, c) in cells.enumerate() {
            if i > 0 {
                out.push(',');
            }
            cell(&mut out, c);
        }
        out.push_str("\r\n");
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        out,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchQuery {
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// List or search devices, ordered by id. `q` is a device query
/// (`model = cam-x and firmware < 2.1 and tag:site = berlin`; fields: `GET /api/v1/inventory/fields`).
#[utoipa::path(
    get, path = "/api/v1/devices", tag = "devices",
    params(("q" = Option<String>, Query, description = "Device query; absent: every device"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "A page of devices", body = PageOf<DeviceListItem>),
        (status = 400, description = "The query does not parse (the message says where and why)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks devices:read", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(query): StrictQuery<SearchQuery>,
) -> ApiResult<Json<PageOf<DeviceListItem>>> {
    caller.require(Permission::DevicesRead)?;
    let page = Pagination::parse(query.limit, query.cursor)?;
    if query.q.as_ref().is_some_and(|q| q.len() > 4096) {
        return Err(ApiError::invalid_query("q", "queries are at most 4 KiB"));
    }
    let found = state
        .inventory()?
        .search(
            query.q.as_deref(),
            page.cursor.as_deref(),
            page.limit as usize,
        )
        .map_err(inventory_error)?;
    Ok(Json(PageOf {
        items: found.items.iter().map(DeviceListItem::from).collect(),
        next_cursor: found.next,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    q: Option<String>,
    format: Option<String>,
}

fn export_format(format: Option<&str>) -> ApiResult<bool> {
    match format.unwrap_or("csv") {
        "csv" => Ok(true),
        "json" => Ok(false),
        other => Err(ApiError::invalid_query(
            "format",
            format!("format must be csv or json, not {other:?}"),
        )),
    }
}

/// Export every device matching `q` (all devices without it) as CSV or a JSON array.
#[utoipa::path(
    get, path = "/api/v1/export/devices", tag = "devices",
    params(("q" = Option<String>, Query, description = "Device query"),
           ("format" = Option<String>, Query, description = "`csv` (default) or `json`")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "Every matching device (text/csv or application/json)", body = Vec<DeviceListItem>),
        (status = 400, description = "Bad query or format", body = ErrorBody),
    )
)]
pub(crate) async fn export(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(query): StrictQuery<ExportQuery>,
) -> ApiResult<Response> {
    caller.require(Permission::DevicesRead)?;
    let as_csv = export_format(query.format.as_deref())?;
    let found = state
        .inventory()?
        .search(query.q.as_deref(), None, usize::MAX)
        .map_err(inventory_error)?;
    let items: Vec<DeviceListItem> = found.items.iter().map(DeviceListItem::from).collect();
    Ok(if as_csv {
        csv(
            "devices.csv",
            DeviceListItem::CSV_HEADER,
            items.iter().map(DeviceListItem::csv_row),
        )
    } else {
        Json(items).into_response()
    })
}

/// The fields of the device query language.
#[utoipa::path(
    get, path = "/api/v1/inventory/fields", tag = "devices",
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "Query fields", body = Vec<QueryFieldView>))
)]
pub(crate) async fn fields(caller: Caller) -> ApiResult<Json<Vec<QueryFieldView>>> {
    caller.require(Permission::DevicesRead)?;
    Ok(Json(
        device_schema()
            .fields()
            .iter()
            .map(|f| QueryFieldView {
                name: f.name.to_owned(),
                kind: match f.kind {
                    FieldKind::Text => "text",
                    FieldKind::Version => "version",
                    FieldKind::Number => "number",
                    FieldKind::Bool => "bool",
                }
                .to_owned(),
                keyed: f.keyed,
                doc: f.doc.to_owned(),
            })
            .collect(),
    ))
}

/// One device: identity, inventory summary, presence, tags, groups, risk with its explanation,
/// open findings.
#[utoipa::path(
    get, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "The device", body = DeviceDetailView),
        (status = 404, description = "No such device", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceDetailView>> {
    caller.require(Permission::DevicesRead)?;
    let id = path_device(&id)?;
    let device = state
        .store()
        .device_get(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device {id} not found")))?;
    let inventory = state.inventory()?;
    // The index may not have seen a device enrolled a moment ago on another replica.
    if !inventory.index().contains(&id) {
        inventory.index().upsert_device(&device);
    }
    let record = inventory
        .index()
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("device {id} not found")))?;
    let mut view = DeviceDetailView::from(&record);
    view.rotation_requested_at = device.rotation_requested_at.map(garrison_core::format_ms);
    view.updated_at = Some(garrison_core::format_ms(device.updated_at));
    Ok(Json(view))
}

fn device_known(state: &ApiState, id: &DeviceId) -> ApiResult<()> {
    if state.inventory()?.index().contains(id) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("device {id} not found")))
    }
}

/// The device's last inventory report, as it sent it (without the SBOM).
#[utoipa::path(
    get, path = "/api/v1/devices/{id}/inventory", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "The report", body = InventoryView),
        (status = 404, description = "No such device, or it has not reported", body = ErrorBody),
    )
)]
pub(crate) async fn inventory(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<InventoryView>> {
    caller.require(Permission::DevicesRead)?;
    let id = path_device(&id)?;
    let snapshot = state
        .store()
        .inventory_get(&caller.tenant, &id, false)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device {id} has not reported an inventory")))?;
    Ok(Json(InventoryView {
        received_at: garrison_core::format_ms(snapshot.received_at),
        report: serde_json::to_value(&snapshot.inventory).map_err(ApiError::internal)?,
    }))
}

/// The device's installed software as a CycloneDX SBOM.
#[utoipa::path(
    get, path = "/api/v1/devices/{id}/sbom", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "CycloneDX JSON (application/vnd.cyclonedx+json)", body = Object),
        (status = 404, description = "No such device, or no SBOM reported", body = ErrorBody),
    )
)]
pub(crate) async fn sbom(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Permission::DevicesRead)?;
    let id = path_device(&id)?;
    let sbom = state
        .store()
        .inventory_get(&caller.tenant, &id, true)
        .await?
        .and_then(|s| s.inventory.software)
        .ok_or_else(|| ApiError::not_found(format!("device {id} has not reported its software")))?;
    let body = serde_json::to_vec(&sbom).map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.cyclonedx+json"),
        )],
        body,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    fact: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The device's fact history, newest first.
#[utoipa::path(
    get, path = "/api/v1/devices/{id}/history", tag = "devices",
    params(("id" = String, Path, description = "Device id"),
           ("fact" = Option<String>, Query, description = "Only this fact (`firmware.version`)"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "A page of changes", body = PageOf<FactChangeView>),
        (status = 404, description = "No such device", body = ErrorBody),
    )
)]
pub(crate) async fn history(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    StrictQuery(query): StrictQuery<HistoryQuery>,
) -> ApiResult<Json<PageOf<FactChangeView>>> {
    caller.require(Permission::DevicesRead)?;
    let id = path_device(&id)?;
    device_known(&state, &id)?;
    let page = Pagination::parse(query.limit, query.cursor)?;
    let changes = state
        .store()
        .fact_history(
            &caller.tenant,
            &id,
            query.fact.as_deref(),
            &page.to_request(),
        )
        .await?;
    Ok(Json(PageOf::from_page(changes, FactChangeView::from)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceFilterQuery {
    device: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub(crate) fn optional_device(raw: Option<&str>) -> ApiResult<Option<DeviceId>> {
    raw.map(|d| DeviceId::new(d).map_err(|e| ApiError::invalid_query("device", e.to_string())))
        .transpose()
}

/// A `severity` query parameter: this severity or worse.
pub(crate) fn optional_severity(raw: Option<&str>) -> ApiResult<Option<garrison_core::Severity>> {
    raw.map(|s| {
        s.parse::<garrison_core::Severity>()
            .map_err(|e| ApiError::invalid_query("severity", e.to_string()))
    })
    .transpose()
}

/// Configuration drift events, newest first.
#[utoipa::path(
    get, path = "/api/v1/drift", tag = "devices",
    params(("device" = Option<String>, Query, description = "Only this device"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of drift events", body = PageOf<DriftView>))
)]
pub(crate) async fn drift(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(query): StrictQuery<DeviceFilterQuery>,
) -> ApiResult<Json<PageOf<DriftView>>> {
    caller.require(Permission::DevicesRead)?;
    let page = Pagination::parse(query.limit, query.cursor)?;
    let device = optional_device(query.device.as_deref())?;
    let events = state
        .store()
        .drift_list(&caller.tenant, device.as_ref(), &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(events, DriftView::from)))
}

/// Security events devices reported, newest first.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "devices",
    params(("device" = Option<String>, Query, description = "Only this device"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of events", body = PageOf<DeviceEventView>))
)]
pub(crate) async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(query): StrictQuery<DeviceFilterQuery>,
) -> ApiResult<Json<PageOf<DeviceEventView>>> {
    caller.require(Permission::DevicesRead)?;
    let page = Pagination::parse(query.limit, query.cursor)?;
    let device = optional_device(query.device.as_deref())?;
    let events = state
        .store()
        .device_events_list(&caller.tenant, device.as_ref(), &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(events, DeviceEventView::from)))
}

/// Remote addresses devices reported in their telemetry, by device and address, with when
/// each was first and last reported (kept for `inventory.retention`; retro-hunts read them).
#[utoipa::path(
    get, path = "/api/v1/destinations", tag = "devices",
    params(("device" = Option<String>, Query, description = "Only this device"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of destinations", body = PageOf<DestinationView>))
)]
pub(crate) async fn destinations(
    State(state): State<ApiState>,
    caller: Caller,
    StrictQuery(query): StrictQuery<DeviceFilterQuery>,
) -> ApiResult<Json<PageOf<DestinationView>>> {
    caller.require(Permission::DevicesRead)?;
    let page = Pagination::parse(query.limit, query.cursor)?;
    let device = optional_device(query.device.as_deref())?;
    let destinations = state
        .store()
        .device_destinations_list(&caller.tenant, device.as_ref(), 0, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(destinations, DestinationView::from)))
}

/// Set and remove a device's tags; returns all its tags.
#[utoipa::path(
    patch, path = "/api/v1/devices/{id}/tags", tag = "devices",
    params(("id" = String, Path, description = "Device id")),
    request_body = TagUpdate,
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 200, description = "The device's tags", body = std::collections::BTreeMap<String, String>),
        (status = 400, description = "Bad tag", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
    )
)]
pub(crate) async fn tags(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TagUpdate>,
) -> ApiResult<Json<std::collections::BTreeMap<String, String>>> {
    caller.require(Permission::DevicesWrite)?;
    let id = path_device(&id)?;
    if body.set.len() + body.remove.len() > 100 {
        return Err(ApiError::invalid_body(
            None,
            "at most 100 tag changes per request",
        ));
    }
    let audit = caller.audit("device.tags", &format!("device:{id}"));
    let tags = state
        .inventory()?
        .update_tags(&id, body.set, body.remove, audit)
        .await
        .map_err(inventory_error)?;
    Ok(Json(tags))
}

/// Sightings of unmanaged devices: refused broker connections from unknown identities, and
/// private addresses managed devices talk to or are logged into from.
#[utoipa::path(
    get, path = "/api/v1/unmanaged", tag = "devices",
    params(("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "A page of sightings, most recent first", body = PageOf<UnmanagedView>))
)]
pub(crate) async fn unmanaged(
    State(state): State<ApiState>,
    caller: Caller,
    page: Pagination,
) -> ApiResult<Json<PageOf<UnmanagedView>>> {
    caller.require(Permission::DevicesRead)?;
    let list = state
        .store()
        .unmanaged_list(&caller.tenant, &page.to_request())
        .await?;
    Ok(Json(PageOf::from_page(list, UnmanagedView::from)))
}

fn parse_impact(raw: Option<&str>) -> ApiResult<Option<Impact>> {
    raw.map(|i| {
        i.parse::<Impact>()
            .map_err(|e| ApiError::invalid_body(Some("impact".into()), e.to_string()))
    })
    .transpose()
}

fn group_spec(name: String, body: GroupBody) -> ApiResult<GroupSpec> {
    Ok(GroupSpec {
        impact: parse_impact(body.impact.as_deref())?,
        name,
        description: body.description,
        query: body.query.filter(|q| !q.trim().is_empty()),
        allowed_services: body.allowed_services,
    })
}

/// Groups with their member counts.
#[utoipa::path(
    get, path = "/api/v1/groups", tag = "groups",
    security(("bearer" = ["devices:read"])),
    responses((status = 200, description = "Every group", body = Vec<GroupView>))
)]
pub(crate) async fn groups(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<GroupView>>> {
    caller.require(Permission::DevicesRead)?;
    let groups = state.inventory()?.groups().await.map_err(inventory_error)?;
    Ok(Json(
        groups
            .into_iter()
            .map(|(g, n)| GroupView::new(g, n))
            .collect(),
    ))
}

/// Create a group: static (add members), or dynamic with a device query.
#[utoipa::path(
    post, path = "/api/v1/groups", tag = "groups",
    request_body = GroupBody,
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 201, description = "Created", body = GroupView),
        (status = 400, description = "Bad name, query or allow-list", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    )
)]
pub(crate) async fn create_group(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(mut body): ApiJson<GroupBody>,
) -> ApiResult<(axum::http::StatusCode, Json<GroupView>)> {
    caller.require(Permission::DevicesWrite)?;
    let name = body
        .name
        .take()
        .ok_or_else(|| ApiError::invalid_body(Some("name".into()), "name is required"))?;
    let spec = group_spec(name, body)?;
    let audit = caller.audit("group.create", &format!("group:{}", spec.name));
    let inventory = state.inventory()?;
    let group = inventory
        .create_group(spec, caller.name(), audit)
        .await
        .map_err(inventory_error)?;
    let members = inventory.index().members(&group.name).len();
    Ok((
        axum::http::StatusCode::CREATED,
        Json(GroupView::new(group, members)),
    ))
}

/// One group.
#[utoipa::path(
    get, path = "/api/v1/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "The group", body = GroupView),
        (status = 404, description = "No such group", body = ErrorBody),
    )
)]
pub(crate) async fn group(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<GroupView>> {
    caller.require(Permission::DevicesRead)?;
    let group = state
        .store()
        .group_get(&caller.tenant, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group {name:?} not found")))?;
    let members = state.inventory()?.index().members(&name).len();
    Ok(Json(GroupView::new(group, members)))
}

/// Replace a group's description, query, impact and allow-list (a group stays static or
/// dynamic).
#[utoipa::path(
    put, path = "/api/v1/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    request_body = GroupBody,
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 200, description = "Updated", body = GroupView),
        (status = 400, description = "Bad query or allow-list", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
    )
)]
pub(crate) async fn update_group(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<GroupBody>,
) -> ApiResult<Json<GroupView>> {
    caller.require(Permission::DevicesWrite)?;
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::invalid_body(
            Some("name".into()),
            "a group cannot be renamed",
        ));
    }
    let spec = group_spec(name.clone(), body)?;
    let audit = caller.audit("group.update", &format!("group:{name}"));
    let inventory = state.inventory()?;
    let group = inventory
        .update_group(spec, audit)
        .await
        .map_err(inventory_error)?;
    let members = inventory.index().members(&name).len();
    Ok(Json(GroupView::new(group, members)))
}

/// Delete a group (its devices stay).
#[utoipa::path(
    delete, path = "/api/v1/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 200, description = "Deleted", body = GroupView),
        (status = 404, description = "No such group", body = ErrorBody),
    )
)]
pub(crate) async fn delete_group(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<GroupView>> {
    caller.require(Permission::DevicesWrite)?;
    let audit = caller.audit("group.delete", &format!("group:{name}"));
    let group = state
        .inventory()?
        .delete_group(&name, audit)
        .await
        .map_err(inventory_error)?;
    Ok(Json(GroupView::new(group, 0)))
}

/// The devices in a group, ordered by id.
#[utoipa::path(
    get, path = "/api/v1/groups/{name}/devices", tag = "groups",
    params(("name" = String, Path, description = "Group name"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "A page of devices", body = PageOf<DeviceListItem>),
        (status = 404, description = "No such group", body = ErrorBody),
    )
)]
pub(crate) async fn group_devices(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    page: Pagination,
) -> ApiResult<Json<PageOf<DeviceListItem>>> {
    caller.require(Permission::DevicesRead)?;
    if state
        .store()
        .group_get(&caller.tenant, &name)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("group {name:?} not found")));
    }
    let query = format!(
        "group = \"{}\"",
        name.replace('\\', "\\\\").replace('"', "\\\"")
    );
    let found = state
        .inventory()?
        .search(Some(&query), page.cursor.as_deref(), page.limit as usize)
        .map_err(inventory_error)?;
    Ok(Json(PageOf {
        items: found.items.iter().map(DeviceListItem::from).collect(),
        next_cursor: found.next,
    }))
}

/// Add devices to, and remove them from, a static group.
#[utoipa::path(
    post, path = "/api/v1/groups/{name}/members", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    request_body = MembersBody,
    security(("bearer" = ["devices:write"])),
    responses(
        (status = 200, description = "What changed", body = MembersChanged),
        (status = 400, description = "A bad device id", body = ErrorBody),
        (status = 404, description = "No such group or device", body = ErrorBody),
        (status = 409, description = "The group is dynamic", body = ErrorBody),
    )
)]
pub(crate) async fn members(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<MembersBody>,
) -> ApiResult<Json<MembersChanged>> {
    caller.require(Permission::DevicesWrite)?;
    let parse = |list: Vec<String>, field: &str| -> ApiResult<Vec<DeviceId>> {
        list.into_iter()
            .map(|d| {
                DeviceId::new(d)
                    .map_err(|e| ApiError::invalid_body(Some(field.into()), e.to_string()))
            })
            .collect()
    };
    let add = parse(body.add, "add")?;
    let remove = parse(body.remove, "remove")?;
    let inventory = state.inventory()?;
    let mut changed = MembersChanged {
        added: 0,
        removed: 0,
    };
    if !add.is_empty() {
        let audit = caller.audit("group.members.add", &format!("group:{name}"));
        changed.added = inventory
            .change_members(&name, add, true, audit)
            .await
            .map_err(inventory_error)?;
    }
    if !remove.is_empty() {
        let audit = caller.audit("group.members.remove", &format!("group:{name}"));
        changed.removed = inventory
            .change_members(&name, remove, false, audit)
            .await
            .map_err(inventory_error)?;
    }
    Ok(Json(changed))
}
