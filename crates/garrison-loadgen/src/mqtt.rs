//! The MQTT modes: `pubsub`, `handshakes` and `idle`.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, MqttOptions, NetworkOptions, Outgoing, QoS,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::{
    Identity, Target, load_identities, report,
    stats::{Samples, num},
};

/// Options of `pubsub`.
#[derive(Args, Debug)]
pub(crate) struct PubsubArgs {
    #[command(flatten)]
    target: Target,
    /// Publishers, each its own device certificate and connection (the first N certificates).
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Also connect one subscriber per publisher (the next N certificates), subscribed to that
    /// publisher's topic: verifies sequence numbers (lost / duplicate / out of order) and
    /// measures end-to-end latency. Needs a broker that lets one client read another's topic
    /// (Mosquitto here; Garrison's device ACL forbids it — use --metrics-url there).
    #[arg(long)]
    subscribers: bool,
    /// QoS of publishes and subscriptions: 0 or 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// Seconds to publish for (the measured window starts when every client is connected).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Total messages per second over all publishers; 0 publishes flat out.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Payload size in bytes (at least 16: sequence number and send timestamp).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Publish this file's contents (e.g. a contract inventory report) instead of sequence
    /// numbered padding; sequence checks and latency are then unavailable.
    #[arg(long, conflicts_with = "subscribers")]
    payload_file: Option<PathBuf>,
    /// Topic to publish to; "{id}" becomes the publisher's client id.
    #[arg(long, default_value = "garrison/v1/d/{id}/telemetry")]
    topic: String,
    /// Unacknowledged QoS 1 publishes in flight per publisher.
    #[arg(long, default_value_t = 100)]
    inflight: u16,
    /// Seconds to wait after the window for outstanding PUBACKs and deliveries.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Garrison's metrics URL (https://API/metrics): garrison_intake_messages_total is read
    /// before and after the run and compared with what the broker acknowledged.
    #[arg(long)]
    metrics_url: Option<String>,
    /// Bearer token for --metrics-url (needs metrics:read).
    #[arg(long, env = "LOADGEN_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// CA certificate for --metrics-url (default: --ca).
    #[arg(long)]
    metrics_ca: Option<PathBuf>,
}

/// Options of `handshakes`.
#[derive(Args, Debug)]
pub(crate) struct HandshakeArgs {
    #[command(flatten)]
    target: Target,
    /// Concurrent workers, each with its own device certificate.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds to run for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

/// Options of `idle`.
#[derive(Args, Debug)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    target: Target,
    /// Connections to open, each with its own device certificate.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Connection attempts in flight at once while ramping up.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// MQTT keepalive in seconds.
    #[arg(long, default_value_t = 300)]
    keepalive: u64,
    /// Seconds to hold the connections after all are up (the report is printed first);
    /// 0 holds until interrupted.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
}

fn qos_of(q: u8) -> QoS {
    if q == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

fn options(target: &Target, id: &Identity, keepalive: u64) -> MqttOptions {
    let mut o = MqttOptions::new(id.name.clone(), target.host.clone(), target.port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        id.config.clone(),
    )));
    o.set_keep_alive(Duration::from_secs(keepalive));
    o.set_clean_session(true);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

/// Creates a client and polls its event loop until CONNACK.
async fn connect(
    target: &Target,
    id: &Identity,
    keepalive: u64,
    inflight: u16,
) -> anyhow::Result<(AsyncClient, EventLoop)> {
    let mut o = options(target, id, keepalive);
    o.set_inflight(inflight.max(1));
    let (client, mut el) = AsyncClient::new(o, 1000);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(30);
    el.set_network_options(net);
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => return Ok((client, el)),
            Ok(_) => {}
            Err(e) => return Err(anyhow!("{}: {e}", id.name)),
        }
    }
}

#[derive(Default)]
struct PubCounters {
    published: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
}

#[derive(Default)]
struct SubCounters {
    received: AtomicU64,
}

#[derive(Default, Debug)]
struct SubResult {
    distinct: u64,
    duplicates: u64,
    out_of_order: u64,
    latency: Samples,
}

/// Per-publisher sequence bookkeeping on the subscriber side.
#[derive(Default)]
struct SeqTracker {
    seen: Vec<u64>,
    max_seen: Option<u64>,
}

impl SeqTracker {
    /// Returns (duplicate, out_of_order).
    fn record(&mut self, seq: u64) -> (bool, bool) {
        let word = usize::try_from(seq / 64).unwrap_or(usize::MAX);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        let duplicate = self.seen[word] & bit != 0;
        self.seen[word] |= bit;
        let out_of_order = !duplicate && self.max_seen.is_some_and(|m| seq < m);
        self.max_seen = Some(self.max_seen.map_or(seq, |m| m.max(seq)));
        (duplicate, out_of_order)
    }
}

type Errors = Arc<Mutex<Vec<String>>>;

fn note_error(errors: &Errors, e: impl std::fmt::Display) {
    if let Ok(mut list) = errors.lock() {
        list.push(e.to_string());
    }
}

fn now_nanos(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `pubsub`: publish (and optionally subscribe) and report rates, latency and losses.
pub(crate) async fn pubsub(args: PubsubArgs) -> anyhow::Result<()> {
    if args.payload < 16 && args.payload_file.is_none() {
        bail!("--payload must be at least 16 bytes");
    }
    let fixed: Option<Arc<Vec<u8>>> = match &args.payload_file {
        Some(p) => Some(Arc::new(
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
        None => None,
    };
    if args.publishers == 0 {
        bail!("--publishers must be at least 1");
    }
    let n = args.publishers;
    let ids = load_identities(&args.target, if args.subscribers { 2 * n } else { n })?;
    let qos = qos_of(args.qos);
    let origin = Instant::now();
    let errors: Errors = Arc::default();
    let (finish_tx, finish_rx) = watch::channel(false);
    let target = Arc::new(args.target.clone());

    // Subscribers first, each subscribed before anything is published.
    let sub_counters: Vec<Arc<SubCounters>> = (0..n).map(|_| Arc::default()).collect();
    let mut sub_tasks = Vec::new();
    if args.subscribers {
        let mut connecting = Vec::new();
        for i in 0..n {
            let (target, sub_id, pub_name) =
                (target.clone(), ids[n + i].clone(), ids[i].name.clone());
            let topic = args.topic.replace("{id}", &pub_name);
            connecting.push(tokio::spawn(async move {
                let (client, mut el) = connect(&target, &sub_id, 60, 100).await?;
                client.subscribe(topic.clone(), qos).await?;
                loop {
                    match el
                        .poll()
                        .await
                        .map_err(|e| anyhow!("{}: {e}", sub_id.name))?
                    {
                        Event::Incoming(Incoming::SubAck(ack)) => {
                            if ack
                                .return_codes
                                .iter()
                                .any(|c| matches!(c, SubscribeReasonCode::Failure))
                            {
                                bail!("{}: subscription to {topic} refused", sub_id.name);
                            }
                            return Ok::<_, anyhow::Error>((client, el));
                        }
                        _ => continue,
                    }
                }
            }));
        }
        for (i, task) in connecting.into_iter().enumerate() {
            let (client, mut el) = task.await.context("subscriber task")??;
            let counters = sub_counters[i].clone();
            let mut finish = finish_rx.clone();
            let errors = errors.clone();
            sub_tasks.push(tokio::spawn(async move {
                let _client = client;
                let mut result = SubResult::default();
                let mut tracker = SeqTracker::default();
                loop {
                    tokio::select! {
                        ev = el.poll() => match ev {
                            Ok(Event::Incoming(Incoming::Publish(p))) => {
                                let now = now_nanos(origin);
                                let (Some(seq), Some(sent)) = (
                                    p.payload.get(0..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes),
                                    p.payload.get(8..16).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes),
                                ) else { continue };
                                counters.received.fetch_add(1, Relaxed);
                                let (dup, ooo) = tracker.record(seq);
                                if dup { result.duplicates += 1 } else { result.distinct += 1 }
                                if ooo { result.out_of_order += 1 }
                                result.latency.push_nanos(now.saturating_sub(sent));
                            }
                            Ok(_) => {}
                            Err(e) => { note_error(&errors, format!("subscriber: {e}")); break; }
                        },
                        _ = finish.changed() => break,
                    }
                }
                result
            }));
        }
    }

    // Publishers: connect all, then start together.
    let mut connecting = Vec::new();
    for id in &ids[..n] {
        let (target, inflight, id) = (target.clone(), args.inflight, id.clone());
        connecting.push(tokio::spawn(async move {
            connect(&target, &id, 60, inflight).await
        }));
    }
    let mut clients = Vec::new();
    let mut pub_counters: Vec<Arc<PubCounters>> = Vec::new();
    let mut loop_tasks = Vec::new();
    for task in connecting {
        let (client, mut el) = task.await.context("publisher task")??;
        let counters: Arc<PubCounters> = Arc::default();
        pub_counters.push(counters.clone());
        clients.push(client);
        let mut finish = finish_rx.clone();
        let errors = errors.clone();
        loop_tasks.push(tokio::spawn(async move {
            // QoS 1: when each packet id was written, for the publish→PUBACK round trip.
            let mut sent_at: Vec<Option<Instant>> = vec![None; 65536];
            let mut rtt = Samples::default();
            loop {
                tokio::select! {
                    ev = el.poll() => match ev {
                        Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                            counters.sent.fetch_add(1, Relaxed);
                            sent_at[usize::from(pkid)] = Some(Instant::now());
                        }
                        Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                            counters.acked.fetch_add(1, Relaxed);
                            if let Some(t) = sent_at[usize::from(ack.pkid)].take() {
                                rtt.push(t.elapsed());
                            }
                        }
                        Ok(_) => {}
                        Err(e) => { note_error(&errors, format!("publisher: {e}")); break; }
                    },
                    _ = finish.changed() => break,
                }
            }
            rtt
        }));
    }

    let intake_before = match &args.metrics_url {
        Some(url) => Some(Metrics::new(&args, url)?.intake().await?),
        None => None,
    };

    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let end = start + duration;
    let per_publisher = args.rate as f64 / n as f64;
    let stop = Arc::new(AtomicBool::new(false));
    let mut pub_tasks = Vec::new();
    for ((client, counters), id) in clients
        .iter()
        .cloned()
        .zip(pub_counters.iter().cloned())
        .zip(ids.iter())
    {
        let topic = args.topic.replace("{id}", &id.name);
        let size = args.payload;
        let stop = stop.clone();
        let fixed = fixed.clone();
        pub_tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            let mut payload = match &fixed {
                Some(f) => f.to_vec(),
                None => vec![0u8; size],
            };
            let mut send = async |seq: u64| -> anyhow::Result<()> {
                if fixed.is_none() {
                    payload[0..8].copy_from_slice(&seq.to_be_bytes());
                    payload[8..16].copy_from_slice(&now_nanos(origin).to_be_bytes());
                }
                client
                    .publish(topic.as_str(), qos, false, payload.clone())
                    .await?;
                counters.published.fetch_add(1, Relaxed);
                Ok(())
            };
            if per_publisher <= 0.0 {
                while Instant::now() < end && !stop.load(Relaxed) {
                    send(seq).await?;
                    seq += 1;
                }
            } else {
                let mut tick = tokio::time::interval(Duration::from_millis(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let due = ((now - start).as_secs_f64() * per_publisher) as u64;
                    while seq < due {
                        send(seq).await?;
                        seq += 1;
                    }
                }
            }
            Ok::<_, anyhow::Error>(seq)
        }));
    }
    tokio::time::sleep_until(end.into()).await;
    let window = start.elapsed().as_secs_f64();
    let sum = |f: &dyn Fn(&PubCounters) -> u64| pub_counters.iter().map(|c| f(c)).sum::<u64>();
    let acked_in_window = sum(&|c| c.acked.load(Relaxed));
    let sent_in_window = sum(&|c| c.sent.load(Relaxed));
    let received_in_window: u64 = sub_counters.iter().map(|c| c.received.load(Relaxed)).sum();
    stop.store(true, Relaxed);
    let mut published = 0;
    for task in pub_tasks {
        match task.await {
            Ok(Ok(count)) => published += count,
            Ok(Err(e)) => note_error(&errors, format!("publish: {e}")),
            Err(e) => note_error(&errors, format!("publish task: {e}")),
        }
    }

    // Drain: wait for every publish to be written and acknowledged, and (with subscribers)
    // delivered, or for --drain to pass.
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain);
    loop {
        let sent = sum(&|c| c.sent.load(Relaxed));
        let acked = sum(&|c| c.acked.load(Relaxed));
        let received: u64 = sub_counters.iter().map(|c| c.received.load(Relaxed)).sum();
        let written = sent >= published;
        let acknowledged = args.qos == 0 || acked >= sent;
        let delivered = !args.subscribers || received >= sent;
        if (written && acknowledged && delivered) || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Count what the intake saw, waiting briefly for its consumer to catch up.
    let sent = sum(&|c| c.sent.load(Relaxed));
    let acked = sum(&|c| c.acked.load(Relaxed));
    let expected_intake = if args.qos == 0 { sent } else { acked };
    let intake = match (&args.metrics_url, intake_before) {
        (Some(url), Some(before)) => {
            let metrics = Metrics::new(&args, url)?;
            let mut delta = metrics.intake().await? - before;
            while delta < expected_intake && Instant::now() < drain_deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                delta = metrics.intake().await? - before;
            }
            Some(delta)
        }
        _ => None,
    };
    let _ = finish_tx.send(true);
    let mut rtt = Samples::default();
    for task in loop_tasks {
        rtt.merge(task.await.context("event loop task")?);
    }
    let mut sub = SubResult::default();
    for task in sub_tasks {
        let r = task.await.context("subscriber task")?;
        sub.distinct += r.distinct;
        sub.duplicates += r.duplicates;
        sub.out_of_order += r.out_of_order;
        sub.latency.merge(r.latency);
    }
    drop(clients);

    let rate = if args.qos == 0 {
        sent_in_window
    } else {
        acked_in_window
    } as f64
        / window;
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    let mut fields: Vec<(&str, Value)> = vec![
        ("mode", json!("pubsub")),
        ("qos", json!(args.qos)),
        ("publishers", json!(n)),
        ("subscribers", json!(if args.subscribers { n } else { 0 })),
        ("target_rate", json!(args.rate)),
        ("payload_bytes", json!(args.payload)),
        ("window_s", num(Some(window), 3)),
        ("published", json!(published)),
        ("sent", json!(sent)),
        ("acked", json!(acked)),
        ("rate_per_s", num(Some(rate), 0)),
        (
            "rate_is",
            json!(if args.qos == 0 {
                "PUBLISH packets written per second"
            } else {
                "PUBACKs received per second"
            }),
        ),
        ("puback_samples", json!(rtt.len())),
        ("puback_p50_ms", num(rtt.percentile_ms(50.0), 3)),
        ("puback_p99_ms", num(rtt.percentile_ms(99.0), 3)),
    ];
    if args.subscribers {
        fields.extend([
            (
                "received_per_s",
                num(Some(received_in_window as f64 / window), 0),
            ),
            ("received_distinct", json!(sub.distinct)),
            ("lost", json!(sent.saturating_sub(sub.distinct))),
            ("duplicates", json!(sub.duplicates)),
            ("out_of_order", json!(sub.out_of_order)),
            ("e2e_p50_ms", num(sub.latency.percentile_ms(50.0), 3)),
            ("e2e_p99_ms", num(sub.latency.percentile_ms(99.0), 3)),
        ]);
    }
    if let Some(delta) = intake {
        fields.extend([
            ("intake_delta", json!(delta)),
            (
                "intake_missing",
                json!(expected_intake.saturating_sub(delta)),
            ),
        ]);
    }
    fields.push(("errors", json!(errors.len())));
    if let Some(first) = errors.first() {
        fields.push(("first_error", json!(first)));
    }
    report(args.target.json, &fields);
    Ok(())
}

/// Reads `garrison_intake_messages_total` from Garrison's /metrics.
struct Metrics {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Metrics {
    fn new(args: &PubsubArgs, url: &str) -> anyhow::Result<Metrics> {
        let ca_file = args.metrics_ca.as_ref().unwrap_or(&args.target.ca);
        let ca =
            std::fs::read(ca_file).with_context(|| format!("cannot read {}", ca_file.display()))?;
        let client = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca)?)
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Metrics {
            client,
            url: url.to_owned(),
            token: args.metrics_token.clone(),
        })
    }

    async fn intake(&self) -> anyhow::Result<u64> {
        let mut request = self.client.get(&self.url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{}: HTTP {status}: {text}", self.url);
        }
        Ok(text
            .lines()
            .filter(|l| {
                l.strip_prefix("garrison_intake_messages_total")
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64)
    }
}

/// `handshakes`: full mTLS connect + CONNECT/CONNACK + DISCONNECT in a loop.
pub(crate) async fn handshakes(args: HandshakeArgs) -> anyhow::Result<()> {
    let ids = load_identities(&args.target, args.concurrency)?;
    let target = Arc::new(args.target.clone());
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    let errors: Errors = Arc::default();
    let mut workers = Vec::new();
    for id in ids {
        let (target, errors) = (target.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut count = 0u64;
            while Instant::now() < end {
                let t = Instant::now();
                match connect(&target, &id, 30, 10).await {
                    Ok((client, mut el)) => {
                        if client.try_disconnect().is_ok() {
                            loop {
                                match el.poll().await {
                                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                                    Ok(_) => {}
                                }
                            }
                        }
                        drop(el);
                        count += 1;
                        samples.push(t.elapsed());
                    }
                    Err(e) => {
                        note_error(&errors, e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (count, samples)
        }));
    }
    let mut total = 0;
    let mut samples = Samples::default();
    for w in workers {
        let (count, s) = w.await.context("handshake worker")?;
        total += count;
        samples.merge(s);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    let mut fields = vec![
        ("mode", json!("handshakes")),
        ("concurrency", json!(args.concurrency)),
        ("elapsed_s", num(Some(elapsed), 3)),
        ("handshakes", json!(total)),
        ("handshakes_per_s", num(Some(total as f64 / elapsed), 0)),
        ("p50_ms", num(samples.percentile_ms(50.0), 3)),
        ("p99_ms", num(samples.percentile_ms(99.0), 3)),
        ("errors", json!(errors.len())),
    ];
    if let Some(first) = errors.first() {
        fields.push(("first_error", json!(first)));
    }
    report(args.target.json, &fields);
    Ok(())
}

/// `idle`: open N connections and hold them.
pub(crate) async fn idle(args: IdleArgs) -> anyhow::Result<()> {
    let ids = load_identities(&args.target, args.connections)?;
    let target = Arc::new(args.target.clone());
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let connected = Arc::new(AtomicU64::new(0));
    let errors: Errors = Arc::default();
    let start = Instant::now();
    let mut ramp = Vec::new();
    let mut held = Vec::new();
    for id in ids {
        let permit = permits.clone().acquire_owned().await?;
        let (target, connected, errors) = (target.clone(), connected.clone(), errors.clone());
        let (up_tx, up_rx) = tokio::sync::oneshot::channel::<()>();
        ramp.push(up_rx);
        held.push(tokio::spawn(async move {
            match connect(&target, &id, args.keepalive, 10).await {
                Ok((client, mut el)) => {
                    connected.fetch_add(1, Relaxed);
                    drop(permit);
                    let _ = up_tx.send(());
                    let _client = client;
                    // Keep answering keepalives until the process ends.
                    while el.poll().await.is_ok() {}
                    note_error(&errors, format!("{}: connection lost", id.name));
                }
                Err(e) => {
                    drop(permit);
                    note_error(&errors, e);
                    drop(up_tx);
                }
            }
        }));
    }
    for up in ramp {
        let _ = up.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let up = connected.load(Relaxed);
    let errors_now = errors.lock().map(|e| e.clone()).unwrap_or_default();
    let mut fields = vec![
        ("mode", json!("idle")),
        ("connected", json!(up)),
        ("failed", json!(errors_now.len())),
        ("ramp_s", num(Some(elapsed), 3)),
        ("connects_per_s", num(Some(up as f64 / elapsed), 0)),
    ];
    if let Some(first) = errors_now.first() {
        fields.push(("first_error", json!(first)));
    }
    report(args.target.json, &fields);
    if args.hold > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    } else {
        tokio::signal::ctrl_c().await?;
    }
    let lost = errors.lock().map(|e| e.len()).unwrap_or(0) - errors_now.len();
    if lost > 0 {
        eprintln!("{lost} connections were lost while holding");
    }
    Ok(())
}
