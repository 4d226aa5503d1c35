//! Making certificates with rcgen: the CA itself, the gate's server certificate and client
//! certificates, all ECDSA P-256 with SHA-256. Each leaf gets a random 128-bit serial, a
//! validity that starts five minutes in the past (clock skew between the CA host and the
//! machines that check), exactly one extended key usage (serverAuth or clientAuth) so that a
//! client certificate can never serve as the gate and the other way round, and an Authority Key
//! Identifier that names the CA.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use super::files::read_text;

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server-key.pem";

const DAY: Duration = Duration::from_secs(86_400);
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The CA: its certificate (PEM, as written to `ca.pem`) and what signs with its key.
pub struct Ca {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate just made, with its new key.
pub struct Issued {
    pub serial: String,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// PKCS#8, PEM and DER. Never printed or logged.
    pub key_pem: String,
    pub key_der: Vec<u8>,
    pub subject: String,
    pub not_after: SystemTime,
}

/// What goes into a client certificate besides its name.
#[derive(Default)]
pub struct ClientProfile {
    pub organizational_units: Vec<String>,
    pub san_uris: Vec<String>,
}

/// What the gate's certificate names: DNS names (the first is also its CN) and IP addresses.
pub struct ServerNames {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Ca {
    /// A new self-signed CA named `common_name`, valid for `days`; returns it and its key (PEM).
    pub fn create(common_name: &str, days: u32) -> Result<(Ca, String), String> {
        let key = new_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name, &[]);
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        set_validity(&mut params, days);
        // pathlen 0: this CA signs leaves only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("cannot make the CA certificate: {e}"))?;
        let key_pem = key.serialize_pem();
        let ca = Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        };
        Ok((ca, key_pem))
    }

    /// The CA of `dir`: `ca.pem` and `ca-key.pem`, which must belong together.
    pub fn load(dir: &Path) -> Result<Ca, String> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let cert_pem = read_text(&cert_path)?;
        let key = KeyPair::from_pem(&read_text(&key_path)?)
            .map_err(|e| format!("{}: not a private key: {e}", key_path.display()))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("{}: not a PEM certificate: {e}", cert_path.display()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| format!("{}: malformed certificate: {e}", cert_path.display()))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(format!(
                "{} does not belong to {} (different public keys)",
                key_path.display(),
                cert_path.display()
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| format!("{}: cannot sign with it: {e}", cert_path.display()))?;
        Ok(Ca {
            cert_der: cert_der.to_vec(),
            cert_pem,
            issuer,
        })
    }

    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// The gate's certificate: serverAuth, SANs for every name and IP, valid for `days`.
    pub fn issue_server(&self, names: &ServerNames, days: u32) -> Result<Issued, String> {
        let first = names
            .dns
            .first()
            .ok_or("a server certificate needs at least one --server-name")?;
        let mut params = leaf_params(dn(first, &[]), days, ExtendedKeyUsagePurpose::ServerAuth)?;
        for name in &names.dns {
            let name = name
                .clone()
                .try_into()
                .map_err(|_| format!("--server-name {name:?} is not a DNS name"))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(names.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        self.sign(params, subject_text(first, &[]))
    }

    /// A client certificate for `name`: clientAuth only, CN=name, one OU per `--ou`.
    pub fn issue_client(
        &self,
        name: &str,
        profile: &ClientProfile,
        days: u32,
    ) -> Result<Issued, String> {
        let mut params = leaf_params(
            dn(name, &profile.organizational_units),
            days,
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        for uri in &profile.san_uris {
            let value = uri
                .clone()
                .try_into()
                .map_err(|_| format!("--san-uri {uri:?} is not an ASCII URI"))?;
            params.subject_alt_names.push(SanType::URI(value));
        }
        self.sign(params, subject_text(name, &profile.organizational_units))
    }

    fn sign(&self, params: CertificateParams, subject: String) -> Result<Issued, String> {
        let key = new_key()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| format!("cannot sign the certificate of {subject}: {e}"))?;
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| hex(s.as_ref()))
            .unwrap_or_default();
        Ok(Issued {
            serial,
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            subject,
            not_after: params.not_after.into(),
        })
    }
}

fn new_key() -> Result<KeyPair, String> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("cannot generate a P-256 key: {e}"))
}

fn leaf_params(
    subject: DistinguishedName,
    days: u32,
    usage: ExtendedKeyUsagePurpose,
) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    set_validity(&mut params, days);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn set_validity(params: &mut CertificateParams, days: u32) {
    let now = SystemTime::now();
    params.not_before = OffsetDateTime::from(now - CLOCK_SKEW);
    params.not_after = OffsetDateTime::from(now + DAY * days);
}

fn dn(common_name: &str, organizational_units: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for ou in organizational_units {
        dn.push(DnType::OrganizationalUnitName, ou.as_str());
    }
    dn
}

/// The subject as dockgate's log shows it (`CN=alice, OU=dev`), for `ca list`.
fn subject_text(common_name: &str, organizational_units: &[String]) -> String {
    std::iter::once(format!("CN={common_name}"))
        .chain(organizational_units.iter().map(|ou| format!("OU={ou}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// 16 random bytes, first bit clear (a positive ASN.1 integer) and first byte non-zero (so the
/// DER encoding is exactly these bytes and the hex that logs show is stable).
fn random_serial() -> Result<[u8; 16], String> {
    let mut serial = [0u8; 16];
    let random = rustls::crypto::ring::default_provider().secure_random;
    random
        .fill(&mut serial)
        .map_err(|_| "the system random number generator failed".to_string())?;
    serial[0] = (serial[0] & 0x7f).max(1);
    Ok(serial)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
