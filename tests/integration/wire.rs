//! Wire details the docker CLI does not exercise on its own: TLS resumption is refused (it
//! would skip the CRL check), registry credentials never reach the log, the legacy raw `200`
//! answer to an exec start without `Upgrade`, and Docker failing before or during a response
//! (a fake upstream on a unix socket, for what dockerd cannot be made to do).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, StreamOwned};

use crate::common::pki::Identity;
use crate::common::tls::{exchange, RawTls};
use crate::common::util::{fresh_dir, unique_name};
use crate::common::{pki, Container, Gate, GateBuilder, TEST_IMAGE};

/// A client config for `id` that keeps a session cache and offers only `version`.
fn resuming_client(
    id: &Identity,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki().root_der.clone()))
        .unwrap();
    let chain = id
        .chain_der
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_der.clone()));
    let mut config = ClientConfig::builder_with_protocol_versions(&[version])
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.resumption = Resumption::in_memory_sessions(16);
    Arc::new(config)
}

/// The gate picks AES-128-GCM, as dockerd's own TLS port does, although rustls clients (and the
/// docker CLI) list AES-256-GCM first: its SHA-384 has no hardware path.
#[test]
fn the_gate_picks_aes_128_gcm_like_dockerd() {
    let gate = GateBuilder::standard().start();
    for (version, expected) in [
        (
            &rustls::version::TLS13,
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
        ),
        (
            &rustls::version::TLS12,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
    ] {
        let config = resuming_client(&pki().alice, version);
        assert_ne!(
            config.crypto_provider().cipher_suites[0].suite(),
            expected,
            "the client must prefer another suite for this test to mean anything"
        );
        let server = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        let conn = ClientConnection::new(config, server).unwrap();
        let sock = TcpStream::connect(("127.0.0.1", gate.port)).unwrap();
        let mut tls = StreamOwned::new(conn, sock);
        tls.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response);
        assert!(response.starts_with(b"HTTP/1.1 200"), "{response:?}");
        let suite = tls.conn.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(suite, expected, "{version:?}");
    }
}

/// One `/_ping` on a new connection; returns how the handshake went.
fn ping(port: u16, config: &Arc<ClientConfig>) -> HandshakeKind {
    let server = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let conn = ClientConnection::new(config.clone(), server).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // `Connection: close` must end the exchange: the gate once waited for another request here.
    sock.set_read_timeout(Some(crate::common::tls::READ_TIMEOUT))
        .unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    tls.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    let read = tls.read_to_end(&mut response);
    assert!(
        !matches!(&read, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the gate did not close after Connection: close"
    );
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    tls.conn.handshake_kind().expect("handshake done")
}

#[test]
fn tls_sessions_are_never_resumed() {
    let gate = Gate::standard();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = resuming_client(&pki().alice, version);
        assert_eq!(ping(gate.port, &config), HandshakeKind::Full);
        // The client offers the session it just had; a full handshake means the gate declined,
        // so the certificate (and the CRL) is checked again.
        assert_eq!(
            ping(gate.port, &config),
            HandshakeKind::Full,
            "{version:?} resumed"
        );
    }
}

#[test]
fn registry_credentials_are_not_logged() {
    let gate = Gate::standard();
    let secret = "eyJ1c2VybmFtZSI6ImFsaWNlIiwicGFzc3dvcmQiOiJodW50ZXIyIn0K";
    let request = format!(
        "GET /v1.41/info HTTP/1.1\r\nHost: x\r\nX-Registry-Auth: {secret}\r\nX-Registry-Config: {secret}\r\nConnection: close\r\n\r\n"
    );
    let out = exchange(gate.port, Some(&pki().alice), request.as_bytes());
    assert_eq!(out.status(), Some(200), "{}", out.text());
    gate.wait_for_log(
        &["request", "/v1.41/info", "status=200"],
        crate::common::expect::LOG_WAIT,
    );
    assert!(
        !gate.logs().contains(secret),
        "credentials in the log:\n{}",
        gate.logs()
    );
}

#[test]
fn exec_start_without_upgrade_gets_the_legacy_raw_stream() {
    let gate = Gate::standard();
    let alice = &pki().alice;
    let name = unique_name("legacy");
    let container = Container::named(name.clone());
    let mut api = RawTls::connect(gate.port, Some(alice));
    let post = |api: &mut RawTls, path: &str, json: &str| {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        );
        api.send(request.as_bytes()).unwrap();
        let (status, _, body) = api.read_response();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let create = format!(r#"{{"Image":"{TEST_IMAGE}","Cmd":["sleep","60"]}}"#);
    let (status, body) = post(
        &mut api,
        &format!("/v1.41/containers/create?name={name}"),
        &create,
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(&mut api, &format!("/v1.41/containers/{name}/start"), "");
    assert_eq!(status, 204, "{body}");
    let exec = r#"{"AttachStdin":true,"AttachStdout":true,"Cmd":["cat"]}"#;
    let (status, body) = post(&mut api, &format!("/v1.41/containers/{name}/exec"), exec);
    assert_eq!(status, 201, "{body}");
    let id: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = id["Id"].as_str().unwrap();

    // No Upgrade header: dockerd answers `200 OK` with a raw-stream content type and no
    // framing, and the connection is a raw stream from then on.
    let mut session = RawTls::connect(gate.port, Some(alice));
    let start = r#"{"Detach":false,"Tty":true}"#;
    session
        .send(
            format!(
                "POST /v1.41/exec/{id}/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{start}",
                start.len()
            )
            .as_bytes(),
        )
        .unwrap();
    let (status, head) = session.read_head();
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("application/vnd.docker.raw-stream"),
        "{head}"
    );
    session.send(b"legacy hijack works\n").unwrap();
    session.half_close_notify();
    let out = session.read_to_close();
    assert!(
        out.text().contains("legacy hijack works"),
        "{:?}\n{}",
        out.text(),
        gate.logs()
    );
    gate.wait_for_log(&["session end", "/exec/"], crate::common::expect::LOG_WAIT);
    drop(container);
}

/// A fake Docker on a unix socket: for each connection, reads the request head and then does
/// what `behaviour` says with the raw stream.
fn fake_docker(behaviour: fn(&mut std::os::unix::net::UnixStream)) -> String {
    let dir = fresh_dir("fake-docker");
    let path = dir.join("docker.sock");
    let listener = UnixListener::bind(&path).unwrap();
    thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            behaviour(&mut conn);
        }
    });
    format!("unix://{}", path.display())
}

/// A gate in front of a fake Docker that behaves as `behaviour` says; returns the gate and what
/// one `GET /v1.41/info` through it got back.
fn info_through_fake_docker(
    behaviour: fn(&mut std::os::unix::net::UnixStream),
) -> (Gate, crate::common::tls::Outcome) {
    let gate = GateBuilder::standard()
        .upstream(&fake_docker(behaviour))
        .start();
    let request = b"GET /v1.41/info HTTP/1.1\r\nHost: x\r\n\r\n";
    let out = exchange(gate.port, Some(&pki().alice), request);
    (gate, out)
}

#[test]
fn docker_closing_before_answering_gives_502() {
    let (gate, out) = info_through_fake_docker(|_conn| {});
    assert_eq!(out.status(), Some(502), "{}", out.text());
    assert!(
        out.text()
            .contains(r#"{"message":"dockgate: Docker closed the connection without answering"}"#),
        "{}",
        out.text()
    );
    gate.wait_for_log(
        &["request", "/v1.41/info", "status=502"],
        crate::common::expect::LOG_WAIT,
    );
}

#[test]
fn docker_dying_inside_a_response_head_gives_502() {
    let (_gate, out) = info_through_fake_docker(|conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Ty");
    });
    assert_eq!(out.status(), Some(502), "{}", out.text());
    assert!(
        out.text().contains("dockgate: invalid answer from Docker"),
        "{}",
        out.text()
    );
}

#[test]
fn docker_dying_inside_a_body_closes_without_completing_it() {
    let (_gate, out) = info_through_fake_docker(|conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    });
    // The head was already relayed, so no 502 can follow: the client sees the body cut short
    // (3 of 10 bytes) and the connection closed.
    assert_eq!(out.status(), Some(200), "{}", out.text());
    assert!(out.text().ends_with("\r\n\r\nabc"), "{:?}", out.text());
}

#[test]
fn a_trickling_handshake_is_dropped_after_the_handshake_deadline() {
    let gate = Gate::standard();
    let mut sock = TcpStream::connect(("127.0.0.1", gate.port)).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // A record header announcing a 12 KB ClientHello, then one byte every 2 s: each read
    // finishes well within any per-read timeout, only a whole-handshake deadline ends it.
    sock.write_all(&[0x16, 0x03, 0x01, 0x30, 0x00]).unwrap();
    let started = std::time::Instant::now();
    let trickler = {
        let mut sock = sock.try_clone().unwrap();
        thread::spawn(move || {
            while sock.write_all(&[0x01]).is_ok() && started.elapsed().as_secs() < 25 {
                thread::sleep(std::time::Duration::from_secs(2));
            }
        })
    };
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest);
    let elapsed = started.elapsed();
    assert!(elapsed.as_secs() < 20, "connection held for {elapsed:?}");
    gate.wait_for_log(
        &["handshake refused", "timed out"],
        crate::common::expect::LOG_WAIT,
    );
    let _ = sock.shutdown(std::net::Shutdown::Both);
    trickler.join().unwrap();
}

#[test]
fn garbage_after_the_gate_closed_its_side_is_harmless() {
    let gate = Gate::standard();
    let config = resuming_client(&pki().alice, &rustls::version::TLS13);
    let server = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let conn = ClientConnection::new(config, server).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", gate.port)).unwrap();
    sock.set_read_timeout(Some(crate::common::tls::READ_TIMEOUT))
        .unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    // A refused request: the gate answers 400, sends close_notify and lingers reading.
    tls.write_all(b"garbage\r\n\r\n").unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    assert!(
        response.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    // Now a record that cannot be decrypted (application data, bad tag).
    let mut bogus = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    bogus.extend([0xAA; 32]);
    let _ = tls.sock.write_all(&bogus);
    let _ = tls.sock.shutdown(std::net::Shutdown::Write);
    thread::sleep(std::time::Duration::from_millis(300));
    assert!(!gate.logs().contains("panicked"), "{}", gate.logs());
    // The gate still serves.
    let out = exchange(
        gate.port,
        Some(&pki().alice),
        b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(out.status(), Some(200), "{}", out.text());
}

/// An upstream that answers and then neither reads nor closes (Docker behind a proxy that does
/// not pass on half-closes, a named pipe): when the client ends its side with nothing
/// outstanding, the gate must still close the connection instead of waiting on Docker forever.
#[test]
fn client_close_ends_the_connection_even_if_docker_never_closes() {
    let gate = GateBuilder::standard()
        .upstream(&fake_docker(|conn| {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
            thread::sleep(Duration::from_secs(30));
        }))
        .start();
    let mut conn = RawTls::connect(gate.port, Some(&pki().alice));
    conn.ping("first request");
    conn.half_close_notify();
    let out = conn.read_to_close(); // panics if the connection stays open for 10 s
    assert!(out.bytes.is_empty(), "{:?}", out.text());
}
