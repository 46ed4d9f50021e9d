//! What the campaigns keep: each campaign with its rules and state, its devices with their
//! phase and stage, the history of every device's changes, and the maintenance window of each
//! group. The store knows stages and states only as text; their meaning is
//! `garrison_update::campaign`'s.

use async_trait::async_trait;
use garrison_core::{DeviceId, TenantId, UnixMillis, audit::AuditRecord};

use crate::{Page, PageRequest, StoreResult};

/// A campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRecord {
    /// Id (UUIDv7).
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// 1, 2, … per tenant, assigned by the store at creation (hawkBit's numeric action id).
    pub number: i64,
    /// For people.
    pub name: String,
    /// The release it rolls out.
    pub release_id: String,
    /// What it targeted: `{"group": …}` or `{"query": …}`.
    pub target: serde_json::Value,
    /// Its rules (`CampaignSpec` as JSON).
    pub spec: serde_json::Value,
    /// `running`, `waiting-approval`, `completed`, `aborted`, `cancelled`.
    pub state: String,
    /// The newest started phase (0-based).
    pub phase: i64,
    /// Why it stopped or waits, for people.
    pub reason: Option<String>,
    /// How many devices it holds.
    pub devices: i64,
    /// When it was created.
    pub created_at: UnixMillis,
    /// Who created it.
    pub created_by: String,
    /// When its state last changed.
    pub updated_at: UnixMillis,
}

/// A campaign's new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignStateChange<'a> {
    /// The state.
    pub state: &'a str,
    /// The newest started phase.
    pub phase: i64,
    /// Why, for people.
    pub reason: Option<&'a str>,
    /// When.
    pub at: UnixMillis,
}

/// One device of a campaign, as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignDevice {
    /// The device.
    pub device: DeviceId,
    /// Its phase (0-based).
    pub phase: i64,
    /// Its stage (`pending`, `notified`, …).
    pub stage: String,
    /// Notices sent so far.
    pub attempts: i64,
    /// When it may next be notified.
    pub next_attempt_at: Option<UnixMillis>,
    /// When its stage last changed.
    pub updated_at: UnixMillis,
    /// The last failure or deferral reason.
    pub reason: Option<String>,
}

/// A device's new standing, and what caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignDeviceChange {
    /// The campaign.
    pub campaign: String,
    /// The device's row as it is now.
    pub device: CampaignDevice,
    /// What the device reported, when a report caused the change (`rolled-back`).
    pub reported: Option<String>,
}

/// One entry of a device's history in a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignHistoryEntry {
    /// When.
    pub at: UnixMillis,
    /// The stage it moved to.
    pub stage: String,
    /// What the device reported, if a report caused it.
    pub reported: Option<String>,
    /// The attempt.
    pub attempt: i64,
    /// Why (failures, deferrals, timeouts).
    pub reason: Option<String>,
}

/// A group's maintenance window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindowRecord {
    /// Tenant.
    pub tenant: TenantId,
    /// The group.
    pub group: String,
    /// The window (`MaintenanceWindow` as JSON).
    pub window: serde_json::Value,
    /// When it was set.
    pub updated_at: UnixMillis,
    /// Who set it.
    pub updated_by: String,
}

/// A device that cannot be patched, and what stands in for the patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpatchableDevice {
    /// Tenant.
    pub tenant: TenantId,
    /// The device.
    pub device: DeviceId,
    /// Why (`end-of-support`, `no-update-path`, …).
    pub reason: String,
    /// The compensating control (`quarantine`, `partial-deactivation`, `none`).
    pub control: String,
    /// For people.
    pub note: Option<String>,
    /// When it was marked.
    pub marked_at: UnixMillis,
    /// By whom.
    pub marked_by: String,
}

/// Storage for campaigns.
#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Creates a campaign with all its devices, audited, in one transaction; returns the
    /// number it was given (`campaign.number` is ignored).
    async fn campaign_create(
        &self,
        campaign: &CampaignRecord,
        devices: &[CampaignDevice],
        audit: AuditRecord,
    ) -> StoreResult<i64>;

    /// Changes a campaign's state, phase and reason, audited (operators' decisions and the
    /// engine's alike).
    async fn campaign_set_state(
        &self,
        tenant: &TenantId,
        id: &str,
        change: &CampaignStateChange<'_>,
        audit: AuditRecord,
    ) -> StoreResult<()>;

    /// One campaign.
    async fn campaign_get(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<CampaignRecord>>;

    /// Campaigns, newest first.
    async fn campaigns_list(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<CampaignRecord>>;

    /// Campaigns in any of `states`.
    async fn campaigns_in_states(
        &self,
        tenant: &TenantId,
        states: &[&str],
    ) -> StoreResult<Vec<CampaignRecord>>;

    /// Every device of a campaign.
    async fn campaign_devices(
        &self,
        tenant: &TenantId,
        campaign: &str,
    ) -> StoreResult<Vec<CampaignDevice>>;

    /// A page of a campaign's devices (by id), optionally only those at `stage`.
    async fn campaign_devices_page(
        &self,
        tenant: &TenantId,
        campaign: &str,
        stage: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<CampaignDevice>>;

    /// Records devices' changes and appends each to their history, in one transaction. Not
    /// audited: they are what devices did (and the clock), far too many for the chain; the
    /// campaign's own decisions are.
    async fn campaign_devices_record(
        &self,
        tenant: &TenantId,
        changes: &[CampaignDeviceChange],
    ) -> StoreResult<()>;

    /// A device's history in a campaign, oldest first.
    async fn campaign_device_history(
        &self,
        tenant: &TenantId,
        campaign: &str,
        device: &DeviceId,
    ) -> StoreResult<Vec<CampaignHistoryEntry>>;

    /// Sets a group's maintenance window, audited.
    async fn maintenance_window_put(
        &self,
        window: &MaintenanceWindowRecord,
        audit: AuditRecord,
    ) -> StoreResult<()>;

    /// Removes a group's maintenance window, audited; whether there was one.
    async fn maintenance_window_delete(
        &self,
        tenant: &TenantId,
        group: &str,
        audit: AuditRecord,
    ) -> StoreResult<bool>;

    /// Every maintenance window.
    async fn maintenance_windows(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<MaintenanceWindowRecord>>;

    /// Sets `device`'s hawkBit target token (its SHA-256), replacing any earlier one, audited.
    async fn ddi_token_set(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        token_sha256: &str,
        at: UnixMillis,
        by: &str,
        audit: AuditRecord,
    ) -> StoreResult<()>;

    /// The device a hawkBit target token (by its SHA-256) belongs to.
    async fn ddi_token_device(
        &self,
        tenant: &TenantId,
        token_sha256: &str,
    ) -> StoreResult<Option<DeviceId>>;

    /// Removes `device`'s target token, audited; whether it had one.
    async fn ddi_token_delete(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        audit: AuditRecord,
    ) -> StoreResult<bool>;

    /// Marks a device unpatchable (or changes its entry), audited.
    async fn unpatchable_put(
        &self,
        entry: &UnpatchableDevice,
        audit: AuditRecord,
    ) -> StoreResult<()>;

    /// Removes a device's unpatchable mark, audited; whether it had one.
    async fn unpatchable_delete(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        audit: AuditRecord,
    ) -> StoreResult<bool>;

    /// Every unpatchable device, by id.
    async fn unpatchable_list(&self, tenant: &TenantId) -> StoreResult<Vec<UnpatchableDevice>>;
}
