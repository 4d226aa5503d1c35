//! Command-line flags: one table (`FLAGS`) from which both the parsing (pico-args) and the
//! `--help` text come, so a flag cannot be parsed without being documented. Names follow
//! dockerd's (`--tlscacert`, `--tlscert`, `--tlskey`) so Docker users recognise them. Turning
//! flags into a working configuration is `config`'s job.

use std::ffi::OsString;
use std::path::PathBuf;

/// What a flag does to `Flags` when it is given.
#[derive(Clone, Copy)]
enum Setter {
    /// `-h`/`--help`, `-V`/`--version`: answered before anything else is parsed.
    Command(fn() -> Command),
    /// A flag without a value.
    Switch(fn(&mut Flags)),
    /// A flag with a value (`--flag VALUE` or `--flag=VALUE`); repeatable flags get one call
    /// per occurrence.
    Value(fn(&mut Flags, String) -> Result<(), String>),
}

/// One command-line flag: the one source of its parsing and of its `--help` entry.
pub struct Flag {
    pub name: &'static str,
    /// Its one-letter form (`-h`), or "".
    short: &'static str,
    /// What follows the flag in `--help` (`FILE`, `DUR`); "" for a switch.
    pub value: &'static str,
    repeatable: bool,
    /// The `--help` section heading it is listed under; "" for the closing list.
    section: &'static str,
    /// The `--help` text, one line per line, without indentation.
    help: &'static str,
    set: Setter,
}

const TLS: &str = "TLS:";
const REVOCATION: &str = "REVOCATION (default: fail closed):";
const RELOAD: &str = "RELOAD:";
const NETWORK: &str = "NETWORK:";
const LIMITS: &str = "LIMITS AND SHUTDOWN:";
const METRICS: &str = "METRICS:";
const POLICY: &str = "ACCESS POLICY:";
const LOGGING: &str = "LOGGING:";

/// Every flag of the gate, in `--help` order. `dockgate ca` and `dockgate policy` have their own.
pub const FLAGS: &[Flag] = &[
    Flag {
        name: "--tlscacert",
        short: "",
        value: "FILE",
        repeatable: false,
        section: TLS,
        help: "CA bundle (PEM) that issues CLIENT certificates. Only these CAs are
trusted for clients; it may differ from the issuer of --tlscert.
Its self-signed roots are the trust anchors; an intermediate in it
needs its root there too and is checked (expiry, CRL) like one a
client sends.",
        set: Setter::Value(|f, v| store(&mut f.tlscacert, v.into())),
    },
    Flag {
        name: "--tlscert",
        short: "",
        value: "FILE",
        repeatable: false,
        section: TLS,
        help: "Server certificate chain (PEM) presented to clients.",
        set: Setter::Value(|f, v| store(&mut f.tlscert, v.into())),
    },
    Flag {
        name: "--tlskey",
        short: "",
        value: "FILE",
        repeatable: false,
        section: TLS,
        help: "Private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tlscert.",
        set: Setter::Value(|f, v| store(&mut f.tlskey, v.into())),
    },
    Flag {
        name: "--tlspfx",
        short: "",
        value: "FILE",
        repeatable: false,
        section: TLS,
        help: "Server certificate, chain and key as PKCS#12 (.pfx/.p12), instead of
--tlscert and --tlskey.",
        set: Setter::Value(|f, v| store(&mut f.tlspfx, v.into())),
    },
    Flag {
        name: "--tlspfx-password-file",
        short: "",
        value: "FILE",
        repeatable: false,
        section: TLS,
        help: "The password of --tlspfx: the whole file, without a trailing newline.",
        set: Setter::Value(|f, v| store(&mut f.tlspfx_password_file, v.into())),
    },
    Flag {
        name: "--crl",
        short: "",
        value: "FILE",
        repeatable: true,
        section: REVOCATION,
        help: "Certificate revocation list, PEM or DER. Repeatable: one per CA
(root and intermediates). By default every certificate of a client's
chain must be covered by a CRL from its issuer, an unknown status is
refused, and a CRL past its nextUpdate refuses all clients it covers.",
        set: Setter::Value(|f, v| {
            f.crls.push(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "--crl-leaf-only",
        short: "",
        value: "",
        repeatable: false,
        section: REVOCATION,
        help: "Check only the client's own certificate, not its intermediate CAs.",
        set: Setter::Switch(|f| f.crl_leaf_only = true),
    },
    Flag {
        name: "--crl-allow-unknown",
        short: "",
        value: "",
        repeatable: false,
        section: REVOCATION,
        help: "Accept certificates whose issuer has no CRL.",
        set: Setter::Switch(|f| f.crl_allow_unknown = true),
    },
    Flag {
        name: "--crl-allow-expired",
        short: "",
        value: "",
        repeatable: false,
        section: REVOCATION,
        help: "Keep accepting clients when a CRL is past its nextUpdate.",
        set: Setter::Switch(|f| f.crl_allow_expired = true),
    },
    Flag {
        name: "--no-crl",
        short: "",
        value: "",
        repeatable: false,
        section: REVOCATION,
        help: "Run WITHOUT revocation checks (required to start without a CRL source).",
        set: Setter::Switch(|f| f.no_crl = true),
    },
    Flag {
        name: "--crl-url",
        short: "",
        value: "URL",
        repeatable: true,
        section: REVOCATION,
        help: "Download a CRL from an http:// or https:// URL at start, again before its
nextUpdate and at least every --crl-refresh. Repeatable. A failed
download keeps the cached copy; it never opens the gate.",
        set: Setter::Value(|f, v| {
            f.crl_urls.push(v);
            Ok(())
        }),
    },
    Flag {
        name: "--crl-from-cdp",
        short: "",
        value: "",
        repeatable: false,
        section: REVOCATION,
        help: "Also download the CRLs named in the CRL Distribution Points of the
--tlscacert certificates.",
        set: Setter::Switch(|f| f.crl_from_cdp = true),
    },
    Flag {
        name: "--crl-refresh",
        short: "",
        value: "DUR",
        repeatable: false,
        section: REVOCATION,
        help: "Longest time between two downloads of a --crl-url. Default: 1h.",
        set: Setter::Value(|f, v| store(&mut f.crl_refresh, v)),
    },
    Flag {
        name: "--crl-cache",
        short: "",
        value: "DIR",
        repeatable: false,
        section: REVOCATION,
        help: "Where downloaded CRLs are kept, so a restart without network still
enforces revocation, and the newest CRL number seen from each
source, so a restart cannot roll one back (also useful with only
--crl files). Default: /var/cache/dockgate/crl with --crl-url",
        set: Setter::Value(|f, v| store(&mut f.crl_cache, v.into())),
    },
    Flag {
        name: "--crl-url-ca",
        short: "",
        value: "FILE",
        repeatable: false,
        section: REVOCATION,
        help: "CA bundle (PEM) that verifies https:// CRL servers, instead of the
public web roots (webpki-roots).",
        set: Setter::Value(|f, v| store(&mut f.crl_url_ca, v.into())),
    },
    Flag {
        name: "--crl-warn-before",
        short: "",
        value: "DUR",
        repeatable: false,
        section: REVOCATION,
        help: "Warn when a CRL's nextUpdate is closer than this. Default: 24h.",
        set: Setter::Value(|f, v| store(&mut f.crl_warn_before, v)),
    },
    Flag {
        name: "--reload-interval",
        short: "",
        value: "SECS",
        repeatable: false,
        section: RELOAD,
        help: "How often the certificate, key and CRL files are checked for
changes (modification time and content); changed files are reloaded
without a restart, and open connections of clients that are now
revoked are closed. 0: only on SIGHUP. Default: 5.
SIGHUP reloads at once. A file that fails to load keeps the previous
configuration in force; one that cannot be read (I/O error) is
retried after 1 s, doubling up to 60 s. An older CRL, or another
CA's, than a source held before is refused.",
        set: Setter::Value(|f, v| store(&mut f.reload_interval, v)),
    },
    Flag {
        name: "--listen",
        short: "",
        value: "ADDR",
        repeatable: true,
        section: NETWORK,
        help: "Address to listen on, IPv4 or IPv6 ([::]:2376). Repeatable.
Default: 0.0.0.0:2376. Port 0 picks a free port (logged).",
        set: Setter::Value(|f, v| {
            f.listen.push(v);
            Ok(())
        }),
    },
    Flag {
        name: "--upstream",
        short: "",
        value: "URL",
        repeatable: false,
        section: NETWORK,
        help: "Docker's endpoint: unix:///path/docker.sock, tcp://host:port or
npipe:////./pipe/docker_engine (Windows).
Default: unix:///var/run/docker.sock
(Windows: npipe:////./pipe/docker_engine)",
        set: Setter::Value(|f, v| store(&mut f.upstream, v)),
    },
    Flag {
        name: "--max-connections",
        short: "",
        value: "N",
        repeatable: false,
        section: LIMITS,
        help: "Open connections of verified clients, in total. Past it a client gets
503 with a JSON message (and a WARN line). Default: 4096.",
        set: Setter::Value(|f, v| store(&mut f.max_connections, number(&v)?)),
    },
    Flag {
        name: "--max-connections-per-client",
        short: "",
        value: "N",
        repeatable: false,
        section: LIMITS,
        help: "The same per client certificate (subject and issuer). Default: 256.",
        set: Setter::Value(|f, v| store(&mut f.max_connections_per_client, number(&v)?)),
    },
    Flag {
        name: "--shutdown-grace",
        short: "",
        value: "DUR",
        repeatable: false,
        section: LIMITS,
        help: "On SIGTERM/SIGINT: stop accepting, close idle connections, and give
in-flight requests and sessions this long before cutting them; then
exit 0. A second signal cuts at once. Default: 10s.",
        set: Setter::Value(|f, v| store(&mut f.shutdown_grace, v)),
    },
    Flag {
        name: "--metrics-listen",
        short: "",
        value: "ADDR",
        repeatable: false,
        section: METRICS,
        help: "Serve Prometheus metrics at http://ADDR/metrics and a health check at
/healthz, in PLAIN HTTP without authentication: bind it to localhost or
a management network (e.g. 127.0.0.1:9323). Default: off.",
        set: Setter::Value(|f, v| store(&mut f.metrics_listen, v)),
    },
    Flag {
        name: "--policy",
        short: "",
        value: "FILE",
        repeatable: false,
        section: POLICY,
        help: "Decide every request by the client certificate's role (TOML; see
README \"Access policy\" and dockgate policy check). Reloaded like the
certificates (and on SIGHUP); a broken file keeps the previous policy.
Default: none (every verified client has full access, said in a WARN
line at start).",
        set: Setter::Value(|f, v| store(&mut f.policy, v.into())),
    },
    Flag {
        name: "--log-format",
        short: "",
        value: "FORMAT",
        repeatable: false,
        section: LOGGING,
        help: "text or json (one JSON object per line). Default: text.
The level comes from RUST_LOG (default: info).",
        set: Setter::Value(|f, v| store(&mut f.log_format, v)),
    },
    Flag {
        name: "--help",
        short: "-h",
        value: "",
        repeatable: false,
        section: "",
        help: "Print this help.",
        set: Setter::Command(|| Command::Help),
    },
    Flag {
        name: "--version",
        short: "-V",
        value: "",
        repeatable: false,
        section: "",
        help: "Print the version.",
        set: Setter::Command(|| Command::Version),
    },
];

const HELP_HEAD: &str = "\
dockgate: mutual-TLS gateway for the Docker Engine API that enforces certificate revocation

USAGE:
    dockgate --tlscacert CA.pem --tlscert SERVER.pem --tlskey SERVER-KEY.pem --crl CRL.pem [OPTIONS]
    dockgate ca init|issue|revoke|crl|list|renew-server ...   (a small CA; see dockgate ca --help)
";

const HELP_TAIL: &str = "
SUBCOMMANDS:
    dockgate policy check FILE       Validate an access policy (see dockgate policy --help).
    dockgate policy explain FILE ... Show the decision for one request.

Clients use the normal docker CLI:
    DOCKER_HOST=tcp://HOST:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=DIR docker version
";

/// Where the help text of a flag starts; a longer flag puts it on the next line.
const HELP_COLUMN: usize = 26;

/// The `--help` text, made from `FLAGS`.
pub fn help() -> String {
    let mut text = HELP_HEAD.to_string();
    let mut section = None;
    for flag in FLAGS {
        if section != Some(flag.section) {
            section = Some(flag.section);
            text.push('\n');
            if !flag.section.is_empty() {
                text.push_str(flag.section);
                text.push('\n');
            }
        }
        let mut head = match flag.short {
            "" => format!("    {}", flag.name),
            short => format!("    {short}, {}", flag.name),
        };
        if !flag.value.is_empty() {
            head = format!("{head} {}", flag.value);
        }
        let indent = " ".repeat(HELP_COLUMN);
        if head.len() < HELP_COLUMN {
            text.push_str(&format!("{head:HELP_COLUMN$}"));
        } else {
            text.push_str(&format!("{head}\n{indent}"));
        }
        let mut lines = flag.help.lines();
        text.push_str(lines.next().unwrap_or(""));
        text.push('\n');
        for line in lines {
            text.push_str(&format!("{indent}{line}\n"));
        }
    }
    text + HELP_TAIL
}

fn store<T>(slot: &mut Option<T>, value: T) -> Result<(), String> {
    *slot = Some(value);
    Ok(())
}

fn number(value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|e| format!("failed to parse '{value}': {e}"))
}

/// The flags as given, before any file is read.
#[derive(Debug, Default)]
pub struct Flags {
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    pub tlspfx: Option<PathBuf>,
    pub tlspfx_password_file: Option<PathBuf>,
    pub crls: Vec<PathBuf>,
    pub no_crl: bool,
    pub crl_leaf_only: bool,
    pub crl_allow_unknown: bool,
    pub crl_allow_expired: bool,
    pub crl_urls: Vec<String>,
    pub crl_from_cdp: bool,
    pub crl_refresh: Option<String>,
    pub crl_cache: Option<PathBuf>,
    pub crl_url_ca: Option<PathBuf>,
    pub crl_warn_before: Option<String>,
    pub reload_interval: Option<String>,
    pub listen: Vec<String>,
    pub upstream: Option<String>,
    pub log_format: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub shutdown_grace: Option<String>,
    pub metrics_listen: Option<String>,
    pub policy: Option<PathBuf>,
}

#[derive(Debug)]
pub enum Command {
    Run(Box<Flags>),
    Help,
    Version,
    /// `dockgate policy ...`: the arguments after `policy` (see `policy::cli`).
    Policy(Vec<OsString>),
}

/// Parses the arguments (without the program name).
pub fn parse(args: Vec<OsString>) -> Result<Command, String> {
    if args.first().is_some_and(|a| a == "policy") {
        return Ok(Command::Policy(args[1..].to_vec()));
    }
    let mut args = pico_args::Arguments::from_vec(args);
    for flag in FLAGS {
        if let Setter::Command(command) = flag.set {
            let given = match flag.short {
                "" => args.contains(flag.name),
                short => args.contains([short, flag.name]),
            };
            if given {
                return Ok(command());
            }
        }
    }
    let mut flags = Flags::default();
    for flag in FLAGS {
        match flag.set {
            Setter::Command(_) => {}
            Setter::Switch(set) => {
                if args.contains(flag.name) {
                    set(&mut flags);
                }
            }
            Setter::Value(set) => {
                let values: Vec<String> = if flag.repeatable {
                    args.values_from_str(flag.name).map_err(describe)?
                } else {
                    args.opt_value_from_str(flag.name)
                        .map_err(describe)?
                        .into_iter()
                        .collect()
                };
                for value in values {
                    set(&mut flags, value)
                        .map_err(|e| format!("{}: {e} (see --help)", flag.name))?;
                }
            }
        }
    }
    let rest = args.finish();
    if let Some(unknown) = rest.first() {
        return Err(format!(
            "unknown argument {} (see --help)",
            unknown.to_string_lossy()
        ));
    }
    Ok(Command::Run(Box::new(flags)))
}

fn describe(e: pico_args::Error) -> String {
    format!("{e} (see --help)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn repeatable_flags_and_equals_syntax() {
        let parsed = parse_strs(&[
            "--crl",
            "a.pem",
            "--crl=b.pem",
            "--listen",
            "0.0.0.0:2376",
            "--listen",
            "[::]:2376",
            "--tlscacert",
            "ca.pem",
            "--no-crl",
        ]);
        let Ok(Command::Run(flags)) = parsed else {
            panic!("expected flags, got {parsed:?}");
        };
        assert_eq!(flags.crls, [PathBuf::from("a.pem"), PathBuf::from("b.pem")]);
        assert_eq!(flags.listen, ["0.0.0.0:2376", "[::]:2376"]);
        assert_eq!(flags.tlscacert, Some(PathBuf::from("ca.pem")));
        assert!(flags.no_crl && !flags.crl_leaf_only);
    }

    #[test]
    fn unknown_and_incomplete_flags_are_errors() {
        assert!(parse_strs(&["--tlscacrt", "x"])
            .unwrap_err()
            .contains("--tlscacrt"));
        assert!(parse_strs(&["--tlscert"]).is_err());
    }

    #[test]
    fn policy_subcommand_takes_the_rest_of_the_arguments() {
        let Ok(Command::Policy(rest)) = parse_strs(&["policy", "check", "p.toml", "--cn", "x"])
        else {
            panic!("expected the policy subcommand");
        };
        assert_eq!(rest, ["check", "p.toml", "--cn", "x"]);
        assert!(help().contains("dockgate policy check FILE"));
    }

    #[test]
    fn help_lists_every_flag_of_the_table_with_its_value() {
        let help = help();
        for flag in FLAGS {
            let head = match flag.value {
                "" => format!("{} ", flag.name),
                value => format!("{} {value}", flag.name),
            };
            assert!(
                help.lines().any(|line| line.trim_start().starts_with(&head)
                    || line.contains(&format!(", {head}"))),
                "{head:?} missing from --help:\n{help}"
            );
        }
    }

    /// The flags named in the first column of the README's "### Flags" table.
    fn readme_flags() -> Vec<String> {
        let readme = include_str!("../README.md");
        let table = readme
            .split("\n### Flags\n")
            .nth(1)
            .expect("the README has a ### Flags section");
        let rows = table
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2); // the heading and the |---| line
        let mut names = Vec::new();
        for row in rows {
            let first_cell = row.split('|').nth(1).unwrap_or("");
            for code in first_cell.split('`').skip(1).step_by(2) {
                let name = code.split_whitespace().next().unwrap_or("");
                if name.starts_with("--") {
                    names.push(name.to_string());
                }
            }
        }
        names
    }

    #[test]
    fn readme_flag_table_lists_exactly_the_flags_of_the_table() {
        let documented = readme_flags();
        for flag in FLAGS {
            assert!(
                documented.iter().any(|name| name == flag.name),
                "{} is missing from the README's flag table",
                flag.name
            );
        }
        for name in &documented {
            assert!(
                FLAGS.iter().any(|flag| flag.name == name),
                "the README's flag table lists {name}, which dockgate does not have"
            );
        }
    }

    #[test]
    fn every_flag_of_the_table_is_parsed() {
        for flag in FLAGS {
            let mut args = vec![flag.name];
            if !flag.value.is_empty() {
                args.push("7");
            }
            match (parse_strs(&args), flag.set) {
                (Ok(Command::Help), Setter::Command(_)) if flag.name == "--help" => {}
                (Ok(Command::Version), Setter::Command(_)) if flag.name == "--version" => {}
                (Ok(Command::Run(flags)), Setter::Switch(_) | Setter::Value(_)) => {
                    assert_ne!(
                        format!("{flags:?}"),
                        format!("{:?}", Flags::default()),
                        "{} changed nothing",
                        flag.name
                    );
                }
                (other, _) => panic!("{}: {other:?}", flag.name),
            }
        }
    }

    #[test]
    fn a_bad_number_names_its_flag() {
        let e = parse_strs(&["--max-connections", "many"]).unwrap_err();
        assert!(
            e.starts_with("--max-connections: failed to parse 'many'"),
            "{e}"
        );
    }
}
