//! What the hawkBit DDI protocol edge asks of the campaigns. A DDI client polls instead of
//! holding an MQTT session: its polls make it reachable for notices, and what the engine
//! decided for it (a deployment to fetch, an action to cancel) is answered on its next poll.
//! Its feedback is applied as `update/status` reports are. A campaign's number is the action
//! id DDI clients see.

use garrison_contract::{SCHEMA_VERSION, UpdateState, UpdateStatus};
use garrison_core::{DeviceId, now_ms};
use garrison_inventory::UpdateReport;
use garrison_store::updates::Release;
use garrison_update::campaign::Action;

use crate::{CampaignError, CampaignService};

/// What a polling client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdiPoll {
    /// Nothing to do.
    Idle,
    /// Fetch and install the deployment of this action.
    Deployment(i64),
    /// Stop working on this action.
    Cancel(i64),
}

/// A deployment as a DDI client sees it.
#[derive(Debug, Clone)]
pub struct DdiDeployment {
    /// The action id (the campaign's number).
    pub action: i64,
    /// Forced, soft or download-only.
    pub kind: Action,
    /// The release.
    pub release: Release,
}

impl CampaignService {
    /// Records a poll by `device` and says what it should do.
    pub async fn ddi_poll(&self, device: &DeviceId) -> DdiPoll {
        let mut engine = self.inner.engine.lock().await;
        engine.polled.insert(device.clone(), now_ms());
        if let Some(&action) = engine.cancels.get(device) {
            return DdiPoll::Cancel(action);
        }
        engine
            .live
            .values()
            .find(|l| l.devices.get(device).is_some_and(|p| p.stage.in_flight()))
            .map_or(DdiPoll::Idle, |l| DdiPoll::Deployment(l.record.number))
    }

    /// The deployment of `action` for `device`, while the device is working on it.
    pub async fn ddi_deployment(&self, device: &DeviceId, action: i64) -> Option<DdiDeployment> {
        let engine = self.inner.engine.lock().await;
        engine
            .live
            .values()
            .find(|l| l.record.number == action && l.serves(device))
            .map(|l| DdiDeployment {
                action,
                kind: l.spec.action,
                release: l.release.clone(),
            })
    }

    /// Applies a DDI client's feedback on `action` as an `update/status` report.
    pub async fn ddi_feedback(
        &self,
        device: &DeviceId,
        action: i64,
        state: UpdateState,
        reason: Option<String>,
    ) -> Result<(), CampaignError> {
        let campaign = {
            let engine = self.inner.engine.lock().await;
            engine
                .live
                .values()
                .find(|l| l.record.number == action && l.devices.contains_key(device))
                .map(|l| l.record.id.clone())
        };
        let Some(campaign) = campaign else {
            return Err(CampaignError::NotFound(format!(
                "action {action} for device {device}"
            )));
        };
        self.handle_reports(vec![UpdateReport {
            device: device.clone(),
            received_at: now_ms(),
            status: UpdateStatus {
                schema: SCHEMA_VERSION,
                device_id: None,
                campaign,
                attempt: None,
                state,
                reason,
            },
        }])
        .await;
        Ok(())
    }

    /// Whether `device` has sent its attributes (`configData`) since the server started.
    pub async fn ddi_config_received(&self, device: &DeviceId) -> bool {
        self.inner.engine.lock().await.configured.contains(device)
    }

    /// `device` sent its attributes.
    pub async fn ddi_config_stored(&self, device: &DeviceId) {
        self.inner
            .engine
            .lock()
            .await
            .configured
            .insert(device.clone());
    }

    /// How often DDI clients are told to poll.
    pub fn ddi_poll_interval(&self) -> std::time::Duration {
        self.inner.settings.ddi_poll
    }

    /// The client confirmed it stopped working on `action`.
    pub async fn ddi_cancelled(&self, device: &DeviceId, action: i64) {
        let mut engine = self.inner.engine.lock().await;
        if engine.cancels.get(device) == Some(&action) {
            engine.cancels.remove(device);
        }
    }
}
