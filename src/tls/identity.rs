//! Who a client certificate says it is: the subject and serial that every audit line carries.
//!
//! Subjects are written as RFC 4514 strings (`CN=alice,O=Ops,C=DE`: the last RDN first, `,`
//! between RDNs, `+` inside a multi-valued one, and `\\` before the characters that would
//! otherwise read as structure), so that a CN holding `alice, O=Ops` (written `CN=alice\\, O=Ops`)
//! cannot pass for two RDNs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex};

use x509_parser::der_parser::asn1_rs::Any;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// The identity of a client certificate, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The full subject distinguished name per RFC 4514, e.g. `CN=alice,O=Example`.
    pub subject: String,
    /// The serial number in lowercase hex without leading zero bytes, as `openssl x509 -serial`
    /// prints it (but lowercase): the value a CRL lists.
    pub serial: String,
}

impl PeerIdentity {
    /// The identity of a DER certificate; `None` when it is not valid X.509.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        CertFacts::of(der).map(|facts| facts.identity.clone())
    }
}

/// What the gate needs to know of a client certificate beyond its verification.
#[derive(Debug, PartialEq, Eq)]
pub struct CertFacts {
    pub identity: PeerIdentity,
    /// The issuer distinguished name per RFC 4514.
    pub issuer: String,
}

impl CertFacts {
    /// The facts of a DER certificate; `None` when it is not valid X.509. Clients connect
    /// again and again with the same certificate, so the answer is remembered (`KNOWN`) rather
    /// than parsed at every handshake.
    pub fn of(der: &[u8]) -> Option<Arc<CertFacts>> {
        if let Some(known) = crate::locks::recover(&KNOWN).get(der) {
            return Some(known.clone());
        }
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let facts = Arc::new(CertFacts {
            identity: PeerIdentity {
                subject: rfc4514(cert.subject()),
                serial: serial_hex(cert.raw_serial()),
            },
            issuer: rfc4514(cert.issuer()),
        });
        let mut known = crate::locks::recover(&KNOWN);
        if known.len() >= KNOWN_MAX {
            // Many distinct certificates (or someone sending new ones): start over rather
            // than grow; the cost is one parse per handshake, as without the cache.
            known.clear();
        }
        known.insert(der.into(), facts.clone());
        Some(facts)
    }
}

/// The facts of recently seen certificates, by DER. `locks`: recovered (a map from a
/// certificate to what it says cannot be torn by a panic elsewhere).
static KNOWN: LazyLock<Mutex<FactsByDer>> = LazyLock::new(|| Mutex::new(HashMap::new()));
type FactsByDer = HashMap<Box<[u8]>, Arc<CertFacts>>;
/// At most this many certificates are remembered (a few hundred KiB).
const KNOWN_MAX: usize = 256;

/// The RFC 4514 string of a distinguished name.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attribute) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attribute.attr_type().to_id_string();
            match short_name(&oid) {
                Some(short) => {
                    out.push_str(short);
                    out.push('=');
                    push_value(&mut out, attribute.attr_value());
                }
                // RFC 4514 2.4: a type without a short name gets its value as `#` + DER hex.
                None => {
                    let _ = write!(out, "{oid}=#{}", der_hex(attribute.attr_value()));
                }
            }
        }
    }
    out
}

/// The short names RFC 4514 section 3 defines.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// A string value with RFC 4514's escapes; a value that is no string as `#` + DER hex.
fn push_value(out: &mut String, value: &Any<'_>) {
    let Some(text) = super::names::directory_string(value) else {
        out.push('#');
        out.push_str(&der_hex(value));
        return;
    };
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
}

/// The DER encoding of `value` (tag, length, contents) in lowercase hex.
fn der_hex(value: &Any<'_>) -> String {
    use x509_parser::der_parser::asn1_rs::ToDer;
    match value.to_der_vec() {
        Ok(der) => der.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => String::new(),
    }
}

/// Formats a DER INTEGER's bytes as lowercase hex, dropping the sign-padding zero bytes.
pub fn serial_hex(raw: &[u8]) -> String {
    let significant = match raw.iter().position(|&b| b != 0) {
        Some(first) => &raw[first..],
        None => return "0".to_string(),
    };
    let mut hex = String::with_capacity(significant.len() * 2);
    for byte in significant {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The logged subject of a certificate whose subject holds `attributes`, in this order.
    fn subject_of(attributes: &[(rcgen::DnType, &str)]) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in attributes {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let cert = params.self_signed(&key).unwrap();
        PeerIdentity::from_der(cert.der()).unwrap().subject
    }

    #[test]
    fn a_comma_in_a_cn_is_escaped_and_cannot_pass_for_two_rdns() {
        use rcgen::DnType::{CommonName, OrganizationName};
        let one_cn = subject_of(&[(CommonName, "alice, O=Ops")]);
        let two_rdns = subject_of(&[(OrganizationName, "Ops"), (CommonName, "alice")]);
        assert_eq!(one_cn, "CN=alice\\, O=Ops");
        assert_eq!(two_rdns, "CN=alice,O=Ops");
        assert_ne!(one_cn, two_rdns);
    }

    #[test]
    fn rfc4514_special_characters_are_escaped() {
        use rcgen::DnType::CommonName;
        assert_eq!(
            subject_of(&[(CommonName, "#a+b;c<d>e\"f\\g ")]),
            "CN=\\#a\\+b\\;c\\<d\\>e\\\"f\\\\g\\ "
        );
        assert_eq!(subject_of(&[(CommonName, " x")]), "CN=\\ x");
        assert_eq!(
            subject_of(&[(rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), "42")]),
            "2.5.4.5=#0c023432"
        );
    }

    #[test]
    fn identities_are_remembered_by_certificate_but_not_without_bound() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert_with_serial = |serial: u64| {
            let mut params = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
            params.serial_number = Some(serial.into());
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let first = cert_with_serial(1);
        let parsed = PeerIdentity::from_der(&first).unwrap();
        assert_eq!(PeerIdentity::from_der(&first).unwrap(), parsed);
        assert!(crate::locks::recover(&KNOWN).contains_key(first.as_slice()));
        for serial in 2..(KNOWN_MAX as u64 + 50) {
            let identity = PeerIdentity::from_der(&cert_with_serial(serial)).unwrap();
            assert_eq!(identity.serial, serial_hex(&serial.to_be_bytes()));
            assert!(crate::locks::recover(&KNOWN).len() <= KNOWN_MAX);
        }
        assert_eq!(PeerIdentity::from_der(b"not a certificate"), None);
    }

    #[test]
    fn serial_drops_sign_padding_and_keeps_inner_zeros() {
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x00, 0x01]), "8f0001");
        assert_eq!(serial_hex(&[0x1d, 0x2c]), "1d2c");
        assert_eq!(serial_hex(&[0x00]), "0");
        assert_eq!(serial_hex(&[]), "0");
    }
}
