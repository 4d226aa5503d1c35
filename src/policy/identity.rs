//! Who the client is, as the policy sees it: the certificate fields an `[[identity]]` can match
//! (cn, ou, o, san_dns, san_uri, san_email, serial, issuer_cn), the matching itself, and the
//! `*` glob shared with image and path patterns.

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::tls::identity::serial_hex;

/// The fields of a client certificate that `[[identity]]` entries match. A certificate can
/// have several values per field (two OUs, several SANs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertIdentity {
    pub cn: Vec<String>,
    pub ou: Vec<String>,
    pub o: Vec<String>,
    pub san_dns: Vec<String>,
    pub san_uri: Vec<String>,
    pub san_email: Vec<String>,
    /// Lowercase hex without leading zero bytes, as the audit log prints it.
    pub serial: String,
    pub issuer_cn: Vec<String>,
}

impl CertIdentity {
    /// Reads the fields from a DER certificate; `None` when it is not valid X.509.
    /// Attribute values that are not strings are skipped (they can match nothing).
    pub fn from_der(der: &[u8]) -> Option<CertIdentity> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let strings = |attrs: Vec<&x509_parser::x509::AttributeTypeAndValue>| {
            attrs
                .into_iter()
                .filter_map(|a| a.as_str().ok().map(str::to_owned))
                .collect::<Vec<_>>()
        };
        let subject = cert.subject();
        let mut identity = CertIdentity {
            cn: strings(subject.iter_common_name().collect()),
            ou: strings(subject.iter_organizational_unit().collect()),
            o: strings(subject.iter_organization().collect()),
            serial: serial_hex(cert.raw_serial()),
            issuer_cn: strings(cert.issuer().iter_common_name().collect()),
            ..CertIdentity::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(v) => identity.san_dns.push(v.to_string()),
                    GeneralName::URI(v) => identity.san_uri.push(v.to_string()),
                    GeneralName::RFC822Name(v) => identity.san_email.push(v.to_string()),
                    _ => {}
                }
            }
        }
        Some(identity)
    }

    /// The name used in denial messages: `CN=<first CN>`, or the serial without a CN.
    pub fn display_name(&self) -> String {
        match self.cn.first() {
            Some(cn) => format!("CN={cn}"),
            None => format!("serial {}", self.serial),
        }
    }
}

/// One `[[identity]]` entry: every given field must match; a field matches when any of its
/// patterns matches any of the certificate's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRule {
    /// 1-based position in the file, for "identity #2" in explanations.
    pub index: usize,
    pub fields: Vec<(Field, Vec<String>)>,
    pub role: String,
    /// The tenant these certificates act as (`owner = "team-a"`); `None`: the CN.
    pub owner: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Cn,
    Ou,
    O,
    SanDns,
    SanUri,
    SanEmail,
    Serial,
    IssuerCn,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Cn => "cn",
            Field::Ou => "ou",
            Field::O => "o",
            Field::SanDns => "san_dns",
            Field::SanUri => "san_uri",
            Field::SanEmail => "san_email",
            Field::Serial => "serial",
            Field::IssuerCn => "issuer_cn",
        }
    }

    fn values(self, identity: &CertIdentity) -> &[String] {
        match self {
            Field::Cn => &identity.cn,
            Field::Ou => &identity.ou,
            Field::O => &identity.o,
            Field::SanDns => &identity.san_dns,
            Field::SanUri => &identity.san_uri,
            Field::SanEmail => &identity.san_email,
            Field::Serial => std::slice::from_ref(&identity.serial),
            Field::IssuerCn => &identity.issuer_cn,
        }
    }
}

impl IdentityRule {
    pub fn matches(&self, identity: &CertIdentity) -> bool {
        self.fields.iter().all(|(field, patterns)| {
            field
                .values(identity)
                .iter()
                .any(|value| patterns.iter().any(|p| glob_match(p, value)))
        })
    }

    /// `ou = ["ci"], cn = ["runner-*"]`, for explanations.
    pub fn describe(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(field, patterns)| format!("{} = {:?}", field.name(), patterns))
            .collect();
        fields.join(", ")
    }
}

/// `*` matches any run of characters (including none and including `/`); everything else
/// matches itself, case-sensitively.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    // Where the last `*` was and how much of the value it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if let Some((star_p, star_v)) = star {
            pi = star_p + 1;
            vi = star_v + 1;
            star = Some((star_p, star_v + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_stars_match_any_run() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything/at/all"));
        assert!(glob_match(
            "spiffe://example.org/monitoring/*",
            "spiffe://example.org/monitoring/grafana"
        ));
        assert!(!glob_match(
            "spiffe://example.org/monitoring/*",
            "spiffe://example.org/ci/x"
        ));
        assert!(glob_match("runner-*-eu", "runner-12-eu"));
        assert!(!glob_match("runner-*-eu", "runner-12-us"));
        assert!(glob_match("a*b*c", "aXXbYYbZc"));
        assert!(!glob_match("alice", "alice2"));
        assert!(!glob_match("alice", "Alice"));
        assert!(glob_match(
            "registry.example.org/*",
            "registry.example.org/team/app:1"
        ));
        assert!(!glob_match(
            "registry.example.org/*",
            "registry.example.org.evil.com/app"
        ));
    }

    fn rule(fields: Vec<(Field, Vec<&str>)>) -> IdentityRule {
        IdentityRule {
            index: 1,
            fields: fields
                .into_iter()
                .map(|(f, p)| (f, p.into_iter().map(str::to_owned).collect()))
                .collect(),
            role: "r".into(),
            owner: None,
        }
    }

    #[test]
    fn fields_are_read_from_a_certificate() {
        use rcgen::{CertificateParams, DnType, KeyPair, SanType, SerialNumber};
        let mut params = CertificateParams::new(vec!["runner.example.org".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "ci-runner-1");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "ci");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        params.subject_alt_names.push(SanType::URI(
            "spiffe://example.org/ci/runner".try_into().unwrap(),
        ));
        params
            .subject_alt_names
            .push(SanType::Rfc822Name("ci@example.org".try_into().unwrap()));
        params.serial_number = Some(SerialNumber::from(vec![0x00, 0x8f, 0x01]));
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let who = CertIdentity::from_der(cert.der()).unwrap();
        assert_eq!(who.cn, ["ci-runner-1"]);
        assert_eq!(who.ou, ["ci"]);
        assert_eq!(who.o, ["Example"]);
        assert_eq!(who.san_dns, ["runner.example.org"]);
        assert_eq!(who.san_uri, ["spiffe://example.org/ci/runner"]);
        assert_eq!(who.san_email, ["ci@example.org"]);
        assert_eq!(who.serial, "8f01");
        assert_eq!(who.issuer_cn, ["ci-runner-1"]);
        assert_eq!(who.display_name(), "CN=ci-runner-1");
        assert_eq!(CertIdentity::from_der(b"not a certificate"), None);
    }

    #[test]
    fn every_given_field_must_match_some_value() {
        let who = CertIdentity {
            cn: vec!["runner-1".into()],
            ou: vec!["staff".into(), "ci".into()],
            serial: "1d2c".into(),
            ..Default::default()
        };
        assert!(rule(vec![(Field::Ou, vec!["ci"])]).matches(&who));
        assert!(rule(vec![
            (Field::Cn, vec!["x", "runner-*"]),
            (Field::Ou, vec!["ci"])
        ])
        .matches(&who));
        assert!(!rule(vec![(Field::Cn, vec!["runner-*"]), (Field::O, vec!["*"])]).matches(&who));
        assert!(rule(vec![(Field::Serial, vec!["1d2c"])]).matches(&who));
        assert!(!rule(vec![(Field::SanDns, vec!["*"])]).matches(&who));
    }
}
