//! What `--tlscacert` means: its self-signed CAs are the trust anchors, every other CA in it is
//! an intermediate offered to path building, so that its validity and its revocation (on its
//! issuer's CRL) are checked at every handshake like those of an intermediate a client sends.
//!
//! webpki checks neither the validity nor the revocation of a trust anchor: an intermediate that
//! became an anchor would stay trusted after it expired or was revoked at the root. So:
//! - a certificate that is not a CA (no basicConstraints `cA`) is refused: it cannot issue client
//!   certificates, and as an anchor it would be trusted without any check;
//! - an intermediate whose issuer is not in the bundle is refused (the root must be present):
//!   without the root, its CRL and validity could never be checked;
//! - an expired (or not yet valid) entry is kept but announced at WARN on every load: an expired
//!   intermediate fails path validation, and an anchor outside its validity refuses every path
//!   through it (`AnchorValidity`, checked by the verifier). A bundle without one anchor valid
//!   today is refused, since it would refuse every client.

use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use rustls::DistinguishedName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::load::LoadError;

/// The CA bundle, split for the verifier.
#[derive(Debug)]
pub struct ClientTrust {
    pub anchors: Vec<TrustAnchor<'static>>,
    /// The validity of `anchors[i]`, which webpki does not check.
    pub anchor_validity: Vec<Validity>,
    /// The bundle's CAs that are not self-signed, for path building.
    pub intermediates: Vec<CertificateDer<'static>>,
    /// Every CA's subject, sent to clients as acceptable issuers.
    pub hints: Vec<DistinguishedName>,
    /// What the operator is told at WARN on every load (expired or not yet valid entries).
    pub warnings: Vec<String>,
}

/// notBefore and notAfter, in seconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: u64,
    pub not_after: u64,
}

impl Validity {
    /// webpki's error for a certificate used outside its validity at `now`.
    pub fn check(&self, now: UnixTime) -> Result<(), webpki::Error> {
        let time = now.as_secs();
        if time < self.not_before {
            return Err(webpki::Error::CertNotValidYet {
                time: now,
                not_before: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    self.not_before,
                )),
            });
        }
        if time > self.not_after {
            return Err(webpki::Error::CertExpired {
                time: now,
                not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    self.not_after,
                )),
            });
        }
        Ok(())
    }
}

/// One entry of the bundle, parsed.
struct Entry<'a> {
    number: usize,
    der: &'a CertificateDer<'static>,
    cert: X509Certificate<'a>,
}

impl Entry<'_> {
    fn subject(&self) -> String {
        self.cert.subject().to_string()
    }

    /// Self-issued and signed with its own key: a root.
    fn is_self_signed(&self) -> bool {
        self.cert.subject().as_raw() == self.cert.issuer().as_raw()
            && self.cert.verify_signature(None).is_ok()
    }

    fn is_ca(&self) -> bool {
        matches!(self.cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
    }

    fn validity(&self) -> Validity {
        let seconds = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
        let validity = self.cert.validity();
        Validity {
            not_before: seconds(validity.not_before),
            not_after: seconds(validity.not_after),
        }
    }
}

/// Splits the bundle of `--tlscacert` (`file` names it in errors) into anchors and
/// intermediates, refusing what cannot be checked (see the module documentation).
pub fn classify(
    file: &str,
    bundle: &[CertificateDer<'static>],
    now: UnixTime,
) -> Result<ClientTrust, LoadError> {
    let refuse = |problem: String| LoadError(format!("--tlscacert {file}: {problem}"));
    let entries = bundle
        .iter()
        .enumerate()
        .map(|(index, der)| {
            X509Certificate::from_der(der)
                .map(|(_, cert)| Entry {
                    number: index + 1,
                    der,
                    cert,
                })
                .map_err(|e| {
                    refuse(format!(
                        "certificate #{} is not valid X.509: {e}",
                        index + 1
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut trust = ClientTrust {
        anchors: Vec::new(),
        anchor_validity: Vec::new(),
        intermediates: Vec::new(),
        hints: Vec::new(),
        warnings: Vec::new(),
    };
    for entry in &entries {
        if !entry.is_ca() {
            return Err(refuse(format!(
                "certificate #{} \"{}\" is not a CA (no basicConstraints CA:TRUE); this file holds the CAs that issue client certificates, never a client's own certificate",
                entry.number,
                entry.subject()
            )));
        }
        if entry.is_self_signed() {
            let anchor = webpki::anchor_from_trusted_cert(entry.der).map_err(|e| {
                refuse(format!(
                    "certificate #{} cannot be a trust anchor: {e}",
                    entry.number
                ))
            })?;
            trust.anchors.push(anchor.to_owned());
            trust.anchor_validity.push(entry.validity());
        } else {
            let issuer = entry.cert.issuer().as_raw();
            if !entries.iter().any(|e| e.cert.subject().as_raw() == issuer) {
                return Err(refuse(format!(
                    "certificate #{} \"{}\" is an intermediate CA, but its issuer \"{}\" is not in the file; add the root CA: only self-signed CAs are trust anchors, so that an intermediate's expiry and revocation (on its issuer's CRL) are checked",
                    entry.number,
                    entry.subject(),
                    entry.cert.issuer()
                )));
            }
            trust.intermediates.push(entry.der.clone());
        }
        trust.hints.push(DistinguishedName::from(
            entry.cert.subject().as_raw().to_vec(),
        ));
        if let Err(e) = entry.validity().check(now) {
            let when = match e {
                webpki::Error::CertNotValidYet { .. } => "is not valid before",
                _ => "expired on",
            };
            let validity = entry.cert.validity();
            let date = match e {
                webpki::Error::CertNotValidYet { .. } => validity.not_before,
                _ => validity.not_after,
            };
            trust.warnings.push(format!(
                "--tlscacert {file}: certificate #{} \"{}\" {when} {date}: every client whose chain goes through it is refused",
                entry.number,
                entry.subject()
            ));
        }
    }
    if trust.anchors.is_empty() {
        return Err(refuse(
            "holds no self-signed root CA; add the root: only self-signed CAs are trust anchors"
                .into(),
        ));
    }
    if !trust
        .anchor_validity
        .iter()
        .any(|validity| validity.check(now).is_ok())
    {
        return Err(refuse(
            "no root CA in it is valid today (expired or not yet valid): every client would be refused".into(),
        ));
    }
    Ok(trust)
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use rustls::pki_types::CertificateDer;
    use rustls::server::danger::ClientCertVerifier;

    use crate::tls::verifier::ClientVerifier;

    const DAY: i64 = 86_400;

    /// Seconds since the epoch of "now + `days`".
    fn days_from_now(days: i64) -> std::time::Duration {
        let now = UnixTime::now().as_secs() as i64;
        std::time::Duration::from_secs((now + days * DAY) as u64)
    }

    fn params(cn: &str, ca: bool, valid_days: (i64, i64)) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + days_from_now(valid_days.0);
        params.not_after = epoch + days_from_now(valid_days.1);
        params
    }

    fn root(cn: &str, valid_days: (i64, i64)) -> CertifiedIssuer<'static, KeyPair> {
        let key = KeyPair::generate().unwrap();
        CertifiedIssuer::self_signed(params(cn, true, valid_days), key).unwrap()
    }

    fn der(issuer: &CertifiedIssuer<'_, KeyPair>) -> CertificateDer<'static> {
        issuer.der().clone()
    }

    #[test]
    fn self_signed_cas_are_anchors_the_others_intermediates() {
        let root = root("root", (-1, 365));
        let key = KeyPair::generate().unwrap();
        let intermediate =
            CertifiedIssuer::signed_by(params("intermediate", true, (-1, 365)), key, &root)
                .unwrap();
        let trust = classify("ca.pem", &[der(&root), der(&intermediate)], UnixTime::now()).unwrap();
        assert_eq!(trust.anchors.len(), 1);
        assert_eq!(trust.intermediates, vec![der(&intermediate)]);
        assert_eq!(trust.hints.len(), 2);
        assert!(trust.warnings.is_empty(), "{:?}", trust.warnings);
    }

    #[test]
    fn an_expired_root_beside_a_valid_one_is_warned_about_and_refuses_its_clients() {
        let old = root("old root", (-400, -1));
        let new = root("new root", (-1, 365));
        let trust = classify("ca.pem", &[der(&old), der(&new)], UnixTime::now()).unwrap();
        assert_eq!(trust.warnings.len(), 1);
        assert!(
            trust.warnings[0].contains("certificate #1 \"CN=old root\" expired on"),
            "{:?}",
            trust.warnings
        );

        // A client of the expired root: webpki would accept it, the anchor check does not.
        let mut leaf = params("client", false, (-1, 30));
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let leaf = leaf.signed_by(&KeyPair::generate().unwrap(), &old).unwrap();
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        let verifier = ClientVerifier::new(trust, algorithms, None);
        let verdict = verifier.verify_client_cert(leaf.der(), &[], UnixTime::now());
        assert!(
            matches!(
                verdict,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ExpiredContext { .. }
                ))
            ),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_file_whose_roots_are_all_expired_is_refused() {
        let old = root("old root", (-400, -1));
        let error = classify("ca.pem", &[der(&old)], UnixTime::now()).unwrap_err();
        assert!(
            error.0.contains("no root CA in it is valid today"),
            "{error}"
        );
    }
}
