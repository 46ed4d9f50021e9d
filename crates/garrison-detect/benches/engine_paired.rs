//! The engine benchmark's comparison made robust to a noisy machine: Garrison's `Detector`,
//! the same without its keyword pre-filter, and rsigma's plain `Engine` take turns, round after
//! round, on the same 10,000 events from raw JSON (as in `engine.rs`), so a slow minute slows
//! all three alike; medians per variant and their ratios are printed.
//!
//! Run: `cargo bench -p garrison-detect --bench engine_paired` (env `ROUNDS`, default 15).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod corpus;

use std::{hint::black_box, time::Instant};

use corpus::{detector, events, rsigma_engine};
use garrison_detect::DetectorOptions;
use rsigma_eval::JsonEvent;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let lines = events(10_000);
    for size in [0, 1_000] {
        let mut filtered = detector(size, DetectorOptions::default());
        let mut unfiltered = detector(
            size,
            DetectorOptions {
                unfiltered: true,
                ..DetectorOptions::default()
            },
        );
        let plain = rsigma_engine(size);
        let mut rates: [Vec<f64>; 3] = Default::default();
        for _ in 0..rounds {
            for (variant, rate) in rates.iter_mut().enumerate() {
                let started = Instant::now();
                let mut hits = 0;
                for line in &lines {
                    let event: serde_json::Value = serde_json::from_str(line).unwrap();
                    hits += match variant {
                        0 => filtered.process(&event).len(),
                        1 => unfiltered.process(&event).len(),
                        _ => plain.evaluate(&JsonEvent::borrow(&event)).len(),
                    };
                }
                black_box(hits);
                rate.push(lines.len() as f64 / started.elapsed().as_secs_f64());
            }
        }
        let [garrison, unfiltered, rsigma] = rates.map(median);
        let (rules, _) = filtered.rule_counts();
        println!(
            "{rules} rules, median of {rounds} rounds: Garrison {:.1}k events/s, without pre-filter {:.1}k, rsigma Engine {:.1}k; Garrison/rsigma {:.2}x",
            garrison / 1e3,
            unfiltered / 1e3,
            rsigma / 1e3,
            garrison / rsigma
        );
    }
}
