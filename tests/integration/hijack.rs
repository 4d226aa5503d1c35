//! A hand-driven attach session over TLS: both ways a client may end its stdin (bare TCP FIN,
//! or TLS close_notify alone) must reach the container as EOF while its output keeps flowing.

use crate::common::tls::RawTls;
use crate::common::util::unique_name;
use crate::common::{pki, Container, Gate, TEST_IMAGE};

enum HalfClose {
    Fin,
    CloseNotify,
}

/// `request` with a JSON body on `conn`; returns (status, body).
fn call(conn: &mut RawTls, method: &str, path: &str, json: &str) -> (u16, Vec<u8>) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    );
    conn.send(request.as_bytes()).unwrap();
    let (status, _head, body) = conn.read_response();
    (status, body)
}

/// Creates a container running `cat; sleep 0.2; echo after-eof` with stdin-once, attaches with
/// `Upgrade: tcp`, starts it, sends a line, ends stdin as `how` says, and expects the echo,
/// then `after-eof` (written only after stdin ended, so the way back must still be open), then
/// the end of the stream.
fn attach_echo_then_eof(how: HalfClose) {
    let gate = Gate::standard();
    let alice = &pki().alice;
    let name = unique_name("hj");
    let _container = Container::named(name.clone());
    let mut api = RawTls::connect(gate.port, Some(alice));
    let create = format!(
        r#"{{"Image":"{TEST_IMAGE}","Cmd":["sh","-c","cat; sleep 0.2; echo after-eof"],"OpenStdin":true,"StdinOnce":true,"AttachStdin":true,"AttachStdout":true,"AttachStderr":true}}"#
    );
    let (status, body) = call(
        &mut api,
        "POST",
        &format!("/v1.41/containers/create?name={name}"),
        &create,
    );
    assert_eq!(status, 201, "create: {}", String::from_utf8_lossy(&body));

    let mut session = RawTls::connect(gate.port, Some(alice));
    session
        .send(
            format!(
                "POST /v1.41/containers/{name}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n\
                 Host: localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let (status, head) = session.read_head();
    assert_eq!(status, 101, "attach: {head}\n{}", gate.logs());

    let (status, body) = call(
        &mut api,
        "POST",
        &format!("/v1.41/containers/{name}/start"),
        "",
    );
    assert_eq!(status, 204, "start: {}", String::from_utf8_lossy(&body));

    session.send(b"hello through the gate\n").unwrap();
    match how {
        HalfClose::Fin => session.half_close_fin(),
        HalfClose::CloseNotify => session.half_close_notify(),
    }
    // cat sees EOF, the shell prints after-eof and exits, dockerd ends the stream, the gate
    // closes: read_to_close returns.
    let out = session.read_to_close();
    assert!(
        out.text().contains("hello through the gate") && out.text().contains("after-eof"),
        "output {:?} (error {:?})\n--- dockgate log:\n{}",
        out.text(),
        out.error,
        gate.logs()
    );
}

#[test]
fn attach_stdin_ended_by_tcp_fin() {
    attach_echo_then_eof(HalfClose::Fin);
}

#[test]
fn attach_stdin_ended_by_close_notify() {
    attach_echo_then_eof(HalfClose::CloseNotify);
}
