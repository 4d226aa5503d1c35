//! dockerd unreachable: the gate answers 502 with a message the docker CLI shows.

use crate::common::tls::RawTls;
use crate::common::{pki, Docker, GateBuilder};

fn missing_socket() -> String {
    format!(
        "unix:///tmp/dockgate-it-nonexistent-{}.sock",
        std::process::id()
    )
}

#[test]
fn cli_shows_cannot_reach_docker() {
    let gate = GateBuilder::standard().upstream(&missing_socket()).start();
    let out = Docker::via(&gate, &pki().alice).fails(&["version"]);
    assert!(
        out.stderr.contains("dockgate: cannot reach Docker"),
        "stderr:\n{}",
        out.stderr
    );
}

/// Sends `GET /_ping` through a gate whose upstream is `upstream`; expects 502 and a JSON
/// message naming the upstream.
fn assert_502_names(upstream: &str) {
    let gate = GateBuilder::standard().upstream(upstream).start();
    let mut conn = RawTls::connect(gate.port, Some(&pki().alice));
    conn.send(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (status, head, body) = conn.read_response();
    assert_eq!(status, 502, "{head}");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "502 body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    let message = json["message"].as_str().unwrap_or_default();
    let expected = format!("dockgate: cannot reach Docker at {upstream}");
    assert!(
        message.starts_with(&expected),
        "message {message:?}, expected prefix {expected:?}"
    );
}

#[test]
fn unix_upstream_missing_gives_502_json() {
    assert_502_names(&missing_socket());
}

#[test]
fn tcp_upstream_refusing_gives_502_json() {
    let closed = crate::common::util::ClosedPort::new();
    assert_502_names(&format!("tcp://127.0.0.1:{}", closed.port));
}
