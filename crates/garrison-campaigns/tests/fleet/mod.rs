//! A simulated fleet for campaign tests and the campaign benchmark: devices in a fleet index,
//! a published release, a broker stand-in that hands notices to the devices, and devices that
//! answer each notice with the `update/status` reports of an install (or a download), failing
//! when told to.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use garrison_broker::{BrokerError, DeviceBroker, DeviceConnection, DeviceCounters};
use garrison_campaigns::{CampaignService, CampaignSettings};
use garrison_contract::{SCHEMA_VERSION, UpdateAction, UpdateNotice, UpdateState, UpdateStatus};
use garrison_core::{
    DeviceId, TenantId,
    audit::{Actor as AuditActor, AuditRecord},
    device::EnrollmentMethod,
    now_ms,
};
use garrison_inventory::{FleetIndex, UpdateReport, compile_group_query};
use garrison_releases::Actor;
use garrison_store::{
    Store,
    identity::Device,
    inventory::{DeviceSummary, Group},
    updates::Release,
};
use serde_json::json;
use tokio::sync::mpsc;

pub fn tenant() -> TenantId {
    TenantId::new("default").unwrap()
}

pub fn ann() -> Actor {
    Actor {
        username: "ann".into(),
        actor: AuditActor::operator("ann"),
        source: None,
    }
}

/// The broker stand-in: every device is connected; notices are handed to the fleet.
pub struct Wire {
    notices: mpsc::UnboundedSender<(DeviceId, UpdateNotice)>,
}

#[async_trait::async_trait]
impl DeviceBroker for Wire {
    async fn is_connected(&self, _device: &DeviceId) -> bool {
        true
    }
    fn device_counters(&self, _device: &DeviceId) -> Option<DeviceCounters> {
        None
    }
    async fn send_to_device(
        &self,
        device: &DeviceId,
        channel: &str,
        payload: bytes::Bytes,
    ) -> Result<(), BrokerError> {
        assert_eq!(channel, "update");
        let notice: UpdateNotice = serde_json::from_slice(&payload).unwrap();
        let _ = self.notices.send((device.clone(), notice));
        Ok(())
    }
    async fn disconnect(&self, _device: &DeviceId) -> bool {
        false
    }
    async fn connections(&self) -> Vec<DeviceConnection> {
        Vec::new()
    }
}

pub struct Fleet {
    pub store: Arc<dyn Store>,
    pub index: Arc<FleetIndex>,
    pub release: Release,
    _dir: tempfile::TempDir,
}

pub async fn fleet(size: usize) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let store = garrison_store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let index = Arc::new(FleetIndex::new(tenant()));
    for i in 0..size {
        let id = DeviceId::new(format!("cam-{i:04}")).unwrap();
        index.upsert_device(&Device {
            tenant: tenant(),
            id: id.clone(),
            quarantined: false,
            enrolled_via: EnrollmentMethod::Token,
            current_serial: None,
            created_at: 0,
            updated_at: 0,
            rotation_requested_at: None,
        });
        let model = if i % 100 == 99 {
            "other-model"
        } else {
            "cam-x"
        };
        index.apply_inventory(
            &id,
            DeviceSummary {
                model: Some(model.into()),
                ..DeviceSummary::default()
            },
            1,
        );
    }
    for (name, query) in [
        ("cams", "model = \"cam-x\""),
        ("night", "model = \"cam-x\" and id ~ \"cam-00*\""),
    ] {
        index.put_group(
            Group {
                tenant: tenant(),
                name: name.into(),
                description: String::new(),
                query: Some(query.into()),
                impact: None,
                allowed_services: None,
                created_by: "ann".into(),
                created_at: 0,
                updated_at: 0,
            },
            Some(compile_group_query(query).unwrap()),
        );
    }
    let release = Release {
        id: "r1".into(),
        tenant: tenant(),
        vendor: "acme".into(),
        model: "cam-x".into(),
        sequence: 7,
        version: "2.0.0".into(),
        signed_by: "k1".into(),
        artifacts: json!([{"name": "rootfs.swu", "sha256": "ab".repeat(32), "size": 10}]),
        expires_at: None,
        manifest: vec![0xd2, 0x84, 1, 2, 3],
        created_at: 1,
        created_by: "ann".into(),
    };
    store
        .release_create(
            &release,
            AuditRecord::new(
                &tenant(),
                AuditActor::operator("ann"),
                "update.release.publish",
                "r1",
            ),
        )
        .await
        .unwrap();
    Fleet {
        store,
        index,
        release,
        _dir: dir,
    }
}

/// A running service with its simulated devices: each answers a notice with the stages of an
/// install (or of a download for download-only), failing when `fails` says so.
pub struct Running {
    pub service: CampaignService,
    pub notified: Arc<Mutex<HashMap<DeviceId, u32>>>,
    /// Update reports sent by the devices.
    pub reports: Arc<std::sync::atomic::AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub fn start(f: &Fleet, fails: fn(&DeviceId) -> bool) -> Running {
    let (notices_tx, mut notices) = mpsc::unbounded_channel();
    let cell: Arc<OnceLock<Arc<dyn DeviceBroker>>> = Arc::new(OnceLock::new());
    let _ = cell.set(Arc::new(Wire {
        notices: notices_tx,
    }));
    let service = CampaignService::new(
        f.store.clone(),
        f.index.clone(),
        cell,
        CampaignSettings {
            tenant: tenant(),
            download_base: "https://garrison.test:8443".into(),
            tick: Duration::from_millis(20),
            notices_per_tick: 1000,
            ddi_poll: std::time::Duration::from_secs(10),
        },
    );
    let (reports_tx, reports_rx) = mpsc::channel(64);
    let notified = Arc::new(Mutex::new(HashMap::new()));
    let reports = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = reports.clone();
    let seen = notified.clone();
    let devices = tokio::spawn(async move {
        while let Some((device, notice)) = notices.recv().await {
            let notice: UpdateNotice = notice;
            if notice.action == UpdateAction::Cancel {
                continue;
            }
            assert_eq!(notice.artifacts.len(), 1);
            assert!(
                notice.artifacts[0]
                    .url
                    .starts_with("https://garrison.test:8443/device/v1/artifacts/")
            );
            assert!(notice.manifest.is_some());
            *seen.lock().unwrap().entry(device.clone()).or_insert(0) += 1;
            let states: &[UpdateState] = if fails(&device) {
                &[UpdateState::Downloading, UpdateState::Failed]
            } else if notice.action == UpdateAction::DownloadOnly {
                &[
                    UpdateState::Downloading,
                    UpdateState::Downloaded,
                    UpdateState::Verified,
                ]
            } else {
                &[
                    UpdateState::Downloading,
                    UpdateState::Downloaded,
                    UpdateState::Verified,
                    UpdateState::Installing,
                    UpdateState::Installed,
                    UpdateState::Rebooted,
                    UpdateState::Succeeded,
                ]
            };
            let reports: Vec<UpdateReport> = states
                .iter()
                .map(|&state| UpdateReport {
                    device: device.clone(),
                    received_at: now_ms(),
                    status: UpdateStatus {
                        schema: SCHEMA_VERSION,
                        device_id: None,
                        campaign: notice.campaign.clone(),
                        attempt: Some(notice.attempt),
                        state,
                        reason: (state == UpdateState::Failed).then(|| "flash write error".into()),
                    },
                })
                .collect();
            counted.fetch_add(reports.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if reports_tx.send(reports).await.is_err() {
                return;
            }
        }
    });
    let runner = tokio::spawn(service.clone().run(reports_rx));
    Running {
        service,
        notified,
        reports,
        tasks: vec![devices, runner],
    }
}
