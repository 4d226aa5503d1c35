//! `dockgate ca` arguments: one `--help` text and one parser per subcommand (pico-args, like
//! the gate's own flags). Parsing checks what can be checked without touching the disk: names,
//! numbers, IP addresses, `HOST:PORT`, reasons, and that the positional arguments are all there.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use super::db::Reason;

pub const HELP: &str = "\
dockgate ca: a small certificate authority for dockgate and its docker clients

USAGE:
    dockgate ca init DIR --server-name NAME [OPTIONS]  a new CA, server certificate and CRL in DIR
    dockgate ca issue DIR NAME [OPTIONS]        a client certificate (a DOCKER_CERT_PATH folder)
    dockgate ca revoke DIR NAME|SERIAL [--reason R]   revoke it and write a new CRL
    dockgate ca crl DIR [--days 30]             re-sign the CRL (run it daily from a timer)
    dockgate ca list DIR                        every issued certificate and its status
    dockgate ca renew-server DIR [--days N]     a new server certificate, picked up by the gate

`dockgate ca COMMAND --help` describes each command.

DIR holds ca.pem, ca-key.pem (0600; it never leaves DIR), server.pem, server-key.pem (0600),
crl.pem and the database ca-db.tsv. Every error is one line and exit code 2, and then nothing
was changed.
";

pub const INIT_HELP: &str = "\
dockgate ca init: create a CA, the gate's server certificate and an empty CRL

USAGE:
    dockgate ca init DIR --server-name NAME... [--server-ip IP...] [OPTIONS]

Writes DIR/ca.pem, DIR/ca-key.pem (0600), DIR/server.pem, DIR/server-key.pem (0600), DIR/crl.pem
(nextUpdate in 30 days) and DIR/ca-db.tsv, all ECDSA P-256, then prints the dockgate command
line that serves with them. DIR is created (0700) if missing; a DIR that already holds a CA is
refused.

OPTIONS:
    --server-name NAME    DNS name clients put in DOCKER_HOST (repeatable; the first is also
                          the certificate's CN). Required.
    --server-ip IP        IP address clients connect to (repeatable).
    --ca-name TEXT        The CA's common name. Default: \"Docker client CA\".
    --days-ca DAYS        Validity of the CA certificate. Default: 3650.
    --days-server DAYS    Validity of the server certificate. Default: 397.
    -h, --help            Print this help.
";

pub const ISSUE_HELP: &str = "\
dockgate ca issue: a client certificate for one user

USAGE:
    dockgate ca issue DIR NAME [OPTIONS]

Writes the folder PATH (default ./NAME, must not exist; 0700) with ca.pem (the CA that verifies
the gate), cert.pem (CN=NAME, clientAuth only) and key.pem (0600): point DOCKER_CERT_PATH at it.
The certificate is recorded in DIR/ca-db.tsv so that it can be revoked by NAME or serial.
NAME is letters, digits and . _ @ - (it is also the default folder name).

OPTIONS:
    --days DAYS           Validity. Default: 90.
    --ou OU               An organizational unit in the subject (repeatable).
    --san-uri URI         A URI subject alternative name (repeatable), e.g. spiffe://corp/alice.
    --out PATH            Where to write the folder. Default: ./NAME
    --context HOST:PORT   Also write PATH.dockercontext (0600) for the gate at HOST:PORT; the
                          user runs `docker context import NAME PATH.dockercontext`, then
                          `docker --context NAME ps`.
    --pfx                 Also write PATH.pfx (0600, PKCS#12 with AES-256) for Windows users.
    --password-file FILE  The password of --pfx: the whole file, without a trailing newline.
    -h, --help            Print this help.
";

pub const REVOKE_HELP: &str = "\
dockgate ca revoke: revoke a certificate and publish a new CRL

USAGE:
    dockgate ca revoke DIR NAME|SERIAL [--reason REASON]

NAME revokes every valid client certificate issued to NAME; SERIAL (hex, as `ca list` and the
gate's log show it) revokes that one certificate. DIR/crl.pem is then rewritten atomically with
the next CRL number (nextUpdate in 30 days): a gate started with --crl DIR/crl.pem applies it
within its --reload-interval and closes the revoked client's open connections.

OPTIONS:
    --reason REASON       unspecified (default), keyCompromise, cACompromise, affiliationChanged,
                          superseded, cessationOfOperation or privilegeWithdrawn.
    -h, --help            Print this help.
";

pub const CRL_HELP: &str = "\
dockgate ca crl: re-sign the CRL with a fresh nextUpdate

USAGE:
    dockgate ca crl DIR [--days 30]

Writes DIR/crl.pem again (same revoked certificates, next CRL number, nextUpdate DAYS ahead),
atomically. A gate refuses clients whose CRL is past its nextUpdate, so run this daily (a
systemd timer or cron line is in the README).

OPTIONS:
    --days DAYS           Days until nextUpdate. Default: 30.
    -h, --help            Print this help.
";

pub const LIST_HELP: &str = "\
dockgate ca list: the certificates this CA issued

USAGE:
    dockgate ca list DIR

One line per certificate: serial, kind (server or client), name, status (valid, expired,
revoked with date and reason, or replaced), expiry and subject.

OPTIONS:
    -h, --help            Print this help.
";

pub const RENEW_SERVER_HELP: &str = "\
dockgate ca renew-server: a new server certificate and key for the gate

USAGE:
    dockgate ca renew-server DIR [--days DAYS]

Issues a new certificate with the names and IP addresses of the current DIR/server.pem and a new
key, and replaces DIR/server-key.pem (0600) and DIR/server.pem atomically. A running gate serves
it to new connections within its --reload-interval; open connections are not disturbed.

OPTIONS:
    --days DAYS           Validity. Default: the validity of the current server certificate.
    -h, --help            Print this help.
";

pub struct InitArgs {
    pub dir: PathBuf,
    pub server_names: Vec<String>,
    pub server_ips: Vec<IpAddr>,
    pub ca_name: String,
    pub days_ca: u32,
    pub days_server: u32,
}

pub struct IssueArgs {
    pub dir: PathBuf,
    pub name: String,
    pub days: u32,
    pub organizational_units: Vec<String>,
    pub san_uris: Vec<String>,
    pub out: PathBuf,
    pub context: Option<String>,
    pub pfx_password_file: Option<PathBuf>,
}

pub struct RevokeArgs {
    pub dir: PathBuf,
    pub target: String,
    pub reason: Reason,
}

pub enum CaCommand {
    Help(&'static str),
    Init(InitArgs),
    Issue(IssueArgs),
    Revoke(RevokeArgs),
    Crl { dir: PathBuf, days: u32 },
    List { dir: PathBuf },
    RenewServer { dir: PathBuf, days: Option<u32> },
}

/// Parses the arguments after `dockgate ca`. An error is (subcommand, message).
pub fn parse(args: Vec<OsString>) -> Result<CaCommand, (String, String)> {
    let mut args = args.into_iter();
    let Some(sub) = args.next() else {
        return Ok(CaCommand::Help(HELP));
    };
    let sub = sub.to_string_lossy().into_owned();
    let rest = pico_args::Arguments::from_vec(args.collect());
    let wrap = |message: String| {
        (
            sub.clone(),
            format!("{message} (see dockgate ca {sub} --help)"),
        )
    };
    match sub.as_str() {
        "-h" | "--help" | "help" => Ok(CaCommand::Help(HELP)),
        "init" => parse_init(rest).map_err(wrap),
        "issue" => parse_issue(rest).map_err(wrap),
        "revoke" => parse_revoke(rest).map_err(wrap),
        "crl" => parse_crl(rest).map_err(wrap),
        "list" => parse_list(rest).map_err(wrap),
        "renew-server" => parse_renew_server(rest).map_err(wrap),
        other => Err((
            String::new(),
            format!(
                "unknown command {other:?}: init, issue, revoke, crl, list or renew-server (see dockgate ca --help)"
            ),
        )),
    }
}

fn help_requested(args: &mut pico_args::Arguments) -> bool {
    args.contains(["-h", "--help"])
}

fn parse_init(mut args: pico_args::Arguments) -> Result<CaCommand, String> {
    if help_requested(&mut args) {
        return Ok(CaCommand::Help(INIT_HELP));
    }
    let server_names: Vec<String> = args.values_from_str("--server-name").map_err(describe)?;
    let server_ips = args.values_from_str("--server-ip").map_err(describe)?;
    let ca_name = args
        .opt_value_from_str("--ca-name")
        .map_err(describe)?
        .unwrap_or_else(|| "Docker client CA".to_string());
    let days_ca = days(&mut args, "--days-ca")?.unwrap_or(3650);
    let days_server = days(&mut args, "--days-server")?.unwrap_or(397);
    let [dir] = positionals(args, ["DIR"])?;
    if server_names.is_empty() {
        return Err("--server-name is required: the DNS name clients put in DOCKER_HOST".into());
    }
    for name in &server_names {
        check_dns_name(name)?;
    }
    check_text("--ca-name", &ca_name)?;
    Ok(CaCommand::Init(InitArgs {
        dir: dir.into(),
        server_names,
        server_ips,
        ca_name,
        days_ca,
        days_server,
    }))
}

fn parse_issue(mut args: pico_args::Arguments) -> Result<CaCommand, String> {
    if help_requested(&mut args) {
        return Ok(CaCommand::Help(ISSUE_HELP));
    }
    let days = days(&mut args, "--days")?.unwrap_or(90);
    let organizational_units: Vec<String> = args.values_from_str("--ou").map_err(describe)?;
    let san_uris: Vec<String> = args.values_from_str("--san-uri").map_err(describe)?;
    let out: Option<PathBuf> = args.opt_value_from_str("--out").map_err(describe)?;
    let context: Option<String> = args.opt_value_from_str("--context").map_err(describe)?;
    let pfx = args.contains("--pfx");
    let password_file: Option<PathBuf> = args
        .opt_value_from_str("--password-file")
        .map_err(describe)?;
    let [dir, name] = positionals(args, ["DIR", "NAME"])?;
    check_client_name(&name)?;
    for ou in &organizational_units {
        check_text("--ou", ou)?;
    }
    if let Some(host_port) = &context {
        check_host_port(host_port)?;
    }
    let pfx_password_file = match (pfx, password_file) {
        (true, Some(file)) => Some(file),
        (true, None) => return Err("--pfx needs --password-file FILE".into()),
        (false, Some(_)) => return Err("--password-file is only used with --pfx".into()),
        (false, None) => None,
    };
    Ok(CaCommand::Issue(IssueArgs {
        out: out.unwrap_or_else(|| PathBuf::from(&name)),
        dir: dir.into(),
        name,
        days,
        organizational_units,
        san_uris,
        context,
        pfx_password_file,
    }))
}

fn parse_revoke(mut args: pico_args::Arguments) -> Result<CaCommand, String> {
    if help_requested(&mut args) {
        return Ok(CaCommand::Help(REVOKE_HELP));
    }
    let reason: Option<String> = args.opt_value_from_str("--reason").map_err(describe)?;
    let reason = match reason {
        None => Reason::Unspecified,
        Some(text) => Reason::parse(&text).ok_or_else(|| {
            let names: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
            format!("--reason {text:?}: expected one of {}", names.join(", "))
        })?,
    };
    let [dir, target] = positionals(args, ["DIR", "NAME|SERIAL"])?;
    Ok(CaCommand::Revoke(RevokeArgs {
        dir: dir.into(),
        target,
        reason,
    }))
}

fn parse_crl(mut args: pico_args::Arguments) -> Result<CaCommand, String> {
    if help_requested(&mut args) {
        return Ok(CaCommand::Help(CRL_HELP));
    }
    let days = days(&mut args, "--days")?.unwrap_or(super::crl::DEFAULT_CRL_DAYS);
    let [dir] = positionals(args, ["DIR"])?;
    Ok(CaCommand::Crl {
        dir: dir.into(),
        days,
    })
}

fn parse_list(mut args: pico_args::Arguments) -> Result<CaCommand, String> {
    if help_requested(&mut args) {
        return Ok(CaCommand::Help(LIST_HELP));
    }
    let [dir] = positionals(args, ["DIR"])?;
    Ok(CaCommand::List { dir: dir.into() })
}

fn parse_renew_server(mut args: pico_args::Arguments) -> Result<CaCommand, String> {
    if help_requested(&mut args) {
        return Ok(CaCommand::Help(RENEW_SERVER_HELP));
    }
    let days = days(&mut args, "--days")?;
    let [dir] = positionals(args, ["DIR"])?;
    Ok(CaCommand::RenewServer {
        dir: dir.into(),
        days,
    })
}

/// A number of days between 1 and 100 years.
fn days(args: &mut pico_args::Arguments, flag: &'static str) -> Result<Option<u32>, String> {
    let days: Option<u32> = args.opt_value_from_str(flag).map_err(describe)?;
    match days {
        Some(0) | Some(36_501..) => Err(format!("{flag}: between 1 and 36500 days")),
        other => Ok(other),
    }
}

/// The remaining arguments, which must be exactly the positional ones named in `names`.
fn positionals<const N: usize>(
    args: pico_args::Arguments,
    names: [&str; N],
) -> Result<[String; N], String> {
    let rest: Vec<String> = args
        .finish()
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(flag) = rest.iter().find(|a| a.starts_with('-')) {
        return Err(format!("unknown flag {flag}"));
    }
    if rest.len() != N {
        return Err(format!(
            "expected {} (got {} argument(s))",
            names.join(" "),
            rest.len()
        ));
    }
    Ok(rest.try_into().expect("length checked"))
}

/// A client name is also a folder name and a database field: no separators, no spaces.
fn check_client_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) || name.starts_with('.') {
        return Err(format!(
            "NAME {name:?}: 1 to 64 letters, digits and . _ @ - (not starting with .)"
        ));
    }
    Ok(())
}

fn check_dns_name(name: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("--server-name {name:?} is not a DNS name"));
    }
    Ok(())
}

/// Subject fields end up in a tab-separated database line: no control characters.
fn check_text(flag: &str, text: &str) -> Result<(), String> {
    if text.is_empty() || text.chars().any(char::is_control) {
        return Err(format!("{flag} {text:?}: empty or has control characters"));
    }
    Ok(())
}

fn check_host_port(host_port: &str) -> Result<(), String> {
    let valid = host_port.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if !valid {
        return Err(format!(
            "--context {host_port:?}: expected HOST:PORT, e.g. docker-host.example.com:2376"
        ));
    }
    Ok(())
}

fn describe(e: pico_args::Error) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<CaCommand, (String, String)> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn issue_defaults_and_repeatable_flags() {
        let Ok(CaCommand::Issue(issue)) = parse_strs(&[
            "issue",
            "/ca",
            "alice",
            "--ou",
            "dev",
            "--ou",
            "ops",
            "--context",
            "h:2376",
        ]) else {
            panic!("not parsed as issue");
        };
        assert_eq!(issue.out, PathBuf::from("alice"));
        assert_eq!(issue.days, 90);
        assert_eq!(issue.organizational_units, ["dev", "ops"]);
        assert_eq!(issue.context.as_deref(), Some("h:2376"));
    }

    #[test]
    fn every_subcommand_has_help() {
        for sub in ["init", "issue", "revoke", "crl", "list", "renew-server"] {
            let Ok(CaCommand::Help(text)) = parse_strs(&[sub, "--help"]) else {
                panic!("{sub} --help");
            };
            assert!(text.contains(&format!("dockgate ca {sub}")), "{text}");
        }
    }

    #[test]
    fn bad_arguments_are_one_message() {
        let cases: &[(&[&str], &str)] = &[
            (&["init", "/ca"], "--server-name is required"),
            (&["init", "/ca", "--server-name", "a b"], "not a DNS name"),
            (&["issue", "/ca", "../x"], "NAME"),
            (&["issue", "/ca", "a", "--pfx"], "--password-file"),
            (&["issue", "/ca", "a", "--context", "host"], "HOST:PORT"),
            (
                &["revoke", "/ca", "a", "--reason", "bored"],
                "keyCompromise",
            ),
            (&["crl", "/ca", "--days", "0"], "between 1"),
            (&["list"], "expected DIR"),
            (&["list", "/ca", "--bogus"], "unknown flag --bogus"),
            (&["frobnicate"], "unknown command"),
        ];
        for (args, wanted) in cases {
            let Err((_, message)) = parse_strs(args) else {
                panic!("{args:?} parsed");
            };
            assert!(message.contains(wanted), "{args:?}: {message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }
}
