//! tests/demo/pki.sh, the openssl walkthrough of the README as a script, still makes a PKI the
//! gate accepts: its client gets in, the client it revoked is refused.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::expect::{assert_cli_refused_with, LOG_WAIT};
use crate::common::util::{fresh_dir, run_with_timeout};
use crate::common::{Docker, GateBuilder};

fn pki_sh(args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/demo/pki.sh");
    let out = run_with_timeout(
        Command::new("bash").arg(script).args(args),
        None,
        Duration::from_secs(60),
    );
    assert!(out.success(), "pki.sh {args:?}: {out:?}");
}

#[test]
fn openssl_script_pki_admits_alice_and_refuses_revoked_mallory() {
    let dir = fresh_dir("openssl-pki");
    let d = dir.to_str().unwrap();
    pki_sh(&[d, "alice", "mallory"]);
    pki_sh(&[d, "--revoke", "mallory"]);
    let gate = GateBuilder::standard()
        .ca(&dir.join("ca.pem"))
        .cert(&dir.join("server.pem"))
        .key(&dir.join("server-key.pem"))
        .crls(&[&dir.join("crl.pem")])
        .start();
    let out = Docker::via_cert_dir(&gate, &dir.join("clients/alice")).ok(&["version"]);
    assert!(out.contains("Server:"), "{out}");
    gate.wait_for_log(&["request", "subject=\"CN=alice\"", "status=200"], LOG_WAIT);
    let line = assert_cli_refused_with(&gate, &dir.join("clients/mallory"), "certificate revoked");
    assert!(line.contains("subject=\"CN=mallory\""), "{line}");
}
