//! CRLs past or near their nextUpdate: the warnings, `--crl-allow-expired`, `--crl-warn-before`,
//! and an expired CRL installed by a reload (refuses new handshakes, cuts only the sessions of
//! clients it lists).

use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use crate::common::expect::{
    assert_cli_refused, assert_cli_refused_again, assert_cli_works, LOG_WAIT,
};
use crate::common::files::{write_atomically, LiveFiles};
use crate::common::pki::{sign_crl, sign_crl_at, SERIAL_ALICE, SERIAL_MALLORY};
use crate::common::util::fresh_dir;
use crate::common::{pki, Docker, GateBuilder};

const HOUR: i64 = 3600;

/// A root CRL revoking mallory whose nextUpdate is `next_update_in_secs` from now.
fn root_crl_file(next_update_in_secs: i64) -> PathBuf {
    let path = fresh_dir("expiry").join("root-crl.pem");
    let crl = sign_crl(
        &pki().root_issuer,
        1,
        &[SERIAL_MALLORY],
        next_update_in_secs,
    );
    std::fs::write(&path, crl.pem().unwrap()).unwrap();
    path
}

#[test]
fn expired_crl_refuses_clients_it_covers_and_says_so() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .crls(&[&pki.root_crl_expired, &pki.intermediate_crl])
        .start();
    let line = gate.wait_for_log(
        &[
            "WARN",
            &pki.root_crl_expired.display().to_string(),
            "is past its nextUpdate: new connections of clients it covers are REFUSED until a fresh CRL is installed",
        ],
        LOG_WAIT,
    );
    assert!(
        line.contains("(issuer \"CN=dockgate test root CA\")"),
        "{line}"
    );
    assert_cli_refused(&gate, &pki.alice, "CRL expired");
}

#[test]
fn allow_expired_accepts_and_says_so() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .crls(&[&pki.root_crl_expired, &pki.intermediate_crl])
        .flag("--crl-allow-expired")
        .start();
    gate.wait_for_log(
        &[
            &pki.root_crl_expired.display().to_string(),
            "is past its nextUpdate: clients it covers are still accepted (--crl-allow-expired)",
        ],
        LOG_WAIT,
    );
    assert_cli_works(&gate, &pki.alice);
    gate.logs_handle().assert_no_line(
        &["REFUSED"],
        "an expired CRL refused a client under --crl-allow-expired",
    );
}

/// nextUpdate in 24 h: `--crl-warn-before 48h` warns, `--crl-warn-before 12h` does not; the
/// intermediate CRL (30 days) is never mentioned; the CRL is still valid either way.
#[test]
fn warn_before_warns_ahead_of_next_update() {
    let pki = pki();
    let crl = root_crl_file(24 * HOUR);
    let crl_name = crl.display().to_string();
    let gate_with = |warn_before: &str| {
        GateBuilder::standard()
            .crls(&[&crl, &pki.intermediate_crl])
            .flags(&["--crl-warn-before", warn_before])
            .start()
    };

    let warned = gate_with("48h");
    let line = warned.wait_for_log(&["WARN", &crl_name, "expires in "], LOG_WAIT);
    // humantime: "1day" when the gate looks within the CRL's second, "23h 59m 58s" after.
    assert!(
        (line.contains("expires in 1day:") || line.contains("expires in 23h"))
            && line.contains(": publish a fresh one before then"),
        "{line}"
    );
    assert_cli_works(&warned, &pki.alice);

    let quiet = gate_with("12h");
    assert_cli_works(&quiet, &pki.alice);
    thread::sleep(Duration::from_millis(500)); // the watcher checks once when it starts
    for gate in [&warned, &quiet] {
        let intermediate = pki.intermediate_crl.display().to_string();
        gate.logs_handle().assert_no_line(
            &["expires in", &intermediate],
            "a warning about the intermediate CRL, which is far from its nextUpdate",
        );
    }
    quiet.logs_handle().assert_no_line(
        &["expires in"],
        "warned with --crl-warn-before 12h about a CRL valid for 24h",
    );
}

/// A reload that installs an already expired CRL refuses new handshakes but leaves open
/// sessions alone: the CRL says nothing new about the clients already admitted.
#[test]
fn expired_crl_from_reload_refuses_new_connections_but_cuts_nothing() {
    let pki = pki();
    let files = LiveFiles::new();
    let gate = files.gate("1").start();
    let container = Docker::direct().run_detached(&["sleep", "600"]);
    let mut session = Docker::via(&gate, &pki.alice).exec_cat(&container.name);
    session.send_line("before").unwrap();
    session.expect_line("before", Duration::from_secs(15));

    // Issued after the CRL in force (a CRL with an older thisUpdate would be refused as a
    // rollback), but already past its nextUpdate: published late.
    let expired = sign_crl_at(&pki.root_issuer, 2, &[SERIAL_MALLORY], -60, -30);
    write_atomically(&files.root_crl, expired.pem().unwrap().as_bytes());
    gate.wait_for_log(&["TLS configuration reloaded"], Duration::from_secs(8));
    gate.wait_for_log(
        &[&files.root_crl_name(), "is past its nextUpdate", "REFUSED"],
        LOG_WAIT,
    );

    assert_cli_refused_again(&gate, &pki.alice, "CRL expired");
    session.send_line("after").unwrap();
    session.expect_line("after", Duration::from_secs(15));
    gate.logs_handle().assert_no_line(
        &["connection cut"],
        "an expired CRL cut an admitted session",
    );
}

/// Strict mode, and a reload installs an already expired CRL that lists alice: the CRL's
/// signature holds, so she is revoked whatever its nextUpdate, and her open session is cut
/// (it used to stay open, the cut skipping "CRL expired", while `--crl-allow-expired` cut it).
#[test]
fn expired_crl_that_lists_a_client_cuts_her_live_session() {
    let pki = pki();
    let files = LiveFiles::new();
    let gate = files.gate("1").start();
    let container = Docker::direct().run_detached(&["sleep", "600"]);
    let mut session = Docker::via(&gate, &pki.alice).exec_cat(&container.name);
    session.send_line("before").unwrap();
    session.expect_line("before", Duration::from_secs(15));

    let expired = sign_crl_at(
        &pki.root_issuer,
        2,
        &[SERIAL_MALLORY, SERIAL_ALICE],
        -60,
        -30,
    );
    write_atomically(&files.root_crl, expired.pem().unwrap().as_bytes());
    gate.wait_for_log(&["TLS configuration reloaded"], Duration::from_secs(5));
    let subject = format!("subject=\"{}\"", pki.alice.subject);
    gate.wait_for_log(
        &["connection cut", &subject, "reason=\"certificate revoked\""],
        LOG_WAIT,
    );
    assert!(
        session.wait_exit(Duration::from_secs(10)).is_some(),
        "alice's docker exec still running after her connection was cut\n{}",
        gate.logs()
    );
    assert_cli_refused_again(&gate, &pki.alice, "certificate revoked");
}
