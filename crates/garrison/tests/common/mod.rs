//! Helpers shared by the end-to-end tests: run the real binary, start `serve` on a free port
//! and read what it prints, and drive third-party clients.
#![allow(dead_code, unreachable_pub)]

use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_garrison");

pub fn garrison(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("XDG_CONFIG_HOME", home.join("cfg"))
        .env_remove("GARRISON_MASTER_KEY")
        .env_remove("GARRISON_TOKEN")
        .env("NO_COLOR", "1")
        // Tests run in parallel: never the fixed default broker port.
        .env("GARRISON_BROKER__LISTEN", "127.0.0.1:0")
        .current_dir(home);
    c
}

/// Kills a child process (a simulator, an agent) on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub password: Option<String>,
    /// `host:port` of the MQTT broker, when it runs.
    pub mqtt: Option<String>,
    /// `host:port` of the lab listener, when it runs.
    pub lab: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(home: &Path, extra: &[&str]) -> Server {
    start_with(home, extra, &[])
}

pub fn start_with_env(home: &Path, env: &[(&str, &str)]) -> Server {
    start_with(home, &[], env)
}

#[allow(clippy::zombie_processes)] // Server::drop kills and waits.
pub fn start_with(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = garrison(home)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        // Kept for diagnosis: a failing test's directory holds the server's log.
        .stderr(Stdio::from(
            std::fs::File::create(home.join("server.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut password = None;
    let mut addr = None;
    let mut mqtt = None;
    let mut lab = None;
    loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if let Some(p) = line.split("password: ").nth(1) {
            password = Some(p.trim_end_matches('│').trim().to_owned());
        }
        if let Some(url) = line.split("listening on https://").nth(1) {
            addr = Some(url.trim().to_owned());
        }
        if let Some(rest) = line.split("mqtts://").nth(1) {
            mqtt = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.split("mqtt://").nth(1) {
            lab = rest.split_whitespace().next().map(str::to_owned);
        }
        // The start-up banner ends with the "next:" hint.
        if line.contains("next:") {
            std::thread::spawn(move || for _ in lines {});
            return Server {
                child,
                addr: addr.expect("serve printed no listening address"),
                password,
                mqtt,
                lab,
            };
        }
    }
}

pub fn run(cmd: &mut Command, stdin: Option<&str>) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

pub fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("process did not exit within 10s");
}

/// The HTTP status curl gets for a GET with a bearer token, trusting only `ca`.
pub fn curl_status(ca: &Path, token: &str, url: &str) -> String {
    run(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg("--cacert")
            .arg(ca)
            .arg(url),
        None,
    )
    .1
}

/// EST and operator-API calls made with curl and openssl.
pub struct Est<'a> {
    pub url: String,
    pub ca: &'a Path,
    pub dir: &'a Path,
    pub token: String,
}

impl Est<'_> {
    /// Calls the operator API with curl; returns (status, JSON).
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-w", "\n%{http_code}", "-X", method, "--cacert"])
            .arg(self.ca)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token));
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data"])
                .arg(b.to_string());
        }
        let (_, out, err) = run(cmd.arg(format!("{}{path}", self.url)), None);
        let (body, code) = out
            .rsplit_once('\n')
            .unwrap_or_else(|| panic!("{out}{err}"));
        let code: u16 = code.trim().parse().unwrap();
        if code == 0 {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            panic!("curl got no HTTP response for {method} {path}: {err}\nserver log:\n{log}");
        }
        (code, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Sends the file `body` with curl as `content_type`, authorised by `token`; returns
    /// (status, JSON).
    pub fn send_file(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: &str,
        body: &Path,
    ) -> (u16, Value) {
        let (_, out, err) = run(
            Command::new("curl")
                .args(["-sS", "-w", "\n%{http_code}", "-X", method, "--cacert"])
                .arg(self.ca)
                .arg("-H")
                .arg(format!("Authorization: Bearer {token}"))
                .arg("-H")
                .arg(format!("Content-Type: {content_type}"))
                .arg("--data-binary")
                .arg(format!("@{}", body.display()))
                .arg(format!("{}{path}", self.url)),
            None,
        );
        let (text, code) = out
            .rsplit_once('\n')
            .unwrap_or_else(|| panic!("{out}{err}"));
        (
            code.trim().parse().unwrap(),
            serde_json::from_str(text).unwrap_or(Value::Null),
        )
    }

    /// A fresh P-256 key and a base64 DER CSR for `cn`, made by `openssl req`.
    pub fn csr(&self, name: &str, cn: &str) -> std::path::PathBuf {
        let key = self.dir.join(format!("{name}.key"));
        let der = self.dir.join(format!("{name}.csr.der"));
        let (ok, _, err) = run(
            Command::new("openssl")
                .args([
                    "req",
                    "-new",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ])
                .args(["-nodes", "-keyout"])
                .arg(&key)
                .args(["-subj", &format!("/CN={cn}"), "-outform", "DER", "-out"])
                .arg(&der),
            None,
        );
        assert!(ok, "openssl req: {err}");
        let b64 = self.dir.join(format!("{name}.csr.b64"));
        let (ok, _, err) = run(
            Command::new("openssl")
                .args(["base64", "-in"])
                .arg(&der)
                .arg("-out")
                .arg(&b64),
            None,
        );
        assert!(ok, "{err}");
        b64
    }

    /// POSTs a CSR file to an EST endpoint with extra curl arguments; returns (status,
    /// headers+body text).
    pub fn enroll(&self, endpoint: &str, csr: &Path, extra: &[&str]) -> (u16, String) {
        let (_, out, err) = run(
            Command::new("curl")
                .args(["-sS", "-i", "-w", "\n%{http_code}", "--cacert"])
                .arg(self.ca)
                .args(extra)
                .args(["-H", "Content-Type: application/pkcs10", "--data-binary"])
                .arg(format!("@{}", csr.display()))
                .arg(format!("{}/.well-known/est/{endpoint}", self.url)),
            None,
        );
        let (text, code) = out
            .rsplit_once('\n')
            .unwrap_or_else(|| panic!("{out}{err}"));
        (code.trim().parse().unwrap(), text.to_owned())
    }

    /// Decodes an EST certs-only body with openssl into PEM certificates, saved as `name`.
    pub fn certs_from(&self, response: &str, name: &str) -> String {
        let body = response.split("\r\n\r\n").last().unwrap().trim().to_owned();
        let b64 = self.dir.join(format!("{name}.p7.b64"));
        std::fs::write(&b64, format!("{body}\n")).unwrap();
        let der = self.dir.join(format!("{name}.p7.der"));
        let (ok, _, err) = run(
            Command::new("openssl")
                .args(["base64", "-d", "-in"])
                .arg(&b64)
                .arg("-out")
                .arg(&der),
            None,
        );
        assert!(ok, "{err}");
        let pem = self.dir.join(format!("{name}.pem"));
        let (ok, out, err) = run(
            Command::new("openssl")
                .args(["pkcs7", "-inform", "DER", "-print_certs", "-in"])
                .arg(&der)
                .arg("-out")
                .arg(&pem),
            None,
        );
        assert!(ok, "openssl pkcs7: {out}{err}");
        std::fs::read_to_string(pem).unwrap()
    }

    pub fn verify(&self, cert: &str) -> String {
        let chain = self.dir.join("chain.pem");
        let (_, out, err) = run(
            Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(&chain)
                .arg(self.dir.join(cert)),
            None,
        );
        format!("{out}{err}")
    }
}

pub fn subject(path: &Path) -> String {
    run(
        Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-serial", "-in"])
            .arg(path),
        None,
    )
    .1
}

/// Logs in as the first admin with curl and returns an [`Est`] for the server.
/// A Prometheus sample's value from `/metrics` (0 when absent).
pub fn metric(est: &Est<'_>, name_and_labels: &str) -> f64 {
    let (_, text, _) = run(
        Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(est.ca)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", est.token))
            .arg(format!("{}/metrics", est.url)),
        None,
    );
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub fn est_for<'a>(server: &Server, home: &'a Path, ca: &'a Path) -> Est<'a> {
    let url = format!("https://{}", server.addr);
    let (ok, out, err) = run(
        Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(ca)
            .args(["-H", "Content-Type: application/json", "--data"])
            .arg(
                json!({"username": "admin", "password": server.password.clone().unwrap()})
                    .to_string(),
            )
            .arg(format!("{url}/api/v1/auth/login")),
        None,
    );
    assert!(ok, "{err}");
    let token = serde_json::from_str::<Value>(&out).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    Est {
        url,
        ca,
        dir: home,
        token,
    }
}

impl Est<'_> {
    /// Creates a claim certificate through the API and writes it as `claim.pem` / `claim.key`
    /// in the test directory; returns curl's `--cert/--key` arguments for it.
    pub fn claim(&self, name: &str, uses: u32) -> Vec<String> {
        let (status, claim) = self.api(
            "POST",
            "/api/v1/enrollment/claims",
            Some(json!({"name": name, "max_uses": uses})),
        );
        assert_eq!(status, 201, "{claim}");
        let cert = self.dir.join("claim.pem");
        let key = self.dir.join("claim.key");
        std::fs::write(&cert, claim["certificate_pem"].as_str().unwrap()).unwrap();
        std::fs::write(&key, claim["private_key_pem"].as_str().unwrap()).unwrap();
        vec![
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
        ]
    }
}

/// A bootstrap token for devices matching `pattern`, good for `uses` enrollments.
pub fn bootstrap_token(est: &Est<'_>, pattern: &str, uses: i64) -> String {
    let (status, token) = est.api(
        "POST",
        "/api/v1/enrollment/tokens",
        Some(json!({"device_pattern": pattern, "max_uses": uses})),
    );
    assert_eq!(status, 201, "{token}");
    token["token"].as_str().unwrap().to_owned()
}

/// Runs `garrison ARGS` in `home`; panics with its output unless it succeeds.
pub fn ok(home: &Path, args: &[&str]) -> String {
    let (success, out, err) = run(garrison(home).args(args), None);
    assert!(success, "garrison {args:?} failed:\n{out}\n{err}");
    out
}

/// Offline, in `home`: a root key and a release key, and `root.cose` signed by the root key
/// listing the release key — what a vendor makes before its first release.
pub fn release_root(home: &Path) {
    for key in ["root", "release"] {
        ok(home, &["release", "keygen", key]);
    }
    ok(
        home,
        &[
            "release",
            "root",
            "--root-key",
            "root.pub",
            "--release-key",
            "release.pub",
            "--sign-with",
            "root.key",
            "--out",
            "root.cose",
        ],
    );
}

/// Runs `garrison ARGS` as a client of the server `est` talks to, with its token.
pub fn remote(home: &Path, est: &Est<'_>, args: &[&str]) -> String {
    let mut cmd = garrison(home);
    cmd.args(args)
        .current_dir(home)
        .env("GARRISON_TOKEN", &est.token)
        .env("GARRISON_SERVER", &est.url)
        .env("GARRISON_CA_CERT", est.ca);
    let (success, out, err) = run(&mut cmd, None);
    assert!(success, "garrison {args:?}: {out}{err}");
    out
}

/// Percent-encodes a query parameter.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Offline, in `home`: signs `file` as release `version` (sequence `sequence`) of `vendor`'s
/// `model` with `key`, writing the manifest to `out`.
#[allow(clippy::too_many_arguments)]
pub fn sign_release(
    home: &Path,
    key: &str,
    vendor: &str,
    model: &str,
    sequence: &str,
    version: &str,
    file: &str,
    out: &str,
) {
    ok(
        home,
        &[
            "release",
            "sign",
            "--key",
            key,
            "--vendor",
            vendor,
            "--model",
            model,
            "--sequence",
            sequence,
            "--version",
            version,
            file,
            "--out",
            out,
        ],
    );
}
