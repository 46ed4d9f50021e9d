//! Wiring of the inventory and the posture audit into `serve`: the fleet index, the intake task
//! the broker feeds, presence from the broker's session events, identity changes, the periodic
//! index reload, and the audit's schedule and re-evaluation.

use std::{sync::Arc, time::Duration};

use garrison_broker::{DeviceBroker, DeviceMessage, SessionEvent};
use garrison_contract::Limits;
use garrison_core::{DeviceId, TenantId};
use garrison_identity::{IdentityEvent, IdentityService};
use garrison_inventory::{
    AccessKind, FleetIndex, Incoming, IngestSettings, Ingestor, InventoryService, Observation,
    forward::Forwarder,
};
use garrison_posture::{BrokerConnection, ConnectionSource, PostureService, PostureSettings};
use garrison_store::Store;
use tokio::sync::{broadcast, mpsc};

use crate::config::Config;

/// The running inventory.
pub struct Inventory {
    /// For the API.
    pub service: InventoryService,
    /// For the API and the schedule.
    pub posture: PostureService,
    /// Where the broker's messages go.
    pub incoming: mpsc::Sender<Incoming>,
    /// Where the HTTP intake's messages go (the same queue, held weakly).
    pub forwarder: Forwarder,
    /// The intake task; it ends once every sender is gone and it has written what it holds.
    pub ingest: tokio::task::JoinHandle<()>,
    /// Tells the forwarders to hand on what they hold and stop.
    pub stop: tokio::sync::watch::Sender<bool>,
}

/// Loads the fleet index and starts the intake, the audit and their helpers.
pub async fn start(
    config: &Config,
    store: Arc<dyn Store>,
    tenant: TenantId,
    identity: &IdentityService,
    observer: Option<mpsc::Sender<Vec<Observation>>>,
    update_reports: mpsc::Sender<Vec<garrison_inventory::UpdateReport>>,
) -> anyhow::Result<Inventory> {
    let index = Arc::new(FleetIndex::new(tenant.clone()));
    let started = std::time::Instant::now();
    let devices = index.reload(store.as_ref()).await?;
    tracing::info!(
        devices,
        seconds = started.elapsed().as_secs_f64(),
        "Fleet index loaded"
    );

    let (changed_tx, changed_rx) = broadcast::channel::<Vec<DeviceId>>(1024);
    let mut settings = IngestSettings::new(tenant.clone());
    settings.limits = Limits {
        max_decoded_bytes: config.inventory.max_report_bytes,
        max_payload_bytes: usize::try_from(config.broker.max_packet_size).unwrap_or(usize::MAX),
        max_components: config.inventory.max_components,
        ..Limits::default()
    };
    settings.presence_flush = config.inventory.presence_flush;
    let limits = settings.limits.clone();
    let mut ingestor = Ingestor::new(store.clone(), index.clone(), settings, changed_tx)
        .with_update_sink(update_reports);
    if let Some(observer) = observer {
        ingestor = ingestor.with_observer(observer);
    }
    let (incoming, incoming_rx) = mpsc::channel::<Incoming>(10_000);
    let ingest = tokio::spawn(ingestor.run(incoming_rx));
    let forwarder = Forwarder::new(&incoming, index.clone(), store.clone(), limits);
    let (stop, _) = tokio::sync::watch::channel(false);

    let p = &config.posture;
    let posture = PostureService::new(
        store.clone(),
        index.clone(),
        PostureSettings {
            tenant,
            policy: garrison_posture::evaluate::Policy {
                certificate_expiry_days: p.certificate_expiry_days,
                certificate_max_age_days: p.certificate_max_age_days,
                stale_after_days: p.stale_after_days,
                takeover_threshold: p.takeover_threshold,
                ..garrison_posture::evaluate::Policy::default()
            },
            interval: p.interval,
            holder: format!("{}-{}", hostname(), std::process::id()),
        },
    );
    tokio::spawn(posture.clone().follow_changes(changed_rx));
    tokio::spawn(posture.clone().run_scheduled());
    tokio::spawn(follow_identity(
        identity.clone(),
        store.clone(),
        index.clone(),
    ));
    tokio::spawn(reload_periodically(
        index.clone(),
        store.clone(),
        config.inventory.index_refresh,
    ));
    tokio::spawn(prune_daily(
        store.clone(),
        index.tenant().clone(),
        config.inventory.retention,
    ));

    Ok(Inventory {
        service: InventoryService::new(store, index),
        posture,
        incoming,
        forwarder,
        ingest,
        stop,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "garrison".into())
}

/// Moves items from `from` to the intake, converted, until `stop` says so; then hands on what
/// is still queued (it may already have been acknowledged) and returns.
async fn forward<T>(
    mut from: mpsc::Receiver<T>,
    incoming: mpsc::Sender<Incoming>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    convert: fn(T) -> Incoming,
) {
    loop {
        tokio::select! {
            item = from.recv() => match item {
                Some(item) => {
                    if incoming.send(convert(item)).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
            // (`changed`, not `wait_for`: its guard must not live across the sends below.)
            _ = stop.changed() => {
                while let Ok(item) = from.try_recv() {
                    if incoming.send(convert(item)).await.is_err() {
                        return;
                    }
                }
                return;
            }
        }
    }
}

fn message_incoming(m: DeviceMessage) -> Incoming {
    // Resolved once: a registry look-up per message showed in the broker's profile.
    static MESSAGES: std::sync::LazyLock<metrics::Counter> =
        std::sync::LazyLock::new(|| metrics::counter!("garrison_intake_messages_total"));
    MESSAGES.increment(1);
    Incoming::Message {
        device: m.device,
        topic: m.topic,
        payload: m.payload,
        received_at: m.received_at,
    }
}

fn session_incoming(e: SessionEvent) -> Incoming {
    match e {
        SessionEvent::Connected {
            device,
            address,
            at,
        } => Incoming::Connected {
            device,
            address,
            at,
        },
        SessionEvent::Disconnected { device, at } => Incoming::Disconnected { device, at },
        SessionEvent::Refused {
            client_id,
            common_name,
            address,
            reason,
            at,
        } => Incoming::Refused {
            client_id,
            common_name,
            address,
            reason: reason.to_owned(),
            at,
        },
        SessionEvent::AccessRefused {
            device,
            subscribe,
            topic,
            reason,
            at,
        } => Incoming::AccessRefused {
            device,
            kind: if subscribe {
                AccessKind::Subscribe
            } else {
                AccessKind::Publish
            },
            topic,
            reason: reason.to_owned(),
            at,
        },
    }
}

/// Forwards accepted device messages to the intake. Awaiting the send keeps the broker's
/// back-pressure: a slow intake slows publishers, nothing is dropped.
pub async fn forward_messages(
    messages: mpsc::Receiver<DeviceMessage>,
    incoming: mpsc::Sender<Incoming>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    forward(messages, incoming, stop, message_incoming).await;
}

/// Forwards the broker's session events (presence, refused connects).
pub async fn forward_sessions(
    events: mpsc::Receiver<SessionEvent>,
    incoming: mpsc::Sender<Incoming>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    forward(events, incoming, stop, session_incoming).await;
}

/// Keeps the index's identity facts (quarantine, current certificate) in step with the
/// identity service.
async fn follow_identity(identity: IdentityService, store: Arc<dyn Store>, index: Arc<FleetIndex>) {
    let mut events = identity.subscribe();
    loop {
        let device = match events.recv().await {
            Ok(IdentityEvent::QuarantineChanged { device, .. }) => Some(device),
            Ok(IdentityEvent::Revoked { subject, .. }) => DeviceId::new(subject).ok(),
            Err(broadcast::error::RecvError::Lagged(_)) => None,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Some(device) = device
            && let Ok(Some(d)) = store.device_get(index.tenant(), &device).await
        {
            index.upsert_device(&d);
        }
    }
}

async fn reload_periodically(index: Arc<FleetIndex>, store: Arc<dyn Store>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = index.reload(store.as_ref()).await {
            tracing::warn!(error = %e, "Reloading the fleet index failed; will retry");
        }
    }
}

/// Deletes what is past its retention, once a day, on the replica holding the lease.
async fn prune_daily(store: Arc<dyn Store>, tenant: TenantId, retention: Duration) {
    let day = Duration::from_secs(86_400);
    let mut tick = tokio::time::interval(day);
    loop {
        tick.tick().await;
        let now = garrison_core::now_ms();
        let holder = format!("{}-{}", hostname(), std::process::id());
        match store
            .lease_acquire("inventory-retention", &holder, now, 3_600_000)
            .await
        {
            Ok(true) => {
                let before =
                    now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
                match store.inventory_prune(&tenant, before).await {
                    Ok(n) => {
                        tracing::info!(deleted = n, "Pruned inventory history past its retention")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Pruning inventory history failed; will retry tomorrow")
                    }
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "Cannot take the retention lease"),
        }
    }
}

/// The broker as the posture audit sees it.
pub struct BrokerConnections(pub Arc<dyn DeviceBroker>);

#[async_trait::async_trait]
impl ConnectionSource for BrokerConnections {
    async fn connections(&self) -> Vec<BrokerConnection> {
        self.0
            .connections()
            .await
            .into_iter()
            .filter_map(|c| {
                Some(BrokerConnection {
                    device: DeviceId::new(c.device).ok()?,
                    connected_serial: c.connected_serial,
                    takeovers_total: c.counters.takeovers,
                    addresses: c.counters.recent_addresses,
                })
            })
            .collect()
    }
}
