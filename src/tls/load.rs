//! Reading certificates, keys and CRLs from disk.
//!
//! Every error names the flag and the file, because the person reading it is an operator who passed
//! several files on one command line. Certificates and CRLs are accepted as PEM or DER; keys as PEM.

use std::fmt;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use x509_parser::num_bigint::BigUint;
use x509_parser::oid_registry::{
    OID_X509_EXT_FRESHEST_CRL, OID_X509_EXT_ISSUER_DISTRIBUTION_POINT,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::time::ASN1Time;

use super::names::canonical_name;
use super::revocation::IndexedCrl;

/// A problem with one input file, already phrased for the operator.
#[derive(Debug)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

fn err(flag: &str, path: &Path, problem: impl fmt::Display) -> LoadError {
    LoadError(format!("{flag} {}: {problem}", path.display()))
}

fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|e| err(flag, path, format!("cannot read: {e}")))
}

/// rustls' PEM errors print markers as byte lists; say it in words.
fn describe_pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { end_marker } => format!(
            "malformed PEM: missing the line -----END {}----- (truncated file?)",
            String::from_utf8_lossy(end_marker)
        ),
        Error::IllegalSectionStart { line } => format!(
            "malformed PEM: bad BEGIN line {}",
            String::from_utf8_lossy(line)
        ),
        other => format!("malformed PEM: {other}"),
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Loads one or more certificates (a chain or a CA bundle). At least one is required.
pub fn load_certs(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    parse_certs(flag, path, &read_file(flag, path)?)
}

/// `load_certs` on bytes already read from `path`.
pub fn parse_certs(
    flag: &str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let certs: Vec<CertificateDer<'static>> = if looks_like_pem(bytes) {
        CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| err(flag, path, describe_pem_error(&e)))?
    } else {
        vec![CertificateDer::from(bytes.to_vec())]
    };
    if certs.is_empty() {
        return Err(err(flag, path, "no CERTIFICATE found"));
    }
    for (index, cert) in certs.iter().enumerate() {
        if let Err(e) = X509Certificate::from_der(cert) {
            return Err(err(
                flag,
                path,
                format!("certificate #{} is not valid X.509: {e}", index + 1),
            ));
        }
    }
    Ok(certs)
}

/// The server's private key (PKCS#8, PKCS#1 or SEC1 PEM), from bytes read from `path`.
pub fn parse_key(
    flag: &str,
    path: &Path,
    bytes: &[u8],
) -> Result<PrivateKeyDer<'static>, LoadError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => err(flag, path, "no PRIVATE KEY found"),
        other => err(flag, path, format!("malformed private key: {other}")),
    })
}

/// Loads the server chain and key from a PKCS#12 file (`.pfx`, as Windows exports them).
///
/// The whole password file is the password. A trailing newline is refused with a message
/// rather than tried: `echo secret > file` is the usual mistake, and a silent mismatch would
/// only say "wrong password".
///
/// `bytes` and `password` are the contents of `path` and `password_file`, already read.
pub fn parse_pfx(
    path: &Path,
    bytes: &[u8],
    password_file: &Path,
    password: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), LoadError> {
    const FLAG: &str = "--tlspfx";
    if password.ends_with(b"\n") {
        return Err(err(
            "--tlspfx-password-file",
            password_file,
            "ends with a newline, but the whole file is the password; write it without one (printf '%s' \"$PASSWORD\" > FILE)",
        ));
    }
    let password = std::str::from_utf8(password).map_err(|_| {
        err(
            "--tlspfx-password-file",
            password_file,
            "the password is not UTF-8 text",
        )
    })?;
    let store = p12_keystore::KeyStore::from_pkcs12(
        bytes,
        password,
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .map_err(|e| {
        err(
            FLAG,
            path,
            format!("cannot open (wrong password or not PKCS#12?): {e}"),
        )
    })?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| err(FLAG, path, "holds no private key with its certificate"))?;
    let certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|cert| CertificateDer::from(cert.as_der().to_vec()))
        .collect();
    if certs.is_empty() {
        return Err(err(
            FLAG,
            path,
            "holds a private key without its certificate",
        ));
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    Ok((certs, key))
}

/// One CRL: indexed for the handshakes, summarised for the operator at start and reload.
pub struct LoadedCrl {
    pub indexed: IndexedCrl,
    pub summary: CrlSummary,
}

/// Facts about a CRL, extracted once at load time for logs and expiry checks.
#[derive(Clone, Debug)]
pub struct CrlSummary {
    pub file: String,
    pub issuer: String,
    pub number: Option<String>,
    pub this_update: ASN1Time,
    pub next_update: Option<ASN1Time>,
    pub revoked: usize,
    /// False when the issuing CA is not in `--tlscacert` (an intermediate the clients send):
    /// its signature is then checked at the first handshake that needs it.
    pub signature_checked: bool,
    /// Who issued it and what it covers, for pinning and rollback checks (`crl_history`).
    pub identity: CrlIdentity,
}

/// What makes two CRLs "the same CRL, another edition": issuer name and key, and scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlIdentity {
    /// The issuer Name in its canonical form (`names`), or its DER when that does not parse.
    pub issuer_name: Vec<u8>,
    /// The subjectPublicKeyInfos in `--tlscacert` its signature verified with; empty when its
    /// issuer is not in the bundle.
    pub issuer_keys: Vec<Vec<u8>>,
    /// The issuingDistributionPoint extension's value (empty: none, the CRL covers everything).
    pub scope: Vec<u8>,
    /// cRLNumber, when the CRL has one.
    pub number: Option<BigUint>,
    /// thisUpdate, seconds since the epoch.
    pub this_update: i64,
}

impl fmt::Display for CrlSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (issuer \"{}\"", self.file, self.issuer)?;
        if let Some(number) = &self.number {
            write!(f, ", number {number}")?;
        }
        write!(
            f,
            ", {} revoked, thisUpdate {}",
            self.revoked, self.this_update
        )?;
        match self.next_update {
            Some(next) => write!(f, ", nextUpdate {next})"),
            None => write!(f, ", no nextUpdate)"),
        }
    }
}

/// Parses the CRLs in `bytes` (PEM or DER) and checks each against the CA bundle. `label` and
/// `path` name the source in errors.
///
/// A source that yields no CRL is an error: a typo must never switch revocation off silently.
pub fn parse_crls(
    label: &str,
    path: &Path,
    bytes: &[u8],
    ca_bundle: &[CertificateDer<'static>],
) -> Result<Vec<LoadedCrl>, LoadError> {
    let ders: Vec<CertificateRevocationListDer<'static>> = if looks_like_pem(bytes) {
        CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| err(label, path, describe_pem_error(&e)))?
    } else {
        vec![CertificateRevocationListDer::from(bytes.to_vec())]
    };
    if ders.is_empty() {
        return Err(err(label, path, "no X509 CRL found"));
    }
    ders.iter()
        .map(|der| load_one_crl(label, path, der, ca_bundle))
        .collect()
}

/// Parses a CRL, verifies its signature with the CA in the bundle that issued it, and indexes it.
///
/// Checking the signature here turns a CRL from the wrong CA into a start-up error instead of
/// every client being refused later, and lets the handshakes skip it (see `revocation`).
fn load_one_crl(
    label: &str,
    path: &Path,
    der: &CertificateRevocationListDer<'_>,
    ca_bundle: &[CertificateDer<'static>],
) -> Result<LoadedCrl, LoadError> {
    let (_, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| err(label, path, format!("not a valid X.509 CRL: {e}")))?;
    let issuer_der = crl.issuer().as_raw();
    let issuer_canonical = canonical_name(issuer_der);
    let names_issuer = |subject: &[u8]| {
        subject == issuer_der
            || issuer_canonical.is_some() && canonical_name(subject) == issuer_canonical
    };
    let issuers: Vec<X509Certificate<'_>> = ca_bundle
        .iter()
        .filter_map(|cert| X509Certificate::from_der(cert).ok().map(|(_, c)| c))
        .filter(|cert| names_issuer(cert.subject().as_raw()))
        .collect();
    let verified_keys: Vec<Vec<u8>> = issuers
        .iter()
        .filter(|ca| crl.verify_signature(ca.public_key()).is_ok())
        .map(|ca| ca.public_key().raw.to_vec())
        .collect();
    let signature_checked = !issuers.is_empty();
    if signature_checked && verified_keys.is_empty() {
        return Err(err(
            label,
            path,
            format!(
                "signature does not verify with the CA \"{}\" in --tlscacert",
                crl.issuer()
            ),
        ));
    }
    if crl
        .extensions()
        .iter()
        .any(|ext| ext.oid == OID_X509_EXT_FRESHEST_CRL)
    {
        log::warn!(
            "{label} {}: the CRL of \"{}\" points to delta CRLs (freshestCRL); dockgate does not fetch or apply delta CRLs, so revocations published only in a delta take effect with the next full CRL",
            path.display(),
            crl.issuer()
        );
    }
    let scope = crl
        .extensions()
        .iter()
        .find(|ext| ext.oid == OID_X509_EXT_ISSUER_DISTRIBUTION_POINT)
        .map_or(Vec::new(), |ext| ext.value.to_vec());
    let identity = CrlIdentity {
        issuer_name: issuer_canonical.map_or_else(|| issuer_der.to_vec(), String::into_bytes),
        issuer_keys: verified_keys.clone(),
        scope,
        number: crl.crl_number().cloned(),
        this_update: crl.last_update().timestamp(),
    };
    let summary = CrlSummary {
        file: path.display().to_string(),
        issuer: crl.issuer().to_string(),
        number: crl.crl_number().map(|n| n.to_string()),
        this_update: crl.last_update(),
        next_update: crl.next_update(),
        revoked: crl.iter_revoked_certificates().count(),
        signature_checked,
        identity,
    };
    let indexed = IndexedCrl::new(der, &crl, verified_keys).map_err(|e| err(label, path, e))?;
    Ok(LoadedCrl { indexed, summary })
}

/// The http(s) CRL Distribution Points named in CA certificates (`--crl-from-cdp`).
pub fn distribution_points(certs: &[CertificateDer<'_>]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for der in certs {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            continue;
        };
        for point in super::cdp::crl_uris(&cert).unwrap_or_default() {
            let http = point.uri.starts_with("http://") || point.uri.starts_with("https://");
            if http && !urls.contains(&point.uri) {
                urls.push(point.uri);
            }
        }
    }
    urls
}
