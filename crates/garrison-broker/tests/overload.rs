//! Overload: devices publish flat out at QoS 1 over mutual TLS into a broker whose intake is
//! deliberately slower than they are. Every message the broker acknowledged (PUBACK) must
//! reach the intake — counted per device by sequence number — and publishers must have been
//! slowed down rather than dropped.
//!
//! Runs for `OVERLOAD_SECS` seconds (default 60, as the identity issue asks).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use support::{Device, TestBroker};

const DEVICES: usize = 4;

/// Publishes seq 0, 1, 2, … until `until`, then waits for the outstanding PUBACKs.
/// Returns (published, acknowledged).
async fn publisher(addr: SocketAddr, ca_pem: String, d: Device, until: Instant) -> (u64, u64) {
    let mut options = MqttOptions::new(&d.id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(32);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: ca_pem.into_bytes(),
        alpn: None,
        client_auth: Some((d.cert_pem.into_bytes(), d.key_pem.into_bytes())),
    }));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let acked = Arc::new(AtomicU64::new(0));
    let acks = acked.clone();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Event::Incoming(Packet::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => panic!("publisher connection failed: {e}"),
            }
        }
    });
    let topic = format!("garrison/v1/d/{}/telemetry", d.id);
    let mut seq = 0u64;
    while Instant::now() < until {
        let mut payload = seq.to_be_bytes().to_vec();
        payload.resize(64, b'.');
        client
            .publish(&topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        seq += 1;
    }
    let drain = Instant::now();
    while acked.load(Ordering::SeqCst) < seq && drain.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    poller.abort();
    (seq, acked.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_reaches_the_intake_under_overload() {
    let seconds: u64 = std::env::var("OVERLOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    // A small intake queue, so the slow consumer below really pushes back.
    let t = TestBroker::start("Overload", |settings| settings.intake_capacity = 256).await;
    let TestBroker {
        broker,
        ca,
        mut messages,
        ..
    } = t;
    let addr = broker.local_addr();

    // The intake: records every sequence number per device, and stalls now and then.
    let received: Arc<Mutex<HashMap<String, Vec<u64>>>> = Arc::default();
    let sink = received.clone();
    let consumer = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(m) = messages.recv().await {
            let seq = u64::from_be_bytes(m.payload[..8].try_into().unwrap());
            sink.lock()
                .unwrap()
                .entry(m.device.to_string())
                .or_default()
                .push(seq);
            n += 1;
            if n.is_multiple_of(5_000) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });

    let until = Instant::now() + Duration::from_secs(seconds);
    let root_pem = ca.root_pem().to_owned();
    let mut tasks = Vec::new();
    for i in 0..DEVICES {
        let d = support::device(&ca, &format!("load-{i}"));
        tasks.push(tokio::spawn(publisher(addr, root_pem.clone(), d, until)));
    }
    let mut totals = Vec::new();
    for t in tasks {
        totals.push(t.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.shutdown().await;
    consumer.abort();

    let received = received.lock().unwrap();
    let mut acked_total = 0;
    for (i, (published, acked)) in totals.iter().enumerate() {
        let id = format!("load-{i}");
        assert!(*acked > 0, "{id} got no PUBACK at all");
        assert_eq!(
            acked, published,
            "{id}: every publish was eventually acknowledged"
        );
        let mut seen = vec![false; *published as usize];
        for &seq in received.get(&id).map(Vec::as_slice).unwrap_or_default() {
            if let Some(slot) = seen.get_mut(seq as usize) {
                *slot = true;
            }
        }
        let missing: Vec<usize> = seen
            .iter()
            .enumerate()
            .filter(|(_, s)| !**s)
            .map(|(n, _)| n)
            .take(10)
            .collect();
        assert!(
            missing.is_empty(),
            "{id}: acknowledged messages missing from the intake, first: {missing:?}"
        );
        acked_total += acked;
    }
    let rate = acked_total as f64 / seconds as f64;
    eprintln!(
        "overload: {acked_total} QoS 1 messages from {DEVICES} devices in {seconds}s \
         ({rate:.0}/s), all in the intake by sequence number"
    );
}
