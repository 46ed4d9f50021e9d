//! The HTTP intake: device messages that an edge gateway or a collector forwards in batches for
//! the devices behind it, checked one by one and queued into the same intake as the broker's.

use axum::{Json, extract::State};
use bytes::Bytes;
use garrison_core::Permission;
use garrison_inventory::forward::{ForwardedMessage, MAX_BATCH};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ApiError, ApiJson, ApiResult, ApiState, Caller, ErrorBody};

/// A batch of device messages.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IntakeBatch {
    /// The messages, in order (at most 5,000).
    messages: Vec<IntakeMessage>,
}

/// One device message, as the device would publish it over MQTT.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IntakeMessage {
    /// The device it is from (a managed device's id).
    device: String,
    /// The contract channel: `events`, `telemetry`, `inventory`, `cmd/result` or
    /// `update/status`.
    channel: String,
    /// The contract payload (`{"schema": 1, …}`), see the device contract. Kept as sent, so
    /// the contract decoder reads it once.
    #[schema(value_type = Object)]
    payload: Box<serde_json::value::RawValue>,
}

/// What became of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IntakeResult {
    /// Messages accepted: the intake will keep them.
    accepted: usize,
    /// Messages refused, each with why; nothing of them was kept.
    refused: Vec<IntakeRefusal>,
}

/// One refused message.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IntakeRefusal {
    /// Its position in `messages`.
    index: usize,
    /// The device it named.
    device: String,
    /// Stable reason: `unknown_device`, `invalid_device`, `unknown_channel`, `quarantined`,
    /// or the contract's `malformed`, `too_large`, `unsupported_schema`, `device_mismatch`,
    /// `invalid_field`.
    reason: &'static str,
    /// What is wrong, for people.
    message: String,
}

/// Hand in device messages for devices behind a gateway or collector. Each message is checked
/// as a publish from the device itself would be (managed device, channel, quarantine, the
/// contract with every bound); the good ones are accepted — kept, inventoried and monitored as
/// if published over MQTT — and each refused one is listed with its reason. A full intake makes
/// the request wait rather than lose anything.
#[utoipa::path(
    post, path = "/api/v1/intake/messages", tag = "intake",
    request_body = IntakeBatch,
    security(("bearer" = ["intake:write"])),
    responses(
        (status = 200, description = "Accepted and refused messages", body = IntakeResult),
        (status = 400, description = "Not a batch (the message names the field), or more than 5,000 messages", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Role lacks intake:write (use a `forwarder` token)", body = ErrorBody),
        (status = 413, description = "Body over api.max_body_bytes: send smaller batches", body = ErrorBody),
        (status = 503, description = "The server is stopping; retry the messages not counted as accepted", body = ErrorBody),
    )
)]
pub(crate) async fn messages(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(batch): ApiJson<IntakeBatch>,
) -> ApiResult<Json<IntakeResult>> {
    caller.require(Permission::IntakeWrite)?;
    if batch.messages.len() > MAX_BATCH {
        return Err(ApiError::invalid_body(
            Some("messages".into()),
            format!(
                "a batch holds at most {MAX_BATCH} messages, not {}: split it",
                batch.messages.len()
            ),
        ));
    }
    let forwarder = state.forwarder()?;
    let forwarded = batch
        .messages
        .into_iter()
        .map(|m| ForwardedMessage {
            device: m.device,
            channel: m.channel,
            payload: Bytes::from(String::from(Box::<str>::from(m.payload))),
        })
        .collect();
    let outcome = forwarder
        .submit(forwarded, garrison_core::now_ms())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(IntakeResult {
        accepted: outcome.accepted,
        refused: outcome
            .refused
            .into_iter()
            .map(|(index, device, refusal)| IntakeRefusal {
                index,
                device,
                reason: refusal.reason(),
                message: refusal.to_string(),
            })
            .collect(),
    }))
}
