//! Garrison's fleet simulator: N virtual devices in one process, each with its own key and
//! certificate obtained through the real enrollment path (EST), speaking the real device
//! contract over real MQTT with mutual TLS — the agent's own EST and session code, with facts
//! from [`profile`]s instead of collectors.
//!
//! The fleet is deterministic: device *i* always has the same profile, facts and weaknesses
//! ([`plan`]), so tests can compare the server's audit with the fleet's ground truth. A share of
//! devices is given weak postures ([`Weakness`]); [`scenario`]s make chosen devices misbehave.
//!
//! Architecture invariant: the simulator is a client like any device; it uses no server
//! internals and reaches Garrison only through EST and MQTT.
#![forbid(unsafe_code)]

pub mod cli;
mod device;
pub mod profile;
mod rng;
pub mod scenario;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use garrison_core::DeviceId;
use tokio::{
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
};

pub use device::{Control, Endpoint, PlannedDevice};
pub use profile::{Profile, Weakness};
pub use scenario::{Scenario, ScenarioKind};

use crate::rng::Rng;

/// Plans a fleet of `count` devices named `PREFIX-SHORT-NNNN`, about `weak_share` of them with
/// one or two weaknesses. The same arguments always give the same fleet.
pub fn plan(prefix: &str, count: usize, weak_share: f64) -> anyhow::Result<Vec<PlannedDevice>> {
    let mut fleet = Vec::with_capacity(count);
    for index in 0..count {
        let profile = Profile::for_index(index);
        let id = DeviceId::new(format!("{prefix}-{}-{index:04}", profile.spec().short))
            .with_context(|| format!("{prefix:?} does not make valid device ids"))?;
        let mut rng = Rng::new(index as u64 ^ 0xa11ce);
        let mut weaknesses = Vec::new();
        if rng.chance(weak_share) {
            let options = Weakness::applicable(profile);
            let first = options[rng.below(options.len() as u64) as usize];
            weaknesses.push(first);
            if options.len() > 1 && rng.chance(0.5) {
                let second = options[rng.below(options.len() as u64) as usize];
                if second != first {
                    weaknesses.push(second);
                }
            }
            weaknesses.sort();
        }
        fleet.push(PlannedDevice {
            index,
            id,
            profile,
            weaknesses,
        });
    }
    // A credential is only "shared" if at least two devices of a model have it; the factory
    // key is one for the whole fleet, so it needs two devices of any model.
    let mut sharing: HashMap<Profile, usize> = HashMap::new();
    for d in &fleet {
        if d.weaknesses.contains(&Weakness::SharedCredential) {
            *sharing.entry(d.profile).or_default() += 1;
        }
    }
    let key_sharers = fleet
        .iter()
        .filter(|d| d.weaknesses.contains(&Weakness::SharedKey))
        .count();
    for d in &mut fleet {
        if sharing.get(&d.profile) == Some(&1) {
            d.weaknesses.retain(|w| *w != Weakness::SharedCredential);
        }
        if key_sharers == 1 {
            d.weaknesses.retain(|w| *w != Weakness::SharedKey);
        }
    }
    Ok(fleet)
}

/// The factory key [`Weakness::SharedKey`] devices all use: kept in the state directory so a
/// second run (which reuses stored certificates) presents the same key.
fn shared_key(state_dir: Option<&std::path::Path>) -> anyhow::Result<Arc<String>> {
    let path = state_dir.map(|d| d.join("factory-shared.key"));
    if let Some(pem) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
        return Ok(Arc::new(pem));
    }
    let pem = garrison_agent::keystore::generate_key()?;
    if let Some(path) = &path {
        garrison_agent::keystore::write_atomic(path, pem.as_bytes(), 0o600)?;
    }
    Ok(Arc::new(pem))
}

/// What the fleet expects the server's audit to find: device id → check ids.
pub fn expected_findings(fleet: &[PlannedDevice]) -> BTreeMap<String, Vec<&'static str>> {
    fleet
        .iter()
        .map(|d| {
            let mut checks: Vec<&'static str> = d.weaknesses.iter().map(|w| w.check()).collect();
            checks.sort_unstable();
            checks.dedup();
            (d.id.to_string(), checks)
        })
        .collect()
}

/// How to run a fleet.
#[derive(Clone)]
pub struct SimConfig {
    /// Where the devices enroll and connect.
    pub endpoint: Endpoint,
    /// Fleet size.
    pub devices: usize,
    /// Device id prefix.
    pub prefix: String,
    /// Share of devices with weak postures.
    pub weak_share: f64,
    /// Scenarios to play.
    pub scenarios: Vec<Scenario>,
    /// Concurrent enrollments.
    pub enroll_concurrency: usize,
    /// Connections started per second.
    pub connect_rate: u32,
    /// Show progress bars (on a terminal).
    pub progress: bool,
}

/// What starting a fleet took.
#[derive(Debug, Clone, PartialEq)]
pub struct StartReport {
    /// Devices planned.
    pub devices: usize,
    /// Devices that had to enroll (the rest reused stored certificates).
    pub enrolled: usize,
    /// Seconds spent enrolling.
    pub enroll_seconds: f64,
    /// Devices connected within the start timeout.
    pub connected: usize,
    /// Seconds from the first connection attempt until all were connected.
    pub connect_seconds: f64,
}

/// A running fleet.
pub struct Fleet {
    plan: Vec<PlannedDevice>,
    controls: HashMap<DeviceId, mpsc::Sender<Control>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    connected: Arc<AtomicUsize>,
}

fn progress(enabled: bool, len: usize, what: &'static str) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix:>10} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what);
    bar
}

impl Fleet {
    /// Enrolls (or loads) every device's identity, connects them at the configured rate and
    /// schedules the scenarios.
    pub async fn start(config: SimConfig) -> anyhow::Result<(Fleet, StartReport)> {
        let mut plan = plan(&config.prefix, config.devices, config.weak_share)?;
        if config.endpoint.expiring_credential.is_none() {
            for d in &mut plan {
                d.weaknesses.retain(|w| *w != Weakness::ExpiringCertificate);
            }
        }
        if let Some(dir) = &config.endpoint.state_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let factory_key = shared_key(config.endpoint.state_dir.as_deref())?;
        let enroll_start = Instant::now();
        let bar = progress(config.progress, plan.len(), "enrolling");
        let gate = Arc::new(Semaphore::new(config.enroll_concurrency.max(1)));
        let mut jobs = JoinSet::new();
        for d in &plan {
            let (endpoint, id, gate, bar) = (
                config.endpoint.clone(),
                d.id.clone(),
                gate.clone(),
                bar.clone(),
            );
            let key = d
                .weaknesses
                .contains(&Weakness::SharedKey)
                .then(|| factory_key.clone());
            let expiring = d.weaknesses.contains(&Weakness::ExpiringCertificate);
            jobs.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let had = endpoint
                    .state_dir
                    .as_ref()
                    .is_some_and(|s| s.join(format!("{id}.pem")).exists());
                let identity = device::identity(&endpoint, &id, key, expiring).await;
                bar.inc(1);
                (id, had, identity)
            });
        }
        let mut identities = HashMap::new();
        let mut enrolled = 0;
        while let Some(done) = jobs.join_next().await {
            let (id, had, identity) = done.context("an enrollment task failed")?;
            let identity = identity.with_context(|| format!("{id} could not enroll"))?;
            if !had {
                enrolled += 1;
            }
            identities.insert(id, identity);
        }
        bar.finish_and_clear();
        let enroll_seconds = enroll_start.elapsed().as_secs_f64();
        tracing::info!(
            devices = plan.len(),
            enrolled,
            seconds = enroll_seconds,
            "Fleet identities ready"
        );

        let (stop, stop_rx) = watch::channel(false);
        let connected = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let mut controls = HashMap::new();
        let connect_start = Instant::now();
        let gap = Duration::from_secs_f64(1.0 / f64::from(config.connect_rate.max(1)));
        let bar = progress(config.progress, plan.len(), "connecting");
        for d in &plan {
            let Some(identity) = identities.remove(&d.id) else {
                continue;
            };
            let (tx, rx) = mpsc::channel(4);
            controls.insert(d.id.clone(), tx);
            tasks.spawn(device::run_device(
                d.clone(),
                config.endpoint.clone(),
                identity,
                rx,
                stop_rx.clone(),
                connected.clone(),
            ));
            tokio::time::sleep(gap).await;
            bar.set_position(connected.load(Ordering::Relaxed) as u64);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while connected.load(Ordering::Relaxed) < plan.len() && Instant::now() < deadline {
            bar.set_position(connected.load(Ordering::Relaxed) as u64);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bar.finish_and_clear();
        let report = StartReport {
            devices: plan.len(),
            enrolled,
            enroll_seconds,
            connected: connected.load(Ordering::Relaxed),
            connect_seconds: connect_start.elapsed().as_secs_f64(),
        };
        tracing::info!(
            connected = report.connected,
            seconds = report.connect_seconds,
            "Fleet connected"
        );
        let fleet = Fleet {
            plan,
            controls,
            stop,
            tasks,
            connected,
        };
        for scenario in config.scenarios {
            fleet.schedule(scenario);
        }
        Ok((fleet, report))
    }

    /// Plays a scenario on its devices after its delay.
    pub fn schedule(&self, scenario: Scenario) {
        let targets: Vec<(String, Option<mpsc::Sender<Control>>)> = scenario
            .devices
            .iter()
            .map(|d| {
                (
                    d.clone(),
                    DeviceId::new(d.clone())
                        .ok()
                        .and_then(|id| self.controls.get(&id).cloned()),
                )
            })
            .collect();
        tokio::spawn(async move {
            tokio::time::sleep(scenario.after).await;
            for (name, target) in targets {
                match target {
                    Some(tx) => {
                        let _ = tx.send(Control::Play(scenario.kind)).await;
                    }
                    None => {
                        tracing::warn!(device = name, scenario = %scenario.kind, "No such simulated device")
                    }
                }
            }
        });
    }

    /// The fleet's plan.
    pub fn plan(&self) -> &[PlannedDevice] {
        &self.plan
    }

    /// Devices that connected at least once.
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Disconnects every device and waits for them to stop.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Where the simulator keeps identities by default.
pub fn default_state_dir() -> PathBuf {
    PathBuf::from("garrison-sim")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_deterministic_mixed_and_partly_weak() {
        let a = plan("sim", 200, 0.2).unwrap();
        assert_eq!(a, plan("sim", 200, 0.2).unwrap());
        let weak = a.iter().filter(|d| !d.weaknesses.is_empty()).count();
        assert!((20..=60).contains(&weak), "{weak} weak of 200");
        let mut profiles: HashMap<Profile, usize> = HashMap::new();
        for d in &a {
            *profiles.entry(d.profile).or_default() += 1;
            for w in &d.weaknesses {
                assert!(Weakness::applicable(d.profile).contains(w));
            }
        }
        assert_eq!(profiles[&Profile::IpCamera], 70);
        assert_eq!(profiles[&Profile::InfusionPump], 20);
        assert_eq!(a[3].id.as_str(), "sim-cam-0003");
        assert!(plan("bad/prefix", 1, 0.0).is_err());
        assert!(
            plan("sim", 50, 0.0)
                .unwrap()
                .iter()
                .all(|d| d.weaknesses.is_empty())
        );
    }
}
