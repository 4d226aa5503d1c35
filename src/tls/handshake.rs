//! The server side of one TLS handshake: run with one deadline for the whole of it, and, when
//! the client is refused, name the certificate it presented.
//!
//! The verifier (`verifier`) records the identity of a certificate it refuses in a slot of the
//! handshake thread. Handshake threads serve one connection after another, so that slot must be
//! empty when a handshake starts and emptied when it ends, whatever happens in between:
//! `RefusedIdentity` is the guard that does both, and `handshake` is the only way to run one.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::error;
use rustls::{ServerConfig, ServerConnection};

use super::identity::PeerIdentity;
use super::verifier::{refusal_reason, take_refused_identity};
use crate::audit;

/// A client that connects but does not finish the handshake is dropped after this long, counted
/// from its first bytes (before them, `server::FIRST_BYTES_TIMEOUT` applies).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the TLS handshake of an accepted connection; logs and returns `None` when the client is
/// refused. On success the socket has no timeouts left (sessions may be idle for hours).
pub fn handshake(
    config: Arc<ServerConfig>,
    tcp: &TcpStream,
    peer: SocketAddr,
) -> Option<(ServerConnection, PeerIdentity)> {
    let mut tls = match ServerConnection::new(config) {
        Ok(tls) => tls,
        Err(e) => {
            error!("peer={peer}: cannot create a TLS session: {e}");
            return None;
        }
    };
    let refused = RefusedIdentity::clear();
    if let Err(e) = drive(&mut tls, tcp) {
        let reason = describe_failure(&e);
        audit::handshake_refused(peer, &reason, refused.take().as_ref());
        return None;
    }
    drop(refused);
    // Hijacked sessions and /events streams may be idle for hours: no timeouts from here on.
    // (SO_RCVTIMEO is shared by every clone of the socket, so this must happen before the split.)
    let _ = tcp.set_read_timeout(None);
    let _ = tcp.set_write_timeout(None);
    let identity = tls
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| PeerIdentity::from_der(leaf));
    match identity {
        Some(identity) => Some((tls, identity)),
        None => {
            // Unreachable with a mandatory client verifier; refuse rather than trust that.
            audit::handshake_refused(peer, "no client certificate", None);
            None
        }
    }
}

/// The verifier's refused-identity slot of this thread, for the length of one handshake: empty
/// when created, emptied when dropped, so no handshake can name an earlier client.
struct RefusedIdentity(());

impl RefusedIdentity {
    fn clear() -> RefusedIdentity {
        let _ = take_refused_identity();
        RefusedIdentity(())
    }

    /// What the refused certificate claims (the slot is then empty).
    fn take(self) -> Option<PeerIdentity> {
        take_refused_identity()
    }
}

impl Drop for RefusedIdentity {
    fn drop(&mut self) {
        let _ = take_refused_identity();
    }
}

/// Runs the handshake one read or write at a time against one deadline for the whole of it
/// (rustls' `complete_io` loops internally, so a per-read timeout would let a client that
/// trickles one byte at a time hold an unauthenticated connection for as long as it likes).
fn drive(tls: &mut ServerConnection, tcp: &TcpStream) -> io::Result<()> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut io = tcp;
    while tls.is_handshaking() || tls.wants_write() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake timed out",
            ));
        }
        tcp.set_read_timeout(Some(left))?;
        tcp.set_write_timeout(Some(left))?;
        if tls.wants_write() {
            tls.write_tls(&mut io)?;
            continue;
        }
        if tls.read_tls(&mut io)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Err(e) = tls.process_new_packets() {
            // Send the alert that says why (certificate_revoked, unknown_ca, ...).
            while tls.wants_write() && tls.write_tls(&mut io).is_ok() {}
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
    Ok(())
}

fn describe_failure(e: &io::Error) -> String {
    if let Some(tls_error) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return refusal_reason(tls_error);
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "handshake timed out".into(),
        io::ErrorKind::UnexpectedEof => "client closed the connection during the handshake".into(),
        _ => format!("network error during the handshake: {e}"),
    }
}

/// A real TLS connection over loopback TCP for unit tests of the session code: the server side
/// comes out of `handshake`, split into the halves the session threads use.
#[cfg(test)]
pub mod testing {
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};

    use crate::tls::identity::PeerIdentity;

    /// The client's end: a blocking TLS stream.
    pub type TestClient = StreamOwned<ClientConnection, TcpStream>;

    /// The server's end, handshaken, with its client chain.
    pub struct TestServer {
        pub tls: rustls::ServerConnection,
        pub tcp: TcpStream,
        pub identity: PeerIdentity,
        pub chain: Vec<CertificateDer<'static>>,
    }

    fn issue(
        ca: &rcgen::Issuer<'static, rcgen::KeyPair>,
        cn: &str,
        server: bool,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names = if server {
            vec!["localhost".into()]
        } else {
            vec![]
        };
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, ca).unwrap();
        (
            cert.der().clone(),
            PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
    }

    /// A handshaken pair: the client certificate's CN is `cn`.
    pub fn pair(cn: &str) -> (TestClient, TestServer) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let ca_cert = ca_params.clone().self_signed(&ca_key).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let ca = rcgen::Issuer::new(ca_params, ca_key);
        let (server_cert, server_key) = issue(&ca, "localhost", true);
        let (client_cert, client_key) = issue(&ca, cn, false);
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder(roots.clone())
            .build()
            .unwrap();
        let server_config = ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![server_cert], server_key)
            .unwrap();
        let client_config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![client_cert], client_key)
            .unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let tcp = TcpStream::connect(addr).unwrap();
            let conn = ClientConnection::new(
                Arc::new(client_config),
                ServerName::try_from("localhost").unwrap(),
            )
            .unwrap();
            let mut stream = StreamOwned::new(conn, tcp);
            while stream.conn.is_handshaking() {
                stream.conn.complete_io(&mut stream.sock).unwrap();
            }
            stream
        });
        let (tcp, peer) = listener.accept().unwrap();
        let (tls, identity) = super::handshake(Arc::new(server_config), &tcp, peer).unwrap();
        let chain = tls
            .peer_certificates()
            .unwrap()
            .iter()
            .map(|c| c.clone().into_owned())
            .collect();
        let client = client.join().unwrap();
        (
            client,
            TestServer {
                tls,
                tcp,
                identity,
                chain,
            },
        )
    }
}
