//! The intake of device messages into the inventory: decode and validate each message, keep
//! what it says, and tell the rest of the server which devices changed.
//!
//! One task consumes the intake channel in batches. Inventory reports are diffed against the
//! device's previous report (fact history, drift) and written together in one transaction;
//! events are appended by a writer task of their own (see [`write_events`]); presence (first/last seen, online, agent, latest telemetry) is folded
//! in memory and flushed every few seconds, since a write per telemetry message would cost more
//! than the message. Every refused message is counted by channel and reason, logged, and
//! changes nothing.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use garrison_contract::{
    Channel, DeviceEvent, EventKind, Inventory, Limits, Report, Telemetry, UpdateStatus,
    decode_report_sized,
};
use garrison_core::{DeviceId, TenantId, UnixMillis};
use garrison_store::{
    Store, StoreError,
    inventory::{
        DestinationSeen, InventoryWrite, NewDeviceEvent, PresenceUpdate, Sighting, SightingKind,
    },
};
use tokio::sync::{broadcast, mpsc};

use crate::{FleetIndex, drift, facts};

/// What the broker (or another transport) hands the inventory.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A message a device published that passed the broker's ACL.
    Message {
        /// The publishing device (its certificate's CN).
        device: DeviceId,
        /// Full topic.
        topic: String,
        /// Payload.
        payload: Bytes,
        /// When it arrived.
        received_at: UnixMillis,
    },
    /// A device connected.
    Connected {
        /// The device.
        device: DeviceId,
        /// Its source address.
        address: Option<String>,
        /// When.
        at: UnixMillis,
    },
    /// A device's connection closed.
    Disconnected {
        /// The device.
        device: DeviceId,
        /// When.
        at: UnixMillis,
    },
    /// A connection was refused before it was a device session.
    Refused {
        /// The client id it presented.
        client_id: String,
        /// The certificate CN, if it had one.
        common_name: Option<String>,
        /// Source address.
        address: Option<String>,
        /// Why (`client_id_differs_from_certificate`, …).
        reason: String,
        /// When.
        at: UnixMillis,
    },
    /// A device's publish or subscription was refused by the topic ACL.
    AccessRefused {
        /// The device.
        device: DeviceId,
        /// Publish or subscribe.
        kind: AccessKind,
        /// The topic or filter.
        topic: String,
        /// Why.
        reason: String,
        /// When.
        at: UnixMillis,
    },
}

/// Which broker check refused a device's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// A PUBLISH.
    Publish,
    /// A SUBSCRIBE.
    Subscribe,
}

/// What the intake saw, passed on to monitoring after it is written: decoded device events and
/// telemetry, sessions, refusals and drift. Monitoring never decodes a payload again.
#[derive(Debug, Clone)]
pub enum Observation {
    /// A batch of device events.
    Events {
        /// The device.
        device: DeviceId,
        /// When the batch arrived.
        received_at: UnixMillis,
        /// Its events, oldest first.
        events: Vec<DeviceEvent>,
    },
    /// One telemetry report.
    Telemetry {
        /// The device.
        device: DeviceId,
        /// When it arrived.
        received_at: UnixMillis,
        /// The report.
        telemetry: Telemetry,
    },
    /// A device connected.
    Connected {
        /// The device.
        device: DeviceId,
        /// Its source address.
        address: Option<String>,
        /// When.
        at: UnixMillis,
    },
    /// A device's connection closed.
    Disconnected {
        /// The device.
        device: DeviceId,
        /// When.
        at: UnixMillis,
    },
    /// A connection was refused at authentication.
    ConnectRefused {
        /// The client id presented.
        client_id: String,
        /// The certificate's CN.
        common_name: Option<String>,
        /// Source address.
        address: Option<String>,
        /// Why.
        reason: String,
        /// When.
        at: UnixMillis,
    },
    /// A device's publish or subscription was refused by the topic ACL.
    AccessRefused {
        /// The device.
        device: DeviceId,
        /// Publish or subscribe.
        kind: AccessKind,
        /// The topic or filter.
        topic: String,
        /// Why (`foreign_topic`, `quarantined`, …).
        reason: String,
        /// When.
        at: UnixMillis,
    },
    /// What the broker delivered from a device in one batch: its MQTT messages on contract
    /// topics and their payload bytes (the broker's own per-device traffic figures, whatever
    /// the device reports about itself).
    Traffic {
        /// The device.
        device: DeviceId,
        /// Messages.
        messages: u64,
        /// Payload bytes.
        bytes: u64,
        /// Of those messages, how many were refused (not a contract topic, undecodable).
        rejected: u64,
        /// When the last of them arrived.
        at: UnixMillis,
    },
    /// A security-relevant configuration change.
    Drift {
        /// The device.
        device: DeviceId,
        /// When the report showing it arrived.
        at: UnixMillis,
        /// The change.
        drift: garrison_store::inventory::NewDrift,
    },
}

/// How the intake behaves.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// The tenant devices belong to.
    pub tenant: TenantId,
    /// Payload bounds.
    pub limits: Limits,
    /// Most messages handled per batch.
    pub batch: usize,
    /// How often presence is written.
    pub presence_flush: Duration,
}

impl IngestSettings {
    /// Defaults for `tenant`.
    pub fn new(tenant: TenantId) -> IngestSettings {
        IngestSettings {
            tenant,
            limits: Limits::default(),
            batch: 512,
            presence_flush: Duration::from_secs(5),
        }
    }
}

/// Counts of what one batch did, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Inventory reports recorded.
    pub inventories: usize,
    /// Events kept.
    pub events: usize,
    /// Messages refused.
    pub rejected: usize,
}

/// The inventory intake. Create with [`Ingestor::new`], then [`Ingestor::run`] it on the
/// channel the broker feeds.
pub struct Ingestor {
    store: Arc<dyn Store>,
    index: Arc<FleetIndex>,
    settings: IngestSettings,
    changed: broadcast::Sender<Vec<DeviceId>>,
    presence: HashMap<DeviceId, PresenceUpdate>,
    sightings: Vec<Sighting>,
    seen_sightings: HashSet<(SightingKind, String, String)>,
    observer: Option<mpsc::Sender<Vec<Observation>>>,
    observed: Vec<Observation>,
    update_sink: Option<mpsc::Sender<Vec<UpdateReport>>>,
    update_reports: Vec<UpdateReport>,
    /// Per device: when its last refused message was logged, and how many were refused since
    /// without a log line (see [`Ingestor::reject`]).
    refusals_logged: HashMap<DeviceId, (std::time::Instant, u64)>,
    /// Where decoded events go to be written: the event writer while [`Ingestor::run`] runs;
    /// without it (a batch handled directly) they are written in the batch.
    event_queue: Option<EventQueue>,
}

/// An `update/status` report, passed to the campaigns after it is stored as a device event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateReport {
    /// The reporting device.
    pub device: DeviceId,
    /// When the report arrived.
    pub received_at: UnixMillis,
    /// What it said.
    pub status: UpdateStatus,
}

/// Decoded inventory held by one batch before it is written (each report may be megabytes).
const MAX_BATCH_INVENTORY_BYTES: usize = 32 * 1024 * 1024;
/// New unmanaged sightings kept per flush interval.
const MAX_SIGHTINGS_PER_FLUSH: usize = 1000;
/// Destinations of one telemetry report checked for unmanaged peers.
const MAX_PEERS_PER_REPORT: usize = 32;
/// A device's refused messages are logged at most once per interval (all are counted).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Distinct telemetry destinations kept per device per flush interval (for retro-hunts);
/// more are counted in `garrison_inventory_destinations_dropped_total`.
const MAX_DESTINATIONS_PER_FLUSH: usize = 256;
/// Events queued for the event writer before the intake waits for it: enough to ride out a
/// commit stall of a second at 50,000 events/s, bounded so a store that falls behind for good
/// holds the publishers back instead of filling memory (tens of MB at this size).
const MAX_QUEUED_EVENTS: u32 = 50_000;
/// Most events the event writer puts in one transaction.
const MAX_EVENTS_PER_WRITE: usize = 20_000;

/// The intake's side of the event writer's queue, bounded by events rather than by batches
/// (a batch may hold one event or thousands).
struct EventQueue {
    batches: mpsc::UnboundedSender<QueuedEvents>,
    room: Arc<tokio::sync::Semaphore>,
}

/// A batch of events waiting to be written, holding its room in the queue until it is.
struct QueuedEvents {
    events: Vec<NewDeviceEvent>,
    room: tokio::sync::OwnedSemaphorePermit,
}

impl Ingestor {
    /// An intake writing to `store` and keeping `index` current; `changed` receives the ids of
    /// devices whose inventory changed (the posture audit re-evaluates them).
    pub fn new(
        store: Arc<dyn Store>,
        index: Arc<FleetIndex>,
        settings: IngestSettings,
        changed: broadcast::Sender<Vec<DeviceId>>,
    ) -> Ingestor {
        Ingestor {
            store,
            index,
            settings,
            changed,
            presence: HashMap::new(),
            sightings: Vec::new(),
            seen_sightings: HashSet::new(),
            observer: None,
            observed: Vec::new(),
            update_sink: None,
            update_reports: Vec::new(),
            refusals_logged: HashMap::new(),
            event_queue: None,
        }
    }

    /// Also passes every `update/status` report to `sink` (the campaigns), once the batch's
    /// inventory is written and its events are queued for writing; like the observer, a slow
    /// consumer holds the intake back rather than losing a report.
    pub fn with_update_sink(mut self, sink: mpsc::Sender<Vec<UpdateReport>>) -> Ingestor {
        self.update_sink = Some(sink);
        self
    }

    /// Also passes what each batch showed to `observer` (monitoring), once the batch's
    /// inventory is written and its events are queued for writing: detection need not wait
    /// for an event's commit. The send is awaited: a slow monitor holds the intake back, and
    /// through the broker the publishers, rather than losing what was acknowledged.
    pub fn with_observer(mut self, observer: mpsc::Sender<Vec<Observation>>) -> Ingestor {
        self.observer = Some(observer);
        self
    }

    fn observe(&mut self, observation: Observation) {
        if self.observer.is_some() {
            self.observed.push(observation);
        }
    }

    /// Consumes `incoming` until it closes, then flushes and waits for every queued event to
    /// be written.
    pub async fn run(mut self, mut incoming: mpsc::Receiver<Incoming>) {
        let (batches, queued) = mpsc::unbounded_channel();
        self.event_queue = Some(EventQueue {
            batches,
            room: Arc::new(tokio::sync::Semaphore::new(MAX_QUEUED_EVENTS as usize)),
        });
        let writer = tokio::spawn(write_events(self.store.clone(), queued));
        let mut flush = tokio::time::interval(self.settings.presence_flush);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(self.settings.batch);
        loop {
            tokio::select! {
                n = incoming.recv_many(&mut batch, self.settings.batch) => {
                    if n == 0 {
                        break;
                    }
                    self.handle(std::mem::take(&mut batch)).await;
                }
                _ = flush.tick() => self.flush().await,
            }
        }
        self.flush().await;
        drop(self.event_queue.take());
        if let Err(e) = writer.await {
            tracing::error!(error = %e, "The event writer failed");
        }
    }

    /// Handles one batch of messages.
    pub async fn handle(&mut self, batch: Vec<Incoming>) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        let mut inventories: Vec<(DeviceId, Box<Inventory>, UnixMillis)> = Vec::new();
        let mut inventory_bytes = 0usize;
        let mut events = Vec::new();
        let mut traffic: HashMap<DeviceId, (u64, u64, u64, UnixMillis)> = HashMap::new();
        // Counted per batch: a metrics look-up per message showed in profiles.
        let mut accepted: HashMap<&'static str, u64> = HashMap::new();
        for item in batch {
            match item {
                Incoming::Message {
                    device,
                    topic,
                    payload,
                    received_at,
                } => {
                    self.ensure_known(&device).await;
                    if self.observer.is_some() {
                        let t = traffic.entry(device.clone()).or_default();
                        t.0 += 1;
                        t.1 += payload.len() as u64;
                        t.3 = received_at;
                    }
                    // Any message proves the device is connected.
                    self.seen_message(&device, received_at);
                    let Some(channel) = topic_channel(&device, &topic) else {
                        self.reject(&device, "unknown", "not_a_contract_topic", &topic);
                        outcome.rejected += 1;
                        if let Some(t) = traffic.get_mut(&device) {
                            t.2 += 1;
                        }
                        continue;
                    };
                    match decode_report_sized(channel, &device, &payload, &self.settings.limits) {
                        Err(e) => {
                            self.reject(&device, channel.as_str(), e.reason(), &e);
                            outcome.rejected += 1;
                            if let Some(t) = traffic.get_mut(&device) {
                                t.2 += 1;
                            }
                        }
                        Ok((report, size)) => {
                            *accepted.entry(channel.as_str()).or_default() += 1;
                            if matches!(report, Report::Inventory(_)) {
                                inventory_bytes += size;
                            }
                            self.accept(device, report, received_at, &mut inventories, &mut events);
                            // Bound what one batch holds decoded at once.
                            if inventory_bytes > MAX_BATCH_INVENTORY_BYTES {
                                outcome.inventories += inventories.len();
                                self.record_inventories(std::mem::take(&mut inventories))
                                    .await;
                                inventory_bytes = 0;
                            }
                        }
                    }
                }
                Incoming::Connected {
                    device,
                    address,
                    at,
                } => {
                    self.ensure_known(&device).await;
                    self.observe(Observation::Connected {
                        device: device.clone(),
                        address: address.clone(),
                        at,
                    });
                    self.seen(&device, at, |u| {
                        u.online = Some(true);
                        u.address = address;
                    });
                }
                Incoming::Disconnected { device, at } => {
                    self.observe(Observation::Disconnected {
                        device: device.clone(),
                        at,
                    });
                    self.seen(&device, at, |u| u.online = Some(false));
                }
                Incoming::AccessRefused {
                    device,
                    kind,
                    topic,
                    reason,
                    at,
                } => self.observe(Observation::AccessRefused {
                    device,
                    kind,
                    topic,
                    reason,
                    at,
                }),
                Incoming::Refused {
                    client_id,
                    common_name,
                    address,
                    reason,
                    at,
                } => {
                    self.observe(Observation::ConnectRefused {
                        client_id: client_id.clone(),
                        common_name: common_name.clone(),
                        address: address.clone(),
                        reason: reason.clone(),
                        at,
                    });
                    // A managed certificate refused (wrong client id, revoked, a will) is a
                    // monitoring matter; what is listed here is what Garrison does not manage.
                    // Floods refused by the per-source limit are counted, not listed one by one.
                    let managed = common_name
                        .as_deref()
                        .is_some_and(|cn| DeviceId::new(cn).is_ok_and(|d| self.index.contains(&d)));
                    if !managed && reason != "too_many_connection_attempts" {
                        let identity = match &common_name {
                            Some(cn) if cn != &client_id => {
                                format!("{client_id} (certificate {cn})")
                            }
                            _ => client_id,
                        };
                        self.sight(
                            SightingKind::BrokerConnect,
                            identity,
                            address.unwrap_or_default(),
                            at,
                            reason,
                        );
                    }
                }
            }
        }
        for (channel, count) in accepted {
            metrics::counter!("garrison_inventory_reports_total", "channel" => channel)
                .increment(count);
        }
        for (device, (messages, bytes, rejected, at)) in traffic {
            self.observe(Observation::Traffic {
                device,
                messages,
                bytes,
                rejected,
                at,
            });
        }
        outcome.inventories += inventories.len();
        outcome.events = events.len();
        if !inventories.is_empty() {
            self.record_inventories(inventories).await;
        }
        if !events.is_empty() {
            self.queue_events(events).await;
        }
        self.pass_on().await;
        outcome
    }

    /// Hands decoded events to the event writer, waiting while its queue is full (the store
    /// is behind: back-pressure, as for any write); written here when there is no writer.
    async fn queue_events(&mut self, events: Vec<NewDeviceEvent>) {
        let events = match &self.event_queue {
            Some(queue) => {
                let wanted = u32::try_from(events.len())
                    .unwrap_or(u32::MAX)
                    .min(MAX_QUEUED_EVENTS);
                // The semaphore is never closed, so this only waits.
                let room = queue.room.clone().acquire_many_owned(wanted).await;
                match room {
                    Ok(room) => match queue.batches.send(QueuedEvents { events, room }) {
                        Ok(()) => return,
                        // The writer has gone (it stops only when the queue closes): write here.
                        Err(mpsc::error::SendError(queued)) => {
                            self.event_queue = None;
                            queued.events
                        }
                    },
                    Err(_) => events,
                }
            }
            None => events,
        };
        write_counted(self.store.as_ref(), &events).await;
    }

    /// Hands what this batch showed to monitoring and the campaigns.
    async fn pass_on(&mut self) {
        if !self.update_reports.is_empty() {
            let reports = std::mem::take(&mut self.update_reports);
            if let Some(sink) = &self.update_sink
                && sink.send(reports).await.is_err()
            {
                self.update_sink = None;
            }
        }
        if self.observed.is_empty() {
            return;
        }
        let observed = std::mem::take(&mut self.observed);
        if let Some(observer) = &self.observer
            && observer.send(observed).await.is_err()
        {
            // Monitoring has stopped (shutdown); the data itself is stored.
            self.observer = None;
        }
    }

    fn accept(
        &mut self,
        device: DeviceId,
        report: Report,
        received_at: UnixMillis,
        inventories: &mut Vec<(DeviceId, Box<Inventory>, UnixMillis)>,
        events: &mut Vec<NewDeviceEvent>,
    ) {
        let tenant = self.settings.tenant.clone();
        match report {
            Report::Birth(birth) => {
                self.seen(&device, received_at, |u| {
                    u.agent = Some((birth.agent, birth.agent_version));
                });
            }
            Report::Inventory(inventory) => inventories.push((device, inventory, received_at)),
            Report::Telemetry(telemetry) => {
                for destination in telemetry.destinations.iter().take(MAX_PEERS_PER_REPORT) {
                    self.maybe_unmanaged(
                        SightingKind::PeerAddress,
                        destination,
                        &device,
                        received_at,
                    );
                }
                if self.observer.is_some() {
                    self.observe(Observation::Telemetry {
                        device: device.clone(),
                        received_at,
                        telemetry: telemetry.clone(),
                    });
                }
                // Kept per address so an indicator imported later can be hunted in them.
                let destinations = telemetry
                    .destinations
                    .iter()
                    .filter(|d| d.parse::<IpAddr>().is_ok())
                    .map(|d| (d.clone(), DestinationSeen::once(received_at)))
                    .collect();
                self.seen(&device, received_at, |u| {
                    u.telemetry = Some(telemetry);
                    u.destinations = destinations;
                });
            }
            Report::Events(batch) => {
                if self.observer.is_some() {
                    self.observe(Observation::Events {
                        device: device.clone(),
                        received_at,
                        events: batch.events.clone(),
                    });
                }
                for event in batch.events {
                    if let EventKind::LoginFailed {
                        source: Some(s), ..
                    }
                    | EventKind::LoginSucceeded {
                        source: Some(s), ..
                    } = &event.kind
                    {
                        self.maybe_unmanaged(SightingKind::LoginSource, s, &device, received_at);
                    }
                    events.push(NewDeviceEvent {
                        tenant: tenant.clone(),
                        device: device.clone(),
                        received_at,
                        at: event.at,
                        kind: event.kind.name().to_owned(),
                        body: serde_json::to_value(&event).unwrap_or_default(),
                    });
                }
            }
            Report::CommandResult(result) => events.push(NewDeviceEvent {
                tenant,
                device,
                received_at,
                at: received_at,
                kind: "command_result".into(),
                body: serde_json::to_value(&result).unwrap_or_default(),
            }),
            Report::UpdateStatus(status) => {
                events.push(NewDeviceEvent {
                    tenant,
                    device: device.clone(),
                    received_at,
                    at: received_at,
                    kind: "update_status".into(),
                    body: serde_json::to_value(&status).unwrap_or_default(),
                });
                if self.update_sink.is_some() {
                    self.update_reports.push(UpdateReport {
                        device,
                        received_at,
                        status,
                    });
                }
            }
        }
    }

    /// Diffs each report against the previous one and writes them all in one transaction.
    async fn record_inventories(&mut self, reports: Vec<(DeviceId, Box<Inventory>, UnixMillis)>) {
        let tenant = self.settings.tenant.clone();
        // A device reporting twice in one batch is diffed against its own earlier report.
        let mut latest: HashMap<DeviceId, usize> = HashMap::new();
        let mut writes: Vec<InventoryWrite> = Vec::with_capacity(reports.len());
        for (device, inventory, received_at) in reports {
            let previous = match latest.get(&device) {
                Some(&i) => writes.get(i).map(|w| w.inventory.clone()),
                None => self.previous(&tenant, &device, &inventory).await,
            };
            let changes = facts::changes(previous.as_ref(), &inventory, received_at);
            let drift = previous
                .as_ref()
                .map(|p| drift::detect(p, &inventory))
                .unwrap_or_default();
            for d in &drift {
                metrics::counter!("garrison_inventory_drift_total", "kind" => d.kind.clone())
                    .increment(1);
                tracing::info!(%device, kind = %d.kind, severity = %d.severity, detail = %d.detail, "Configuration drift");
            }
            for d in &drift {
                self.observe(Observation::Drift {
                    device: device.clone(),
                    at: received_at,
                    drift: d.clone(),
                });
            }
            latest.insert(device.clone(), writes.len());
            writes.push(InventoryWrite {
                tenant: tenant.clone(),
                summary: facts::summarize(&inventory),
                device,
                received_at,
                inventory: *inventory,
                changes,
                drift,
            });
        }
        write_durably(
            self.store.as_ref(),
            "inventory reports",
            Rows::Inventory(&writes),
        )
        .await;
        // Devices whose writes were lost are still re-evaluated: the audit reads the store.
        let mut changed = Vec::with_capacity(latest.len());
        for w in writes {
            if latest.remove(&w.device).is_some() {
                changed.push(w.device.clone());
            }
            self.index
                .apply_inventory(&w.device, w.summary, w.received_at);
        }
        // Nobody listening (no posture audit) is fine.
        let _ = self.changed.send(changed);
    }

    /// The device's previous report for diffing. Its SBOM is read only when the new report's
    /// software differs from the stored digest, so unchanged software costs nothing.
    async fn previous(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        new: &Inventory,
    ) -> Option<Inventory> {
        let snapshot = match self.store.inventory_get(tenant, device, false).await {
            Ok(s) => s?,
            Err(e) => {
                tracing::error!(%device, error = %e, "Cannot read the previous inventory; diffing against none");
                return None;
            }
        };
        let new_digest = facts::summarize(new).software_digest;
        if new.software.is_none() || new_digest == snapshot.summary.software_digest {
            let mut previous = snapshot.inventory;
            // Same software (or none reported now): compare as if unchanged.
            previous.software = new.software.clone();
            return Some(previous);
        }
        match self.store.inventory_get(tenant, device, true).await {
            Ok(s) => s.map(|s| s.inventory),
            Err(e) => {
                tracing::error!(%device, error = %e, "Cannot read the previous SBOM; diffing against none");
                None
            }
        }
    }

    /// Counts a refused message, and logs it unless this device's refusals were logged less
    /// than [`REFUSAL_LOG_INTERVAL`] ago: a device sending garbage flat out must not turn
    /// every message into a log line (that cost more than receiving it, and floods the log).
    /// The next line says how many went unlogged.
    fn reject(
        &mut self,
        device: &DeviceId,
        channel: &'static str,
        reason: &'static str,
        // Formatted only when logged.
        detail: &dyn std::fmt::Display,
    ) {
        metrics::counter!("garrison_inventory_reports_rejected_total", "channel" => channel, "reason" => reason).increment(1);
        let now = std::time::Instant::now();
        if let Some((logged_at, unlogged)) = self.refusals_logged.get_mut(device)
            && now.duration_since(*logged_at) < REFUSAL_LOG_INTERVAL
        {
            *unlogged += 1;
            return;
        }
        let unlogged = self
            .refusals_logged
            .insert(device.clone(), (now, 0))
            .map_or(0, |(_, n)| n);
        tracing::warn!(
            %device,
            channel,
            reason,
            %detail,
            refused_since_last_line = unlogged,
            "Refused a device message"
        );
    }

    /// A message from `device` arrived at `at`, so it is online. The common case, a device
    /// already marked online in this flush interval, only moves its last-seen time, without
    /// the allocations of a full presence update (this runs for every message).
    fn seen_message(&mut self, device: &DeviceId, at: UnixMillis) {
        if let Some(pending) = self.presence.get_mut(device)
            && pending.online == Some(true)
        {
            if at > pending.at {
                pending.at = at;
                self.index.touch(device, at);
            }
            return;
        }
        self.seen(device, at, |u| u.online = Some(true));
    }

    /// Folds a presence observation into the pending flush and the index.
    fn seen(
        &mut self,
        device: &DeviceId,
        at: UnixMillis,
        change: impl FnOnce(&mut PresenceUpdate),
    ) {
        let mut update = PresenceUpdate {
            tenant: self.settings.tenant.clone(),
            device: device.clone(),
            at,
            online: None,
            address: None,
            agent: None,
            telemetry: None,
            destinations: BTreeMap::new(),
        };
        change(&mut update);
        self.index.apply_presence(&update);
        let destinations = std::mem::take(&mut update.destinations);
        let pending = self
            .presence
            .entry(device.clone())
            .or_insert_with(|| update.clone());
        pending.at = pending.at.max(update.at);
        if update.online.is_some() {
            pending.online = update.online;
        }
        if update.address.is_some() {
            pending.address = update.address;
        }
        if update.agent.is_some() {
            pending.agent = update.agent;
        }
        if update.telemetry.is_some() {
            pending.telemetry = update.telemetry;
        }
        for (address, seen) in destinations {
            if let Some(known) = pending.destinations.get_mut(&address) {
                known.merge(seen);
            } else if pending.destinations.len() < MAX_DESTINATIONS_PER_FLUSH {
                pending.destinations.insert(address, seen);
            } else {
                metrics::counter!("garrison_inventory_destinations_dropped_total").increment(1);
            }
        }
    }

    /// A private address no managed device has is an unmanaged device on the devices' network.
    fn maybe_unmanaged(
        &mut self,
        kind: SightingKind,
        address: &str,
        by: &DeviceId,
        at: UnixMillis,
    ) {
        let Ok(ip) = address.parse::<IpAddr>() else {
            return;
        };
        if !is_local_network(ip) || self.index.device_at(address).is_some() {
            return;
        }
        self.sight(
            kind,
            String::new(),
            address.to_owned(),
            at,
            format!("seen by {by}"),
        );
    }

    fn sight(
        &mut self,
        kind: SightingKind,
        identity: String,
        address: String,
        at: UnixMillis,
        detail: String,
    ) {
        metrics::counter!("garrison_inventory_unmanaged_sightings_total", "kind" => kind.as_str())
            .increment(1);
        // Within one flush interval, the first sighting of each identity/address is enough,
        // and at most MAX_SIGHTINGS_PER_FLUSH new ones are kept: a flood cannot grow the table
        // faster than that.
        if self.sightings.len() >= MAX_SIGHTINGS_PER_FLUSH {
            metrics::counter!("garrison_inventory_unmanaged_sightings_dropped_total").increment(1);
            return;
        }
        if self
            .seen_sightings
            .insert((kind, identity.clone(), address.clone()))
        {
            self.sightings.push(Sighting {
                tenant: self.settings.tenant.clone(),
                kind,
                identity,
                address,
                at,
                detail,
            });
        }
    }

    async fn ensure_known(&self, device: &DeviceId) {
        if self.index.contains(device) {
            return;
        }
        // Enrolled since the index was loaded.
        match self.store.device_get(&self.settings.tenant, device).await {
            Ok(Some(d)) => self.index.upsert_device(&d),
            Ok(None) => tracing::warn!(%device, "A message from a device the store does not know"),
            Err(e) => tracing::warn!(%device, error = %e, "Cannot look a device up"),
        }
    }

    /// Writes pending presence and sightings.
    pub async fn flush(&mut self) {
        if !self.presence.is_empty() {
            let updates: Vec<PresenceUpdate> = self.presence.drain().map(|(_, u)| u).collect();
            write_durably(self.store.as_ref(), "presence", Rows::Presence(&updates)).await;
        }
        if !self.sightings.is_empty() {
            let sightings = std::mem::take(&mut self.sightings);
            self.seen_sightings.clear();
            write_durably(
                self.store.as_ref(),
                "unmanaged sightings",
                Rows::Sightings(&sightings),
            )
            .await;
        }
    }
}

/// Writes `items`, retrying until it succeeds: a store that is down or busy holds the
/// intake back (and with it the publishers), it does not lose what was acknowledged. A
/// write that fails for good (bad data) is retried item by item, and only the items that
/// fail alone are given up — counted and logged.
async fn write_durably(store: &dyn Store, what: &str, items: Rows<'_>) {
    let mut delay = Duration::from_millis(50);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started = std::time::Instant::now();
        let result = items.write(store).await;
        metrics::histogram!("garrison_inventory_write_seconds", "what" => items.kind())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => return,
            Err(e) if e.is_transient() => {
                if attempt == 1 || attempt.is_multiple_of(20) {
                    tracing::warn!(what, attempt, error = %e, "The store is unavailable; holding the intake until it is back");
                }
                metrics::counter!("garrison_inventory_write_retries_total").increment(1);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) if items.len() > 1 => {
                tracing::warn!(what, count = items.len(), error = %e, "A batch write failed; writing its items one by one");
                for i in 0..items.len() {
                    write_one(store, what, items.item(i)).await;
                }
                return;
            }
            Err(e) => {
                metrics::counter!("garrison_inventory_write_failures_total").increment(1);
                tracing::error!(what, error = %e, "A store write failed for good; this item is lost");
                return;
            }
        }
    }
}

/// One item of a batch that failed for good: retried while the store is unavailable,
/// given up when it fails by itself.
async fn write_one(store: &dyn Store, what: &str, item: Rows<'_>) {
    let mut delay = Duration::from_millis(50);
    loop {
        match item.write(store).await {
            Ok(()) => return,
            Err(e) if e.is_transient() => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                metrics::counter!("garrison_inventory_write_failures_total").increment(1);
                tracing::error!(what, error = %e, "A store write failed for good; this item is lost");
                return;
            }
        }
    }
}

/// Writes the device events the intake queues, taking every batch waiting when the previous
/// write ends (up to [`MAX_EVENTS_PER_WRITE`]) into one transaction: under load one commit
/// (one fsync) covers many batches, and a slow commit delays the writing of events, not their
/// decoding or their detection. Returns once the queue is closed and drained.
async fn write_events(store: Arc<dyn Store>, mut queued: mpsc::UnboundedReceiver<QueuedEvents>) {
    let mut batches = Vec::new();
    loop {
        if queued.recv_many(&mut batches, 1024).await == 0 {
            return;
        }
        let mut events: Vec<NewDeviceEvent> = Vec::new();
        // Queue room is given back once the events holding it are written.
        let mut rooms = Vec::new();
        for batch in batches.drain(..) {
            if events.len() + batch.events.len() > MAX_EVENTS_PER_WRITE && !events.is_empty() {
                write_counted(store.as_ref(), &events).await;
                events.clear();
                rooms.clear();
            }
            events.extend(batch.events);
            rooms.push(batch.room);
        }
        write_counted(store.as_ref(), &events).await;
    }
}

/// Writes events (see [`write_durably`]) and counts them written.
async fn write_counted(store: &dyn Store, events: &[NewDeviceEvent]) {
    write_durably(store, "device events", Rows::Events(events)).await;
    metrics::counter!("garrison_inventory_events_written_total").increment(events.len() as u64);
}

/// What the intake writes, in batches.
#[derive(Clone, Copy)]
enum Rows<'a> {
    Inventory(&'a [InventoryWrite]),
    Events(&'a [NewDeviceEvent]),
    Presence(&'a [PresenceUpdate]),
    Sightings(&'a [Sighting]),
}

impl Rows<'_> {
    /// What they are, for metrics.
    fn kind(&self) -> &'static str {
        match self {
            Rows::Inventory(_) => "inventory",
            Rows::Events(_) => "events",
            Rows::Presence(_) => "presence",
            Rows::Sightings(_) => "sightings",
        }
    }

    fn len(&self) -> usize {
        match self {
            Rows::Inventory(r) => r.len(),
            Rows::Events(r) => r.len(),
            Rows::Presence(r) => r.len(),
            Rows::Sightings(r) => r.len(),
        }
    }

    /// The `i`th row alone (`i < len()`).
    fn item(&self, i: usize) -> Rows<'_> {
        match self {
            Rows::Inventory(r) => Rows::Inventory(r.get(i..=i).unwrap_or_default()),
            Rows::Events(r) => Rows::Events(r.get(i..=i).unwrap_or_default()),
            Rows::Presence(r) => Rows::Presence(r.get(i..=i).unwrap_or_default()),
            Rows::Sightings(r) => Rows::Sightings(r.get(i..=i).unwrap_or_default()),
        }
    }

    async fn write(&self, store: &dyn Store) -> Result<(), StoreError> {
        match self {
            Rows::Inventory(r) => store.inventory_record_batch(r).await,
            Rows::Events(r) => store.device_events_append(r).await,
            Rows::Presence(r) => store.presence_record_batch(r).await,
            Rows::Sightings(r) => store.unmanaged_record_batch(r).await,
        }
    }
}

/// The channel of a device's own topic.
fn topic_channel(device: &DeviceId, topic: &str) -> Option<Channel> {
    let (named, channel) = Channel::of_topic(topic)?;
    (named == device.as_str()).then_some(channel)
}

/// Private, unique-local and link-local addresses: where a fleet's own devices live.
fn is_local_network(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use garrison_core::device::EnrollmentMethod;
    use garrison_store::{PageRequest, identity::Device};

    #[tokio::test]
    async fn every_event_queued_is_written_and_observed_before_run_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            garrison_store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
                .await
                .unwrap();
        store.migrate().await.unwrap();
        let tenant = TenantId::default();
        let index = Arc::new(FleetIndex::new(tenant.clone()));
        let device = DeviceId::new("cam-1").unwrap();
        index.upsert_device(&Device {
            tenant: tenant.clone(),
            id: device.clone(),
            quarantined: false,
            enrolled_via: EnrollmentMethod::Token,
            current_serial: None,
            created_at: 0,
            updated_at: 0,
            rotation_requested_at: None,
        });
        let (observer, mut observed) = mpsc::channel(1024);
        let (changed, _) = broadcast::channel(16);
        let ingestor = Ingestor::new(
            store.clone(),
            index,
            IngestSettings::new(tenant.clone()),
            changed,
        )
        .with_observer(observer);
        let (incoming, queue) = mpsc::channel(16);
        let run = tokio::spawn(ingestor.run(queue));
        let messages = 300;
        for m in 0..messages {
            let events: Vec<String> = (0..10)
                .map(|e| format!(r#"{{"at":{},"kind":"process_started","name":"p{m}-{e}","path":"/bin/p","pid":1,"user":"root"}}"#, 1_765_000_000_000i64 + m))
                .collect();
            incoming
                .send(Incoming::Message {
                    device: device.clone(),
                    topic: "garrison/v1/d/cam-1/events".into(),
                    payload: Bytes::from(format!(
                        r#"{{"schema":1,"events":[{}]}}"#,
                        events.join(",")
                    )),
                    received_at: 1_765_000_000_000 + m,
                })
                .await
                .unwrap();
        }
        // Closing the intake is a shutdown: `run` returns only once the writer has drained.
        drop(incoming);
        run.await.unwrap();

        let mut stored = 0;
        let mut page = PageRequest::first(1000);
        loop {
            let got = store
                .device_events_list(&tenant, Some(&device), &page)
                .await
                .unwrap();
            stored += got.items.len();
            match got.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
        assert_eq!(stored, messages as usize * 10);
        let mut seen = 0;
        while let Ok(batch) = observed.try_recv() {
            for observation in batch {
                if let Observation::Events { events, .. } = observation {
                    seen += events.len();
                }
            }
        }
        assert_eq!(seen, messages as usize * 10);
    }
}
