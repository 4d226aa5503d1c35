//! Named-pipe end-to-end tests: dockgate.exe and a fake Docker engine (windows/fake-engine), both
//! Windows programs under wine, with the gate's `--upstream npipe://./pipe/NAME`; driven over TLS
//! from Linux (wine shares the loopback network) with the test PKI's client certificates.
//!
//! Ignored by default: `make test-windows` builds the Windows binaries, sets up the wine prefix
//! and runs these with `--ignored`, passing DOCKGATE_EXE, FAKE_ENGINE_EXE and WINE_RUN.

#[allow(unused_imports)]
#[path = "../integration/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use common::pki::{pki, Identity};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

fn env_path(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run these tests with `make test-windows`"))
}

/// A Linux path as the Windows programs see it under wine (drive Z: is /).
fn win_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// A Windows program under wine, its stdout and stderr collected; killed on drop.
struct WineProc {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl WineProc {
    fn start(exe: &str, args: &[String]) -> WineProc {
        let mut child = Command::new(env_path("WINE_RUN"))
            .arg(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe} under wine: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        WineProc { child, output }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output contains `needle`; returns the output.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.output();
            if out.contains(needle) {
                return out;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                thread::sleep(Duration::from_millis(200));
                panic!("exited ({status}) before {needle:?}:\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {timeout:?}:\n{out}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WineProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A unique pipe name for this test run.
fn pipe_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "dockgate-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn start_engine(name: &str, extra: &[&str]) -> WineProc {
    let mut args = vec![format!(r"\\.\pipe\{name}")];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut engine = WineProc::start(&env_path("FAKE_ENGINE_EXE"), &args);
    engine.wait_for("ready", START_TIMEOUT);
    engine
}

/// dockgate.exe with the standard PKI and CRLs, upstream the pipe `name`; returns it and its port.
fn start_gate(name: &str) -> (WineProc, u16) {
    let pki = pki();
    start_gate_with_identity(
        name,
        &[
            ("--tlscert", &pki.server_cert),
            ("--tlskey", &pki.server_key),
        ],
    )
}

/// The same with the server identity given by `identity` (flag, file) pairs.
fn start_gate_with_identity(name: &str, identity: &[(&str, &Path)]) -> (WineProc, u16) {
    let pki = pki();
    let mut args = Vec::new();
    let common = [
        ("--tlscacert", pki.root_ca.as_path()),
        ("--crl", pki.root_crl.as_path()),
        ("--crl", pki.intermediate_crl.as_path()),
    ];
    for (flag, path) in common.iter().chain(identity) {
        args.push(flag.to_string());
        args.push(win_path(path));
    }
    args.extend([
        "--upstream".to_string(),
        format!("npipe://./pipe/{name}"),
        "--listen".to_string(),
        "127.0.0.1:0".to_string(),
    ]);
    let mut gate = WineProc::start(&env_path("DOCKGATE_EXE"), &args);
    let log = gate.wait_for("listening on 127.0.0.1:", START_TIMEOUT);
    let rest = &log[log.find("listening on 127.0.0.1:").unwrap() + 23..];
    let port = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    (gate, port)
}

/// A TLS client driven by hand (non-blocking socket), so it can send and receive at once.
struct Client {
    conn: ClientConnection,
    sock: TcpStream,
    /// Plaintext received and not yet taken.
    received: Vec<u8>,
    /// The gate ended its output (close_notify or FIN).
    eof: bool,
}

impl Client {
    fn connect(port: u16, id: &Identity) -> std::io::Result<Client> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(pki().root_der.clone()))
            .unwrap();
        let config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                id.chain_der
                    .iter()
                    .map(|d| CertificateDer::from(d.clone()))
                    .collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_der.clone())),
            )
            .unwrap();
        let server = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        let conn = ClientConnection::new(Arc::new(config), server).unwrap();
        let sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_nonblocking(true)?;
        Ok(Client {
            conn,
            sock,
            received: Vec::new(),
            eof: false,
        })
    }

    /// Sends `out` (then a close_notify if `close`), receiving meanwhile, until `done` says the
    /// received bytes are enough (or the gate ended its output and `done` accepts that too).
    fn pump(
        &mut self,
        mut out: &[u8],
        close: bool,
        mut done: impl FnMut(&[u8], bool) -> bool,
    ) -> std::io::Result<()> {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut closed = false;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let mut progress = false;
            if !out.is_empty() && !self.conn.wants_write() {
                let n = self.conn.writer().write(&out[..out.len().min(64 * 1024)])?;
                out = &out[n..];
                progress |= n > 0;
            }
            if out.is_empty() && close && !closed {
                self.conn.send_close_notify();
                closed = true;
            }
            while self.conn.wants_write() {
                match self.conn.write_tls(&mut self.sock) {
                    Ok(n) => progress |= n > 0,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            if !self.eof {
                match self.conn.read_tls(&mut self.sock) {
                    Ok(0) => {
                        self.eof = true;
                        progress = true;
                    }
                    Ok(_) => {
                        self.conn
                            .process_new_packets()
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                loop {
                    match self.conn.reader().read(&mut buf) {
                        Ok(0) => {
                            self.eof = true;
                            break;
                        }
                        Ok(n) => self.received.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                            self.eof = true;
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            let sent_all = out.is_empty() && (!close || closed) && !self.conn.wants_write();
            if sent_all && done(&self.received, self.eof) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::new(
                    ErrorKind::TimedOut,
                    format!(
                        "timed out; {} bytes left to send, received {} bytes: {:?}",
                        out.len(),
                        self.received.len(),
                        String::from_utf8_lossy(&self.received[..self.received.len().min(300)])
                    ),
                ));
            }
            if !progress {
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Sends `request` and returns the response head once it has arrived (what follows stays
    /// in `received`).
    fn request_head(&mut self, request: &str) -> std::io::Result<String> {
        self.pump(request.as_bytes(), false, |r, eof| {
            eof || r.windows(4).any(|w| w == b"\r\n\r\n")
        })?;
        let end = self
            .received
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no response head before EOF"))?;
        let head = String::from_utf8_lossy(&self.received[..end + 4]).into_owned();
        self.received.drain(..end + 4);
        Ok(head)
    }

    /// Reads until the gate ends its output.
    fn read_to_end(&mut self) -> std::io::Result<Vec<u8>> {
        self.pump(&[], false, |_, eof| eof)?;
        Ok(std::mem::take(&mut self.received))
    }
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

const PING: &str = "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n";

fn upgrade(path: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
}

/// Reads one Content-Length response.
fn ping(client: &mut Client) -> (u16, String) {
    let head = client.request_head(PING).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no Content-Length: {head}"));
    client
        .pump(&[], false, |r, eof| eof || r.len() >= len)
        .unwrap();
    let body: Vec<u8> = client
        .received
        .drain(..len.min(client.received.len()))
        .collect();
    (status(&head), String::from_utf8_lossy(&body).into_owned())
}

#[test]
#[ignore = "needs wine and the Windows binaries: make test-windows"]
fn ping_through_the_pipe() {
    let name = pipe_name();
    let engine = start_engine(&name, &[]);
    let (gate, port) = start_gate(&name);
    let mut client = Client::connect(port, &pki().alice).unwrap();
    let (status, body) = ping(&mut client);
    assert_eq!(status, 200, "gate log:\n{}", gate.output());
    assert_eq!(body, "OK");
    // A second request on the same connection reuses the pipe connection.
    assert_eq!(ping(&mut client).0, 200);
    assert!(engine.output().contains("request: GET /_ping"));
}

/// A PKCS#12 server identity, as Windows admins export it (`--tlspfx`), read by dockgate.exe.
#[test]
#[ignore = "needs wine and the Windows binaries: make test-windows"]
fn pfx_identity() {
    let dir = common::util::fresh_dir("win-pfx");
    let (pfx, password) = common::pki::export_server_pfx(&dir, false);
    let name = pipe_name();
    let _engine = start_engine(&name, &[]);
    let (gate, port) = start_gate_with_identity(
        &name,
        &[("--tlspfx", &pfx), ("--tlspfx-password-file", &password)],
    );
    let mut client = Client::connect(port, &pki().alice).unwrap();
    let (status, body) = ping(&mut client);
    assert_eq!(
        (status, body.as_str()),
        (200, "OK"),
        "gate log:\n{}",
        gate.output()
    );
}

#[test]
#[ignore = "needs wine and the Windows binaries: make test-windows"]
fn streamed_response_is_relayed_chunk_by_chunk() {
    let name = pipe_name();
    let _engine = start_engine(&name, &[]);
    let (gate, port) = start_gate(&name);
    let mut client = Client::connect(port, &pki().alice).unwrap();
    let head = client
        .request_head("GET /stream?n=4&ms=700 HTTP/1.1\r\nHost: docker\r\n\r\n")
        .unwrap();
    assert_eq!(status(&head), 200, "{head}\ngate log:\n{}", gate.output());
    assert!(head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    let started = Instant::now();
    let mut arrivals = Vec::new();
    for i in 0..4 {
        let needle = format!("chunk {i}\n");
        client
            .pump(&[], false, |r, eof| {
                eof || String::from_utf8_lossy(r).contains(&needle)
            })
            .unwrap();
        assert!(
            String::from_utf8_lossy(&client.received).contains(&needle),
            "chunk {i} missing"
        );
        arrivals.push(started.elapsed());
    }
    client
        .pump(&[], false, |r, _| r.ends_with(b"0\r\n\r\n"))
        .unwrap();
    // The engine spaces chunks 700 ms apart: a relay that buffers would deliver them together.
    assert!(
        arrivals[3] - arrivals[0] >= Duration::from_millis(1500),
        "chunks were not relayed as they came: {arrivals:?}"
    );
}

#[test]
#[ignore = "needs wine and the Windows binaries: make test-windows"]
fn hijacked_echo_half_closes_toward_the_engine() {
    let name = pipe_name();
    let engine = start_engine(&name, &[]);
    let (gate, port) = start_gate(&name);
    let mut client = Client::connect(port, &pki().alice).unwrap();
    let head = client.request_head(&upgrade("/echo")).unwrap();
    assert_eq!(status(&head), 101, "{head}\ngate log:\n{}", gate.output());
    // Our close_notify must reach the engine as a zero-length message (its EOF) while its
    // output keeps flowing: the trailer is written after it saw the end of our input.
    client.pump(b"hello pipe\n", true, |_, _| true).unwrap();
    let rest = client.read_to_end().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "hello pipe\n[engine: input ended]\n"
    );
    assert!(engine.output().contains("echo: input ended after 11 bytes"));
}

#[test]
#[ignore = "needs wine and the Windows binaries: make test-windows"]
fn hijacked_session_engine_ends_first_client_still_sends() {
    let name = pipe_name();
    let mut engine = start_engine(&name, &[]);
    let (gate, port) = start_gate(&name);
    let mut client = Client::connect(port, &pki().alice).unwrap();
    let head = client.request_head(&upgrade("/server-first")).unwrap();
    assert_eq!(status(&head), 101, "{head}\ngate log:\n{}", gate.output());
    // The engine's zero-length message ends our input...
    let got = client.read_to_end().unwrap();
    assert_eq!(String::from_utf8_lossy(&got), "hello\n");
    // ...while our direction stays open.
    client.pump(b"late input\n", true, |_, _| true).unwrap();
    engine.wait_for(
        "server-first: received 11 bytes: late input",
        Duration::from_secs(20),
    );
}

#[test]
#[ignore = "needs wine and the Windows binaries: make test-windows"]
fn sixty_four_mib_each_way_at_once() {
    const SIZE: usize = 64 << 20;
    let name = pipe_name();
    let engine = start_engine(&name, &[]);
    let (gate, port) = start_gate(&name);
    let mut client = Client::connect(port, &pki().alice).unwrap();
    let head = client.request_head(&upgrade("/echo")).unwrap();
    assert_eq!(status(&head), 101, "{head}\ngate log:\n{}", gate.output());
    let mut data = vec![0u8; SIZE];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let started = Instant::now();
    // The engine echoes as it reads, so this only finishes if the gate reads from the pipe
    // while it writes to it.
    client.pump(&data, true, |_, _| true).unwrap();
    let echoed = client.read_to_end().unwrap();
    let elapsed = started.elapsed();
    let trailer = b"[engine: input ended]\n";
    assert_eq!(echoed.len(), SIZE + trailer.len(), "{}", engine.output());
    assert_eq!(fnv1a(&echoed[..SIZE]), fnv1a(&data), "checksums differ");
    assert_eq!(&echoed[SIZE..], trailer);
    eprintln!(
        "64 MiB each way in {elapsed:?}, checksum {:016x}",
        fnv1a(&data)
    );
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
#[ignore = "needs wine and the Windows binaries: make test-windows"]
fn busy_pipe_is_retried() {
    let name = pipe_name();
    let (gate, port) = start_gate(&name);
    let mut engine = start_engine(&name, &["--busy-for", "3000"]);
    let started = Instant::now();
    let mut client = Client::connect(port, &pki().alice).unwrap();
    let (status, body) = ping(&mut client);
    let waited = started.elapsed();
    assert_eq!(status, 200, "{body}\ngate log:\n{}", gate.output());
    let out = engine.wait_for("request: GET /_ping", Duration::from_secs(5));
    assert!(
        out.find("busy period over") < out.find("request: GET /_ping"),
        "{out}"
    );
    assert!(
        waited >= Duration::from_millis(1500),
        "answered after {waited:?}: the pipe was not busy?"
    );
}

#[test]
#[ignore = "needs wine and the Windows binaries: make test-windows"]
fn missing_pipe_is_a_502_naming_it() {
    let name = pipe_name();
    let (gate, port) = start_gate(&name);
    let mut client = Client::connect(port, &pki().alice).unwrap();
    let head = client.request_head(PING).unwrap();
    let body = String::from_utf8_lossy(&client.read_to_end().unwrap()).into_owned();
    assert_eq!(
        status(&head),
        502,
        "{head}{body}\ngate log:\n{}",
        gate.output()
    );
    assert!(
        body.contains(&format!(r"named pipe \\\\.\\pipe\\{name} does not exist"))
            || body.contains(&format!(r"named pipe \\.\pipe\{name} does not exist")),
        "{body}"
    );
}

#[test]
#[ignore = "needs wine and the Windows binaries: make test-windows"]
fn revoked_client_is_refused() {
    let name = pipe_name();
    let engine = start_engine(&name, &[]);
    let (mut gate, port) = start_gate(&name);
    let outcome = Client::connect(port, &pki().mallory).and_then(|mut client| {
        let head = client.request_head(PING)?;
        Ok(head)
    });
    match outcome {
        Err(_) => {}
        Ok(head) => assert_ne!(status(&head), 200, "revoked client got {head}"),
    }
    gate.wait_for("revoked", Duration::from_secs(10));
    assert!(!engine.output().contains("request:"), "{}", engine.output());
}

#[test]
#[ignore = "needs wine and the Windows binaries: make test-windows"]
fn vanished_client_aborts_the_pipe_reader() {
    let name = pipe_name();
    let mut engine = start_engine(&name, &[]);
    let (gate, port) = start_gate(&name);
    let mut client = Client::connect(port, &pki().alice).unwrap();
    let head = client.request_head(&upgrade("/echo")).unwrap();
    assert_eq!(status(&head), 101, "{head}\ngate log:\n{}", gate.output());
    client.pump(b"x", false, |r, eof| eof || r == b"x").unwrap();
    // The engine now waits silently for input, so the gate's pipe reader is blocked in a read.
    // A reset from the client aborts the session: the abort must cancel that read (CancelIoEx),
    // or the pipe stays open and the engine never sees the end of its input.
    socket2::SockRef::from(&client.sock)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    engine.wait_for("echo: input ended after 1 bytes", Duration::from_secs(15));
}
