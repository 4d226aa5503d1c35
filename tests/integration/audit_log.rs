//! The audit log as an attacker tests it: hijacked sessions behind percent-encoded paths,
//! transfers cut by the client half-way, and certificates made to flood the log.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::expect::LOG_WAIT;
use crate::common::pki::Identity;
use crate::common::tls::{exchange, RawTls};
use crate::common::util::{fresh_dir, poll, run_with_timeout, unique_name, write_random_file};
use crate::common::{pki, Container, Docker, Gate, TEST_IMAGE};

/// `POST path` with a JSON body on `conn`; returns (status, body).
fn post_json(conn: &mut RawTls, path: &str, json: &str) -> (u16, String) {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    );
    conn.send(request.as_bytes()).unwrap();
    let (status, _, body) = conn.read_response();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Reads from `session` until what came back contains `wanted`; returns all of it.
fn read_until_contains(session: &mut RawTls, wanted: &str, gate: &Gate) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(wanted) {
        match session.read_some(&mut buf) {
            Ok(0) | Err(_) => panic!(
                "stream ended before {wanted:?}; got {:?}\n--- dockgate log:\n{}",
                String::from_utf8_lossy(&seen),
                gate.logs()
            ),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// The numeric value of `key=N` in a text log line.
fn log_number(line: &str, key: &str) -> u64 {
    let start = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 2;
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("{key} is not a number in {line}"))
}

/// No `request` record (the one written when a plain exchange completes) mentions `needle`.
fn assert_no_plain_request_line(gate: &Gate, needle: &str) {
    let plain: Vec<String> = gate
        .logs()
        .lines()
        .filter(|l| l.contains(" request peer=") && l.contains(needle))
        .map(str::to_owned)
        .collect();
    assert!(plain.is_empty(), "logged as a plain request: {plain:?}");
}

/// How a test spells its exec start request.
struct ExecStart {
    /// The path with `{id}` for the exec ID, as sent.
    raw_path: &'static str,
    /// The path dockerd routes on.
    decoded_path: &'static str,
    /// `HTTP/1.1` or `HTTP/1.0`.
    version: &'static str,
    /// Extra header lines, each ending in CRLF.
    headers: &'static str,
    /// The status dockerd answers with (101 with `Upgrade`, the legacy raw 200 without).
    status: u16,
}

/// `docker exec` started as an attacker would: the stream must work, the session must be logged
/// at its start and end under the path dockerd routed on (with the path as sent next to it), and
/// the bytes the client sends afterwards (which look like HTTP) must reach the process, not be
/// parsed as requests.
fn exec_start_is_a_logged_session(how: ExecStart) {
    let gate = Gate::standard();
    let alice = &pki().alice;
    let container = Docker::direct().run_detached(&["sleep", "600"]);
    let mut api = RawTls::connect(gate.port, Some(alice));
    let (status, body) = post_json(
        &mut api,
        &format!("/v1.41/containers/{}/exec", container.name),
        r#"{"AttachStdin":true,"AttachStdout":true,"Cmd":["cat"]}"#,
    );
    assert_eq!(status, 201, "{body}");
    let id: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = id["Id"].as_str().unwrap().to_string();

    let raw_path = how.raw_path.replace("{id}", &id);
    let decoded_path = how.decoded_path.replace("{id}", &id);
    let mut session = RawTls::connect(gate.port, Some(alice));
    let start = r#"{"Detach":false,"Tty":false}"#;
    session
        .send(
            format!(
                "POST {raw_path} {}\r\nHost: x\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{start}",
                how.version,
                how.headers,
                start.len()
            )
            .as_bytes(),
        )
        .unwrap();
    let (status, head) = session.read_head();
    assert_eq!(status, how.status, "{head}\n{}", gate.logs());
    let started = gate.wait_for_log(&["session start", &id], LOG_WAIT);
    assert!(
        started.contains(&format!(" path={decoded_path} "))
            && started.contains(&format!(" raw_path={raw_path} ")),
        "{started}"
    );

    // Stdin that looks like a request: it is the process's input, nothing else.
    session
        .send(b"GET /v1.41/info HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_until_contains(&mut session, "GET /v1.41/info", &gate);
    session.half_close_notify();
    let _ = session.read_to_close();
    let ended = gate.wait_for_log(&["session end", &id], LOG_WAIT);
    assert!(ended.contains(&format!(" path={decoded_path} ")), "{ended}");
    assert!(log_number(&ended, "bytes_in") >= 35, "{ended}");
    assert_no_plain_request_line(&gate, &id);
    assert_no_plain_request_line(&gate, "/v1.41/info");
}

/// `st%61rt` and no `Upgrade` header: dockerd answers the legacy raw `200`.
#[test]
fn encoded_exec_start_is_logged_as_a_session_with_the_decoded_path() {
    exec_start_is_a_logged_session(ExecStart {
        raw_path: "/v1.41/exec/{id}/st%61rt",
        decoded_path: "/v1.41/exec/{id}/start",
        version: "HTTP/1.1",
        headers: "",
        status: 200,
    });
}

/// HTTP/1.0, `%65xec`, and `Connection: Upgrade` without an `Upgrade` header (legacy `200`).
#[test]
fn encoded_exec_start_over_http_1_0_is_logged_as_a_session() {
    exec_start_is_a_logged_session(ExecStart {
        raw_path: "/v1.41/%65xec/{id}/start",
        decoded_path: "/v1.41/exec/{id}/start",
        version: "HTTP/1.0",
        headers: "Connection: Upgrade\r\n",
        status: 200,
    });
}

/// No version prefix, `%2F` before `start`, and a lowercase `upgrade: tcp` (dockerd answers 101).
#[test]
fn encoded_exec_start_with_upgrade_is_logged_with_the_decoded_path() {
    exec_start_is_a_logged_session(ExecStart {
        raw_path: "/exec/{id}%2Fstart",
        decoded_path: "/exec/{id}/start",
        version: "HTTP/1.1",
        headers: "connection: upgrade\r\nupgrade: tcp\r\n",
        status: 101,
    });
}

/// `attach` with `Upgrade: tcp` under `/v1.41/%63ontainers/NAME%2F%61ttach`: logged under
/// the decoded path (what dockerd routed on), with the path as sent next to it.
#[test]
fn encoded_attach_is_logged_as_a_session_with_the_decoded_path() {
    let gate = Gate::standard();
    let alice = &pki().alice;
    let name = unique_name("enc");
    Docker::direct().ok(&["run", "-d", "-i", "--name", &name, TEST_IMAGE, "cat"]);
    let _container = Container::named(name.clone());

    let raw_path = format!("/v1.41/%63ontainers/{name}%2F%61ttach?stream=1&stdin=1&stdout=1");
    let mut session = RawTls::connect(gate.port, Some(alice));
    session
        .send(
            format!(
                "POST {raw_path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let (status, head) = session.read_head();
    assert_eq!(status, 101, "{head}\n{}", gate.logs());
    session.send(b"typed through an encoded attach\n").unwrap();
    read_until_contains(&mut session, "typed through an encoded attach", &gate);
    drop(session);

    let decoded = format!(" path=\"/v1.41/containers/{name}/attach?stream=1&stdin=1&stdout=1\"");
    let raw = format!(" raw_path=\"{raw_path}\"");
    let started = gate.wait_for_log(&["session start", &name], LOG_WAIT);
    assert!(
        started.contains(&decoded) && started.contains(&raw),
        "{started}"
    );
    let ended = gate.wait_for_log(&["session end", &name], LOG_WAIT);
    assert!(ended.contains(&decoded), "{ended}");
    assert!(log_number(&ended, "bytes_in") >= 32, "{ended}");
}

/// A client that resets its connection in the middle of a large `docker cp` download: the
/// record says how much reached it, and that the client aborted.
#[test]
fn aborted_download_is_logged_with_the_bytes_sent_and_client_aborted() {
    const SIZE: u64 = 32 << 20;
    let gate = Gate::standard();
    let container = Docker::direct().run_detached(&["sleep", "600"]);
    let big = fresh_dir("abort-down").join("big");
    write_random_file(&big, SIZE);
    let target = format!("{}:/big", container.name);
    Docker::direct().ok(&["cp", big.to_str().unwrap(), &target]);

    let mut conn = RawTls::connect(gate.port, Some(&pki().alice));
    let path = format!("/v1.41/containers/{}/archive?path=/big", container.name);
    conn.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let (status, head) = conn.read_head();
    assert_eq!(status, 200, "{head}");
    let mut received = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while received < 2 << 20 {
        let n = conn.read_some(&mut buf).expect("download");
        assert!(n > 0, "download ended early");
        received += n as u64;
    }
    conn.reset();

    // The download was in the log while it ran, and is there with what moved when it ends.
    gate.wait_for_log(&["request start", &path, "status=200"], LOG_WAIT);
    let line = gate.wait_for_log(&[" request peer=", &path], Duration::from_secs(20));
    assert!(line.contains(" outcome=client_aborted"), "{line}");
    assert!(line.contains(" status=200"), "{line}");
    let bytes_out = log_number(&line, "bytes_out");
    // What the client read (less chunk framing) reached it; the rest of the 32 MiB did not.
    assert!(
        bytes_out >= received - 64 * 1024 && bytes_out < SIZE,
        "{received} bytes received: {line}"
    );
}

/// A `docker cp` upload (chunked tar) cut by a reset after 1.5 MiB: dockerd got (and
/// extracted) those bytes, so the record says so, and that the client aborted, rather than a
/// 502 the gate never sent to anyone.
#[test]
fn aborted_upload_is_logged_with_the_bytes_forwarded_and_client_aborted() {
    let gate = Gate::standard();
    let container = Docker::direct().run_detached(&["sleep", "600"]);
    let dir = fresh_dir("abort-up");
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    write_random_file(&files.join("first"), 1 << 20);
    write_random_file(&files.join("second"), 1 << 20);
    let tar = dir.join("upload.tar");
    let out = run_with_timeout(
        Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&files)
            .args(["first", "second"]),
        None,
        Duration::from_secs(30),
    );
    assert!(out.success(), "tar: {}", out.stderr);
    let tar = std::fs::read(&tar).unwrap();
    let sent = 3 << 19; // 1.5 MiB: all of `first`, part of `second`

    let merged_dir = Docker::direct().ok(&[
        "inspect",
        "-f",
        "{{.GraphDriver.Data.MergedDir}}",
        &container.name,
    ]);
    let merged_dir = merged_dir.trim();
    assert!(merged_dir.starts_with('/'), "{merged_dir}");

    let mut conn = RawTls::connect(gate.port, Some(&pki().alice));
    let path = format!("/v1.41/containers/{}/archive?path=/", container.name);
    let mut request = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n{sent:x}\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&tar[..sent]);
    request.extend_from_slice(b"\r\n");
    conn.send(&request).unwrap();
    // Wait until dockerd has extracted every byte sent (the tar's two 512-byte headers, all of
    // `first`, the start of `second`) before the reset: a reset discards what the gate has
    // not read yet, and a fixed sleep is too short for a loaded dockerd. The file is looked at
    // from the host (dockerd locks the container while it extracts, so `docker exec` waits).
    let partial = (sent - 1024 - (1 << 20)) as u64;
    let second = Path::new(&merged_dir).join("second");
    let extracted = poll(Duration::from_secs(30), || {
        let size = std::fs::metadata(&second).map(|m| m.len()).unwrap_or(0);
        (size == partial).then_some(())
    });
    assert!(
        extracted.is_some(),
        "dockerd never held {partial} bytes of {second:?}"
    );
    conn.reset();

    gate.wait_for_log(&["request start", &path], LOG_WAIT);
    let line = gate.wait_for_log(&[" request peer=", &path], Duration::from_secs(20));
    assert!(line.contains(" outcome=client_aborted"), "{line}");
    assert!(!line.contains("status=502"), "{line}");
    assert_eq!(log_number(&line, "bytes_in"), sent as u64, "{line}");
}

/// A self-signed certificate of 32 KB (a 16,000-character CN, as subject and as issuer): it is
/// refused, and its refusal line carries the subject as `claimed_subject`, capped, instead of
/// 16 KB per attempt.
#[test]
fn huge_claimed_subject_is_capped_in_the_refusal_line() {
    let gate = Gate::standard();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "A".repeat(16_000));
    let cert = params.self_signed(&key).unwrap();
    let huge = Identity {
        name: "huge",
        dir: PathBuf::new(),
        chain_der: vec![cert.der().to_vec()],
        key_der: key.serialize_der(),
        subject: String::new(),
        serial_hex: String::new(),
    };
    let _ = exchange(
        gate.port,
        Some(&huge),
        b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let line = gate.wait_for_log(&["handshake refused", "AAAAAAAA"], LOG_WAIT);
    assert!(line.contains(" claimed_subject=\"CN=AAAA"), "{line:.300}");
    assert!(
        line.len() < 4096,
        "refusal line of {} bytes: {line:.300}...",
        line.len()
    );
}

/// Build-time variables often carry tokens: `buildargs` values never reach the log (the build
/// itself gets them).
#[test]
fn buildargs_values_are_not_logged() {
    let gate = Gate::standard();
    let dir = fresh_dir("buildargs");
    let context = dir.join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {TEST_IMAGE}\nARG TOKEN\nRUN echo \"token length ${{#TOKEN}}\"\n"),
    )
    .unwrap();
    let tar = dir.join("context.tar");
    let out = run_with_timeout(
        Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&context)
            .arg("Dockerfile"),
        None,
        Duration::from_secs(30),
    );
    assert!(out.success(), "tar: {}", out.stderr);
    let tar = std::fs::read(&tar).unwrap();
    let secret = "s3cr3t-build-token";
    let tag = unique_name("buildargs");
    let mut request = format!(
        "POST /v1.41/build?t={tag}&rm=1&buildargs=%7B%22TOKEN%22%3A%22{secret}%22%7D HTTP/1.1\r\n\
         Host: x\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        tar.len()
    )
    .into_bytes();
    request.extend_from_slice(&tar);
    let out = exchange(gate.port, Some(&pki().alice), &request);
    let _ = Docker::direct().run(&["rmi", "-f", &tag]);
    assert_eq!(out.status(), Some(200), "{}", out.text());
    assert!(
        out.text().contains("token length 18"),
        "the build did not get its argument: {}",
        out.text()
    );
    let line = gate.wait_for_log(&[" request peer=", "/v1.41/build?"], LOG_WAIT);
    assert!(line.contains("buildargs=REDACTED"), "{line}");
    assert!(
        !gate.logs().contains(secret),
        "build argument in the log:\n{}",
        gate.logs()
    );
}
