//! Assertions shared by the test modules: "this client gets through", "this client is refused".

use std::path::Path;
use std::time::Duration;

use super::cli::Docker;
use super::gate::Gate;
use super::pki::Identity;
use super::tls::exchange;

pub const LOG_WAIT: Duration = Duration::from_secs(5);
const PING: &[u8] = b"GET /_ping HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// `docker version` as `id` through `gate` succeeds, shows the Server section and is logged
/// as a request with `id`'s subject and serial.
pub fn assert_cli_works(gate: &Gate, id: &Identity) {
    let out = Docker::via(gate, id).ok(&["version"]);
    assert!(
        out.contains("Server:"),
        "no Server section for {}:\n{out}",
        id.name
    );
    let serial = format!("serial={}", id.serial_hex);
    gate.wait_for_log(&["request", &id.subject, &serial, "status=200"], LOG_WAIT);
}

/// `docker version` as `id` through `gate` fails and the gate logs `handshake refused` with
/// `reason="<reason>"`. Returns that log line.
pub fn assert_cli_refused(gate: &Gate, id: &Identity, reason: &str) -> String {
    assert_cli_refused_with(gate, &id.dir, reason)
}

/// `docker version` as `id` fails, and the gate logs one more `handshake refused` line for
/// `id` with `reason="<reason>"` than before (so an earlier refusal does not count).
/// Returns that line.
pub fn assert_cli_refused_again(gate: &Gate, id: &Identity, reason: &str) -> String {
    let subject = format!("subject=\"{}\"", id.subject);
    let reason = format!("reason=\"{reason}\"");
    let needles = ["handshake refused", subject.as_str(), reason.as_str()];
    let before = gate.logs_handle().lines_with(&needles).len();
    Docker::via(gate, id).fails(&["version"]);
    let lines = gate
        .logs_handle()
        .wait_for_count(&needles, before + 1, LOG_WAIT);
    lines[before].clone()
}

/// The same with DOCKER_CERT_PATH=`cert_dir`.
pub fn assert_cli_refused_with(gate: &Gate, cert_dir: &Path, reason: &str) -> String {
    Docker::via_cert_dir(gate, cert_dir).fails(&["version"]);
    refusal_line(gate, reason)
}

/// The same with the raw rustls client, which presents `id`'s chain (or none) whoever issued
/// it: no HTTP response may come back.
pub fn assert_raw_refused(gate: &Gate, id: Option<&Identity>, reason: &str) -> String {
    let out = exchange(gate.port, id, PING);
    assert!(
        out.status().is_none(),
        "refused client got an HTTP response: {:?}\n--- dockgate log:\n{}",
        out.text(),
        gate.logs()
    );
    refusal_line(gate, reason)
}

fn refusal_line(gate: &Gate, reason: &str) -> String {
    gate.wait_for_log(
        &["handshake refused", &format!("reason=\"{reason}\"")],
        LOG_WAIT,
    )
}

/// True if the gate logged any forwarded request (a `request` line with a path).
pub fn any_request_logged(gate: &Gate) -> bool {
    gate.logs()
        .lines()
        .any(|l| l.contains("request") && l.contains("path="))
}
