//! The CRL Distribution Points extension of a certificate, read in one place: the handshake
//! matches it against a CRL's issuingDistributionPoint (`revocation`), and `--crl-from-cdp`
//! downloads the CRLs it names (`crl_fetch`).

use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::X509Certificate;

/// One URI a certificate names as the place of its CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlUri {
    pub uri: String,
    /// The point names a complete CRL of the certificate's own issuer: no cRLIssuer (indirect
    /// CRL) and no reasons (a CRL partitioned by reason). Only such points can match a CRL's
    /// issuingDistributionPoint, as in webpki.
    pub complete: bool,
}

/// The URIs in the certificate's CRL Distribution Points, in order; `None` when it has no
/// such extension (which is not the same as an extension that names no URI).
pub fn crl_uris(cert: &X509Certificate<'_>) -> Option<Vec<CrlUri>> {
    let mut uris = None;
    for ext in cert.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            continue;
        };
        let found: &mut Vec<CrlUri> = uris.get_or_insert_with(Vec::new);
        for point in points.iter() {
            let Some(DistributionPointName::FullName(names)) = &point.distribution_point else {
                continue;
            };
            let complete = point.crl_issuer.is_none() && point.reasons.is_none();
            found.extend(uri_names(names).map(|uri| CrlUri { uri, complete }));
        }
    }
    uris
}

/// The URIs among general names (a distribution point's name, or an issuingDistributionPoint's).
pub fn uri_names<'a>(names: &'a [GeneralName<'_>]) -> impl Iterator<Item = String> + 'a {
    names.iter().filter_map(|name| match name {
        GeneralName::URI(uri) => Some(uri.to_string()),
        _ => None,
    })
}
