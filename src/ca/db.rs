//! The issuance database `DIR/ca-db.tsv`: every certificate the CA issued (serial, kind, name,
//! subject, expiry), whether it is revoked (when, why), and the number of the last CRL. The CRL
//! is generated from it, so it must never be lost half-written: it is replaced atomically, and a
//! file that does not parse stops every command with the line that is wrong (nothing is
//! written). The format is a tab-separated text file that `grep`, `awk` and `cut` read, described
//! in the README (section "The CA database"):
//!
//! ```text
//! dockgate-ca-db  1
//! crl-number      3
//! cert  SERIAL  KIND  NOT-AFTER  STATUS  REVOKED-AT  REASON  NAME  SUBJECT
//! end   COUNT-OF-CERT-LINES
//! ```
//!
//! The `end` line makes a truncated file (a disk that filled up, an editor that crashed) an
//! error instead of a shorter list of revocations.

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use super::files::{replace_atomically, Access};

pub const DB_FILE: &str = "ca-db.tsv";
const HEADER: &str = "dockgate-ca-db\t1";
const COLUMNS: &str = "# cert\tserial\tkind\tnot-after\tstatus\trevoked-at\treason\tname\tsubject";

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Server,
    Client,
}

/// Why a certificate was revoked: the RFC 5280 reason codes an operator would pick (not
/// certificateHold, whose "un-revoke" this CA does not offer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    PrivilegeWithdrawn,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::PrivilegeWithdrawn,
    ];

    /// The name RFC 5280 gives it (and `--reason` takes).
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "cACompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// Case-insensitive, so `keycompromise` and `cACompromise` are both accepted.
    pub fn parse(text: &str) -> Option<Reason> {
        Reason::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(text))
    }
}

/// Where a certificate stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Valid,
    Revoked {
        at: SystemTime,
        reason: Reason,
    },
    /// A server certificate that `renew-server` replaced (not revoked: nothing checks it).
    Replaced,
}

/// One issued certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Lowercase hex without colons, as dockgate logs it and `openssl x509 -serial` prints it.
    pub serial: String,
    pub kind: Kind,
    pub not_after: SystemTime,
    pub status: Status,
    pub name: String,
    pub subject: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    /// The number of the last CRL written; the next one gets this plus one.
    pub crl_number: u64,
    pub certs: Vec<Record>,
}

impl Database {
    pub fn new() -> Database {
        Database {
            crl_number: 0,
            certs: Vec::new(),
        }
    }

    /// Reads `DIR/ca-db.tsv`; any line that does not parse is an error naming it.
    pub fn load(dir: &Path) -> Result<Database, String> {
        let path = dir.join(DB_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the CA database {}: {e}", path.display()))?;
        Database::parse(&text).map_err(|(line, what)| {
            format!(
                "the CA database {} is corrupted at line {line}: {what}; nothing was changed (restore it from a backup)",
                path.display()
            )
        })
    }

    /// Replaces `DIR/ca-db.tsv` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        replace_atomically(&dir.join(DB_FILE), self.render().as_bytes(), Access::Public)
    }

    pub fn render(&self) -> String {
        let mut out = format!("{HEADER}\n{COLUMNS}\ncrl-number\t{}\n", self.crl_number);
        for cert in &self.certs {
            let (status, revoked_at, reason) = match &cert.status {
                Status::Valid => ("valid", "-".to_string(), "-"),
                Status::Replaced => ("replaced", "-".to_string(), "-"),
                Status::Revoked { at, reason } => ("revoked", format_time(*at), reason.name()),
            };
            let kind = match cert.kind {
                Kind::Server => "server",
                Kind::Client => "client",
            };
            let _ = writeln!(
                out,
                "cert\t{}\t{kind}\t{}\t{status}\t{revoked_at}\t{reason}\t{}\t{}",
                cert.serial,
                format_time(cert.not_after),
                cert.name,
                cert.subject
            );
        }
        let _ = writeln!(out, "end\t{}", self.certs.len());
        out
    }

    /// Parses the text of the file; an error is (line number, what is wrong).
    pub fn parse(text: &str) -> Result<Database, (usize, String)> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err((1, format!("expected the header {HEADER:?}"))),
        }
        let mut crl_number = None;
        let mut certs: Vec<Record> = Vec::new();
        let mut ended = false;
        let mut last = 1;
        for (number, line) in lines {
            last = number;
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            if ended {
                return Err((number, "a line after the end line".to_string()));
            }
            let fields: Vec<&str> = line.split('\t').collect();
            match fields[0] {
                "end" if fields.len() == 2 => {
                    if fields[1] != certs.len().to_string() {
                        return Err((
                            number,
                            format!(
                                "the end line counts {} certificates, the file has {}",
                                fields[1],
                                certs.len()
                            ),
                        ));
                    }
                    ended = true;
                }
                "crl-number" if fields.len() == 2 => {
                    let parsed = fields[1]
                        .parse()
                        .map_err(|_| (number, format!("bad CRL number {:?}", fields[1])))?;
                    crl_number = Some(parsed);
                }
                "cert" => {
                    let record = parse_record(&fields).map_err(|what| (number, what))?;
                    if certs.iter().any(|c| c.serial == record.serial) {
                        return Err((number, format!("serial {} listed twice", record.serial)));
                    }
                    certs.push(record);
                }
                _ => return Err((number, "not a crl-number, cert or end line".to_string())),
            }
        }
        if !ended {
            return Err((
                last,
                "the file ends without its end line (truncated?)".to_string(),
            ));
        }
        let crl_number = crl_number.ok_or((last, "no crl-number line".to_string()))?;
        Ok(Database { crl_number, certs })
    }

    /// Client certificates with this name, newest last.
    pub fn clients_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.certs
            .iter()
            .filter(move |c| c.kind == Kind::Client && c.name == name)
    }
}

fn parse_record(fields: &[&str]) -> Result<Record, String> {
    let [_, serial, kind, not_after, status, revoked_at, reason, name, subject] = fields else {
        return Err(format!(
            "a cert line has 9 tab-separated fields, this one {}",
            fields.len()
        ));
    };
    if serial.is_empty()
        || !serial
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(format!("bad serial {serial:?} (lowercase hex expected)"));
    }
    let kind = match *kind {
        "server" => Kind::Server,
        "client" => Kind::Client,
        other => return Err(format!("bad kind {other:?}")),
    };
    let status = match *status {
        "valid" => Status::Valid,
        "replaced" => Status::Replaced,
        "revoked" => Status::Revoked {
            at: parse_time(revoked_at)?,
            reason: Reason::parse(reason).ok_or(format!("bad revocation reason {reason:?}"))?,
        },
        other => return Err(format!("bad status {other:?}")),
    };
    if name.is_empty() {
        return Err("empty name".to_string());
    }
    Ok(Record {
        serial: serial.to_string(),
        kind,
        not_after: parse_time(not_after)?,
        status,
        name: name.to_string(),
        subject: subject.to_string(),
    })
}

/// RFC 3339 in UTC, to the second: `2026-11-29T19:50:00Z`.
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

fn parse_time(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339(text).map_err(|_| format!("bad time {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample() -> Database {
        let t = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        Database {
            crl_number: 7,
            certs: vec![
                Record {
                    serial: "0a1b2c".into(),
                    kind: Kind::Server,
                    not_after: t(2_000_000_000),
                    status: Status::Replaced,
                    name: "docker-host".into(),
                    subject: "CN=docker-host".into(),
                },
                Record {
                    serial: "7f00ff".into(),
                    kind: Kind::Client,
                    not_after: t(1_900_000_000),
                    status: Status::Revoked {
                        at: t(1_800_000_000),
                        reason: Reason::KeyCompromise,
                    },
                    name: "alice".into(),
                    subject: "CN=alice, OU=dev team".into(),
                },
            ],
        }
    }

    #[test]
    fn render_and_parse_round_trip() {
        let db = sample();
        let text = db.render();
        assert!(text.starts_with("dockgate-ca-db\t1\n"), "{text}");
        assert!(text.contains("\ncrl-number\t7\n"), "{text}");
        assert!(text.ends_with("\nend\t2\n"), "{text}");
        assert!(
            text.contains("cert\t7f00ff\tclient\t2030-03-17T17:46:40Z\trevoked\t2027-01-15T08:00:00Z\tkeyCompromise\talice\tCN=alice, OU=dev team\n"),
            "{text}"
        );
        assert_eq!(Database::parse(&text).unwrap(), db);
    }

    #[test]
    fn corruption_names_the_line() {
        let text = sample().render();
        let truncated = &text[..text.len() - 20];
        let (line, what) = Database::parse(truncated).unwrap_err();
        assert_eq!(line, 5, "{what}");
        assert!(what.contains("truncated"), "{what}");
        let wrong_count = text.replace("end\t2", "end\t3");
        assert_eq!(Database::parse(&wrong_count).unwrap_err().0, 6);
        let bad_number = text.replace("crl-number\t7", "crl-number\tseven");
        assert_eq!(Database::parse(&bad_number).unwrap_err().0, 3);
        assert_eq!(Database::parse("garbage\n").unwrap_err().0, 1);
        let last_cert = text.lines().nth(4).unwrap();
        let twice = text.replace("end\t2\n", &format!("{last_cert}\nend\t3\n"));
        assert!(Database::parse(&twice).unwrap_err().1.contains("twice"));
        let after_end = format!("{text}{last_cert}\n");
        assert!(Database::parse(&after_end)
            .unwrap_err()
            .1
            .contains("after the end"));
        let no_number = text.replace("crl-number\t7\n", "");
        assert!(Database::parse(&no_number).is_err());
    }

    #[test]
    fn reasons_parse_case_insensitively() {
        assert_eq!(Reason::parse("keycompromise"), Some(Reason::KeyCompromise));
        assert_eq!(Reason::parse("cACompromise"), Some(Reason::CaCompromise));
        assert_eq!(Reason::parse("certificateHold"), None);
    }
}
