//! A reload that fails keeps the previous configuration in force: one `reload failed` line
//! names the file, mallory (revoked in the CRL in force) stays refused and alice still gets in
//! on new connections.

use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::common::expect::{assert_cli_refused_again, assert_cli_works, LOG_WAIT};
use crate::common::files::{write_atomically, LiveFiles, Rewrite};
use crate::common::gate::Gate;
use crate::common::pki;
use crate::common::pki::{root_crl_pem, sign_crl, SERIAL_ALICE, SERIAL_MALLORY};

/// How long the watcher (`--reload-interval 1`) may take to notice a change and log.
const NOTICE_WITHIN: Duration = Duration::from_secs(8);
const THIRTY_DAYS: i64 = 30 * 86_400;

/// A gate on fresh [`LiveFiles`], with mallory refused and alice let in.
fn started() -> (LiveFiles, Gate) {
    let files = LiveFiles::new();
    let gate = files.gate("1").start();
    assert_cli_works(&gate, &pki().alice);
    assert_cli_refused_again(&gate, &pki().mallory, "certificate revoked");
    (files, gate)
}

/// Waits for the `reload failed` line, checks it names `file` and says `problem`, and checks
/// that the previous configuration is still the one in force. Returns the line.
fn assert_reload_failed_keeping_previous(gate: &Gate, file: &Path, problem: &str) -> String {
    let line = gate.wait_for_log(
        &[
            "ERROR",
            "reload failed, the previous configuration stays in force",
        ],
        NOTICE_WITHIN,
    );
    assert!(
        line.contains(&file.display().to_string()) && line.contains(problem),
        "the error should name {} and say {problem:?}: {line}",
        file.display()
    );
    gate.logs_handle().assert_no_line(
        &["TLS configuration reloaded"],
        "a broken file was installed",
    );
    assert_cli_refused_again(gate, &pki().mallory, "certificate revoked");
    assert_cli_works(gate, &pki().alice);
    line
}

/// Half of a valid CRL (one that would revoke alice too). The failure is logged once, not at
/// every interval; a good CRL written afterwards is picked up.
#[test]
fn truncated_crl_keeps_previous_crl() {
    let (files, gate) = started();
    let full = root_crl_pem(2, &[SERIAL_MALLORY, SERIAL_ALICE]);
    write_atomically(&files.root_crl, &full.as_bytes()[..full.len() / 2]);
    let line = assert_reload_failed_keeping_previous(&gate, &files.root_crl, "--crl ");
    eprintln!("{line}");

    // The same broken file is not retried at every interval.
    thread::sleep(Duration::from_millis(2500));
    let failures = gate.logs_handle().lines_with(&["reload failed"]);
    assert_eq!(failures.len(), 1, "{failures:#?}");

    // Fixed: the next good CRL is loaded.
    files.publish_root_crl(3, &[SERIAL_MALLORY], Rewrite::Atomic);
    gate.wait_for_log(
        &["TLS configuration reloaded (generation 1)"],
        NOTICE_WITHIN,
    );
    gate.wait_for_log(&["CRL updated:", "number 3, 1 revoked"], LOG_WAIT);
    assert_cli_refused_again(&gate, &pki().mallory, "certificate revoked");
    assert_cli_works(&gate, &pki().alice);
}

/// A CRL that names the root CA as its issuer but is signed with another key.
#[test]
fn crl_with_forged_signature_keeps_previous_crl() {
    let (files, gate) = started();
    let forged = sign_crl(
        &pki().forged_root_issuer,
        2,
        &[SERIAL_MALLORY, SERIAL_ALICE],
        THIRTY_DAYS,
    );
    write_atomically(&files.root_crl, forged.pem().unwrap().as_bytes());
    let line =
        assert_reload_failed_keeping_previous(&gate, &files.root_crl, "signature does not verify");
    eprintln!("{line}");
}

/// A CRL from a CA that is not in `--tlscacert` at all (the unrelated CA that issued stranger)
/// put where the root CRL was.
#[test]
fn crl_from_other_ca_keeps_previous_crl() {
    let (files, gate) = started();
    let foreign = sign_crl(
        &pki().other_issuer,
        2,
        &[SERIAL_MALLORY, SERIAL_ALICE],
        THIRTY_DAYS,
    );
    write_atomically(&files.root_crl, foreign.pem().unwrap().as_bytes());
    let line = assert_reload_failed_keeping_previous(&gate, &files.root_crl, "--crl ");
    eprintln!("{line}");
}

/// Rollback of a `--crl` file: CRL number 0, which revokes nobody, written after number 1,
/// which revokes mallory. Refused (a lower cRLNumber than the one in force), so mallory stays
/// out; it used to be installed like any new CRL.
#[test]
fn older_crl_number_keeps_previous_crl() {
    let (files, gate) = started();
    files.publish_root_crl(0, &[], Rewrite::Atomic);
    let line = assert_reload_failed_keeping_previous(&gate, &files.root_crl, "--crl ");
    assert!(
        line.contains("number 0, lower than number 1") && line.contains("rollback"),
        "{line}"
    );
}

/// `--tlskey` replaced by a key that does not belong to `--tlscert`.
#[test]
fn mismatched_server_key_keeps_previous_certificate() {
    let (files, gate) = started();
    let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    write_atomically(&files.server_key, other_key.as_bytes());
    let line = assert_reload_failed_keeping_previous(
        &gate,
        &files.server_key,
        &format!(
            "--tlskey {}: does not match the certificate in --tlscert {}",
            files.server_key.display(),
            files.server_cert.display()
        ),
    );
    eprintln!("{line}");
}

/// With `--crl-cache`, the newest CRL number accepted from a `--crl` file survives a restart:
/// starting again with an older CRL in that file is refused (exit 2, naming the numbers), and
/// the newer one starts.
#[test]
fn older_crl_file_after_a_restart_is_refused_with_crl_cache() {
    let files = LiveFiles::new();
    let cache = crate::common::util::fresh_dir("crl-history");
    let gate = |files: &LiveFiles| {
        files
            .gate("0")
            .flags(&["--crl-cache", cache.to_str().unwrap()])
    };
    files.publish_root_crl(5, &[SERIAL_MALLORY, SERIAL_ALICE], Rewrite::Atomic);
    let mut first = gate(&files).start();
    assert_cli_refused_again(&first, &pki().alice, "certificate revoked");
    first.kill();

    files.publish_root_crl(3, &[SERIAL_MALLORY], Rewrite::Atomic);
    let out = gate(&files).run_to_exit();
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains(&files.root_crl_name())
            && out.stderr.contains("number 3, lower than number 5"),
        "{}",
        out.stderr
    );

    files.publish_root_crl(6, &[SERIAL_MALLORY, SERIAL_ALICE], Rewrite::Atomic);
    let again = gate(&files).start();
    assert_cli_refused_again(&again, &pki().alice, "certificate revoked");
}
