//! A PKCS#12 server identity (`--tlspfx` + `--tlspfx-password-file`), as Windows exports
//! certificates: the modern encoding (AES-256, PBKDF2) and the legacy one (3DES), both made by
//! openssl from the test PKI's server certificate and key.

use std::ffi::OsString;
use std::path::Path;

use crate::common::expect::assert_cli_works;
use crate::common::gate::run_dockgate;
use crate::common::pki::{export_server_pfx, PFX_PASSWORD};
use crate::common::util::fresh_dir;
use crate::common::{pki, Gate, GateBuilder};

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
        let (pfx, password) = export_server_pfx(&dir, legacy);
        let gate = Gate::start(pfx_args(&pfx, &password));
        assert_cli_works(&gate, &pki().alice);
    }
}

#[test]
fn pfx_password_with_trailing_newline_is_a_clear_error() {
    let dir = fresh_dir("pfx-newline");
    let (pfx, _) = export_server_pfx(&dir, false);
    let with_newline = dir.join("password-newline");
    std::fs::write(&with_newline, format!("{PFX_PASSWORD}\n")).unwrap();
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
    let (pfx, _) = export_server_pfx(&dir, false);
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
