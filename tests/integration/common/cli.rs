//! The real docker CLI, with a clean environment and a timeout on every command.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::dockerd::{dockerd, TEST_IMAGE};
use super::gate::{Gate, GateLogs};
use super::pki::Identity;
use super::util::{fresh_dir, run_with_timeout, unique_name, Finished, Streaming};

pub const TIMEOUT: Duration = Duration::from_secs(60);
pub const BIG_TIMEOUT: Duration = Duration::from_secs(120);

/// A `docker` command for `host` with nothing from the caller's environment but PATH.
/// `cert_path` set means TLS with client certificates from that directory.
pub fn docker_command(host: &str, cert_path: Option<&Path>, config: &Path) -> Command {
    let bin = if Path::new("/usr/local/bin/docker").exists() {
        "/usr/local/bin/docker"
    } else {
        "docker"
    };
    let mut cmd = Command::new(bin);
    set_docker_env(&mut cmd, host, cert_path, config);
    cmd
}

/// Replaces `cmd`'s environment with PATH plus the DOCKER_* variables for `host`.
fn set_docker_env(cmd: &mut Command, host: &str, cert_path: Option<&Path>, config: &Path) {
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", config)
        .env("DOCKER_CONFIG", config)
        .env("DOCKER_HOST", host);
    if let Some(dir) = cert_path {
        cmd.env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", dir);
    }
}

/// A docker CLI bound to one endpoint: a gate with some client identity, or dockerd directly.
pub struct Docker {
    host: String,
    cert_path: Option<PathBuf>,
    config: PathBuf,
    /// The gate's log, appended to failure messages.
    gate_logs: Option<GateLogs>,
}

impl Docker {
    /// Straight to the private dockerd's unix socket (setup and cleanup, not under test).
    pub fn direct() -> Docker {
        Docker {
            host: dockerd().host.clone(),
            cert_path: None,
            config: fresh_dir("cfg"),
            gate_logs: None,
        }
    }

    /// Through `gate`, presenting `id`'s certificate.
    pub fn via(gate: &Gate, id: &Identity) -> Docker {
        Docker::via_cert_dir(gate, &id.dir)
    }

    /// Through `gate`, with DOCKER_CERT_PATH=`dir`.
    pub fn via_cert_dir(gate: &Gate, dir: &Path) -> Docker {
        Docker {
            host: format!("tcp://127.0.0.1:{}", gate.port),
            cert_path: Some(dir.to_path_buf()),
            config: fresh_dir("cfg"),
            gate_logs: Some(gate.logs_handle()),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = docker_command(&self.host, self.cert_path.as_deref(), &self.config);
        cmd.args(args);
        cmd
    }

    /// `program args...` with this CLI's environment (e.g. `script` wrapping a docker command).
    pub fn with_env(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args);
        set_docker_env(
            &mut cmd,
            &self.host,
            self.cert_path.as_deref(),
            &self.config,
        );
        cmd
    }

    /// Runs `docker args...` with a 60 s timeout; any exit code.
    pub fn run(&self, args: &[&str]) -> Finished {
        self.run_with(args, None, TIMEOUT)
    }

    pub fn run_with(&self, args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Finished {
        run_with_timeout(&mut self.command(args), stdin, timeout)
    }

    /// Runs `docker args...`, asserts exit 0 and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None, TIMEOUT)
    }

    pub fn ok_with(&self, args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> String {
        let out = self.run_with(args, stdin, timeout);
        self.assert_success(args, &out);
        out.stdout
    }

    pub fn assert_success(&self, args: &[&str], out: &Finished) {
        assert!(
            out.success(),
            "docker {args:?} failed ({})\n--- stdout:\n{}\n--- stderr:\n{}{}",
            out.status,
            out.stdout,
            out.stderr,
            self.gate_log_text()
        );
    }

    /// Runs `docker args...` and asserts that it fails; returns its result.
    pub fn fails(&self, args: &[&str]) -> Finished {
        let out = self.run(args);
        assert!(
            !out.success(),
            "docker {args:?} succeeded but should have failed\n--- stdout:\n{}{}",
            out.stdout,
            self.gate_log_text()
        );
        out
    }

    /// Starts `docker args...` in the background; its stdout is read line by line.
    pub fn stream(&self, args: &[&str]) -> Streaming {
        Streaming::spawn(&mut self.command(args))
    }

    /// `docker exec -i <container> cat` in the background, its stdin a pipe that stays open:
    /// a live hijacked session whose every line comes back.
    pub fn exec_cat(&self, container: &str) -> Streaming {
        Streaming::spawn_with_stdin(&mut self.command(&["exec", "-i", container, "cat"]))
    }

    /// `docker run -d --name <unique> TEST_IMAGE cmd...`; the container is removed on drop.
    pub fn run_detached(&self, cmd: &[&str]) -> Container {
        let name = unique_name("c");
        let mut args = vec!["run", "-d", "--name", &name, TEST_IMAGE];
        args.extend_from_slice(cmd);
        self.ok(&args);
        Container { name }
    }

    fn gate_log_text(&self) -> String {
        match &self.gate_logs {
            Some(logs) => format!("\n--- dockgate log:\n{}", logs.text()),
            None => String::new(),
        }
    }
}

/// A container name; `docker rm -f` (directly on dockerd) on drop.
pub struct Container {
    pub name: String,
}

impl Container {
    /// Only removes it on drop (for containers created by a command under test).
    pub fn named(name: String) -> Container {
        Container { name }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Docker::direct().run(&["rm", "-f", &self.name]);
    }
}
