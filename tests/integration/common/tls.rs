//! A raw TLS client (rustls) for sending hand-made bytes to the gate.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::pki::{pki, Identity};

/// How long a test client waits for the next byte before calling the gate hung (generous: the
/// CI machine is loaded, and some exchanges, such as a classic build, are silent for a while).
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// What came back on a connection: bytes until close, and the error that ended it, if any
/// (a clean close or a close without close_notify is no error).
#[derive(Debug)]
pub struct Outcome {
    pub bytes: Vec<u8>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status code of the first response, if the bytes start with one.
    pub fn status(&self) -> Option<u16> {
        status_of(&self.bytes)
    }
}

pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?
        .parse()
        .ok()
}

/// A TLS connection to the gate on 127.0.0.1:`port`, verifying the server against the test
/// root CA and presenting `client`'s chain (sent as-is, whoever issued it) or no certificate.
pub struct RawTls {
    stream: StreamOwned<ClientConnection, TcpStream>,
}

impl RawTls {
    pub fn connect(port: u16, client: Option<&Identity>) -> RawTls {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(pki().root_der.clone()))
            .unwrap();
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let mut config = match client {
            Some(id) => builder
                .with_client_auth_cert(
                    id.chain_der
                        .iter()
                        .map(|d| CertificateDer::from(d.clone()))
                        .collect(),
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_der.clone())),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        let conn = ClientConnection::new(Arc::new(config), server).unwrap();
        let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect to gate");
        sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        sock.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        RawTls {
            stream: StreamOwned::new(conn, sock),
        }
    }

    /// Completes the handshake and returns the certificate the gate presented (DER).
    pub fn server_certificate(&mut self) -> Vec<u8> {
        while self.stream.conn.is_handshaking() {
            self.stream
                .conn
                .complete_io(&mut self.stream.sock)
                .expect("TLS handshake with the gate");
        }
        self.stream
            .conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .expect("the gate presented no certificate")
            .to_vec()
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads until the gate closes the connection. Panics if it stays silent for `READ_TIMEOUT`.
    pub fn read_to_close(&mut self) -> Outcome {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Outcome { bytes, error: None },
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    return Outcome { bytes, error: None }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!(
                        "gate kept the connection open for {READ_TIMEOUT:?}; got so far: {:?}",
                        String::from_utf8_lossy(&bytes)
                    )
                }
                Err(e) => {
                    return Outcome {
                        bytes,
                        error: Some(e.to_string()),
                    }
                }
            }
        }
    }

    /// Ends our sending side with a bare TCP FIN and no close_notify (older clients, docker-py).
    pub fn half_close_fin(&mut self) {
        self.stream.flush().unwrap();
        self.stream
            .sock
            .shutdown(std::net::Shutdown::Write)
            .unwrap();
    }

    /// Ends our sending side with a TLS close_notify only, no FIN (the current Go client).
    pub fn half_close_notify(&mut self) {
        self.stream.conn.send_close_notify();
        self.stream.flush().unwrap();
    }

    /// Reads up to `buf.len()` bytes of what the gate sends (one read; 0 at close).
    pub fn read_some(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.read(buf)
    }

    /// Ends the connection with a TCP reset (SO_LINGER 0, then close), as a killed client does:
    /// no close_notify, no FIN.
    pub fn reset(self) {
        use std::os::fd::AsRawFd;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        let rc = unsafe {
            libc::setsockopt(
                self.stream.sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
        drop(self);
    }

    /// Sends `GET /_ping` and expects `200` with the body `OK` (the panic names `context`).
    pub fn ping(&mut self, context: &str) {
        self.send(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap_or_else(|e| panic!("{context}: sending /_ping: {e}"));
        let (status, head, body) = self.read_response();
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"OK"[..]),
            "{context}: {head}"
        );
    }

    /// Reads one response with a Content-Length body (or a 204/304 without one);
    /// returns (status, head, body).
    pub fn read_response(&mut self) -> (u16, String, Vec<u8>) {
        let (status, head) = self.read_head();
        if status == 204 || status == 304 {
            return (status, head, Vec::new());
        }
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("response without Content-Length: {head:?}"));
        let mut body = vec![0u8; len];
        self.stream
            .read_exact(&mut body)
            .expect("read response body");
        (status, head, body)
    }

    /// Reads a response head (byte by byte, so nothing after it is consumed).
    pub fn read_head(&mut self) -> (u16, String) {
        let mut data = Vec::new();
        let mut byte = [0u8; 1];
        while !data.ends_with(b"\r\n\r\n") {
            match self.stream.read(&mut byte) {
                Ok(1) => data.push(byte[0]),
                other => panic!(
                    "response head cut short ({other:?}): {:?}",
                    String::from_utf8_lossy(&data)
                ),
            }
        }
        let head = String::from_utf8_lossy(&data).into_owned();
        let status = status_of(&data).unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
        (status, head)
    }
}

/// Connects as `client`, sends `request` (a write error is recorded, not fatal) and reads
/// everything until the gate closes.
pub fn exchange(port: u16, client: Option<&Identity>, request: &[u8]) -> Outcome {
    let mut conn = RawTls::connect(port, client);
    if let Err(e) = conn.send(request) {
        let mut out = conn.read_to_close();
        out.error.get_or_insert(format!("write: {e}"));
        return out;
    }
    conn.read_to_close()
}
