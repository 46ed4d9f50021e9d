//! Wires monitoring into `serve`: rules (the built-in IoT pack plus configured files),
//! playbooks (the configured file or the built-in one), the pipeline fed by the inventory's
//! intake, behaviour baselines, the response service the API uses, and the expiry of response
//! actions.

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use garrison_broker::DeviceBroker;
use garrison_core::TenantId;
use garrison_detect::{Detector, DetectorOptions, LoadOutcome, RuleSet};
use garrison_identity::IdentityService;
use garrison_inventory::{InventoryService, Observation};
use garrison_monitor::{
    Monitor, ResponseService,
    feeds::IntelService,
    intel::{SharedIntel, ThreatIntel},
    playbook::{self, Playbook},
    respond::LiveResponder,
};
use garrison_store::Store;
use tokio::sync::mpsc;

use crate::config::MonitorConfig;

/// Observations waiting for the monitor before the intake waits too.
pub const OBSERVATION_QUEUE: usize = 64;
/// Syslog records waiting for the monitor before stream senders wait (and UDP drops).
pub const SYSLOG_QUEUE: usize = 10_000;

/// Rules and playbooks, loaded and checked before anything starts.
pub struct Loaded {
    detector: Detector,
    playbooks: Vec<Playbook>,
    intel: ThreatIntel,
    intel_sources: Vec<String>,
}

/// Loads the rules and playbooks `config` names; a bad playbook file stops the start, a rule
/// that cannot load is reported and skipped.
pub fn load(config: &MonitorConfig) -> anyhow::Result<Loaded> {
    let mut rules = if config.builtin_rules {
        garrison_detect::builtin::iot_rule_set()
    } else {
        RuleSet::new()
    };
    for path in &config.rules {
        rules.load_path(path).with_context(|| {
            format!(
                "cannot read the rules in {} (monitor.rules)",
                path.display()
            )
        })?;
    }
    let detector = Detector::new(&mut rules, DetectorOptions::default())
        .context("cannot build the detection engine")?;
    for r in rules.report() {
        if let LoadOutcome::Rejected(reason) = &r.outcome {
            tracing::warn!(source = %r.source, rule = ?r.title, %reason, "A detection rule did not load; run `garrison rules lint` on it");
        }
    }
    let (detection, correlation) = detector.rule_counts();
    tracing::info!(detection, correlation, "Detection rules loaded");
    let mut playbooks = match &config.playbooks {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read the playbooks in {} (monitor.playbooks)",
                    path.display()
                )
            })?;
            playbook::parse(&path.display().to_string(), &text)?
        }
        None => playbook::parse("the built-in playbook", playbook::DEFAULT_PLAYBOOKS)?,
    };
    let mut intel = ThreatIntel::default();
    let mut intel_sources = Vec::new();
    for path in &config.intel {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the threat intelligence in {} (monitor.intel)",
                path.display()
            )
        })?;
        let source = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        let summary = intel.load(
            &path.display().to_string(),
            &text,
            &source,
            config.intel_confidence,
            garrison_core::now_ms(),
        )?;
        for s in summary.skipped.iter().take(20) {
            tracing::info!(file = %path.display(), entry = %s.what, reason = %s.reason, "Threat-intelligence entry skipped");
        }
        tracing::info!(
            file = %path.display(),
            indicators = summary.added,
            skipped = summary.skipped.len(),
            "Threat intelligence loaded"
        );
        intel_sources.push(source);
    }
    if config.dry_run {
        for p in &mut playbooks {
            p.dry_run = true;
        }
    }
    Ok(Loaded {
        detector,
        playbooks,
        intel,
        intel_sources,
    })
}

/// The running monitor.
pub struct Monitoring {
    /// For the API.
    pub responses: ResponseService,
    /// For the API: imported threat-intelligence sources.
    pub intel: IntelService,
    /// Filled in once the broker runs, so responses can disconnect devices.
    pub broker: Arc<OnceLock<Arc<dyn DeviceBroker>>>,
    /// The detection pipeline: it ends after the intake, once it has saved its baselines.
    pub pipeline: tokio::task::JoinHandle<()>,
}

/// What the monitor consumes.
pub struct Inputs {
    /// From the device intake.
    pub observations: mpsc::Receiver<Vec<Observation>>,
    /// From the syslog listeners, when any run.
    pub syslog: Option<mpsc::Receiver<garrison_syslog::SyslogRecord>>,
}

/// Starts the pipeline on its inputs and the expiry of response actions.
pub async fn start(
    config: &MonitorConfig,
    loaded: Loaded,
    store: Arc<dyn Store>,
    tenant: TenantId,
    identity: IdentityService,
    inventory: InventoryService,
    inputs: Inputs,
) -> anyhow::Result<Monitoring> {
    let broker = Arc::new(OnceLock::new());
    let index = inventory.index().clone();
    let responder = LiveResponder::new(
        tenant.clone(),
        store.clone(),
        identity,
        inventory,
        broker.clone(),
    );
    let responses = ResponseService::new(
        tenant.clone(),
        store.clone(),
        Arc::new(responder),
        loaded.playbooks,
    )?;
    let shared = SharedIntel::default();
    let (intel, hunts) = IntelService::start(
        tenant.clone(),
        store.clone(),
        loaded.intel,
        loaded.intel_sources,
        config.intel_confidence,
        shared.clone(),
    )
    .await
    .context("cannot load the imported threat-intelligence sources")?;
    let lookback = u64::try_from(config.retro_hunt_lookback.as_millis()).unwrap_or(u64::MAX);
    let mut monitor = Monitor::new(store, index, loaded.detector, responses.clone())
        .with_shared_intel(shared)
        .with_hunts(hunts, lookback);
    if config.baselines.enabled {
        monitor = monitor.with_baselines(config.baselines.settings());
    }
    let pipeline = tokio::spawn(monitor.run(inputs.observations, inputs.syslog));
    tokio::spawn(responses.clone().run_expiry(config.expiry_check));
    Ok(Monitoring {
        responses,
        intel,
        broker,
        pipeline,
    })
}
