//! A campaign to 10,000 simulated devices on the embedded store (SQLite), one phase, no rate
//! limit: how long until every device is notified, verified installs per minute, and what the
//! process spent (CPU seconds, peak memory). Devices are the test fleet's: each answers a
//! notice with the seven reports of an install, so the engine applies 70,000 reports and writes
//! 80,000 history rows. The MQTT hop is not in it (that is the broker's benchmark).
//!
//! Run: `cargo bench -p garrison-campaigns --bench rollout` (env BENCH_DEVICES=10000).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

#[path = "../tests/fleet/mod.rs"]
mod fleet;

use fleet::*;
use garrison_campaigns::{NewCampaign, Target};
use garrison_update::campaign::{Approval, CampaignSpec, CampaignState, PhaseSpec};

/// User + system CPU seconds of this process, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let devices: usize = std::env::var("BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let f = fleet(devices).await;
        let run = start(&f, |_| false);
        let spec = CampaignSpec {
            phases: vec![PhaseSpec {
                percent: 100,
                approval: Approval::Automatic,
            }],
            max_attempts: 1,
            ..CampaignSpec::default()
        };
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let created = run
            .service
            .create(
                NewCampaign {
                    name: "bench".into(),
                    release: f.release.id.clone(),
                    target: Target::Group("cams".into()),
                    spec,
                },
                &ann(),
            )
            .await
            .unwrap();
        let created_in = started.elapsed();
        let total = created.record.devices as usize;
        let mut all_notified = None;
        loop {
            if all_notified.is_none() && run.notified.lock().unwrap().len() == total {
                all_notified = Some(started.elapsed());
            }
            let s = run.service.get(&created.record.id).await.unwrap();
            if s.state.is_finished() {
                assert_eq!(s.state, CampaignState::Completed);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let done = started.elapsed();
        let all_notified = all_notified.unwrap_or(done);
        let reports = run.reports.load(std::sync::atomic::Ordering::Relaxed);
        println!("devices            {total}");
        println!("created (stored)   {:.2} s", created_in.as_secs_f64());
        println!("all notified       {:.2} s", all_notified.as_secs_f64());
        println!("all succeeded      {:.2} s", done.as_secs_f64());
        println!(
            "installs/min       {:.0}",
            total as f64 / done.as_secs_f64() * 60.0
        );
        println!(
            "reports/s          {:.0}",
            reports as f64 / done.as_secs_f64()
        );
        println!("cpu                {:.2} s", cpu_seconds() - cpu_before);
        println!("peak rss           {:.0} MiB", peak_rss_mib());
    });
}
