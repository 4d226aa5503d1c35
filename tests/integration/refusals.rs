//! Clients the gate must refuse during the TLS handshake, before anything reaches Docker.

use crate::common::expect::{
    any_request_logged, assert_cli_refused, assert_cli_refused_with, assert_cli_works,
    assert_raw_refused, LOG_WAIT,
};
use crate::common::{pki, Docker, Gate};

#[test]
fn revoked_client_is_refused_and_nothing_is_forwarded() {
    let gate = Gate::standard();
    let mallory = &pki().mallory;
    let line = assert_cli_refused(&gate, mallory, "certificate revoked");
    assert!(
        line.contains(&format!("subject=\"{}\"", mallory.subject)),
        "{line}"
    );
    assert!(
        line.contains(&format!("serial={}", mallory.serial_hex)),
        "{line}"
    );
    // A request of alice's, logged after mallory's refusal: had anything of mallory's been
    // forwarded, its request line would be in the log before this one.
    assert_cli_works(&gate, &pki().alice);
    gate.wait_for_log(&[" request peer=", "subject=\"CN=alice"], LOG_WAIT);
    let mallory_requests = gate.logs_handle().lines_with(&[
        "request",
        "path=",
        &format!("serial={}", mallory.serial_hex),
    ]);
    assert!(
        mallory_requests.is_empty(),
        "a request was forwarded for mallory: {mallory_requests:#?}"
    );
}

#[test]
fn client_without_certificate_is_refused() {
    let gate = Gate::standard();
    // Without cert.pem the CLI still connects, with no client certificate.
    assert_cli_refused_with(&gate, &pki().no_cert_dir, "no client certificate");
    assert_raw_refused(&gate, None, "no client certificate");
    assert!(!any_request_logged(&gate), "{}", gate.logs());
}

#[test]
fn client_from_unrelated_ca_is_refused() {
    let gate = Gate::standard();
    let stranger = &pki().stranger;
    // Go's TLS client only sends a certificate whose issuer is among the CA names the server
    // advertises, so the CLI may send none at all: either refusal reason is right for it.
    Docker::via(&gate, stranger).fails(&["version"]);
    let line = gate.wait_for_log(&["handshake refused"], LOG_WAIT);
    assert!(
        line.contains("reason=\"unknown issuer\"")
            || line.contains("reason=\"no client certificate\""),
        "{line}"
    );
    // The raw client sends it regardless.
    let gate = Gate::standard();
    assert_raw_refused(&gate, Some(stranger), "unknown issuer");
}

#[test]
fn expired_client_is_refused() {
    let gate = Gate::standard();
    assert_cli_refused(&gate, &pki().expired, "certificate expired");
    assert!(!any_request_logged(&gate), "{}", gate.logs());
}

#[test]
fn server_auth_only_client_is_refused() {
    let gate = Gate::standard();
    assert_cli_refused(&gate, &pki().serveronly, "wrong key usage");
    assert!(!any_request_logged(&gate), "{}", gate.logs());
}

#[test]
fn revoked_client_refused_over_raw_tls_too() {
    let gate = Gate::standard();
    let mallory = &pki().mallory;
    let line = assert_raw_refused(&gate, Some(mallory), "certificate revoked");
    assert!(
        line.contains(&format!("serial={}", mallory.serial_hex)),
        "{line}"
    );
}
