//! The agent's main loop: get an identity, keep it fresh, connect, and report.
//!
//! 1. **Identity.** The key is made on the device and never leaves it. Without a certificate
//!    the agent enrolls over EST (token, claim certificate, or approval, waiting as the server
//!    says); it renews with its current certificate once less than a third of the validity is
//!    left, and rotates to a new key when the server sends `rotate-certificate`.
//! 2. **Session.** MQTT over mutual TLS, reconnecting with jittered back-off.
//! 3. **Reports.** Birth on every connection, then the inventory; telemetry every interval;
//!    auth-log events as they appear; a rescan of the facts every few minutes that publishes
//!    the inventory when anything changed, with listening-port and watched-file changes as
//!    events; the full inventory at least every `inventory_interval` regardless.

use std::{path::PathBuf, time::Duration};

use garrison_contract::{
    Birth, Channel, Command, CommandResult, CommandStatus, DeviceEvent, Events, Inventory,
    SCHEMA_VERSION, UpdateAction, UpdateNotice, UpdateState, encode, encode_compressed,
};
use garrison_core::{DeviceId, now_ms};
use tokio::sync::mpsc;

use crate::{
    backoff::Backoff,
    collect::{
        AuthLogFollower, Collector, TelemetrySampler, listening_changes, watched_file_changes,
    },
    est::{Credential, Enrolled, EstClient, EstError, make_csr},
    install::{self, InstalledState, InstallerConfig, Reporter},
    keystore::{FileKeyStore, KeyStore, KeyStoreError},
    session::{Inbound, Session, SessionConfig, SessionError, tls_config},
};

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The device id (certificate CN).
    pub device: DeviceId,
    /// Garrison's HTTPS base URL, for EST.
    pub server: String,
    /// Broker host.
    pub mqtt_host: String,
    /// Broker port.
    pub mqtt_port: u16,
    /// Garrison's CA certificate(s), PEM.
    pub ca_pem: Vec<u8>,
    /// Where the key and certificate are kept.
    pub state_dir: PathBuf,
    /// How to enroll when there is no certificate yet.
    pub credential: Credential,
    /// Filesystem root the facts are read from (`/`).
    pub root: PathBuf,
    /// Files whose hashes are watched.
    pub watch: Vec<String>,
    /// Telemetry interval.
    pub telemetry_interval: Duration,
    /// How often facts are re-read to detect changes.
    pub scan_interval: Duration,
    /// The inventory is sent at least this often.
    pub inventory_interval: Duration,
    /// How often the auth log is read.
    pub events_interval: Duration,
    /// How often the certificate's remaining validity is checked.
    pub renew_check_interval: Duration,
    /// How updates are installed (none: offers are refused).
    pub installer: Option<UpdateOptions>,
}

/// The agent's update settings; vendor and class default to the hardware facts read.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// Installer command (artifact paths appended).
    pub installer: Vec<String>,
    /// Health check command.
    pub health_check: Option<Vec<String>>,
    /// Rollback command.
    pub rollback: Option<Vec<String>>,
    /// Per-command time limit.
    pub timeout: Duration,
    /// Vendor, if not the hardware manufacturer.
    pub vendor: Option<String>,
    /// Device class, if not the hardware model.
    pub class: Option<String>,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The key store failed.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// Enrollment was refused.
    #[error(transparent)]
    Est(#[from] EstError),
    /// The MQTT session could not be set up.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The stored certificate cannot be read.
    #[error("the stored certificate is unreadable: {0}")]
    Certificate(String),
}

/// The agent's name on the wire.
pub const AGENT_NAME: &str = "garrison-agent";

/// Start and end of a PEM certificate's validity, Unix ms.
pub fn certificate_validity(cert_pem: &str) -> Option<(i64, i64)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let v = cert.validity();
    Some((
        v.not_before.timestamp().saturating_mul(1000),
        v.not_after.timestamp().saturating_mul(1000),
    ))
}

/// Whether a certificate should be renewed now: less than a third of its validity is left.
pub fn needs_renewal(cert_pem: &str, now: i64) -> bool {
    match certificate_validity(cert_pem) {
        Some((start, end)) => end - now < (end - start) / 3,
        None => true,
    }
}

/// Enrolls until a certificate is issued: waits as long as the server says while pending,
/// backs off on transport errors, gives up on a refusal.
pub async fn enroll_until_issued(
    est: &EstClient,
    device: &DeviceId,
    key_pem: &str,
    credential: &Credential,
) -> Result<String, EstError> {
    let csr = make_csr(device, key_pem)?;
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
    loop {
        match est.enroll(device, &csr, credential).await {
            Ok(Enrolled::Issued(cert)) => return Ok(cert),
            Ok(Enrolled::Pending(wait)) => {
                tracing::info!(%device, retry_in_s = wait.as_secs(), "Enrollment is waiting for an operator's approval");
                tokio::time::sleep(wait).await;
            }
            Err(e @ EstError::Transport { .. }) => {
                let wait = backoff.next_delay();
                tracing::warn!(%device, error = %e, retry_in_ms = wait.as_millis() as u64, "Cannot reach the EST server; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

struct Agent {
    config: AgentConfig,
    store: FileKeyStore,
    est: EstClient,
    collector: Collector,
    sampler: TelemetrySampler,
    auth_log: AuthLogFollower,
    last: Option<Inventory>,
    last_sent_at: i64,
    /// The pinned trust root (or why the kept one cannot be read: updates are then refused,
    /// never re-pinned from the server).
    root: Result<Option<garrison_update::TrustRoot>, String>,
    /// The install in progress, if any.
    installing: Option<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Answers an update notice: refused without an installer, else verified, downloaded,
    /// installed and checked by [`install::apply`] in a task of its own, so the session keeps
    /// being served during a long install; `done` hears whether a release was installed.
    async fn update(
        &mut self,
        session: &Session,
        cert: &str,
        key: &str,
        payload: &[u8],
        done: &mpsc::Sender<bool>,
    ) {
        let Ok(notice) = serde_json::from_slice::<UpdateNotice>(payload) else {
            tracing::warn!("Ignored an update notice that does not parse");
            return;
        };
        if notice.action == UpdateAction::Cancel {
            tracing::info!(campaign = %notice.campaign, "The server withdrew an update offer");
            return;
        }
        if let Some(current) = &self.installing
            && current.is_finished()
        {
            self.installing = None;
        }
        if self.installing.is_some() {
            // The notice comes again (the server re-sends at start; retries follow timeouts).
            tracing::info!(campaign = %notice.campaign, "An update is being installed; this offer waits for the server to ask again");
            return;
        }
        let reporter = Reporter {
            publisher: session.publisher(),
            device: self.config.device.to_string(),
            notice: notice.clone(),
        };
        let Some(options) = self.config.installer.clone() else {
            reporter
                .report(
                    UpdateState::Failed,
                    Some("this agent has no installer configured (--update-installer)".into()),
                )
                .await;
            return;
        };
        let hardware = self
            .last
            .as_ref()
            .map(|i| i.hardware.clone())
            .unwrap_or_default();
        let (Some(vendor), Some(class)) = (
            options.vendor.clone().or(hardware.manufacturer),
            options.class.clone().or(hardware.model),
        ) else {
            reporter
                .report(
                    UpdateState::Failed,
                    Some("the device's vendor or model is unknown; set --update-vendor and --update-class".into()),
                )
                .await;
            return;
        };
        let client = match self.est.http(Some((cert, key))) {
            Ok(c) => c,
            Err(e) => {
                reporter
                    .report(UpdateState::Failed, Some(e.to_string()))
                    .await;
                return;
            }
        };
        let pinned = match &self.root {
            Ok(p) => p.clone(),
            Err(reason) => {
                reporter
                    .report(UpdateState::Failed, Some(reason.clone()))
                    .await;
                return;
            }
        };
        let root = match crate::update::current_root(&client, &self.config.server, pinned.as_ref())
            .await
        {
            Ok((root, Some(document))) => {
                if let Err(e) = install::pin_root(&self.config.state_dir, &document) {
                    reporter
                        .report(
                            UpdateState::Failed,
                            Some(format!("cannot keep the trust root: {e}")),
                        )
                        .await;
                    return;
                }
                root
            }
            Ok((root, None)) => root,
            Err(reason) => {
                reporter.report(UpdateState::Failed, Some(reason)).await;
                return;
            }
        };
        self.root = Ok(Some(root.clone()));
        let config = InstallerConfig {
            installer: options.installer,
            health_check: options.health_check,
            rollback: options.rollback,
            timeout: options.timeout,
            vendor,
            class,
        };
        let state_dir = self.config.state_dir.clone();
        let done = done.clone();
        self.installing = Some(tokio::spawn(async move {
            let installed = install::apply(
                &notice,
                &root,
                &config,
                &state_dir,
                &client,
                &reporter,
                now_ms(),
            )
            .await
            .is_some();
            let _ = done.send(installed).await;
        }));
    }

    fn birth(&self) -> Vec<u8> {
        encode(&Birth {
            schema: SCHEMA_VERSION,
            device_id: Some(self.config.device.to_string()),
            agent: AGENT_NAME.into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            booted_at: self.collector.booted_at_ms(),
            boot_id: self.collector.boot_id(),
        })
    }

    async fn identity(&self) -> Result<(String, String), AgentError> {
        let id = self.store.load_or_create()?;
        if let Some(cert) = &id.cert_pem
            && certificate_validity(cert).is_some_and(|(_, end)| end > now_ms())
        {
            return Ok((cert.clone(), id.key_pem));
        }
        tracing::info!(device = %self.config.device, "No valid certificate: enrolling over EST");
        let cert = enroll_until_issued(
            &self.est,
            &self.config.device,
            &id.key_pem,
            &self.config.credential,
        )
        .await?;
        self.store.commit(&cert, false)?;
        tracing::info!(device = %self.config.device, "Enrolled");
        Ok((cert, id.key_pem))
    }

    fn session(
        &self,
        cert: &str,
        key: &str,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Session, AgentError> {
        Ok(Session::start(
            SessionConfig {
                device: self.config.device.clone(),
                host: self.config.mqtt_host.clone(),
                port: self.config.mqtt_port,
                tls: tls_config(&self.config.ca_pem, cert, key)?,
                keep_alive: Duration::from_secs(60),
                backoff: Backoff::default(),
                birth: self.birth(),
            },
            inbound,
        ))
    }

    /// Renews (same key) or rotates (new key) over `simplereenroll`.
    async fn reenroll(
        &self,
        cert: &str,
        key: &str,
        rotate: bool,
    ) -> Result<(String, String), AgentError> {
        let new_key = if rotate {
            self.store.new_pending_key()?
        } else {
            key.to_owned()
        };
        let csr = make_csr(&self.config.device, &new_key)?;
        match self.est.reenroll(&csr, cert, key).await? {
            Enrolled::Issued(new_cert) => {
                self.store.commit(&new_cert, rotate)?;
                tracing::info!(device = %self.config.device, rotate, "Certificate renewed");
                Ok((new_cert, new_key))
            }
            Enrolled::Pending(_) => Err(AgentError::Est(EstError::BadResponse(
                "the server answered a renewal with \"pending\"".into(),
            ))),
        }
    }

    /// Re-reads the facts; returns the inventory when it changed (or is due) and the events
    /// the changes mean.
    fn rescan(&mut self, force: bool) -> (Option<Inventory>, Vec<DeviceEvent>) {
        let now = now_ms();
        let mut inventory = self.collector.inventory(now);
        inventory.device_id = Some(self.config.device.to_string());
        // The release this agent installed is the firmware, whatever the files say.
        if let Some(version) = InstalledState::load(&self.config.state_dir)
            .ok()
            .and_then(|s| s.version)
        {
            inventory.firmware.version = Some(version);
        }
        let mut events = Vec::new();
        let changed = match &self.last {
            None => true,
            Some(prev) => {
                if let (Some(a), Some(b)) = (&prev.listening, &inventory.listening) {
                    events.extend(listening_changes(a, b, now));
                }
                events.extend(watched_file_changes(
                    &prev.watched_files,
                    &inventory.watched_files,
                    now,
                ));
                let mut a = prev.clone();
                a.collected_at = inventory.collected_at;
                a != inventory
            }
        };
        let due = now - self.last_sent_at
            >= i64::try_from(self.config.inventory_interval.as_millis()).unwrap_or(i64::MAX);
        self.last = Some(inventory.clone());
        if changed || due || force {
            self.last_sent_at = now;
            (Some(inventory), events)
        } else {
            (None, events)
        }
    }
}

async fn publish_events(session: &Session, device: &DeviceId, events: Vec<DeviceEvent>) {
    for chunk in events.chunks(500) {
        let batch = Events {
            schema: SCHEMA_VERSION,
            device_id: Some(device.to_string()),
            events: chunk.to_vec(),
        };
        if let Err(e) = session.publish(Channel::Events, encode(&batch)).await {
            tracing::warn!(error = %e, "Cannot queue events");
        }
    }
}

async fn answer(
    session: &Session,
    device: &DeviceId,
    command: &Command,
    status: CommandStatus,
    message: Option<String>,
) {
    let result = CommandResult {
        schema: SCHEMA_VERSION,
        device_id: Some(device.to_string()),
        id: command.id.clone(),
        command: command.command.clone(),
        status,
        message,
    };
    let _ = session
        .publish(Channel::CommandResult, encode(&result))
        .await;
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(
    config: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let store = FileKeyStore::open(&config.state_dir)?;
    let est = EstClient::new(&config.server, config.ca_pem.clone());
    let collector = Collector::new(&config.root).watch_files(config.watch.clone());
    let auth_log = AuthLogFollower::new(&config.root);
    let mut agent = Agent {
        config,
        store,
        est,
        collector,
        sampler: TelemetrySampler::new(),
        auth_log,
        last: None,
        last_sent_at: 0,
        root: Ok(None),
        installing: None,
    };
    let (installed_tx, mut installed_rx) = mpsc::channel::<bool>(1);
    agent.root = install::pinned_root(&agent.config.state_dir);
    let (mut cert, mut key) = agent.identity().await?;
    let (inbound_tx, mut inbound) = mpsc::channel(16);
    let mut session = agent.session(&cert, &key, inbound_tx.clone())?;
    let device = agent.config.device.clone();

    // Telemetry starts from a baseline taken now.
    let _ = agent.sampler.sample(agent.collector.counters(), now_ms());
    let mut telemetry = tokio::time::interval(agent.config.telemetry_interval);
    let mut scan = tokio::time::interval(agent.config.scan_interval);
    let mut events = tokio::time::interval(agent.config.events_interval);
    let mut renew = tokio::time::interval(agent.config.renew_check_interval);
    for t in [&mut telemetry, &mut scan, &mut events, &mut renew] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("Stopping");
                session.disconnect().await;
                return Ok(());
            }
            _ = scan.tick() => {
                let (inventory, changes) = agent.rescan(false);
                if let Some(inv) = inventory
                    && let Err(e) = session.publish(Channel::Inventory, encode_compressed(&inv, 64 * 1024)).await
                {
                    tracing::warn!(error = %e, "Cannot queue the inventory");
                }
                publish_events(&session, &device, changes).await;
            }
            _ = telemetry.tick() => {
                if let Some(mut t) = agent.sampler.sample(agent.collector.counters(), now_ms()) {
                    t.device_id = Some(device.to_string());
                    let _ = session.publish(Channel::Telemetry, encode(&t)).await;
                }
            }
            _ = events.tick() => {
                let found = agent.auth_log.poll();
                publish_events(&session, &device, found).await;
            }
            _ = renew.tick() => {
                if needs_renewal(&cert, now_ms()) {
                    match agent.reenroll(&cert, &key, false).await {
                        Ok((c, k)) => {
                            (cert, key) = (c, k);
                            session.disconnect().await;
                            session = agent.session(&cert, &key, inbound_tx.clone())?;
                        }
                        Err(e) => tracing::warn!(error = %e, "Renewal failed; will retry"),
                    }
                }
            }
            Some(message) = inbound.recv() => match message {
                Inbound::Command(command) => match command.command.as_str() {
                    Command::ROTATE_CERTIFICATE => match agent.reenroll(&cert, &key, true).await {
                        Ok((c, k)) => {
                            (cert, key) = (c, k);
                            session.disconnect().await;
                            session = agent.session(&cert, &key, inbound_tx.clone())?;
                            answer(&session, &device, &command, CommandStatus::Ok, None).await;
                        }
                        Err(e) => answer(&session, &device, &command, CommandStatus::Failed, Some(e.to_string())).await,
                    },
                    Command::REPORT_INVENTORY => {
                        let (inventory, _) = agent.rescan(true);
                        if let Some(inv) = inventory {
                            let _ = session.publish(Channel::Inventory, encode_compressed(&inv, 64 * 1024)).await;
                        }
                        answer(&session, &device, &command, CommandStatus::Ok, None).await;
                    }
                    _ => answer(&session, &device, &command, CommandStatus::Unsupported, None).await,
                },
                Inbound::BadCommand(detail) => tracing::warn!(detail, "Ignored a malformed command"),
                Inbound::Update(payload) => agent.update(&session, &cert, &key, &payload, &installed_tx).await,
            },
            Some(installed) = installed_rx.recv() => {
                agent.installing = None;
                if installed {
                    let (inventory, _) = agent.rescan(true);
                    if let Some(inv) = inventory {
                        let _ = session.publish(Channel::Inventory, encode_compressed(&inv, 64 * 1024)).await;
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_after_two_thirds() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        params.not_after =
            time::OffsetDateTime::from_unix_timestamp(1_000_000 + 90 * 86_400).unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        let (start, end) = certificate_validity(&pem).unwrap();
        assert_eq!(
            (start, end),
            (1_000_000_000, (1_000_000 + 90 * 86_400) * 1000)
        );
        assert!(!needs_renewal(&pem, start + 59 * 86_400_000));
        assert!(needs_renewal(&pem, start + 61 * 86_400_000));
        assert!(needs_renewal("garbage", 0));
    }
}
