//! A renewed server certificate (same CA, new serial, new key) written over `--tlscert` and
//! `--tlskey` is served to new connections within the reload interval, without a restart.

use std::time::{Duration, Instant};

use crate::common::expect::{assert_cli_works, LOG_WAIT};
use crate::common::files::{write_atomically, LiveFiles};
use crate::common::pki::{issue_server_cert, serial_hex, SERIAL_SERVER_CERT};
use crate::common::tls::RawTls;
use crate::common::{pki, Gate};

const RENEWED_SERIAL: &[u8] = &[0x11, 0x11, 0x09];

/// The serial (lowercase hex) of the certificate the gate presents to a new connection.
fn served_serial(gate: &Gate) -> String {
    let der = RawTls::connect(gate.port, Some(&pki().alice)).server_certificate();
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).expect("parse the served certificate");
    serial_hex(cert.raw_serial())
}

#[test]
fn renewed_server_certificate_is_served_without_restart() {
    let files = LiveFiles::new();
    let mut gate = files.gate("1").start();
    let pid = gate.pid();
    assert_eq!(served_serial(&gate), serial_hex(SERIAL_SERVER_CERT));

    // Key first, then certificate: the watcher may see the new key with the old certificate
    // in between (a failed reload), then both.
    let (cert, key) = issue_server_cert(RENEWED_SERIAL);
    let written = Instant::now();
    write_atomically(&files.server_key, key.as_bytes());
    write_atomically(&files.server_cert, cert.as_bytes());

    let renewed = serial_hex(RENEWED_SERIAL);
    let line = gate.wait_for_log(
        &[
            "server certificate now",
            "CN=dockgate test server",
            &format!("serial {renewed}"),
        ],
        Duration::from_secs(8),
    );
    gate.wait_for_log(&["TLS configuration reloaded"], LOG_WAIT);
    eprintln!(
        "{line} ({:?} after the files were written)",
        written.elapsed()
    );

    assert_eq!(served_serial(&gate), renewed, "log:\n{}", gate.logs());
    // The docker CLI verifies the new certificate against the same CA.
    assert_cli_works(&gate, &pki().alice);

    // Same process, still running, started listening once.
    assert!(gate.is_running(), "{}", gate.logs());
    assert_eq!(gate.pid(), pid);
    assert_eq!(gate.logs_handle().lines_with(&["listening on"]).len(), 1);
}
