//! A PKCS#12 server identity (`--tlspfx` + `--tlspfx-password-file`), as Windows exports
//! certificates: the modern encoding (AES-256, PBKDF2) and the legacy one (3DES), both made by
//! openssl from the test PKI's server certificate and key.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::expect::assert_cli_works;
use crate::common::gate::run_dockgate;
use crate::common::util::fresh_dir;
use crate::common::{pki, Gate, GateBuilder};

const PASSWORD: &str = "pfx secret";

/// Exports the server certificate and key as a .pfx protected by `PASSWORD`.
fn export_pfx(dir: &Path, legacy: bool) -> PathBuf {
    let pki = pki();
    let password_file = dir.join("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let pfx = dir.join(if legacy { "legacy.pfx" } else { "server.pfx" });
    let mut openssl = Command::new("openssl");
    openssl.args(["pkcs12", "-export"]);
    if legacy {
        openssl.arg("-legacy");
    }
    let status = openssl
        .arg("-in")
        .arg(&pki.server_cert)
        .arg("-inkey")
        .arg(&pki.server_key)
        .arg("-out")
        .arg(&pfx)
        .arg("-passout")
        .arg(format!("file:{}", password_file.display()))
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl pkcs12 -export failed");
    pfx
}

/// The standard gate flags with `--tlscert`/`--tlskey` replaced by the PFX.
fn pfx_args(pfx: &Path, password_file: &Path) -> Vec<OsString> {
    let mut args = GateBuilder::standard().args();
    let at = args
        .iter()
        .position(|a| a == "--tlscert")
        .expect("standard args have --tlscert");
    assert_eq!(args[at + 2], "--tlskey");
    args.splice(
        at..at + 4,
        [
            "--tlspfx".into(),
            pfx.into(),
            "--tlspfx-password-file".into(),
            password_file.into(),
        ],
    );
    args
}

#[test]
fn pfx_identity_serves_the_docker_cli_modern_and_legacy() {
    for legacy in [false, true] {
        let dir = fresh_dir("pfx");
        let pfx = export_pfx(&dir, legacy);
        let gate = Gate::start(pfx_args(&pfx, &dir.join("password")));
        assert_cli_works(&gate, &pki().alice);
    }
}

#[test]
fn pfx_password_with_trailing_newline_is_a_clear_error() {
    let dir = fresh_dir("pfx-newline");
    let pfx = export_pfx(&dir, false);
    let with_newline = dir.join("password-newline");
    std::fs::write(&with_newline, format!("{PASSWORD}\n")).unwrap();
    let out = run_dockgate(&pfx_args(&pfx, &with_newline));
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("--tlspfx-password-file") && out.stderr.contains("newline"),
        "{}",
        out.stderr
    );
}

#[test]
fn pfx_wrong_password_names_the_file() {
    let dir = fresh_dir("pfx-wrong");
    let pfx = export_pfx(&dir, false);
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "not the password").unwrap();
    let out = run_dockgate(&pfx_args(&pfx, &wrong));
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("--tlspfx {}", pfx.display())),
        "{}",
        out.stderr
    );
}
