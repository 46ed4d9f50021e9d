//! One running campaign in memory: its rules, state and every device's progress. Methods
//! propose changes without applying them; the service stores a change and only then commits
//! it here, so memory never runs ahead of the store.

use std::collections::BTreeMap;

use garrison_contract::UpdateStatus;
use garrison_core::DeviceId;
use garrison_store::{
    campaigns::{CampaignDevice, CampaignDeviceChange, CampaignRecord},
    updates::Release,
};
use garrison_update::campaign::{
    self, Applied, CampaignSpec, CampaignState, PhaseTally, Progress, Stage, TokenBucket,
};

/// A device's proposed new progress, and the report that caused it.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) device: DeviceId,
    pub(crate) progress: Progress,
    pub(crate) reported: Option<&'static str>,
}

impl Change {
    /// `device`, at `p`, cancelled for `reason`.
    pub(crate) fn cancelled(device: &DeviceId, p: &Progress, now: i64, reason: &str) -> Change {
        Change {
            device: device.clone(),
            progress: Progress {
                stage: Stage::Cancelled,
                next_attempt_at: None,
                updated_at: now,
                reason: Some(reason.to_owned()),
                ..p.clone()
            },
            reported: None,
        }
    }

    pub(crate) fn stored(&self, campaign: &str) -> CampaignDeviceChange {
        CampaignDeviceChange {
            campaign: campaign.to_owned(),
            device: to_row(&self.device, &self.progress),
            reported: self.reported.map(str::to_owned),
        }
    }
}

pub(crate) fn to_row(device: &DeviceId, p: &Progress) -> CampaignDevice {
    CampaignDevice {
        device: device.clone(),
        phase: i64::from(p.phase),
        stage: p.stage.as_str().to_owned(),
        attempts: i64::from(p.attempts),
        next_attempt_at: p.next_attempt_at,
        updated_at: p.updated_at,
        reason: p.reason.clone(),
    }
}

/// Reads a stored device row back; `None` if the row is not one Garrison wrote.
pub(crate) fn from_row(row: &CampaignDevice) -> Option<Progress> {
    Some(Progress {
        phase: u32::try_from(row.phase).ok()?,
        stage: Stage::parse(&row.stage)?,
        attempts: u32::try_from(row.attempts).ok()?,
        next_attempt_at: row.next_attempt_at,
        updated_at: row.updated_at,
        reason: row.reason.clone(),
    })
}

/// A campaign that is running or waiting for approval.
pub(crate) struct Live {
    pub(crate) record: CampaignRecord,
    pub(crate) spec: CampaignSpec,
    pub(crate) state: CampaignState,
    pub(crate) phase: u32,
    pub(crate) release: Release,
    pub(crate) devices: BTreeMap<DeviceId, Progress>,
    pub(crate) bucket: Option<TokenBucket>,
}

impl Live {
    pub(crate) fn id(&self) -> &str {
        &self.record.id
    }

    /// Counts per phase.
    pub(crate) fn tallies(&self) -> Vec<PhaseTally> {
        tally(&self.spec, self.devices.values())
    }

    /// In-flight devices silent past the timeout.
    pub(crate) fn expired(&self, now: i64) -> Vec<Change> {
        self.devices
            .iter()
            .filter_map(|(device, p)| {
                campaign::expire(p, &self.spec, now).map(|progress| Change {
                    device: device.clone(),
                    progress,
                    reported: None,
                })
            })
            .collect()
    }

    /// Devices to notify now: due, in a started phase, admitted by `admit` (connected and in
    /// their maintenance window), within the rate limit.
    pub(crate) fn due_notices(
        &mut self,
        now: i64,
        mut admit: impl FnMut(&DeviceId) -> bool,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        for (device, p) in &self.devices {
            if p.phase > self.phase || !p.due(now) || !admit(device) {
                continue;
            }
            if let Some(bucket) = &mut self.bucket
                && !bucket.take(now)
            {
                break;
            }
            out.push(Change {
                device: device.clone(),
                progress: campaign::notified(p, now),
                reported: None,
            });
        }
        out
    }

    /// What a device's report changes from `current`, or why it changes nothing.
    pub(crate) fn report(
        &self,
        device: &DeviceId,
        current: &Progress,
        status: &UpdateStatus,
        now: i64,
    ) -> Result<Change, &'static str> {
        match campaign::apply_report(
            current,
            &self.spec,
            status.state,
            status.attempt,
            status.reason.as_deref(),
            now,
        ) {
            Applied::Moved(progress) => Ok(Change {
                device: device.clone(),
                progress,
                reported: Some(status.state.as_str()),
            }),
            Applied::Stale(why) => Err(why),
        }
    }

    /// Every unfinished device, cancelled (the campaign stops). Also returns which of them
    /// were working on a notice, so they can be told to stop.
    pub(crate) fn close(&self, now: i64, reason: &str) -> (Vec<Change>, Vec<DeviceId>) {
        let mut changes = Vec::new();
        let mut in_flight = Vec::new();
        for (device, p) in &self.devices {
            if p.stage.is_final() {
                continue;
            }
            if p.stage.in_flight() {
                in_flight.push(device.clone());
            }
            changes.push(Change::cancelled(device, p, now, reason));
        }
        (changes, in_flight)
    }

    /// Applies stored changes.
    pub(crate) fn commit(&mut self, changes: Vec<Change>) {
        for change in changes {
            self.devices.insert(change.device, change.progress);
        }
    }

    /// Whether the device is working on this campaign (so it may fetch the release).
    pub(crate) fn serves(&self, device: &DeviceId) -> bool {
        self.devices
            .get(device)
            .is_some_and(|p| !p.stage.is_final() && p.attempts > 0)
    }
}

/// Counts per phase of `devices`.
pub(crate) fn tally<'a>(
    spec: &CampaignSpec,
    devices: impl Iterator<Item = &'a Progress>,
) -> Vec<PhaseTally> {
    let mut tallies = vec![PhaseTally::default(); spec.phases.len()];
    for p in devices {
        if let Some(t) = usize::try_from(p.phase)
            .ok()
            .and_then(|i| tallies.get_mut(i))
        {
            t.add(p.stage);
        }
    }
    tallies
}
