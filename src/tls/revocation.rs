//! Revocation: every loaded CRL in an index, consulted for each certificate of a verified chain.
//!
//! Why dockgate does this itself instead of handing the CRLs to rustls: rustls-webpki verifies a
//! CRL's signature again on every revocation check (rustls/webpki#81), hashing the whole CRL for
//! every handshake. With a 1,000,000-entry CRL (47 MB) that meant 62 handshakes/s instead of
//! ~1,700. Here a CRL's signature is verified once — at load time when its issuer is in
//! `--tlscacert`, on first use with the verified issuer's key otherwise — and a serial is found by
//! binary search, so a handshake costs the same whatever the size of the CRL.
//!
//! The rules are webpki's (`crl/mod.rs`, `crl/types.rs` in rustls-webpki 0.103), kept on purpose:
//! - CRLs are parsed by webpki's own parser at load time, so the same CRLs are refused: delta CRLs,
//!   indirect CRLs, CRLs partitioned by reason, unknown critical extensions, no nextUpdate.
//! - A CRL is *authoritative* for a certificate when it names the certificate's issuer (compared
//!   as RFC 5280 says, see `names`, where webpki compares bytes) and, if it
//!   has an issuingDistributionPoint, its scope (only end entities / only CAs) admits the
//!   certificate and, when the certificate names CRL distribution points, one URI matches.
//! - No authoritative CRL: "revocation status unknown" (refused unless `--crl-allow-unknown`).
//! - The CRL must be signed by the issuer on the verified path, whose keyUsage (when present)
//!   allows cRLSign.
//! - The certificate is revoked when its serial, byte for byte, is in an authoritative CRL,
//!   whatever that CRL's nextUpdate (unlike webpki, which checks freshness first: a revocation
//!   must not lapse because the next CRL is late).
//! - A certificate not listed passes only if the freshest such CRL's nextUpdate has not passed,
//!   unless `--crl-allow-expired`.

use std::fmt;
use std::sync::Mutex;

use rustls::pki_types::UnixTime;
use webpki::{BorrowedCertRevocationList, Cert, CertRevocationList, VerifiedPath};
use x509_parser::extensions::{DistributionPointName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::cdp::{self, uri_names};
use super::names::canonical_name;
use super::RevocationPolicy;

/// Every CRL, ready to answer "is this certificate revoked?" for one chain at a time.
pub struct RevocationIndex {
    crls: Vec<IndexedCrl>,
    /// Built only when revocation is enabled (no `--no-crl`); the other fields soften the rules.
    rules: RevocationPolicy,
}

impl fmt::Debug for RevocationIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RevocationIndex({} CRLs, {:?})",
            self.crls.len(),
            self.rules
        )
    }
}

impl RevocationIndex {
    pub fn new(crls: Vec<IndexedCrl>, rules: RevocationPolicy) -> Self {
        RevocationIndex { crls, rules }
    }

    /// Checks every certificate of a verified path (only the leaf with `--crl-leaf-only`).
    /// Called by webpki for each candidate path, so a revoked path makes it try the next one.
    pub fn check_path(&self, path: &VerifiedPath<'_>, now: UnixTime) -> Result<(), webpki::Error> {
        let leaf: &Cert<'_> = path.end_entity();
        let mut subjects = vec![leaf];
        subjects.extend(path.intermediate_certificates());
        let anchor_key = der_sequence(&path.anchor().subject_public_key_info);
        for (position, cert) in subjects.iter().enumerate() {
            if self.rules.leaf_only && position > 0 {
                break;
            }
            let issuer = match subjects.get(position + 1) {
                Some(issuer_cert) => Issuer::Intermediate(issuer_cert),
                None => Issuer::Anchor(&anchor_key),
            };
            let role = if position == 0 {
                Role::EndEntity
            } else {
                Role::Ca
            };
            self.check_cert(cert, role, &issuer, now)?;
        }
        Ok(())
    }

    fn check_cert(
        &self,
        cert: &Cert<'_>,
        role: Role,
        issuer: &Issuer<'_>,
        now: UnixTime,
    ) -> Result<(), webpki::Error> {
        let issuer_name = cert.issuer();
        let issuer_canonical = self.canonical_issuer(issuer_name);
        let same_issuer = || {
            self.crls
                .iter()
                .filter(|crl| crl.issued_by(issuer_name, issuer_canonical.as_deref()))
        };
        // Only a CRL with an issuingDistributionPoint needs the certificate's own extensions.
        let details = same_issuer()
            .any(|crl| crl.scope.is_some())
            .then(|| Details::of(cert));
        let authoritative: Vec<&IndexedCrl> = same_issuer()
            .filter(|crl| crl.covers(role, details.as_ref()))
            .collect();
        if authoritative.is_empty() {
            return match self.rules.allow_unknown {
                true => Ok(()),
                false => Err(webpki::Error::UnknownRevocationStatus),
            };
        }

        let issuer_key = issuer.key();
        let signed: Vec<&IndexedCrl> = authoritative
            .into_iter()
            .filter(|crl| crl.signature.verifies_with(&issuer_key))
            .collect();
        if signed.is_empty() {
            return Err(webpki::Error::InvalidCrlSignatureForPublicKey);
        }
        if !issuer.may_sign_crls() {
            return Err(webpki::Error::IssuerNotCrlSigner);
        }
        // A serial listed in a CRL whose signature holds is revoked, however old the CRL: a
        // revocation is never undone by time. Freshness only matters for "not listed".
        if signed.iter().any(|crl| crl.serials.contains(cert.serial())) {
            return Err(webpki::Error::CertRevoked);
        }
        if !self.rules.allow_expired {
            let freshest = signed.iter().map(|crl| crl.next_update).max();
            if let Some(next_update) = freshest.filter(|next| now >= *next) {
                return Err(webpki::Error::CrlExpired {
                    time: now,
                    next_update,
                });
            }
        }
        Ok(())
    }
}

impl RevocationIndex {
    /// The canonical form of a certificate's issuer Name. When a CRL names the issuer with the
    /// same bytes (the usual case), its canonical form, computed at load, is the answer: no
    /// name is parsed during the handshake.
    fn canonical_issuer(&self, issuer_name: &[u8]) -> Option<String> {
        match self.crls.iter().find(|crl| crl.issuer == issuer_name) {
            Some(crl) => crl.issuer_canonical.clone(),
            None => canonical_name(&der_sequence(issuer_name)),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    EndEntity,
    Ca,
}

/// The certificate that issued the one being checked: the key the CRL must be signed with.
enum Issuer<'a> {
    Intermediate(&'a Cert<'a>),
    /// The anchor's subjectPublicKeyInfo, as full DER.
    Anchor(&'a [u8]),
}

impl Issuer<'_> {
    /// The subjectPublicKeyInfo as full DER (with its SEQUENCE header).
    fn key(&self) -> Vec<u8> {
        match self {
            Issuer::Intermediate(cert) => cert.subject_public_key_info().as_ref().to_vec(),
            Issuer::Anchor(key) => key.to_vec(),
        }
    }

    /// An intermediate whose keyUsage leaves out cRLSign may not issue CRLs (RFC 5280 4.2.1.3).
    /// Trust anchors carry no keyUsage in webpki and are not checked, as in webpki.
    fn may_sign_crls(&self) -> bool {
        let Issuer::Intermediate(cert) = self else {
            return true;
        };
        let der = cert.der();
        let Ok((_, parsed)) = X509Certificate::from_der(der.as_ref()) else {
            return false;
        };
        match parsed.key_usage() {
            Ok(Some(usage)) => usage.value.crl_sign(),
            Ok(None) => true,
            Err(_) => false,
        }
    }
}

/// What a CRL's issuingDistributionPoint needs from a certificate, parsed only when asked.
struct Details {
    /// URIs of the certificate's CRL distribution points; `None` when it names none.
    distribution_uris: Option<Vec<String>>,
}

impl Details {
    fn of(cert: &Cert<'_>) -> Details {
        let der = cert.der();
        let Ok((_, parsed)) = X509Certificate::from_der(der.as_ref()) else {
            return Details {
                distribution_uris: Some(Vec::new()),
            };
        };
        // As webpki: points for an indirect or reason-partitioned CRL never match.
        let distribution_uris = cdp::crl_uris(&parsed).map(|uris| {
            uris.into_iter()
                .filter(|uri| uri.complete)
                .map(|uri| uri.uri)
                .collect()
        });
        Details { distribution_uris }
    }
}

/// One CRL as the index keeps it: no DER (unless its signature is still to be checked), only the
/// issuer, the scope, nextUpdate and the sorted serials.
pub struct IndexedCrl {
    /// The issuer Name without its SEQUENCE header, as webpki's `Cert::issuer()` gives it.
    issuer: Vec<u8>,
    /// The issuer Name in the form RFC 5280 compares (`names`), when it parses.
    issuer_canonical: Option<String>,
    scope: Option<Scope>,
    next_update: UnixTime,
    serials: SerialSet,
    signature: Signature,
}

/// The scope an issuingDistributionPoint gives a CRL.
struct Scope {
    only_end_entities: bool,
    only_cas: bool,
    uris: Vec<String>,
}

impl IndexedCrl {
    /// Indexes one CRL. `parsed` is the same CRL as parsed for the start-up summary;
    /// `verified_keys` the subjectPublicKeyInfos in `--tlscacert` its signature verified with
    /// (empty when its issuer is not in the bundle: it is then verified on first use).
    pub fn new(
        der: &[u8],
        parsed: &CertificateRevocationList<'_>,
        verified_keys: Vec<Vec<u8>>,
    ) -> Result<IndexedCrl, String> {
        let borrowed = BorrowedCertRevocationList::from_der(der)
            .map_err(|e| format!("CRL not supported: {e:?}"))?;
        let mut serials = Vec::new();
        for entry in &borrowed {
            let entry = entry.map_err(|e| format!("CRL entry not supported: {e:?}"))?;
            serials.push(entry.serial_number);
        }
        let serials = SerialSet::new(serials);
        let next_update = parsed
            .next_update()
            .ok_or("CRL has no nextUpdate")?
            .timestamp();
        let signature = match verified_keys.is_empty() {
            true => Signature::Deferred {
                der: der.to_vec(),
                results: Mutex::new(Vec::new()),
            },
            false => Signature::Verified(verified_keys),
        };
        let crl = CertRevocationList::Borrowed(borrowed);
        let scope = scope_of(parsed);
        if crl.issuing_distribution_point().is_some() && scope.is_none() {
            // Fail closed: without its scope the CRL would be applied to certificates it may not
            // cover, and their absence from it read as "not revoked".
            return Err("cannot read the CRL's issuingDistributionPoint".into());
        }
        Ok(IndexedCrl {
            issuer: crl.issuer().to_vec(),
            issuer_canonical: canonical_name(&der_sequence(crl.issuer())),
            scope,
            next_update: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                u64::try_from(next_update).unwrap_or(0),
            )),
            serials,
            signature,
        })
    }

    /// Whether the CRL names this issuer: the same bytes, or the same name per RFC 5280 (a
    /// CRL whose issuer is a PrintableString where the CA's subject has a UTF8String).
    fn issued_by(&self, name: &[u8], canonical: Option<&str>) -> bool {
        self.issuer == name
            || canonical.is_some_and(|c| self.issuer_canonical.as_deref() == Some(c))
    }

    /// Whether the CRL's scope admits a certificate of this role (webpki's `authoritative`).
    /// `details` is present whenever `scope` is.
    fn covers(&self, role: Role, details: Option<&Details>) -> bool {
        let Some(scope) = &self.scope else {
            return true;
        };
        if scope.only_cas && role != Role::Ca || scope.only_end_entities && role != Role::EndEntity
        {
            return false;
        }
        match details.map(|d| &d.distribution_uris) {
            Some(None) => true,
            Some(Some(uris)) => uris.iter().any(|uri| scope.uris.contains(uri)),
            None => false,
        }
    }
}

fn scope_of(parsed: &CertificateRevocationList<'_>) -> Option<Scope> {
    parsed.extensions().iter().find_map(|ext| {
        let ParsedExtension::IssuingDistributionPoint(point) = ext.parsed_extension() else {
            return None;
        };
        let uris = match &point.distribution_point {
            Some(DistributionPointName::FullName(names)) => uri_names(names).collect(),
            _ => Vec::new(),
        };
        Some(Scope {
            only_end_entities: point.only_contains_user_certs,
            only_cas: point.only_contains_ca_certs,
            uris,
        })
    })
}

/// Whose key a CRL's signature is known to verify with.
enum Signature {
    /// Checked at load time against these keys from `--tlscacert` (full SPKI DER).
    Verified(Vec<Vec<u8>>),
    /// Issued by an intermediate the clients send: checked with that certificate's key the first
    /// time it is needed, and the verdict kept per key so a large CRL is hashed once.
    Deferred {
        der: Vec<u8>,
        results: Mutex<Vec<(Vec<u8>, bool)>>,
    },
}

impl Signature {
    fn verifies_with(&self, key: &[u8]) -> bool {
        match self {
            Signature::Verified(keys) => keys.iter().any(|known| known == key),
            Signature::Deferred { der, results } => {
                let known = lock(results).iter().find(|(k, _)| k == key).map(|r| r.1);
                if let Some(verdict) = known {
                    return verdict;
                }
                let verdict = verify_crl_signature(der, key);
                lock(results).push((key.to_vec(), verdict));
                verdict
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // `locks`: recovered. The data is a cache of verdicts: a panic elsewhere cannot leave it
    // half-written.
    crate::locks::recover(mutex)
}

fn verify_crl_signature(crl_der: &[u8], key_der: &[u8]) -> bool {
    let Ok((_, crl)) = CertificateRevocationList::from_der(crl_der) else {
        return false;
    };
    let Ok((_, key)) = SubjectPublicKeyInfo::from_der(key_der) else {
        return false;
    };
    crl.verify_signature(&key).is_ok()
}

/// Wraps DER content in a SEQUENCE header (webpki's trust anchors keep the SPKI's content only).
fn der_sequence(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Revoked serials, sorted and packed into one buffer: a 1,000,000-entry CRL takes ~28 MB here
/// instead of one allocation per entry, and a lookup is a binary search.
struct SerialSet {
    bytes: Vec<u8>,
    /// (start, end) of each serial in `bytes`, in serial order.
    spans: Vec<(u32, u32)>,
}

impl SerialSet {
    fn new(mut serials: Vec<&[u8]>) -> SerialSet {
        serials.sort_unstable();
        serials.dedup();
        let mut bytes = Vec::with_capacity(serials.iter().map(|s| s.len()).sum());
        let mut spans = Vec::with_capacity(serials.len());
        for serial in serials {
            let start = bytes.len() as u32;
            bytes.extend_from_slice(serial);
            spans.push((start, bytes.len() as u32));
        }
        SerialSet { bytes, spans }
    }

    fn get(&self, span: (u32, u32)) -> &[u8] {
        &self.bytes[span.0 as usize..span.1 as usize]
    }

    fn contains(&self, serial: &[u8]) -> bool {
        self.spans
            .binary_search_by(|span| self.get(*span).cmp(serial))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;
    use std::time::Duration;

    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
        CrlDistributionPoint, CrlIssuingDistributionPoint, CrlScope, DnType,
        ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
        RevokedCertParams, SerialNumber,
    };
    use rustls::pki_types::CertificateDer;
    use rustls::server::danger::ClientCertVerifier;
    use rustls::{CertRevocationListError, CertificateError, Error};

    use crate::tls::anchors::classify;
    use crate::tls::load::parse_crls;
    use crate::tls::verifier::ClientVerifier;

    const STRICT: RevocationPolicy = RevocationPolicy {
        enabled: true,
        leaf_only: false,
        allow_unknown: false,
        allow_expired: false,
    };

    fn ca(cn: &str, key_usages: Vec<KeyUsagePurpose>) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = key_usages;
        params
    }

    fn ca_usages() -> Vec<KeyUsagePurpose> {
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]
    }

    fn root() -> CertifiedIssuer<'static, KeyPair> {
        CertifiedIssuer::self_signed(ca("root", ca_usages()), KeyPair::generate().unwrap()).unwrap()
    }

    fn leaf(serial: u8, distribution_point: Option<&str>) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "alice");
        params.serial_number = Some(SerialNumber::from_slice(&[serial]));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Some(uri) = distribution_point {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![uri.to_string()],
            }];
        }
        params
    }

    fn issue(params: CertificateParams, issuer: &Issuer<'_, KeyPair>) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, issuer).unwrap().der().clone()
    }

    fn crl(
        issuer: &Issuer<'_, KeyPair>,
        revoked: &[u8],
        scope: Option<(Option<CrlScope>, &str)>,
    ) -> Vec<u8> {
        crl_until(issuer, revoked, scope, 86_400)
    }

    /// A CRL whose nextUpdate is `next_update_in` seconds from now (negative: already passed).
    fn crl_until(
        issuer: &Issuer<'_, KeyPair>,
        revoked: &[u8],
        scope: Option<(Option<CrlScope>, &str)>,
        next_update_in: i64,
    ) -> Vec<u8> {
        let now = rcgen::date_time_ymd(2020, 1, 1)
            + Duration::from_secs(UnixTime::now().as_secs() - 1_577_836_800);
        let next_update = match next_update_in >= 0 {
            true => now + Duration::from_secs(next_update_in.unsigned_abs()),
            false => now - Duration::from_secs(next_update_in.unsigned_abs()),
        };
        CertificateRevocationListParams {
            this_update: now - Duration::from_secs(7200),
            next_update,
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: scope.map(|(scope, uri)| CrlIssuingDistributionPoint {
                distribution_point: CrlDistributionPoint {
                    uris: vec![uri.to_string()],
                },
                scope,
            }),
            revoked_certs: revoked
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&[*serial]),
                    revocation_time: now - Duration::from_secs(3600),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(issuer)
        .unwrap()
        .der()
        .to_vec()
    }

    /// A verifier trusting `root` with `crls` loaded as `--crl` files would be.
    fn verifier(
        root: &CertificateDer<'static>,
        crls: &[Vec<u8>],
        rules: RevocationPolicy,
    ) -> ClientVerifier {
        let bundle = vec![root.clone()];
        let indexed = crls
            .iter()
            .flat_map(|der| parse_crls("--crl", Path::new("test.crl"), der, &bundle).unwrap())
            .map(|loaded| loaded.indexed)
            .collect();
        let trust = classify("test", &bundle, UnixTime::now()).unwrap();
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        ClientVerifier::new(
            trust,
            algorithms,
            Some(RevocationIndex::new(indexed, rules)),
        )
    }

    fn verdict(verifier: &ClientVerifier, chain: &[CertificateDer<'static>]) -> Result<(), Error> {
        verifier
            .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
            .map(|_| ())
    }

    fn refused(error: CertificateError) -> Result<(), Error> {
        Err(Error::InvalidCertificate(error))
    }

    #[test]
    fn revoked_serial_is_refused_and_others_pass() {
        let root = root();
        let verifier = verifier(root.der(), &[crl(&root, &[7], None)], STRICT);
        assert_eq!(
            verdict(&verifier, &[issue(leaf(7, None), &root)]),
            refused(CertificateError::Revoked)
        );
        assert_eq!(verdict(&verifier, &[issue(leaf(8, None), &root)]), Ok(()));
    }

    #[test]
    fn expired_crl_still_revokes_what_it_lists() {
        let root = root();
        let expired = crl_until(&root, &[7], None, -60);
        let verifier = verifier(root.der(), &[expired], STRICT);
        assert_eq!(
            verdict(&verifier, &[issue(leaf(7, None), &root)]),
            refused(CertificateError::Revoked),
            "a listed serial is revoked whatever the CRL's nextUpdate"
        );
        assert!(
            matches!(
                verdict(&verifier, &[issue(leaf(8, None), &root)]),
                Err(Error::InvalidCertificate(
                    CertificateError::ExpiredRevocationListContext { .. }
                ))
            ),
            "a serial not listed in an expired CRL has no fresh status"
        );
    }

    #[test]
    fn crl_whose_issuer_name_is_encoded_differently_still_applies() {
        let key = KeyPair::generate().unwrap();
        let same_key = KeyPair::from_pem(&key.serialize_pem()).unwrap();
        let root = CertifiedIssuer::self_signed(ca("Test Root", ca_usages()), key).unwrap();
        // The CA's subject has a UTF8String; the CRL names it with a PrintableString, in
        // capitals, with extra spaces: the same name for RFC 5280, other bytes.
        let mut printable = ca("unused", ca_usages());
        printable.distinguished_name = rcgen::DistinguishedName::new();
        printable.distinguished_name.push(
            DnType::CommonName,
            rcgen::DnValue::PrintableString("TEST  ROOT".try_into().unwrap()),
        );
        let crl_signer = Issuer::new(printable, same_key);
        let verifier = verifier(root.der(), &[crl(&crl_signer, &[7], None)], STRICT);
        assert_eq!(
            verdict(&verifier, &[issue(leaf(7, None), &root)]),
            refused(CertificateError::Revoked),
            "the CRL applies to the CA it names"
        );
        assert_eq!(verdict(&verifier, &[issue(leaf(8, None), &root)]), Ok(()));
    }

    #[test]
    fn crl_scoped_to_cas_does_not_vouch_for_leaves() {
        let root = root();
        let ca_only = crl(
            &root,
            &[],
            Some((Some(CrlScope::CaCertsOnly), "http://crl/ca")),
        );
        let cert = issue(leaf(7, None), &root);
        assert_eq!(
            verdict(
                &verifier(root.der(), std::slice::from_ref(&ca_only), STRICT),
                std::slice::from_ref(&cert)
            ),
            refused(CertificateError::UnknownRevocationStatus)
        );
        let lenient = RevocationPolicy {
            allow_unknown: true,
            ..STRICT
        };
        assert_eq!(
            verdict(&verifier(root.der(), &[ca_only], lenient), &[cert]),
            Ok(())
        );
    }

    #[test]
    fn crl_with_a_distribution_point_covers_only_certificates_that_name_it() {
        let root = root();
        let scoped = crl(&root, &[7, 8], Some((None, "http://crl/a")));
        let verifier = verifier(root.der(), &[scoped], STRICT);
        assert_eq!(
            verdict(&verifier, &[issue(leaf(7, Some("http://crl/a")), &root)]),
            refused(CertificateError::Revoked)
        );
        assert_eq!(
            verdict(&verifier, &[issue(leaf(8, Some("http://crl/b")), &root)]),
            refused(CertificateError::UnknownRevocationStatus),
            "a certificate pointing at another CRL is not covered by this one"
        );
        assert_eq!(
            verdict(&verifier, &[issue(leaf(8, None), &root)]),
            refused(CertificateError::Revoked),
            "a certificate without distribution points is covered by issuer name"
        );
    }

    #[test]
    fn intermediate_crl_is_verified_with_the_intermediate_on_the_path() {
        let root = root();
        let intermediate = CertifiedIssuer::signed_by(
            ca("intermediate", ca_usages()),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        // Same name, another key: its CRL cannot be checked at load (not in the bundle) and
        // must not be believed at handshake time either.
        let impostor = Issuer::new(
            ca("intermediate", ca_usages()),
            KeyPair::generate().unwrap(),
        );
        let chain = [
            issue(leaf(7, None), &intermediate),
            intermediate.der().clone(),
        ];
        let root_crl = crl(&root, &[], None);

        let genuine = verifier(
            root.der(),
            &[root_crl.clone(), crl(&intermediate, &[7], None)],
            STRICT,
        );
        assert_eq!(
            verdict(&genuine, &chain),
            refused(CertificateError::Revoked)
        );
        assert_eq!(
            verdict(&genuine, &chain),
            refused(CertificateError::Revoked),
            "the verdict cached after the first check is the same"
        );

        let forged = verifier(root.der(), &[root_crl, crl(&impostor, &[], None)], STRICT);
        assert_eq!(
            verdict(&forged, &chain),
            Err(Error::InvalidCertRevocationList(
                CertRevocationListError::BadSignature
            ))
        );
    }

    #[test]
    fn intermediate_without_crl_sign_may_not_issue_crls() {
        let root = root();
        let key = KeyPair::generate().unwrap();
        // rcgen refuses to sign a CRL for an issuer without cRLSign, so the CRL is signed with
        // the intermediate's key under parameters that claim it.
        let crl_signer = Issuer::new(
            ca("intermediate", ca_usages()),
            KeyPair::from_pem(&key.serialize_pem()).unwrap(),
        );
        let intermediate = CertifiedIssuer::signed_by(
            ca("intermediate", vec![KeyUsagePurpose::KeyCertSign]),
            key,
            &root,
        )
        .unwrap();
        let chain = [
            issue(leaf(7, None), &intermediate),
            intermediate.der().clone(),
        ];
        let crls = [crl(&root, &[], None), crl(&crl_signer, &[], None)];
        assert_eq!(
            verdict(&verifier(root.der(), &crls, STRICT), &chain),
            Err(Error::InvalidCertRevocationList(
                CertRevocationListError::IssuerInvalidForCrl
            ))
        );
    }

    #[test]
    fn serial_set_finds_exact_serials_only() {
        let set = SerialSet::new(vec![&[0x05], &[0x00, 0x80], &[0x01, 0x02, 0x03], &[0x05]]);
        assert_eq!(set.spans.len(), 3, "duplicates are dropped");
        assert!(set.contains(&[0x05]));
        assert!(set.contains(&[0x00, 0x80]));
        assert!(set.contains(&[0x01, 0x02, 0x03]));
        assert!(
            !set.contains(&[0x80]),
            "no sign-padding games: bytes must match"
        );
        assert!(!set.contains(&[0x01, 0x02]));
        assert!(!set.contains(&[]));
        assert!(!SerialSet::new(Vec::new()).contains(&[0x05]));
    }

    #[test]
    fn der_sequence_encodes_short_and_long_lengths() {
        assert_eq!(der_sequence(&[1, 2]), vec![0x30, 2, 1, 2]);
        let long = der_sequence(&[7; 300]);
        assert_eq!(&long[..4], &[0x30, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }
}
