//! The command line: every subcommand, its flags and help text, and dispatch.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand, ValueEnum};
use garrison_core::Role;

use crate::{client, config, local, serve};

/// Garrison: a self-hosted IoT security server.
///
/// Start with `garrison serve` (embedded defaults: SQLite in ./garrison-data, HTTPS on
/// 127.0.0.1:8443, its own CA). It prints the admin password once on first start. Then
/// `garrison login` and manage operators and tokens from here.
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
    /// Run the server: HTTPS API with its own CA, on embedded defaults.
    Serve(ServerArgs),
    /// Show or check configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Local administration on the server's machine (needs the data directory, not the API).
    #[command(subcommand)]
    Admin(AdminCommand),
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
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Operator => Role::Operator,
            RoleArg::Analyst => Role::Analyst,
            RoleArg::Auditor => Role::Auditor,
            RoleArg::ReadOnly => Role::ReadOnly,
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
    }
}
