//! The client-certificate verifier: rustls' WebPKI verifier with CRLs, wrapped so that a refused
//! certificate can be named in the log.
//!
//! rustls only exposes the peer's certificates after verification succeeded. To log the subject
//! and serial of a *refused* certificate, the wrapper parses the end entity when the inner verifier
//! fails and leaves it in a thread-local slot. That is sound because dockgate runs each handshake
//! on its connection's own thread: the connection takes the slot right after the handshake fails.

use std::cell::RefCell;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::identity::PeerIdentity;

thread_local! {
    static REFUSED_PEER: RefCell<Option<PeerIdentity>> = const { RefCell::new(None) };
}

/// Takes the identity of the certificate this thread's last handshake refused, if any.
pub fn take_refused_identity() -> Option<PeerIdentity> {
    REFUSED_PEER.with(|slot| slot.borrow_mut().take())
}

/// Forwards every call to the inner verifier; remembers who was refused.
#[derive(Debug)]
pub struct AuditingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl AuditingVerifier {
    pub fn new(inner: Arc<dyn ClientCertVerifier>) -> Self {
        AuditingVerifier { inner }
    }
}

impl ClientCertVerifier for AuditingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verdict = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if verdict.is_err() {
            let identity = PeerIdentity::from_der(end_entity);
            REFUSED_PEER.with(|slot| *slot.borrow_mut() = identity);
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

/// Says in words why a handshake failed, for the `handshake refused` log line.
pub fn refusal_reason(error: &Error) -> String {
    use CertificateError as C;
    match error {
        Error::NoCertificatesPresented => "no client certificate".into(),
        Error::InvalidCertificate(cert_error) => match cert_error {
            C::Revoked => "certificate revoked".into(),
            C::UnknownIssuer => "unknown issuer".into(),
            C::Expired | C::ExpiredContext { .. } => "certificate expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not yet valid".into(),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => "wrong key usage".into(),
            C::UnknownRevocationStatus => "revocation status unknown".into(),
            C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
                "CRL expired".into()
            }
            C::BadSignature => "bad certificate signature".into(),
            C::BadEncoding => "malformed certificate".into(),
            other => format!("invalid certificate: {other:?}"),
        },
        Error::AlertReceived(alert) => format!("protocol error: client sent alert {alert:?}"),
        other => format!("protocol error: {other}"),
    }
}
