//! Carrying out response actions: the [`Responder`] seam (so tests and dry runs need no
//! broker), the live implementation over identity, broker and inventory, and signed webhooks.
//!
//! Every action is taken in the name of the playbook (`system:playbook:<name>`) with the alert
//! and response ids as the audit record's source, so the identity service's own audit entries
//! (`device.quarantine`, `certificate.revoke` …) name what caused them.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use garrison_broker::DeviceBroker;
use garrison_core::{
    DeviceId, TenantId, Username,
    audit::{Actor, AuditRecord},
    device::RevocationReason,
};
use garrison_identity::{IdentityService, Requester};
use garrison_inventory::InventoryService;
use garrison_store::Store;

/// Why an action is taken: the playbook, the alert and the response record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The playbook (or the operator undoing an action).
    pub actor: Actor,
    /// `alert:<id> response:<id>`.
    pub source: String,
}

/// What carries out actions on devices.
#[async_trait]
pub trait Responder: Send + Sync {
    /// Whether the device is quarantined now.
    fn is_quarantined(&self, device: &DeviceId) -> bool;
    /// Turns the quarantine profile on or off.
    async fn quarantine(&self, device: &DeviceId, on: bool, cause: &Cause) -> Result<(), String>;
    /// Closes the device's session. `Ok(false)` when it was not connected.
    async fn disconnect(&self, device: &DeviceId, cause: &Cause) -> Result<bool, String>;
    /// Revokes the device's current certificate.
    async fn revoke(
        &self,
        device: &DeviceId,
        reason: RevocationReason,
        cause: &Cause,
    ) -> Result<(), String>;
    /// Asks the device to rotate its certificate.
    async fn rotate(&self, device: &DeviceId, cause: &Cause) -> Result<(), String>;
    /// Adds the device to (or removes it from) a static group.
    async fn group(
        &self,
        device: &DeviceId,
        group: &str,
        add: bool,
        cause: &Cause,
    ) -> Result<(), String>;
}

/// The responder of a running server.
#[derive(Clone)]
pub struct LiveResponder {
    tenant: TenantId,
    store: Arc<dyn Store>,
    identity: IdentityService,
    inventory: InventoryService,
    broker: Arc<OnceLock<Arc<dyn DeviceBroker>>>,
}

impl LiveResponder {
    /// A responder; `broker` is filled in once the broker runs (it starts after monitoring).
    pub fn new(
        tenant: TenantId,
        store: Arc<dyn Store>,
        identity: IdentityService,
        inventory: InventoryService,
        broker: Arc<OnceLock<Arc<dyn DeviceBroker>>>,
    ) -> LiveResponder {
        LiveResponder {
            tenant,
            store,
            identity,
            inventory,
            broker,
        }
    }

    fn requester(cause: &Cause) -> Result<Requester, String> {
        Ok(Requester {
            // The actor is what is audited; the username only fills the type.
            username: Username::new("monitor").map_err(|e| e.to_string())?,
            actor: cause.actor.clone(),
            source: Some(cause.source.clone()),
        })
    }

    fn broker(&self) -> Result<&Arc<dyn DeviceBroker>, String> {
        self.broker
            .get()
            .ok_or_else(|| "the MQTT broker is not running (broker.enabled = false)".to_owned())
    }
}

#[async_trait]
impl Responder for LiveResponder {
    fn is_quarantined(&self, device: &DeviceId) -> bool {
        self.identity.directory().is_quarantined(device)
    }

    async fn quarantine(&self, device: &DeviceId, on: bool, cause: &Cause) -> Result<(), String> {
        self.identity
            .set_quarantined(&self.tenant, device, on, &Self::requester(cause)?)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn disconnect(&self, device: &DeviceId, _cause: &Cause) -> Result<bool, String> {
        Ok(self.broker()?.disconnect(device).await)
    }

    async fn revoke(
        &self,
        device: &DeviceId,
        reason: RevocationReason,
        cause: &Cause,
    ) -> Result<(), String> {
        let record = self
            .store
            .device_get(&self.tenant, device)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("device {device} is not enrolled"))?;
        let serial = record
            .current_serial
            .ok_or_else(|| format!("device {device} has no current certificate"))?;
        self.identity
            .revoke(&self.tenant, &serial, reason, &Self::requester(cause)?)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn rotate(&self, device: &DeviceId, cause: &Cause) -> Result<(), String> {
        let record = self
            .identity
            .request_rotation(&self.tenant, device, &Self::requester(cause)?)
            .await
            .map_err(|e| e.to_string())?;
        let command = serde_json::json!({
            "schema": 1,
            "command": "rotate-certificate",
            "current_serial": record.current_serial,
        });
        let payload = serde_json::to_vec(&command).map_err(|e| e.to_string())?;
        // The request stands even if the device is offline: it learns of it when it renews.
        if let Ok(broker) = self.broker()
            && let Err(e) = broker.send_to_device(device, "cmd", payload.into()).await
        {
            tracing::warn!(%device, error = %e, "Could not send the rotation command");
        }
        Ok(())
    }

    async fn group(
        &self,
        device: &DeviceId,
        group: &str,
        add: bool,
        cause: &Cause,
    ) -> Result<(), String> {
        let audit = AuditRecord::new(
            &self.tenant,
            cause.actor.clone(),
            if add {
                "group.members_add"
            } else {
                "group.members_remove"
            },
            format!("group:{group}"),
        )
        .source(Some(cause.source.clone()));
        self.inventory
            .change_members(group, vec![device.clone()], add, audit)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Signs and sends webhook notifications.
#[derive(Debug, Clone)]
pub struct Webhooks {
    client: reqwest::Client,
}

/// The header carrying `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "x-garrison-signature";
/// The header carrying the Unix-seconds timestamp that was signed (replay protection).
pub const TIMESTAMP_HEADER: &str = "x-garrison-timestamp";

impl Webhooks {
    /// A sender with a 5 s timeout and no redirects (a redirect could leak the payload).
    pub fn new() -> Result<Webhooks, String> {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map(|client| Webhooks { client })
            .map_err(|e| e.to_string())
    }

    /// POSTs `body` to `url`, signed with the secret in the environment variable `secret_env`.
    pub async fn send(
        &self,
        url: &str,
        secret_env: &str,
        body: &serde_json::Value,
    ) -> Result<u16, String> {
        let secret = std::env::var(secret_env)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("the webhook secret variable {secret_env} is not set"))?;
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let timestamp = garrison_core::now_ms() / 1000;
        let signature = sign(secret.as_bytes(), timestamp, &body);
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, format!("sha256={signature}"))
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(format!("POST {url}: HTTP {status}"))
        }
    }
}

/// Hex HMAC-SHA256 over `"<timestamp>.<body>"`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    hex::encode(ctx.sign().as_ref())
}
