//! The campaign service: creation, operators' decisions, the clock, device reports, and what
//! devices may download. One lock serialises every change to the running campaigns; each
//! change is stored before it is applied in memory or announced to a device.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, OnceLock},
    time::Duration,
};

use base64::Engine as _;
use garrison_broker::DeviceBroker;
use garrison_contract::{ArtifactLink, SCHEMA_VERSION, UpdateAction, UpdateNotice};
use garrison_core::{DeviceId, TenantId, UnixMillis, audit::Actor as AuditActor, now_ms};
use garrison_inventory::{FleetIndex, UpdateReport, device_schema};
use garrison_releases::Actor;
use garrison_store::{
    Page, PageRequest, Store, StoreError,
    campaigns::{CampaignDevice, CampaignHistoryEntry, CampaignRecord, MaintenanceWindowRecord},
};
use garrison_update::campaign::{
    self, CampaignSpec, CampaignState, Decision, MaintenanceWindow, PhaseTally, Progress,
    SpecError, Stage, TokenBucket,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};

use crate::engine::{Change, Live, from_row, tally, to_row};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct CampaignSettings {
    /// The tenant.
    pub tenant: TenantId,
    /// Base of the HTTPS address devices download from (`https://garrison.example:8443`).
    pub download_base: String,
    /// How often timeouts, retries, phases and notices are looked at.
    pub tick: Duration,
    /// Notices sent per campaign per tick at most (the rest follow on the next tick).
    pub notices_per_tick: usize,
    /// How often hawkBit (DDI) clients are told to poll; a device that polled within three of
    /// these counts as reachable.
    pub ddi_poll: Duration,
}

/// What a campaign rolls out to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A group's members (static or dynamic) when the campaign starts.
    Group(String),
    /// The devices a query matches when the campaign starts.
    Query(String),
}

/// A campaign to create.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    /// For people.
    pub name: String,
    /// The release.
    pub release: String,
    /// The devices.
    pub target: Target,
    /// The rules.
    pub spec: CampaignSpec,
}

/// A campaign with its counts.
#[derive(Debug, Clone)]
pub struct CampaignSummary {
    /// As stored.
    pub record: CampaignRecord,
    /// Its rules.
    pub spec: CampaignSpec,
    /// Its state.
    pub state: CampaignState,
    /// Counts per phase.
    pub phases: Vec<PhaseTally>,
    /// Devices per stage.
    pub stages: BTreeMap<&'static str, u64>,
    /// Devices of the target left out at creation, with why (only when just created).
    pub excluded: BTreeMap<&'static str, u64>,
}

/// Why a campaign request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CampaignError {
    /// The rules are invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A field of the request is invalid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Something named does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The campaign is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The campaign service. Cheap to clone.
#[derive(Clone)]
pub struct CampaignService {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    index: Arc<FleetIndex>,
    broker: Arc<OnceLock<Arc<dyn DeviceBroker>>>,
    pub(crate) settings: CampaignSettings,
    pub(crate) engine: Mutex<Engine>,
    gate: OnceLock<(Arc<dyn crate::ReleaseGate>, garrison_releases::Releases)>,
}

#[derive(Default)]
pub(crate) struct Engine {
    pub(crate) live: BTreeMap<String, Live>,
    windows: BTreeMap<String, MaintenanceWindow>,
    /// When each hawkBit (DDI) client last polled: such a device is reachable without an
    /// MQTT session.
    pub(crate) polled: HashMap<DeviceId, UnixMillis>,
    /// Devices told to stop that have not confirmed it over DDI yet, with the action.
    pub(crate) cancels: HashMap<DeviceId, i64>,
    /// DDI clients that sent their attributes since the server started.
    pub(crate) configured: HashSet<DeviceId>,
    /// Reports whose changes could not be stored, tried again on the next tick.
    retry: Vec<UpdateReport>,
}

/// A notice to send once the change behind it is stored.
struct Outgoing {
    device: DeviceId,
    payload: Vec<u8>,
}

const ACTIVE: [&str; 2] = ["running", "waiting-approval"];

/// Device reports held for another try while the store refuses writes.
const MAX_RETRIED_REPORTS: usize = 100_000;

fn system() -> AuditActor {
    AuditActor::system("campaigns")
}

impl CampaignService {
    /// A service over `store` and the fleet `index`; notices go through the broker once one is
    /// set in `broker`.
    pub fn new(
        store: Arc<dyn Store>,
        index: Arc<FleetIndex>,
        broker: Arc<OnceLock<Arc<dyn DeviceBroker>>>,
        settings: CampaignSettings,
    ) -> CampaignService {
        CampaignService {
            inner: Arc::new(Inner {
                store,
                index,
                broker,
                settings,
                engine: Mutex::new(Engine::default()),
                gate: OnceLock::new(),
            }),
        }
    }

    /// Sets the gate campaigns with `sbom_gate` must pass, reading SBOMs from `releases`.
    pub fn attach_gate(
        &self,
        gate: Arc<dyn crate::ReleaseGate>,
        releases: garrison_releases::Releases,
    ) {
        let _ = self.inner.gate.set((gate, releases));
    }

    /// Checks the release's SBOM (its `*.cdx.json` artifact) against the gate.
    async fn check_gate(
        &self,
        release: &garrison_store::updates::Release,
    ) -> Result<(), CampaignError> {
        let Some((gate, releases)) = self.inner.gate.get() else {
            return Err(CampaignError::Conflict(
                "this server has no release gate; start the campaign without sbom_gate".into(),
            ));
        };
        let Some((name, sha256, size)) =
            artifacts(release).find(|(name, _, _)| name.ends_with(".cdx.json"))
        else {
            return Err(CampaignError::Conflict(format!(
                "release {} has no SBOM (a CycloneDX artifact named *.cdx.json in its manifest), which the SBOM gate needs",
                release.id
            )));
        };
        const MAX_SBOM: u64 = 32 * 1024 * 1024;
        if size > MAX_SBOM {
            return Err(CampaignError::Conflict(format!(
                "the SBOM {name} is {size} bytes; the gate reads at most {MAX_SBOM}"
            )));
        }
        let path = releases.artifact_path(sha256).ok_or_else(|| {
            CampaignError::Conflict(format!("{sha256} is not an artifact digest"))
        })?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| CampaignError::Conflict(format!("cannot read the SBOM {name}: {e}")))?;
        let sbom: garrison_contract::Sbom = serde_json::from_slice(&bytes).map_err(|e| {
            CampaignError::Conflict(format!("the SBOM {name} is not CycloneDX JSON: {e}"))
        })?;
        let violations = gate.violations(&sbom);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(CampaignError::Conflict(format!(
                "release {} fails the SBOM gate: {}",
                release.id,
                violations.join("; ")
            )))
        }
    }

    fn tenant(&self) -> &TenantId {
        &self.inner.settings.tenant
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// Loads the unfinished campaigns and the maintenance windows from the store, and sends
    /// the notice again to devices left at `notified`. Returns how many campaigns resumed.
    pub async fn resume(&self) -> Result<usize, CampaignError> {
        let mut outgoing = Vec::new();
        let resumed = {
            let mut engine = self.inner.engine.lock().await;
            engine.windows = self.load_windows().await?;
            engine.live.clear();
            for record in self
                .store()
                .campaigns_in_states(self.tenant(), &ACTIVE)
                .await?
            {
                let live = self.load(record).await?;
                for (device, p) in &live.devices {
                    if p.stage == Stage::Notified {
                        outgoing.push(Outgoing {
                            device: device.clone(),
                            payload: self.notice(&live, p.attempts, live.spec.action.notice()),
                        });
                    }
                }
                tracing::info!(
                    campaign = %live.id(),
                    state = %live.state,
                    phase = live.phase + 1,
                    devices = live.devices.len(),
                    "Campaign resumed"
                );
                engine.live.insert(live.id().to_owned(), live);
            }
            engine.live.len()
        };
        self.send(outgoing).await;
        Ok(resumed)
    }

    async fn load_windows(&self) -> Result<BTreeMap<String, MaintenanceWindow>, CampaignError> {
        let mut windows = BTreeMap::new();
        for record in self.store().maintenance_windows(self.tenant()).await? {
            match serde_json::from_value::<MaintenanceWindow>(record.window) {
                Ok(w) => {
                    windows.insert(record.group, w);
                }
                Err(e) => tracing::error!(group = %record.group, error = %e,
                    "A stored maintenance window is unreadable; the group is treated as having none"),
            }
        }
        Ok(windows)
    }

    async fn load(&self, record: CampaignRecord) -> Result<Live, CampaignError> {
        let (spec, state) = rules_of(&record)?;
        let corrupt = |detail: String| corrupt(&record, detail);
        let release = self
            .store()
            .release_get(self.tenant(), &record.release_id)
            .await?
            .ok_or_else(|| corrupt(format!("release {} is gone", record.release_id)))?;
        let mut devices = BTreeMap::new();
        for row in self
            .store()
            .campaign_devices(self.tenant(), &record.id)
            .await?
        {
            let p = from_row(&row)
                .ok_or_else(|| corrupt(format!("device {} has an unknown stage", row.device)))?;
            devices.insert(row.device, p);
        }
        let now = now_ms();
        Ok(Live {
            bucket: spec.rate_per_minute.map(|r| TokenBucket::new(r, now)),
            phase: u32::try_from(record.phase).unwrap_or(0),
            record,
            spec,
            state,
            release,
            devices,
        })
    }

    /// Runs the clock and consumes device reports until `reports` closes.
    pub async fn run(self, mut reports: mpsc::Receiver<Vec<UpdateReport>>) {
        let mut tick = tokio::time::interval(self.inner.settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batches = Vec::with_capacity(64);
        loop {
            tokio::select! {
                // Whatever has queued up is applied together: one transaction for all of it.
                n = reports.recv_many(&mut batches, 64) => {
                    if n == 0 {
                        break;
                    }
                    let all: Vec<UpdateReport> = batches.drain(..).flatten().collect();
                    self.handle_reports(all).await;
                }
                _ = tick.tick() => self.tick(now_ms()).await,
            }
        }
    }

    /// Creates and starts a campaign.
    pub async fn create(
        &self,
        new: NewCampaign,
        by: &Actor,
    ) -> Result<CampaignSummary, CampaignError> {
        new.spec.validate()?;
        let name = new.name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(CampaignError::Invalid {
                field: "name",
                reason: "must be 1–200 printable characters".into(),
            });
        }
        let release = self
            .store()
            .release_get(self.tenant(), &new.release)
            .await?
            .ok_or_else(|| CampaignError::NotFound(format!("release {}", new.release)))?;
        let now = now_ms();
        if release.expires_at.is_some_and(|at| at <= now) {
            return Err(CampaignError::Conflict(format!(
                "release {} has expired: devices would refuse it; sign and publish a new one",
                release.id
            )));
        }
        if new.spec.sbom_gate {
            self.check_gate(&release).await?;
        }
        let targeted = self.resolve(&new.target)?;
        let mut engine = self.inner.engine.lock().await;
        let busy: HashSet<&DeviceId> = engine
            .live
            .values()
            .flat_map(|l| l.devices.iter().filter(|(_, p)| !p.stage.is_final()))
            .map(|(d, _)| d)
            .collect();
        let unpatchable: HashSet<DeviceId> = self
            .store()
            .unpatchable_list(self.tenant())
            .await?
            .into_iter()
            .map(|u| u.device)
            .collect();
        let mut excluded: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut devices = Vec::new();
        for device in targeted {
            if unpatchable.contains(&device) {
                *excluded.entry("unpatchable").or_default() += 1;
                continue;
            }
            let model = self
                .inner
                .index
                .get(&device)
                .and_then(|r| r.summary.and_then(|s| s.model));
            if model.as_deref() != Some(release.model.as_str()) {
                *excluded.entry("other-model").or_default() += 1;
            } else if busy.contains(&device) {
                *excluded.entry("in-another-campaign").or_default() += 1;
            } else {
                devices.push(device);
            }
        }
        if devices.is_empty() {
            return Err(CampaignError::Conflict(format!(
                "the target holds no device of model {:?} free for a campaign ({})",
                release.model,
                describe(&excluded)
            )));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let names: Vec<&str> = devices.iter().map(DeviceId::as_str).collect();
        let phases = campaign::assign_phases(&id, &names, &new.spec.phases);
        let progress: BTreeMap<DeviceId, Progress> = devices
            .into_iter()
            .zip(phases)
            .map(|(d, phase)| (d, Progress::new(phase, now)))
            .collect();
        let rows: Vec<CampaignDevice> = progress.iter().map(|(d, p)| to_row(d, p)).collect();
        let mut record = CampaignRecord {
            id: id.clone(),
            tenant: self.tenant().clone(),
            number: 0,
            name: name.to_owned(),
            release_id: release.id.clone(),
            target: serde_json::to_value(&new.target).unwrap_or_default(),
            spec: serde_json::to_value(&new.spec).unwrap_or_default(),
            state: CampaignState::Running.as_str().to_owned(),
            phase: 0,
            reason: None,
            devices: i64::try_from(rows.len()).unwrap_or(i64::MAX),
            created_at: now,
            created_by: by.username.clone(),
            updated_at: now,
        };
        record.number = self
            .store()
            .campaign_create(
                &record,
                &rows,
                by.audit(
                    self.tenant(),
                    "update.campaign.create",
                    format!("campaign:{id}"),
                ),
            )
            .await?;
        tracing::info!(campaign = %id, release = %release.id, devices = rows.len(), "Campaign started");
        let live = Live {
            bucket: new.spec.rate_per_minute.map(|r| TokenBucket::new(r, now)),
            record,
            spec: new.spec,
            state: CampaignState::Running,
            phase: 0,
            release,
            devices: progress,
        };
        let mut summary = summarise(&live);
        summary.excluded = excluded;
        engine.live.insert(id, live);
        Ok(summary)
    }

    fn resolve(&self, target: &Target) -> Result<Vec<DeviceId>, CampaignError> {
        let index = &self.inner.index;
        match target {
            Target::Group(name) => {
                if !index.group_sizes().contains_key(name) {
                    return Err(CampaignError::NotFound(format!("group {name}")));
                }
                Ok(index.members(name))
            }
            Target::Query(text) => {
                let query = garrison_query::Query::parse(text, device_schema()).map_err(|e| {
                    CampaignError::Invalid {
                        field: "target.query",
                        reason: e.to_string(),
                    }
                })?;
                let mut out = Vec::new();
                index.for_each(|r| {
                    if query.matches(r) {
                        out.push(r.id.clone());
                    }
                });
                Ok(out)
            }
        }
    }

    /// Lets a campaign waiting for approval start its next phase.
    pub async fn approve(&self, id: &str, by: &Actor) -> Result<CampaignSummary, CampaignError> {
        let mut engine = self.inner.engine.lock().await;
        let live = self.live_mut(&mut engine, id).await?;
        if live.state != CampaignState::WaitingApproval {
            return Err(CampaignError::Conflict(format!(
                "campaign {id} is {}, not waiting for approval",
                live.state
            )));
        }
        let next = live.phase + 1;
        self.store()
            .campaign_set_state(
                self.tenant(),
                id,
                &garrison_store::campaigns::CampaignStateChange {
                    state: CampaignState::Running.as_str(),
                    phase: i64::from(next),
                    reason: None,
                    at: now_ms(),
                },
                by.audit(
                    self.tenant(),
                    "update.campaign.approve",
                    format!("campaign:{id}"),
                ),
            )
            .await?;
        live.state = CampaignState::Running;
        live.phase = next;
        live.record.reason = None;
        Ok(summarise(live))
    }

    /// Stops a campaign: devices not finished are cancelled, and those working on it are told
    /// to stop.
    pub async fn cancel(&self, id: &str, by: &Actor) -> Result<CampaignSummary, CampaignError> {
        let outgoing;
        let summary;
        {
            let mut engine = self.inner.engine.lock().await;
            let live = self.live_mut(&mut engine, id).await?;
            let audit = by.audit(
                self.tenant(),
                "update.campaign.cancel",
                format!("campaign:{id}"),
            );
            outgoing = self
                .finish(
                    live,
                    CampaignState::Cancelled,
                    format!("cancelled by {}", by.username),
                    audit,
                )
                .await?;
            summary = summarise(live);
            let number = live.record.number;
            engine.live.remove(id);
            for o in &outgoing {
                engine.cancels.insert(o.device.clone(), number);
            }
        }
        self.send(outgoing).await;
        Ok(summary)
    }

    async fn live_mut<'e>(
        &self,
        engine: &'e mut Engine,
        id: &str,
    ) -> Result<&'e mut Live, CampaignError> {
        if let Some(live) = engine.live.get_mut(id) {
            return Ok(live);
        }
        match self.store().campaign_get(self.tenant(), id).await? {
            Some(c) => Err(CampaignError::Conflict(format!(
                "campaign {id} is {}; nothing more can change it",
                c.state
            ))),
            None => Err(CampaignError::NotFound(format!("campaign {id}"))),
        }
    }

    /// Stores a final state, cancels what is open and returns the cancel notices to send.
    async fn finish(
        &self,
        live: &mut Live,
        state: CampaignState,
        reason: String,
        audit: garrison_core::audit::AuditRecord,
    ) -> Result<Vec<Outgoing>, CampaignError> {
        let now = now_ms();
        let (changes, in_flight) = live.close(now, &reason);
        // The campaign's state first: should the devices' rows fail to follow, a restart finds
        // a finished campaign (not resumed), never a running one with cancelled devices.
        self.store()
            .campaign_set_state(
                self.tenant(),
                live.id(),
                &garrison_store::campaigns::CampaignStateChange {
                    state: state.as_str(),
                    phase: i64::from(live.phase),
                    reason: Some(&reason),
                    at: now,
                },
                audit,
            )
            .await?;
        if let Err(e) = self.record(live.id(), &changes).await {
            tracing::error!(campaign = %live.id(), error = %e,
                "The campaign stopped, but its unfinished devices could not be marked cancelled");
        }
        live.commit(changes);
        live.state = state;
        live.record.state = state.as_str().to_owned();
        live.record.reason = Some(reason);
        Ok(in_flight
            .into_iter()
            .map(|device| Outgoing {
                payload: self.notice(live, 0, UpdateAction::Cancel),
                device,
            })
            .collect())
    }

    async fn record(&self, campaign: &str, changes: &[Change]) -> Result<(), CampaignError> {
        if changes.is_empty() {
            return Ok(());
        }
        let stored: Vec<_> = changes.iter().map(|c| c.stored(campaign)).collect();
        self.store()
            .campaign_devices_record(self.tenant(), &stored)
            .await?;
        Ok(())
    }

    /// One campaign with its counts.
    pub async fn get(&self, id: &str) -> Result<CampaignSummary, CampaignError> {
        if let Some(live) = self.inner.engine.lock().await.live.get(id) {
            return Ok(summarise(live));
        }
        let record = self
            .store()
            .campaign_get(self.tenant(), id)
            .await?
            .ok_or_else(|| CampaignError::NotFound(format!("campaign {id}")))?;
        let rows = self.store().campaign_devices(self.tenant(), id).await?;
        let progress: Vec<Progress> = rows.iter().filter_map(from_row).collect();
        summary_of(record, progress.iter())
    }

    /// Campaigns, newest first (counts only for those still running).
    pub async fn list(
        &self,
        page: &PageRequest,
    ) -> Result<Page<(CampaignRecord, Option<CampaignSummary>)>, CampaignError> {
        let records = self.store().campaigns_list(self.tenant(), page).await?;
        let engine = self.inner.engine.lock().await;
        Ok(Page {
            items: records
                .items
                .into_iter()
                .map(|r| {
                    let live = engine.live.get(&r.id).map(summarise);
                    (r, live)
                })
                .collect(),
            next: records.next,
        })
    }

    /// A page of a campaign's devices, optionally only those at `stage`.
    pub async fn devices(
        &self,
        id: &str,
        stage: Option<Stage>,
        page: &PageRequest,
    ) -> Result<Page<CampaignDevice>, CampaignError> {
        self.exists(id).await?;
        Ok(self
            .store()
            .campaign_devices_page(self.tenant(), id, stage.map(Stage::as_str), page)
            .await?)
    }

    /// A device's path through a campaign.
    pub async fn history(
        &self,
        id: &str,
        device: &DeviceId,
    ) -> Result<Vec<CampaignHistoryEntry>, CampaignError> {
        self.exists(id).await?;
        let history = self
            .store()
            .campaign_device_history(self.tenant(), id, device)
            .await?;
        if history.is_empty()
            && !self
                .store()
                .campaign_devices(self.tenant(), id)
                .await?
                .iter()
                .any(|d| &d.device == device)
        {
            return Err(CampaignError::NotFound(format!(
                "device {device} in campaign {id}"
            )));
        }
        Ok(history)
    }

    async fn exists(&self, id: &str) -> Result<(), CampaignError> {
        if self.inner.engine.lock().await.live.contains_key(id) {
            return Ok(());
        }
        self.store()
            .campaign_get(self.tenant(), id)
            .await?
            .map(|_| ())
            .ok_or_else(|| CampaignError::NotFound(format!("campaign {id}")))
    }

    /// Sets a group's maintenance window: its devices are notified only while it is open.
    pub async fn set_window(
        &self,
        group: &str,
        window: MaintenanceWindow,
        by: &Actor,
    ) -> Result<(), CampaignError> {
        window.validate()?;
        if !self.inner.index.group_sizes().contains_key(group) {
            return Err(CampaignError::NotFound(format!("group {group}")));
        }
        let record = MaintenanceWindowRecord {
            tenant: self.tenant().clone(),
            group: group.to_owned(),
            window: serde_json::to_value(&window).unwrap_or_default(),
            updated_at: now_ms(),
            updated_by: by.username.clone(),
        };
        let mut engine = self.inner.engine.lock().await;
        self.store()
            .maintenance_window_put(
                &record,
                by.audit(self.tenant(), "update.window.set", format!("group:{group}")),
            )
            .await?;
        engine.windows.insert(group.to_owned(), window);
        Ok(())
    }

    /// Removes a group's maintenance window.
    pub async fn delete_window(&self, group: &str, by: &Actor) -> Result<(), CampaignError> {
        let mut engine = self.inner.engine.lock().await;
        let deleted = self
            .store()
            .maintenance_window_delete(
                self.tenant(),
                group,
                by.audit(
                    self.tenant(),
                    "update.window.delete",
                    format!("group:{group}"),
                ),
            )
            .await?;
        if !deleted {
            return Err(CampaignError::NotFound(format!(
                "maintenance window of group {group}"
            )));
        }
        engine.windows.remove(group);
        Ok(())
    }

    /// Every group's maintenance window, with whether it is open now.
    pub async fn windows(&self) -> Vec<(String, MaintenanceWindow, bool)> {
        let now = now_ms();
        self.inner
            .engine
            .lock()
            .await
            .windows
            .iter()
            .map(|(g, w)| (g.clone(), w.clone(), w.is_open(now)))
            .collect()
    }

    /// Takes `device` out of every running campaign (it was marked unpatchable): unfinished,
    /// it is cancelled with `reason`, and told to stop if it is working on a notice.
    pub async fn withdraw(&self, device: &DeviceId, reason: &str) -> Result<(), CampaignError> {
        let now = now_ms();
        let mut outgoing = Vec::new();
        {
            let mut engine = self.inner.engine.lock().await;
            let ids: Vec<String> = engine.live.keys().cloned().collect();
            for id in ids {
                let Some(live) = engine.live.get_mut(&id) else {
                    continue;
                };
                let Some(p) = live.devices.get(device).filter(|p| !p.stage.is_final()) else {
                    continue;
                };
                let in_flight = p.stage.in_flight();
                let change = Change::cancelled(device, p, now, reason);
                self.record(&id, std::slice::from_ref(&change)).await?;
                live.commit(vec![change]);
                if in_flight {
                    outgoing.push(Outgoing {
                        device: device.clone(),
                        payload: self.notice(live, 0, UpdateAction::Cancel),
                    });
                    let number = live.record.number;
                    engine.cancels.insert(device.clone(), number);
                }
                outgoing.extend(self.judge(&mut engine, &id).await);
            }
        }
        self.send(outgoing).await;
        Ok(())
    }

    /// Whether `device` is working on a campaign whose release has the artifact `sha256`:
    /// the only artifacts a device may download.
    pub async fn may_fetch(&self, device: &DeviceId, sha256: &str) -> bool {
        self.inner.engine.lock().await.live.values().any(|live| {
            live.serves(device) && artifacts(&live.release).any(|(_, digest, _)| digest == sha256)
        })
    }

    /// Applies a batch of `update/status` reports.
    pub async fn handle_reports(&self, reports: Vec<UpdateReport>) {
        let mut engine = self.inner.engine.lock().await;
        // Per campaign, the reports are kept with their changes: should the store refuse
        // the changes, the same reports are tried again on the next tick.
        let mut by_campaign: HashMap<String, Vec<UpdateReport>> = HashMap::new();
        for report in reports {
            by_campaign
                .entry(report.status.campaign.clone())
                .or_default()
                .push(report);
        }
        let mut outgoing = Vec::new();
        for (campaign, reports) in by_campaign {
            let Some(live) = engine.live.get(&campaign) else {
                metrics::counter!("garrison_campaign_reports_total", "outcome" => "unknown_campaign")
                    .increment(reports.len() as u64);
                tracing::debug!(
                    campaign,
                    reports = reports.len(),
                    "Update status for a campaign that is not running"
                );
                continue;
            };
            let mut changes: Vec<Change> = Vec::new();
            for report in &reports {
                // Reports in one batch build on each other: the device's latest change counts.
                let current = changes
                    .iter()
                    .rev()
                    .find(|c| c.device == report.device)
                    .map(|c| &c.progress)
                    .or_else(|| live.devices.get(&report.device));
                let outcome = match current {
                    Some(current) => {
                        live.report(&report.device, current, &report.status, report.received_at)
                    }
                    None => Err("the device is not in this campaign"),
                };
                match outcome {
                    Ok(change) => {
                        metrics::counter!("garrison_campaign_reports_total", "outcome" => "applied")
                            .increment(1);
                        changes.push(change);
                    }
                    Err(why) => {
                        metrics::counter!("garrison_campaign_reports_total", "outcome" => "stale")
                            .increment(1);
                        tracing::debug!(device = %report.device, campaign, state = report.status.state.as_str(), why, "Update status changes nothing");
                    }
                }
            }
            if let Err(e) = self.record(&campaign, &changes).await {
                // Nothing was applied: the reports are tried again on the next tick.
                tracing::error!(campaign = %campaign, error = %e, reports = reports.len(),
                    "Cannot store device progress; trying again on the next tick");
                engine.retry.extend(reports);
                if engine.retry.len() > MAX_RETRIED_REPORTS {
                    let dropped = engine.retry.len() - MAX_RETRIED_REPORTS;
                    engine.retry.drain(..dropped);
                    tracing::error!(
                        dropped,
                        "Gave up on the oldest device reports (they are kept as device events); devices time out and are asked again"
                    );
                }
                continue;
            }
            if let Some(live) = engine.live.get_mut(&campaign) {
                live.commit(changes);
            }
            outgoing.extend(self.judge(&mut engine, &campaign).await);
        }
        drop(engine);
        self.send(outgoing).await;
    }

    /// Timeouts, retries, notices and phase decisions for every running campaign.
    pub async fn tick(&self, now: UnixMillis) {
        let retry = std::mem::take(&mut self.inner.engine.lock().await.retry);
        if !retry.is_empty() {
            self.handle_reports(retry).await;
        }
        let broker = self.inner.broker.get().cloned();
        let mut engine = self.inner.engine.lock().await;
        let ids: Vec<String> = engine.live.keys().cloned().collect();
        let mut outgoing = Vec::new();
        for id in ids {
            let Some(live) = engine.live.get_mut(&id) else {
                continue;
            };
            let expired = live.expired(now);
            if !expired.is_empty() {
                tracing::info!(campaign = %id, devices = expired.len(), "Devices timed out");
            }
            if let Err(e) = self.record(&id, &expired).await {
                tracing::error!(campaign = %id, error = %e, "Cannot store timed-out devices");
                continue;
            }
            live.commit(expired);
            // Judge before notifying: failures that came in (or timed out) may abort it.
            outgoing.extend(self.judge(&mut engine, &id).await);
            let Some(live) = engine.live.get(&id) else {
                continue;
            };
            {
                let candidates: Vec<DeviceId> = live
                    .devices
                    .iter()
                    .filter(|(_, p)| p.phase <= live.phase && p.due(now))
                    .map(|(d, _)| d.clone())
                    .collect();
                // Admission first, then the per-tick cap: devices that cannot be asked now
                // (offline, outside their window) never hold back those that can.
                let mut admitted = HashSet::new();
                for device in candidates {
                    if admitted.len() >= self.inner.settings.notices_per_tick {
                        break;
                    }
                    if !in_window(&self.inner.index, &engine.windows, &device, now) {
                        continue;
                    }
                    let polled =
                        polled_recently(&engine.polled, &device, now, self.inner.settings.ddi_poll);
                    let connected = match &broker {
                        Some(b) if !polled => b.is_connected(&device).await,
                        _ => polled,
                    };
                    if connected {
                        admitted.insert(device);
                    }
                }
                let Some(live) = engine.live.get_mut(&id) else {
                    continue;
                };
                let notify = live.due_notices(now, |d| admitted.contains(d));
                if let Err(e) = self.record(&id, &notify).await {
                    tracing::error!(campaign = %id, error = %e, "Cannot store notices; they are not sent");
                    continue;
                }
                let action = live.spec.action.notice();
                for change in &notify {
                    outgoing.push(Outgoing {
                        device: change.device.clone(),
                        payload: self.notice(live, change.progress.attempts, action),
                    });
                }
                live.commit(notify);
            }
            outgoing.extend(self.judge(&mut engine, &id).await);
        }
        drop(engine);
        self.send(outgoing).await;
    }

    /// Judges a campaign after a change and stores any decision; returns cancel notices when
    /// it stops.
    async fn judge(&self, engine: &mut Engine, id: &str) -> Vec<Outgoing> {
        // Empty phases are passed through in one go.
        for _ in 0..=campaign::MAX_PHASES {
            let Some(live) = engine.live.get_mut(id) else {
                return Vec::new();
            };
            if !matches!(
                live.state,
                CampaignState::Running | CampaignState::WaitingApproval
            ) {
                return Vec::new();
            }
            let decision = campaign::evaluate(&live.spec, live.phase, &live.tallies());
            // A campaign waiting for approval still aborts on failures; nothing else moves it.
            if live.state == CampaignState::WaitingApproval
                && !matches!(decision, Decision::Abort { .. })
            {
                return Vec::new();
            }
            let target = format!("campaign:{id}");
            let audit = |action: &str| {
                garrison_core::audit::AuditRecord::new(
                    self.tenant(),
                    system(),
                    action,
                    target.clone(),
                )
            };
            let now = now_ms();
            let stored = match &decision {
                Decision::Continue => return Vec::new(),
                Decision::Advance { to } => {
                    tracing::info!(campaign = %id, phase = to + 1, "Campaign advances");
                    self.store()
                        .campaign_set_state(
                            self.tenant(),
                            id,
                            &garrison_store::campaigns::CampaignStateChange {
                                state: CampaignState::Running.as_str(),
                                phase: i64::from(*to),
                                reason: None,
                                at: now,
                            },
                            audit("update.campaign.advance"),
                        )
                        .await
                        .map(|()| {
                            live.phase = *to;
                            live.record.phase = i64::from(*to);
                        })
                }
                Decision::AwaitApproval { next } => {
                    let reason = format!(
                        "phase {} of {} waits for approval",
                        next + 1,
                        live.spec.phases.len()
                    );
                    tracing::info!(campaign = %id, "{reason}");
                    self.store()
                        .campaign_set_state(
                            self.tenant(),
                            id,
                            &garrison_store::campaigns::CampaignStateChange {
                                state: CampaignState::WaitingApproval.as_str(),
                                phase: i64::from(live.phase),
                                reason: Some(&reason),
                                at: now,
                            },
                            audit("update.campaign.wait"),
                        )
                        .await
                        .map(|()| {
                            live.state = CampaignState::WaitingApproval;
                            live.record.reason = Some(reason);
                        })
                }
                Decision::Complete => {
                    tracing::info!(campaign = %id, "Campaign completed");
                    self.store()
                        .campaign_set_state(
                            self.tenant(),
                            id,
                            &garrison_store::campaigns::CampaignStateChange {
                                state: CampaignState::Completed.as_str(),
                                phase: i64::from(live.phase),
                                reason: None,
                                at: now,
                            },
                            audit("update.campaign.complete"),
                        )
                        .await
                        .map(|()| {
                            live.state = CampaignState::Completed;
                        })
                }
                Decision::Abort { reason } => {
                    tracing::warn!(campaign = %id, "Campaign aborted: {reason}");
                    let number = live.record.number;
                    let out = self
                        .finish(
                            live,
                            CampaignState::Aborted,
                            reason.clone(),
                            audit("update.campaign.abort"),
                        )
                        .await;
                    return match out {
                        Ok(out) => {
                            engine.live.remove(id);
                            for o in &out {
                                engine.cancels.insert(o.device.clone(), number);
                            }
                            out
                        }
                        Err(e) => {
                            tracing::error!(campaign = %id, error = %e, "Cannot store the abort; it is decided again on the next tick");
                            Vec::new()
                        }
                    };
                }
            };
            if let Err(e) = stored {
                tracing::error!(campaign = %id, error = %e, "Cannot store the campaign's decision; it is made again on the next tick");
                return Vec::new();
            }
            if matches!(decision, Decision::Complete) {
                engine.live.remove(id);
                return Vec::new();
            }
        }
        Vec::new()
    }

    fn notice(&self, live: &Live, attempt: u32, action: UpdateAction) -> Vec<u8> {
        let cancel = action == UpdateAction::Cancel;
        let notice = UpdateNotice {
            schema: SCHEMA_VERSION,
            campaign: live.id().to_owned(),
            attempt,
            action,
            manifest: (!cancel)
                .then(|| base64::engine::general_purpose::STANDARD.encode(&live.release.manifest)),
            artifacts: if cancel {
                Vec::new()
            } else {
                artifacts(&live.release)
                    .map(|(name, sha256, size)| ArtifactLink {
                        url: format!(
                            "{}/device/v1/artifacts/{sha256}",
                            self.inner.settings.download_base.trim_end_matches('/')
                        ),
                        name: name.to_owned(),
                        sha256: sha256.to_owned(),
                        size,
                    })
                    .collect()
            },
        };
        serde_json::to_vec(&notice).unwrap_or_default()
    }

    async fn send(&self, outgoing: Vec<Outgoing>) {
        if outgoing.is_empty() {
            return;
        }
        let Some(broker) = self.inner.broker.get() else {
            return;
        };
        for o in outgoing {
            match broker
                .send_to_device(&o.device, "update", o.payload.into())
                .await
            {
                Ok(()) => metrics::counter!("garrison_campaign_notices_total").increment(1),
                Err(e) => {
                    tracing::warn!(device = %o.device, error = %e, "Cannot send an update notice; the device times out and is retried")
                }
            }
        }
    }
}

/// The release's artifacts as `(name, sha256, size)`.
fn artifacts(
    release: &garrison_store::updates::Release,
) -> impl Iterator<Item = (&str, &str, u64)> {
    release
        .artifacts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some((
                a.get("name")?.as_str()?,
                a.get("sha256")?.as_str()?,
                a.get("size")?.as_u64()?,
            ))
        })
}

/// Whether a hawkBit client polled within three poll intervals.
fn polled_recently(
    polled: &HashMap<DeviceId, UnixMillis>,
    device: &DeviceId,
    now: UnixMillis,
    interval: Duration,
) -> bool {
    let window = i64::try_from(interval.as_millis().saturating_mul(3)).unwrap_or(i64::MAX);
    polled.get(device).is_some_and(|&at| now - at <= window)
}

/// Whether `device` may be asked now: outside any windowed group, or inside an open window of
/// one of its groups.
fn in_window(
    index: &FleetIndex,
    windows: &BTreeMap<String, MaintenanceWindow>,
    device: &DeviceId,
    now: i64,
) -> bool {
    if windows.is_empty() {
        return true;
    }
    let Some(record) = index.get(device) else {
        return true;
    };
    let mut windowed = false;
    for group in record.groups() {
        if let Some(w) = windows.get(group) {
            if w.is_open(now) {
                return true;
            }
            windowed = true;
        }
    }
    !windowed
}

fn summarise(live: &Live) -> CampaignSummary {
    let mut stages = BTreeMap::new();
    for p in live.devices.values() {
        *stages.entry(p.stage.as_str()).or_default() += 1;
    }
    let mut record = live.record.clone();
    record.state = live.state.as_str().to_owned();
    record.phase = i64::from(live.phase);
    CampaignSummary {
        record,
        spec: live.spec.clone(),
        state: live.state,
        phases: live.tallies(),
        stages,
        excluded: BTreeMap::new(),
    }
}

fn corrupt(record: &CampaignRecord, detail: String) -> CampaignError {
    CampaignError::Store(StoreError::Corrupt {
        what: format!("campaign {}", record.id),
        detail,
    })
}

/// A stored campaign's rules and state, read back.
fn rules_of(record: &CampaignRecord) -> Result<(CampaignSpec, CampaignState), CampaignError> {
    let spec: CampaignSpec =
        serde_json::from_value(record.spec.clone()).map_err(|e| corrupt(record, e.to_string()))?;
    let state = CampaignState::parse(&record.state)
        .ok_or_else(|| corrupt(record, format!("unknown state {:?}", record.state)))?;
    Ok((spec, state))
}

fn summary_of<'a>(
    record: CampaignRecord,
    devices: impl Iterator<Item = &'a Progress> + Clone,
) -> Result<CampaignSummary, CampaignError> {
    let (spec, state) = rules_of(&record)?;
    let mut stages = BTreeMap::new();
    for p in devices.clone() {
        *stages.entry(p.stage.as_str()).or_default() += 1;
    }
    Ok(CampaignSummary {
        phases: tally(&spec, devices),
        spec,
        state,
        record,
        stages,
        excluded: BTreeMap::new(),
    })
}

fn describe(excluded: &BTreeMap<&'static str, u64>) -> String {
    if excluded.is_empty() {
        return "the target is empty".into();
    }
    excluded
        .iter()
        .map(|(why, n)| format!("{n} {why}"))
        .collect::<Vec<_>>()
        .join(", ")
}
