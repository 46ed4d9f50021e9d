//! The command line: every subcommand, its flags and help text, and dispatch.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand, ValueEnum};
use garrison_core::Role;

use crate::{client, config, devices, inventory_cli, local, serve};

/// Garrison: a self-hosted IoT security server.
///
/// Start with `garrison serve` (embedded defaults: SQLite in ./garrison-data, HTTPS on
/// 127.0.0.1:8443, MQTT over mutual TLS on 127.0.0.1:8883, its own CA). It prints the admin password once on first start. Then
/// `garrison login` and manage operators, tokens, devices, certificates and enrollment from here.
#[derive(Debug, Parser)]
#[command(
    name = "garrison",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTPS API and EST, the MQTT broker (mutual TLS), its own CA, on
    /// embedded defaults.
    Serve(ServerArgs),
    /// Show or check configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Local administration on the server's machine (needs the data directory, not the API).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The certificate authority (on the server's machine).
    #[command(subcommand)]
    Ca(CaCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Log in to a server and save the session in a profile.
    Login(client::LoginArgs),
    /// End the current session and forget it.
    Logout(client::RemoteArgs),
    /// Show who the current profile is logged in as.
    Whoami(client::RemoteArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage operator accounts.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Devices with Garrison identities: list, inspect, quarantine, send commands.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Certificates issued to devices and claims: list, inspect, revoke.
    #[command(subcommand)]
    Cert(CertCommand),
    /// How devices get their identity: bootstrap tokens, claim certificates, the approval queue.
    ///
    /// A device enrolls over EST (RFC 7030) at `/.well-known/est/simpleenroll` with a CSR whose
    /// CN is its device id, authenticated by one of: a bootstrap token (`enroll token create`),
    /// a claim certificate as TLS client certificate (`enroll claim create`), or nothing, in
    /// which case the request waits in the approval queue (`enroll requests`, `enroll approve`)
    /// unless the device id was pre-authorised (`enroll preauthorize`).
    #[command(subcommand)]
    Enroll(EnrollCommand),
    /// Device groups: static (listed members) or dynamic (a device query), with an impact level
    /// and an allow-list of listening services.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Posture findings: list, inspect, suppress for a while with a reason.
    #[command(subcommand)]
    Finding(FindingCommand),
    /// The posture audit: run it, see past runs, the checks, and firmware policies.
    #[command(subcommand)]
    Posture(PostureCommand),
    /// Security alerts: list, inspect, acknowledge, resolve, mark false positive, add notes.
    #[command(subcommand)]
    Alert(crate::monitor_cli::AlertCommand),
    /// Response actions taken by playbooks: list, approve, reject, undo.
    #[command(subcommand)]
    Response(crate::monitor_cli::ResponseCommand),
    /// The playbooks in force.
    #[command(subcommand)]
    Playbook(crate::monitor_cli::PlaybookCommand),
    /// Threat-intelligence sources: import (lists, CSV, STIX 2.1, MISP), list, remove.
    #[command(subcommand)]
    Intel(crate::monitor_cli::IntelCommand),
    /// Sigma rule tooling for rule authors: lint, test against events (local files, no server).
    #[command(subcommand)]
    Rules(crate::rules_cli::RulesCommand),
    /// Signed releases: on the machine holding the keys (no server needed) signing keys, the
    /// trust root devices pin, signing and verifying manifests; on a server, pinning the root,
    /// publishing releases with their artifacts, listing them.
    #[command(subcommand)]
    Release(crate::release_cli::ReleaseCommand),
    /// Update campaigns: roll a release out in phases to a group or a query, watch it,
    /// approve its next phase, cancel it, see each device's path.
    #[command(subcommand)]
    Campaign(crate::campaign_cli::CampaignCommand),
    /// Groups' maintenance windows: campaigns notify a group's devices only inside them.
    #[command(subcommand)]
    Window(crate::campaign_cli::WindowCommand),
    /// Run the device agent on this machine (the same as the standalone `garrison-agent`).
    Agent(garrison_agent::cli::AgentArgs),
    /// Run a simulated fleet against a Garrison server: real enrollment, real MQTT.
    ///
    /// Make a bootstrap token for the fleet first: `garrison enroll token create 'sim-*' --uses
    /// 1000`. A large fleet from one address needs broker.max_connects_per_minute_per_source
    /// raised (or 0) on the server.
    Sim(garrison_sim::cli::SimArgs),
    /// The five-minute tour: the server on embedded defaults, a simulated fleet of about 200
    /// devices, and a scripted attack after a minute. Prints the API address and the admin
    /// credential.
    Demo(crate::demo::DemoArgs),
}

/// Where the server's state is and how it is configured. Shared by `serve`, `admin`, `audit`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// TOML configuration file (see `garrison config defaults`).
    #[arg(long, short = 'c', env = "GARRISON_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./garrison-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL instead of the embedded SQLite database.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// File with the master key [default: ~/.config/garrison/master.key].
    #[arg(long, value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// HTTPS listen address [default: 127.0.0.1:8443].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

impl ServerArgs {
    pub fn load(&self) -> anyhow::Result<config::Config> {
        config::Config::load(
            self.config.as_deref(),
            &config::Overrides {
                data_dir: self.data_dir.clone(),
                database_url: self.database_url.clone(),
                master_key_file: self.master_key_file.clone(),
                listen: self.listen.clone(),
            },
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting with its default and documentation, as TOML.
    Defaults,
    /// Print the effective configuration (defaults, file, environment and flags) and check it.
    Show(ServerArgs),
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the CA before the first `serve` (otherwise `serve` creates one, keeping both
    /// keys sealed in the store). With `--offline-root FILE` the root key is written there,
    /// encrypted with a passphrase, and never stored by the server: the server holds only the
    /// issuing CA.
    Init {
        #[command(flatten)]
        server: ServerArgs,
        /// Write the root CA's private key here (encrypted PKCS#8) instead of storing it.
        #[arg(long, value_name = "FILE")]
        offline_root: Option<PathBuf>,
        /// Read the root key's passphrase from standard input instead of the terminal.
        #[arg(long, requires = "offline_root")]
        passphrase_stdin: bool,
        /// Key type of the root and issuing CA [default: pki.key_algorithm].
        #[arg(long, value_enum)]
        algorithm: Option<KeyAlgorithmArg>,
    },
}

/// CA key types.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyAlgorithmArg {
    /// ECDSA P-256: works with every TLS stack.
    EcdsaP256,
    /// Ed25519: smaller and faster; web browsers do not accept it.
    Ed25519,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the first admin account with a random password, printed once.
    Init {
        #[command(flatten)]
        server: ServerArgs,
        /// Username for the admin account.
        #[arg(long, default_value = "admin")]
        username: String,
    },
    /// Give an operator a new random password (printed once) and end their sessions.
    ResetPassword {
        #[command(flatten)]
        server: ServerArgs,
        /// The operator.
        #[arg(long, default_value = "admin")]
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain in the database and name the first broken entry (exit 1 if broken).
    Verify {
        #[command(flatten)]
        server: ServerArgs,
        /// Also require the chain's head to be this hash (recorded earlier), to detect truncation.
        #[arg(long, value_name = "HEX")]
        expect_head: Option<String>,
    },
    /// List recent audit entries through the API.
    List {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Operator,
    Analyst,
    Auditor,
    ReadOnly,
    Forwarder,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Operator => Role::Operator,
            RoleArg::Analyst => Role::Analyst,
            RoleArg::Auditor => Role::Auditor,
            RoleArg::ReadOnly => Role::ReadOnly,
            RoleArg::Forwarder => Role::Forwarder,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token (shown once).
    Create {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Role of the token; at most your own [default: your role].
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// A label for the token.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Lifetime, e.g. 30d or 12h [default: 90d].
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// List API tokens (yours, or everyone's for admins).
    List {
        #[command(flatten)]
        remote: client::RemoteArgs,
    },
    /// Revoke an API token.
    Revoke {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Token id (from `token list`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator; without --password-stdin a password is generated and shown once.
    Add {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Username.
        username: String,
        /// Role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Read the initial password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List operators.
    List {
        #[command(flatten)]
        remote: client::RemoteArgs,
    },
    /// Disable an operator (revokes their tokens).
    Disable {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Username.
        username: String,
    },
    /// Enable a disabled operator.
    Enable {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Username.
        username: String,
    },
}

/// Parses a device id on the command line with the server's rules.
fn device_id(text: &str) -> Result<String, String> {
    garrison_core::DeviceId::new(text)
        .map(|id| id.as_str().to_owned())
        .map_err(|e| e.to_string())
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportArg {
    /// Comma-separated values (RFC 4180).
    Csv,
    /// A JSON array.
    Json,
}

impl ExportArg {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportArg::Csv => "csv",
            ExportArg::Json => "json",
        }
    }
}

/// Impact levels.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImpactArg {
    Low,
    Moderate,
    High,
    Critical,
}

impl ImpactArg {
    pub fn as_str(self) -> &'static str {
        match self {
            ImpactArg::Low => "low",
            ImpactArg::Moderate => "moderate",
            ImpactArg::High => "high",
            ImpactArg::Critical => "critical",
        }
    }
}

/// What a group is.
#[derive(Debug, Clone, Args)]
pub struct GroupSpecArgs {
    /// A device query makes the group dynamic (members are the devices it matches).
    #[arg(long, short = 'q', value_name = "QUERY")]
    pub query: Option<String>,
    /// What the group is for.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Impact of a compromise of its members (raises or lowers their risk score).
    #[arg(long, value_enum)]
    pub impact: Option<ImpactArg>,
    /// A listening service members may have, PROTOCOL/PORT (repeatable); anything else is an
    /// `unneeded-service` finding.
    #[arg(long = "allow", value_name = "SERVICE")]
    pub allow: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List groups with their member counts.
    List {
        #[command(flatten)]
        remote: client::RemoteArgs,
    },
    /// Show a group and its members.
    Show {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Group name.
        name: String,
    },
    /// Create a group.
    #[command(
        after_help = "Examples:\n  garrison group create cameras -q 'model = AV-CAM-220' --impact moderate --allow tcp/80 --allow tcp/443 --allow tcp/554 --allow udp/3702\n  garrison group create ward-3 --impact critical\n  garrison group add ward-3 pump-0001 pump-0002"
    )]
    Create {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Group name (A-Z a-z 0-9 . _ -).
        name: String,
        #[command(flatten)]
        spec: GroupSpecArgs,
    },
    /// Replace a group's query, description, impact and allow-list.
    Update {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Group name.
        name: String,
        #[command(flatten)]
        spec: GroupSpecArgs,
    },
    /// Delete a group (its devices stay).
    Delete {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Group name.
        name: String,
    },
    /// Add devices to a static group.
    Add {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Group name.
        name: String,
        /// Device ids.
        #[arg(required = true, value_parser = device_id)]
        devices: Vec<String>,
    },
    /// Remove devices from a static group.
    Remove {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Group name.
        name: String,
        /// Device ids.
        #[arg(required = true, value_parser = device_id)]
        devices: Vec<String>,
    },
}

/// Finding statuses.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FindingStatusArg {
    Open,
    Suppressed,
    Resolved,
}

impl FindingStatusArg {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatusArg::Open => "open",
            FindingStatusArg::Suppressed => "suppressed",
            FindingStatusArg::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum FindingCommand {
    /// List findings (open ones unless --status says otherwise); --export writes them all.
    List {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Status.
        #[arg(long, value_enum, default_value_t = FindingStatusArg::Open)]
        status: FindingStatusArg,
        /// Only this check (see `garrison posture checks`).
        #[arg(long)]
        check: Option<String>,
        /// Only this device.
        #[arg(long, value_parser = device_id)]
        device: Option<String>,
        /// This severity or worse: info, low, medium, high, critical.
        #[arg(long)]
        severity: Option<String>,
        /// Print every match as csv or json instead of a table.
        #[arg(long, value_enum)]
        export: Option<ExportArg>,
    },
    /// Show a finding with its evidence and remediation.
    Show {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Finding id.
        id: String,
    },
    /// Accept a finding for a while: it stays listed as suppressed and stops counting towards
    /// the device's risk until the suppression lapses or is lifted.
    Suppress {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Finding id.
        id: String,
        /// Why (kept in the finding and the audit log).
        #[arg(long)]
        reason: String,
        /// For how long (e.g. 30d); until lifted without it.
        #[arg(long = "for", value_parser = duration)]
        for_duration: Option<String>,
    },
    /// Lift a suppression.
    Unsuppress {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Finding id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PostureCommand {
    /// Run the audit over the whole fleet now and show what changed.
    Run {
        #[command(flatten)]
        remote: client::RemoteArgs,
    },
    /// Past audit runs.
    Runs {
        #[command(flatten)]
        remote: client::RemoteArgs,
    },
    /// The built-in checks with their ETSI EN 303 645 and OWASP IoT Top 10 mappings.
    Checks {
        #[command(flatten)]
        remote: client::RemoteArgs,
    },
    /// Minimum firmware versions per model.
    #[command(subcommand)]
    Firmware(FirmwareCommand),
}

#[derive(Debug, Subcommand)]
pub enum FirmwareCommand {
    /// List the policies.
    List {
        #[command(flatten)]
        remote: client::RemoteArgs,
    },
    /// Devices of MODEL must run at least VERSION (or get a firmware-outdated finding).
    Set {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Hardware model, as devices report it.
        model: String,
        /// Minimum firmware version.
        version: String,
    },
    /// Remove a model's policy.
    Delete {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Hardware model.
        model: String,
    },
}

/// Checks a duration such as `30d` or `12h` on the command line; the server gets the text.
fn duration(text: &str) -> Result<String, String> {
    humantime::parse_duration(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("{e}; expected a duration such as 30d, 12h or 90m"))
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List or search devices; with --export, write every match as CSV or JSON.
    #[command(
        after_help = "Queries:\n  garrison device list -q 'model = AV-CAM-220 and firmware < 5.6'\n  garrison device list -q 'service = telnet or port in (23, 2323)'\n  garrison device list -q 'tag:site = berlin and not online' --export csv > offline.csv\nFields: `garrison device fields`."
    )]
    List {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// A device query (see `garrison device fields`).
        #[arg(long, short = 'q', value_name = "QUERY")]
        query: Option<String>,
        /// Print every matching device as csv or json instead of a table.
        #[arg(long, value_enum)]
        export: Option<ExportArg>,
    },
    /// The fields of the device query language.
    Fields {
        #[command(flatten)]
        remote: client::RemoteArgs,
    },
    /// A device's last inventory report, as it sent it.
    Inventory {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        id: String,
    },
    /// A device's installed software as a CycloneDX SBOM (JSON).
    Sbom {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        id: String,
    },
    /// A device's fact history, newest first.
    History {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        id: String,
        /// Only this fact (e.g. firmware.version, listening).
        #[arg(long)]
        fact: Option<String>,
        /// Most entries to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Set (KEY=VALUE) and remove (--remove KEY) a device's tags.
    Tag {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        id: String,
        /// Tags to set, KEY=VALUE.
        #[arg(value_parser = key_value)]
        set: Vec<(String, String)>,
        /// Tag keys to remove.
        #[arg(long)]
        remove: Vec<String>,
    },
    /// Security events devices reported, newest first.
    Events {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Only this device.
        #[arg(long, value_parser = device_id)]
        device: Option<String>,
        /// Most events to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Configuration drift (security-relevant fact changes), newest first.
    Drift {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Only this device.
        #[arg(long, value_parser = device_id)]
        device: Option<String>,
        /// Most events to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Unmanaged devices: refused connections from unknown identities, and unknown private
    /// addresses managed devices talk to.
    Unmanaged {
        #[command(flatten)]
        remote: client::RemoteArgs,
    },
    /// Show a device and its MQTT session (connected, counters), if this server runs the broker.
    Show {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        id: String,
    },
    /// Quarantine a device: only its `cmd` and `update` channels stay open, everything else
    /// is refused and logged. Takes effect on its next message.
    Quarantine {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        id: String,
    },
    /// Release a device from quarantine.
    Release {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        id: String,
    },
    /// Ask a device for a new key: it is sent a `rotate-certificate` command, and its next
    /// renewal (EST simplereenroll) revokes the certificate it renews with (`superseded`).
    Rotate {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        id: String,
    },
    /// Send a JSON message to a device on its `cmd` or `update` channel (MQTT, QoS 1).
    ///
    /// Quarantined devices still receive both channels: they are how a device is repaired.
    #[command(
        after_help = "Example:\n  garrison device send sensor-1 --channel cmd --payload '{\"schema\":\"reboot/1\"}'"
    )]
    Send {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        id: String,
        /// Channel: the device receives it on `garrison/v1/d/<id>/<channel>`.
        #[arg(long, value_enum)]
        channel: ChannelArg,
        /// The payload: JSON text, `@FILE` to read it from a file, or `-` for standard input.
        #[arg(long, value_name = "JSON")]
        payload: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ChannelArg {
    /// Commands (`garrison/v1/d/<id>/cmd`); the device answers on `cmd/result`.
    Cmd,
    /// Updates (`garrison/v1/d/<id>/update`); the device reports on `update/status`.
    Update,
}

impl ChannelArg {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelArg::Cmd => "cmd",
            ChannelArg::Update => "update",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CertKindArg {
    /// Device certificates (CN = device id), used for MQTT and EST renewal.
    Device,
    /// Claim certificates, used only to enroll devices over EST.
    Claim,
}

impl CertKindArg {
    pub fn as_str(self) -> &'static str {
        match self {
            CertKindArg::Device => "device",
            CertKindArg::Claim => "claim",
        }
    }
}

/// Why a certificate is revoked (RFC 5280 CRL reason codes), as written into the CRL.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReasonArg {
    /// No reason given.
    Unspecified,
    /// The private key was (or may have been) exposed.
    KeyCompromise,
    /// The subject's affiliation or name changed.
    AffiliationChanged,
    /// Replaced by a newer certificate.
    Superseded,
    /// The device or claim is no longer in use.
    CessationOfOperation,
    /// The subject is no longer allowed what the certificate grants.
    PrivilegeWithdrawn,
}

impl ReasonArg {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonArg::Unspecified => "unspecified",
            ReasonArg::KeyCompromise => "key-compromise",
            ReasonArg::AffiliationChanged => "affiliation-changed",
            ReasonArg::Superseded => "superseded",
            ReasonArg::CessationOfOperation => "cessation-of-operation",
            ReasonArg::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// List certificates (serial, subject, kind, status, expiry), ordered by serial.
    List {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Only the certificates of this device id (or claim name).
        #[arg(long, value_name = "ID", value_parser = device_id)]
        device: Option<String>,
        /// Only device or only claim certificates.
        #[arg(long, value_enum)]
        kind: Option<CertKindArg>,
        /// Only valid certificates that expire within this duration, e.g. 30d.
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        expiring_within: Option<String>,
    },
    /// Show one certificate's details; with --pem, print only the certificate as PEM.
    Show {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Serial number, hex (colons and case do not matter).
        serial: String,
        /// Print only the PEM certificate (e.g. to pipe into `openssl x509 -text`).
        #[arg(long)]
        pem: bool,
    },
    /// Revoke a certificate: the CRL is re-signed at once and a device connected with it is
    /// disconnected within a second.
    Revoke {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Serial number, hex (colons and case do not matter).
        serial: String,
        /// Reason recorded in the CRL.
        #[arg(long, value_enum, default_value_t = ReasonArg::Unspecified)]
        reason: ReasonArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RequestStatusArg {
    /// Waiting for an operator (`enroll approve` / `enroll reject`).
    Pending,
    /// Approved (or pre-authorised); the device's next EST request gets its certificate.
    Approved,
    /// Rejected; the device's further requests are refused.
    Rejected,
    /// A certificate was issued against it.
    Issued,
}

impl RequestStatusArg {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatusArg::Pending => "pending",
            RequestStatusArg::Approved => "approved",
            RequestStatusArg::Rejected => "rejected",
            RequestStatusArg::Issued => "issued",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum EnrollCommand {
    /// Bootstrap tokens: one-time (or N-time) passwords a device presents to enroll.
    #[command(subcommand)]
    Token(EnrollTokenCommand),
    /// Claim certificates for factory provisioning: a shared certificate that may enroll
    /// devices over EST (never connect to the broker).
    #[command(subcommand)]
    Claim(EnrollClaimCommand),
    /// List the approval queue: enrollment requests by device id.
    Requests {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Only requests with this status.
        #[arg(long, value_enum)]
        status: Option<RequestStatusArg>,
    },
    /// Approve a device's pending request; its next EST request gets its certificate.
    Approve {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        device: String,
    },
    /// Reject a device's pending request; its further requests are refused.
    Reject {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        device: String,
    },
    /// Pre-authorise a device id: its first EST request is issued without waiting for approval.
    Preauthorize {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id.
        #[arg(value_parser = device_id)]
        device: String,
        /// Only issue for this public key: SHA-256 of its SubjectPublicKeyInfo, 64 hex
        /// characters (`openssl pkey -pubout -outform DER -in device.key | sha256sum`).
        #[arg(long, value_name = "HEX")]
        public_key_sha256: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnrollTokenCommand {
    /// Create a bootstrap token (shown once) for a device id or an id prefix such as `line4-*`.
    ///
    /// The device sends its CSR to /.well-known/est/simpleenroll with HTTP Basic
    /// authentication: its device id as the user name and the token as the password. The
    /// command prints the token once, with the commands a device runs to use it.
    #[command(
        after_help = "Examples:\n  garrison enroll token create sensor-17\n  garrison enroll token create 'line4-*' --uses 200 --expires-in 7d\n  garrison enroll token create 'trial-*' --uses 20 --certificate-validity 14d"
    )]
    Create {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Device id the token may enroll, or an id prefix ending in `*` (`line4-*`), or `*`.
        pattern: String,
        /// How many enrollments the token allows (1 to 100000) [default: 1].
        #[arg(long, value_name = "N")]
        uses: Option<i64>,
        /// Lifetime, 1 minute to 365 days, e.g. 24h or 7d [default: 24h].
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        expires_in: Option<String>,
        /// Shorter validity for the certificates this token enrolls (lab units, trials),
        /// at least 1h and at most the server's pki.device_validity; renewals get the full
        /// validity [default: pki.device_validity].
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        certificate_validity: Option<String>,
    },
    /// List bootstrap tokens (never their secrets), newest first.
    List {
        #[command(flatten)]
        remote: client::RemoteArgs,
    },
    /// Revoke a bootstrap token; devices can no longer enroll with it.
    Revoke {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Token id (16 hex characters, from `enroll token list`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnrollClaimCommand {
    /// Create a claim certificate and write it and its private key (0600) to DIR/NAME.pem and
    /// DIR/NAME.key. Garrison keeps no copy of the key; existing files are never overwritten.
    ///
    /// A device enrolls by presenting the claim as its TLS client certificate to
    /// /.well-known/est/simpleenroll. Revoke the claim's serial (`cert revoke`) to stop it.
    Create {
        #[command(flatten)]
        remote: client::RemoteArgs,
        /// Claim name (same rules as a device id); the certificate's CN is `claim:NAME`.
        #[arg(value_parser = device_id)]
        name: String,
        /// How many devices the claim may enroll (1 to 10000000) [default: 1000].
        #[arg(long, value_name = "N")]
        uses: Option<i64>,
        /// Validity, 1 hour to 3650 days, e.g. 365d [default: 365d].
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        valid_for: Option<String>,
        /// Directory for NAME.pem and NAME.key (created if missing).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
    /// List claim certificates and how many enrollments each has made.
    List {
        #[command(flatten)]
        remote: client::RemoteArgs,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args.load()?).await,
        Command::Config(ConfigCommand::Defaults) => {
            print!("{}", config::DEFAULTS_TOML);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Show(args)) => {
            let config = args.load()?;
            config.resolve()?;
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(AdminCommand::Init { server, username }) => {
            local::admin_init(server.load()?, &username).await
        }
        Command::Admin(AdminCommand::ResetPassword { server, username }) => {
            local::reset_password(server.load()?, &username).await
        }
        Command::Ca(CaCommand::Init {
            server,
            offline_root,
            passphrase_stdin,
            algorithm,
        }) => {
            let algorithm = algorithm.map(|a| match a {
                KeyAlgorithmArg::EcdsaP256 => garrison_pki::KeyAlgorithm::EcdsaP256,
                KeyAlgorithmArg::Ed25519 => garrison_pki::KeyAlgorithm::Ed25519,
            });
            local::ca_init(server.load()?, algorithm, offline_root, passphrase_stdin).await
        }
        Command::Audit(AuditCommand::Verify {
            server,
            expect_head,
        }) => local::audit_verify(server.load()?, expect_head.as_deref()).await,
        Command::Audit(AuditCommand::List { remote, limit }) => {
            client::audit_list(remote, limit).await
        }
        Command::Login(args) => client::login(args).await,
        Command::Logout(remote) => client::logout(remote).await,
        Command::Whoami(remote) => client::whoami(remote).await,
        Command::Token(TokenCommand::Create {
            remote,
            role,
            name,
            expires_in,
        }) => client::token_create(remote, role.map(Role::from), name, expires_in).await,
        Command::Token(TokenCommand::List { remote }) => client::token_list(remote).await,
        Command::Token(TokenCommand::Revoke { remote, id }) => {
            client::token_revoke(remote, id).await
        }
        Command::Operator(OperatorCommand::Add {
            remote,
            username,
            role,
            password_stdin,
        }) => client::operator_add(remote, username, role.into(), password_stdin).await,
        Command::Operator(OperatorCommand::List { remote }) => client::operator_list(remote).await,
        Command::Operator(OperatorCommand::Disable { remote, username }) => {
            client::operator_set_disabled(remote, username, true).await
        }
        Command::Operator(OperatorCommand::Enable { remote, username }) => {
            client::operator_set_disabled(remote, username, false).await
        }
        Command::Device(command) => devices::device(command).await,
        Command::Cert(command) => devices::cert(command).await,
        Command::Enroll(command) => devices::enroll(command).await,
        Command::Group(command) => inventory_cli::group(command).await,
        Command::Finding(command) => inventory_cli::finding(command).await,
        Command::Posture(command) => inventory_cli::posture(command).await,
        Command::Alert(command) => crate::monitor_cli::alert(command).await,
        Command::Response(command) => crate::monitor_cli::response(command).await,
        Command::Playbook(command) => crate::monitor_cli::playbook(command).await,
        Command::Intel(command) => crate::monitor_cli::intel(command).await,
        Command::Rules(command) => crate::rules_cli::run(command),
        Command::Release(command) => crate::release_cli::run(command).await,
        Command::Campaign(command) => crate::campaign_cli::campaign(command).await,
        Command::Window(command) => crate::campaign_cli::window(command).await,
        Command::Agent(args) => {
            garrison_agent::cli::run_agent(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(args) => {
            garrison_sim::cli::run_sim(args, crate::serve::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => crate::demo::run(args).await,
    }
}
