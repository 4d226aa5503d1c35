//! `dockgate ca` as a user runs it: a CA directory made by `ca init`, commands run from a work
//! directory (so `ca issue NAME` writes `./NAME` there), the gate started with the command line
//! `ca init` printed, and the docker CLI using an imported context in a private DOCKER_CONFIG.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::cli::TIMEOUT;
use super::dockerd::dockerd;
use super::gate::{dockgate_command, Gate};
use super::util::{fresh_dir, run_with_timeout, Finished};

/// A CA directory (`work/ca`) and the work directory commands run in.
pub struct CaDir {
    pub dir: PathBuf,
    pub work: PathBuf,
    /// What `ca init` printed.
    pub init_stdout: String,
}

impl CaDir {
    /// `dockgate ca init WORK/ca --server-name localhost --server-ip 127.0.0.1`, which must work.
    pub fn init() -> CaDir {
        let work = fresh_dir("ca");
        let dir = work.join("ca");
        let out = run_ca(
            &work,
            &[
                "init",
                path_str(&dir),
                "--server-name",
                "localhost",
                "--server-ip",
                "127.0.0.1",
            ],
        );
        assert_ok(&out, "ca init");
        CaDir {
            dir,
            work,
            init_stdout: out.stdout,
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `dockgate ca SUB DIR args...` in the work directory; any outcome.
    pub fn run(&self, sub: &str, args: &[&str]) -> Finished {
        let mut all = vec![sub, path_str(&self.dir)];
        all.extend_from_slice(args);
        run_ca(&self.work, &all)
    }

    /// The same, asserting exit 0; returns stdout.
    pub fn ok(&self, sub: &str, args: &[&str]) -> String {
        let out = self.run(sub, args);
        assert_ok(&out, &format!("ca {sub} {args:?}"));
        out.stdout
    }

    /// `ca issue DIR NAME args...`; returns the folder it wrote (`WORK/NAME` by default).
    pub fn issue(&self, name: &str, args: &[&str]) -> PathBuf {
        let mut all = vec![name];
        all.extend_from_slice(args);
        self.ok("issue", &all);
        self.work.join(name)
    }

    /// The gate's arguments from the `dockgate --tlscacert ...` line `ca init` printed, plus
    /// the private dockerd as upstream and a 1 s reload interval.
    pub fn gate_args(&self) -> Vec<OsString> {
        let line = self
            .init_stdout
            .lines()
            .find(|l| l.starts_with("dockgate --tlscacert "))
            .unwrap_or_else(|| panic!("ca init printed no command line:\n{}", self.init_stdout));
        let mut args: Vec<OsString> = line.split_whitespace().skip(1).map(Into::into).collect();
        for extra in ["--upstream", &dockerd().host, "--reload-interval", "1"] {
            args.push(extra.into());
        }
        args
    }

    pub fn start_gate(&self) -> Gate {
        Gate::start(self.gate_args())
    }

    /// Every file under the CA directory with its text (to show a command changed nothing).
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        snapshot(&self.dir)
    }
}

/// Files (recursively) under `dir` with their contents (all PEM or text), by relative path.
pub fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                let bytes = std::fs::read(&path).unwrap();
                files.insert(name, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    files
}

/// `dockgate ca args...` with `cwd` as working directory.
pub fn run_ca(cwd: &Path, args: &[&str]) -> Finished {
    let mut cmd = dockgate_command();
    cmd.current_dir(cwd).arg("ca").args(args);
    run_with_timeout(&mut cmd, None, Duration::from_secs(30))
}

pub fn assert_ok(out: &Finished, what: &str) {
    assert!(
        out.success(),
        "{what} failed ({})\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
}

/// Exit code 2 and exactly one line on stderr, `dockgate ca SUB: ...` containing `needle`;
/// nothing on stdout. Returns the line.
pub fn assert_one_line_failure(out: &Finished, sub: &str, needle: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line:\n{}", out.stderr);
    let prefix = format!("dockgate ca {sub}: ");
    assert!(
        lines[0].starts_with(&prefix) && lines[0].contains(needle),
        "expected {prefix:?} ... {needle:?}, got:\n{}",
        lines[0]
    );
    assert!(out.stdout.is_empty(), "stdout:\n{}", out.stdout);
    lines[0].to_string()
}

/// The docker CLI with only a private DOCKER_CONFIG (no DOCKER_HOST, no DOCKER_CERT_PATH):
/// what it reaches is decided by `--context`.
pub struct ContextCli {
    pub config: PathBuf,
}

impl ContextCli {
    pub fn new() -> ContextCli {
        ContextCli {
            config: fresh_dir("docker-config"),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("/usr/local/bin/docker");
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.config)
            .env("DOCKER_CONFIG", &self.config)
            .args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Finished {
        run_with_timeout(&mut self.command(args), None, TIMEOUT)
    }
}

/// The serial of a PEM certificate file, lowercase hex as dockgate logs it.
pub fn serial_of(cert_pem: &Path) -> String {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(cert_pem)
        .unwrap_or_else(|e| panic!("{}: {e}", cert_pem.display()));
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `program args...` (openssl and friends) with a timeout.
pub fn run_tool(program: &str, args: &[&str]) -> Finished {
    run_with_timeout(Command::new(program).args(args), None, TIMEOUT)
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// The permission bits of `path`.
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Asserts that an openssl date line (`notAfter=Dec  6 19:53:24 2026 GMT`,
/// `nextUpdate=...`) is `days` from now, within ten minutes.
pub fn assert_days_ahead(openssl_line: &str, days: u64) {
    let date = openssl_line
        .trim()
        .split_once('=')
        .unwrap_or_else(|| panic!("not a NAME=DATE line: {openssl_line:?}"))
        .1;
    let parsed = run_tool("date", &["-u", "-d", date, "+%s"]);
    let at: u64 = parsed
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{parsed:?}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expected = now + days * 86_400;
    assert!(
        at.abs_diff(expected) < 600,
        "{openssl_line:?} is not {days} days from now"
    );
}
