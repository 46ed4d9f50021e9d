//! Helpers shared by the end-to-end tests: run the real binary, start `serve` on a free port
//! and read what it prints, and drive third-party clients.
#![allow(dead_code, unreachable_pub)]

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
        .current_dir(home);
    c
}

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub password: Option<String>,
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
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut password = None;
    loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if let Some(p) = line.split("password: ").nth(1) {
            password = Some(p.trim_end_matches('│').trim().to_owned());
        }
        if let Some(url) = line.split("listening on https://").nth(1) {
            let addr = url.trim().to_owned();
            std::thread::spawn(move || for _ in lines {});
            return Server {
                child,
                addr,
                password,
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
