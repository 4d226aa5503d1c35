//! Comparing X.500 names as RFC 5280 (section 7.1) asks, so that a CRL whose issuer is encoded
//! differently from the CA's subject (PrintableString in one, UTF8String in the other, another
//! case or extra spaces) is still that CA's CRL.
//!
//! Byte-for-byte comparison is what webpki does, and it made such a CRL verify (same key) but
//! never apply: its issuer matched no certificate, so the status of every certificate of that
//! CA was "unknown" (refused, or with `--crl-allow-unknown` admitted unchecked). Here each
//! string attribute is reduced to a canonical form: decoded whatever its string type, spaces
//! trimmed and runs of white space collapsed to one, compared case-insensitively. This is the
//! simplified matching RFC 5280 allows in place of full RFC 4518 preparation; attributes that
//! are not strings are compared by their DER.

use x509_parser::der_parser::asn1_rs::{Any, Tag};
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// The canonical form of a Name given as full DER (with its SEQUENCE header); `None` when it
/// does not parse. Two names are the same name when their canonical forms are equal.
pub fn canonical_name(der: &[u8]) -> Option<String> {
    let (rest, name) = X509Name::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            // The attributes of one RDN are a SET: their order carries no meaning.
            let mut attributes: Vec<String> = rdn.iter().map(canonical_attribute).collect();
            attributes.sort();
            attributes.join("+")
        })
        .collect();
    Some(rdns.join(","))
}

fn canonical_attribute(attribute: &AttributeTypeAndValue<'_>) -> String {
    let oid = attribute.attr_type().to_id_string();
    match string_value(attribute) {
        Some(text) => format!("{oid}=s:{}", normalise(&text)),
        None => {
            let value = attribute.attr_value();
            let hex: String = value.data.iter().map(|b| format!("{b:02x}")).collect();
            format!("{oid}=b:{}:{hex}", value.tag().0)
        }
    }
}

/// The text of a DirectoryString-like value, whatever its ASN.1 string type.
fn string_value(attribute: &AttributeTypeAndValue<'_>) -> Option<String> {
    directory_string(attribute.attr_value())
}

/// The text of an ASN.1 string value (the DirectoryString types, IA5, Visible, Numeric);
/// `None` for a value of another type or one that does not decode. Also used to render
/// subjects (`identity::rfc4514`).
pub fn directory_string(value: &Any<'_>) -> Option<String> {
    let data = value.data;
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_string),
        // T61 in practice carries Latin-1.
        Tag::TeletexString => Some(data.iter().map(|b| char::from(*b)).collect()),
        Tag::BmpString => {
            if data.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => {
            if data.len() % 4 != 0 {
                return None;
            }
            data.chunks_exact(4)
                .map(|quad| {
                    char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                })
                .collect()
        }
        _ => None,
    }
}

/// Trimmed, inner white space collapsed to one space, lower case.
fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{DistinguishedName, DnType, DnValue};

    fn name_der(values: &[(DnType, DnValue)]) -> Vec<u8> {
        let mut name = DistinguishedName::new();
        for (kind, value) in values {
            name.push(kind.clone(), value.clone());
        }
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = name;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        parsed.subject().as_raw().to_vec()
    }

    #[test]
    fn string_types_case_and_spaces_do_not_make_another_name() {
        let utf8 = name_der(&[
            (DnType::OrganizationName, DnValue::Utf8String("Ops".into())),
            (DnType::CommonName, DnValue::Utf8String("Test  Root".into())),
        ]);
        let printable = name_der(&[
            (
                DnType::OrganizationName,
                DnValue::PrintableString("OPS".try_into().unwrap()),
            ),
            (
                DnType::CommonName,
                DnValue::PrintableString(" test root ".try_into().unwrap()),
            ),
        ]);
        assert_ne!(utf8, printable, "the encodings differ");
        assert_eq!(canonical_name(&utf8), canonical_name(&printable));
        assert!(canonical_name(&utf8).is_some());
    }

    #[test]
    fn other_values_or_order_make_another_name() {
        let a = name_der(&[(DnType::CommonName, DnValue::Utf8String("root a".into()))]);
        let b = name_der(&[(DnType::CommonName, DnValue::Utf8String("root b".into()))]);
        let reordered = name_der(&[
            (DnType::CommonName, DnValue::Utf8String("x".into())),
            (DnType::OrganizationName, DnValue::Utf8String("y".into())),
        ]);
        let ordered = name_der(&[
            (DnType::OrganizationName, DnValue::Utf8String("y".into())),
            (DnType::CommonName, DnValue::Utf8String("x".into())),
        ]);
        assert_ne!(canonical_name(&a), canonical_name(&b));
        assert_ne!(canonical_name(&reordered), canonical_name(&ordered));
        assert_eq!(canonical_name(b"not a name"), None);
    }
}
