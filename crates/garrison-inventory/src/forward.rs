//! Device messages that arrive other than over MQTT: batches an edge gateway or a collector
//! forwards for the devices behind it, through the authenticated HTTP intake.
//!
//! Each message is checked as the broker and the intake check a publish — a managed device, a
//! device → server channel, the quarantine profile, and the contract's decoding with every
//! bound — *before* it is accepted, so a forwarder learns at once which messages were refused
//! and why. Accepted messages join the same intake queue as the broker's: awaiting the queue
//! applies the same back-pressure, and once [`Forwarder::submit`] has returned them as
//! accepted they are the intake's to write (it drains its queue before the server stops).

use std::sync::Arc;

use bytes::Bytes;
use garrison_contract::{Channel, Limits, ReportError, decode_report_sized};
use garrison_core::{DeviceId, UnixMillis};
use garrison_store::Store;
use tokio::sync::mpsc;

use crate::{FleetIndex, Incoming};

/// Most messages in one forwarded batch.
pub const MAX_BATCH: usize = 5_000;

/// One message a forwarder hands in: which device it is from, its channel (`events`,
/// `telemetry`, …) and its payload exactly as the device would publish it.
#[derive(Debug, Clone)]
pub struct ForwardedMessage {
    /// The device id.
    pub device: String,
    /// The channel's topic suffix.
    pub channel: String,
    /// The contract payload (JSON, or gzip as over MQTT).
    pub payload: Bytes,
}

/// Why one forwarded message was refused. Nothing of it was kept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForwardRefusal {
    /// Not a valid device id.
    #[error("{0:?} is not a valid device id")]
    InvalidDevice(String),
    /// No managed device has this id.
    #[error("no managed device {0:?}: enroll it first")]
    UnknownDevice(String),
    /// Not a device → server channel the intake takes.
    #[error(
        "{0:?} is not a channel a forwarder may use: expected inventory, telemetry, events, cmd/result or update/status"
    )]
    UnknownChannel(String),
    /// The device is quarantined; only `cmd/result` and `update/status` pass.
    #[error("device {0} is quarantined: only cmd/result and update/status are accepted")]
    Quarantined(DeviceId),
    /// The payload broke the contract.
    #[error("{0}")]
    Invalid(ReportError),
    /// The device could not be looked up; send the message again.
    #[error("cannot look device {0} up just now; send it again")]
    Unavailable(DeviceId),
}

impl ForwardRefusal {
    /// A stable reason code (`unknown_device`, or the contract's `malformed`, `too_large` …).
    pub fn reason(&self) -> &'static str {
        match self {
            ForwardRefusal::InvalidDevice(_) => "invalid_device",
            ForwardRefusal::UnknownDevice(_) => "unknown_device",
            ForwardRefusal::UnknownChannel(_) => "unknown_channel",
            ForwardRefusal::Quarantined(_) => "quarantined",
            ForwardRefusal::Invalid(e) => e.reason(),
            ForwardRefusal::Unavailable(_) => "unavailable",
        }
    }
}

/// The intake has stopped (the server is shutting down); the messages not yet accepted were
/// not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the intake is stopping; {accepted} messages of the batch were accepted before it did")]
pub struct IntakeClosed {
    /// Messages accepted before it closed.
    pub accepted: usize,
}

/// What happened to a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForwardOutcome {
    /// Messages accepted into the intake.
    pub accepted: usize,
    /// Refused messages: their position in the batch, the device they named, and why.
    pub refused: Vec<(usize, String, ForwardRefusal)>,
}

/// Hands forwarded messages to the intake.
///
/// It holds the intake's queue weakly: the intake still ends when the server drops its own
/// senders at shutdown, and a batch arriving after that is refused whole, not half-taken.
#[derive(Clone)]
pub struct Forwarder {
    incoming: mpsc::WeakSender<Incoming>,
    index: Arc<FleetIndex>,
    store: Arc<dyn Store>,
    limits: Limits,
}

impl Forwarder {
    /// A forwarder into `incoming`, checking devices against `index` (and `store`, for
    /// devices enrolled since the index was loaded) and payloads against `limits` (the
    /// intake's own).
    pub fn new(
        incoming: &mpsc::Sender<Incoming>,
        index: Arc<FleetIndex>,
        store: Arc<dyn Store>,
        limits: Limits,
    ) -> Self {
        Forwarder {
            incoming: incoming.downgrade(),
            index,
            store,
            limits,
        }
    }

    /// Checks every message, then queues the accepted ones in order, waiting while the intake
    /// is full.
    pub async fn submit(
        &self,
        batch: Vec<ForwardedMessage>,
        received_at: UnixMillis,
    ) -> Result<ForwardOutcome, IntakeClosed> {
        let mut outcome = ForwardOutcome::default();
        let mut accepted = Vec::with_capacity(batch.len());
        for (position, message) in batch.into_iter().enumerate() {
            match self.check(&message).await {
                Ok((device, channel)) => accepted.push(Incoming::Message {
                    topic: format!(
                        "{}{}/{}",
                        garrison_core::device::TOPIC_ROOT,
                        device,
                        channel.as_str()
                    ),
                    device,
                    payload: message.payload,
                    received_at,
                }),
                Err(refusal) => {
                    metrics::counter!("garrison_intake_forwarded_refused_total", "reason" => refusal.reason())
                        .increment(1);
                    outcome.refused.push((position, message.device, refusal));
                }
            }
        }
        let Some(incoming) = self.incoming.upgrade() else {
            return Err(IntakeClosed { accepted: 0 });
        };
        for message in accepted {
            if incoming.send(message).await.is_err() {
                return Err(IntakeClosed {
                    accepted: outcome.accepted,
                });
            }
            outcome.accepted += 1;
            metrics::counter!("garrison_intake_forwarded_total").increment(1);
        }
        Ok(outcome)
    }

    async fn check(
        &self,
        message: &ForwardedMessage,
    ) -> Result<(DeviceId, Channel), ForwardRefusal> {
        let device = DeviceId::new(message.device.clone())
            .map_err(|_| ForwardRefusal::InvalidDevice(message.device.clone()))?;
        let channel = Channel::parse(&message.channel)
            .filter(|c| *c != Channel::Birth)
            .ok_or_else(|| ForwardRefusal::UnknownChannel(message.channel.clone()))?;
        let quarantined = match self.index.quarantined(&device) {
            Some(quarantined) => quarantined,
            // Enrolled since the index was loaded, perhaps: devices behind a gateway may never
            // connect to the broker, whose intake would otherwise have looked them up.
            None => match self.store.device_get(self.index.tenant(), &device).await {
                Ok(Some(d)) => {
                    self.index.upsert_device(&d);
                    d.quarantined
                }
                Ok(None) => return Err(ForwardRefusal::UnknownDevice(message.device.clone())),
                Err(e) => {
                    tracing::warn!(%device, error = %e, "Cannot look a forwarded message's device up");
                    return Err(ForwardRefusal::Unavailable(device));
                }
            },
        };
        if quarantined && !matches!(channel, Channel::CommandResult | Channel::UpdateStatus) {
            return Err(ForwardRefusal::Quarantined(device));
        }
        decode_report_sized(channel, &device, &message.payload, &self.limits)
            .map_err(ForwardRefusal::Invalid)?;
        Ok((device, channel))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use garrison_core::{TenantId, device::EnrollmentMethod};
    use garrison_store::identity::Device;

    fn device(id: &str, quarantined: bool) -> Device {
        Device {
            tenant: TenantId::default(),
            id: DeviceId::new(id).unwrap(),
            quarantined,
            enrolled_via: EnrollmentMethod::Token,
            current_serial: None,
            created_at: 0,
            updated_at: 0,
            rotation_requested_at: None,
        }
    }

    fn message(device: &str, channel: &str, payload: &str) -> ForwardedMessage {
        ForwardedMessage {
            device: device.into(),
            channel: channel.into(),
            payload: Bytes::from(payload.to_owned()),
        }
    }

    async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let store =
            garrison_store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
                .await
                .unwrap();
        store.migrate().await.unwrap();
        store
    }

    #[tokio::test]
    async fn each_message_is_checked_and_only_the_good_ones_are_queued() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(FleetIndex::new(TenantId::default()));
        index.upsert_device(&device("cam-1", false));
        index.upsert_device(&device("cam-2", true));
        let (tx, mut rx) = mpsc::channel(16);
        let forwarder = Forwarder::new(&tx, index, store(&dir).await, Limits::default());
        let event = r#"{"schema":1,"events":[{"at":1765000000000,"kind":"login_failed","user":"root","service":"telnetd","source":"10.0.0.9"}]}"#;
        let batch = vec![
            message("cam-1", "events", event),
            message("cam-9", "events", event),
            message("cam-1", "birth", r#"{"schema":1}"#),
            message("cam-1", "events", "{not json"),
            message("cam-2", "events", event),
            message("Not An Id!", "events", event),
            message(
                "cam-1",
                "telemetry",
                r#"{"schema":1,"at":1765000000000,"interval_ms":1000}"#,
            ),
        ];
        let outcome = forwarder.submit(batch, 42).await.unwrap();
        assert_eq!(outcome.accepted, 2);
        let reasons: Vec<(usize, &str)> = outcome
            .refused
            .iter()
            .map(|(i, _, r)| (*i, r.reason()))
            .collect();
        assert_eq!(
            reasons,
            [
                (1, "unknown_device"),
                (2, "unknown_channel"),
                (3, "malformed"),
                (4, "quarantined"),
                (5, "invalid_device"),
            ]
        );
        let mut topics = Vec::new();
        while let Ok(Incoming::Message {
            topic, received_at, ..
        }) = rx.try_recv()
        {
            assert_eq!(received_at, 42);
            topics.push(topic);
        }
        assert_eq!(
            topics,
            [
                "garrison/v1/d/cam-1/events",
                "garrison/v1/d/cam-1/telemetry"
            ]
        );
    }

    #[tokio::test]
    async fn a_closed_intake_says_how_much_it_took() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(FleetIndex::new(TenantId::default()));
        index.upsert_device(&device("cam-1", false));
        let (tx, rx) = mpsc::channel::<Incoming>(16);
        let forwarder = Forwarder::new(&tx, index, store(&dir).await, Limits::default());
        // The server dropped its sender at shutdown: the forwarder must not keep the queue open.
        drop(tx);
        let telemetry = r#"{"schema":1,"at":1765000000000,"interval_ms":1000}"#;
        let err = forwarder
            .submit(vec![message("cam-1", "telemetry", telemetry)], 1)
            .await
            .unwrap_err();
        assert_eq!(err.accepted, 0);
        assert!(rx.is_empty());
    }
}
