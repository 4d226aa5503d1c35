//! TLS: everything between the files on disk and a rustls `ServerConfig` that refuses revoked,
//! expired, foreign and missing client certificates.
//!
//! - `load`: reading certificates, keys and CRLs, with errors that name the flag and the file.
//! - `anchors`: which CAs of `--tlscacert` are trust anchors, which are intermediates.
//! - `verifier`: the client verifier: chain, revocation, and the name of refused certificates.
//! - `revocation`: the CRL index the verifier consults.
//! - `names`: comparing X.500 names as RFC 5280 does (CRL issuer against CA subject).
//! - `identity`: subject and serial of a client certificate.
//! - `handshake`: one server handshake with its deadline, naming the certificate it refuses.
//! - `stream`: one TLS connection shared by the two copy threads.

pub mod anchors;
pub mod cdp;
pub mod handshake;
pub mod identity;
pub mod load;
pub mod names;
pub mod revocation;
pub mod stream;
pub mod verifier;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::UnixTime;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::NoServerSessionStorage;
use rustls::ServerConfig;
use x509_parser::prelude::{FromDer, X509Certificate};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use self::load::{parse_certs, parse_crls, parse_key, parse_pfx, CrlSummary, LoadError};
use self::revocation::RevocationIndex;
use self::verifier::ClientVerifier;

/// The files that make up the gate's TLS identity and client trust.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// `--tlscacert`: the CA bundle that issues client certificates (and nothing else).
    pub client_ca: PathBuf,
    /// The gate's own certificate and key.
    pub server: ServerIdentity,
    /// `--crl`: revocation lists, one or more per file.
    pub crls: Vec<PathBuf>,
    /// CRLs fetched from `--crl-url` into the cache directory. Unlike `crls`, a missing file is
    /// not an error: it has not been fetched yet.
    pub fetched_crls: Vec<PathBuf>,
}

/// Where the server certificate and key come from.
#[derive(Clone, Debug)]
pub enum ServerIdentity {
    /// `--tlscert` (chain) and `--tlskey`, PEM.
    Pem { cert: PathBuf, key: PathBuf },
    /// `--tlspfx` with `--tlspfx-password-file`: PKCS#12, as Windows exports certificates.
    Pfx {
        file: PathBuf,
        password_file: PathBuf,
    },
}

impl ServerIdentity {
    fn files(&self) -> [&PathBuf; 2] {
        match self {
            ServerIdentity::Pem { cert, key } => [cert, key],
            ServerIdentity::Pfx {
                file,
                password_file,
            } => [file, password_file],
        }
    }

    /// The chain and the key, from the files' contents.
    fn load(
        &self,
        contents: &FileContents,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), LoadError> {
        match self {
            ServerIdentity::Pem { cert, key } => Ok((
                parse_certs("--tlscert", cert, contents.get("--tlscert", cert)?)?,
                parse_key("--tlskey", key, contents.get("--tlskey", key)?)?,
            )),
            ServerIdentity::Pfx {
                file,
                password_file,
            } => parse_pfx(
                file,
                contents.get("--tlspfx", file)?,
                password_file,
                contents.get("--tlspfx-password-file", password_file)?,
            ),
        }
    }

    /// The flags and files, for the error when the key does not match the certificate.
    fn describe(&self) -> String {
        match self {
            ServerIdentity::Pem { cert, key } => format!(
                "--tlskey {}: does not match the certificate in --tlscert {}",
                key.display(),
                cert.display()
            ),
            ServerIdentity::Pfx { file, .. } => format!(
                "--tlspfx {}: the private key does not match the certificate",
                file.display()
            ),
        }
    }
}

impl TlsFiles {
    /// The flag a file was given with, for error messages.
    pub fn flag_of(&self, path: &Path) -> &'static str {
        match &self.server {
            _ if path == self.client_ca => "--tlscacert",
            ServerIdentity::Pem { cert, .. } if path == cert => "--tlscert",
            ServerIdentity::Pem { key, .. } if path == key => "--tlskey",
            ServerIdentity::Pfx { file, .. } if path == file => "--tlspfx",
            ServerIdentity::Pfx { password_file, .. } if path == password_file => {
                "--tlspfx-password-file"
            }
            _ => "--crl",
        }
    }

    /// Every file the configuration is built from, for the reload watcher.
    pub fn all(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.client_ca)
            .chain(self.server.files())
            .chain(&self.crls)
            .chain(&self.fetched_crls)
    }
}

/// The bytes of the input files, each read once: what is built is exactly what was read (and,
/// on reload, what was hashed to notice the next change).
#[derive(Default)]
pub struct FileContents(HashMap<PathBuf, Vec<u8>>);

impl FileContents {
    pub fn insert(&mut self, path: PathBuf, bytes: Vec<u8>) {
        self.0.insert(path, bytes);
    }

    fn get(&self, flag: &str, path: &Path) -> Result<&[u8], LoadError> {
        self.0
            .get(path)
            .map(Vec::as_slice)
            .ok_or_else(|| LoadError(format!("{flag} {}: cannot read: not found", path.display())))
    }

    fn has(&self, path: &Path) -> bool {
        self.0.contains_key(path)
    }
}

/// How strictly revocation is enforced. The default (all false, `enabled`) fails closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevocationPolicy {
    /// False only with `--no-crl`.
    pub enabled: bool,
    /// `--crl-leaf-only`: check only the client's own certificate, not its intermediates.
    pub leaf_only: bool,
    /// `--crl-allow-unknown`: accept a certificate whose issuer has no CRL.
    pub allow_unknown: bool,
    /// `--crl-allow-expired`: accept CRLs past their nextUpdate.
    pub allow_expired: bool,
}

impl RevocationPolicy {
    /// One line for the start-up log, naming every softened rule.
    pub fn describe(&self) -> String {
        if !self.enabled {
            return "OFF (--no-crl): revoked certificates are accepted".into();
        }
        let mut parts = vec![if self.leaf_only {
            "leaf certificate only (--crl-leaf-only)"
        } else {
            "whole chain"
        }];
        parts.push(if self.allow_unknown {
            "unknown status accepted (--crl-allow-unknown)"
        } else {
            "unknown status refused"
        });
        parts.push(if self.allow_expired {
            "expired CRLs accepted (--crl-allow-expired)"
        } else {
            "expired CRLs refused"
        });
        parts.join(", ")
    }

    pub fn is_softened(&self) -> bool {
        !self.enabled || self.leaf_only || self.allow_unknown || self.allow_expired
    }
}

/// A ready server configuration plus what was loaded to build it.
pub struct LoadedTls {
    pub config: Arc<ServerConfig>,
    /// The verifier inside `config`, to re-check the chains of live connections after a reload.
    pub client_verifier: Arc<dyn ClientCertVerifier>,
    pub client_ca_count: usize,
    pub crls: Vec<CrlSummary>,
    /// Subject, serial and notAfter of the server certificate, for the reload log.
    pub server_cert: String,
}

/// Always the ring provider, passed explicitly: if two providers end up compiled in,
/// rustls' implicit `builder()` panics.
///
/// AES-128-GCM suites come first, and the server's order wins (`ignore_client_order`): the
/// docker CLI (Go) and rustls clients list AES-256-GCM first, whose SHA-384 has no hardware path,
/// while dockerd's own TLS port (Go's server) picks AES-128-GCM. Both are strong; choosing the
/// same suite as dockerd keeps the gate's handshakes and streams as cheap as Docker's own.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    // A stable sort: among themselves the suites keep ring's order (TLS 1.3 ones first).
    provider
        .cipher_suites
        .sort_by_key(|suite| !is_aes_128_gcm(suite.suite()));
    Arc::new(provider)
}

fn is_aes_128_gcm(suite: rustls::CipherSuite) -> bool {
    use rustls::CipherSuite::*;
    matches!(
        suite,
        TLS13_AES_128_GCM_SHA256
            | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    )
}

/// Builds the server configuration from the files' contents (`reload::Inputs` reads them).
/// Nothing is half-applied: any error leaves the caller with whatever configuration it had
/// before.
pub fn build_from_contents(
    files: &TlsFiles,
    contents: &FileContents,
    policy: RevocationPolicy,
) -> Result<LoadedTls, LoadError> {
    let provider = crypto_provider();

    let ca_bundle = parse_certs(
        "--tlscacert",
        &files.client_ca,
        contents.get("--tlscacert", &files.client_ca)?,
    )?;
    let trust = anchors::classify(
        &files.client_ca.display().to_string(),
        &ca_bundle,
        UnixTime::now(),
    )?;
    // On every load (start and reload): an expired CA in the bundle is worth repeating.
    for warning in &trust.warnings {
        log::warn!("{warning}");
    }

    let mut indexed_crls = Vec::new();
    let mut crl_summaries = Vec::new();
    let fetched = files.fetched_crls.iter().filter(|path| contents.has(path));
    for path in files.crls.iter().chain(fetched) {
        for crl in parse_crls("--crl", path, contents.get("--crl", path)?, &ca_bundle)? {
            indexed_crls.push(crl.indexed);
            crl_summaries.push(crl.summary);
        }
    }

    let revocation = match policy.enabled {
        false => None,
        // With no CRL at all every certificate's status would be "unknown". That happens only
        // when every CRL is to come from a URL and none has been fetched yet: refuse to build
        // rather than start refusing everyone (or, with --crl-allow-unknown, no one).
        true if indexed_crls.is_empty() => {
            return Err(LoadError(
                "no CRL available yet: --crl-url not fetched and no cached copy".into(),
            ))
        }
        true => Some(RevocationIndex::new(indexed_crls, policy)),
    };
    let verifier: Arc<dyn ClientCertVerifier> = Arc::new(ClientVerifier::new(
        trust,
        provider.signature_verification_algorithms,
        revocation,
    ));

    let (server_chain, server_key) = files.server.load(contents)?;
    let server_cert = describe_cert(&server_chain[0]);

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| LoadError(format!("TLS versions: {e}")))?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(server_chain, server_key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => LoadError(files.server.describe()),
            other => LoadError(format!("server certificate and key: {other}")),
        })?;

    // A resumed session skips client verification, and with it the CRL: a client revoked after
    // its first handshake could keep resuming. No session cache, no tickets.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    // The server's suite order (see `crypto_provider`).
    config.ignore_client_order = true;
    // No ALPN: Docker clients speak HTTP/1.1, and hijacking (Upgrade) needs it.
    config.alpn_protocols.clear();

    Ok(LoadedTls {
        config: Arc::new(config),
        client_verifier: verifier,
        client_ca_count: ca_bundle.len(),
        crls: crl_summaries,
        server_cert,
    })
}

fn describe_cert(der: &[u8]) -> String {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => format!(
            "\"{}\" serial {} valid until {}",
            cert.subject(),
            identity::serial_hex(cert.raw_serial()),
            cert.validity().not_after
        ),
        Err(_) => "unparsable certificate".into(),
    }
}
