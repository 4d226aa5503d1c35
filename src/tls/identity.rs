//! Who a client certificate says it is: the subject and serial that every audit line carries.

use x509_parser::prelude::{FromDer, X509Certificate};

/// The identity of a client certificate, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The full subject distinguished name, e.g. `CN=alice, O=Example`.
    pub subject: String,
    /// The serial number in lowercase hex without leading zero bytes, as `openssl x509 -serial`
    /// prints it (but lowercase): the value a CRL lists.
    pub serial: String,
}

impl PeerIdentity {
    /// Parses the identity out of a DER certificate; `None` when it is not valid X.509.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        Some(PeerIdentity {
            subject: cert.subject().to_string(),
            serial: serial_hex(cert.raw_serial()),
        })
    }
}

/// Formats a DER INTEGER's bytes as lowercase hex, dropping the sign-padding zero bytes.
pub fn serial_hex(raw: &[u8]) -> String {
    let significant = match raw.iter().position(|&b| b != 0) {
        Some(first) => &raw[first..],
        None => return "0".to_string(),
    };
    significant.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_drops_sign_padding_and_keeps_inner_zeros() {
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x00, 0x01]), "8f0001");
        assert_eq!(serial_hex(&[0x1d, 0x2c]), "1d2c");
        assert_eq!(serial_hex(&[0x00]), "0");
        assert_eq!(serial_hex(&[]), "0");
    }
}
