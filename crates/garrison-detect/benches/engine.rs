//! Rule engine throughput from raw JSON: parse an event line and evaluate it against the SigmaHQ
//! Linux rule set (about 210 rules) and against 1,000 rules (the set copied under fresh ids),
//! through Garrison's `Detector` and, beside it in the same run, through rsigma's plain
//! `Engine` (detection only, no correlation state) on the same events.
//!
//! Events are synthetic Linux process, network, file and auditd records, about 1 in 100 an
//! attack some rule should catch. Run: `cargo bench -p garrison-detect --bench engine`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod corpus;

use std::hint::black_box;

use corpus::{detector, events, rsigma_engine};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use garrison_detect::DetectorOptions;
use rsigma_eval::JsonEvent;

fn bench(c: &mut Criterion) {
    let lines = events(10_000);
    for (label, size) in [("sigmahq_linux", 0), ("sigmahq_linux_copied", 1_000)] {
        let mut detector = detector(size, DetectorOptions::default());
        let plain = rsigma_engine(size);
        let (rules, _) = detector.rule_counts();
        let mut group = c.benchmark_group(format!("{label}_{rules}_rules"));
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function("garrison_detector", |b| {
            b.iter(|| {
                let mut hits = 0;
                for line in &lines {
                    let event: serde_json::Value = serde_json::from_str(line).unwrap();
                    hits += detector.process(&event).len();
                }
                black_box(hits)
            })
        });
        group.bench_function("rsigma_engine", |b| {
            b.iter(|| {
                let mut hits = 0;
                for line in &lines {
                    let event: serde_json::Value = serde_json::from_str(line).unwrap();
                    hits += plain.evaluate(&JsonEvent::borrow(&event)).len();
                }
                black_box(hits)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
