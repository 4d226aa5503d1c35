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
