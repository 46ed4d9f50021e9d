//! The monitoring pipeline and the response service.
//!
//! [`Monitor`] consumes what the intake observed, in order: normalise each observation
//! ([`crate::event`]), enrich it (the device's model, firmware, class and groups from the fleet
//! index; whether a connection comes from a network new for the device), run detection, turn
//! detections into alerts (deduplicated per rule and device while open), and hand every newly
//! opened alert to the [`ResponseService`], which runs the playbooks that match it.
//!
//! A response is recorded (`started`, audited) *before* it is carried out and updated after,
//! so the audit chain reads alert → action → its effect → enforcement. Quarantine is watched
//! until the broker is seen refusing the device, which is recorded once as `response.enforced`.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use garrison_core::{
    DeviceId, Severity, TenantId, UnixMillis,
    audit::{Actor, AuditRecord},
};
use garrison_detect::{Detection, DetectionKind, Detector};
use garrison_inventory::{FleetIndex, Observation};
use garrison_store::{
    Store,
    monitor::{Alert, NewAlert, NewResponse, ResponseAction, ResponseChange, ResponseStatus},
};
use garrison_syslog::SyslogRecord;
use tokio::sync::mpsc;

use crate::{
    MonitorError,
    baseline::{Anomaly, BaselineSettings, Baselines, Metric, PeerGroup},
    event::{DeviceRef, SecurityEvent, normalise, syslog_event},
    feeds::Hunt,
    intel::{SharedIntel, ThreatIntel},
    playbook::{ActionKind, Playbook},
    respond::{Cause, Responder, Webhooks},
    siem::SiemForwarder,
};

/// The detail of a quarantine action that found the device already quarantined.
const ALREADY_QUARANTINED: &str = "already quarantined";

/// Syslog records detected per batch.
const SYSLOG_BATCH: usize = 512;

/// Networks remembered per device for "certificate used from a new network".
const NETWORKS_PER_DEVICE: usize = 16;

/// What one batch did, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorOutcome {
    /// Normalised events.
    pub events: usize,
    /// Rules that fired.
    pub detections: usize,
    /// Alerts opened.
    pub opened: usize,
    /// Response actions recorded.
    pub responses: usize,
}

/// The rule id of retro-hunt alerts.
pub const RETRO_HUNT_RULE: &str = "garrison.intel.retro_hunt";

/// What a retro-hunt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HuntOutcome {
    /// Stored events looked at.
    pub scanned: usize,
    /// Stored telemetry destinations (device and address) looked at.
    pub destinations_scanned: usize,
    /// Events and destinations that matched an indicator.
    pub matches: usize,
    /// Alerts opened (matches of one device and indicator join one alert).
    pub alerts_opened: usize,
    /// `false` when reading the store failed part way.
    pub complete: bool,
}

impl Default for HuntOutcome {
    fn default() -> Self {
        HuntOutcome {
            scanned: 0,
            destinations_scanned: 0,
            matches: 0,
            alerts_opened: 0,
            complete: true,
        }
    }
}

/// The monitoring pipeline. Create with [`Monitor::new`], then [`Monitor::run`] it on the
/// intake's observations.
pub struct Monitor {
    tenant: TenantId,
    store: Arc<dyn Store>,
    index: Arc<FleetIndex>,
    detector: Detector,
    responses: ResponseService,
    networks: HashMap<DeviceId, VecDeque<String>>,
    intel: SharedIntel,
    baselines: Option<Baselines>,
    /// When the baselines were last saved.
    baselines_saved_at: UnixMillis,
    hunts: Option<(mpsc::Receiver<Hunt>, u64)>,
}

/// The name the baselines are saved under ([`Store::monitor_state_put`]).
const BASELINES_STATE: &str = "baselines";

impl Monitor {
    /// A pipeline detecting with `detector` and responding through `responses`.
    pub fn new(
        store: Arc<dyn Store>,
        index: Arc<FleetIndex>,
        detector: Detector,
        responses: ResponseService,
    ) -> Monitor {
        Monitor {
            tenant: index.tenant().clone(),
            store,
            index,
            detector,
            responses,
            networks: HashMap::new(),
            intel: SharedIntel::default(),
            baselines: None,
            baselines_saved_at: garrison_core::now_ms(),
            hunts: None,
        }
    }

    /// Learns behaviour baselines and raises an explained alert for each anomaly
    /// ([`crate::baseline`]); [`Monitor::run`] closes a window every `settings.window_ms`.
    pub fn with_baselines(mut self, settings: BaselineSettings) -> Monitor {
        self.baselines = Some(Baselines::new(settings, garrison_core::now_ms()));
        self
    }

    /// Enriches every event with these indicators (`threat.*`) before detection.
    pub fn with_intel(mut self, intel: ThreatIntel) -> Monitor {
        self.intel = SharedIntel::new(intel);
        self
    }

    /// Enriches every event with the indicators in force in `intel`, which an
    /// [`IntelService`](crate::feeds::IntelService) replaces as sources are imported.
    pub fn with_shared_intel(mut self, intel: SharedIntel) -> Monitor {
        self.intel = intel;
        self
    }

    /// Runs each requested retro-hunt over the device events stored in the last
    /// `lookback_ms`.
    pub fn with_hunts(mut self, hunts: mpsc::Receiver<Hunt>, lookback_ms: u64) -> Monitor {
        self.hunts = Some((hunts, lookback_ms));
        self
    }

    /// Consumes observations until the intake closes the channel, and syslog records while
    /// their listeners run.
    pub async fn run(
        mut self,
        mut observations: mpsc::Receiver<Vec<Observation>>,
        mut syslog: Option<mpsc::Receiver<SyslogRecord>>,
    ) {
        let mut records = Vec::with_capacity(SYSLOG_BATCH);
        let window = self
            .baselines
            .as_ref()
            .map_or(Duration::from_secs(3600), |b| {
                Duration::from_millis(b.settings().window_ms.max(100))
            });
        let mut windows = tokio::time::interval_at(tokio::time::Instant::now() + window, window);
        windows.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut hunts, lookback_ms) = match self.hunts.take() {
            Some((hunts, lookback)) => (Some(hunts), lookback),
            None => (None, 0),
        };
        self.restore_baselines().await;
        loop {
            tokio::select! {
                hunt = async {
                    match hunts.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match hunt {
                    Some(hunt) => {
                        self.retro_hunt(hunt, lookback_ms).await;
                    }
                    None => hunts = None,
                },
                _ = windows.tick(), if self.baselines.is_some() => {
                    self.close_window(garrison_core::now_ms()).await;
                }
                batch = observations.recv() => match batch {
                    Some(batch) => {
                        self.handle(batch).await;
                    }
                    None => {
                        // The intake has stopped: keep what was learnt for the next start.
                        if let Some(save) = self.save_baselines() {
                            let _ = save.await;
                        }
                        return;
                    }
                },
                n = async {
                    match syslog.as_mut() {
                        Some(rx) => rx.recv_many(&mut records, SYSLOG_BATCH).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if n == 0 {
                        syslog = None;
                    } else {
                        let events = records.drain(..).map(|r| syslog_event(&r)).collect();
                        self.detect(events, None).await;
                    }
                }
            }
        }
    }

    /// Handles one batch of observations.
    pub async fn handle(&mut self, batch: Vec<Observation>) -> MonitorOutcome {
        let mut events = Vec::new();
        for observation in &batch {
            if let Observation::AccessRefused {
                device, reason, at, ..
            } = observation
                && reason == "quarantined"
            {
                self.responses.observe_enforcement(device, *at).await;
            }
            if let Some(baselines) = self.baselines.as_mut() {
                baselines.observe(observation);
                // A refused connection counts against the device whose certificate it used.
                if let Observation::ConnectRefused {
                    common_name: Some(cn),
                    ..
                } = observation
                    && let Ok(device) = DeviceId::new(cn)
                    && self.index.contains(&device)
                {
                    baselines.add(&device, Metric::AuthFailures, 1.0);
                }
            }
            for event in normalise(observation) {
                events.push((event, Some(observation)));
            }
        }
        let (events, observations): (Vec<_>, Vec<_>) = events.into_iter().unzip();
        let outcome = self.detect(events, Some(&observations)).await;
        // How far behind the broker detection runs: from a message's arrival to its verdict
        // (alerts recorded, playbooks started).
        let done = garrison_core::now_ms();
        let lag = metrics::histogram!("garrison_monitor_lag_seconds");
        for observation in &batch {
            if let Observation::Events { received_at, .. }
            | Observation::Telemetry { received_at, .. } = observation
            {
                lag.record((done - received_at).max(0) as f64 / 1000.0);
            }
        }
        outcome
    }

    /// Enriches and detects over normalised events (with the observations they came from,
    /// when they came from the intake), then records alerts and runs playbooks.
    async fn detect(
        &mut self,
        events: Vec<SecurityEvent>,
        observations: Option<&[Option<&Observation>]>,
    ) -> MonitorOutcome {
        let mut outcome = MonitorOutcome::default();
        let mut devices: HashMap<String, Option<DeviceRef>> = HashMap::new();
        let mut alerts = Vec::new();
        let now = garrison_core::now_ms();
        let intel = self.intel.current();
        // Counted per batch: a metrics look-up per event showed in profiles.
        let mut categories: HashMap<&'static str, u64> = HashMap::new();
        for (i, mut event) in events.into_iter().enumerate() {
            outcome.events += 1;
            *categories.entry(event.category).or_default() += 1;
            let observation = observations.and_then(|o| o.get(i).copied().flatten());
            self.enrich(&mut event, observation, &mut devices);
            intel.enrich(&mut event, now);
            let json = event.to_json();
            for detection in self.detector.process(&json) {
                outcome.detections += 1;
                metrics::counter!("garrison_monitor_detections_total").increment(1);
                alerts.push(self.alert(&event, json.clone(), detection));
            }
        }
        for (category, count) in categories {
            metrics::counter!("garrison_monitor_events_total", "category" => category)
                .increment(count);
        }
        self.raise(alerts, &mut outcome).await;
        outcome
    }

    /// Looks for a newly imported source's indicators in what was stored in the last
    /// `lookback_ms` — the device events, newest first, and the remote addresses devices
    /// reported in telemetry — and raises an alert per device and indicator found: what the
    /// indicator would have caught had it been known. Audited as `intel.retro_hunt` with what
    /// was scanned and found.
    pub async fn retro_hunt(&mut self, hunt: Hunt, lookback_ms: u64) -> HuntOutcome {
        let started = std::time::Instant::now();
        let now = garrison_core::now_ms();
        let since = now.saturating_sub(i64::try_from(lookback_ms).unwrap_or(i64::MAX));
        let mut found = HuntOutcome::default();
        let mut alerts: Vec<NewAlert> = Vec::new();
        let mut devices = HashMap::new();
        let mut page = garrison_store::PageRequest::first(500);
        'pages: loop {
            let events = match self
                .store
                .device_events_list(&self.tenant, None, &page)
                .await
            {
                Ok(events) => events,
                Err(e) => {
                    tracing::error!(source = %hunt.source, error = %e, "The retro-hunt could not read stored events; it stopped early");
                    found.complete = false;
                    break;
                }
            };
            for stored in events.items {
                let stored = stored.event;
                if stored.received_at < since {
                    break 'pages;
                }
                found.scanned += 1;
                let Ok(event) =
                    serde_json::from_value::<garrison_contract::DeviceEvent>(stored.body)
                else {
                    continue;
                };
                let observation = Observation::Events {
                    device: stored.device,
                    received_at: stored.received_at,
                    events: vec![event],
                };
                for mut event in normalise(&observation) {
                    self.enrich(&mut event, None, &mut devices);
                    hunt.intel.enrich(&mut event, now);
                    let Some(threat) = event.threat.clone() else {
                        continue;
                    };
                    found.matches += 1;
                    let device = event.device_id().and_then(|d| DeviceId::new(d).ok());
                    alerts.push(self.hunt_alert(
                        &hunt,
                        now,
                        device,
                        &threat.indicator,
                        event.time,
                        ("event", event.to_json()),
                    ));
                }
            }
            match events.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
        // Telemetry is not kept per report; its destinations are, per device and address.
        let mut page = garrison_store::PageRequest::first(500);
        loop {
            let destinations = match self
                .store
                .device_destinations_list(&self.tenant, None, since, &page)
                .await
            {
                Ok(destinations) => destinations,
                Err(e) => {
                    tracing::error!(source = %hunt.source, error = %e, "The retro-hunt could not read telemetry destinations; it stopped early");
                    found.complete = false;
                    break;
                }
            };
            for destination in destinations.items {
                found.destinations_scanned += 1;
                let Some(indicator) = hunt.intel.address(&destination.address, now) else {
                    continue;
                };
                found.matches += 1;
                let threat = indicator.threat("telemetry.destinations");
                let seen = destination.seen;
                alerts.push(self.hunt_alert(
                    &hunt,
                    now,
                    Some(destination.device),
                    &threat.indicator,
                    seen.last_seen,
                    (
                        "destination",
                        serde_json::json!({
                            "address": destination.address,
                            "first_seen": seen.first_seen,
                            "last_seen": seen.last_seen,
                            "reports": seen.reports,
                            "threat": threat,
                        }),
                    ),
                ));
            }
            match destinations.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
        let mut outcome = MonitorOutcome::default();
        self.raise(alerts, &mut outcome).await;
        found.alerts_opened = outcome.opened;
        let record = AuditRecord::new(
            &self.tenant,
            Actor::system("retro-hunt"),
            "intel.retro_hunt",
            format!("intel:{}", hunt.source),
        )
        .after(serde_json::json!({
            "events_scanned": found.scanned,
            "destinations_scanned": found.destinations_scanned, "matches": found.matches,
            "alerts_opened": found.alerts_opened, "complete": found.complete,
            "lookback_ms": lookback_ms,
        }));
        if let Err(e) = self.store.audit_append(record).await {
            tracing::error!(error = %e, "Could not audit the retro-hunt");
        }
        tracing::info!(
            source = %hunt.source,
            scanned = found.scanned,
            destinations = found.destinations_scanned,
            matches = found.matches,
            seconds = started.elapsed().as_secs_f64(),
            "Retro-hunt done"
        );
        found
    }

    /// A retro-hunt alert: one per device and indicator (its dedup key), whatever stored
    /// record (`evidence`, named) showed the match.
    fn hunt_alert(
        &self,
        hunt: &Hunt,
        now: UnixMillis,
        device: Option<DeviceId>,
        indicator: &str,
        at: UnixMillis,
        evidence: (&str, serde_json::Value),
    ) -> NewAlert {
        let mut body = serde_json::json!({
            "retro_hunt": {"source": hunt.source, "imported_at": now},
        });
        body[evidence.0] = evidence.1;
        NewAlert {
            tenant: self.tenant.clone(),
            dedup_key: format!(
                "{RETRO_HUNT_RULE}|{}|{indicator}",
                device.as_ref().map_or("", DeviceId::as_str),
            ),
            rule_id: RETRO_HUNT_RULE.to_owned(),
            title: "Stored activity matches a newly imported threat indicator".to_owned(),
            severity: Severity::High,
            device,
            techniques: vec!["T1071".to_owned()],
            tags: vec!["garrison.retro_hunt".to_owned()],
            at,
            evidence: body,
        }
    }

    /// Closes the baselines' open window at `now` and raises an alert for each anomaly.
    pub async fn close_window(&mut self, now: UnixMillis) -> MonitorOutcome {
        let mut outcome = MonitorOutcome::default();
        let Some(baselines) = self.baselines.as_mut() else {
            return outcome;
        };
        let index = &self.index;
        let anomalies = baselines.close(now, |device| {
            let summary = index.get(device)?.summary?;
            Some(PeerGroup {
                model: summary.model?,
                firmware: summary.firmware?,
            })
        });
        baselines.retain_devices(|d| index.contains(d));
        let status = baselines.status();
        metrics::gauge!("garrison_monitor_baseline_devices").set(status.devices as f64);
        metrics::gauge!("garrison_monitor_baseline_mature_devices").set(status.mature as f64);
        outcome.detections = anomalies.len();
        metrics::counter!("garrison_monitor_anomalies_total").increment(anomalies.len() as u64);
        let alerts = anomalies.iter().map(|a| self.anomaly_alert(a)).collect();
        self.raise(alerts, &mut outcome).await;
        let every = self
            .baselines
            .as_ref()
            .map_or(0, |b| b.settings().save_interval_ms);
        if every > 0 && now.saturating_sub(self.baselines_saved_at) >= every as i64 {
            // Written in the background: detection waits only for the encoding.
            drop(self.save_baselines());
        }
        outcome
    }

    /// Loads the baselines saved by a previous run, if any and if they fit the settings.
    pub async fn restore_baselines(&mut self) {
        let Some(baselines) = self.baselines.as_mut() else {
            return;
        };
        match self
            .store
            .monitor_state_get(&self.tenant, BASELINES_STATE)
            .await
        {
            Ok(Some((bytes, saved_at))) => match baselines.restore(&bytes) {
                Ok(devices) => tracing::info!(
                    devices,
                    saved_at = %garrison_core::format_ms(saved_at),
                    "Restored behaviour baselines"
                ),
                Err(reason) => tracing::warn!(
                    %reason,
                    "Starting behaviour baselines afresh; devices are judged by their peers until they have history again"
                ),
            },
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "Cannot read the saved behaviour baselines"),
        }
    }

    /// Saves the baselines' history; the returned task does the store write.
    pub fn save_baselines(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let baselines = self.baselines.as_ref()?;
        let now = garrison_core::now_ms();
        self.baselines_saved_at = now;
        // Only the copy is made here; encoding (CBOR, gzip) runs on a blocking thread so
        // detection does not wait for it.
        let copy = baselines.snapshot();
        let (store, tenant) = (self.store.clone(), self.tenant.clone());
        Some(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let snapshot = match tokio::task::spawn_blocking(move || copy.encode()).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::error!(error = %e, "Cannot encode the behaviour baselines");
                    return;
                }
            };
            match store
                .monitor_state_put(&tenant, BASELINES_STATE, &snapshot, now)
                .await
            {
                Ok(()) => {
                    metrics::histogram!("garrison_monitor_baseline_save_seconds")
                        .record(started.elapsed().as_secs_f64());
                    tracing::debug!(bytes = snapshot.len(), "Saved behaviour baselines");
                }
                Err(e) => tracing::error!(error = %e, "Cannot save the behaviour baselines"),
            }
        }))
    }

    fn anomaly_alert(&self, anomaly: &Anomaly) -> NewAlert {
        let metric = anomaly.metric;
        let rule_id = format!("garrison.baseline.{}", metric.name());
        let severity = if anomaly.observed > 5.0 * anomaly.limit() {
            Severity::High
        } else {
            Severity::Medium
        };
        NewAlert {
            tenant: self.tenant.clone(),
            dedup_key: format!("{rule_id}|{}", anomaly.device),
            rule_id,
            title: format!("Anomalous {} (behaviour baseline)", metric.label()),
            severity,
            device: Some(anomaly.device.clone()),
            techniques: metric.technique().into_iter().map(str::to_owned).collect(),
            tags: vec!["garrison.anomaly".to_owned()],
            at: anomaly.window_end,
            evidence: anomaly.evidence(),
        }
    }

    /// Records detections as alerts and runs the playbooks of those newly opened.
    async fn raise(&mut self, alerts: Vec<NewAlert>, outcome: &mut MonitorOutcome) {
        if alerts.is_empty() {
            return;
        }
        let raised = loop {
            let started = std::time::Instant::now();
            let result = self.store.alerts_raise(&alerts).await;
            metrics::histogram!("garrison_monitor_alert_write_seconds")
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(raised) => break raised,
                // Detections are not acknowledged to anyone, but losing one loses an alert:
                // hold the pipeline (and through it the intake) until the store is back.
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "Store unavailable; retrying the alerts");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, count = alerts.len(), "Could not record alerts");
                    metrics::counter!("garrison_monitor_alerts_failed_total")
                        .increment(alerts.len() as u64);
                    return;
                }
            }
        };
        for r in raised.into_iter().filter(|r| r.opened) {
            outcome.opened += 1;
            metrics::counter!("garrison_monitor_alerts_opened_total", "severity" => r.alert.severity.as_str()).increment(1);
            tracing::warn!(
                alert = %r.alert.id,
                rule = %r.alert.title,
                device = ?r.alert.device.as_ref().map(DeviceId::as_str),
                severity = %r.alert.severity,
                "Alert opened"
            );
            outcome.responses += self.responses.on_alert(&r.alert).await.len();
        }
    }

    fn enrich(
        &mut self,
        event: &mut SecurityEvent,
        observation: Option<&Observation>,
        devices: &mut HashMap<String, Option<DeviceRef>>,
    ) {
        // A syslog message names its device by HOSTNAME, when that is a managed device's id.
        if event.device.is_none()
            && let Some(host) = event.syslog.as_ref().and_then(|s| s.hostname.clone())
            && DeviceId::new(&host).is_ok_and(|d| self.index.contains(&d))
        {
            event.device = Some(DeviceRef {
                id: host,
                ..DeviceRef::default()
            });
        }
        let Some(id) = event.device_id().map(str::to_owned) else {
            return;
        };
        let known = devices
            .entry(id.clone())
            .or_insert_with(|| {
                let device = DeviceId::new(&id).ok()?;
                let record = self.index.get(&device)?;
                let summary = record.summary.as_ref();
                Some(DeviceRef {
                    id: id.clone(),
                    model: summary.and_then(|s| s.model.clone()),
                    firmware: summary.and_then(|s| s.firmware.clone()),
                    class: summary.and_then(|s| s.class.clone()),
                    groups: record.groups().cloned().collect(),
                })
            })
            .clone();
        if let Some(known) = known {
            event.device = Some(known);
        }
        if let Some(Observation::Connected {
            device,
            address: Some(address),
            ..
        }) = observation
            && let Some(src) = event.src_endpoint.as_mut()
        {
            let network = network_of(address);
            let seen = self.networks.entry(device.clone()).or_default();
            let new = !seen.is_empty() && !seen.contains(&network);
            src.new_network = Some(new);
            if !seen.contains(&network) {
                if seen.len() == NETWORKS_PER_DEVICE {
                    seen.pop_front();
                }
                seen.push_back(network);
            }
        }
    }

    fn alert(
        &self,
        event: &SecurityEvent,
        json: serde_json::Value,
        detection: Detection,
    ) -> NewAlert {
        let rule_id = detection
            .rule_id
            .clone()
            .unwrap_or_else(|| detection.title.clone());
        let (device, evidence) = match &detection.kind {
            DetectionKind::Match { fields, .. } => (
                event.device_id().map(str::to_owned),
                serde_json::json!({"event": json, "matched": fields}),
            ),
            DetectionKind::Correlation {
                correlation_type,
                group,
                value,
                window_secs,
            } => (
                group
                    .iter()
                    .find(|(k, _)| k == "device.id")
                    .map(|(_, v)| v.clone())
                    .or_else(|| event.device_id().map(str::to_owned)),
                serde_json::json!({
                    "correlation": correlation_type, "group": group, "value": value,
                    "window_secs": window_secs, "event": json,
                }),
            ),
        };
        let device = device.and_then(|d| DeviceId::new(d).ok());
        let subject = match (&device, &detection.kind) {
            (Some(d), _) => d.to_string(),
            (None, DetectionKind::Correlation { group, .. }) => group
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            (None, DetectionKind::Match { .. }) => String::new(),
        };
        let (mut techniques, mut tags) = (Vec::new(), Vec::new());
        for tag in &detection.tags {
            match technique(tag) {
                Some(id) => techniques.push(id),
                None => tags.push(tag.clone()),
            }
        }
        NewAlert {
            tenant: self.tenant.clone(),
            dedup_key: format!("{rule_id}|{subject}"),
            rule_id,
            title: detection.title,
            severity: detection.severity,
            device,
            techniques,
            tags,
            at: event.received_time,
            evidence,
        }
    }
}

/// `T1110.001` for `attack.t1110.001`, `T0812` for `attack.ics.t0812` (ICS) — Sigma's tags.
fn technique(tag: &str) -> Option<String> {
    let id = tag
        .strip_prefix("attack.")
        .map(|t| t.strip_prefix("ics.").unwrap_or(t))?;
    let digits = id.strip_prefix('t')?;
    let (main, sub) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = main.len() == 4
        && main.bytes().all(|b| b.is_ascii_digit())
        && (sub.is_empty() || (sub.len() == 3 && sub.bytes().all(|b| b.is_ascii_digit())));
    ok.then(|| id.to_ascii_uppercase())
}

/// The /24 of an IPv4 address or the /64 of an IPv6 one.
fn network_of(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        Ok(std::net::IpAddr::V6(a)) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Err(_) => address.to_owned(),
    }
}

/// Runs playbooks on alerts and carries out, approves, rejects, undoes and expires their
/// actions. Cheap to clone; the API holds one.
#[derive(Clone)]
pub struct ResponseService {
    tenant: TenantId,
    store: Arc<dyn Store>,
    responder: Arc<dyn Responder>,
    webhooks: Webhooks,
    siem: SiemForwarder,
    playbooks: Arc<Vec<Playbook>>,
    /// Devices quarantined by a response whose enforcement has not been seen yet.
    awaiting: Arc<Mutex<HashMap<DeviceId, String>>>,
}

impl ResponseService {
    /// A service running `playbooks` through `responder`.
    pub fn new(
        tenant: TenantId,
        store: Arc<dyn Store>,
        responder: Arc<dyn Responder>,
        playbooks: Vec<Playbook>,
    ) -> Result<ResponseService, MonitorError> {
        Ok(ResponseService {
            tenant,
            store,
            responder,
            webhooks: Webhooks::new().map_err(MonitorError::Refused)?,
            siem: SiemForwarder,
            playbooks: Arc::new(playbooks),
            awaiting: Arc::default(),
        })
    }

    /// The playbooks in force.
    pub fn playbooks(&self) -> &[Playbook] {
        &self.playbooks
    }

    /// Runs every matching playbook's actions for a newly opened alert.
    pub async fn on_alert(&self, alert: &Alert) -> Vec<ResponseAction> {
        let mut out = Vec::new();
        for playbook in self.playbooks.iter().filter(|p| p.when.matches(alert)) {
            for action in &playbook.actions {
                if action.kind.needs_device() && alert.device.is_none() {
                    continue;
                }
                let mut params = action.kind.params();
                if let (Some(expires), Some(map)) = (action.expires, params.as_object_mut()) {
                    map.insert("expires_secs".into(), expires.as_secs().into());
                }
                let (status, detail) = if playbook.dry_run {
                    (
                        ResponseStatus::DryRun,
                        "dry run: recorded, not carried out".to_owned(),
                    )
                } else if action.approval {
                    (
                        ResponseStatus::PendingApproval,
                        "waiting for an operator's approval".to_owned(),
                    )
                } else {
                    (ResponseStatus::Started, "being carried out".to_owned())
                };
                let new = NewResponse {
                    tenant: self.tenant.clone(),
                    alert_id: alert.id.clone(),
                    playbook: playbook.name.clone(),
                    action: action.kind.name().to_owned(),
                    device: alert.device.clone(),
                    params,
                    status,
                    detail,
                    expires_at: None,
                };
                let audit = AuditRecord::new(
                    &self.tenant,
                    playbook_actor(&playbook.name),
                    format!("response.{}", action.kind.name()),
                    target(alert.device.as_ref(), &alert.id),
                )
                .source(Some(format!("alert:{}", alert.id)));
                let created = match self.store.response_create(&new, audit).await {
                    Ok(Some(created)) => created,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::error!(alert = %alert.id, playbook = %playbook.name, error = %e, "Could not record a response");
                        continue;
                    }
                };
                metrics::counter!("garrison_monitor_responses_total", "action" => action.kind.name(), "status" => status.as_str()).increment(1);
                let done = if status == ResponseStatus::Started {
                    self.carry_out(created, &action.kind, alert, action.expires, None)
                        .await
                } else {
                    created
                };
                out.push(done);
            }
        }
        out
    }

    /// Carries out a recorded action and records the outcome.
    async fn carry_out(
        &self,
        response: ResponseAction,
        kind: &ActionKind,
        alert: &Alert,
        expires: Option<Duration>,
        decided_by: Option<String>,
    ) -> ResponseAction {
        let cause = Cause {
            actor: playbook_actor(&response.playbook),
            source: format!("alert:{} response:{}", alert.id, response.id),
        };
        let mut expires_at = expires.map(|e| {
            garrison_core::now_ms() + i64::try_from(e.as_millis()).unwrap_or(i64::MAX / 2)
        });
        let result = match (kind, &response.device) {
            (ActionKind::Quarantine, Some(d)) => {
                if self.responder.is_quarantined(d) {
                    // Someone else's quarantine: do not take it over, and never undo it.
                    expires_at = None;
                    Ok(ALREADY_QUARANTINED.to_owned())
                } else {
                    self.responder.quarantine(d, true, &cause).await.map(|()| {
                        self.awaiting
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(d.clone(), response.id.clone());
                        "quarantined: only the update and cmd channels stay open".to_owned()
                    })
                }
            }
            (ActionKind::Disconnect, Some(d)) => {
                self.responder
                    .disconnect(d, &cause)
                    .await
                    .map(|was| match was {
                        true => "session closed".to_owned(),
                        false => "not connected".to_owned(),
                    })
            }
            (ActionKind::Revoke { reason }, Some(d)) => self
                .responder
                .revoke(d, *reason, &cause)
                .await
                .map(|()| format!("certificate revoked ({})", reason.as_str())),
            (ActionKind::Rotate, Some(d)) => self
                .responder
                .rotate(d, &cause)
                .await
                .map(|()| "rotation requested".to_owned()),
            (ActionKind::MoveGroup { group }, Some(d)) => self
                .responder
                .group(d, group, true, &cause)
                .await
                .map(|()| format!("added to group {group}")),
            (
                ActionKind::Forward {
                    url,
                    format,
                    ca_file,
                },
                _,
            ) => {
                self.siem
                    .send(url, *format, ca_file.as_deref(), alert)
                    .await
            }
            (ActionKind::Webhook { url, secret_env }, _) => {
                let body = serde_json::json!({
                    "alert": alert, "playbook": response.playbook, "response": response.id,
                });
                self.webhooks
                    .send(url, secret_env, &body)
                    .await
                    .map(|code| format!("delivered (HTTP {code})"))
            }
            (_, None) => Err("the alert names no device".to_owned()),
        };
        let (status, detail, expires_at) = match result {
            Ok(detail) => (ResponseStatus::Executed, detail, expires_at),
            Err(e) => {
                tracing::error!(response = %response.id, action = %response.action, error = %e, "Response action failed");
                (ResponseStatus::Failed, e, None)
            }
        };
        metrics::counter!("garrison_monitor_responses_total", "action" => kind.name(), "status" => status.as_str()).increment(1);
        let change = ResponseChange {
            status: Some(status),
            detail: Some(detail),
            decided_by,
            enforced_at: None,
            expires_at,
            expect: None,
        };
        self.update(&response, &change, &format!("response.{}", response.action))
            .await
            .unwrap_or(response)
    }

    async fn update(
        &self,
        response: &ResponseAction,
        change: &ResponseChange,
        action: &str,
    ) -> Result<ResponseAction, MonitorError> {
        let audit = AuditRecord::new(
            &self.tenant,
            playbook_actor(&response.playbook),
            action,
            target(response.device.as_ref(), &response.alert_id),
        )
        .source(Some(format!(
            "alert:{} response:{}",
            response.alert_id, response.id
        )));
        self.store
            .response_update(&self.tenant, &response.id, change, audit)
            .await
            .map_err(|e| {
                tracing::error!(response = %response.id, error = %e, "Could not record a response's outcome");
                MonitorError::from(e)
            })
    }

    /// Records, once, that the broker refused a device quarantined by a response.
    pub async fn observe_enforcement(&self, device: &DeviceId, at: UnixMillis) {
        let id = self
            .awaiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(device);
        let Some(id) = id else { return };
        let Ok(Some(response)) = self.store.response_get(&self.tenant, &id).await else {
            return;
        };
        let change = ResponseChange {
            status: None,
            detail: None,
            decided_by: None,
            enforced_at: Some(at),
            expires_at: None,
            expect: None,
        };
        let _ = self.update(&response, &change, "response.enforced").await;
    }

    async fn load(&self, id: &str) -> Result<(ResponseAction, ActionKind, Alert), MonitorError> {
        let response = self
            .store
            .response_get(&self.tenant, id)
            .await?
            .ok_or_else(|| MonitorError::NotFound(format!("response action {id}")))?;
        let kind =
            ActionKind::from_stored(&response.action, &response.params).ok_or_else(|| {
                MonitorError::Refused(format!(
                    "response action {id} ({}) cannot be read back",
                    response.action
                ))
            })?;
        let alert = self
            .store
            .alert_get(&self.tenant, &response.alert_id)
            .await?
            .ok_or_else(|| MonitorError::NotFound(format!("alert {}", response.alert_id)))?;
        Ok((response, kind, alert))
    }

    /// Approves a pending action and carries it out.
    pub async fn approve(&self, id: &str, by: &Actor) -> Result<ResponseAction, MonitorError> {
        let (response, kind, alert) = self.load(id).await?;
        let change = ResponseChange {
            status: Some(ResponseStatus::Started),
            detail: Some(format!("approved by {}", by.as_str())),
            decided_by: Some(by.as_str().to_owned()),
            enforced_at: None,
            expires_at: None,
            expect: Some(ResponseStatus::PendingApproval),
        };
        let started = self
            .store
            .response_update(
                &self.tenant,
                id,
                &change,
                self.decision(&response, by, "approve"),
            )
            .await?;
        let expires = response
            .params
            .get("expires_secs")
            .and_then(serde_json::Value::as_u64)
            .map(Duration::from_secs);
        Ok(self
            .carry_out(
                started,
                &kind,
                &alert,
                expires,
                Some(by.as_str().to_owned()),
            )
            .await)
    }

    /// Declines a pending action.
    pub async fn reject(&self, id: &str, by: &Actor) -> Result<ResponseAction, MonitorError> {
        let (response, _, _) = self.load(id).await?;
        let change = ResponseChange {
            status: Some(ResponseStatus::Rejected),
            detail: Some(format!("rejected by {}", by.as_str())),
            decided_by: Some(by.as_str().to_owned()),
            enforced_at: None,
            expires_at: None,
            expect: Some(ResponseStatus::PendingApproval),
        };
        Ok(self
            .store
            .response_update(
                &self.tenant,
                id,
                &change,
                self.decision(&response, by, "reject"),
            )
            .await?)
    }

    /// Undoes an executed action (quarantine lifted, group membership removed).
    pub async fn undo(&self, id: &str, by: &Actor) -> Result<ResponseAction, MonitorError> {
        self.revert(id, by, ResponseStatus::Undone).await
    }

    async fn revert(
        &self,
        id: &str,
        by: &Actor,
        to: ResponseStatus,
    ) -> Result<ResponseAction, MonitorError> {
        let (response, kind, _) = self.load(id).await?;
        if !kind.undoable() {
            return Err(MonitorError::Refused(format!(
                "{} cannot be undone",
                kind.name()
            )));
        }
        if response.status != ResponseStatus::Executed {
            return Err(MonitorError::Refused(format!(
                "response action {id} is {}; only executed actions can be undone",
                response.status.as_str()
            )));
        }
        let device = response
            .device
            .clone()
            .ok_or_else(|| MonitorError::Refused("the action names no device".into()))?;
        let cause = Cause {
            actor: by.clone(),
            source: format!("alert:{} response:{}", response.alert_id, response.id),
        };
        let undone = match &kind {
            // A quarantine someone else imposed is theirs to lift.
            ActionKind::Quarantine if response.detail == ALREADY_QUARANTINED => Ok(()),
            ActionKind::Quarantine => self.responder.quarantine(&device, false, &cause).await,
            ActionKind::MoveGroup { group } => {
                self.responder.group(&device, group, false, &cause).await
            }
            _ => Ok(()),
        };
        undone.map_err(MonitorError::Refused)?;
        self.awaiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&device);
        let change = ResponseChange {
            status: Some(to),
            detail: Some(match to {
                ResponseStatus::Expired => "undone: its time ran out".to_owned(),
                _ => format!("undone by {}", by.as_str()),
            }),
            decided_by: Some(by.as_str().to_owned()),
            enforced_at: None,
            expires_at: None,
            expect: Some(ResponseStatus::Executed),
        };
        let verb = if to == ResponseStatus::Expired {
            "expire"
        } else {
            "undo"
        };
        Ok(self
            .store
            .response_update(
                &self.tenant,
                id,
                &change,
                self.decision(&response, by, verb),
            )
            .await?)
    }

    fn decision(&self, response: &ResponseAction, by: &Actor, verb: &str) -> AuditRecord {
        AuditRecord::new(
            &self.tenant,
            by.clone(),
            format!("response.{verb}"),
            format!("response:{}", response.id),
        )
        .source(Some(format!("alert:{}", response.alert_id)))
    }

    /// Undoes every executed action whose expiry has passed; returns how many.
    pub async fn expire_due(&self) -> usize {
        let due = match self
            .store
            .responses_expired(&self.tenant, garrison_core::now_ms())
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read expired responses");
                return 0;
            }
        };
        let actor = Actor::system("monitor:expiry");
        let mut done = 0;
        for response in due {
            match self
                .revert(&response.id, &actor, ResponseStatus::Expired)
                .await
            {
                Ok(_) => done += 1,
                Err(e) => {
                    tracing::warn!(response = %response.id, error = %e, "Could not expire a response")
                }
            }
        }
        done
    }

    /// Expires due actions every `every`, forever.
    pub async fn run_expiry(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.expire_due().await;
        }
    }
}

fn playbook_actor(name: &str) -> Actor {
    Actor::system(&format!("playbook:{name}"))
}

fn target(device: Option<&DeviceId>, alert: &str) -> String {
    match device {
        Some(d) => format!("device:{d}"),
        None => format!("alert:{alert}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn techniques_come_from_attack_tags() {
        assert_eq!(technique("attack.t1110.001").as_deref(), Some("T1110.001"));
        assert_eq!(technique("attack.ics.t0812").as_deref(), Some("T0812"));
        assert_eq!(technique("attack.t0886").as_deref(), Some("T0886"));
        for not in [
            "attack.credential-access",
            "attack.t11",
            "cve.2021-1",
            "attack.t1110.1",
        ] {
            assert_eq!(technique(not), None, "{not}");
        }
    }

    #[test]
    fn networks_are_prefixes() {
        assert_eq!(network_of("10.1.2.3"), "10.1.2.0/24");
        assert_eq!(network_of("2001:db8:1:2:3::4"), "2001:db8:1:2::/64");
        assert_eq!(network_of("junk"), "junk");
    }
}
