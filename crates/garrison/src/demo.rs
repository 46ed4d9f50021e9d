//! `garrison demo`: the five-minute tour. A server on embedded defaults in its own data
//! directory, groups and firmware policies for the simulated profiles, a fleet of simulated
//! devices enrolled and connected through the real EST and MQTT paths, a first posture audit,
//! and — after a minute — a scripted attack: a Mirai infection, C2 beaconing, a port scan, a
//! firmware tamper, credential stuffing against the broker and a reconnect storm.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use clap::Args;
use garrison_agent::est::{Credential, EstClient};
use garrison_core::{
    Impact, Username,
    audit::{Actor, AuditRecord},
};
use garrison_identity::Requester;
use garrison_inventory::GroupSpec;
use garrison_sim::{Endpoint, Fleet, Profile, Scenario, ScenarioKind, SimConfig, Weakness};

use crate::{
    config::{Config, Overrides},
    serve, setup,
};

/// Options of `garrison demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Data directory of the demo (wiped at start unless --keep).
    #[arg(long, value_name = "DIR", default_value = "garrison-demo")]
    pub data_dir: PathBuf,
    /// Simulated devices.
    #[arg(long, default_value_t = 200)]
    pub devices: usize,
    /// When the scripted attack starts, after the fleet is up.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub attack_after: Duration,
    /// Telemetry interval of the simulated devices.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub telemetry_interval: Duration,
    /// HTTPS listen address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: String,
    /// MQTT (mutual TLS) listen address.
    #[arg(long, default_value = "127.0.0.1:8883")]
    pub mqtt_listen: String,
    /// Keep the previous demo's data instead of starting fresh.
    #[arg(long)]
    pub keep: bool,
    /// Stop after this long (default: run until interrupted).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
}

/// Marks a directory as the demo's, so `demo` never wipes anything else.
const MARKER: &str = ".garrison-demo";

fn prepare_dir(args: &DemoArgs) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    if dir.exists() && !args.keep {
        if !dir.join(MARKER).exists() {
            bail!(
                "{} exists and is not a Garrison demo directory; pass another --data-dir (the demo wipes its directory at start)",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "This directory belongs to `garrison demo`, which wipes it at start.\n",
    )
    .with_context(|| format!("cannot write in {}", dir.display()))?;
    Ok(())
}

/// Each profile's group: its query, impact and the services its devices need.
fn groups() -> Vec<GroupSpec> {
    Profile::ALL
        .into_iter()
        .map(|p| {
            let impact = match p {
                Profile::InfusionPump => Impact::Critical,
                Profile::IndustrialGateway => Impact::High,
                Profile::IpCamera | Profile::BuildingController => Impact::Moderate,
                Profile::SmartPlug => Impact::Low,
            };
            GroupSpec {
                name: p.as_str().to_owned(),
                description: format!("Every {} ({})", p.spec().model, p.spec().manufacturer),
                query: Some(format!("model = \"{}\"", p.spec().model)),
                impact: Some(impact),
                allowed_services: Some(p.allowed_services()),
            }
        })
        .collect()
}

/// The attack: which scenario on which devices.
fn attack(fleet: &[garrison_sim::PlannedDevice], after: Duration) -> Vec<Scenario> {
    let pick = |profile: Profile, prefer: Option<Weakness>, skip: usize| -> Option<String> {
        let of_profile = || fleet.iter().filter(move |d| d.profile == profile);
        prefer
            .and_then(|w| of_profile().filter(|d| d.weaknesses.contains(&w)).nth(skip))
            .or_else(|| of_profile().nth(skip))
            .map(|d| d.id.to_string())
    };
    let mut out = Vec::new();
    let mut add = |kind, device: Option<String>, delay: Duration| {
        if let Some(d) = device {
            out.push(Scenario {
                kind,
                devices: vec![d],
                after: after + delay,
            });
        }
    };
    add(
        ScenarioKind::Mirai,
        pick(Profile::IpCamera, Some(Weakness::TelnetOpen), 0),
        Duration::ZERO,
    );
    add(
        ScenarioKind::Mirai,
        pick(Profile::IpCamera, Some(Weakness::TelnetOpen), 1),
        Duration::from_secs(20),
    );
    add(
        ScenarioKind::C2Beacon,
        pick(Profile::IndustrialGateway, None, 0),
        Duration::from_secs(5),
    );
    add(
        ScenarioKind::PortScan,
        pick(Profile::BuildingController, None, 0),
        Duration::from_secs(10),
    );
    add(
        ScenarioKind::FirmwareTamper,
        pick(Profile::InfusionPump, None, 0),
        Duration::from_secs(15),
    );
    add(
        ScenarioKind::CredentialStuffing,
        pick(Profile::SmartPlug, None, 0),
        Duration::from_secs(25),
    );
    add(
        ScenarioKind::ReconnectStorm,
        pick(Profile::IpCamera, None, 5),
        Duration::from_secs(30),
    );
    out
}

async fn print_audit(server_posture: &garrison_posture::PostureService, trigger: &str) {
    match server_posture.run(trigger, None).await {
        Ok(run) => println!(
            "  audit: {} devices checked, {} findings open ({} new, {} resolved) in {} ms",
            run.devices,
            run.open,
            run.opened,
            run.resolved,
            run.finished_at - run.started_at
        ),
        Err(e) => println!("  audit failed: {e}"),
    }
}

/// Runs the demo until interrupted.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    prepare_dir(&args)?;
    let mut config = Config::load(
        None,
        &Overrides {
            data_dir: Some(args.data_dir.clone()),
            listen: Some(args.listen.clone()),
            ..Overrides::default()
        },
    )?;
    config.broker.listen = args.mqtt_listen.clone();
    // The whole fleet connects from this one address.
    config.broker.max_connects_per_minute_per_source = 0;
    config.posture.interval = Duration::from_secs(300);
    // A threat feed naming the simulator's C2 server, so the beaconing device is caught.
    let feed = args.data_dir.join("demo-c2-feed.txt");
    std::fs::write(
        &feed,
        format!(
            "# The demo's threat feed: the C2 server the attack scenarios contact.\n{}\n",
            garrison_sim::scenario::C2_ADDRESS
        ),
    )
    .with_context(|| format!("cannot write {}", feed.display()))?;
    config.monitor.intel.push(feed);
    // The server's log goes to a file: the terminal is the tour's.
    let log_path = args.data_dir.join("server.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    setup::init_logging_to(&config, std::sync::Mutex::new(log), false);
    let server = serve::start(config).await?;
    let tenant = server.tenant.clone();
    let store = server.store.clone();
    let demo = Requester {
        username: Username::new("demo")?,
        actor: Actor::system("demo"),
        source: None,
    };
    let record = |action: &str, target: &str| {
        AuditRecord::new(&tenant, Actor::system("demo"), action, target)
    };
    for spec in groups() {
        let target = format!("group:{}", spec.name);
        match server
            .inventory
            .service
            .create_group(spec, "demo", record("group.create", &target))
            .await
        {
            Ok(_) => {}
            // A kept demo already has them.
            Err(garrison_inventory::InventoryError::Store(
                garrison_store::StoreError::Conflict { .. },
            )) if args.keep => {}
            Err(e) => return Err(e.into()),
        }
    }
    for p in Profile::ALL {
        let spec = p.spec();
        server
            .inventory
            .service
            .set_firmware_policy(
                spec.model,
                Some(spec.minimum_firmware),
                "demo",
                record(
                    "posture.firmware_policy.set",
                    &format!("model:{}", spec.model),
                ),
            )
            .await?;
    }
    let (_, token) = server
        .identity
        .create_bootstrap_token(
            &tenant,
            "demo-*",
            args.devices as i64 * 2 + 100,
            Duration::from_secs(7 * 86_400),
            None,
            &demo,
        )
        .await
        .context("cannot create the fleet's bootstrap token")?;
    // Devices the plan gives an expiring certificate enroll with this one: ten days is inside
    // the audit's default warning window of fourteen.
    let (_, expiring_token) = server
        .identity
        .create_bootstrap_token(
            &tenant,
            "demo-*",
            args.devices as i64 + 10,
            Duration::from_secs(7 * 86_400),
            Some(Duration::from_secs(10 * 86_400)),
            &demo,
        )
        .await
        .context("cannot create the fleet's short-lived bootstrap token")?;

    let api = format!("https://{}", server.api_addr);
    let mqtt = server.mqtt_addr.context("the demo needs the broker")?;
    let ca_file = server.ca_file.clone();
    let ca_pem = std::fs::read(&ca_file)?;
    let data_dir = args.data_dir.clone();
    let password = server.admin_password.clone();
    let posture = server.inventory.posture.clone();
    let releases = server.releases.clone();
    let campaigns = server.campaigns.clone();

    println!(
        "Garrison demo: {} simulated devices, attack in {}.",
        args.devices,
        humantime::format_duration(args.attack_after)
    );
    println!();
    println!("  API:      {api}   (OpenAPI: {api}/api/openapi.json, reference: {api}/api/docs)");
    println!("  MQTT:     mqtts://{mqtt} (mutual TLS)");
    println!("  trust:    {}", ca_file.display());
    println!("  log:      {}", log_path.display());
    match &password {
        Some(p) => println!("  admin:    username admin, password {p}"),
        None => println!(
            "  admin:    the password printed by the first demo run (or `garrison admin reset-password --data-dir {}`)",
            data_dir.display()
        ),
    }
    println!(
        "  log in:   garrison login --server {api} --ca-cert {} --username admin",
        ca_file.display()
    );
    println!();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stop_rx2 = stop_rx.clone();
    let serving = tokio::spawn(server.serve(async move {
        let _ = stop_rx2.wait_for(|s| *s).await;
    }));

    let sim = SimConfig {
        endpoint: Endpoint {
            est: EstClient::new(&api, ca_pem.clone()),
            ca_pem: Arc::new(ca_pem),
            mqtt_host: mqtt.ip().to_string(),
            mqtt_port: mqtt.port(),
            credential: Credential::Token(token.token),
            expiring_credential: Some(Credential::Token(expiring_token.token)),
            state_dir: Some(data_dir.join("sim")),
            telemetry_interval: args.telemetry_interval,
            update_failure_rate: 0.0,
        },
        devices: args.devices,
        prefix: "demo".into(),
        weak_share: 0.2,
        scenarios: Vec::new(),
        enroll_concurrency: 16,
        connect_rate: 200,
        progress: true,
    };
    let (fleet, report) = Fleet::start(sim).await?;
    println!(
        "  fleet:    {} devices enrolled in {:.1} s, {} connected in {:.1} s",
        report.devices, report.enroll_seconds, report.connected, report.connect_seconds
    );
    // Let the inventories land before the first audit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    print_audit(&posture, "demo").await;
    let campaign = match rollout(&releases, &campaigns).await {
        Ok(id) => {
            println!(
                "  update:   signed release 5.8.0 rolling out to the cameras: 10% → 50% → 100%"
            );
            println!("            garrison campaign show {id}");
            Some(id)
        }
        // A kept demo has its release already; the rest of the tour does not need it.
        Err(e) => {
            println!("  update:   no rollout this time: {e:#}");
            None
        }
    };
    println!();
    println!("  try:      garrison device list -q 'risk >= 40'");
    println!("            garrison finding list --severity high");
    println!("            garrison group list");
    println!();
    let scenarios = attack(fleet.plan(), args.attack_after);
    for s in &scenarios {
        println!(
            "  attack:   {} on {} in {}",
            s.kind,
            s.devices.join(", "),
            humantime::format_duration(s.after)
        );
        fleet.schedule(s.clone());
    }
    let last = scenarios.iter().map(|s| s.after).max().unwrap_or_default();
    // Set once the summary starts printing: a demo ending then lets it finish.
    let summarising = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut watch_attack = {
        let posture = posture.clone();
        let store = store.clone();
        let tenant = tenant.clone();
        let summarising = summarising.clone();
        tokio::spawn(async move {
            tokio::time::sleep(last + Duration::from_secs(10)).await;
            summarising.store(true, std::sync::atomic::Ordering::SeqCst);
            println!();
            println!("  The attack has played. See it in:");
            println!("            garrison alert list");
            println!("            garrison response list");
            println!("            garrison device drift");
            println!("            garrison device events");
            println!("            garrison device unmanaged");
            print_alerts(store.as_ref(), &tenant).await;
            if let Some(id) = campaign
                && let Ok(c) = campaigns.get(&id).await
            {
                println!();
                println!(
                    "  Update campaign: {}, {} of {} cameras on 5.8.0 (garrison campaign show {id})",
                    c.state,
                    c.stages.get("succeeded").copied().unwrap_or(0),
                    c.record.devices
                );
            }
            print_audit(&posture, "demo").await;
        })
    };
    println!();
    println!("Press Ctrl-C to stop.");
    match args.duration {
        Some(d) => {
            tokio::select! {
                () = tokio::time::sleep(d) => {}
                () = serve::shutdown_signal() => {}
            }
        }
        None => serve::shutdown_signal().await,
    }
    if summarising.load(std::sync::atomic::Ordering::SeqCst) {
        // Its queries take well under a second; the bound only guards a stuck store.
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut watch_attack).await;
    }
    watch_attack.abort();
    fleet.stop().await;
    let _ = stop_tx.send(true);
    serving.await??;
    println!("Demo stopped; its data is in {}.", data_dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Signs a release for the fleet's cameras (fresh Ed25519 root and release keys, kept in
/// memory: a demo's keys protect nothing), pins the root, uploads the image, publishes it and
/// starts a three-phase campaign to the cameras' group. Returns the campaign's id.
async fn rollout(
    releases: &garrison_releases::Releases,
    campaigns: &garrison_campaigns::CampaignService,
) -> anyhow::Result<String> {
    use garrison_update::{
        Algorithm, Artifact, Manifest, Sha256Stream, SignedManifest, SigningKey, TrustRoot,
        campaign::{Action, Approval, CampaignSpec, PhaseSpec},
    };
    let now = garrison_core::now_ms();
    let root_key = SigningKey::generate(Algorithm::Ed25519)?;
    let release_key = SigningKey::generate(Algorithm::Ed25519)?;
    let root = TrustRoot {
        root_version: 1,
        root_keys: vec![root_key.public_key()],
        root_threshold: 1,
        release_keys: vec![release_key.public_key()],
        created_at: now,
        expires_at: None,
    };
    let camera = Profile::IpCamera.spec();
    let image: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut digest = Sha256Stream::default();
    digest.update(&image);
    let (sha256, size) = digest.finish();
    let manifest = Manifest {
        manifest_version: 1,
        vendor: camera.manufacturer.into(),
        class: camera.model.into(),
        sequence: 2,
        version: "5.8.0".into(),
        artifacts: vec![Artifact {
            name: "av-cam-220-5.8.0.swu".into(),
            sha256: sha256.clone(),
            size,
        }],
        created_at: now,
        expires_at: None,
        description: Some("Garrison demo: the cameras' next firmware".into()),
    };
    let signed = SignedManifest::sign(&manifest, &release_key)?;
    let by = garrison_releases::Actor {
        username: "demo".into(),
        actor: Actor::system("demo"),
        source: None,
    };
    releases.pin_root(&root.sign(&[&root_key])?, &by).await?;
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(image))]);
    releases.upload(&sha256, body, &by).await?;
    let release = releases.publish(signed.as_bytes(), &by).await?;
    let phase = |percent| PhaseSpec {
        percent,
        approval: Approval::Automatic,
    };
    let created = campaigns
        .create(
            garrison_campaigns::NewCampaign {
                name: "cameras to 5.8.0".into(),
                release: release.id,
                target: garrison_campaigns::Target::Group(Profile::IpCamera.as_str().into()),
                spec: CampaignSpec {
                    phases: vec![phase(10), phase(50), phase(100)],
                    action: Action::Forced,
                    max_attempts: 2,
                    retry_backoff_ms: 5_000,
                    device_timeout_ms: 60_000,
                    ..CampaignSpec::default()
                },
            },
            &by,
        )
        .await?;
    Ok(created.record.id)
}

/// The alerts the attack raised and what the playbooks did about them.
async fn print_alerts(store: &dyn garrison_store::Store, tenant: &garrison_core::TenantId) {
    use garrison_store::{
        PageRequest,
        monitor::{AlertFilter, ResponseFilter},
    };
    let filter = AlertFilter {
        open: true,
        min_severity: Some(garrison_core::Severity::High),
        ..AlertFilter::default()
    };
    match store
        .alerts_list(tenant, &filter, &PageRequest::first(20))
        .await
    {
        Ok(page) => {
            println!();
            println!("  Alerts (high and critical, newest first):");
            for a in page.items {
                println!(
                    "    {:<8} {:<14} {}",
                    a.severity.as_str(),
                    a.device.as_ref().map_or("-", |d| d.as_str()),
                    a.title
                );
            }
        }
        Err(e) => println!("  cannot list alerts: {e}"),
    }
    if let Ok(page) = store
        .responses_list(tenant, &ResponseFilter::default(), &PageRequest::first(20))
        .await
    {
        println!("  Responses:");
        for r in page.items {
            println!(
                "    {:<10} {:<14} {:<9} {}",
                r.action,
                r.device.as_ref().map_or("-", |d| d.as_str()),
                r.status.as_str(),
                r.detail
            );
        }
    }
}
