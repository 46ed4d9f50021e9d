//! Garrison's embedded MQTT broker: MQTT 3.1.1 and 5 over mutual TLS, where a device may speak
//! only as itself.
//!
//! The broker is [rmqtt](https://github.com/rmqtt/rmqtt) run in-process; Garrison supplies the
//! policy through rmqtt's hooks (see [`hooks`]):
//! - **connect**: the TLS layer has verified the client certificate against Garrison's CA; the
//!   hook then requires its CN to be a device id equal to the MQTT client id, and its serial not
//!   to be revoked (rmqtt has no CRL support, so revocation is checked here, by serial, against
//!   the identity service's live [`Directory`](garrison_identity::Directory)). Claim
//!   certificates (`CN=claim:…`) are not device ids and never connect.
//! - **subscribe / publish**: the device contract's topic table
//!   ([`garrison_core::device::check_publish`] / [`check_subscribe`](garrison_core::device::check_subscribe)),
//!   with the quarantine profile applied per message.
//! - **revocation is live**: a task follows the identity service's events and closes a session
//!   whose certificate was just revoked.
//!
//! Every message that passes the ACL is handed to the intake through a bounded channel *before*
//! rmqtt acknowledges it, so a full intake slows the publisher down instead of losing what was
//! acknowledged. Queue limits, in-flight windows and TCP_NODELAY are set explicitly in
//! [`BrokerSettings`]; rmqtt's defaults lose QoS 1 messages under load.
#![forbid(unsafe_code)]

mod counters;
pub mod hooks;
mod lab;
mod limits;
mod takeover;

use std::{collections::HashMap, net::SocketAddr, num::NonZeroU16, path::PathBuf, time::Duration};

use bytes::Bytes;
use garrison_core::{DeviceId, device::device_topic};
use garrison_identity::{IdentityEvent, IdentityService};
use rmqtt::{
    context::ServerContext,
    hook::Type,
    net::Builder,
    server::MqttServer,
    session::SessionState,
    types::{ClientId, CodecPublish, From, Id},
};
use tokio::{sync::mpsc, task::JoinHandle};

pub use counters::{DeviceCounters, RECENT_ADDRESSES};
pub use lab::{LabBroker, LabSettings};
pub use limits::AbuseLimits;
pub use rmqtt::codec::types::QoS;

/// How the broker runs; resolved from the server configuration.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// mTLS listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The broker's server certificate chain, PEM file.
    pub cert_file: PathBuf,
    /// Its private key, PEM file (0600).
    pub key_file: PathBuf,
    /// The CA certificates client certificates must chain to, PEM file.
    pub client_ca_file: PathBuf,
    /// Largest MQTT packet accepted, bytes.
    pub max_packet_size: u32,
    /// Messages queued per session before the oldest QoS 1/2 message is evicted (each eviction
    /// is counted).
    pub max_queued_messages: usize,
    /// Unacknowledged QoS 1/2 messages in flight per session.
    pub max_inflight: u16,
    /// Deadline for the TLS handshake and the MQTT CONNECT.
    pub handshake_timeout: Duration,
    /// Most sessions at once (online and persistent offline ones).
    pub max_sessions: usize,
    /// Most keep-alive a client may ask for, seconds.
    pub max_keepalive: u16,
    /// Capacity of the channel to the intake; when full, publishers wait.
    pub intake_capacity: usize,
    /// Per-device rates and per-source connection attempts.
    pub limits: AbuseLimits,
    /// Where connects, disconnects and refused connections are reported (the inventory's
    /// presence and unmanaged-device views); `None`: nowhere.
    pub session_events: Option<mpsc::Sender<SessionEvent>>,
}

impl BrokerSettings {
    /// Settings with Garrison's deliberate limits for the given address and files.
    pub fn new(
        listen: SocketAddr,
        cert_file: PathBuf,
        key_file: PathBuf,
        client_ca_file: PathBuf,
    ) -> BrokerSettings {
        BrokerSettings {
            listen,
            cert_file,
            key_file,
            client_ca_file,
            max_packet_size: 256 * 1024,
            max_queued_messages: 10_000,
            max_inflight: 32,
            handshake_timeout: Duration::from_secs(5),
            max_sessions: 100_000,
            max_keepalive: 600,
            intake_capacity: 10_000,
            limits: AbuseLimits::NONE,
            session_events: None,
        }
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The listener could not be bound or its TLS files are unusable.
    #[error("cannot start the MQTT listener on {addr}: {detail}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// What went wrong.
        detail: String,
    },
    /// A server-side publish failed.
    #[error("cannot publish to {topic}: {detail}")]
    Publish {
        /// Topic.
        topic: String,
        /// What went wrong.
        detail: String,
    },
    /// The channel is not one the server sends on.
    #[error("{0:?} is not a server-to-device channel (cmd, update)")]
    NotServerChannel(String),
}

/// A change in who is connected, as the broker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A device's session started.
    Connected {
        /// The device.
        device: DeviceId,
        /// Its source address.
        address: Option<String>,
        /// When, Unix ms.
        at: i64,
    },
    /// A device's session ended (not counting sessions taken over by a newer connection).
    Disconnected {
        /// The device.
        device: DeviceId,
        /// When, Unix ms.
        at: i64,
    },
    /// A connection was refused at authentication.
    Refused {
        /// The client id presented.
        client_id: String,
        /// The certificate's CN, if it had one.
        common_name: Option<String>,
        /// Source address.
        address: Option<String>,
        /// Why (`client_id_differs_from_certificate`, …).
        reason: &'static str,
        /// When, Unix ms.
        at: i64,
    },
    /// A device's publish or subscription was refused by the topic ACL.
    AccessRefused {
        /// The device.
        device: DeviceId,
        /// `true` for a SUBSCRIBE, `false` for a PUBLISH.
        subscribe: bool,
        /// The topic or filter.
        topic: String,
        /// Why (`foreign_topic`, `quarantined`, …).
        reason: &'static str,
        /// When, Unix ms.
        at: i64,
    },
}

/// What the broker knows about one device's connections, for the posture audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConnection {
    /// The device.
    pub device: String,
    /// Serial of the certificate of its live session, if connected now.
    pub connected_serial: Option<String>,
    /// Its counters.
    pub counters: DeviceCounters,
}

/// A message a device published that passed the ACL, on its way to the intake.
#[derive(Debug, Clone)]
pub struct DeviceMessage {
    /// The device.
    pub device: DeviceId,
    /// Full topic.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// When it arrived, Unix milliseconds.
    pub received_at: i64,
}

/// A running broker.
pub struct Broker {
    scx: ServerContext,
    local_addr: SocketAddr,
    hooks: hooks::GarrisonHooks,
    server: JoinHandle<()>,
    watcher: JoinHandle<()>,
}

impl Broker {
    /// Binds the mTLS listener and starts the broker. Messages that pass the ACL go to `intake`.
    pub async fn start(
        settings: BrokerSettings,
        identity: IdentityService,
        intake: mpsc::Sender<DeviceMessage>,
    ) -> Result<Broker, BrokerError> {
        let listen_error = |detail: String| BrokerError::Listen {
            addr: settings.listen,
            detail,
        };
        let listener = Builder::new()
            .name("garrison/mqtts")
            .laddr(settings.listen)
            // Restarting must not fail on sockets left in TIME_WAIT.
            .reuseaddr(Some(true))
            // Nagle adds ~40 ms to small telemetry messages; see BENCHMARKS.md.
            .nodelay(true)
            // Without a username rmqtt would skip the authentication hook entirely.
            .allow_anonymous(false)
            .tls_cross_certificate(true)
            .tls_cert(Some(settings.cert_file.display().to_string()))
            .tls_key(Some(settings.key_file.display().to_string()))
            .tls_client_ca_certs(Some(settings.client_ca_file.display().to_string()))
            .collect_cert_info(true)
            .max_packet_size(settings.max_packet_size)
            .max_mqueue_len(settings.max_queued_messages)
            .max_inflight(NonZeroU16::new(settings.max_inflight).unwrap_or(NonZeroU16::MIN))
            .handshake_timeout(settings.handshake_timeout)
            .max_handshaking_limit(1000)
            .max_keepalive(settings.max_keepalive)
            .bind()
            .map_err(|e| listen_error(e.to_string()))?;
        let local_addr = listener.cfg.laddr;
        let listener = listener.tls().map_err(|e| listen_error(e.to_string()))?;

        let scx = ServerContext::new()
            .node_id(1)
            .mqtt_max_sessions(isize::try_from(settings.max_sessions).unwrap_or(isize::MAX))
            // rmqtt's busy check refuses every CONNECT when the machine's CPU passes 90%,
            // which a 2-core gateway under load reaches; admission is ours to decide.
            .busy_check_enable(false)
            .build()
            .await;
        // A reconnect with a client id still connected, connecting or disconnecting takes the
        // session over instead of being refused; see `takeover`.
        takeover::install(&scx, settings.handshake_timeout, false).await;
        let hooks = hooks::GarrisonHooks::new(
            identity.clone(),
            intake,
            limits::Limiter::new(settings.limits),
            settings.session_events.clone(),
        );
        let register = scx.extends.hook_mgr().register();
        for hook in [
            Type::ClientAuthenticate,
            Type::ClientSubscribeCheckAcl,
            Type::MessagePublishCheckAcl,
            Type::MessageDropped,
            Type::ClientConnected,
            Type::ClientDisconnected,
        ] {
            register.add(hook, Box::new(hooks.clone())).await;
        }
        register.start().await;

        let server = MqttServer::new(scx.clone()).listener(listener).build();
        let server = tokio::spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!(error = %e, "The MQTT broker stopped");
            }
        });
        let watcher = tokio::spawn(watch_identity(scx.clone(), hooks.clone(), identity));
        tracing::info!(addr = %local_addr, "MQTT broker (mutual TLS) started");
        Ok(Broker {
            scx,
            local_addr,
            hooks,
            server,
            watcher,
        })
    }

    /// The address the mTLS listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and closes every session.
    pub async fn shutdown(&self) {
        self.watcher.abort();
        self.server.abort();
        let ids: Vec<String> = {
            let shared = self.scx.extends.shared().await;
            shared
                .iter()
                .map(|e| e.id().client_id.to_string())
                .collect()
        };
        for id in ids {
            kick(&self.scx, &id).await;
        }
        tracing::info!("MQTT broker stopped");
    }
}

/// What the rest of Garrison needs from whichever broker carries device traffic — the embedded
/// [`Broker`] today, an external broker (Mosquitto, EMQX) later — so the API and response
/// actions never depend on which.
#[async_trait::async_trait]
pub trait DeviceBroker: Send + Sync {
    /// Whether `device` has a live connection now.
    async fn is_connected(&self, device: &DeviceId) -> bool;

    /// What the broker has counted for a device since it started.
    fn device_counters(&self, device: &DeviceId) -> Option<DeviceCounters>;

    /// Publishes `payload` at QoS 1 on a server-to-device channel (`cmd`, `update`).
    async fn send_to_device(
        &self,
        device: &DeviceId,
        channel: &str,
        payload: Bytes,
    ) -> Result<(), BrokerError>;

    /// Closes the session of `device`, if it has one. Returns whether one existed.
    async fn disconnect(&self, device: &DeviceId) -> bool;

    /// Every device the broker has counted, with its live session's serial.
    async fn connections(&self) -> Vec<DeviceConnection>;
}

#[async_trait::async_trait]
impl DeviceBroker for Broker {
    async fn is_connected(&self, device: &DeviceId) -> bool {
        let id = Id::from(self.scx.node.id(), ClientId::from(device.as_str()));
        let entry = { self.scx.extends.shared().await.entry(id) };
        entry.is_connected().await
    }

    fn device_counters(&self, device: &DeviceId) -> Option<DeviceCounters> {
        self.hooks.counters().get(device.as_str())
    }

    async fn send_to_device(
        &self,
        device: &DeviceId,
        channel: &str,
        payload: Bytes,
    ) -> Result<(), BrokerError> {
        if !garrison_core::device::SERVER_TO_DEVICE.contains(&channel) {
            return Err(BrokerError::NotServerChannel(channel.to_owned()));
        }
        let topic = device_topic(device, channel);
        let from = From::from_system(Id::new(
            self.scx.node.id(),
            0,
            None,
            None,
            ClientId::from("garrison-server"),
            None,
        ));
        let publish = CodecPublish {
            dup: false,
            retain: false,
            qos: QoS::AtLeastOnce,
            topic: topic.clone().into(),
            packet_id: None,
            payload,
            properties: Some(Default::default()),
        };
        let publish =
            rmqtt::types::Publish::from(publish).create_time(rmqtt::utils::timestamp_millis());
        SessionState::forwards(&self.scx, from, publish, false, None)
            .await
            .map_err(|e| BrokerError::Publish {
                topic,
                detail: e.to_string(),
            })
    }

    async fn disconnect(&self, device: &DeviceId) -> bool {
        kick(&self.scx, device.as_str()).await
    }

    async fn connections(&self) -> Vec<DeviceConnection> {
        let serials: HashMap<String, String> =
            self.hooks.connected_sessions().into_iter().collect();
        let mut out = Vec::new();
        for (device, counters) in self.hooks.counters().all() {
            let Ok(id) = DeviceId::new(device.clone()) else {
                continue;
            };
            let connected_serial = match serials.get(&device) {
                Some(serial) if self.is_connected(&id).await => Some(serial.clone()),
                _ => None,
            };
            out.push(DeviceConnection {
                device,
                connected_serial,
                counters,
            });
        }
        out
    }
}

/// Closes the session of `client_id`; returns whether one existed.
async fn kick(scx: &ServerContext, client_id: &str) -> bool {
    let id = Id::from(scx.node.id(), ClientId::from(client_id));
    // The registry lock must not be held across the kick's awaits.
    let entry = { scx.extends.shared().await.entry(id) };
    let mut entry = match entry.try_lock().await {
        Ok(locked) => locked,
        Err(_) => entry,
    };
    // kick()'s own result says NotExist even for a live session it closed; ask first.
    let existed = entry.exist();
    if let Err(e) = entry.kick(true, true, true).await {
        tracing::warn!(client_id, error = %e, "Closing an MQTT session failed");
    }
    existed
}

/// Follows revocations: a session authenticated with a certificate that has just been revoked
/// is closed (its reconnect is then refused by the authentication hook).
async fn watch_identity(
    scx: ServerContext,
    hooks: hooks::GarrisonHooks,
    identity: IdentityService,
) {
    let mut events = identity.subscribe();
    loop {
        match events.recv().await {
            Ok(IdentityEvent::Revoked { subject, serial }) => {
                if hooks.connected_serial(&subject).as_deref() == Some(serial.as_str())
                    && kick(&scx, &subject).await
                {
                    metrics::counter!("garrison_broker_revocation_kicks_total").increment(1);
                    tracing::warn!(device = %subject, %serial, "Closed the session of a revoked certificate");
                }
            }
            Ok(IdentityEvent::QuarantineChanged { .. }) => {
                // Applied per message by the ACL hook; nothing to close.
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                // Events were missed: check every connected session against the directory.
                for (device, serial) in hooks.connected_sessions() {
                    if identity.directory().is_revoked(&serial) {
                        kick(&scx, &device).await;
                    }
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
