//! `update` and `update/status`: how the server offers a device a signed release and how the
//! device reports its progress.
//!
//! The notice carries the signed manifest itself (base64 of the COSE_Sign1), so the device
//! verifies the release against the trust root it pinned before it downloads anything; the
//! download addresses are only hints, since every artifact is checked against the manifest's
//! digest and size. `attempt` correlates a report with the notice it answers, so a late report
//! from an earlier attempt cannot move a retried device backwards.

use serde::{Deserialize, Serialize};

use crate::{
    ReportError,
    report::{Check, Validate},
};

/// What the device is asked to do with a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateAction {
    /// Download, verify, install and reboot as soon as it can.
    Forced,
    /// Install, but the device (or its user) may defer; it reports `deferred` and is asked again
    /// later.
    Soft,
    /// Download and verify only; installation is a later campaign's job.
    DownloadOnly,
    /// Stop working on this campaign's release (the campaign was cancelled or aborted).
    Cancel,
}

impl UpdateAction {
    /// The wire name (`download-only`).
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateAction::Forced => "forced",
            UpdateAction::Soft => "soft",
            UpdateAction::DownloadOnly => "download-only",
            UpdateAction::Cancel => "cancel",
        }
    }
}

/// Where one of the manifest's artifacts can be fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactLink {
    /// The artifact's name in the manifest.
    pub name: String,
    /// Its SHA-256 (lowercase hex), as the manifest states.
    pub sha256: String,
    /// Its size in bytes, as the manifest states.
    pub size: u64,
    /// HTTPS address; the server authenticates the device by its certificate.
    pub url: String,
}

/// `garrison/v1/d/<id>/update`: a release offered to the device (or withdrawn).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateNotice {
    /// Always [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    pub schema: u32,
    /// The campaign; echoed in every status report.
    pub campaign: String,
    /// Which attempt this is (1 for the first); echoed in every status report.
    pub attempt: u32,
    /// What to do.
    pub action: UpdateAction,
    /// The signed manifest (COSE_Sign1), base64; absent when cancelling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Where to fetch the artifacts; empty when cancelling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactLink>,
}

/// A stage of an update on the device, as the device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateState {
    /// Fetching the artifacts.
    Downloading,
    /// Every artifact is on the device.
    Downloaded,
    /// Manifest and artifacts verified (signature, digest, size, model, sequence).
    Verified,
    /// The installer is running.
    Installing,
    /// The installer finished.
    Installed,
    /// The device restarted into the new software.
    Rebooted,
    /// The new software runs and passed its health check.
    Succeeded,
    /// The attempt failed; `reason` says why.
    Failed,
    /// The new software failed its health check and the previous one was restored.
    RolledBack,
    /// The device (or its user) put a soft update off.
    Deferred,
    /// The device stopped working on it, as asked by a `cancel` notice.
    Cancelled,
}

impl UpdateState {
    /// The wire name (`rolled-back`).
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Downloading => "downloading",
            UpdateState::Downloaded => "downloaded",
            UpdateState::Verified => "verified",
            UpdateState::Installing => "installing",
            UpdateState::Installed => "installed",
            UpdateState::Rebooted => "rebooted",
            UpdateState::Succeeded => "succeeded",
            UpdateState::Failed => "failed",
            UpdateState::RolledBack => "rolled-back",
            UpdateState::Deferred => "deferred",
            UpdateState::Cancelled => "cancelled",
        }
    }
}

/// `garrison/v1/d/<id>/update/status`: progress of an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// Always [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    pub schema: u32,
    /// The device id; must equal the publishing device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The campaign of the notice this answers.
    pub campaign: String,
    /// The notice's attempt (absent: the current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The stage reached.
    pub state: UpdateState,
    /// Why, for `failed`, `rolled-back` and `deferred`; for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Validate for UpdateStatus {
    fn schema(&self) -> u32 {
        self.schema
    }

    fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }

    fn validate(&self, check: &mut Check<'_>) -> Result<(), ReportError> {
        check.text("campaign", &self.campaign)?;
        if self.campaign.is_empty() {
            return Err(Check::fail("campaign", "is empty"));
        }
        check.opt_text("reason", self.reason.as_deref())
    }
}
