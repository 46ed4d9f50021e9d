//! Campaigns end to end at the service: a simulated fleet of 1,000 devices receives the
//! notices through a broker stand-in and answers with `update/status` reports, as devices do
//! over MQTT. Phases advance on success, an injected 20% failure rate aborts the rollout, a
//! restart of the service in the middle loses nothing, download-only campaigns end at
//! `verified`, maintenance windows hold notices back, and the rate limit is kept.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use garrison_campaigns::{CampaignService, NewCampaign, Target};
use garrison_core::{DeviceId, now_ms};
use garrison_store::Store;
use garrison_update::campaign::{
    Action, Approval, CampaignSpec, CampaignState, MaintenanceWindow, PhaseSpec,
};

mod fleet;
use fleet::*;

const FLEET: usize = 1000;

fn spec(phases: &[(u8, Approval)]) -> CampaignSpec {
    CampaignSpec {
        phases: phases
            .iter()
            .map(|&(percent, approval)| PhaseSpec { percent, approval })
            .collect(),
        success_threshold: 90,
        error_threshold: 10,
        max_attempts: 1,
        retry_backoff_ms: 0,
        ..CampaignSpec::default()
    }
}

fn standard() -> CampaignSpec {
    spec(&[
        (1, Approval::Automatic),
        (10, Approval::Automatic),
        (100, Approval::Automatic),
    ])
}

async fn wait_for(
    service: &CampaignService,
    id: &str,
    done: impl Fn(CampaignState) -> bool,
) -> garrison_campaigns::CampaignSummary {
    for _ in 0..1500 {
        let s = service.get(id).await.unwrap();
        if done(s.state) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "campaign {id} did not get there: {:?}",
        service.get(id).await.unwrap().stages
    );
}

fn new_campaign(f: &Fleet, target: Target, spec: CampaignSpec) -> NewCampaign {
    NewCampaign {
        name: "cam-x 2.0".into(),
        release: f.release.id.clone(),
        target,
        spec,
    }
}

async fn audit_actions(store: &dyn Store, campaign: &str) -> Vec<String> {
    let mut out = Vec::new();
    let page = store
        .audit_list(&tenant(), &garrison_store::PageRequest::first(500))
        .await
        .unwrap();
    for e in page.items.into_iter().rev() {
        if e.target == format!("campaign:{campaign}") {
            out.push(e.action.clone());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_to_a_thousand_devices_advances_phase_by_phase_to_completion() {
    let f = fleet(FLEET).await;
    let run = start(&f, |_| false);
    let created = run
        .service
        .create(
            new_campaign(&f, Target::Query("id ~ \"cam-*\"".into()), standard()),
            &ann(),
        )
        .await
        .unwrap();
    // One device in a hundred is another model: left out, and said so.
    assert_eq!(created.record.devices, 990);
    assert_eq!(created.excluded.get("other-model"), Some(&10));
    assert_eq!(
        created.phases.iter().map(|p| p.total).collect::<Vec<_>>(),
        vec![10, 89, 891]
    );
    let started = std::time::Instant::now();
    let done = wait_for(&run.service, &created.record.id, |s| s.is_finished()).await;
    assert_eq!(done.state, CampaignState::Completed);
    assert_eq!(done.stages.get("succeeded"), Some(&990));
    // Every device was asked exactly once.
    let notified = run.notified.lock().unwrap().clone();
    assert_eq!(notified.len(), 990);
    assert!(notified.values().all(|&n| n == 1));
    eprintln!("990 devices updated in {:?}", started.elapsed());
    // Its path is kept per device, and every decision is audited in order.
    let history = run
        .service
        .history(&created.record.id, &DeviceId::new("cam-0000").unwrap())
        .await
        .unwrap();
    let stages: Vec<&str> = history.iter().map(|h| h.stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "notified",
            "downloading",
            "downloaded",
            "verified",
            "installing",
            "installed",
            "rebooted",
            "succeeded"
        ]
    );
    assert_eq!(
        audit_actions(f.store.as_ref(), &created.record.id).await,
        [
            "update.campaign.create",
            "update.campaign.advance",
            "update.campaign.advance",
            "update.campaign.complete"
        ]
    );
    assert!(f.store.audit_verify().await.unwrap().first_break.is_none());
}

/// One device in five fails (by its id, so the draw does not depend on timing).
fn one_in_five(device: &DeviceId) -> bool {
    let n: usize = device.as_str()[4..].parse().unwrap();
    n.is_multiple_of(5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_percent_failure_rate_aborts_the_rollout_before_it_reaches_the_fleet() {
    let f = fleet(FLEET).await;
    let run = start(&f, one_in_five);
    let created = run
        .service
        .create(
            new_campaign(&f, Target::Group("cams".into()), standard()),
            &ann(),
        )
        .await
        .unwrap();
    let done = wait_for(&run.service, &created.record.id, |s| s.is_finished()).await;
    assert_eq!(done.state, CampaignState::Aborted);
    let reason = done.record.reason.clone().unwrap();
    assert!(
        reason.contains("above the error threshold of 10%"),
        "{reason}"
    );
    // Only the phases that started were touched; the rest of the fleet never got a notice.
    let notified = run.notified.lock().unwrap().len() as u64;
    let started: u64 = done.phases[..=done.record.phase as usize]
        .iter()
        .map(|p| p.total)
        .sum();
    assert!(
        notified <= started,
        "{notified} notified, {started} in started phases"
    );
    assert!(notified < 200, "{notified} devices were notified");
    assert_eq!(done.stages.get("pending"), None);
    assert!(done.stages.get("cancelled").copied().unwrap_or(0) >= 990 - started);
    let actions = audit_actions(f.store.as_ref(), &created.record.id).await;
    assert_eq!(
        actions.last().map(String::as_str),
        Some("update.campaign.abort")
    );
    // A failed device's history says why.
    let failed = run
        .service
        .devices(
            &created.record.id,
            Some(garrison_update::campaign::Stage::Failed),
            &garrison_store::PageRequest::first(5),
        )
        .await
        .unwrap();
    assert!(!failed.items.is_empty());
    assert_eq!(failed.items[0].reason.as_deref(), Some("flash write error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_rollout_resumes_exactly_where_it_was() {
    let f = fleet(FLEET).await;
    let id;
    let before;
    {
        let run = start(&f, |_| false);
        let created = run
            .service
            .create(
                new_campaign(
                    &f,
                    Target::Group("cams".into()),
                    spec(&[
                        (1, Approval::Automatic),
                        (10, Approval::Manual),
                        (100, Approval::Automatic),
                    ]),
                ),
                &ann(),
            )
            .await
            .unwrap();
        id = created.record.id.clone();
        before = wait_for(&run.service, &id, |s| s == CampaignState::WaitingApproval).await;
        // The server stops here.
    }
    let run = start(&f, |_| false);
    assert_eq!(run.service.resume().await.unwrap(), 1);
    let after = run.service.get(&id).await.unwrap();
    assert_eq!(after.state, CampaignState::WaitingApproval);
    assert_eq!(after.phases, before.phases);
    assert_eq!(after.stages, before.stages);
    assert_eq!(after.record.phase, 0);
    // While it waits no new phase starts: only first-phase devices left at `notified` by the
    // stop are sent their notice again. The operator's approval starts phase 2.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resent = run.notified.lock().unwrap().len() as u64;
    assert!(
        resent <= before.phases[0].open,
        "{resent} notices while waiting"
    );
    run.service.approve(&id, &ann()).await.unwrap();
    let done = wait_for(&run.service, &id, |s| s.is_finished()).await;
    assert_eq!(done.state, CampaignState::Completed);
    assert_eq!(done.stages.get("succeeded"), Some(&990));
    // The first phase's devices were not asked again after the restart.
    let again = run.notified.lock().unwrap().len();
    assert_eq!(again as u64, 990 - before.phases[0].total + resent);
    let conflict = run.service.approve(&id, &ann()).await.unwrap_err();
    assert!(conflict.to_string().contains("completed"), "{conflict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_only_campaigns_end_at_verified() {
    let f = fleet(FLEET).await;
    let run = start(&f, |_| false);
    let mut s = spec(&[(50, Approval::Automatic), (100, Approval::Automatic)]);
    s.action = Action::DownloadOnly;
    let created = run
        .service
        .create(new_campaign(&f, Target::Group("night".into()), s), &ann())
        .await
        .unwrap();
    let done = wait_for(&run.service, &created.record.id, |s| s.is_finished()).await;
    assert_eq!(done.state, CampaignState::Completed);
    let history = run
        .service
        .history(&created.record.id, &DeviceId::new("cam-0001").unwrap())
        .await
        .unwrap();
    let stages: Vec<&str> = history.iter().map(|h| h.stage.as_str()).collect();
    assert_eq!(
        stages,
        ["notified", "downloading", "downloaded", "succeeded"]
    );
    assert_eq!(history[3].reported.as_deref(), Some("verified"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_windows_and_the_rate_limit_hold_notices_back() {
    let f = fleet(FLEET).await;
    let run = start(&f, |_| false);
    // A window that is closed now: open for one minute, twelve hours from now.
    let closed_start = (now_ms() / 60_000 + 720) % 1440;
    let closed = MaintenanceWindow {
        days: vec![],
        start: format!("{:02}:{:02}", closed_start / 60, closed_start % 60),
        duration_minutes: 1,
        utc_offset_minutes: 0,
    };
    run.service
        .set_window("night", closed, &ann())
        .await
        .unwrap();
    let created = run
        .service
        .create(
            new_campaign(
                &f,
                Target::Group("night".into()),
                spec(&[(100, Approval::Automatic)]),
            ),
            &ann(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        run.notified.lock().unwrap().is_empty(),
        "notified outside the window"
    );
    assert_eq!(
        run.service
            .get(&created.record.id)
            .await
            .unwrap()
            .stages
            .get("pending"),
        Some(&created.record.devices.try_into().unwrap())
    );
    // The window goes; the devices are asked.
    run.service.delete_window("night", &ann()).await.unwrap();
    let done = wait_for(&run.service, &created.record.id, |s| s.is_finished()).await;
    assert_eq!(done.state, CampaignState::Completed);
    run.service
        .cancel(&created.record.id, &ann())
        .await
        .unwrap_err();

    // 60 a minute: one at once, then about one a second.
    let mut limited = spec(&[(100, Approval::Automatic)]);
    limited.rate_per_minute = Some(60);
    let total = |run: &Running| run.notified.lock().unwrap().values().sum::<u32>();
    let before = total(&run);
    let created = run
        .service
        .create(
            new_campaign(&f, Target::Group("cams".into()), limited),
            &ann(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = total(&run) - before;
    assert!((1..=3).contains(&sent), "{sent} notices in 1.5 s at 60/min");
    let cancelled = run
        .service
        .cancel(&created.record.id, &ann())
        .await
        .unwrap();
    assert_eq!(cancelled.state, CampaignState::Cancelled);
    assert_eq!(cancelled.stages.get("pending"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sbom_gate_refuses_a_release_with_a_denied_component() {
    let f = fleet(20).await;
    let run = start(&f, |_| false);
    let dir = tempfile::tempdir().unwrap();
    let releases = garrison_releases::Releases::open(
        f.store.clone(),
        tenant(),
        dir.path().to_path_buf(),
        1 << 20,
    )
    .unwrap();
    run.service.attach_gate(
        std::sync::Arc::new(garrison_campaigns::SbomPolicy {
            deny: vec!["openssl<3.0.7".parse().unwrap(), "telnetd".parse().unwrap()],
        }),
        releases.clone(),
    );
    // Two releases of the same image, each with its SBOM as a signed artifact.
    let mut ids = Vec::new();
    for (sequence, openssl) in [(8, "1.1.1w"), (9, "3.0.11")] {
        let sbom = serde_json::to_vec(&serde_json::json!({
            "bomFormat": "CycloneDX", "specVersion": "1.5",
            "components": [
                {"type": "library", "name": "openssl", "version": openssl},
                {"type": "application", "name": "busybox", "version": "1.36.1"},
            ],
        }))
        .unwrap();
        let mut digest = garrison_update::Sha256Stream::default();
        digest.update(&sbom);
        let (sha256, size) = digest.finish();
        std::fs::write(releases.artifact_path(&sha256).unwrap(), &sbom).unwrap();
        let release = garrison_store::updates::Release {
            id: format!("r{sequence}"),
            sequence,
            artifacts: serde_json::json!([
                {"name": "rootfs.swu", "sha256": "ab".repeat(32), "size": 10},
                {"name": "sbom.cdx.json", "sha256": sha256, "size": size},
            ]),
            ..f.release.clone()
        };
        f.store
            .release_create(
                &release,
                garrison_core::audit::AuditRecord::new(
                    &tenant(),
                    garrison_core::audit::Actor::operator("ann"),
                    "update.release.publish",
                    release.id.clone(),
                ),
            )
            .await
            .unwrap();
        ids.push(release.id);
    }
    let gated = |release: &str| {
        let mut spec = spec(&[(100, Approval::Automatic)]);
        spec.sbom_gate = true;
        NewCampaign {
            name: "gated".into(),
            release: release.to_owned(),
            target: Target::Group("cams".into()),
            spec,
        }
    };
    let refused = run
        .service
        .create(gated(&ids[0]), &ann())
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("openssl 1.1.1w is below the minimum 3.0.7"),
        "{refused}"
    );
    let refused = run
        .service
        .create(gated(&f.release.id), &ann())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("has no SBOM"), "{refused}");
    let passed = run.service.create(gated(&ids[1]), &ann()).await.unwrap();
    assert_eq!(passed.state, CampaignState::Running);
    assert!(passed.spec.sbom_gate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_marked_unpatchable_is_withdrawn_from_a_running_campaign() {
    let f = fleet(100).await;
    let run = start(&f, |_| false);
    let created = run
        .service
        .create(
            new_campaign(
                &f,
                Target::Group("cams".into()),
                spec(&[(10, Approval::Automatic), (100, Approval::Manual)]),
            ),
            &ann(),
        )
        .await
        .unwrap();
    let id = created.record.id.clone();
    wait_for(&run.service, &id, |s| s == CampaignState::WaitingApproval).await;
    let waiting = run
        .service
        .devices(
            &id,
            Some(garrison_update::campaign::Stage::Pending),
            &garrison_store::PageRequest::first(1),
        )
        .await
        .unwrap();
    let device = waiting.items[0].device.clone();
    run.service
        .withdraw(&device, "marked unpatchable: end-of-support")
        .await
        .unwrap();
    run.service.approve(&id, &ann()).await.unwrap();
    let done = wait_for(&run.service, &id, |s| s.is_finished()).await;
    assert_eq!(done.state, CampaignState::Completed);
    assert_eq!(done.stages.get("cancelled"), Some(&1));
    assert!(!run.notified.lock().unwrap().contains_key(&device));
    let history = run.service.history(&id, &device).await.unwrap();
    assert_eq!(history.last().unwrap().stage, "cancelled");
    assert!(
        history
            .last()
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("unpatchable")
    );
}
