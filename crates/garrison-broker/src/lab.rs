//! The lab listener: a plain-TCP, general-purpose MQTT 3.1.1/5 broker for labs, demos and
//! conformance testing — off unless configured.
//!
//! It runs as a **separate rmqtt instance** (its own `ServerContext`: sessions, router,
//! retained store, hooks), so nothing published on it can reach a device and no device
//! traffic can be seen from it, whatever topic filters its clients use. On it Garrison behaves
//! as a standards-conforming broker: QoS 0/1/2, retained messages, wills, persistent sessions,
//! shared subscriptions, topic aliases and flow control are rmqtt's, with a permissive ACL.
//! Clients connect anonymously, or with the one username and password configured.
//!
//! Binding a non-loopback address needs `danger_allow_non_loopback`: an unauthenticated
//! broker on a network is an open relay.

use std::{net::SocketAddr, num::NonZeroU16, time::Duration};

use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering};

use rmqtt::{
    context::ServerContext,
    hook::{Handler, HookResult, Parameter, ReturnType, Type},
    net::Builder,
    retain::{DefaultRetainStorage, RetainStorage},
    server::MqttServer,
    subscribe::SharedSubscription,
    types::{
        AuthResult, ClientId, Id, IsOnline, NodeId, Retain, SharedGroup, SubscriptionIdentifier,
        SubscriptionOptions, TopicFilter, TopicName,
    },
};
use tokio::task::JoinHandle;

use crate::BrokerError;

/// How the lab listener runs.
#[derive(Debug, Clone)]
pub struct LabSettings {
    /// Plain-TCP listen address.
    pub listen: SocketAddr,
    /// Allow a non-loopback address (an unauthenticated broker on the network).
    pub danger_allow_non_loopback: bool,
    /// `Some((username, password))`: clients must present them; `None`: anonymous.
    pub credentials: Option<(String, String)>,
    /// Largest MQTT packet accepted, bytes.
    pub max_packet_size: u32,
}

/// A running lab broker.
pub struct LabBroker {
    local_addr: SocketAddr,
    server: JoinHandle<()>,
}

/// rmqtt's in-memory retained-message tree, switched on (its default storage reports itself
/// disabled and stores nothing).
struct RetainedMessages(DefaultRetainStorage);

#[async_trait]
impl RetainStorage for RetainedMessages {
    fn enable(&self) -> bool {
        true
    }

    async fn set(
        &self,
        topic: &TopicName,
        retain: Retain,
        expiry_interval: Option<Duration>,
    ) -> rmqtt::Result<()> {
        self.0
            .set_with_timeout(topic, retain, expiry_interval)
            .await
    }

    async fn get(&self, topic_filter: &TopicFilter) -> rmqtt::Result<Vec<(TopicName, Retain)>> {
        self.0.get_message(topic_filter).await
    }

    async fn count(&self) -> isize {
        self.0.messages.read().await.values_size() as isize
    }

    async fn max(&self) -> isize {
        self.count().await
    }
}

/// Shared subscriptions (`$share/<group>/<filter>`), round-robin over the group's online
/// members (rmqtt's default implementation reports them unsupported).
#[derive(Default)]
struct RoundRobin(AtomicUsize);

#[async_trait]
impl SharedSubscription for RoundRobin {
    fn is_supported(&self) -> bool {
        true
    }

    async fn choice(
        &self,
        _scx: &ServerContext,
        _group: &SharedGroup,
        _publisher: &Id,
        _topic: &TopicName,
        members: &[(
            NodeId,
            ClientId,
            SubscriptionOptions,
            Option<Vec<SubscriptionIdentifier>>,
            Option<IsOnline>,
        )],
    ) -> Option<(usize, IsOnline)> {
        if members.is_empty() {
            return None;
        }
        let start = self.0.fetch_add(1, Ordering::Relaxed);
        let online = |i: usize| members[i].4.unwrap_or(true);
        (0..members.len())
            .map(|k| (start + k) % members.len())
            .find(|&i| online(i))
            .map(|i| (i, true))
            .or(Some((start % members.len(), false)))
    }
}

#[derive(Clone)]
struct LabAuth {
    credentials: Option<(String, String)>,
}

#[async_trait]
impl Handler for LabAuth {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(ci) => {
                let result = match &self.credentials {
                    None => AuthResult::Allow(false, None),
                    Some((user, password)) => {
                        let given_user = ci.username().map(|u| u.to_string());
                        let given_password = ci.password().map(|p| p.to_vec());
                        if given_user.as_deref() == Some(user.as_str())
                            && given_password.as_deref() == Some(password.as_bytes())
                        {
                            AuthResult::Allow(false, None)
                        } else {
                            tracing::warn!(client = %ci.client_id(), "Lab listener: bad username or password");
                            AuthResult::BadUsernameOrPassword
                        }
                    }
                };
                (false, Some(HookResult::AuthResult(result)))
            }
            _ => (true, acc),
        }
    }
}

impl LabBroker {
    /// Starts the lab listener.
    pub async fn start(settings: LabSettings) -> Result<LabBroker, BrokerError> {
        let listen_error = |detail: String| BrokerError::Listen {
            addr: settings.listen,
            detail,
        };
        if !settings.listen.ip().is_loopback() && !settings.danger_allow_non_loopback {
            return Err(listen_error(
                "the lab listener is unauthenticated plain TCP and binds only loopback addresses; \
                 set broker.lab.danger_allow_non_loopback = true to expose it anyway"
                    .into(),
            ));
        }
        let listener = Builder::new()
            .name("garrison/lab")
            .laddr(settings.listen)
            .reuseaddr(Some(true))
            .nodelay(true)
            // Anonymous clients send no username; with credentials required the hook decides.
            .allow_anonymous(settings.credentials.is_none())
            .max_packet_size(settings.max_packet_size)
            .max_inflight(NonZeroU16::new(32).unwrap_or(NonZeroU16::MIN))
            .max_mqueue_len(10_000)
            // rmqtt's default of 0 announces "no topic aliases" in CONNACK.
            .max_topic_aliases(32)
            .handshake_timeout(Duration::from_secs(5))
            .bind()
            .map_err(|e| listen_error(e.to_string()))?;
        let local_addr = listener.cfg.laddr;
        let listener = listener.tcp().map_err(|e| listen_error(e.to_string()))?;
        let scx = ServerContext::new()
            .node_id(1)
            .busy_check_enable(false)
            .build()
            .await;
        // Same takeover-instead-of-refusal as the device broker; see `takeover`.
        crate::takeover::install(&scx, Duration::from_secs(5), true).await;
        *scx.extends.retain_mut().await = Box::new(RetainedMessages(DefaultRetainStorage::new()));
        *scx.extends.shared_subscription_mut().await = Box::new(RoundRobin::default());
        let register = scx.extends.hook_mgr().register();
        register
            .add(
                Type::ClientAuthenticate,
                Box::new(LabAuth {
                    credentials: settings.credentials.clone(),
                }),
            )
            .await;
        register.start().await;
        let server = MqttServer::new(scx).listener(listener).build();
        let server = tokio::spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!(error = %e, "The lab MQTT listener stopped");
            }
        });
        tracing::warn!(addr = %local_addr, "Lab MQTT listener (plain TCP, permissive ACL, isolated from devices) started");
        Ok(LabBroker { local_addr, server })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections.
    pub fn shutdown(&self) {
        self.server.abort();
    }
}
