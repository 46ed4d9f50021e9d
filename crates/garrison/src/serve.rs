//! `garrison serve`: wires the store, PKI, identity, inventory, broker and API together and runs
//! until SIGINT/SIGTERM. [`start`] builds and binds everything; [`Server::serve`] runs it, so
//! `garrison demo` can start a server and then drive it.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use garrison_api::{ApiSettings, ApiState, ServerFacts};
use garrison_broker::{Broker, BrokerSettings};
use garrison_core::{TenantId, audit::Actor};
use garrison_identity::{IdentityService, IdentitySettings};
use garrison_store::Store;

use crate::{config::Config, setup};

/// A started server, bound and ready to serve.
pub(crate) struct Server {
    config: Config,
    /// The store.
    pub(crate) store: Arc<dyn Store>,
    /// The tenant devices and operators live in.
    pub(crate) tenant: TenantId,
    /// Identity service.
    pub(crate) identity: IdentityService,
    /// The inventory and the audit.
    pub(crate) inventory: crate::inventory::Inventory,
    broker: Option<Arc<Broker>>,
    forwarders: Vec<tokio::task::JoinHandle<()>>,
    lab: Option<garrison_broker::LabBroker>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    crl_refresher: tokio::task::JoinHandle<()>,
    /// The detection pipeline, which ends after the intake (saving its baselines).
    pipeline: Option<tokio::task::JoinHandle<()>>,
    _syslog: Option<garrison_syslog::SyslogListeners>,
    _lock: std::fs::File,
    /// The HTTPS address.
    pub(crate) api_addr: SocketAddr,
    /// The broker's address.
    pub(crate) mqtt_addr: Option<SocketAddr>,
    /// The root CA file clients trust.
    pub(crate) ca_file: PathBuf,
    ca_fingerprint: String,
    /// The admin password, when this start created the admin.
    pub(crate) admin_password: Option<String>,
    /// The release repository.
    pub(crate) releases: garrison_releases::Releases,
    /// The update campaigns.
    pub(crate) campaigns: garrison_campaigns::CampaignService,
}

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    setup::init_logging(&config);
    let server = start(config).await?;
    if let Some(password) = &server.admin_password {
        setup::print_credential(
            "admin",
            password,
            "First start: Garrison created the admin account.",
        );
    }
    server.print_banner();
    server.serve(shutdown_signal()).await?;
    println!("Garrison stopped.");
    Ok(ExitCode::SUCCESS)
}

/// Opens the store, loads or creates the CA, starts identity, inventory and broker, creates
/// the first admin, and binds the API. Logging must already be set up.
pub(crate) async fn start(config: Config) -> anyhow::Result<Server> {
    // Installed first: the hot paths resolve their counters once, on first use, and a counter
    // resolved before the recorder exists would stay a no-op.
    let metrics = garrison_api::metrics_handle();
    let settings = config.resolve()?;
    setup::prepare_data_dir(&settings.data_dir)?;
    let lock = setup::lock_data_dir(&settings.data_dir)?;
    let store = setup::open_store(&settings).await?;
    let key = setup::master_key(&settings, store.as_ref()).await?;
    setup::migrate(store.as_ref(), &key).await?;

    let tenant = TenantId::default();
    let (ca, ca_fingerprint) = setup::certificate_authority(
        store.as_ref(),
        &key,
        &tenant,
        setup::NewCa {
            organization: &config.pki.organization,
            algorithm: settings.key_algorithm,
            actor: Actor::system("first-start"),
        },
    )
    .await?;
    let ca_file = setup::write_ca_file(&settings.data_dir, &ca)?;

    let (chain, private_key) = match &settings.tls_files {
        Some((cert, key_file)) => {
            let cert_pem = std::fs::read_to_string(cert)
                .with_context(|| format!("cannot read api.tls_cert_file {}", cert.display()))?;
            let key_pem = std::fs::read_to_string(key_file)
                .with_context(|| format!("cannot read api.tls_key_file {}", key_file.display()))?;
            garrison_pki::tls::identity_from_pem(&cert_pem, &key_pem)?
        }
        None => {
            let identity = ca.issue_server(
                &config.api.public_names,
                time::Duration::try_from(config.pki.server_cert_validity)
                    .context("pki.server_cert_validity is too large")?,
            )?;
            (identity.chain, identity.key)
        }
    };
    // Devices renewing over EST, or enrolling with a claim certificate, present it here; the
    // issuing CA is an anchor itself because devices send only their leaf.
    let device_anchors = [
        garrison_pki::pem_certificates(ca.issuing_pem(), "issuing CA")?,
        garrison_pki::pem_certificates(ca.root_pem(), "root CA")?,
    ]
    .concat();
    let tls = garrison_pki::tls::server_config(
        chain,
        private_key,
        garrison_pki::tls::ClientAuth::Optional(device_anchors),
    )
    .context("the TLS certificate and key do not form a usable identity")?;
    let ca = std::sync::Arc::new(ca);
    let identity = IdentityService::start(
        store.clone(),
        ca.clone(),
        IdentitySettings {
            tenant: tenant.clone(),
            device_validity: config.enrollment.device_cert_validity,
            crl_validity: config.enrollment.crl_validity,
            approval_queue: config.enrollment.approval_queue,
            pending_retry_after: config.enrollment.pending_retry_after,
            max_pending: config.enrollment.max_pending_requests,
        },
    )
    .await
    .context("cannot start the identity service")?;
    // Rules and playbooks are checked before anything listens: a bad file stops the start.
    let monitor_rules = if config.monitor.enabled {
        Some(crate::monitor::load(&config.monitor)?)
    } else {
        None
    };
    let (observer, observations) = match &monitor_rules {
        Some(_) => {
            let (tx, rx) = tokio::sync::mpsc::channel(crate::monitor::OBSERVATION_QUEUE);
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    // `update/status` reports reach the campaigns through the intake, after it stored them.
    let (update_reports, update_reports_rx) = tokio::sync::mpsc::channel(64);
    let inventory = crate::inventory::start(
        &config,
        store.clone(),
        tenant.clone(),
        &identity,
        observer,
        update_reports,
    )
    .await
    .context("cannot start the inventory")?;
    let campaign_broker = Arc::new(std::sync::OnceLock::new());
    let wants_syslog =
        config.syslog.udp.is_some() || config.syslog.tcp.is_some() || config.syslog.tls.is_some();
    if wants_syslog && monitor_rules.is_none() {
        anyhow::bail!(
            "the syslog intake feeds monitoring, which is off (monitor.enabled = false); enable it or unset syslog.udp/tcp/tls"
        );
    }
    let (syslog_tx, syslog_rx) = if wants_syslog {
        let (tx, rx) = tokio::sync::mpsc::channel(crate::monitor::SYSLOG_QUEUE);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let monitoring = match (monitor_rules, observations) {
        (Some(loaded), Some(observations)) => Some(
            crate::monitor::start(
                &config.monitor,
                loaded,
                store.clone(),
                tenant.clone(),
                identity.clone(),
                inventory.service.clone(),
                crate::monitor::Inputs {
                    observations,
                    syslog: syslog_rx,
                },
            )
            .await?,
        ),
        _ => None,
    };
    let syslog = match syslog_tx {
        Some(sink) => {
            let listeners = garrison_syslog::SyslogListeners::start(
                garrison_syslog::SyslogSettings {
                    udp: config.syslog.udp,
                    tcp: config.syslog.tcp,
                    tls: config.syslog.tls.map(|a| (a, tls.clone())),
                    max_message_bytes: config.syslog.max_message_bytes,
                    max_connections: config.syslog.max_connections,
                },
                sink,
            )
            .await
            .context("cannot start the syslog intake; change or unset syslog.udp/tcp/tls")?;
            for (transport, address) in [
                ("udp", listeners.udp_addr()),
                ("tcp", listeners.tcp_addr()),
                ("tls", listeners.tls_addr()),
            ] {
                if let Some(address) = address {
                    tracing::info!(transport, %address, "Syslog intake listening");
                }
            }
            Some(listeners)
        }
        None => None,
    };
    let mut forwarders = Vec::new();
    let broker = if config.broker.enabled {
        let (broker, tasks) = start_broker(
            &config,
            &settings,
            &ca,
            identity.clone(),
            inventory.incoming.clone(),
            inventory.stop.subscribe(),
        )
        .await?;
        forwarders = tasks;
        let broker = Arc::new(broker);
        let _ = campaign_broker.set(broker.clone() as Arc<dyn garrison_broker::DeviceBroker>);
        if let Some(m) = &monitoring {
            let _ = m.broker.set(broker.clone());
        }
        inventory.posture.attach_connections(std::sync::Arc::new(
            crate::inventory::BrokerConnections(broker.clone()),
        ));
        Some(broker)
    } else {
        None
    };
    let lab = if config.broker.lab.enabled {
        let lab = &config.broker.lab;
        Some(
            garrison_broker::LabBroker::start(garrison_broker::LabSettings {
                listen: settings.lab_listen,
                danger_allow_non_loopback: lab.danger_allow_non_loopback,
                credentials: (!lab.username.is_empty())
                    .then(|| (lab.username.clone(), lab.password.clone())),
                max_packet_size: config.broker.max_packet_size,
            })
            .await
            .context("cannot start the lab MQTT listener (broker.lab)")?,
        )
    } else {
        None
    };
    tokio::spawn(
        identity
            .clone()
            .follow_store(config.enrollment.replica_sync),
    );
    tokio::spawn(refresh_statistics_periodically(store.clone()));
    let crl_refresher = tokio::spawn(refresh_crl_periodically(
        identity.clone(),
        config.enrollment.crl_validity / 2,
    ));

    let admin_password = setup::create_first_admin(
        store.as_ref(),
        &tenant,
        "admin",
        Actor::system("first-start"),
    )
    .await?;

    let api_settings = ApiSettings {
        tenant: tenant.clone(),
        session_ttl: config.auth.session_ttl,
        max_body_bytes: config.api.max_body_bytes,
        request_timeout: config.api.request_timeout,
        login_window: config.auth.login_window,
        login_max_per_user: config.auth.login_max_failures_per_user,
        login_max_per_source: config.auth.login_max_failures_per_source,
    };
    let state = ApiState::new(
        store.clone(),
        identity.clone(),
        api_settings,
        metrics,
        ServerFacts {
            ca_fingerprint: ca_fingerprint.clone(),
        },
    );
    if let Some(broker) = &broker {
        state.attach_broker(broker.clone());
    }
    state.attach_inventory(inventory.service.clone(), inventory.posture.clone());
    state.attach_intake(inventory.forwarder.clone());
    let releases = garrison_releases::Releases::open(
        store.clone(),
        tenant.clone(),
        settings.data_dir.join("artifacts"),
        config.updates.max_artifact_bytes,
    )
    .with_context(|| {
        format!(
            "cannot create the artifact directory in {}",
            settings.data_dir.display()
        )
    })?;
    state.attach_releases(releases.clone());
    if let Some(m) = &monitoring {
        state.attach_monitor(m.responses.clone());
        state.attach_intel(m.intel.clone());
    }
    let listener = garrison_api::bind(settings.listen).await?;
    let api_addr = listener.local_addr()?;
    let campaigns = garrison_campaigns::CampaignService::new(
        store.clone(),
        inventory.service.index().clone(),
        campaign_broker,
        garrison_campaigns::CampaignSettings {
            tenant: tenant.clone(),
            download_base: config.updates.download_url.clone().unwrap_or_else(|| {
                let host = config
                    .api
                    .public_names
                    .first()
                    .map_or("localhost", String::as_str);
                format!("https://{host}:{}", api_addr.port())
            }),
            tick: config.updates.campaign_tick,
            notices_per_tick: 1000,
            ddi_poll: config.updates.ddi_poll,
        },
    );
    let resumed = campaigns
        .resume()
        .await
        .context("cannot load the unfinished update campaigns")?;
    if resumed > 0 {
        tracing::info!(campaigns = resumed, "Update campaigns resumed");
    }
    let policy = garrison_campaigns::SbomPolicy {
        deny: config
            .updates
            .sbom_deny
            .iter()
            .map(|d| d.parse())
            .collect::<Result<_, _>>()
            .context("invalid updates.sbom_deny")?,
    };
    campaigns.attach_gate(Arc::new(policy), releases.clone());
    tokio::spawn(campaigns.clone().run(update_reports_rx));
    state.attach_campaigns(campaigns.clone());
    let app = garrison_api::app(state);
    Ok(Server {
        pipeline: monitoring.map(|m| m.pipeline),
        mqtt_addr: broker.as_ref().map(|b| b.local_addr()),
        config,
        store,
        tenant,
        identity,
        inventory,
        broker,
        forwarders,
        lab,
        listener,
        tls,
        app,
        crl_refresher,
        _syslog: syslog,
        _lock: lock,
        api_addr,
        ca_file,
        ca_fingerprint,
        admin_password,
        releases,
        campaigns,
    })
}

impl Server {
    /// Prints where the server listens and how to log in.
    pub(crate) fn print_banner(&self) {
        let local = self.api_addr;
        println!(
            "Garrison {} is listening on https://{local}",
            env!("CARGO_PKG_VERSION")
        );
        println!(
            "  store: {}   data: {}",
            self.store.backend().as_str(),
            self.config.data_dir.display()
        );
        println!(
            "  trust: {} (root CA SHA-256 {})",
            self.ca_file.display(),
            self.ca_fingerprint
        );
        if let Some(addr) = self.mqtt_addr {
            println!("  mqtt:  mqtts://{addr} (mutual TLS; client id = certificate CN)");
        }
        if let Some(lab) = &self.lab {
            println!(
                "  lab:   mqtt://{} (plain TCP lab listener; isolated from devices)",
                lab.local_addr()
            );
        }
        println!(
            "  next:  garrison login --server https://{local} --ca-cert {}",
            self.ca_file.display()
        );
        tracing::info!(addr = %local, backend = self.store.backend().as_str(), "Garrison started");
    }

    /// Serves until `shutdown` resolves, then drains and flushes.
    pub(crate) async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        garrison_api::serve_tls(
            self.listener,
            self.tls,
            self.app,
            self.config.api.max_connections,
            self.config.api.shutdown_grace,
            shutdown,
        )
        .await;
        self.crl_refresher.abort();
        if let Some(broker) = &self.broker {
            broker.shutdown().await;
        }
        if let Some(lab) = &self.lab {
            lab.shutdown();
        }
        // Messages the broker acknowledged may still be queued: hand them on, let the intake
        // write them, then close the store.
        let _ = self.inventory.stop.send(true);
        for f in self.forwarders {
            let _ = f.await;
        }
        let crate::inventory::Inventory {
            incoming, ingest, ..
        } = self.inventory;
        drop(incoming);
        if tokio::time::timeout(Duration::from_secs(60), ingest)
            .await
            .is_err()
        {
            tracing::error!("The intake did not finish writing within 60 s; stopping anyway");
        }
        if let Some(pipeline) = self.pipeline
            && tokio::time::timeout(Duration::from_secs(30), pipeline)
                .await
                .is_err()
        {
            tracing::error!("Detection did not finish within 30 s; stopping anyway");
        }
        self.store.close().await;
        tracing::info!("Garrison stopped; storage flushed");
        Ok(())
    }
}

/// Issues the broker's certificate, writes its TLS files and starts it, feeding every accepted
/// device message and session event to the inventory's intake.
async fn start_broker(
    config: &Config,
    settings: &crate::config::Settings,
    ca: &garrison_pki::CertificateAuthority,
    identity: IdentityService,
    incoming: tokio::sync::mpsc::Sender<garrison_inventory::Incoming>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(Broker, Vec<tokio::task::JoinHandle<()>>)> {
    let files = setup::write_broker_tls_files(
        &settings.data_dir,
        ca,
        &config.api.public_names,
        time::Duration::try_from(config.pki.server_cert_validity)
            .context("pki.server_cert_validity is too large")?,
    )?;
    let mut broker_settings = BrokerSettings::new(
        settings.broker_listen,
        files.cert,
        files.key,
        files.client_ca,
    );
    broker_settings.max_packet_size = config.broker.max_packet_size;
    broker_settings.max_queued_messages = config.broker.max_queued_messages;
    broker_settings.max_inflight = config.broker.max_inflight;
    broker_settings.handshake_timeout = config.broker.handshake_timeout;
    broker_settings.max_sessions = config.broker.max_sessions;
    broker_settings.limits = garrison_broker::AbuseLimits {
        messages_per_second: config.broker.max_messages_per_second,
        bytes_per_second: config.broker.max_bytes_per_second,
        connects_per_minute_per_source: config.broker.max_connects_per_minute_per_source,
    };
    let (intake, messages) = tokio::sync::mpsc::channel::<garrison_broker::DeviceMessage>(
        broker_settings.intake_capacity,
    );
    let (sessions_tx, sessions) = tokio::sync::mpsc::channel(10_000);
    broker_settings.session_events = Some(sessions_tx);
    let forwarders = vec![
        tokio::spawn(crate::inventory::forward_messages(
            messages,
            incoming.clone(),
            stop.clone(),
        )),
        tokio::spawn(crate::inventory::forward_sessions(sessions, incoming, stop)),
    ];
    let broker = Broker::start(broker_settings, identity, intake)
        .await
        .context(
            "cannot start the MQTT broker; change broker.listen or set broker.enabled = false",
        )?;
    Ok((broker, forwarders))
}

/// Re-signs the CRL well before its next-update time, so relying parties never see it lapse
/// even when nothing is revoked for a long time.
async fn refresh_crl_periodically(identity: IdentityService, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(60)));
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = identity.refresh_crl().await {
            tracing::warn!(error = %e, "Re-signing the CRL failed; will retry");
        }
    }
}

/// How often the store's planner statistics are checked for staleness. Cheap (one catalogue
/// query) and needed only where PostgreSQL's autovacuum is off, but there it decides whether
/// lookups stay indexed as tables grow from empty (an enrollment wave adds thousands of rows
/// a second; at 30 s the batch identity check ran as a scan for most of a wave); see
/// `Store::refresh_statistics`.
const STATISTICS_CHECK: Duration = Duration::from_secs(5);

async fn refresh_statistics_periodically(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(STATISTICS_CHECK);
    loop {
        tick.tick().await;
        match store.refresh_statistics().await {
            Ok(tables) if !tables.is_empty() => {
                tracing::debug!(?tables, "Refreshed stale planner statistics");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Refreshing planner statistics failed; will retry")
            }
        }
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; shutting down"),
        () = term => tracing::info!("SIGTERM received; shutting down"),
    }
    // Keep the signal from killing us a second time while draining.
    tokio::time::sleep(Duration::from_millis(0)).await;
}
