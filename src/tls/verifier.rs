//! The client-certificate verifier: webpki's chain validation, dockgate's revocation index, and
//! the name of every refused certificate for the log.
//!
//! The chain is validated by rustls-webpki as rustls' `WebPkiClientVerifier` does it
//! (client-auth key usage), with the self-signed CAs of `--tlscacert` as trust anchors and its
//! other CAs as intermediates (see `anchors`); revocation is checked by `RevocationIndex` for
//! each candidate path instead of by webpki (see `revocation` for why), after the validity of
//! the path's anchor, which webpki does not check.
//!
//! rustls only exposes the peer's certificates after verification succeeded. To log the subject
//! and serial of a *refused* certificate, the verifier parses the end entity when verification
//! fails and leaves it in a thread-local slot. That is sound because a handshake runs from start
//! to end on one handshake thread, which empties the slot before it starts and takes it right
//! after the handshake fails (`conn::handshake`).

use std::cell::RefCell;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertRevocationListError, CertificateError, DigitallySignedStruct, DistinguishedName, Error,
    OtherError, SignatureScheme,
};

use super::anchors::{ClientTrust, Validity};
use super::identity::PeerIdentity;
use super::revocation::RevocationIndex;

thread_local! {
    static REFUSED_PEER: RefCell<Option<PeerIdentity>> = const { RefCell::new(None) };
}

/// Takes the identity of the certificate this thread's last handshake refused, if any.
pub fn take_refused_identity() -> Option<PeerIdentity> {
    REFUSED_PEER.with(|slot| slot.borrow_mut().take())
}

/// Requires a client certificate that chains to `--tlscacert` and is not revoked.
#[derive(Debug)]
pub struct ClientVerifier {
    anchors: Vec<TrustAnchor<'static>>,
    anchor_validity: Vec<Validity>,
    /// The CAs of `--tlscacert` that are not self-signed, offered after the client's own.
    bundled_intermediates: Vec<CertificateDer<'static>>,
    root_hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
    /// `None` only with `--no-crl`.
    revocation: Option<RevocationIndex>,
}

impl ClientVerifier {
    pub fn new(
        trust: ClientTrust,
        algorithms: WebPkiSupportedAlgorithms,
        revocation: Option<RevocationIndex>,
    ) -> Self {
        ClientVerifier {
            root_hints: trust.hints,
            anchors: trust.anchors,
            anchor_validity: trust.anchor_validity,
            bundled_intermediates: trust.intermediates,
            algorithms,
            revocation,
        }
    }

    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), webpki::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity)?;
        let check_path = |path: &webpki::VerifiedPath<'_>| {
            self.check_anchor_validity(path.anchor(), now)?;
            match &self.revocation {
                Some(index) => index.check_path(path, now),
                None => Ok(()),
            }
        };
        let with_bundled: Vec<CertificateDer<'_>>;
        let intermediates = match self.bundled_intermediates.is_empty() {
            true => intermediates,
            false => {
                with_bundled = intermediates
                    .iter()
                    .chain(&self.bundled_intermediates)
                    .map(|der| CertificateDer::from(der.as_ref()))
                    .collect();
                &with_bundled
            }
        };
        cert.verify_for_usage(
            self.algorithms.all,
            &self.anchors,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            None,
            Some(&check_path),
        )
        .map(|_| ())
    }

    /// An anchor past its notAfter (or before its notBefore) vouches for nothing.
    fn check_anchor_validity(
        &self,
        anchor: &TrustAnchor<'_>,
        now: UnixTime,
    ) -> Result<(), webpki::Error> {
        let position = self.anchors.iter().position(|known| {
            known.subject == anchor.subject
                && known.subject_public_key_info == anchor.subject_public_key_info
        });
        match position.and_then(|i| self.anchor_validity.get(i)) {
            Some(validity) => validity.check(now),
            // Every anchor comes from `self.anchors`; refuse rather than trust that.
            None => Err(webpki::Error::UnknownIssuer),
        }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.root_hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match self.verify_chain(end_entity, intermediates, now) {
            Ok(()) => Ok(ClientCertVerified::assertion()),
            Err(e) => {
                let identity = PeerIdentity::from_der(end_entity);
                REFUSED_PEER.with(|slot| *slot.borrow_mut() = identity);
                Err(rustls_error(e))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// webpki's errors as rustls' (rustls' private `pki_error` for every error a client certificate
/// check can produce; CRL-algorithm and name errors cannot occur here), so that the
/// alert sent to the client and `refusal_reason` stay what they were with rustls' verifier.
fn rustls_error(error: webpki::Error) -> Error {
    use webpki::Error as W;
    use CertificateError as C;
    match error {
        W::BadDer | W::BadDerTime | W::TrailingData(_) => C::BadEncoding.into(),
        W::CertNotValidYet { time, not_before } => {
            C::NotValidYetContext { time, not_before }.into()
        }
        W::CertExpired { time, not_after } => C::ExpiredContext { time, not_after }.into(),
        W::InvalidCertValidity => C::Expired.into(),
        W::UnknownIssuer => C::UnknownIssuer.into(),
        W::CertRevoked => C::Revoked.into(),
        W::UnknownRevocationStatus => C::UnknownRevocationStatus.into(),
        W::CrlExpired { time, next_update } => {
            C::ExpiredRevocationListContext { time, next_update }.into()
        }
        W::IssuerNotCrlSigner => CertRevocationListError::IssuerInvalidForCrl.into(),
        W::InvalidSignatureForPublicKey => C::BadSignature.into(),
        W::InvalidCrlSignatureForPublicKey => CertRevocationListError::BadSignature.into(),
        #[allow(deprecated)]
        W::UnsupportedSignatureAlgorithm | W::UnsupportedSignatureAlgorithmForPublicKey => {
            C::UnsupportedSignatureAlgorithm.into()
        }
        W::UnsupportedSignatureAlgorithmContext(cx) => C::UnsupportedSignatureAlgorithmContext {
            signature_algorithm_id: cx.signature_algorithm_id,
            supported_algorithms: cx.supported_algorithms,
        }
        .into(),
        W::UnsupportedSignatureAlgorithmForPublicKeyContext(cx) => {
            C::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id: cx.signature_algorithm_id,
                public_key_algorithm_id: cx.public_key_algorithm_id,
            }
            .into()
        }
        #[allow(deprecated)]
        W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) => C::InvalidPurpose.into(),
        other => C::Other(OtherError(Arc::new(other))).into(),
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
        Error::InvalidCertRevocationList(crl_error) => match crl_error {
            CertRevocationListError::BadSignature => {
                "no CRL from this issuer verifies with the issuer's key".into()
            }
            CertRevocationListError::IssuerInvalidForCrl => {
                "the CRL's issuer may not sign CRLs (keyUsage without cRLSign)".into()
            }
            other => format!("invalid CRL: {other:?}"),
        },
        Error::AlertReceived(alert) => format!("protocol error: client sent alert {alert:?}"),
        other => format!("protocol error: {other}"),
    }
}
