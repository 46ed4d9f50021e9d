//! The policy Garrison plugs into rmqtt: authentication by certificate, the topic ACL with
//! the quarantine profile, intake hand-off, and counting.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use async_trait::async_trait;
use garrison_core::{
    DeviceId,
    device::{check_publish, check_subscribe},
};
use garrison_identity::IdentityService;
use rmqtt::{
    codec::v5::SubscribeAckReason,
    hook::{Handler, HookResult, Parameter, ReturnType},
    types::{AuthResult, ConnectInfo, PublishAclResult, Reason, SubscribeAclResult},
};
use tokio::sync::mpsc;

use crate::{DeviceMessage, SessionEvent, counters::CounterMap, limits::Limiter};

const MQTT_V5: u8 = 5;

/// Counted on every accepted publish, so resolved once rather than looked up by name each
/// time (the server installs the metrics recorder before the broker starts).
static MESSAGES_IN: std::sync::LazyLock<metrics::Counter> =
    std::sync::LazyLock::new(|| metrics::counter!("garrison_broker_messages_in_total"));

/// rmqtt's handler for every hook Garrison registers. Cheap to clone.
#[derive(Clone)]
pub struct GarrisonHooks {
    identity: IdentityService,
    intake: mpsc::Sender<DeviceMessage>,
    counters: Arc<CounterMap>,
    limiter: Arc<Limiter>,
    /// Device id → serial of the certificate its current session authenticated with.
    connected: Arc<Mutex<HashMap<String, String>>>,
    /// Connects, disconnects and refusals, for the inventory (presence, unmanaged devices).
    events: Option<mpsc::Sender<SessionEvent>>,
}

impl GarrisonHooks {
    pub(crate) fn new(
        identity: IdentityService,
        intake: mpsc::Sender<DeviceMessage>,
        limiter: Limiter,
        events: Option<mpsc::Sender<SessionEvent>>,
    ) -> Self {
        GarrisonHooks {
            identity,
            intake,
            counters: Arc::default(),
            limiter: Arc::new(limiter),
            connected: Arc::default(),
            events,
        }
    }

    /// Hands a session event on without ever waiting: presence is not acknowledged data, and
    /// a connect must not stall behind a slow consumer. What does not fit is counted.
    fn emit(&self, event: SessionEvent) {
        if let Some(tx) = &self.events
            && tx.try_send(event).is_err()
        {
            metrics::counter!("garrison_broker_session_events_dropped_total").increment(1);
        }
    }

    pub(crate) fn counters(&self) -> &CounterMap {
        &self.counters
    }

    pub(crate) fn connected_serial(&self, device: &str) -> Option<String> {
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(device)
            .cloned()
    }

    pub(crate) fn connected_sessions(&self) -> Vec<(String, String)> {
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(d, s)| (d.clone(), s.clone()))
            .collect()
    }

    fn refuse_connect(
        &self,
        who: &str,
        common_name: Option<&str>,
        source: Option<String>,
        reason: &'static str,
    ) -> AuthResult {
        metrics::counter!("garrison_broker_connect_refused_total", "reason" => reason).increment(1);
        tracing::warn!(
            client = who,
            common_name,
            source,
            reason,
            "Refused an MQTT connection"
        );
        self.emit(SessionEvent::Refused {
            client_id: who.chars().take(128).collect(),
            common_name: common_name.map(|c| c.chars().take(128).collect()),
            address: source.clone(),
            reason,
            at: garrison_core::now_ms(),
        });
        // Counted against the certificate that was presented, never the client id claimed:
        // otherwise anyone could fill another device's counters (and its recent addresses,
        // which the audit reads as a sign of a shared certificate).
        if let Some(cn) = common_name.filter(|cn| DeviceId::new(*cn).is_ok()) {
            self.counters.update(cn, |c| {
                c.authorization_failures += 1;
                c.saw_address(source);
            });
        }
        AuthResult::NotAuthorized
    }

    /// The TLS layer has already verified the chain to Garrison's CA; this checks that the
    /// certificate names a device, that the device is who the client id says, and that the
    /// certificate is not revoked.
    fn authenticate(&self, ci: &ConnectInfo) -> AuthResult {
        let client_id: &str = ci.client_id();
        let source_ip = ci.id().remote_addr.map(|a| a.ip());
        let source = source_ip.map(|ip| ip.to_string());
        if let Some(ip) = source_ip
            && !self.limiter.admit_connect(ip)
        {
            return self.refuse_connect(client_id, None, source, "too_many_connection_attempts");
        }
        let Some(cert) = ci.cert() else {
            return self.refuse_connect(client_id, None, source, "no_certificate");
        };
        let cn = cert.common_name.as_deref().unwrap_or_default();
        if DeviceId::new(cn).is_err() {
            // Claim certificates (CN=claim:…) land here: they may enroll, never connect.
            return self.refuse_connect(client_id, Some(cn), source, "not_a_device_certificate");
        }
        if client_id != cn {
            return self.refuse_connect(
                client_id,
                Some(cn),
                source,
                "client_id_differs_from_certificate",
            );
        }
        // A will is a publish the broker makes on the device's behalf after it is gone:
        // rmqtt sends it without the publish ACL, past the intake and the quarantine check.
        // The device contract has no use for one, so a device may not leave one.
        if ci.last_will().is_some() {
            return self.refuse_connect(client_id, Some(cn), source, "last_will_not_allowed");
        }
        // rmqtt prints serials as lowercase hex without leading zeros; Garrison's serials have
        // a non-zero first byte, so the two forms agree.
        let serial = cert
            .serial
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('0')
            .to_ascii_lowercase();
        if self.identity.directory().is_revoked(&serial) {
            return self.refuse_connect(client_id, Some(cn), source, "certificate_revoked");
        }
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cn.to_owned(), serial);
        self.counters.update(cn, |c| c.saw_address(source));
        // Never superuser: superusers bypass the ACL hooks.
        AuthResult::Allow(false, None)
    }
}

/// Whether a session ended because a CONNECT with its client id took it over. rmqtt marks
/// that as a non-admin kick, which the session can only receive while it is live (in its event
/// loop); Garrison's own kicks (revocation, the API, shutdown) are admin kicks.
fn taken_over(reason: &Reason) -> bool {
    match reason {
        Reason::ConnectKicked(is_admin) => !is_admin,
        Reason::Reasons(reasons) => reasons.iter().any(taken_over),
        _ => false,
    }
}

#[async_trait]
impl Handler for GarrisonHooks {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(ci) => {
                (false, Some(HookResult::AuthResult(self.authenticate(ci))))
            }
            Parameter::ClientSubscribeCheckAcl(session, sub) => {
                let device: &str = &session.id.client_id;
                let verdict = DeviceId::new(device)
                    .map_err(|_| garrison_core::device::TopicRefusal::ForeignTopic)
                    .and_then(|d| check_subscribe(&d, &sub.topic_filter));
                let result = match verdict {
                    Ok(()) => SubscribeAclResult::new_success(sub.opts.qos(), None),
                    Err(why) => {
                        metrics::counter!("garrison_broker_acl_refusals_total", "kind" => "subscribe", "reason" => why.as_str()).increment(1);
                        tracing::warn!(device, filter = %sub.topic_filter, reason = %why, "Refused a subscription");
                        self.counters
                            .update(device, |c| c.authorization_failures += 1);
                        if let Ok(device) = DeviceId::new(device) {
                            self.emit(SessionEvent::AccessRefused {
                                device,
                                subscribe: true,
                                topic: sub.topic_filter.to_string(),
                                reason: why.as_str(),
                                at: garrison_core::now_ms(),
                            });
                        }
                        SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
                    }
                };
                (false, Some(HookResult::SubscribeAclResult(result)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let device: &str = &session.id.client_id;
                let verdict = DeviceId::new(device)
                    .map_err(|_| garrison_core::device::TopicRefusal::ForeignTopic)
                    .and_then(|d| {
                        let quarantined = self.identity.directory().is_quarantined(&d);
                        check_publish(&d, &publish.topic, quarantined).map(|()| d)
                    });
                match verdict {
                    Ok(device_id) => {
                        let wait = self.limiter.charge(device, publish.payload.len());
                        if !wait.is_zero() {
                            // Over its rate: this device waits for its PUBACK; nobody else does.
                            metrics::counter!("garrison_broker_rate_limited_total").increment(1);
                            tokio::time::sleep(wait.min(std::time::Duration::from_secs(60))).await;
                        }
                        let size = publish.payload.len() as u64;
                        self.counters.update(device, |c| {
                            c.messages_in += 1;
                            c.bytes_in += size;
                        });
                        // Awaiting here holds back this device's PUBACK until the intake has
                        // the message: back-pressure, not loss.
                        let message = DeviceMessage {
                            device: device_id,
                            topic: publish.topic.to_string(),
                            payload: publish.payload.clone(),
                            qos: publish.qos,
                            received_at: garrison_core::now_ms(),
                        };
                        if self.intake.send(message).await.is_err() {
                            // The intake is gone (shutting down): refuse rather than ack.
                            return (
                                false,
                                Some(HookResult::PublishAclResult(PublishAclResult::rejected(
                                    true,
                                    Some("the server is shutting down".into()),
                                ))),
                            );
                        }
                        MESSAGES_IN.increment(1);
                        (
                            false,
                            Some(HookResult::PublishAclResult(PublishAclResult::allow())),
                        )
                    }
                    Err(why) => {
                        // MQTT 3.1.1 has no negative PUBACK, so a refused publish ends the
                        // connection (the device notices); MQTT 5 answers "not authorized".
                        let v5 = session.protocol().await.unwrap_or_default() == MQTT_V5;
                        metrics::counter!("garrison_broker_acl_refusals_total", "kind" => "publish", "reason" => why.as_str()).increment(1);
                        tracing::warn!(device, topic = %publish.topic, reason = %why, "Refused a publish");
                        self.counters
                            .update(device, |c| c.authorization_failures += 1);
                        if let Ok(device) = DeviceId::new(device) {
                            self.emit(SessionEvent::AccessRefused {
                                device,
                                subscribe: false,
                                topic: publish.topic.to_string(),
                                reason: why.as_str(),
                                at: garrison_core::now_ms(),
                            });
                        }
                        (
                            false,
                            Some(HookResult::PublishAclResult(PublishAclResult::rejected(
                                !v5,
                                Some(format!("not authorized: {why}").into()),
                            ))),
                        )
                    }
                }
            }
            Parameter::MessageDropped(_, _, _, reason) => {
                let label = match reason {
                    Reason::PublishResult(_) => "acl",
                    Reason::MessageQueueFull => "queue_full",
                    _ => "other",
                };
                metrics::counter!("garrison_broker_messages_dropped_total", "reason" => label)
                    .increment(1);
                (true, acc)
            }
            Parameter::ClientConnected(session) => {
                metrics::counter!("garrison_broker_connects_total").increment(1);
                self.counters
                    .update(&session.id.client_id, |c| c.connects += 1);
                if let Ok(device) = DeviceId::new(&*session.id.client_id) {
                    self.emit(SessionEvent::Connected {
                        device,
                        address: session.id.remote_addr.map(|a| a.ip().to_string()),
                        at: garrison_core::now_ms(),
                    });
                }
                (true, acc)
            }
            Parameter::ClientDisconnected(session, reason) => {
                let device: &str = &session.id.client_id;
                metrics::counter!("garrison_broker_disconnects_total").increment(1);
                let replaced = taken_over(reason);
                if replaced {
                    // Two holders of one certificate, or a device reconnecting before the
                    // broker noticed its old connection die; the posture audit tells them apart.
                    metrics::counter!("garrison_broker_session_takeovers_total").increment(1);
                    tracing::info!(
                        device,
                        address = ?session.id.remote_addr,
                        "A new connection of this device took over its live session"
                    );
                }
                self.counters.update(device, |c| {
                    c.disconnects += 1;
                    c.takeovers += u64::from(replaced);
                });
                // A taken-over session's end is not the device going offline: its new
                // connection is already up.
                if !replaced && let Ok(device) = DeviceId::new(device) {
                    self.emit(SessionEvent::Disconnected {
                        device,
                        at: garrison_core::now_ms(),
                    });
                }
                (true, acc)
            }
            _ => (true, acc),
        }
    }
}
