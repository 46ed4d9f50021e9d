//! The admin CLI over the REST API: login profiles and the `token`, `operator`, `whoami`,
//! `logout` and `audit list` commands.
//!
//! Profiles live in `<user config dir>/garrison/profiles.toml` (mode 0600) and pin the server's
//! root CA certificate, so the CLI never trusts the system roots for a Garrison server. For
//! automation, `GARRISON_SERVER`, `GARRISON_TOKEN` and `GARRISON_CA_CERT` replace the profile.

use std::{collections::BTreeMap, io::Read, path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use clap::Args;
use garrison_core::Role;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::output::{self, Format};

#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// Profile to use (saved by `garrison login`).
    #[arg(
        long,
        env = "GARRISON_PROFILE",
        default_value = "default",
        global = true
    )]
    pub profile: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Server URL.
    #[arg(
        long,
        env = "GARRISON_SERVER",
        default_value = "https://127.0.0.1:8443"
    )]
    pub server: String,
    /// Root CA certificate to trust [default: ./garrison-data/ca.pem].
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Username.
    #[arg(long, short = 'u', default_value = "admin")]
    pub username: String,
    /// Read the password from standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ProfileFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    server: String,
    username: String,
    token: String,
    ca_pem: String,
}

fn profiles_path() -> anyhow::Result<PathBuf> {
    Ok(dirs::config_dir()
        .context("cannot find the user's config directory; set XDG_CONFIG_HOME")?
        .join("garrison")
        .join("profiles.toml"))
}

fn read_profiles() -> anyhow::Result<ProfileFile> {
    let path = profiles_path()?;
    if !path.exists() {
        return Ok(ProfileFile::default());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{} is not a valid profiles file", path.display()))
}

fn write_profiles(file: &ProfileFile) -> anyhow::Result<PathBuf> {
    let path = profiles_path()?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text = toml::to_string_pretty(file)?;
    let tmp = path.with_extension("toml.tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// A connection to one server with one credential.
pub(crate) struct Remote {
    http: reqwest::Client,
    /// The server's base URL, `https://host:port`.
    pub(crate) server: String,
    token: Option<String>,
    /// How the command prints its result.
    pub(crate) output: Format,
}

/// An error answer from the API: its HTTP status and `{"code","message"}`. Callers that
/// expect a particular failure (say 503 from a route that needs the broker) find it with
/// `anyhow::Error::downcast_ref::<ApiFailure>()`.
#[derive(Debug)]
pub(crate) struct ApiFailure {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = match self.status {
            401 => "; log in again with `garrison login`",
            403 => "; ask an admin for a role that grants it",
            _ => "",
        };
        write!(
            f,
            "{} ({}, HTTP {}){hint}",
            self.message, self.code, self.status
        )
    }
}

impl std::error::Error for ApiFailure {}

fn http_client(ca_pem: &str) -> anyhow::Result<reqwest::Client> {
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
        .context("the CA certificate is not valid PEM")?;
    reqwest::Client::builder()
        .tls_certs_only(certs)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .context("cannot build the HTTPS client")
}

/// A request body: JSON, or bytes with their media type (a feed file).
enum RequestBody {
    Json(Value),
    Raw {
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl Remote {
    pub(crate) fn from_args(args: &RemoteArgs) -> anyhow::Result<Remote> {
        if let Ok(token) = std::env::var("GARRISON_TOKEN") {
            let server = std::env::var("GARRISON_SERVER")
                .unwrap_or_else(|_| "https://127.0.0.1:8443".into());
            let ca_file = std::env::var("GARRISON_CA_CERT").context("GARRISON_TOKEN is set, so GARRISON_CA_CERT must name the server's CA certificate file")?;
            let ca_pem = std::fs::read_to_string(&ca_file)
                .with_context(|| format!("cannot read GARRISON_CA_CERT {ca_file}"))?;
            return Ok(Remote {
                http: http_client(&ca_pem)?,
                server,
                token: Some(token),
                output: args.output,
            });
        }
        let profiles = read_profiles()?;
        let Some(p) = profiles.profiles.get(&args.profile) else {
            bail!(
                "no profile {:?}: run `garrison login` first (or set GARRISON_TOKEN)",
                args.profile
            );
        };
        Ok(Remote {
            http: http_client(&p.ca_pem)?,
            server: p.server.clone(),
            token: Some(p.token.clone()),
            output: args.output,
        })
    }

    /// Sends a request; the body text on success, [`ApiFailure`] (with the server's message)
    /// otherwise.
    pub(crate) async fn send_text(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<String> {
        self.send(method, path, body.map(RequestBody::Json)).await
    }

    /// Sends `bytes` as the body, labelled `content_type`; the answer as JSON.
    pub(crate) async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let text = self
            .send(
                method,
                path,
                Some(RequestBody::Raw {
                    content_type: content_type.to_owned(),
                    bytes,
                }),
            )
            .await?;
        serde_json::from_str(&text)
            .with_context(|| format!("the server sent invalid JSON for {path}"))
    }

    /// Whether `path` exists (a `HEAD` answered 2xx; 404 is `false`, anything else an error).
    pub(crate) async fn exists(&self, path: &str) -> anyhow::Result<bool> {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let mut req = self.http.head(&url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            status => Err(ApiFailure {
                status,
                code: "error".into(),
                message: format!("HEAD {path} failed"),
            }
            .into()),
        }
    }

    /// Streams the file at `file` as the body of `PUT path`, advancing `progress` as it goes;
    /// the answer as JSON. No overall timeout: large files take as long as they take.
    pub(crate) async fn upload_file(
        &self,
        path: &str,
        file: &std::path::Path,
        progress: indicatif::ProgressBar,
    ) -> anyhow::Result<Value> {
        use tokio::io::AsyncReadExt;
        let handle = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("cannot open {}", file.display()))?;
        let len = handle.metadata().await.map(|m| m.len()).unwrap_or(0);
        let chunks = futures_util::stream::unfold(handle, move |mut f| {
            let progress = progress.clone();
            async move {
                let mut buf = vec![0u8; 256 * 1024];
                match f.read(&mut buf).await {
                    Ok(0) => {
                        progress.finish_and_clear();
                        None
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        progress.inc(n as u64);
                        Some((Ok::<_, std::io::Error>(buf), f))
                    }
                    Err(e) => Some((Err(e), f)),
                }
            }
        });
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let mut req = self
            .http
            .put(&url)
            .timeout(std::time::Duration::from_secs(24 * 3600))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(chunks));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot upload {} to {url}", file.display()))?;
        Self::answer(resp).await.and_then(|text| {
            serde_json::from_str(&text)
                .with_context(|| format!("the server sent invalid JSON for {path}"))
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<RequestBody>,
    ) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let mut req = self.http.request(method, &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        match body {
            Some(RequestBody::Json(body)) => req = req.json(&body),
            Some(RequestBody::Raw {
                content_type,
                bytes,
            }) => {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(bytes)
            }
            None => {}
        }
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach {url}; is `garrison serve` running and is the CA certificate right?"
            )
        })?;
        Self::answer(resp).await
    }

    /// The body of a 2xx answer; otherwise an [`ApiFailure`] with the server's message.
    async fn answer(resp: reqwest::Response) -> anyhow::Result<String> {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(text);
        }
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = parsed
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or(text.as_str());
        let code = parsed
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("error");
        Err(ApiFailure {
            status: status.as_u16(),
            code: code.to_owned(),
            message: message.to_owned(),
        }
        .into())
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let text = self.send_text(method, path, body).await?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .with_context(|| format!("the server sent invalid JSON for {path}"))
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Follows `next_cursor` until the list ends. `path` may already carry a query string.
    pub(crate) async fn get_all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=500&cursor={}", encode(c)),
                None => format!("{path}{sep}limit=500"),
            };
            let page = self.get(&url).await?;
            if let Some(batch) = page.get("items").and_then(Value::as_array) {
                items.extend(batch.iter().cloned());
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }
}

/// Percent-encodes `text` for a URL path segment or query value (everything but RFC 3986
/// unreserved characters).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn read_password(stdin: bool, prompt: &str) -> anyhow::Result<String> {
    if stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text.trim_end_matches(['\n', '\r']).to_owned())
    } else {
        rpassword::prompt_password(prompt)
            .context("cannot read the password from the terminal; use --password-stdin")
    }
}

pub async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let ca_path = args
        .ca_cert
        .clone()
        .unwrap_or_else(|| PathBuf::from("garrison-data/ca.pem"));
    let ca_pem = std::fs::read_to_string(&ca_path).with_context(|| {
        format!("cannot read the server's CA certificate {}; pass --ca-cert (it is ca.pem in the server's data directory)", ca_path.display())
    })?;
    let password = read_password(
        args.password_stdin,
        &format!("Password for {}: ", args.username),
    )?;
    let remote = Remote {
        http: http_client(&ca_pem)?,
        server: args.server.clone(),
        token: None,
        output: args.remote.output,
    };
    let session = remote
        .post(
            "/api/v1/auth/login",
            json!({ "username": args.username, "password": password }),
        )
        .await?;
    let token = session
        .get("token")
        .and_then(Value::as_str)
        .context("the server's login answer has no token")?;
    let mut profiles = read_profiles()?;
    profiles.profiles.insert(
        args.remote.profile.clone(),
        Profile {
            server: args.server.clone(),
            username: args.username.clone(),
            token: token.to_owned(),
            ca_pem,
        },
    );
    let path = write_profiles(&profiles)?;
    match args.remote.output {
        Format::Json => output::print_object(
            Format::Json,
            &json!({
                "username": args.username, "role": session.get("role"), "expires_at": session.get("expires_at"),
                "profile": args.remote.profile, "server": args.server,
            }),
        ),
        Format::Table => println!(
            "Logged in to {} as {} ({}); session until {}. Saved as profile {:?} in {}.",
            args.server,
            args.username,
            session.get("role").and_then(Value::as_str).unwrap_or("?"),
            session
                .get("expires_at")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            args.remote.profile,
            path.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn logout(args: RemoteArgs) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    remote.post("/api/v1/auth/logout", json!({})).await?;
    let mut profiles = read_profiles()?;
    profiles.profiles.remove(&args.profile);
    write_profiles(&profiles)?;
    println!("Logged out; profile {:?} removed.", args.profile);
    Ok(ExitCode::SUCCESS)
}

pub async fn whoami(args: RemoteArgs) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let me = remote.get("/api/v1/auth/whoami").await?;
    output::print_object(remote.output, &me);
    Ok(ExitCode::SUCCESS)
}

pub async fn token_create(
    args: RemoteArgs,
    role: Option<Role>,
    name: String,
    expires_in: Option<String>,
) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let mut body = json!({ "name": name });
    if let Some(role) = role {
        body["role"] = json!(role);
    }
    if let Some(e) = expires_in {
        body["expires_in"] = json!(e);
    }
    let created = remote.post("/api/v1/tokens", body).await?;
    match remote.output {
        Format::Json => output::print_object(Format::Json, &created),
        Format::Table => {
            let info = &created["info"];
            println!(
                "Created token {} ({}, role {}, expires {}).",
                info["id"].as_str().unwrap_or("?"),
                info["name"].as_str().unwrap_or("?"),
                info["role"].as_str().unwrap_or("?"),
                info["expires_at"].as_str().unwrap_or("never")
            );
            println!(
                "Store it now; it is not shown again:\n\n{}\n",
                created["token"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn token_list(args: RemoteArgs) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let items = remote.get_all("/api/v1/tokens").await?;
    output::print_list(
        remote.output,
        &items,
        &["id", "name", "owner", "role", "state", "expires_at"],
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn token_revoke(args: RemoteArgs, id: String) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let revoked = remote
        .delete(&format!("/api/v1/tokens/{}", encode(&id)))
        .await?;
    match remote.output {
        Format::Json => output::print_object(Format::Json, &revoked),
        Format::Table => println!("Revoked token {id}."),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn operator_add(
    args: RemoteArgs,
    username: String,
    role: Role,
    password_stdin: bool,
) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let mut body = json!({ "username": username, "role": role });
    if password_stdin {
        body["password"] = json!(read_password(true, "")?);
    }
    let created = remote.post("/api/v1/operators", body).await?;
    match remote.output {
        Format::Json => output::print_object(Format::Json, &created),
        Format::Table => {
            println!("Added operator {username} with role {role}.");
            if let Some(p) = created.get("initial_password").and_then(Value::as_str) {
                println!("Initial password (shown once): {p}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn operator_list(args: RemoteArgs) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let items = remote.get_all("/api/v1/operators").await?;
    output::print_list(
        remote.output,
        &items,
        &["username", "role", "disabled", "created_at"],
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn operator_set_disabled(
    args: RemoteArgs,
    username: String,
    disabled: bool,
) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let verb = if disabled { "disable" } else { "enable" };
    let op = remote
        .post(&format!("/api/v1/operators/{username}/{verb}"), json!({}))
        .await?;
    match remote.output {
        Format::Json => output::print_object(Format::Json, &op),
        Format::Table => println!("Operator {username} {verb}d."),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit_list(args: RemoteArgs, limit: u32) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_args(&args)?;
    let page = remote.get(&format!("/api/v1/audit?limit={limit}")).await?;
    let items = page
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    output::print_list(
        remote.output,
        &items,
        &["seq", "at", "actor", "action", "target", "source"],
    );
    Ok(ExitCode::SUCCESS)
}
