//! The device's MQTT session over mutual TLS: publishes on the contract's channels, receives
//! commands, and reconnects on its own with jittered exponential back-off.
//!
//! On every (re)connection the session subscribes to `cmd` and `update` (rumqttc does not
//! resubscribe by itself) and publishes the birth message first. Sessions are persistent
//! (`clean_session = false`) so QoS 1 messages not yet acknowledged when a connection drops are
//! sent again on the next one instead of being dropped by the client.

use std::{sync::Arc, time::Duration};

use garrison_contract::{Channel, Command};
use garrison_core::{DeviceId, device::device_topic};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use crate::backoff::Backoff;

/// What can go wrong with a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The TLS identity or trust anchors are unusable.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The session's request queue is closed (the session stopped).
    #[error("the MQTT session has stopped")]
    Closed,
}

/// A rustls client configuration presenting `cert_pem`/`key_pem` and trusting `ca_pem`.
pub fn tls_config(
    ca_pem: &[u8],
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ClientConfig>, SessionError> {
    let tls = |e: &dyn std::fmt::Display| SessionError::Tls(e.to_string());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| tls(&e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| tls(&e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls(&e))?;
    Ok(Arc::new(config))
}

/// Where and how to connect.
#[derive(Clone)]
pub struct SessionConfig {
    /// The device (MQTT client id).
    pub device: DeviceId,
    /// Broker host name (must match its certificate).
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS identity.
    pub tls: Arc<ClientConfig>,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Reconnect back-off.
    pub backoff: Backoff,
    /// The birth message, published first on every connection.
    pub birth: Vec<u8>,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("device", &self.device)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// A running session. Dropping it stops the connection.
pub struct Session {
    device: DeviceId,
    client: AsyncClient,
    connected: watch::Receiver<bool>,
    driver: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Publishes on a session's device channels from any task.
#[derive(Clone)]
pub struct Publisher {
    device: DeviceId,
    client: AsyncClient,
}

impl Publisher {
    /// Publishes `payload` on `channel` at QoS 1 (queued while disconnected).
    pub async fn publish(&self, channel: Channel, payload: Vec<u8>) -> Result<(), SessionError> {
        self.client
            .publish(
                device_topic(&self.device, channel.as_str()),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .map_err(|_| SessionError::Closed)
    }
}

/// What the session hands its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A command on `cmd`.
    Command(Command),
    /// A message on `update` (its shape belongs to the update capability).
    Update(Vec<u8>),
    /// A `cmd` payload that is not a valid command.
    BadCommand(String),
}

impl Session {
    /// Starts the session; `inbound` receives commands and updates.
    pub fn start(config: SessionConfig, inbound: mpsc::Sender<Inbound>) -> Session {
        let mut options =
            MqttOptions::new(config.device.as_str(), config.host.clone(), config.port);
        options
            .set_keep_alive(config.keep_alive)
            .set_clean_session(false)
            .set_max_packet_size(1024 * 1024, 1024 * 1024)
            .set_inflight(32)
            .set_request_channel_capacity(256)
            .set_transport(Transport::Tls(TlsConfiguration::Rustls(config.tls.clone())));
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(10);
        eventloop.set_network_options(network);
        let (connected_tx, connected) = watch::channel(false);
        let device = config.device.clone();
        let driver_client = client.clone();
        let driver = tokio::spawn(async move {
            let cmd = device_topic(&config.device, "cmd");
            let update = device_topic(&config.device, "update");
            let birth = device_topic(&config.device, Channel::Birth.as_str());
            let mut backoff = config.backoff.clone();
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                        tracing::debug!(device = %config.device, session_present = ack.session_present, "MQTT connected");
                        backoff.reset();
                        // try_* because awaiting our own queue from the event loop that drains
                        // it could deadlock when the queue is full.
                        for topic in [&cmd, &update] {
                            if let Err(e) =
                                driver_client.try_subscribe(topic.as_str(), QoS::AtLeastOnce)
                            {
                                tracing::warn!(error = %e, topic, "Cannot queue a subscription");
                            }
                        }
                        if let Err(e) = driver_client.try_publish(
                            birth.as_str(),
                            QoS::AtLeastOnce,
                            false,
                            config.birth.clone(),
                        ) {
                            tracing::warn!(error = %e, "Cannot queue the birth message");
                        }
                        // Only now: whatever the owner publishes next is queued after birth.
                        let _ = connected_tx.send(true);
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let message = if p.topic == cmd {
                            match serde_json::from_slice::<Command>(&p.payload) {
                                Ok(c) => Inbound::Command(c),
                                Err(e) => Inbound::BadCommand(e.to_string()),
                            }
                        } else {
                            Inbound::Update(p.payload.to_vec())
                        };
                        if inbound.send(message).await.is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                        if ack
                            .return_codes
                            .iter()
                            .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                        {
                            tracing::warn!(device = %config.device, "The broker refused a subscription");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = connected_tx.send(false);
                        let wait = backoff.next_delay();
                        tracing::warn!(device = %config.device, error = %e, retry_in_ms = wait.as_millis() as u64, "MQTT connection lost; reconnecting");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        });
        Session {
            device,
            client,
            connected,
            driver,
        }
    }

    /// Whether the session is connected now.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits until connected (or `timeout`); returns whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.connected.clone();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Publishes `payload` on `channel` at QoS 1 (queued while disconnected).
    pub async fn publish(&self, channel: Channel, payload: Vec<u8>) -> Result<(), SessionError> {
        self.publisher().publish(channel, payload).await
    }

    /// A handle that publishes on this session from another task (while the session lives).
    pub fn publisher(&self) -> Publisher {
        Publisher {
            device: self.device.clone(),
            client: self.client.clone(),
        }
    }

    /// Publishes to any topic (for the simulator's misbehaving devices).
    pub async fn publish_raw(
        &self,
        topic: &str,
        qos: QoS,
        payload: Vec<u8>,
    ) -> Result<(), SessionError> {
        self.client
            .publish(topic, qos, false, payload)
            .await
            .map_err(|_| SessionError::Closed)
    }

    /// Disconnects cleanly.
    pub async fn disconnect(&self) {
        let _ = self.client.disconnect().await;
    }
}
