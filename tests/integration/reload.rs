//! Revocation that takes effect without a restart: a rewritten CRL is picked up by the watcher
//! (or at once on SIGHUP), refuses new handshakes of the newly revoked client, and cuts the
//! connections that client already has open while other clients' sessions carry on.

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::expect::{assert_cli_refused_again, assert_cli_works, LOG_WAIT};
use crate::common::files::{LiveFiles, Rewrite};
use crate::common::pki::{Identity, SERIAL_ALICE, SERIAL_MALLORY};
use crate::common::util::Streaming;
use crate::common::{pki, Container, Docker, Gate};

/// How long the gate may take to act on a rewritten CRL with `--reload-interval 1`: a tick,
/// a debug-build reload and the verifier pass, with room for a loaded CI machine.
const CUT_WITHIN: Duration = Duration::from_secs(8);
/// Time allowed for a line to come back through a live session.
const ECHO_WAIT: Duration = Duration::from_secs(15);

/// Writes `line` into an exec session and waits for `cat` to send it back.
fn echo(session: &mut Streaming, line: &str) {
    session
        .send_line(line)
        .unwrap_or_else(|e| panic!("write {line:?} to the session: {e}"));
    session.expect_line(line, ECHO_WAIT);
}

/// `docker events` for `container` as `id`, from just before it was created: the replayed
/// `container create` line shows that the stream is open.
fn events_stream(gate: &Gate, id: &Identity, container: &Container, since: u64) -> Streaming {
    let mut events = Docker::via(gate, id).stream(&[
        "events",
        "--since",
        &since.to_string(),
        "--filter",
        &format!("container={}", container.name),
        "--format",
        "{{.Type}} {{.Action}}",
    ]);
    events.expect_line_containing("container create", ECHO_WAIT);
    events
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Alice has an exec session and an events stream open, bob an exec session; the root CRL is
/// rewritten (`how`) to revoke alice too. Her connections are cut, her CLIs end, she cannot
/// reconnect; bob's session goes on and ends normally.
fn revoking_alice_cuts_her_live_connections(how: Rewrite) {
    let pki = pki();
    let (alice, bob) = (&pki.alice, &pki.bob);
    let files = LiveFiles::new();
    let gate = files.gate("1").start();
    let logs = gate.logs_handle();

    let since = unix_now() - 1;
    let container = Docker::direct().run_detached(&["sleep", "600"]);
    let mut alice_events = events_stream(&gate, alice, &container, since);
    let mut alice_exec = Docker::via(&gate, alice).exec_cat(&container.name);
    echo(&mut alice_exec, "alice before the revocation");
    let mut bob_exec = Docker::via(&gate, bob).exec_cat(&container.name);
    echo(&mut bob_exec, "bob before the revocation");

    let revoked_at = Instant::now();
    files.publish_root_crl(2, &[SERIAL_MALLORY, SERIAL_ALICE], how);

    let deadline = revoked_at + CUT_WITHIN;
    let left = || deadline.saturating_duration_since(Instant::now());
    let subject = format!("subject=\"{}\"", alice.subject);
    let cut = ["connection cut", &subject, "reason=\"certificate revoked\""];
    let exec_cut = logs.wait_for(
        &[&cut[..], &["what=\"session POST /v", "/exec/", "/start"]].concat(),
        left(),
    );
    let events_cut = logs.wait_for(
        &[&cut[..], &["what=\"request GET /v", "/events"]].concat(),
        left(),
    );
    eprintln!(
        "{how:?} rewrite: alice's connections cut within {:?}:\n{exec_cut}\n{events_cut}",
        revoked_at.elapsed()
    );
    assert!(
        exec_cut.contains(&format!("serial={}", alice.serial_hex)),
        "{exec_cut}"
    );

    // Her CLI processes see their connections end and exit.
    let exec_status = alice_exec.wait_exit(Duration::from_secs(10));
    let events_status = alice_events.wait_exit(Duration::from_secs(10));
    assert!(
        exec_status.is_some() && events_status.is_some(),
        "alice's CLIs still running after their connections were cut: exec {exec_status:?}, events {events_status:?}\n--- dockgate log:\n{}",
        logs.text()
    );
    eprintln!(
        "alice's docker exec ended with {exec_status:?}, docker events with {events_status:?}"
    );

    // Bob's session, through the same gate, was not touched: a line written now comes back.
    echo(&mut bob_exec, "bob after the revocation");

    // Alice cannot come back.
    assert_cli_refused_again(&gate, alice, "certificate revoked");

    let updated = logs.wait_for(&["CRL updated:", &files.root_crl_name()], LOG_WAIT);
    assert!(
        updated.contains("number 2, 2 revoked") && updated.contains("was number 1, 1 revoked"),
        "{updated}"
    );
    logs.wait_for(
        &["TLS configuration reloaded (generation 1); new connections use it"],
        LOG_WAIT,
    );
    let bob_subject = format!("subject=\"{}\"", bob.subject);
    logs.assert_no_line(
        &["connection cut", &bob_subject],
        "bob's connection was cut",
    );

    // Bob ends his session the normal way: EOF on stdin, cat exits 0, so does the CLI.
    bob_exec.close_stdin();
    let status = bob_exec.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "bob's docker exec after stdin EOF: {status:?}\n--- dockgate log:\n{}",
        logs.text()
    );
}

#[test]
fn revocation_by_atomic_rename_cuts_live_sessions() {
    revoking_alice_cuts_her_live_connections(Rewrite::Atomic);
}

#[test]
fn revocation_by_in_place_overwrite_cuts_live_sessions() {
    revoking_alice_cuts_her_live_connections(Rewrite::InPlace);
}

/// With `--reload-interval 0` a rewritten CRL is not looked at until SIGHUP; then it is, at once.
#[test]
fn sighup_reloads_at_once_and_nothing_else_does_without_polling() {
    let alice = &pki().alice;
    let files = LiveFiles::new();
    let gate = files.gate("0").start();
    assert_cli_works(&gate, alice);

    files.publish_root_crl(2, &[SERIAL_MALLORY, SERIAL_ALICE], Rewrite::Atomic);
    thread::sleep(Duration::from_secs(2));
    assert_cli_works(&gate, alice);
    gate.logs_handle().assert_no_line(
        &["reload"],
        "the gate reloaded without SIGHUP and with --reload-interval 0",
    );

    let sent = Instant::now();
    gate.sighup();
    // Polling is off, so anything within a few seconds is SIGHUP's doing (the 2 s above
    // showed nothing happens without it).
    let within = Duration::from_secs(5);
    gate.wait_for_log(&["SIGHUP: reloading certificates and CRLs"], within);
    gate.wait_for_log(
        &["TLS configuration reloaded (generation 1)"],
        within.saturating_sub(sent.elapsed()),
    );
    eprintln!("reloaded {:?} after SIGHUP", sent.elapsed());
    assert_cli_refused_again(&gate, alice, "certificate revoked");
    gate.wait_for_log(&["CRL updated:", "number 2, 2 revoked"], LOG_WAIT);
}

/// A reload whose read fails once with an I/O error (injected by the debug build's test hook,
/// as EMFILE would) is retried, and the new CRL takes effect within seconds: alice's session
/// is cut and she is refused. It used to be recorded like a broken file and never retried until
/// the files changed again, so a revoked client kept getting in.
#[test]
fn reload_that_cannot_read_its_files_is_retried() {
    let pki = pki();
    let files = LiveFiles::new();
    let gate = files
        .gate("1")
        .env("DOCKGATE_TEST_FAIL_RELOAD_READS", "1")
        .start();
    let container = Docker::direct().run_detached(&["sleep", "600"]);
    let mut alice_exec = Docker::via(&gate, &pki.alice).exec_cat(&container.name);
    echo(&mut alice_exec, "alice before the revocation");

    files.publish_root_crl(2, &[SERIAL_MALLORY, SERIAL_ALICE], Rewrite::Atomic);
    let subject = format!("subject=\"{}\"", pki.alice.subject);
    gate.wait_for_log(
        &["connection cut", &subject, "reason=\"certificate revoked\""],
        Duration::from_secs(8),
    );
    assert_cli_refused_again(&gate, &pki.alice, "certificate revoked");
    let failed = gate.wait_for_log(&["ERROR", "reload failed (attempt 1)"], LOG_WAIT);
    assert!(
        failed.contains("cannot read") && failed.contains("retrying in 1s"),
        "{failed}"
    );
    let logs = gate.logs_handle();
    let failed_at = logs.text().find("reload failed (attempt 1)").unwrap();
    let reloaded_at = logs
        .text()
        .find("TLS configuration reloaded (generation 1)")
        .unwrap();
    assert!(failed_at < reloaded_at, "{}", logs.text());
}

/// A client certificate that expires while its session is open: the session is cut within a
/// couple of seconds of notAfter, by itself (no file changes, no reload), and logged with the
/// reason. It used to stay open until some unrelated reload re-verified it.
#[test]
fn session_is_cut_when_its_certificate_expires() {
    let gate = LiveFiles::new().gate("0").start();
    let container = Docker::direct().run_detached(&["sleep", "600"]);
    // Issued once the gate and the container are up, so a slow start cannot eat its life.
    let dora = short_lived_client("dora", 20);
    let mut exec = Docker::via_cert_dir(&gate, &dora.0).exec_cat(&container.name);
    echo(&mut exec, "dora while valid");
    let until_expiry = dora.1.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(
        until_expiry > Duration::from_secs(2),
        "the certificate expired before the session was open; make it live longer"
    );

    let line = gate.wait_for_log(
        &[
            "connection cut",
            "subject=\"CN=dora\"",
            "reason=\"certificate expired\"",
        ],
        until_expiry + Duration::from_secs(5),
    );
    let late = SystemTime::now().duration_since(dora.1).unwrap_or_default();
    assert!(
        SystemTime::now() > dora.1,
        "cut before the certificate expired: {line}"
    );
    eprintln!("cut {late:?} after notAfter");
    assert!(
        exec.wait_exit(Duration::from_secs(10)).is_some(),
        "dora's docker exec still running after her connection was cut\n{}",
        gate.logs()
    );
    gate.logs_handle().assert_no_line(
        &["TLS configuration reloaded"],
        "a reload, which the expiry cut does not need",
    );
}

/// A DOCKER_CERT_PATH for `name`, from the root CA, valid from a minute ago until
/// `valid_for_secs` from now; and its notAfter.
fn short_lived_client(name: &str, valid_for_secs: u64) -> (std::path::PathBuf, SystemTime) {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SerialNumber};
    let now = unix_now();
    let at = |secs: u64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(secs);
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.serial_number = Some(SerialNumber::from_slice(&[0x7e, 0x11, 0x0b]));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = at(now - 60);
    params.not_after = at(now + valid_for_secs);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &pki().root_issuer).unwrap();
    let dir = crate::common::util::fresh_dir(name);
    std::fs::write(dir.join("ca.pem"), std::fs::read(&pki().root_ca).unwrap()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    (dir, UNIX_EPOCH + Duration::from_secs(now + valid_for_secs))
}
