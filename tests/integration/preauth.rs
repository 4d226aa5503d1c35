//! Before authentication: connections that send nothing are capped per source address, closed
//! after the first-bytes deadline, and logged in aggregate, so that one address cannot keep
//! everyone else out (issue #10, item 4). The flood comes from 127.0.0.2, the real clients
//! from 127.0.0.1.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::common::expect::{assert_cli_works, LOG_WAIT};
use crate::common::tls::RawTls;
use crate::common::{pki, GateBuilder};

const FLOOD_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// More than the gate's global cap (512) of connections waiting for their handshake.
const FLOOD_SIZE: usize = 600;
/// Connections reopened per round of the flood (every 100 ms) once it is up.
const REOPEN_PER_ROUND: usize = 50;

/// A TCP connection to the gate from `source`.
fn connect_from(source: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    let gate = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    socket.connect_timeout(&gate.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// False once the gate has closed (or reset) the connection.
fn still_open(conn: &TcpStream) -> bool {
    conn.set_nonblocking(true).unwrap();
    matches!(conn.peek(&mut [0u8; 1]), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

/// Idle connections from 127.0.0.2 that never send a byte: `FLOOD_SIZE` at once, then the ones
/// the gate closes are reopened (up to `REOPEN_PER_ROUND` every 100 ms) until `stop`.
/// Returns how many connections it opened.
struct Flood {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<usize>,
}

impl Flood {
    fn start(port: u16) -> Flood {
        let mut conns: Vec<TcpStream> = (0..FLOOD_SIZE)
            .map(|_| connect_from(FLOOD_SOURCE, port).expect("flood connection"))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::spawn(move || {
            let mut opened = FLOOD_SIZE;
            while !stopped.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(100));
                conns.retain(still_open);
                let missing = (FLOOD_SIZE - conns.len()).min(REOPEN_PER_ROUND);
                for _ in 0..missing {
                    if let Ok(conn) = connect_from(FLOOD_SOURCE, port) {
                        conns.push(conn);
                        opened += 1;
                    }
                }
            }
            opened
        });
        Flood { stop, thread }
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// The `count=` of a log line.
fn count_of(line: &str) -> u64 {
    let rest = line.split("count=").nth(1).expect("a count= field");
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// 600 idle connections from one address, reopened as the gate closes them, used to fill the
/// gate's 512 places for 10 s each and lock every other client out. Now 127.0.0.2 gets 32
/// places, each for 3 s, and 127.0.0.1 gets in throughout, with the docker CLI and a raw
/// client. The refusals of 127.0.0.2 come as a few lines with counts, not one per connection.
#[test]
fn idle_flood_from_one_address_does_not_lock_out_another() {
    let gate = GateBuilder::standard().start();
    let alice = &pki().alice;
    let flood = Flood::start(gate.port);
    let started = Instant::now();
    // Through two first-bytes deadlines of the flood's connections (3 s each).
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(7) {
        round += 1;
        RawTls::connect(gate.port, Some(alice))
            .ping(&format!("alice during the flood, round {round}"));
        thread::sleep(Duration::from_millis(500));
    }
    assert_cli_works(&gate, alice);
    let opened = flood.stop();
    assert!(opened > 1000, "the flood opened only {opened} connections");

    let logs = gate.logs_handle();
    let capped = [
        "WARN",
        "handshakes refused",
        "source=127.0.0.2",
        "reason=\"32 connections from this source already waiting for their handshake\"",
    ];
    let first = logs.wait_for(&capped, LOG_WAIT);
    assert_eq!(count_of(&first), 1, "{first}");
    // The refusals after the first are counted and logged when the 10 s interval ends.
    let aggregated = crate::common::util::poll(Duration::from_secs(15), || {
        logs.lines_with(&capped)
            .into_iter()
            .find(|line| count_of(line) > 100)
    })
    .unwrap_or_else(|| panic!("no aggregated line; log:\n{}", logs.text()));
    assert!(aggregated.contains("count="), "{aggregated}");
    logs.wait_for(
        &[
            "handshakes refused",
            "source=127.0.0.2",
            "reason=\"no TLS ClientHello within 3s\"",
        ],
        LOG_WAIT,
    );
    let flood_lines = logs.lines_with(&["127.0.0.2"]);
    assert!(
        flood_lines.len() <= 8,
        "{} log lines for {opened} flood connections:\n{}",
        flood_lines.len(),
        flood_lines.join("\n")
    );
}

/// A connection that sends nothing is closed after the first-bytes deadline (3 s), well
/// before the 10 s the whole handshake may take, and the refusal is logged.
#[test]
fn silent_connection_is_closed_after_the_first_bytes_deadline() {
    let gate = GateBuilder::standard().start();
    let mut conn = TcpStream::connect(("127.0.0.1", gate.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(9))).unwrap();
    let started = Instant::now();
    let read = conn.read(&mut [0u8; 16]);
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(0)) || matches!(&read, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "expected the gate to close the connection, got {read:?} after {waited:?}"
    );
    assert!(
        waited >= Duration::from_secs(2),
        "closed after only {waited:?}"
    );
    gate.wait_for_log(
        &[
            "handshakes refused",
            "source=127.0.0.1",
            "reason=\"no TLS ClientHello within 3s\"",
            "count=1",
        ],
        LOG_WAIT,
    );
}
