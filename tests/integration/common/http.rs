//! A tiny HTTP/1.1 (or HTTPS, with the test PKI's server certificate) server for `--crl-url`: 127.0.0.1:<ephemeral>, one thread, answers every
//! GET with 200 and the current body (whatever the path), closes each connection after one
//! response. Stopping it closes the port, so later downloads get "connection refused".

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub struct CrlServer {
    pub port: u16,
    https: bool,
    body: Arc<Mutex<Vec<u8>>>,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CrlServer {
    pub fn start(body: impl Into<Vec<u8>>) -> CrlServer {
        CrlServer::start_with(body, None)
    }

    /// The same over TLS, with the test PKI's server certificate (issued by the test root CA,
    /// which no public root store trusts).
    pub fn start_https(body: impl Into<Vec<u8>>) -> CrlServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let pki = super::pki();
        let chain = CertificateDer::pem_file_iter(&pki.server_cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        CrlServer::start_with(body, Some(Arc::new(config)))
    }

    fn start_with(body: impl Into<Vec<u8>>, tls: Option<Arc<rustls::ServerConfig>>) -> CrlServer {
        let https = tls.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the CRL server");
        let port = listener.local_addr().unwrap().port();
        let body = Arc::new(Mutex::new(body.into()));
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (body, hits, stop) = (body.clone(), hits.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return; // drops the listener: the port is closed
                    }
                    let Ok(conn) = conn else { continue };
                    let bytes = body.lock().unwrap().clone();
                    let answered = match &tls {
                        None => answer(conn, &bytes),
                        Some(config) => rustls::ServerConnection::new(config.clone())
                            .map_err(std::io::Error::other)
                            .and_then(|tls| {
                                conn.set_read_timeout(Some(Duration::from_secs(5)))?;
                                conn.set_write_timeout(Some(Duration::from_secs(30)))?;
                                let mut stream = rustls::StreamOwned::new(tls, conn);
                                respond(&mut stream, &bytes)?;
                                stream.conn.send_close_notify();
                                stream.flush()
                            }),
                    };
                    if answered.is_ok() {
                        hits.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        CrlServer {
            port,
            https,
            body,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/<name>` (`https://` for `start_https`).
    pub fn url(&self, name: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{name}", self.port)
    }

    /// What the next requests get.
    pub fn serve(&self, body: impl Into<Vec<u8>>) {
        *self.body.lock().unwrap() = body.into();
    }

    /// How many responses were sent.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops answering and closes the port.
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes up accept
        thread.join().expect("CRL server thread");
    }
}

impl Drop for CrlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads the request head and sends one response.
fn answer(conn: TcpStream, body: &[u8]) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    respond(conn, body)
}

fn respond(mut conn: impl Read + Write, body: &[u8]) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let response_head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(response_head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}
