//! The monitor's hot path per event: normalise a device observation into the OCSF-aligned
//! event, serialise it for detection, and run the built-in IoT pack (detections and
//! correlations with their windows). Beside it, in the same run, rsigma's plain `Engine`
//! evaluates the same pack's detection rules on the same events already normalised — the
//! floor a pipeline over rsigma cannot beat.
//!
//! Traffic is a fleet's routine day (telemetry, publickey SSH logins, connections to 443, NTP
//! clock nudges) with one device in fifty playing a telnet brute force. Run:
//! `cargo bench -p garrison-monitor --bench pipeline`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use garrison_contract::{DeviceEvent, EventKind, Protocol, Telemetry};
use garrison_core::DeviceId;
use garrison_detect::{
    Detector, DetectorOptions,
    builtin::{IOT_RULES, iot_rule_set},
};
use garrison_inventory::Observation;
use garrison_monitor::event::normalise;
use rsigma_eval::{Engine, JsonEvent};

fn observations(n: usize) -> Vec<Observation> {
    let base = 1_800_000_000_000i64;
    (0..n)
        .map(|i| {
            let device = DeviceId::new(format!("dev-{:04}", i % 500)).unwrap();
            let at = base + i as i64 * 10;
            let event = |kind| Observation::Events {
                device: device.clone(),
                received_at: at,
                events: vec![DeviceEvent { at, kind }],
            };
            match i % 50 {
                0..=19 => Observation::Telemetry {
                    device: device.clone(),
                    received_at: at,
                    telemetry: Telemetry {
                        schema: 1,
                        device_id: None,
                        at,
                        interval_ms: 60_000,
                        bytes_in: Some(40_000),
                        bytes_out: Some(120_000),
                        packets_in: Some(60),
                        packets_out: Some(140),
                        established_connections: Some(3),
                        destinations: vec!["10.0.0.5".into(), "10.0.0.9".into()],
                        distinct_destinations: Some(2),
                        listening_tcp_ports: Some(2),
                        listening_udp_ports: Some(1),
                    },
                },
                20..=29 => event(EventKind::ConnectionOpened {
                    protocol: Protocol::Tcp,
                    destination: "10.0.0.5".into(),
                    port: 443,
                    process: Some("agent".into()),
                }),
                30..=37 => event(EventKind::LoginSucceeded {
                    user: "ops".into(),
                    service: "sshd".into(),
                    source: Some("10.0.0.2".into()),
                    method: Some("publickey".into()),
                }),
                38..=44 => event(EventKind::ClockChanged { offset_ms: 3 }),
                _ => event(EventKind::LoginFailed {
                    user: "root".into(),
                    service: "telnetd".into(),
                    source: Some("203.0.113.66".into()),
                }),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let input = observations(20_000);
    let events: usize = input.iter().map(|o| normalise(o).len()).sum();
    let normalised: Vec<serde_json::Value> = input
        .iter()
        .flat_map(normalise)
        .map(|e| e.to_json())
        .collect();
    let mut group = c.benchmark_group("iot_pack");
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function("garrison_normalise_and_detect", |b| {
        let mut set = iot_rule_set();
        let mut detector = Detector::new(&mut set, DetectorOptions::default()).unwrap();
        b.iter(|| {
            let mut fired = 0usize;
            for observation in &input {
                for event in normalise(observation) {
                    fired += detector.process(&event.to_json()).len();
                }
            }
            black_box(fired)
        })
    });
    group.bench_function("rsigma_engine_prenormalised", |b| {
        let mut engine = Engine::new();
        let mut collection = rsigma_parser::SigmaCollection::new();
        for (_, text) in IOT_RULES {
            collection
                .rules
                .extend(rsigma_parser::parse_sigma_yaml(text).unwrap().rules);
        }
        engine.add_collection(&collection).unwrap();
        b.iter(|| {
            let mut fired = 0usize;
            for event in &normalised {
                fired += engine.evaluate(&JsonEvent::borrow(event)).len();
            }
            black_box(fired)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
