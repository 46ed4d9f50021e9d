//! Running the audit: full runs (scheduled under a lease, or on demand) over the whole fleet,
//! and quick re-evaluation of the device-scope checks whenever a device reports, so a finding
//! resolves itself within seconds of the fact that caused it changing.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use garrison_contract::Inventory;
use garrison_core::{DeviceId, TenantId, audit::AuditRecord, device::CertificateKind, now_ms};
use garrison_inventory::{DeviceRecord, FleetIndex};
use garrison_pki::CertificateKey;
use garrison_store::{
    PageRequest, Store, StoreError,
    identity::{Certificate, CertificateFilter},
    inventory::{FindingFilter, FindingStatus, FindingsDelta, FindingsSync, PostureRun},
};
use tokio::sync::broadcast;

use crate::{
    checks::{self, Scope},
    evaluate::{self, CertFacts, ConnectionFacts, Credential, DeviceInput, KeyUse, Policy},
};

/// What the broker can tell the audit about live connections.
#[async_trait::async_trait]
pub trait ConnectionSource: Send + Sync {
    /// For each device the broker has seen since it started.
    async fn connections(&self) -> Vec<BrokerConnection>;
}

/// One device's connection state as the broker counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConnection {
    /// The device.
    pub device: DeviceId,
    /// Serial of the live session's certificate, if connected.
    pub connected_serial: Option<String>,
    /// Session takeovers since the broker started.
    pub takeovers_total: u64,
    /// Distinct recent source addresses.
    pub addresses: Vec<String>,
}

/// How the audit runs.
#[derive(Debug, Clone)]
pub struct PostureSettings {
    /// Tenant.
    pub tenant: TenantId,
    /// Thresholds (firmware minimums are read from the store at each run).
    pub policy: Policy,
    /// Time between scheduled full runs (zero: none).
    pub interval: Duration,
    /// This process's name in the lease that keeps scheduled runs to one replica.
    pub holder: String,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostureError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another run is in progress in this process.
    #[error("an audit run is already in progress")]
    Busy,
}

/// The posture audit.
#[derive(Clone)]
pub struct PostureService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    index: Arc<FleetIndex>,
    settings: PostureSettings,
    connections: Mutex<Option<Arc<dyn ConnectionSource>>>,
    /// Parsed certificate keys by serial: a certificate never changes.
    keys: Mutex<HashMap<String, Option<CertificateKey>>>,
    /// Takeover totals at the previous full run, for "since the last run".
    takeovers: Mutex<HashMap<DeviceId, u64>>,
    /// One full run at a time in this process.
    running: tokio::sync::Mutex<()>,
    /// Evaluations and their syncs one at a time: a full run and a device re-evaluation must
    /// not interleave, or the older view could undo the newer.
    syncing: tokio::sync::Mutex<()>,
}

const PAGE: u32 = 2000;

impl PostureService {
    /// An audit over `store` and `index`.
    pub fn new(
        store: Arc<dyn Store>,
        index: Arc<FleetIndex>,
        settings: PostureSettings,
    ) -> PostureService {
        PostureService {
            inner: Arc::new(Inner {
                store,
                index,
                settings,
                connections: Mutex::new(None),
                keys: Mutex::new(HashMap::new()),
                takeovers: Mutex::new(HashMap::new()),
                running: tokio::sync::Mutex::new(()),
                syncing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Lets fleet checks see the broker's connections.
    pub fn attach_connections(&self, source: Arc<dyn ConnectionSource>) {
        *self
            .inner
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(source);
    }

    fn tenant(&self) -> &TenantId {
        &self.inner.settings.tenant
    }

    async fn policy(&self) -> Result<Policy, StoreError> {
        let mut policy = self.inner.settings.policy.clone();
        for p in self.inner.store.firmware_policies(self.tenant()).await? {
            policy.firmware_minimum.insert(p.model, p.minimum_version);
        }
        Ok(policy)
    }

    fn cert_facts(&self, cert: &Certificate) -> CertFacts {
        let key = self
            .inner
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(cert.serial.clone())
            .or_insert_with(|| garrison_pki::certificate_key(cert.pem.as_bytes()))
            .clone();
        CertFacts {
            serial: cert.serial.clone(),
            issued_at: cert.issued_at,
            not_after: cert.not_after,
            key,
        }
    }

    async fn device_certificates(&self) -> Result<HashMap<String, Certificate>, StoreError> {
        let filter = CertificateFilter {
            kind: Some(CertificateKind::Device),
            ..CertificateFilter::default()
        };
        let mut page = PageRequest::first(5000);
        let mut out = HashMap::new();
        loop {
            let got = self
                .inner
                .store
                .certificates_list(self.tenant(), &filter, &page)
                .await?;
            for c in got.items {
                out.insert(c.serial.clone(), c);
            }
            match got.next {
                Some(next) => page.after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// A full run over every device and every check.
    pub async fn run(
        &self,
        trigger: &str,
        audit: Option<AuditRecord>,
    ) -> Result<PostureRun, PostureError> {
        let Ok(_running) = self.inner.running.try_lock() else {
            return Err(PostureError::Busy);
        };
        let _syncing = self.inner.syncing.lock().await;
        let clock = Instant::now();
        let started_at = now_ms();
        let policy = self.policy().await?;
        let certificates = self.device_certificates().await?;
        let store = &self.inner.store;
        let index = &self.inner.index;

        let mut observations = Vec::new();
        let mut credentials: Vec<Credential> = Vec::new();
        let mut keys: Vec<KeyUse> = Vec::new();
        let mut evaluated: HashSet<DeviceId> = HashSet::new();
        let mut evaluate =
            |record: &DeviceRecord, inventory: Option<&Inventory>, observations: &mut Vec<_>| {
                let cert = record
                    .current_serial
                    .as_ref()
                    .and_then(|s| certificates.get(s))
                    .map(|c| self.cert_facts(c));
                let allowed = index.allowed_services(record);
                let input = DeviceInput {
                    record,
                    inventory,
                    certificate: cert.as_ref(),
                    allowed_services: allowed.as_deref(),
                };
                observations.extend(evaluate::evaluate_device(&input, &policy, started_at));
                if let Some(CertFacts {
                    serial,
                    key: Some(key),
                    ..
                }) = &cert
                {
                    keys.push(KeyUse {
                        device: record.id.clone(),
                        serial: serial.clone(),
                        fingerprint: key.fingerprint.clone(),
                    });
                }
                if let Some(inv) = inventory {
                    credentials.extend(evaluate::credentials(&record.id, inv));
                }
            };
        // Devices with an inventory, in the store's order; each record looked up by id, so
        // the two orders (SQL collation, Rust bytes) never have to agree.
        let mut cursor: Option<DeviceId> = None;
        loop {
            let batch = store
                .inventories_page(self.tenant(), cursor.as_ref(), PAGE)
                .await?;
            let Some(last) = batch.last().map(|s| s.device.clone()) else {
                break;
            };
            for snapshot in &batch {
                if let Some(record) = index.get(&snapshot.device)
                    && evaluated.insert(record.id.clone())
                {
                    evaluate(&record, Some(&snapshot.inventory), &mut observations);
                }
            }
            if batch.len() < PAGE as usize {
                break;
            }
            cursor = Some(last);
        }
        // Then every device that never reported.
        let mut after: Option<String> = None;
        loop {
            let page = index.search(None, after.as_deref(), PAGE as usize);
            for record in &page.items {
                if !evaluated.contains(&record.id) {
                    evaluated.insert(record.id.clone());
                    evaluate(record, None, &mut observations);
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let devices = evaluated.len() as i64;

        let connections = self.connection_facts(&certificates).await;
        observations.extend(evaluate::evaluate_fleet(
            &credentials,
            &keys,
            &connections,
            &policy,
        ));

        let delta = store
            .findings_sync(FindingsSync {
                tenant: self.tenant().clone(),
                checks: checks::ids(None),
                devices: None,
                observations,
                at: started_at,
            })
            .await?;
        let open = self.refresh_index_findings(None).await?;
        let run = PostureRun {
            id: uuid::Uuid::now_v7().to_string(),
            tenant: self.tenant().clone(),
            trigger: trigger.to_owned(),
            started_at,
            finished_at: now_ms(),
            devices,
            checks: checks::CHECKS.len() as i64,
            opened: (delta.opened + delta.reopened) as i64,
            resolved: delta.resolved as i64,
            open,
        };
        store.posture_run_record(run.clone(), audit).await?;
        metrics::histogram!("garrison_posture_run_seconds").record(clock.elapsed().as_secs_f64());
        metrics::gauge!("garrison_posture_open_findings").set(open as f64);
        tracing::info!(
            trigger,
            devices,
            opened = run.opened,
            resolved = run.resolved,
            open,
            seconds = clock.elapsed().as_secs_f64(),
            "Posture audit finished"
        );
        Ok(run)
    }

    async fn connection_facts(
        &self,
        certificates: &HashMap<String, Certificate>,
    ) -> Vec<ConnectionFacts> {
        let source = self
            .inner
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(source) = source else {
            return Vec::new();
        };
        let connections = source.connections().await;
        let mut previous = self
            .inner
            .takeovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connections
            .into_iter()
            .map(|c| {
                let before = previous
                    .insert(c.device.clone(), c.takeovers_total)
                    .unwrap_or(0);
                let revoked = c
                    .connected_serial
                    .as_ref()
                    .and_then(|s| certificates.get(s))
                    .is_some_and(|cert| cert.revoked_at.is_some());
                ConnectionFacts {
                    device: c.device,
                    connected_serial: c.connected_serial,
                    connected_revoked: revoked,
                    takeovers: c.takeovers_total.saturating_sub(before),
                    addresses: c.addresses,
                }
            })
            .collect()
    }

    /// Reloads open findings into the index (all devices, or those listed); returns the
    /// number of open findings when reloading all.
    async fn refresh_index_findings(
        &self,
        devices: Option<&[DeviceId]>,
    ) -> Result<i64, StoreError> {
        let store = &self.inner.store;
        match devices {
            None => {
                let all = store.findings_open_by_device(self.tenant()).await?;
                let open: usize = all.iter().map(|(_, f)| f.len()).sum();
                let mut ids = Vec::new();
                self.inner.index.for_each(|r| ids.push(r.id.clone()));
                self.inner
                    .index
                    .set_findings(&ids, all.into_iter().collect());
                Ok(open as i64)
            }
            Some(devices) => {
                let mut map = HashMap::new();
                for device in devices {
                    let filter = FindingFilter {
                        status: Some(FindingStatus::Open),
                        device: Some(device.clone()),
                        ..FindingFilter::default()
                    };
                    let page = store
                        .findings_list(self.tenant(), &filter, &PageRequest::first(500))
                        .await?;
                    map.insert(
                        device.clone(),
                        page.items
                            .into_iter()
                            .map(|f| (f.check, f.severity))
                            .collect(),
                    );
                }
                self.inner.index.set_findings(devices, map);
                Ok(0)
            }
        }
    }

    /// Re-evaluates the device-scope checks of `devices` (after they reported).
    pub async fn reevaluate(&self, devices: &[DeviceId]) -> Result<FindingsDelta, PostureError> {
        let _syncing = self.inner.syncing.lock().await;
        let store = &self.inner.store;
        let now = now_ms();
        let policy = self.policy().await?;
        let mut observations = Vec::new();
        let mut evaluated = Vec::new();
        let unique: BTreeSet<&DeviceId> = devices.iter().collect();
        for id in unique {
            let Some(record) = self.inner.index.get(id) else {
                continue;
            };
            let inventory = store
                .inventory_get(self.tenant(), id, false)
                .await?
                .map(|s| s.inventory);
            let cert = match &record.current_serial {
                Some(serial) => store.certificate_get(self.tenant(), serial).await?,
                None => None,
            }
            .map(|c| self.cert_facts(&c));
            let allowed = self.inner.index.allowed_services(&record);
            let input = DeviceInput {
                record: &record,
                inventory: inventory.as_ref(),
                certificate: cert.as_ref(),
                allowed_services: allowed.as_deref(),
            };
            observations.extend(evaluate::evaluate_device(&input, &policy, now));
            evaluated.push(id.clone());
        }
        if evaluated.is_empty() {
            return Ok(FindingsDelta::default());
        }
        let delta = store
            .findings_sync(FindingsSync {
                tenant: self.tenant().clone(),
                checks: checks::ids(Some(Scope::Device)),
                devices: Some(evaluated.clone()),
                observations,
                at: now,
            })
            .await?;
        self.refresh_index_findings(Some(&evaluated)).await?;
        Ok(delta)
    }

    /// Runs the audit every `interval` while this process holds the audit lease.
    pub async fn run_scheduled(self) {
        let interval = self.inner.settings.interval;
        if interval.is_zero() {
            return;
        }
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let ttl = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
            match self
                .inner
                .store
                .lease_acquire("posture-audit", &self.inner.settings.holder, now_ms(), ttl)
                .await
            {
                Ok(true) => {
                    if let Err(e) = self.run("schedule", None).await {
                        tracing::warn!(error = %e, "Scheduled posture audit failed");
                    }
                }
                Ok(false) => tracing::debug!("Another replica holds the audit lease"),
                Err(e) => tracing::warn!(error = %e, "Cannot take the audit lease"),
            }
        }
    }

    /// Re-evaluates devices as the inventory reports them changed.
    pub async fn follow_changes(self, mut changed: broadcast::Receiver<Vec<DeviceId>>) {
        loop {
            let devices = match changed.recv().await {
                Ok(devices) => devices,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "Posture re-evaluation fell behind; the next full run catches up"
                    );
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if let Err(e) = self.reevaluate(&devices).await {
                tracing::warn!(error = %e, "Re-evaluating devices failed");
            }
        }
    }
}
