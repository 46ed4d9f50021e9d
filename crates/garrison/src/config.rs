//! Server configuration: parsed in two stages, as ripgrep does.
//!
//! [`Config`] is what the TOML file, `GARRISON_*` environment variables and command-line flags
//! say, layered in that order over the documented defaults (figment). Parsing only checks types
//! and names; [`Config::resolve`] then checks meaning and builds [`Settings`], the values the
//! server runs on. Unknown keys are errors, and every error names the key and the expected form.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// The documented defaults, printed by `garrison config defaults`. A test checks that parsing
/// this text yields exactly `Config::default()`, so the documentation cannot drift.
pub const DEFAULTS_TOML: &str = include_str!("defaults.toml");

/// Top-level configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where Garrison keeps its state.
    pub data_dir: PathBuf,
    /// PostgreSQL URL; when unset, SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// File holding the master key; when unset, `<user config dir>/garrison/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// `text` or `json`.
    pub log_format: String,
    /// tracing filter, e.g. `info` or `garrison=debug,info`.
    pub log_level: String,
    /// The HTTPS API.
    pub api: ApiConfig,
    /// Operator authentication.
    pub auth: AuthConfig,
    /// Certificate authority.
    pub pki: PkiConfig,
    /// `[enrollment]`
    pub enrollment: EnrollmentConfig,
    /// `[broker]`
    pub broker: BrokerConfig,
    /// `[inventory]`
    pub inventory: InventoryConfig,
    /// `[posture]`
    pub posture: PostureConfig,
    /// `[monitor]`
    pub monitor: MonitorConfig,
    /// `[syslog]`
    pub syslog: SyslogConfig,
    /// `[updates]`
    pub updates: UpdatesConfig,
}

/// `[updates]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdatesConfig {
    /// Largest artifact accepted, bytes.
    pub max_artifact_bytes: u64,
    /// Base of the HTTPS address devices download artifacts from; unset: the first of
    /// `api.public_names` with the API's port.
    pub download_url: Option<String>,
    /// How often campaigns look at timeouts, retries, phases and notices.
    #[serde(with = "humantime_serde")]
    pub campaign_tick: Duration,
    /// How often hawkBit (DDI) clients are told to poll.
    #[serde(with = "humantime_serde")]
    pub ddi_poll: Duration,
    /// Components a release's SBOM may not contain (`NAME` or `NAME<VERSION`), for campaigns
    /// started with the SBOM gate.
    pub sbom_deny: Vec<String>,
}

impl Default for UpdatesConfig {
    fn default() -> Self {
        UpdatesConfig {
            max_artifact_bytes: 4 * 1024 * 1024 * 1024,
            download_url: None,
            campaign_tick: Duration::from_secs(1),
            ddi_poll: Duration::from_secs(30),
            sbom_deny: Vec::new(),
        }
    }
}

/// `[syslog]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// UDP listen address (RFC 5426); unset: off.
    pub udp: Option<SocketAddr>,
    /// Plain TCP listen address (RFC 6587); unset: off.
    pub tcp: Option<SocketAddr>,
    /// TLS listen address (RFC 5425, usually port 6514), with the API's certificate; unset: off.
    pub tls: Option<SocketAddr>,
    /// Longest message accepted, bytes.
    pub max_message_bytes: usize,
    /// Most TCP and TLS connections at once.
    pub max_connections: usize,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            udp: None,
            tcp: None,
            tls: None,
            max_message_bytes: 8192,
            max_connections: 1000,
        }
    }
}

/// `[monitor]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Whether detection and response run (false: events are only stored).
    pub enabled: bool,
    /// Whether the built-in IoT rule pack is loaded.
    pub builtin_rules: bool,
    /// Extra Sigma rule files or directories.
    pub rules: Vec<PathBuf>,
    /// Playbook file (YAML); empty: the built-in playbook.
    pub playbooks: Option<PathBuf>,
    /// Threat-intelligence files (plain lists, `.csv`, or `.json` STIX 2.1 bundles and MISP
    /// feeds); each file's name is its source.
    pub intel: Vec<PathBuf>,
    /// Confidence (0–100) of indicators whose file gives none.
    pub intel_confidence: u8,
    /// Every playbook only records what it would do.
    pub dry_run: bool,
    /// How often expired response actions are undone.
    #[serde(with = "humantime_serde")]
    pub expiry_check: Duration,
    /// How far back a newly imported threat-intelligence source is hunted for in stored
    /// device events.
    #[serde(with = "humantime_serde")]
    pub retro_hunt_lookback: Duration,
    /// `[monitor.baselines]`
    pub baselines: BaselinesConfig,
}

/// `[monitor.baselines]`: behaviour baselines per device and per peer group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselinesConfig {
    /// Whether baselines learn and raise anomaly alerts.
    pub enabled: bool,
    /// Length of the windows metrics are counted in.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Windows of a device's own history kept per metric.
    pub history: usize,
    /// Windows of its own a device needs before its own baseline counts.
    pub min_history: usize,
    /// Devices of one model and firmware active in a window for them to be each other's peers.
    pub min_peers: usize,
    /// Robust deviations (scaled MAD) above the median that make an anomaly.
    pub sensitivity: f64,
    /// How often the learnt history is saved (also at shutdown); 0s: only at shutdown.
    #[serde(with = "humantime_serde")]
    pub save_interval: Duration,
}

impl Default for BaselinesConfig {
    fn default() -> Self {
        let d = garrison_monitor::baseline::BaselineSettings::default();
        BaselinesConfig {
            enabled: true,
            window: Duration::from_millis(d.window_ms),
            history: d.history,
            min_history: d.min_history,
            min_peers: d.min_peers,
            sensitivity: d.sensitivity,
            save_interval: Duration::from_millis(d.save_interval_ms),
        }
    }
}

impl BaselinesConfig {
    /// The monitor's settings.
    pub fn settings(&self) -> garrison_monitor::baseline::BaselineSettings {
        garrison_monitor::baseline::BaselineSettings {
            window_ms: u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX),
            history: self.history,
            min_history: self.min_history,
            min_peers: self.min_peers,
            sensitivity: self.sensitivity,
            save_interval_ms: u64::try_from(self.save_interval.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            enabled: true,
            builtin_rules: true,
            rules: Vec::new(),
            playbooks: None,
            intel: Vec::new(),
            intel_confidence: 75,
            dry_run: false,
            expiry_check: Duration::from_secs(10),
            retro_hunt_lookback: Duration::from_secs(30 * 24 * 3600),
            baselines: BaselinesConfig::default(),
        }
    }
}

/// `[inventory]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryConfig {
    /// Largest device message accepted after decompression, bytes.
    pub max_report_bytes: usize,
    /// Most SBOM components in one inventory report.
    pub max_components: usize,
    /// How often the in-memory fleet index is reloaded from the store.
    #[serde(with = "humantime_serde")]
    pub index_refresh: Duration,
    /// How often presence (last seen, online, latest telemetry) is written.
    #[serde(with = "humantime_serde")]
    pub presence_flush: Duration,
    /// Fact history, drift, device events and unmanaged sightings older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            max_report_bytes: 8 * 1024 * 1024,
            max_components: 20_000,
            index_refresh: Duration::from_secs(300),
            presence_flush: Duration::from_secs(5),
            retention: Duration::from_secs(90 * 86_400),
        }
    }
}

/// `[posture]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostureConfig {
    /// Time between scheduled full audits (0s: only on demand).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// `certificate-expiring` fires this many days before expiry.
    pub certificate_expiry_days: i64,
    /// `certificate-too-old` fires for certificates issued longer ago.
    pub certificate_max_age_days: i64,
    /// `stale-inventory` fires when the last inventory is older.
    pub stale_after_days: i64,
    /// Session takeovers between two audits that make `conflicting-client-ids` fire.
    pub takeover_threshold: u64,
}

impl Default for PostureConfig {
    fn default() -> Self {
        PostureConfig {
            interval: Duration::from_secs(3600),
            certificate_expiry_days: 14,
            certificate_max_age_days: 365,
            stale_after_days: 7,
            takeover_threshold: 3,
        }
    }
}

/// `[api]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: String,
    /// Names (DNS or IP) the server certificate is issued for.
    pub public_names: Vec<String>,
    /// Operator-supplied certificate chain (PEM); replaces the CA-issued one.
    pub tls_cert_file: Option<PathBuf>,
    /// Operator-supplied private key (PEM) for `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Requests taking longer get 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long shutdown waits for open requests.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of a login session.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Window for counting failed logins.
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    /// Failed logins per username per window before 429.
    pub login_max_failures_per_user: u32,
    /// Failed logins per source address per window before 429.
    pub login_max_failures_per_source: u32,
}

/// `[pki]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiConfig {
    /// Organization named in the CA certificates (used when the CA is first created).
    pub organization: String,
    /// Validity of the server certificate issued at each start.
    #[serde(with = "humantime_serde")]
    pub server_cert_validity: Duration,
    /// Key type of the CA hierarchy when it is first created: "ecdsa-p256" or "ed25519".
    pub key_algorithm: String,
}

/// `[broker]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Whether the embedded MQTT broker runs.
    pub enabled: bool,
    /// mTLS listen address.
    pub listen: String,
    /// Largest MQTT packet accepted, bytes.
    pub max_packet_size: u32,
    /// Messages queued per session.
    pub max_queued_messages: usize,
    /// QoS 1/2 messages in flight per session.
    pub max_inflight: u16,
    /// Deadline for the TLS handshake and CONNECT.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Most sessions at once.
    pub max_sessions: usize,
    /// Messages per second each device may publish (0: unlimited).
    pub max_messages_per_second: u32,
    /// Payload bytes per second each device may publish (0: unlimited).
    pub max_bytes_per_second: u64,
    /// Connection attempts per source address per minute (0: unlimited).
    pub max_connects_per_minute_per_source: u32,
    /// `[broker.lab]`
    pub lab: LabConfig,
}

/// `[broker.lab]`: the plain-TCP lab listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabConfig {
    /// Whether it runs.
    pub enabled: bool,
    /// Plain-TCP listen address.
    pub listen: String,
    /// Allow a non-loopback address.
    pub danger_allow_non_loopback: bool,
    /// Username clients must present (empty: anonymous).
    pub username: String,
    /// Password clients must present.
    pub password: String,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            enabled: false,
            listen: "127.0.0.1:1883".into(),
            danger_allow_non_loopback: false,
            username: String::new(),
            password: String::new(),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            enabled: true,
            listen: "127.0.0.1:8883".into(),
            max_packet_size: 256 * 1024,
            max_queued_messages: 10_000,
            max_inflight: 32,
            handshake_timeout: Duration::from_secs(5),
            max_sessions: 100_000,
            max_messages_per_second: 100,
            max_bytes_per_second: 512 * 1024,
            max_connects_per_minute_per_source: 600,
            lab: LabConfig::default(),
        }
    }
}

/// `[enrollment]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrollmentConfig {
    /// Validity of device certificates.
    #[serde(with = "humantime_serde")]
    pub device_cert_validity: Duration,
    /// Whether credential-less EST requests wait for approval (otherwise they are refused).
    pub approval_queue: bool,
    /// What a pending device is told to wait before asking again.
    #[serde(with = "humantime_serde")]
    pub pending_retry_after: Duration,
    /// Validity of each published CRL; it is re-signed at half that and on every revocation.
    #[serde(with = "humantime_serde")]
    pub crl_validity: Duration,
    /// Most pending approval requests at once.
    pub max_pending_requests: i64,
    /// How often revocations and quarantine changes made by other replicas are picked up.
    #[serde(with = "humantime_serde")]
    pub replica_sync: Duration,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        EnrollmentConfig {
            device_cert_validity: Duration::from_secs(90 * 24 * 3600),
            approval_queue: true,
            pending_retry_after: Duration::from_secs(60),
            crl_validity: Duration::from_secs(24 * 3600),
            max_pending_requests: 10_000,
            replica_sync: Duration::from_secs(1),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./garrison-data"),
            database_url: None,
            master_key_file: None,
            log_format: "text".into(),
            log_level: "info".into(),
            api: ApiConfig::default(),
            auth: AuthConfig::default(),
            pki: PkiConfig::default(),
            enrollment: EnrollmentConfig::default(),
            broker: BrokerConfig::default(),
            inventory: InventoryConfig::default(),
            posture: PostureConfig::default(),
            monitor: MonitorConfig::default(),
            syslog: SyslogConfig::default(),
            updates: UpdatesConfig::default(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8443".into(),
            public_names: vec!["localhost".into(), "127.0.0.1".into()],
            tls_cert_file: None,
            tls_key_file: None,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_ttl: Duration::from_secs(12 * 3600),
            login_window: Duration::from_secs(300),
            login_max_failures_per_user: 5,
            login_max_failures_per_source: 20,
        }
    }
}

impl Default for PkiConfig {
    fn default() -> Self {
        PkiConfig {
            organization: "Garrison".into(),
            server_cert_validity: Duration::from_secs(90 * 24 * 3600),
            key_algorithm: "ecdsa-p256".into(),
        }
    }
}

/// Command-line values that override the file and environment.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    /// `--data-dir`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--database-url`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--master-key-file`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_file: Option<PathBuf>,
    /// `--listen`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// Environment variables with the `GARRISON_` prefix that are not configuration keys.
const NOT_CONFIG: &[&str] = &[
    "master_key",
    "config",
    "profile",
    "token",
    "server",
    "ca_cert",
];

impl Config {
    /// Layers defaults < `file` < `GARRISON_*` environment < command-line overrides.
    pub fn load(file: Option<&std::path::Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                bail!(
                    "config file {} does not exist; `garrison config defaults > garrison.toml` writes a documented one",
                    path.display()
                );
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed("GARRISON_")
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    // The agent's and the simulator's own variables share the prefix.
                    !NOT_CONFIG.contains(&key.as_str())
                        && !key.starts_with("test_")
                        && !key.starts_with("agent_")
                        && !key.starts_with("sim_")
                })
                .split("__"),
        );
        let mut flat = serde_json::Map::new();
        if let Some(v) = &overrides.data_dir {
            flat.insert("data_dir".into(), serde_json::json!(v));
        }
        if let Some(v) = &overrides.database_url {
            flat.insert("database_url".into(), serde_json::json!(v));
        }
        if let Some(v) = &overrides.master_key_file {
            flat.insert("master_key_file".into(), serde_json::json!(v));
        }
        if let Some(v) = &overrides.listen {
            flat.insert("api".into(), serde_json::json!({ "listen": v }));
        }
        figment = figment.merge(Serialized::defaults(serde_json::Value::Object(flat)));
        figment.extract::<Config>().map_err(|errors| {
            let lines: Vec<String> = errors.into_iter().map(describe_figment_error).collect();
            anyhow::anyhow!("invalid configuration:\n  {}", lines.join("\n  "))
        })
    }

    /// Checks meaning and builds the settings the server runs on.
    pub fn resolve(&self) -> anyhow::Result<Settings> {
        let listen: SocketAddr = self.api.listen.parse().with_context(|| {
            format!(
                "invalid value {:?} for key api.listen: expected IP:PORT such as \"127.0.0.1:8443\"",
                self.api.listen
            )
        })?;
        let broker_listen: SocketAddr = self.broker.listen.parse().with_context(|| {
            format!(
                "invalid value {:?} for key broker.listen: expected IP:PORT such as \"0.0.0.0:8883\"",
                self.broker.listen
            )
        })?;
        let lab_listen: SocketAddr = self.broker.lab.listen.parse().with_context(|| {
            format!(
                "invalid value {:?} for key broker.lab.listen: expected IP:PORT such as \"127.0.0.1:1883\"",
                self.broker.lab.listen
            )
        })?;
        if self.broker.lab.username.is_empty() != self.broker.lab.password.is_empty() {
            bail!("keys broker.lab.username and broker.lab.password must be set together");
        }
        if self.broker.max_inflight == 0 || self.broker.max_queued_messages == 0 {
            bail!("keys broker.max_inflight and broker.max_queued_messages must be at least 1");
        }
        if self.broker.max_packet_size < 1024 {
            bail!("invalid value for key broker.max_packet_size: expected at least 1024");
        }
        let key_algorithm =
            garrison_pki::KeyAlgorithm::parse(&self.pki.key_algorithm).with_context(|| {
                format!(
                    "invalid value {:?} for key pki.key_algorithm: expected \"ecdsa-p256\" or \"ed25519\"",
                    self.pki.key_algorithm
                )
            })?;
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!(
                "invalid value {:?} for key log_format: expected \"text\" or \"json\"",
                self.log_format
            );
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level).with_context(|| {
            format!("invalid value {:?} for key log_level: expected a filter such as \"info\" or \"garrison=debug,info\"", self.log_level)
        })?;
        if self.api.max_body_bytes < 1024 {
            bail!(
                "invalid value {} for key api.max_body_bytes: expected at least 1024",
                self.api.max_body_bytes
            );
        }
        if self.api.max_connections == 0 {
            bail!("invalid value 0 for key api.max_connections: expected at least 1");
        }
        if self.api.public_names.is_empty() {
            bail!(
                "key api.public_names is empty: list at least one DNS name or IP address the server is reached by"
            );
        }
        let tls_files = match (&self.api.tls_cert_file, &self.api.tls_key_file) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => bail!("keys api.tls_cert_file and api.tls_key_file must be set together"),
        };
        if self.auth.login_max_failures_per_user == 0
            || self.auth.login_max_failures_per_source == 0
        {
            bail!(
                "keys auth.login_max_failures_per_user and auth.login_max_failures_per_source must be at least 1"
            );
        }
        if self.auth.session_ttl < Duration::from_secs(60) {
            bail!("invalid value for key auth.session_ttl: expected at least 1m");
        }
        if self.inventory.max_report_bytes < 1024 || self.inventory.max_components == 0 {
            bail!(
                "keys inventory.max_report_bytes (at least 1024) and inventory.max_components (at least 1) are too small"
            );
        }
        if self.enrollment.replica_sync < Duration::from_millis(100) {
            bail!("invalid value for key enrollment.replica_sync: expected at least 100ms");
        }
        if self.inventory.retention < Duration::from_secs(86_400) {
            bail!("invalid value for key inventory.retention: expected at least 1d");
        }
        if self.inventory.presence_flush < Duration::from_millis(100)
            || self.inventory.index_refresh < Duration::from_secs(1)
        {
            bail!(
                "keys inventory.presence_flush (at least 100ms) and inventory.index_refresh (at least 1s) are too short"
            );
        }
        let p = &self.posture;
        if p.certificate_expiry_days < 1 || p.certificate_max_age_days < 1 || p.stale_after_days < 1
        {
            bail!(
                "keys posture.certificate_expiry_days, posture.certificate_max_age_days and posture.stale_after_days must be at least 1"
            );
        }
        if !p.interval.is_zero() && p.interval < Duration::from_secs(60) {
            bail!(
                "invalid value for key posture.interval: expected \"0s\" (on demand only) or at least 1m"
            );
        }
        if !(480..=1_048_576).contains(&self.syslog.max_message_bytes) {
            bail!(
                "invalid value for key syslog.max_message_bytes: expected 480 (RFC 5426's minimum) to 1048576"
            );
        }
        if self.monitor.intel_confidence > 100 {
            bail!("invalid value for key monitor.intel_confidence: expected 0 to 100");
        }
        if self.monitor.expiry_check < Duration::from_secs(1) {
            bail!("invalid value for key monitor.expiry_check: expected at least 1s");
        }
        let b = &self.monitor.baselines;
        if b.window < Duration::from_secs(1) {
            bail!("invalid value for key monitor.baselines.window: expected at least 1s");
        }
        if b.min_history < 3 || b.history < b.min_history || b.history > 10_000 {
            bail!(
                "keys monitor.baselines.min_history (at least 3) and monitor.baselines.history (at least min_history, at most 10000) are out of range"
            );
        }
        if b.min_peers < 3 {
            // With two peers the median is their mean and an outlier drags it: robust
            // statistics need a majority that behaves.
            bail!("invalid value for key monitor.baselines.min_peers: expected at least 3");
        }
        if !(b.sensitivity.is_finite() && b.sensitivity > 0.0) {
            bail!("invalid value for key monitor.baselines.sensitivity: expected a number above 0");
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
        {
            bail!(
                "invalid value for key database_url: expected postgres://USER@HOST/DB or sqlite://PATH"
            );
        }
        let database_url = match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("garrison.db").display()),
        };
        Ok(Settings {
            data_dir: self.data_dir.clone(),
            database_url,
            master_key_file: self.master_key_file.clone(),
            listen,
            tls_files,
            broker_listen,
            key_algorithm,
            lab_listen,
        })
    }
}

/// figment's errors say "for key default.api.listen"; drop the profile name and keep the rest.
fn describe_figment_error(e: figment::Error) -> String {
    e.to_string().replace("key \"default.", "key \"")
}

/// Resolved, checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL (SQLite in the data directory unless configured).
    pub database_url: String,
    /// Master key file, if configured.
    pub master_key_file: Option<PathBuf>,
    /// Listen address.
    pub listen: SocketAddr,
    /// Operator-supplied certificate and key files.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// Broker listen address.
    pub broker_listen: SocketAddr,
    /// Key type for a CA created now.
    pub key_algorithm: garrison_pki::KeyAlgorithm,
    /// Lab listener address.
    pub lab_listen: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_are_the_defaults() {
        let parsed: Config = toml::from_str(DEFAULTS_TOML).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn defaults_resolve() {
        let s = Config::default().resolve().unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8443");
        assert!(s.database_url.starts_with("sqlite://"));
    }

    #[test]
    fn bad_values_name_the_key_and_form() {
        let mut c = Config::default();
        c.api.listen = "nonsense".into();
        let e = c.resolve().unwrap_err().to_string();
        assert!(e.contains("api.listen") && e.contains("IP:PORT"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "[api]\nmax_body_bytes = \"lots\"\n").unwrap();
        let e = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.max_body_bytes"), "{e}");

        std::fs::write(&file, "[api]\nlisten_on = \"x\"\n").unwrap();
        let e = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_on"), "{e}");

        std::fs::write(&file, "[auth]\nsession_ttl = \"soon\"\n").unwrap();
        let e = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.session_ttl"), "{e}");
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\n[api]\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        let c = Config::load(
            Some(&file),
            &Overrides {
                listen: Some("127.0.0.1:2".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.api.listen, "127.0.0.1:2");
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
    }
}
