//! The request and response loops over a real TLS client connection and a socket-pair
//! upstream standing in for Docker.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::request::{Dial, RequestSide};
use super::CLIENT_BUFFER;
use crate::audit::Client;
use crate::enforce::PolicyInForce;
use crate::http::inbound::Inbound;
use crate::registry::{Activity, LiveConn, Registry};
use crate::tls::handshake::testing::{pair, TestClient};
use crate::tls::stream;
use crate::upstream::{UpstreamConn, UpstreamRead, UpstreamWrite};

/// Hands out prepared upstream connections, counting the dials.
struct Prepared {
    conns: Mutex<Vec<UpstreamConn>>,
    dials: AtomicUsize,
}

impl Dial for Prepared {
    fn dial(&self) -> io::Result<UpstreamConn> {
        self.dials.fetch_add(1, Ordering::SeqCst);
        self.conns
            .lock()
            .unwrap()
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::ConnectionRefused, "refused"))
    }
    fn describe(&self) -> String {
        "unix:///test.sock".into()
    }
}

fn prepared(conns: Vec<UpstreamConn>) -> &'static Prepared {
    Box::leak(Box::new(Prepared {
        conns: Mutex::new(conns),
        dials: AtomicUsize::new(0),
    }))
}

/// A session served on its own thread; the test holds the client and the live entry.
struct Running {
    client: TestClient,
    live: Arc<LiveConn>,
    registry: &'static Registry,
    thread: thread::JoinHandle<()>,
}

fn serve(dial: &'static dyn Dial) -> Running {
    serve_with(dial, Box::leak(Box::new(PolicyInForce::none())))
}

fn serve_with(dial: &'static dyn Dial, policy: &'static PolicyInForce) -> Running {
    let (client, server) = pair("tester");
    let registry: &'static Registry = Box::leak(Box::default());
    let (reader, writer, control) = stream::split(server.tls, server.tcp).unwrap();
    let who = Arc::new(Client {
        peer: "127.0.0.1:1".parse().unwrap(),
        identity: server.identity,
    });
    let registration = registry.register(who.clone(), server.chain, control.clone());
    let live = registration.conn.clone();
    let session_live = live.clone();
    let thread = thread::spawn(move || {
        let _registration = registration;
        let inbound = Inbound::new(reader, CLIENT_BUFFER);
        RequestSide::new(who, session_live, inbound, writer, control, dial, policy).run();
    });
    Running {
        client,
        live,
        registry,
        thread,
    }
}

/// Reads one HTTP message head (and its Content-Length body) from `src`.
fn read_message(src: &mut impl Read) -> Option<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match src.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(head).unwrap();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    src.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Reads one of the gate's own answers: its head and its JSON `message`.
fn read_json_answer(client: &mut TestClient) -> (String, String) {
    let (head, body) = read_message(client).expect("an answer before the connection ended");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let message = json["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON message: {json}"))
        .to_string();
    (head, message)
}

fn respond(docker: &mut UnixStream, status: &str, body: &str) {
    write!(
        docker,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
}

/// The client's stream ends (EOF or error) within `limit`.
fn ends_within(client: &mut TestClient, limit: Duration) -> bool {
    client.sock.set_read_timeout(Some(limit)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match client.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return started.elapsed() < limit,
        }
    }
}

#[test]
fn keep_alive_requests_are_forwarded_in_order_over_one_lazily_opened_upstream() {
    let (gate_end, mut docker) = UnixStream::pair().unwrap();
    let dial = prepared(vec![gate_end.into()]);
    let mut running = serve(dial);
    assert_eq!(
        dial.dials.load(Ordering::SeqCst),
        0,
        "no request, no upstream"
    );

    running
        .client
        .write_all(b"POST /v1.41/containers/c1/start HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let (head, body) = read_message(&mut docker).unwrap();
    assert!(
        head.starts_with("POST /v1.41/containers/c1/start HTTP/1.1\r\n"),
        "{head}"
    );
    assert_eq!(body, b"hello", "the body is forwarded byte for byte");
    match running.live.activity() {
        Activity::Request(doing) => {
            assert_eq!(doing.method, "POST");
            assert!(matches!(
                doing.endpoint,
                Some(crate::api::Endpoint::Container { ref id, .. }) if id == "c1"
            ));
        }
        other => panic!("activity {other:?}"),
    }
    respond(&mut docker, "204 No Content", "");
    let (head, _) = read_message(&mut running.client).unwrap();
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    // Answered: idle again, so a policy reload does not judge the connection by a request
    // that is over. (The response side records it right after writing the answer.)
    wait_for_activity(&running.live, |a| *a == Activity::Idle);

    running
        .client
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
        .unwrap();
    let (head, _) = read_message(&mut docker).unwrap();
    assert!(head.starts_with("GET /_ping"), "{head}");
    respond(&mut docker, "200 OK", "OK");
    let (head, body) = read_message(&mut running.client).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"OK");
    assert_eq!(
        dial.dials.load(Ordering::SeqCst),
        1,
        "one upstream for both"
    );

    // The client closes: Docker's side is closed for writing, the session ends.
    running.client.conn.send_close_notify();
    running.client.flush().unwrap();
    running
        .client
        .sock
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    let mut rest = Vec::new();
    docker.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    running.thread.join().unwrap();
    assert_eq!(running.registry.len(), 0);
}

#[test]
fn a_malformed_first_request_is_answered_400_without_opening_the_upstream() {
    let dial = prepared(vec![]);
    let mut running = serve(dial);
    running
        .client
        .write_all(b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let (head, message) = read_json_answer(&mut running.client);
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert!(head.contains("Connection: close"), "{head}");
    assert_eq!(
        message,
        "dockgate: bad request: both Content-Length and Transfer-Encoding"
    );
    assert!(ends_within(&mut running.client, Duration::from_secs(10)));
    running.thread.join().unwrap();
    assert_eq!(dial.dials.load(Ordering::SeqCst), 0);
}

#[test]
fn an_unreachable_docker_is_a_502_through_the_same_queue() {
    let dial = prepared(vec![]);
    let mut running = serve(dial);
    running
        .client
        .write_all(b"GET /_ping HTTP/1.1\r\n\r\n")
        .unwrap();
    let (head, message) = read_json_answer(&mut running.client);
    assert!(head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{head}");
    assert_eq!(
        message,
        "dockgate: cannot reach Docker at unix:///test.sock: refused"
    );
    assert!(ends_within(&mut running.client, Duration::from_secs(10)));
    running.thread.join().unwrap();
}

#[test]
fn a_response_that_switches_to_a_raw_stream_turns_both_sides_into_a_copy() {
    let (gate_end, mut docker) = UnixStream::pair().unwrap();
    let dial = prepared(vec![gate_end.into()]);
    let mut running = serve(dial);
    running
        .client
        .write_all(b"POST /v1.41/exec/e1/st%61rt HTTP/1.1\r\nContent-Length: 2\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n{}")
        .unwrap();
    let (head, _) = read_message(&mut docker).unwrap();
    assert!(head.starts_with("POST /v1.41/exec/e1/st%61rt"), "{head}");
    docker
        .write_all(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        .unwrap();
    let (head, _) = read_message(&mut running.client).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(matches!(running.live.activity(), Activity::Session(_)));
    // Raw bytes both ways, not parsed as HTTP.
    running.client.write_all(b"not http\n").unwrap();
    let mut got = [0u8; 9];
    docker.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"not http\n");
    docker.write_all(b"output").unwrap();
    let mut got = [0u8; 6];
    running.client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"output");
    // Docker ends the stream: the client sees the end.
    docker.shutdown(std::net::Shutdown::Both).unwrap();
    assert!(ends_within(&mut running.client, Duration::from_secs(10)));
    running
        .client
        .sock
        .shutdown(std::net::Shutdown::Both)
        .unwrap();
    running.thread.join().unwrap();
}

/// An upstream writer that panics on its second write (the second request's head), standing
/// for any bug on the request side.
struct PanicsOnSecondWrite {
    socket: UnixStream,
    writes: usize,
}

impl Write for PanicsOnSecondWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        if self.writes == 2 {
            panic!("a bug on the request side");
        }
        self.socket.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl UpstreamWrite for PanicsOnSecondWrite {
    fn close_write(&mut self) -> io::Result<()> {
        self.socket.shutdown(std::net::Shutdown::Write)
    }
    fn abort(&mut self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

#[test]
fn a_panicking_request_side_ends_the_response_side_and_the_connection() {
    let (gate_end, mut docker) = UnixStream::pair().unwrap();
    let writer = PanicsOnSecondWrite {
        socket: gate_end.try_clone().unwrap(),
        writes: 0,
    };
    let conn = UpstreamConn {
        reader: UpstreamConn::from(gate_end).reader,
        writer: Box::new(writer),
    };
    let dial = prepared(vec![conn]);
    let mut running = serve(dial);
    running
        .client
        .write_all(b"GET /_ping HTTP/1.1\r\n\r\n")
        .unwrap();
    read_message(&mut docker).unwrap();
    respond(&mut docker, "200 OK", "OK");
    read_message(&mut running.client).unwrap();
    // The response side is now asleep in a read from Docker; the request side panics.
    running
        .client
        .write_all(b"GET /_ping HTTP/1.1\r\n\r\n")
        .unwrap();
    assert!(running.thread.join().is_err(), "the request side panicked");
    assert!(
        ends_within(&mut running.client, Duration::from_secs(10)),
        "the client's connection ends"
    );
    // The response side let go of the connection: only the test's handle is left.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&running.live) > 1 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        Arc::strong_count(&running.live),
        1,
        "the response side ended"
    );
    assert_eq!(running.registry.len(), 0);
}

/// An upstream reader that panics on its first read, standing for any bug on the response side.
struct PanicsOnRead(UnixStream);

impl Read for PanicsOnRead {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        panic!("a bug on the response side");
    }
}

impl UpstreamRead for PanicsOnRead {
    fn abort(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// The response side runs on a pooled thread, which the request side cannot join: it learns
/// of the panic from the closed channel its result would have come through.
#[test]
fn a_panicking_response_side_ends_the_request_side_and_the_connection() {
    let (gate_end, mut docker) = UnixStream::pair().unwrap();
    let conn = UpstreamConn {
        reader: Box::new(PanicsOnRead(gate_end.try_clone().unwrap())),
        writer: UpstreamConn::from(gate_end).writer,
    };
    let dial = prepared(vec![conn]);
    let mut running = serve(dial);
    running
        .client
        .write_all(b"GET /_ping HTTP/1.1\r\n\r\n")
        .unwrap();
    // The response side reads (and panics) as soon as the upstream is open, maybe before the
    // request was written: Docker sees the request or only the end of the connection.
    let _ = read_message(&mut docker);
    assert!(
        ends_within(&mut running.client, Duration::from_secs(10)),
        "the client's connection ends"
    );
    running.thread.join().expect("the request side ends");
    assert_eq!(Arc::strong_count(&running.live), 1, "both sides ended");
    assert_eq!(running.registry.len(), 0);
}

#[test]
fn the_registry_cuts_a_live_connection_once_and_says_what_it_was_doing() {
    let (gate_end, mut docker) = UnixStream::pair().unwrap();
    let dial = prepared(vec![gate_end.into()]);
    let mut running = serve(dial);
    running
        .client
        .write_all(b"GET /v1.41/events HTTP/1.1\r\n\r\n")
        .unwrap();
    read_message(&mut docker).unwrap();
    docker
        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    read_message(&mut running.client).unwrap();
    assert_eq!(
        running.live.activity().to_string(),
        "request GET /v1.41/events"
    );
    assert_eq!(running.registry.cut_all("certificate revoked"), 1);
    assert_eq!(
        running.registry.cut_all("again"),
        0,
        "a cut connection is cut once"
    );
    assert!(ends_within(&mut running.client, Duration::from_secs(10)));
    running.thread.join().unwrap();
    assert_eq!(running.registry.len(), 0);
}

fn scratch_dir() -> std::path::PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dockgate-conn-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ci_policy(dir: &std::path::Path) -> &'static PolicyInForce {
    let path = dir.join("policy.toml");
    std::fs::write(&path, ci_policy_text("")).unwrap();
    Box::leak(Box::new(PolicyInForce::load(&path).unwrap()))
}

/// The tester is `ci`, which may read and use containers; `more` is appended (further tables).
fn ci_policy_text(more: &str) -> String {
    format!(
        r#"
mode = "enforce"
default_role = "none"
[[identity]]
cn = ["tester"]
role = "ci"
[role.ci]
allow = ["read", "containers"]
{more}
"#
    )
}

/// Waits up to 10 s for the connection's activity to satisfy `wanted`.
fn wait_for_activity(live: &LiveConn, wanted: impl Fn(&Activity) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wanted(&live.activity()) {
        assert!(Instant::now() < deadline, "activity: {}", live.activity());
        thread::sleep(Duration::from_millis(5));
    }
}

fn create(body: &str) -> String {
    format!(
        "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_denied_request_never_reaches_docker_and_the_connection_goes_on() {
    let dir = scratch_dir();
    let (gate_end, mut docker) = UnixStream::pair().unwrap();
    // A denial while nothing is outstanding drops the idle upstream connection (to wake the
    // response side, see `exchanges`): the request after it opens a second one.
    let (second_gate_end, mut second_docker) = UnixStream::pair().unwrap();
    let dial = prepared(vec![second_gate_end.into(), gate_end.into()]);
    let mut running = serve_with(dial, ci_policy(&dir));
    let privileged = r#"{"Image":"busybox","HostConfig":{"Privileged":true}}"#;
    running
        .client
        .write_all(create(privileged).as_bytes())
        .unwrap();
    let (head, message) = read_json_answer(&mut running.client);
    assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
    assert!(!head.contains("Connection: close"), "{head}");
    assert!(
        message.starts_with("dockgate: access denied: CN=tester (role ci) may not")
            && message.contains("Privileged"),
        "{message}"
    );
    assert_eq!(
        dial.dials.load(Ordering::SeqCst),
        0,
        "nothing went to Docker"
    );

    // The same connection carries the next request, and the allowed create goes through
    // byte for byte.
    let plain = r#"{"Image":"busybox","Cmd":["true"]}"#;
    running.client.write_all(create(plain).as_bytes()).unwrap();
    let (head, body) = read_message(&mut docker).unwrap();
    assert!(
        head.starts_with("POST /v1.41/containers/create HTTP/1.1\r\n"),
        "{head}"
    );
    assert_eq!(body, plain.as_bytes());
    respond(&mut docker, "201 Created", r#"{"Id":"c1"}"#);
    let (head, _) = read_message(&mut running.client).unwrap();
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");

    // A denied request whose body was not needed: the body is dropped, the connection stays.
    running
        .client
        .write_all(
            b"POST /v1.41/images/create?fromImage=x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        )
        .unwrap();
    let (head, _) = read_message(&mut running.client).unwrap();
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    running
        .client
        .write_all(b"GET /_ping HTTP/1.1\r\n\r\n")
        .unwrap();
    // The ping goes on the first connection when the response side had not yet counted the
    // 201 as answered at the time of the denial (the connection then has an exchange
    // outstanding and stays), else on a second one, the first being closed: both are right.
    for upstream in [&docker, &second_docker] {
        upstream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }
    let (on_first, (head, _)) = match read_message(&mut docker) {
        Some(ping) => (true, ping),
        None => (false, read_message(&mut second_docker).unwrap()),
    };
    assert!(head.starts_with("GET /_ping"), "{head}");
    let upstream = if on_first {
        &mut docker
    } else {
        &mut second_docker
    };
    respond(upstream, "200 OK", "OK");
    let (head, _) = read_message(&mut running.client).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        dial.dials.load(Ordering::SeqCst),
        if on_first { 1 } else { 2 }
    );
    // The client leaves; whatever the first connection carried after the create's answer
    // (nothing, or the ping just read) is all it carried.
    running
        .client
        .sock
        .shutdown(std::net::Shutdown::Both)
        .unwrap();
    let mut rest = Vec::new();
    docker
        .read_to_end(&mut rest)
        .expect("the gate closes its upstream connection once the client is gone");
    assert!(rest.is_empty(), "the denied pull never reached Docker");
}

#[test]
fn an_inspected_body_over_the_limit_is_413_and_closes() {
    let dir = scratch_dir();
    let dial = prepared(vec![]);
    let mut running = serve_with(dial, ci_policy(&dir));
    running
        .client
        .write_all(b"POST /v1.41/containers/create HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{")
        .unwrap();
    let (head, _) = read_message(&mut running.client).unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("Connection: close"), "{head}");
    assert!(ends_within(&mut running.client, Duration::from_secs(10)));
    assert_eq!(dial.dials.load(Ordering::SeqCst), 0);
}

#[test]
fn a_malformed_chunked_body_the_policy_reads_is_400_and_closes_without_reaching_docker() {
    let head = "POST /v1.41/containers/create HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let json = r#"{"Image":"busybox"}"#;
    let long_size_line = format!("1{}\r\n", ";x".repeat(3000));
    let cases = [
        (
            "zz\r\n{json}\r\n0\r\n\r\n".to_string(),
            "invalid chunk size",
        ),
        (
            format!("{:x}\r\n{json}XX\r\n0\r\n\r\n", json.len()),
            "chunk data longer than its size",
        ),
        // The CRLF after the data is missing: the next size line runs into the data.
        (
            format!("{:x}\r\n{json}0\r\n\r\n", json.len() - 2),
            "chunk data longer than its size",
        ),
        (
            format!("{long_size_line}{{\r\n0\r\n\r\n"),
            "chunk size line too long",
        ),
        ("11111111111111111\r\n".to_string(), "invalid chunk size"),
    ];
    for (body, why) in cases {
        let dir = scratch_dir();
        let dial = prepared(vec![]);
        let mut running = serve_with(dial, ci_policy(&dir));
        let body = body.replace("{json}", json);
        running
            .client
            .write_all(format!("{head}{body}").as_bytes())
            .unwrap();
        // Bounded, so a gate that drops the connection without an answer fails the test.
        running
            .client
            .sock
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (answer, message) = read_message(&mut running.client)
            .unwrap_or_else(|| panic!("{why}: no answer before the connection ended"));
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{why}: {answer}"
        );
        assert!(answer.contains("Connection: close"), "{why}: {answer}");
        let message: serde_json::Value = serde_json::from_slice(&message).unwrap();
        assert_eq!(
            message["message"],
            format!("dockgate: bad request: malformed chunked body: {why}")
        );
        assert!(
            ends_within(&mut running.client, Duration::from_secs(10)),
            "{why}"
        );
        running.thread.join().unwrap();
        assert_eq!(
            dial.dials.load(Ordering::SeqCst),
            0,
            "{why}: Docker was dialled"
        );
    }
}

#[test]
fn a_denied_request_whose_unread_chunked_body_is_malformed_is_400_and_closes() {
    let dir = scratch_dir();
    let dial = prepared(vec![]);
    let mut running = serve_with(dial, ci_policy(&dir));
    running
        .client
        .write_all(b"POST /v1.41/images/create?fromImage=x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        .unwrap();
    running
        .client
        .sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (head, message) = read_json_answer(&mut running.client);
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert!(head.contains("Connection: close"), "{head}");
    assert_eq!(
        message,
        "dockgate: bad request: malformed chunked body: invalid chunk size"
    );
    assert!(ends_within(&mut running.client, Duration::from_secs(10)));
    assert_eq!(dial.dials.load(Ordering::SeqCst), 0);
}

/// A create whose body is still arriving when the policy is reloaded is decided by the new
/// policy: the reload's re-check cannot judge it (its body is not there yet), so the request
/// side takes the policy in force once the body is complete.
#[test]
fn a_body_still_arriving_at_a_policy_reload_is_decided_by_the_new_policy() {
    let dir = scratch_dir();
    let path = dir.join("policy.toml");
    let policy_text = |privileged: bool| {
        ci_policy_text(&format!("[role.ci.containers]\nprivileged = {privileged}"))
    };
    std::fs::write(&path, policy_text(true)).unwrap();
    let policy: &'static PolicyInForce = Box::leak(Box::new(PolicyInForce::load(&path).unwrap()));
    let dial = prepared(vec![]);
    let mut running = serve_with(dial, policy);
    let body = r#"{"Image":"busybox","HostConfig":{"Privileged":true}}"#;
    let request = create(body);
    let (first, rest) = request.split_at(request.len() - 10);
    running.client.write_all(first.as_bytes()).unwrap();
    running.client.flush().unwrap();
    // The request side has the head and waits for the rest of the body.
    wait_for_activity(&running.live, |a| matches!(a, Activity::Request(_)));
    thread::sleep(Duration::from_millis(100));

    std::fs::write(&path, policy_text(false)).unwrap();
    policy.reload_if_changed(running.registry, true);
    running.client.write_all(rest.as_bytes()).unwrap();
    let (head, message) = read_json_answer(&mut running.client);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(message.contains("Privileged"), "{message}");
    assert_eq!(
        dial.dials.load(Ordering::SeqCst),
        0,
        "nothing went to Docker"
    );
}
