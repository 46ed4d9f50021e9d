//! Behaviour baselines from day one: per-device metrics in fixed windows, judged with robust
//! statistics against the device's own history *and* against its peers (same model and
//! firmware) in the same window.
//!
//! AWS IoT ML Detect needs 14 days of a device's own data before it judges anything. Here a
//! device that joined an hour ago is judged against its peers at once; once it has
//! [`BaselineSettings::min_history`] windows of its own, it must stand out from both — its own
//! history and its peers right now — so a fleet-wide change (an update pulling bytes onto every
//! camera at once) does not page anyone, while one camera doing what its siblings do not does.
//!
//! Statistics are the median and the median absolute deviation (MAD, scaled by 1.4826 to
//! estimate a standard deviation), which one outlier — the device under attack — cannot drag.
//! A value is anomalous above `median + max(sensitivity × MAD, median, min_excess)`: many
//! robust deviations, at least double the usual, and more than a per-metric absolute floor,
//! so near-silent metrics (authorization failures, usually zero) do not alarm on one stray
//! event. Only rises are judged: the attacks these metrics show are floods, scans, brute force
//! and exfiltration. Every anomaly carries its own explanation: metric, observed value,
//! baseline, peers and the limit crossed.
//!
//! Pure: observations in, anomalies out, time passed in. The monitor closes the windows.

use std::collections::{HashMap, VecDeque};

use garrison_core::{DeviceId, UnixMillis};
use garrison_inventory::Observation;
use serde::Serialize;

/// A per-device behaviour metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// MQTT messages the broker delivered from the device.
    MqttMessages,
    /// Their payload bytes.
    MqttBytes,
    /// Publishes and subscriptions the broker refused, and connections refused for the
    /// device's certificate.
    AuthFailures,
    /// Sessions opened.
    Connects,
    /// Sessions closed.
    Disconnects,
    /// Network bytes received, as the device reports.
    NetBytesIn,
    /// Network bytes sent, as the device reports.
    NetBytesOut,
    /// Distinct remote addresses (a gauge: the window's highest report).
    Destinations,
    /// Listening TCP and UDP ports (a gauge).
    ListeningPorts,
}

impl Metric {
    /// Every metric, in a stable order.
    pub const ALL: [Metric; 9] = [
        Metric::MqttMessages,
        Metric::MqttBytes,
        Metric::AuthFailures,
        Metric::Connects,
        Metric::Disconnects,
        Metric::NetBytesIn,
        Metric::NetBytesOut,
        Metric::Destinations,
        Metric::ListeningPorts,
    ];

    /// The stable name (`auth_failures`), also the alert's rule id suffix.
    pub fn name(self) -> &'static str {
        match self {
            Metric::MqttMessages => "mqtt_messages",
            Metric::MqttBytes => "mqtt_bytes",
            Metric::AuthFailures => "auth_failures",
            Metric::Connects => "connects",
            Metric::Disconnects => "disconnects",
            Metric::NetBytesIn => "net_bytes_in",
            Metric::NetBytesOut => "net_bytes_out",
            Metric::Destinations => "destinations",
            Metric::ListeningPorts => "listening_ports",
        }
    }

    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            Metric::MqttMessages => "MQTT messages",
            Metric::MqttBytes => "MQTT payload bytes",
            Metric::AuthFailures => "authorization failures",
            Metric::Connects => "connections opened",
            Metric::Disconnects => "connections closed",
            Metric::NetBytesIn => "network bytes in",
            Metric::NetBytesOut => "network bytes out",
            Metric::Destinations => "distinct destinations",
            Metric::ListeningPorts => "listening ports",
        }
    }

    /// A gauge keeps the window's highest value and is unknown when not reported; a counter
    /// sums, and is zero for a device active in the window that did not report it.
    fn is_gauge(self) -> bool {
        matches!(self, Metric::Destinations | Metric::ListeningPorts)
    }

    /// The least rise over the median that can count, whatever the spread: one stray event
    /// on a near-silent metric is not an anomaly.
    fn min_excess(self) -> f64 {
        match self {
            Metric::MqttMessages => 30.0,
            Metric::MqttBytes => 64.0 * 1024.0,
            Metric::AuthFailures | Metric::Connects | Metric::Disconnects => 5.0,
            Metric::NetBytesIn | Metric::NetBytesOut => 1024.0 * 1024.0,
            Metric::Destinations => 10.0,
            Metric::ListeningPorts => 2.0,
        }
    }

    /// The ATT&CK technique a rise in this metric most often means.
    pub fn technique(self) -> Option<&'static str> {
        match self {
            Metric::AuthFailures => Some("T1110"),
            Metric::Connects | Metric::Disconnects | Metric::MqttMessages => Some("T1499"),
            Metric::NetBytesOut => Some("T1041"),
            Metric::Destinations => Some("T1046"),
            Metric::ListeningPorts => Some("T1205"),
            Metric::MqttBytes | Metric::NetBytesIn => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How baselines learn and judge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineSettings {
    /// Window length, ms.
    pub window_ms: u64,
    /// Windows of a device's own history kept per metric.
    pub history: usize,
    /// Windows of its own a device needs before its own baseline counts.
    pub min_history: usize,
    /// Devices in a peer group (the judged one included) for the group to count.
    pub min_peers: usize,
    /// Robust deviations (scaled MAD) above the median that make an anomaly.
    pub sensitivity: f64,
    /// How often the learnt history is saved to the store, ms (it is also saved at
    /// shutdown and restored at start); 0: only at shutdown.
    pub save_interval_ms: u64,
}

impl Default for BaselineSettings {
    fn default() -> Self {
        BaselineSettings {
            window_ms: 60_000,
            history: 60,
            min_history: 10,
            min_peers: 4,
            sensitivity: 5.0,
            save_interval_ms: 300_000,
        }
    }
}

/// A copy of the learnt history, to be encoded away from the monitor's task
/// ([`Snapshot::encode`]). Metric names are kept beside the values so a build that adds or
/// reorders metrics restores what it still knows.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    format: u32,
    window_ms: u64,
    windows: u64,
    metrics: Vec<String>,
    devices: Vec<(String, Vec<Vec<f32>>)>,
}

const SNAPSHOT_FORMAT: u32 = 1;

impl Snapshot {
    /// The saved form: CBOR, gzip. CPU-heavy for large fleets: run it on a blocking thread.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if ciborium::into_writer(self, &mut out).is_err() {
            return Vec::new();
        }
        out.finish().unwrap_or_default()
    }
}

/// Devices that are each other's peers: the same model running the same firmware.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PeerGroup {
    /// Model.
    pub model: String,
    /// Firmware version.
    pub firmware: String,
}

/// Robust statistics of a set of values, and the limit they set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// Median.
    pub median: f64,
    /// Median absolute deviation, scaled to estimate a standard deviation.
    pub mad: f64,
    /// How many values (windows for a device, devices for a peer group).
    pub samples: usize,
    /// Values above this are anomalous.
    pub limit: f64,
}

impl Stats {
    fn of(values: &mut [f64], metric: Metric, sensitivity: f64) -> Option<Stats> {
        let median = median_of(values)?;
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        let mad = 1.4826 * median_of(&mut deviations)?;
        let excess = (sensitivity * mad)
            .max(median.abs())
            .max(metric.min_excess());
        Some(Stats {
            median,
            mad,
            samples: values.len(),
            limit: median + excess,
        })
    }
}

fn median_of(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// What the verdict rested on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgedBy {
    /// The device's own history and its peers now: it stood out from both.
    OwnAndPeers,
    /// Its own history (no peer group large enough).
    Own,
    /// Its peers (too young for a baseline of its own).
    Peers,
}

/// A metric of a device far above what it, or its peers, usually show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// The device.
    pub device: DeviceId,
    /// The metric.
    pub metric: Metric,
    /// Its value in the window.
    pub observed: f64,
    /// The window's start, Unix ms.
    pub window_start: UnixMillis,
    /// Its end.
    pub window_end: UnixMillis,
    /// The device's own baseline, when it has one.
    pub baseline: Option<Stats>,
    /// Its peer group and their values in the same window, when the group is large enough.
    pub peers: Option<(PeerGroup, Stats)>,
    /// What the verdict rested on.
    pub judged_by: JudgedBy,
}

impl Anomaly {
    /// The highest limit crossed.
    pub fn limit(&self) -> f64 {
        let own = self.baseline.map(|s| s.limit);
        let peers = self.peers.as_ref().map(|(_, s)| s.limit);
        own.into_iter().chain(peers).fold(0.0, f64::max)
    }

    /// One sentence a person can check: what, how much, against what.
    pub fn explanation(&self) -> String {
        let secs = (self.window_end - self.window_start) as f64 / 1000.0;
        let mut text = format!(
            "{} {}: {} in {secs:.0} s",
            self.device,
            self.metric.label(),
            number(self.observed),
        );
        match &self.baseline {
            Some(s) => text.push_str(&format!(
                "; its own baseline is {} (median of {} windows, deviation {}, limit {})",
                number(s.median),
                s.samples,
                number(s.mad),
                number(s.limit)
            )),
            None => text.push_str("; too new for a baseline of its own"),
        }
        match &self.peers {
            Some((group, s)) => text.push_str(&format!(
                "; its {} peers ({} firmware {}) show {} in the same window (deviation {}, limit {})",
                s.samples,
                group.model,
                group.firmware,
                number(s.median),
                number(s.mad),
                number(s.limit)
            )),
            None => text.push_str("; no peer group large enough to compare with"),
        }
        text
    }

    /// The alert's evidence: every figure the verdict used.
    pub fn evidence(&self) -> serde_json::Value {
        serde_json::json!({
            "metric": self.metric.name(),
            "label": self.metric.label(),
            "observed": self.observed,
            "window": {"start": self.window_start, "end": self.window_end},
            "baseline": self.baseline,
            "peers": self.peers.as_ref().map(|(group, s)| serde_json::json!({
                "model": group.model, "firmware": group.firmware,
                "devices": s.samples, "median": s.median, "mad": s.mad, "limit": s.limit,
            })),
            "judged_by": self.judged_by,
            "limit": self.limit(),
            "explanation": self.explanation(),
        })
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// One device's values in the open window; `None` for a gauge not reported.
type Window = [Option<f64>; Metric::ALL.len()];

/// What baselines hold, for metrics and `garrison` status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BaselineStatus {
    /// Devices with any history.
    pub devices: usize,
    /// Devices whose own baseline counts for at least one metric.
    pub mature: usize,
    /// Windows closed.
    pub windows: u64,
}

/// Every device's open window and history.
#[derive(Debug)]
pub struct Baselines {
    settings: BaselineSettings,
    window_start: UnixMillis,
    open: HashMap<DeviceId, Window>,
    history: HashMap<DeviceId, [VecDeque<f32>; Metric::ALL.len()]>,
    windows: u64,
}

impl Baselines {
    /// Empty baselines whose first window starts at `now`.
    pub fn new(settings: BaselineSettings, now: UnixMillis) -> Baselines {
        Baselines {
            settings,
            window_start: now,
            open: HashMap::new(),
            history: HashMap::new(),
            windows: 0,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BaselineSettings {
        &self.settings
    }

    /// Adds what an observation shows to its device's open window. (A connection refused
    /// for a certificate names no managed device by itself; the monitor, which knows the
    /// fleet, adds those with [`Baselines::add`].)
    pub fn observe(&mut self, observation: &Observation) {
        match observation {
            Observation::Traffic {
                device,
                messages,
                bytes,
                ..
            } => {
                self.add(device, Metric::MqttMessages, *messages as f64);
                self.add(device, Metric::MqttBytes, *bytes as f64);
            }
            Observation::Connected { device, .. } => self.add(device, Metric::Connects, 1.0),
            Observation::Disconnected { device, .. } => self.add(device, Metric::Disconnects, 1.0),
            Observation::AccessRefused { device, .. } => {
                self.add(device, Metric::AuthFailures, 1.0)
            }
            Observation::Telemetry {
                device, telemetry, ..
            } => {
                if let Some(v) = telemetry.bytes_in {
                    self.add(device, Metric::NetBytesIn, v as f64);
                }
                if let Some(v) = telemetry.bytes_out {
                    self.add(device, Metric::NetBytesOut, v as f64);
                }
                let destinations = telemetry
                    .distinct_destinations
                    .or_else(|| u32::try_from(telemetry.destinations.len()).ok());
                if let Some(v) = destinations {
                    self.add(device, Metric::Destinations, f64::from(v));
                }
                let ports = match (telemetry.listening_tcp_ports, telemetry.listening_udp_ports) {
                    (None, None) => None,
                    (tcp, udp) => Some(tcp.unwrap_or(0) + udp.unwrap_or(0)),
                };
                if let Some(v) = ports {
                    self.add(device, Metric::ListeningPorts, f64::from(v));
                }
            }
            Observation::Events { device, .. } | Observation::Drift { device, .. } => {
                // Activity without a metric of its own: the device counts in this window.
                self.open
                    .entry(device.clone())
                    .or_insert([None; Metric::ALL.len()]);
            }
            Observation::ConnectRefused { .. } => {}
        }
    }

    /// Adds `value` to a device's metric in the open window.
    pub fn add(&mut self, device: &DeviceId, metric: Metric, value: f64) {
        let window = self
            .open
            .entry(device.clone())
            .or_insert([None; Metric::ALL.len()]);
        let slot = &mut window[metric.index()];
        *slot = Some(match (*slot, metric.is_gauge()) {
            (None, _) => value,
            (Some(v), true) => v.max(value),
            (Some(v), false) => v + value,
        });
    }

    /// Closes the open window at `now`: judges every device active in it against its own
    /// history and its peers (`peer_of` names a device's group), records the window in the
    /// history, and opens the next.
    pub fn close(
        &mut self,
        now: UnixMillis,
        peer_of: impl Fn(&DeviceId) -> Option<PeerGroup>,
    ) -> Vec<Anomaly> {
        let open = std::mem::take(&mut self.open);
        let (start, settings) = (self.window_start, self.settings);
        self.window_start = now;
        self.windows += 1;
        // Counters are zero for an active device that did not report them.
        let value = |w: &Window, m: Metric| w[m.index()].or((!m.is_gauge()).then_some(0.0));

        let mut groups: HashMap<PeerGroup, Vec<&DeviceId>> = HashMap::new();
        let mut group_of: HashMap<&DeviceId, PeerGroup> = HashMap::new();
        for device in open.keys() {
            if let Some(group) = peer_of(device) {
                groups.entry(group.clone()).or_default().push(device);
                group_of.insert(device, group);
            }
        }
        let mut peer_stats: HashMap<(&PeerGroup, Metric), Stats> = HashMap::new();
        for (group, members) in &groups {
            if members.len() < settings.min_peers {
                continue;
            }
            for metric in Metric::ALL {
                let mut values: Vec<f64> = members
                    .iter()
                    .filter_map(|d| open.get(*d).and_then(|w| value(w, metric)))
                    .collect();
                if values.len() < settings.min_peers {
                    continue;
                }
                if let Some(stats) = Stats::of(&mut values, metric, settings.sensitivity) {
                    peer_stats.insert((group, metric), stats);
                }
            }
        }

        let mut anomalies = Vec::new();
        for (device, window) in &open {
            let history = self
                .history
                .entry(device.clone())
                .or_insert_with(|| std::array::from_fn(|_| VecDeque::new()));
            for metric in Metric::ALL {
                let Some(observed) = value(window, metric) else {
                    continue;
                };
                let past = &mut history[metric.index()];
                let baseline = (past.len() >= settings.min_history)
                    .then(|| {
                        let mut values: Vec<f64> = past.iter().map(|v| f64::from(*v)).collect();
                        Stats::of(&mut values, metric, settings.sensitivity)
                    })
                    .flatten();
                let peers = group_of
                    .get(device)
                    .and_then(|g| peer_stats.get(&(g, metric)).map(|s| (g.clone(), *s)));
                let above = |s: &Stats| observed > s.limit;
                let judged_by = match (&baseline, &peers) {
                    (Some(own), Some((_, group))) if above(own) && above(group) => {
                        Some(JudgedBy::OwnAndPeers)
                    }
                    (Some(own), None) if above(own) => Some(JudgedBy::Own),
                    (None, Some((_, group))) if above(group) => Some(JudgedBy::Peers),
                    _ => None,
                };
                if let Some(judged_by) = judged_by {
                    anomalies.push(Anomaly {
                        device: device.clone(),
                        metric,
                        observed,
                        window_start: start,
                        window_end: now,
                        baseline,
                        peers,
                        judged_by,
                    });
                }
                if past.len() == settings.history {
                    past.pop_front();
                }
                past.push_back(observed as f32);
            }
        }
        anomalies.sort_by(|a, b| (&a.device, a.metric).cmp(&(&b.device, b.metric)));
        anomalies
    }

    /// A copy of the learnt history, for saving. The open window is not included: it is at
    /// most one window of counts, and judging it after a restart would compare a partial
    /// window with whole ones.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            format: SNAPSHOT_FORMAT,
            window_ms: self.settings.window_ms,
            windows: self.windows,
            metrics: Metric::ALL.iter().map(|m| m.name().to_owned()).collect(),
            devices: self
                .history
                .iter()
                .map(|(device, metrics)| {
                    (
                        device.to_string(),
                        metrics
                            .iter()
                            .map(|h| h.iter().copied().collect())
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    /// Restores an [encoded](Snapshot::encode) snapshot, replacing the history; returns how many
    /// devices it restored. A snapshot of another window length is refused (its windows would
    /// not compare with these), as is one that cannot be read; each refusal says why.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<usize, String> {
        use std::io::Read;
        let mut cbor = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(1 << 30)
            .read_to_end(&mut cbor)
            .map_err(|e| format!("the saved baselines are not gzip: {e}"))?;
        let snapshot: Snapshot = ciborium::from_reader(cbor.as_slice())
            .map_err(|e| format!("the saved baselines are unreadable: {e}"))?;
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(format!(
                "the saved baselines are format {}, this build reads {SNAPSHOT_FORMAT}",
                snapshot.format
            ));
        }
        if snapshot.window_ms != self.settings.window_ms {
            return Err(format!(
                "the saved baselines were learnt over {} ms windows, monitor.baselines.window is now {} ms",
                snapshot.window_ms, self.settings.window_ms
            ));
        }
        let columns: Vec<Option<Metric>> = snapshot
            .metrics
            .iter()
            .map(|name| Metric::ALL.into_iter().find(|m| m.name() == name))
            .collect();
        let keep = self.settings.history;
        self.history.clear();
        for (device, values) in snapshot.devices {
            let Ok(device) = DeviceId::new(device) else {
                continue;
            };
            let mut history: [VecDeque<f32>; Metric::ALL.len()] =
                std::array::from_fn(|_| VecDeque::new());
            for (column, series) in columns.iter().zip(values) {
                if let Some(metric) = column {
                    let skip = series.len().saturating_sub(keep);
                    history[metric.index()] = series.into_iter().skip(skip).collect();
                }
            }
            self.history.insert(device, history);
        }
        self.windows = snapshot.windows;
        Ok(self.history.len())
    }

    /// Forgets every device `keep` says no (deleted from the fleet).
    pub fn retain_devices(&mut self, mut keep: impl FnMut(&DeviceId) -> bool) {
        self.open.retain(|d, _| keep(d));
        self.history.retain(|d, _| keep(d));
    }

    /// What is held.
    pub fn status(&self) -> BaselineStatus {
        BaselineStatus {
            devices: self.history.len(),
            mature: self
                .history
                .values()
                .filter(|h| h.iter().any(|m| m.len() >= self.settings.min_history))
                .count(),
            windows: self.windows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    fn cams(n: usize) -> Vec<DeviceId> {
        (0..n).map(|i| id(&format!("cam-{i}"))).collect()
    }

    fn group(_: &DeviceId) -> Option<PeerGroup> {
        Some(PeerGroup {
            model: "cam-x".into(),
            firmware: "2.0".into(),
        })
    }

    fn settings() -> BaselineSettings {
        BaselineSettings {
            window_ms: 1000,
            history: 20,
            min_history: 5,
            min_peers: 4,
            sensitivity: 5.0,
            save_interval_ms: 0,
        }
    }

    /// Closes `windows` windows in which every camera sends `messages(i)` messages.
    fn run(
        b: &mut Baselines,
        devices: &[DeviceId],
        windows: i64,
        mut messages: impl FnMut(usize, i64) -> f64,
        peer_of: impl Fn(&DeviceId) -> Option<PeerGroup> + Copy,
    ) -> Vec<Anomaly> {
        let mut all = Vec::new();
        for w in 0..windows {
            for (i, d) in devices.iter().enumerate() {
                b.add(d, Metric::MqttMessages, messages(i, w));
            }
            all.extend(b.close((w + 1) * 1000, peer_of));
        }
        all
    }

    #[test]
    fn a_new_device_is_judged_against_its_peers_at_once() {
        let mut b = Baselines::new(settings(), 0);
        let devices = cams(6);
        // The very first window: no history anywhere, camera 5 sends 400 messages.
        let found = run(
            &mut b,
            &devices,
            1,
            |i, _| if i == 5 { 400.0 } else { 20.0 + i as f64 },
            group,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        let a = &found[0];
        assert_eq!(
            (a.device.as_str(), a.metric),
            ("cam-5", Metric::MqttMessages)
        );
        assert_eq!(a.judged_by, JudgedBy::Peers);
        assert!(a.baseline.is_none());
        let (g, peers) = a.peers.clone().unwrap();
        assert_eq!((g.model.as_str(), peers.samples), ("cam-x", 6));
        assert_eq!(peers.median, 22.5);
        let text = a.explanation();
        assert!(text.contains("400 in 1 s"), "{text}");
        assert!(text.contains("too new for a baseline"), "{text}");
        assert!(
            text.contains("6 peers (cam-x firmware 2.0) show 22.5"),
            "{text}"
        );
        assert_eq!(a.evidence()["peers"]["devices"], 6);
    }

    #[test]
    fn steady_fleets_and_noise_raise_nothing() {
        let mut b = Baselines::new(settings(), 0);
        let devices = cams(8);
        // Ordinary jitter: ±30% around 20 messages a window, for 30 windows.
        let found = run(
            &mut b,
            &devices,
            30,
            |i, w| 20.0 + ((i as i64 * 7 + w * 3) % 13 - 6) as f64,
            group,
        );
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(b.status().mature, 8);
    }

    #[test]
    fn a_fleet_wide_change_is_not_an_anomaly_but_one_device_is() {
        let mut b = Baselines::new(settings(), 0);
        let devices = cams(6);
        run(&mut b, &devices, 10, |_, _| 20.0, group);
        // Every camera jumps at once (an update is downloading): above each one's own
        // baseline, but not above the peers.
        let found = run(&mut b, &devices, 1, |_, _| 500.0, group);
        assert!(found.is_empty(), "{found:?}");
        // Then one camera alone.
        let found = run(
            &mut b,
            &devices,
            1,
            |i, _| if i == 2 { 500.0 } else { 20.0 },
            group,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].judged_by, JudgedBy::OwnAndPeers);
        assert!(found[0].baseline.is_some_and(|s| s.samples == 11));
    }

    #[test]
    fn without_peers_a_mature_device_is_judged_on_its_own_history() {
        let mut b = Baselines::new(settings(), 0);
        let device = cams(1);
        let none = |_: &DeviceId| None;
        // Too young: nothing to judge against.
        assert!(run(&mut b, &device, 4, |_, _| 20.0, none).is_empty());
        assert!(run(&mut b, &device, 1, |_, _| 900.0, none).is_empty());
        run(&mut b, &device, 5, |_, _| 20.0, none);
        let found = run(&mut b, &device, 1, |_, _| 900.0, none);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].judged_by, JudgedBy::Own);
        assert!(
            found[0]
                .explanation()
                .contains("no peer group large enough")
        );
    }

    #[test]
    fn small_groups_do_not_count_and_floors_stop_single_events() {
        let mut b = Baselines::new(settings(), 0);
        let devices = cams(3);
        // Three peers are fewer than min_peers = 4.
        let found = run(
            &mut b,
            &devices,
            1,
            |i, _| if i == 0 { 900.0 } else { 1.0 },
            group,
        );
        assert!(found.is_empty(), "{found:?}");

        // Authorization failures, usually zero: two are below the floor, ten are not.
        let mut b = Baselines::new(settings(), 0);
        let devices = cams(5);
        for (failures, expected) in [(2.0, 0), (10.0, 1)] {
            for d in &devices {
                b.add(d, Metric::MqttMessages, 10.0);
            }
            b.add(&devices[0], Metric::AuthFailures, failures);
            let found = b.close(1000, group);
            assert_eq!(found.len(), expected, "{failures}: {found:?}");
        }
    }

    #[test]
    fn gauges_are_unknown_unless_reported_and_keep_the_peak() {
        let mut b = Baselines::new(settings(), 0);
        let devices = cams(5);
        for d in &devices {
            b.add(d, Metric::Destinations, 3.0);
        }
        // Camera 0 reports twice; the peak counts, not the sum.
        b.add(&devices[0], Metric::Destinations, 60.0);
        b.add(&devices[0], Metric::Destinations, 4.0);
        let found = b.close(1000, group);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].observed, 60.0);
        // A window in which nobody reports destinations judges nothing about them.
        for d in &devices {
            b.add(d, Metric::Connects, 1.0);
        }
        assert!(b.close(2000, group).is_empty());
    }

    #[test]
    fn a_restored_history_judges_at_once_and_another_window_length_is_refused() {
        let device = cams(1);
        let alone = |_: &DeviceId| None;
        let mut learnt = Baselines::new(settings(), 0);
        assert!(
            run(
                &mut learnt,
                &device,
                12,
                |_, w| 10.0 + (w % 3) as f64,
                alone
            )
            .is_empty()
        );
        let saved = learnt.snapshot().encode();

        // After a restart with the saved history, a spike is judged by the device's own past.
        let spike = |b: &mut Baselines| {
            b.add(&device[0], Metric::MqttMessages, 500.0);
            b.close(13_000, alone)
        };
        let mut restored = Baselines::new(settings(), 12_000);
        assert_eq!(restored.restore(&saved), Ok(1));
        assert_eq!(restored.status().windows, 12);
        let found = spike(&mut restored);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].judged_by, JudgedBy::Own);
        // Without it the device has no history and no peers: nothing can be judged.
        assert!(spike(&mut Baselines::new(settings(), 12_000)).is_empty());

        // History longer than now kept is trimmed to the newest windows.
        let mut shorter = Baselines::new(
            BaselineSettings {
                history: 4,
                ..settings()
            },
            0,
        );
        shorter.restore(&saved).unwrap();
        assert_eq!(
            shorter.history[&device[0]][Metric::MqttMessages.index()].len(),
            4
        );
        let mut other = Baselines::new(
            BaselineSettings {
                window_ms: 2000,
                ..settings()
            },
            0,
        );
        assert!(other.restore(&saved).unwrap_err().contains("window"));
        assert!(other.restore(b"not gzip").is_err());
    }
}
