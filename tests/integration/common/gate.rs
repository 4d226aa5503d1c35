//! dockgate as a child process on 127.0.0.1:<ephemeral>, with its stderr captured.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::dockerd::dockerd;
use super::pki::pki;
use super::util::{poll, run_with_timeout, wait_timeout, Finished};

pub const BIN: &str = env!("CARGO_BIN_EXE_dockgate");
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A `dockgate` command with a clean environment (no RUST_LOG: default level info).
pub fn dockgate_command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("PATH", "/usr/bin:/bin");
    cmd
}

/// Runs dockgate with exactly `args`, expecting it to exit by itself within 10 s.
pub fn run_dockgate(args: &[OsString]) -> Finished {
    run_with_timeout(dockgate_command().args(args), None, LISTEN_TIMEOUT)
}

/// The gate's captured stderr, shared with the reader thread.
#[derive(Clone, Default)]
pub struct GateLogs(Arc<Mutex<String>>);

impl GateLogs {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// The first log line containing all of `needles`, if any.
    pub fn find_line(&self, needles: &[&str]) -> Option<String> {
        self.text()
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
    }

    /// Waits until a line containing all of `needles` appears; panics with the log otherwise.
    pub fn wait_for(&self, needles: &[&str], timeout: Duration) -> String {
        poll(timeout, || self.find_line(needles)).unwrap_or_else(|| {
            panic!(
                "no dockgate log line containing {needles:?} within {timeout:?}; log:\n{}",
                self.text()
            )
        })
    }

    /// Every log line containing all of `needles`.
    /// Fails the test if a line contains all of `needles`; `what` says what such a line means.
    pub fn assert_no_line(&self, needles: &[&str], what: &str) {
        assert!(
            self.lines_with(needles).is_empty(),
            "{what}: a line with {needles:?} was logged:\n{}",
            self.text()
        );
    }

    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until at least `count` lines contain all of `needles`; returns them.
    pub fn wait_for_count(&self, needles: &[&str], count: usize, timeout: Duration) -> Vec<String> {
        poll(timeout, || {
            let lines = self.lines_with(needles);
            (lines.len() >= count).then_some(lines)
        })
        .unwrap_or_else(|| {
            panic!(
                "fewer than {count} dockgate log lines containing {needles:?} within {timeout:?}; log:\n{}",
                self.text()
            )
        })
    }
}

/// Which flags a gate gets; [`GateBuilder::standard`] is the setup most tests use.
pub struct GateBuilder {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    crls: Vec<PathBuf>,
    /// `None`: the private dockerd (started on first use).
    upstream: Option<String>,
    extra: Vec<String>,
    /// Environment variables for the gate (test hooks of debug builds).
    envs: Vec<(String, String)>,
}

impl GateBuilder {
    /// Root CA, server cert, root CRL + intermediate CRL, upstream = the private dockerd.
    pub fn standard() -> GateBuilder {
        let pki = pki();
        GateBuilder {
            ca: pki.root_ca.clone(),
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            crls: vec![pki.root_crl.clone(), pki.intermediate_crl.clone()],
            upstream: None,
            extra: Vec::new(),
            envs: Vec::new(),
        }
    }

    pub fn cert(mut self, cert: &Path) -> Self {
        self.cert = cert.to_path_buf();
        self
    }

    pub fn key(mut self, key: &Path) -> Self {
        self.key = key.to_path_buf();
        self
    }

    pub fn ca(mut self, ca: &Path) -> Self {
        self.ca = ca.to_path_buf();
        self
    }

    pub fn crls(mut self, crls: &[&Path]) -> Self {
        self.crls = crls.iter().map(|p| p.to_path_buf()).collect();
        self
    }

    pub fn upstream(mut self, upstream: &str) -> Self {
        self.upstream = Some(upstream.to_string());
        self
    }

    /// An extra flag such as `--crl-allow-unknown` (added after the others).
    pub fn flag(mut self, flag: &str) -> Self {
        self.extra.push(flag.to_string());
        self
    }

    /// The command line (without `--listen`).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--tlscacert".into(),
            self.ca.clone().into(),
            "--tlscert".into(),
            self.cert.clone().into(),
            "--tlskey".into(),
            self.key.clone().into(),
        ];
        for crl in &self.crls {
            args.push("--crl".into());
            args.push(crl.clone().into());
        }
        args.push("--upstream".into());
        args.push(
            self.upstream
                .clone()
                .unwrap_or_else(|| dockerd().host.clone())
                .into(),
        );
        args.extend(self.extra.iter().map(OsString::from));
        args
    }

    /// Several extra flags, e.g. `&["--reload-interval", "1"]`.
    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.extra.extend(flags.iter().map(|f| f.to_string()));
        self
    }

    /// An environment variable for the gate.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.envs.push((name.to_string(), value.to_string()));
        self
    }

    pub fn start(self) -> Gate {
        Gate::start_with_env(self.args(), &self.envs, LISTEN_TIMEOUT)
    }

    /// Starts the gate, allowing it `timeout` (instead of 10 s) to start listening.
    pub fn start_within(self, timeout: Duration) -> Gate {
        Gate::start_with_env(self.args(), &self.envs, timeout)
    }

    /// Runs dockgate with these flags (and `--listen 127.0.0.1:0`, so a gate that wrongly
    /// accepts them does not take a real port), expecting it to exit by itself within 10 s.
    pub fn run_to_exit(self) -> Finished {
        let mut args = self.args();
        args.extend(["--listen".into(), "127.0.0.1:0".into()]);
        run_dockgate(&args)
    }
}

/// A running dockgate; killed on drop.
pub struct Gate {
    child: Child,
    pub port: u16,
    logs: GateLogs,
}

impl Gate {
    /// The standard gate (see [`GateBuilder::standard`]).
    pub fn standard() -> Gate {
        GateBuilder::standard().start()
    }

    /// Starts dockgate with `args` plus `--listen 127.0.0.1:0` and waits for `listening on`.
    pub fn start(args: Vec<OsString>) -> Gate {
        Gate::start_within(args, LISTEN_TIMEOUT)
    }

    /// The same, allowing it `listen_timeout` to start listening.
    pub fn start_within(args: Vec<OsString>, listen_timeout: Duration) -> Gate {
        Gate::start_with_env(args, &[], listen_timeout)
    }

    fn start_with_env(
        args: Vec<OsString>,
        envs: &[(String, String)],
        listen_timeout: Duration,
    ) -> Gate {
        let mut cmd = dockgate_command();
        cmd.envs(envs.iter().map(|(k, v)| (k, v)));
        Gate::start_command(cmd, args, listen_timeout)
    }

    /// Starts `cmd` (dockgate, or something that runs it: chroot, docker run) with `args` plus
    /// `--listen 127.0.0.1:0` and waits for `listening on`.
    pub fn start_command(mut cmd: Command, args: Vec<OsString>, listen_timeout: Duration) -> Gate {
        cmd.args(&args)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {:?}: {e}", cmd.get_program()));
        let logs = GateLogs::default();
        capture(child.stderr.take().unwrap(), logs.clone(), "dockgate");
        capture(
            child.stdout.take().unwrap(),
            logs.clone(),
            "dockgate stdout",
        );
        let port = poll(listen_timeout, || {
            if let Some(status) = child.try_wait().unwrap() {
                thread::sleep(Duration::from_millis(100)); // let the reader catch the last lines
                panic!("dockgate exited with {status} before listening; args {args:?}; log:\n{}", logs.text());
            }
            listening_port(&logs.text())
        })
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!("dockgate printed no `listening on 127.0.0.1:PORT` within {listen_timeout:?}; log:\n{}", logs.text())
        });
        Gate { child, port, logs }
    }

    pub fn logs(&self) -> String {
        self.logs.text()
    }

    pub fn logs_handle(&self) -> GateLogs {
        self.logs.clone()
    }

    pub fn wait_for_log(&self, needles: &[&str], timeout: Duration) -> String {
        self.logs.wait_for(needles, timeout)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGHUP (reload now).
    pub fn sighup(&self) {
        let rc = unsafe { libc::kill(self.pid(), libc::SIGHUP) };
        assert_eq!(
            rc,
            0,
            "kill -HUP {}: {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill -{signal} {}", self.pid());
    }

    /// Waits for the gate to exit by itself; panics with its log after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        wait_timeout(&mut self.child, timeout).unwrap_or_else(|| {
            panic!(
                "dockgate still running after {timeout:?}; log:\n{}",
                self.logs()
            )
        })
    }

    /// True while the gate process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Kills the gate (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = wait_timeout(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies `from` line by line into `logs`, echoing to the test's stderr.
fn capture(from: impl Read + Send + 'static, logs: GateLogs, label: &'static str) {
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            eprintln!("[{label}] {line}");
            let mut buf = logs.0.lock().unwrap();
            buf.push_str(&line);
            buf.push('\n');
        }
    });
}

/// The port from the first `listening on 127.0.0.1:PORT` in `log`.
fn listening_port(log: &str) -> Option<u16> {
    let rest = &log[log.find("listening on 127.0.0.1:")? + "listening on 127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
