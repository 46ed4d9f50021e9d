//! One simulated device: its identity (through real EST), its session (real MQTT over mutual
//! TLS, the agent's own session code), and what it reports, including the scenarios it plays.

use std::{path::PathBuf, sync::Arc, time::Duration};

use garrison_agent::{
    backoff::Backoff,
    est::{Credential, EstClient},
    install::Reporter,
    keystore::{generate_key, write_atomic},
    runtime::{certificate_validity, enroll_until_issued},
    session::{Inbound, Session, SessionConfig, tls_config},
};
use garrison_contract::{
    Birth, Channel, CommandResult, CommandStatus, DeviceEvent, EventKind, Events, ListeningSocket,
    Protocol, SCHEMA_VERSION, Telemetry, UpdateAction, UpdateNotice, UpdateState, encode,
    encode_compressed,
};
use garrison_core::{DeviceId, now_ms};
use rumqttc::{Event, Incoming, MqttOptions, TlsConfiguration, Transport};
use tokio::sync::{mpsc, watch};

use crate::{
    profile::{self, Profile, Weakness},
    rng::Rng,
    scenario::{ATTACKER_ADDRESS, C2_ADDRESS, ScenarioKind},
};

/// What the fleet knows about one planned device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedDevice {
    /// Position in the fleet.
    pub index: usize,
    /// Device id.
    pub id: DeviceId,
    /// Its profile.
    pub profile: Profile,
    /// Its weaknesses.
    pub weaknesses: Vec<Weakness>,
}

/// Where a device connects and how it enrolls.
#[derive(Clone)]
pub struct Endpoint {
    /// EST.
    pub est: EstClient,
    /// Garrison's CA, PEM.
    pub ca_pem: Arc<Vec<u8>>,
    /// Broker host.
    pub mqtt_host: String,
    /// Broker port.
    pub mqtt_port: u16,
    /// Enrollment credential.
    pub credential: Credential,
    /// A credential whose certificates are short-lived, for [`Weakness::ExpiringCertificate`]
    /// devices (absent: the fleet plans none).
    pub expiring_credential: Option<Credential>,
    /// Where keys and certificates are kept (absent: in memory only).
    pub state_dir: Option<PathBuf>,
    /// Telemetry interval.
    pub telemetry_interval: Duration,
    /// Share of devices (0–1) whose update installs fail their health check and roll back.
    pub update_failure_rate: f64,
}

/// A device's key and certificate.
#[derive(Clone)]
pub(crate) struct Identity {
    /// Key, PEM.
    pub(crate) key_pem: String,
    /// Certificate, PEM.
    pub(crate) cert_pem: String,
}

/// Loads a stored identity that is still valid, or enrolls a new one: with `shared_key` (the
/// fleet's factory key) instead of a fresh key, and with the short-lived credential if
/// `expiring`.
pub(crate) async fn identity(
    endpoint: &Endpoint,
    device: &DeviceId,
    shared_key: Option<Arc<String>>,
    expiring: bool,
) -> anyhow::Result<Identity> {
    let paths = endpoint.state_dir.as_ref().map(|d| {
        (
            d.join(format!("{device}.key")),
            d.join(format!("{device}.pem")),
        )
    });
    if let Some((key_path, cert_path)) = &paths
        && let (Ok(key_pem), Ok(cert_pem)) = (
            std::fs::read_to_string(key_path),
            std::fs::read_to_string(cert_path),
        )
        && certificate_validity(&cert_pem).is_some_and(|(_, end)| end > now_ms() + 3_600_000)
    {
        return Ok(Identity { key_pem, cert_pem });
    }
    let key_pem = match shared_key {
        Some(key) => String::clone(&key),
        None => generate_key()?,
    };
    let credential = match (&endpoint.expiring_credential, expiring) {
        (Some(short_lived), true) => short_lived,
        _ => &endpoint.credential,
    };
    let cert_pem = enroll_until_issued(&endpoint.est, device, &key_pem, credential).await?;
    if let Some((key_path, cert_path)) = &paths {
        write_atomic(key_path, key_pem.as_bytes(), 0o600)?;
        write_atomic(cert_path, cert_pem.as_bytes(), 0o644)?;
    }
    Ok(Identity { key_pem, cert_pem })
}

/// Commands the fleet sends a running device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Play a scenario.
    Play(ScenarioKind),
}

/// Mutable state of a running device.
struct State {
    tampered: bool,
    downgraded: bool,
    extra_listening: Vec<ListeningSocket>,
    beaconing: bool,
    scanning: bool,
    /// The trust root this device pinned (at its first update offer).
    root: Option<garrison_update::TrustRoot>,
    /// Sequence number of the installed release (0: the factory image).
    installed_sequence: u64,
    /// Firmware version after an update.
    firmware: Option<String>,
}

struct Device {
    plan: PlannedDevice,
    endpoint: Endpoint,
    identity: Identity,
    rng: Rng,
    state: State,
}

impl Device {
    fn birth(&self) -> Vec<u8> {
        encode(&Birth {
            schema: SCHEMA_VERSION,
            device_id: Some(self.plan.id.to_string()),
            agent: "garrison-sim".into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            booted_at: Some(now_ms() - 86_400_000),
            boot_id: None,
        })
    }

    fn session(&self, backoff: Backoff, inbound: mpsc::Sender<Inbound>) -> anyhow::Result<Session> {
        Ok(Session::start(
            SessionConfig {
                device: self.plan.id.clone(),
                host: self.endpoint.mqtt_host.clone(),
                port: self.endpoint.mqtt_port,
                tls: tls_config(
                    &self.endpoint.ca_pem,
                    &self.identity.cert_pem,
                    &self.identity.key_pem,
                )?,
                keep_alive: Duration::from_secs(120),
                backoff,
                birth: self.birth(),
            },
            inbound,
        ))
    }

    fn inventory(&self) -> Vec<u8> {
        let mut weaknesses = self.plan.weaknesses.clone();
        if self.state.downgraded {
            weaknesses.push(Weakness::OldFirmware);
        }
        let mut inv = profile::inventory(
            self.plan.profile,
            self.plan.index,
            &weaknesses,
            self.state.tampered,
            now_ms(),
        );
        inv.device_id = Some(self.plan.id.to_string());
        if let Some(version) = &self.state.firmware {
            inv.firmware.version = Some(version.clone());
        }
        if let Some(list) = inv.listening.as_mut() {
            list.extend(self.state.extra_listening.iter().cloned());
        }
        encode_compressed(&inv, 64 * 1024)
    }

    fn telemetry(&mut self) -> Vec<u8> {
        let spec = self.plan.profile.spec();
        let minutes = self.endpoint.telemetry_interval.as_secs_f64() / 60.0;
        let scale = |per_min: u64| (per_min as f64 * minutes) as u64;
        let mut destinations: Vec<String> = spec.peers.iter().map(|s| (*s).to_owned()).collect();
        let mut bytes_out = self.rng.around(scale(spec.bytes_out_per_min), 0.15);
        if self.state.beaconing {
            destinations.push(C2_ADDRESS.into());
        }
        if self.state.scanning {
            // Mirai scans random Internet addresses on telnet ports.
            for _ in 0..200 {
                let a = self.rng.next_u64();
                destinations.push(format!(
                    "{}.{}.{}.{}",
                    1 + a % 223,
                    (a >> 8) % 256,
                    (a >> 16) % 256,
                    1 + (a >> 24) % 254
                ));
            }
            bytes_out += scale(3_000_000);
        }
        let distinct = destinations.len() as u32;
        let t = Telemetry {
            schema: SCHEMA_VERSION,
            device_id: Some(self.plan.id.to_string()),
            at: now_ms(),
            interval_ms: u64::try_from(self.endpoint.telemetry_interval.as_millis())
                .unwrap_or(u64::MAX),
            bytes_in: Some(self.rng.around(scale(spec.bytes_in_per_min), 0.15)),
            bytes_out: Some(bytes_out),
            packets_in: Some(self.rng.around(scale(spec.bytes_in_per_min) / 600 + 1, 0.2)),
            packets_out: Some(self.rng.around(bytes_out / 900 + 1, 0.2)),
            established_connections: Some(distinct),
            destinations,
            distinct_destinations: Some(distinct),
            listening_tcp_ports: None,
            listening_udp_ports: None,
        };
        encode(&t)
    }

    fn events(&self, events: Vec<DeviceEvent>) -> Vec<u8> {
        encode(&Events {
            schema: SCHEMA_VERSION,
            device_id: Some(self.plan.id.to_string()),
            events,
        })
    }

    async fn play(
        &mut self,
        kind: ScenarioKind,
        session: &mut Session,
        inbound: &mpsc::Sender<Inbound>,
    ) -> anyhow::Result<()> {
        tracing::info!(device = %self.plan.id, scenario = %kind, "Playing a scenario");
        let now = now_ms();
        let event = |at: i64, kind: EventKind| DeviceEvent { at, kind };
        match kind {
            ScenarioKind::Mirai => {
                let mut batch = Vec::new();
                for (i, user) in [
                    "root", "admin", "root", "support", "root", "admin", "user", "root", "guest",
                    "root", "admin", "root", "default", "root", "admin",
                ]
                .iter()
                .enumerate()
                {
                    batch.push(event(
                        now + i as i64 * 150,
                        EventKind::LoginFailed {
                            user: (*user).into(),
                            service: "telnetd".into(),
                            source: Some(ATTACKER_ADDRESS.into()),
                        },
                    ));
                }
                batch.push(event(
                    now + 2400,
                    EventKind::LoginSucceeded {
                        user: "root".into(),
                        service: "telnetd".into(),
                        source: Some(ATTACKER_ADDRESS.into()),
                        method: Some("password".into()),
                    },
                ));
                batch.push(event(
                    now + 3000,
                    EventKind::ProcessStarted {
                        name: "dvrHelper".into(),
                        path: Some("/tmp/.x/mirai.arm7".into()),
                        pid: Some(4242),
                        user: Some("root".into()),
                        command_line: Some("/tmp/.x/mirai.arm7 scanner".into()),
                    },
                ));
                batch.push(event(
                    now + 3100,
                    EventKind::FileChanged {
                        path: profile::BUSYBOX.into(),
                        sha256: None,
                        previous_sha256: None,
                    },
                ));
                batch.push(event(
                    now + 3500,
                    EventKind::ConnectionOpened {
                        protocol: Protocol::Tcp,
                        destination: C2_ADDRESS.into(),
                        port: 23,
                        process: Some("dvrHelper".into()),
                    },
                ));
                batch.push(event(
                    now + 3600,
                    EventKind::ListeningPortOpened {
                        protocol: Protocol::Tcp,
                        port: 2323,
                        address: Some("0.0.0.0".into()),
                        process: Some("dvrHelper".into()),
                    },
                ));
                for i in 0..20 {
                    let a = self.rng.next_u64();
                    batch.push(event(
                        now + 4000 + i,
                        EventKind::ConnectionOpened {
                            protocol: Protocol::Tcp,
                            destination: format!(
                                "{}.{}.{}.{}",
                                1 + a % 223,
                                (a >> 8) % 256,
                                (a >> 16) % 256,
                                1 + (a >> 24) % 254
                            ),
                            port: if i % 2 == 0 { 23 } else { 2323 },
                            process: Some("dvrHelper".into()),
                        },
                    ));
                }
                session.publish(Channel::Events, self.events(batch)).await?;
                self.state.tampered = true;
                self.state.beaconing = true;
                self.state.scanning = true;
                self.state.extra_listening.push(ListeningSocket {
                    protocol: Protocol::Tcp,
                    address: "0.0.0.0".into(),
                    port: 2323,
                    process: Some("dvrHelper".into()),
                    pid: Some(4242),
                });
                session
                    .publish(Channel::Inventory, self.inventory())
                    .await?;
                session
                    .publish(Channel::Telemetry, self.telemetry())
                    .await?;
            }
            ScenarioKind::C2Beacon => {
                self.state.beaconing = true;
                let beacon = event(
                    now,
                    EventKind::ConnectionOpened {
                        protocol: Protocol::Tcp,
                        destination: C2_ADDRESS.into(),
                        port: 443,
                        process: Some("updaterd".into()),
                    },
                );
                session
                    .publish(Channel::Events, self.events(vec![beacon]))
                    .await?;
            }
            ScenarioKind::PortScan => {
                let subnet = 20 + (self.plan.index / 240) % 200;
                let mut batch = Vec::new();
                for host in 1..=254u16 {
                    for port in [22u16, 23, 80, 443] {
                        if batch.len() == 1000 {
                            session
                                .publish(Channel::Events, self.events(std::mem::take(&mut batch)))
                                .await?;
                        }
                        batch.push(event(
                            now + i64::from(host),
                            EventKind::ConnectionOpened {
                                protocol: Protocol::Tcp,
                                destination: format!("10.{subnet}.1.{host}"),
                                port,
                                process: Some("sh".into()),
                            },
                        ));
                    }
                }
                session.publish(Channel::Events, self.events(batch)).await?;
            }
            ScenarioKind::FirmwareTamper => {
                self.state.tampered = true;
                self.state.downgraded = true;
                session
                    .publish(Channel::Inventory, self.inventory())
                    .await?;
            }
            ScenarioKind::CredentialStuffing => self.stuff_credentials(30).await,
            ScenarioKind::ReconnectStorm => {
                for _ in 0..20 {
                    session.disconnect().await;
                    *session = self.session(Backoff::none(), inbound.clone())?;
                    session.wait_connected(Duration::from_secs(5)).await;
                }
                *session = self.session(Backoff::default(), inbound.clone())?;
            }
        }
        Ok(())
    }

    /// Answers an update offer as a device does: pins the server's trust root at the first
    /// offer (and follows its rotations), verifies the manifest and downloads every artifact
    /// with the device certificate through [`garrison_agent::update::fetch`], reporting each
    /// stage; then pretends to install. A device the plan makes fail installs rolls back.
    async fn update(&mut self, session: &Session, payload: &[u8]) {
        let Ok(notice) = serde_json::from_slice::<UpdateNotice>(payload) else {
            tracing::warn!(device = %self.plan.id, "An update notice that does not parse");
            return;
        };
        if notice.action == UpdateAction::Cancel {
            return;
        }
        let reporter = Reporter {
            publisher: session.publisher(),
            device: self.plan.id.to_string(),
            notice: notice.clone(),
        };
        let fetched = match self.fetch_update(&notice, &reporter).await {
            Ok(f) => f,
            Err(reason) if reason == ALREADY_INSTALLED => {
                reporter.report(UpdateState::Succeeded, Some(reason)).await;
                return;
            }
            Err(reason) => {
                tracing::info!(device = %self.plan.id, %reason, "Update refused");
                reporter.report(UpdateState::Failed, Some(reason)).await;
                return;
            }
        };
        if notice.action == UpdateAction::DownloadOnly {
            return;
        }
        reporter.report(UpdateState::Installing, None).await;
        if self.endpoint.update_failure_rate > 0.0
            && self.failure_draw() < self.endpoint.update_failure_rate
        {
            reporter
                .report(
                    UpdateState::RolledBack,
                    Some(
                        "health check failed after install; the previous image was restored".into(),
                    ),
                )
                .await;
            return;
        }
        reporter.report(UpdateState::Installed, None).await;
        self.state.installed_sequence = fetched.sequence;
        self.state.firmware = Some(fetched.version.clone());
        reporter.report(UpdateState::Rebooted, None).await;
        let _ = session.publish(Channel::Inventory, self.inventory()).await;
        reporter.report(UpdateState::Succeeded, None).await;
    }

    /// A fixed draw per device in [0, 1): whether it is one of the fleet's failing devices
    /// does not depend on timing.
    fn failure_draw(&self) -> f64 {
        let mut rng = Rng::new(0x5eed_0000 ^ self.plan.index as u64);
        rng.below(1_000_000) as f64 / 1_000_000.0
    }

    async fn fetch_update(
        &mut self,
        notice: &UpdateNotice,
        reporter: &Reporter,
    ) -> Result<garrison_update::Manifest, String> {
        let client = self
            .endpoint
            .est
            .http(Some((&self.identity.cert_pem, &self.identity.key_pem)))
            .map_err(|e| e.to_string())?;
        let (root, _) = garrison_agent::update::current_root(
            &client,
            self.endpoint.est.base(),
            self.state.root.as_ref(),
        )
        .await?;
        self.state.root = Some(root.clone());
        let spec = self.plan.profile.spec();
        let device = garrison_update::DeviceState {
            vendor: spec.manufacturer.to_owned(),
            class: spec.model.to_owned(),
            installed_sequence: self.state.installed_sequence,
        };
        if garrison_agent::update::already_installed(notice, &root, &device, now_ms()) {
            return Err(ALREADY_INSTALLED.into());
        }
        let manifest = garrison_agent::update::verify_notice(notice, &root, &device, now_ms())
            .map_err(|e| e.to_string())?;
        reporter.report(UpdateState::Downloading, None).await;
        garrison_agent::update::download(notice, &manifest, &client, None)
            .await
            .map_err(|e| e.to_string())?;
        reporter.report(UpdateState::Downloaded, None).await;
        reporter.report(UpdateState::Verified, None).await;
        Ok(manifest)
    }

    /// Connects with this device's certificate under other devices' client ids; the broker must
    /// refuse every one.
    async fn stuff_credentials(&mut self, attempts: usize) {
        let Ok(tls) = tls_config(
            &self.endpoint.ca_pem,
            &self.identity.cert_pem,
            &self.identity.key_pem,
        ) else {
            return;
        };
        for i in 0..attempts {
            let victim = format!("{}-victim-{i:03}", self.plan.id);
            let mut options = MqttOptions::new(
                victim,
                self.endpoint.mqtt_host.clone(),
                self.endpoint.mqtt_port,
            );
            options.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls.clone())));
            let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 4);
            let outcome = tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await;
            match outcome {
                Ok(Ok(Event::Incoming(Incoming::ConnAck(_)))) => {
                    tracing::error!(device = %self.plan.id, "The broker accepted a connection under another client id");
                }
                _ => {
                    tracing::debug!(device = %self.plan.id, "Stuffing attempt refused, as it must be")
                }
            }
        }
    }
}

/// What a device answers to a retried offer of the release it already runs.
const ALREADY_INSTALLED: &str = "this release is already installed";

/// Runs one device until `stop` turns true: connects, reports, and plays what `control` says.
pub(crate) async fn run_device(
    plan: PlannedDevice,
    endpoint: Endpoint,
    identity: Identity,
    mut control: mpsc::Receiver<Control>,
    mut stop: watch::Receiver<bool>,
    connected: Arc<std::sync::atomic::AtomicUsize>,
) {
    let (inbound_tx, mut inbound) = mpsc::channel(8);
    let mut device = Device {
        rng: Rng::new(plan.index as u64),
        plan,
        endpoint,
        identity,
        state: State {
            tampered: false,
            downgraded: false,
            extra_listening: Vec::new(),
            beaconing: false,
            scanning: false,
            root: None,
            installed_sequence: 0,
            firmware: None,
        },
    };
    let mut session = match device.session(Backoff::default(), inbound_tx.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(device = %device.plan.id, error = %e, "Cannot start the session");
            return;
        }
    };
    if session.wait_connected(Duration::from_secs(60)).await {
        connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let _ = session
        .publish(Channel::Inventory, device.inventory())
        .await;
    // Spread telemetry over the interval so a fleet does not publish in lockstep.
    let offset = Duration::from_millis(
        device.rng.below(
            u64::try_from(device.endpoint.telemetry_interval.as_millis())
                .unwrap_or(1)
                .max(1),
        ),
    );
    let mut telemetry = tokio::time::interval_at(
        tokio::time::Instant::now() + offset,
        device.endpoint.telemetry_interval,
    );
    let mut beacon = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() {
                    session.disconnect().await;
                    return;
                }
            }
            _ = telemetry.tick() => {
                let payload = device.telemetry();
                let _ = session.publish(Channel::Telemetry, payload).await;
            }
            _ = beacon.tick(), if device.state.beaconing => {
                let e = DeviceEvent { at: now_ms(), kind: EventKind::ConnectionOpened {
                    protocol: Protocol::Tcp, destination: C2_ADDRESS.into(), port: 443, process: Some("updaterd".into()),
                }};
                let _ = session.publish(Channel::Events, device.events(vec![e])).await;
            }
            Some(Control::Play(kind)) = control.recv() => {
                if let Err(e) = device.play(kind, &mut session, &inbound_tx).await {
                    tracing::warn!(device = %device.plan.id, scenario = %kind, error = %e, "A scenario step failed");
                }
            }
            Some(message) = inbound.recv() => {
                if let Inbound::Update(bytes) = &message {
                    device.update(&session, bytes).await;
                }
                if let Inbound::Command(command) = message {
                    // The simulator keeps its keys in memory; it answers honestly that it did
                    // nothing rather than pretending to rotate.
                    let status = if command.command == garrison_contract::Command::REPORT_INVENTORY {
                        let _ = session.publish(Channel::Inventory, device.inventory()).await;
                        CommandStatus::Ok
                    } else {
                        CommandStatus::Unsupported
                    };
                    let result = CommandResult {
                        schema: SCHEMA_VERSION,
                        device_id: Some(device.plan.id.to_string()),
                        id: command.id.clone(),
                        command: command.command.clone(),
                        status,
                        message: None,
                    };
                    let _ = session.publish(Channel::CommandResult, encode(&result)).await;
                }
            }
        }
    }
}
