//! Session takeover: a new connection with a client id that is already connected, connecting,
//! or disconnecting must take the session over (MQTT 3.1.1 §3.1.4, MQTT 5 §3.1.4), never be
//! refused with "server unavailable". Covers the handshake benchmark's pattern (disconnect and
//! reconnect at once with the same client id, several devices in parallel), connects of one
//! identity racing each other, both protocol versions, and the `takeovers` counter.
//!
//! `TAKEOVER_SECS` (default 5) sets how long the back-to-back test runs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use garrison_broker::DeviceBroker;
use garrison_core::DeviceId;
use rustls::{
    ClientConfig, RootCertStore,
    client::Resumption,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use support::{Device, TestBroker};

/// How one connection attempt ended.
#[derive(Debug)]
enum Outcome {
    /// CONNACK accepted; the connection is kept open until dropped.
    Accepted(Connection),
    /// CONNACK with a refusal code.
    Refused(String),
    /// No CONNACK at all (I/O or TLS error, timeout).
    Failed(String),
}

/// An accepted connection, kept open (not polled) while held.
enum Connection {
    V3(rumqttc::AsyncClient, Box<rumqttc::EventLoop>),
    V5(rumqttc::v5::AsyncClient, Box<rumqttc::v5::EventLoop>),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Connection::V3(..) => "V3",
            Connection::V5(..) => "V5",
        })
    }
}

impl Connection {
    /// Sends DISCONNECT and waits until it is written, as the benchmark's workers do.
    async fn disconnect(self) {
        let wait = Duration::from_secs(5);
        match self {
            Connection::V3(client, mut el) => {
                if client.try_disconnect().is_ok() {
                    let _ = tokio::time::timeout(wait, async {
                        loop {
                            match el.poll().await {
                                Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect))
                                | Err(_) => break,
                                Ok(_) => {}
                            }
                        }
                    })
                    .await;
                }
            }
            Connection::V5(client, mut el) => {
                if client.try_disconnect().is_ok() {
                    let _ = tokio::time::timeout(wait, async {
                        loop {
                            match el.poll().await {
                                Ok(rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::Disconnect))
                                | Err(_) => break,
                                Ok(_) => {}
                            }
                        }
                    })
                    .await;
                }
            }
        }
    }

    /// Whether the broker has closed this connection within `limit`.
    async fn closed_within(self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            match self {
                Connection::V3(_client, mut el) => while el.poll().await.is_ok() {},
                Connection::V5(_client, mut el) => while el.poll().await.is_ok() {},
            }
        })
        .await
        .is_ok()
    }
}

/// A device's TLS client configuration, built once: every connection is a full handshake
/// (no resumption), as in the benchmark.
fn tls(root_pem: &str, d: &Device) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_slice_iter(d.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(d.key_pem.as_bytes()).unwrap();
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// One clean-session connect as `id` over MQTT 3.1.1 or 5; waits for the CONNACK.
async fn connect(addr: SocketAddr, id: &str, tls: &Arc<ClientConfig>, v5: bool) -> Outcome {
    let transport =
        rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls.clone()));
    let limit = Duration::from_secs(20);
    if v5 {
        let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_start(true);
        o.set_transport(transport);
        let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 10);
        let polled = tokio::time::timeout(limit, async {
            loop {
                match el.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(
                        rumqttc::v5::mqttbytes::v5::Packet::ConnAck(_),
                    )) => {
                        return Ok(());
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        match polled {
            Ok(Ok(())) => Outcome::Accepted(Connection::V5(client, Box::new(el))),
            Ok(Err(rumqttc::v5::ConnectionError::ConnectionRefused(code))) => {
                Outcome::Refused(format!("v5 {code:?}"))
            }
            Ok(Err(e)) => Outcome::Failed(format!("v5 {e}")),
            Err(_) => Outcome::Failed(format!("v5 no CONNACK within {limit:?}")),
        }
    } else {
        let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_session(true);
        o.set_transport(transport);
        let (client, mut el) = rumqttc::AsyncClient::new(o, 10);
        let polled = tokio::time::timeout(limit, async {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        match polled {
            Ok(Ok(())) => Outcome::Accepted(Connection::V3(client, Box::new(el))),
            Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => {
                Outcome::Refused(format!("v3 {code:?}"))
            }
            Ok(Err(e)) => Outcome::Failed(format!("v3 {e}")),
            Err(_) => Outcome::Failed(format!("v3 no CONNACK within {limit:?}")),
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    refused: Vec<String>,
    failed: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.accepted += other.accepted;
        self.refused.extend(other.refused);
        self.failed.extend(other.failed);
    }

    fn assert_clean(&self, what: &str) {
        eprintln!(
            "{what}: {} accepted, {} refused, {} failed",
            self.accepted,
            self.refused.len(),
            self.failed.len()
        );
        assert!(
            self.refused.is_empty() && self.failed.is_empty(),
            "{what}: {} of {} connects refused (first: {:?}), {} failed (first: {:?})",
            self.refused.len(),
            self.accepted + (self.refused.len() + self.failed.len()) as u64,
            self.refused.first(),
            self.failed.len(),
            self.failed.first(),
        );
    }
}

/// The handshake benchmark's pattern: each device connects, DISCONNECTs, and reconnects with
/// the same client id at once, in a loop; several devices in parallel, alternating protocol
/// versions. Before the fix some of these reconnects were refused with "server unavailable".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_reconnects_with_the_same_client_id_are_never_refused() {
    let seconds: u64 = std::env::var("TAKEOVER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let t = TestBroker::start("Takeover back-to-back", |_| {}).await;
    let addr = t.broker.local_addr();
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for i in 0..8 {
        let d = t.device(&format!("reconnect-{i}"));
        let tls = tls(&t.root_pem, &d);
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut n = 0u64;
            while Instant::now() < until {
                let v5 = (n + i) % 2 == 1;
                n += 1;
                match connect(addr, &d.id, &tls, v5).await {
                    Outcome::Accepted(c) => {
                        tally.accepted += 1;
                        c.disconnect().await;
                    }
                    Outcome::Refused(code) => tally.refused.push(code),
                    Outcome::Failed(e) => tally.failed.push(e),
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for w in workers {
        tally.add(w.await.unwrap());
    }
    t.broker.shutdown().await;
    assert!(tally.accepted > 0, "no connect succeeded at all");
    tally.assert_clean("back-to-back reconnects");
}

/// Connects of one identity that overlap: each round starts several at once (both protocol
/// versions) and holds every accepted connection until all have their CONNACK, so each later
/// one takes over a live or still-connecting session. Every one must be accepted, the
/// takeovers must be counted, and one connection must be left at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_connects_with_the_same_client_id_all_take_over() {
    const ROUNDS: usize = 10;
    const AT_ONCE: usize = 6;
    let t = TestBroker::start("Takeover overlapping", |_| {}).await;
    let addr = t.broker.local_addr();
    let d = t.device("overlap-1");
    let tls = tls(&t.root_pem, &d);
    let mut tally = Tally::default();
    for round in 0..ROUNDS {
        let attempts: Vec<_> = (0..AT_ONCE)
            .map(|k| {
                let (id, tls) = (d.id.clone(), tls.clone());
                tokio::spawn(async move { connect(addr, &id, &tls, (round + k) % 2 == 1).await })
            })
            .collect();
        let mut open = Vec::new();
        for a in attempts {
            match a.await.unwrap() {
                Outcome::Accepted(c) => {
                    tally.accepted += 1;
                    open.push(c);
                }
                Outcome::Refused(code) => tally.refused.push(code),
                Outcome::Failed(e) => tally.failed.push(e),
            }
        }
        drop(open);
    }
    let counters = t
        .broker
        .device_counters(&DeviceId::new(&d.id).unwrap())
        .unwrap_or_default();
    t.broker.shutdown().await;
    tally.assert_clean("overlapping connects");
    eprintln!(
        "overlapping connects: {} takeovers counted",
        counters.takeovers
    );
    assert!(
        counters.takeovers >= 1,
        "connects that replaced a live session must be counted: {counters:?}"
    );
}

/// A reconnect racing the old connection's DISCONNECT: the old session may be live, ending,
/// or gone when the new CONNECT kicks it, depending on a delay swept across the new
/// connection's handshake. Every reconnect must be accepted. Before the fix, a kick that
/// reached a session past its event loop was refused ("recv kick result is RecvError").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_racing_the_old_disconnect_are_never_refused() {
    const ROUNDS: u64 = 150;
    let t = TestBroker::start("Takeover racing disconnect", |_| {}).await;
    let addr = t.broker.local_addr();
    let d = t.device("racing-1");
    let tls = tls(&t.root_pem, &d);
    let mut tally = Tally::default();
    for round in 0..ROUNDS {
        let v5 = round % 2 == 1;
        let old = match connect(addr, &d.id, &tls, v5).await {
            Outcome::Accepted(c) => c,
            Outcome::Refused(code) => {
                tally.refused.push(code);
                continue;
            }
            Outcome::Failed(e) => {
                tally.failed.push(e);
                continue;
            }
        };
        tally.accepted += 1;
        let new = {
            let (id, tls) = (d.id.clone(), tls.clone());
            tokio::spawn(async move { connect(addr, &id, &tls, !v5).await })
        };
        // 0 to ~6 ms, in steps that do not repeat a pattern: a full mTLS handshake takes
        // a few milliseconds here, so the DISCONNECT lands before, during and after it.
        tokio::time::sleep(Duration::from_micros(round * 419 % 6_000)).await;
        old.disconnect().await;
        match new.await.unwrap() {
            Outcome::Accepted(c) => {
                tally.accepted += 1;
                c.disconnect().await;
            }
            Outcome::Refused(code) => tally.refused.push(code),
            Outcome::Failed(e) => tally.failed.push(e),
        }
    }
    t.broker.shutdown().await;
    tally.assert_clean("reconnects racing the old DISCONNECT");
}

/// The takeover itself, step by step: a second connection of a connected identity is
/// accepted, closes the first, and is counted once as a takeover; a reconnect after a clean
/// DISCONNECT is not a takeover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_takes_over_the_live_session_and_is_counted() {
    let t = TestBroker::start("Takeover counted", |_| {}).await;
    let addr = t.broker.local_addr();
    let d = t.device("takeover-1");
    let device = DeviceId::new(&d.id).unwrap();
    let tls = tls(&t.root_pem, &d);
    let takeovers = |t: &TestBroker| {
        t.broker
            .device_counters(&device)
            .map(|c| c.takeovers)
            .unwrap_or_default()
    };

    let Outcome::Accepted(first) = connect(addr, &d.id, &tls, false).await else {
        panic!("the first connection was not accepted");
    };
    assert_eq!(takeovers(&t), 0);
    let Outcome::Accepted(second) = connect(addr, &d.id, &tls, true).await else {
        panic!("the second connection (same client id) was not accepted");
    };
    assert!(
        first.closed_within(Duration::from_secs(5)).await,
        "the taken-over connection stays open"
    );
    // The kicked session counts the takeover as it ends, just after the new CONNACK.
    let start = Instant::now();
    while takeovers(&t) == 0 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(takeovers(&t), 1, "one takeover");
    assert!(t.broker.is_connected(&device).await);

    // Disconnecting cleanly and coming back is not a takeover.
    second.disconnect().await;
    let start = Instant::now();
    while t.broker.is_connected(&device).await && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Outcome::Accepted(third) = connect(addr, &d.id, &tls, false).await else {
        panic!("the reconnect was not accepted");
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        takeovers(&t),
        1,
        "a reconnect after DISCONNECT is no takeover"
    );
    third.disconnect().await;
    t.broker.shutdown().await;
}
