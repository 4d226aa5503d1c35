//! Connection limits (issue #15): past `--max-connections-per-client` (default 256) a verified
//! client gets 503 with a JSON message and the gate logs one WARN line; other clients are
//! unaffected; a closed connection frees its place.

use std::time::Duration;

use crate::common::cli::Docker;
use crate::common::expect::{assert_cli_works, LOG_WAIT};
use crate::common::tls::{exchange, RawTls};
use crate::common::util::poll;
use crate::common::{pki, GateBuilder};

const PING: &[u8] = b"GET /_ping HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// The default limit: 256 open connections of alice are served, the 257th gets 503, bob still
/// gets in, and once one of alice's connections closes she gets in again.
#[test]
fn the_257th_connection_of_one_client_gets_503_and_others_still_get_in() {
    let gate = GateBuilder::standard().start();
    let alice = &pki().alice;
    let mut open: Vec<RawTls> = (0..256)
        .map(|i| {
            let mut conn = RawTls::connect(gate.port, Some(alice));
            conn.ping(&format!("alice's connection {}", i + 1));
            conn
        })
        .collect();

    let refused = exchange(gate.port, Some(alice), PING);
    assert_eq!(refused.status(), Some(503), "{}", refused.text());
    let text = refused.text();
    let body = &text[text.find("\r\n\r\n").expect("a response head") + 4..];
    let json: serde_json::Value = serde_json::from_str(body.trim()).expect("a JSON body");
    let message = json["message"].as_str().expect("a message");
    assert!(
        message.contains("too many connections from this client certificate (256 open)"),
        "{message}"
    );
    let subject = format!("subject=\"{}\"", alice.subject);
    let warning = gate.wait_for_log(&["WARN", "connection refused", &subject], LOG_WAIT);
    assert!(
        warning.contains("--max-connections-per-client reached"),
        "{warning}"
    );
    assert_eq!(
        gate.logs_handle().lines_with(&["connection refused"]).len(),
        1,
        "one WARN line per refused connection"
    );
    // The docker CLI shows the message.
    let out = Docker::via(&gate, alice).fails(&["version"]);
    assert!(
        out.stderr.contains("too many connections"),
        "{}",
        out.stderr
    );

    // Another client is unaffected.
    assert_cli_works(&gate, &pki().bob);

    // A closed connection gives its place back.
    drop(open.pop());
    let served = poll(Duration::from_secs(5), || {
        let mut conn = RawTls::connect(gate.port, Some(alice));
        conn.send(PING).ok()?;
        (conn.read_response().0 == 200).then_some(conn)
    });
    assert!(
        served.is_some(),
        "alice not served after closing a connection"
    );
    drop(open);
}

/// `--max-connections` counts every client together.
#[test]
fn max_connections_counts_all_clients() {
    let gate = GateBuilder::standard()
        .flags(&["--max-connections", "2"])
        .start();
    let mut alice = RawTls::connect(gate.port, Some(&pki().alice));
    alice.ping("alice");
    let mut bob = RawTls::connect(gate.port, Some(&pki().bob));
    bob.ping("bob");
    let refused = exchange(gate.port, Some(&pki().carol), PING);
    assert_eq!(refused.status(), Some(503), "{}", refused.text());
    assert!(
        refused.text().contains("too many connections (2 open)"),
        "{}",
        refused.text()
    );
    gate.wait_for_log(
        &["connection refused", "--max-connections reached"],
        LOG_WAIT,
    );
}

#[test]
fn a_zero_limit_is_a_configuration_error() {
    let out = GateBuilder::standard()
        .flags(&["--max-connections-per-client", "0"])
        .run_to_exit();
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("--max-connections-per-client 0"),
        "{}",
        out.stderr
    );
}
