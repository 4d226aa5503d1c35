//! Command-line flags: parsing with pico-args and the `--help` text. Names follow dockerd's
//! (`--tlscacert`, `--tlscert`, `--tlskey`) so Docker users recognise them. Turning flags into
//! a working configuration is `config`'s job.

use std::ffi::OsString;
use std::path::PathBuf;

pub const HELP: &str = "\
dockgate: mutual-TLS gateway for the Docker Engine API that enforces certificate revocation

USAGE:
    dockgate --tlscacert CA.pem --tlscert SERVER.pem --tlskey SERVER-KEY.pem --crl CRL.pem [OPTIONS]
    dockgate ca init|issue|revoke|crl|list|renew-server ...   (a small CA; see dockgate ca --help)

TLS:
    --tlscacert FILE      CA bundle (PEM) that issues CLIENT certificates. Only these CAs are
                          trusted for clients; it may differ from the issuer of --tlscert.
                          Its self-signed roots are the trust anchors; an intermediate in it
                          needs its root there too and is checked (expiry, CRL) like one a
                          client sends.
    --tlscert FILE        Server certificate chain (PEM) presented to clients.
    --tlskey FILE         Private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tlscert.
    --tlspfx FILE         Server certificate, chain and key as PKCS#12 (.pfx/.p12), instead of
                          --tlscert and --tlskey.
    --tlspfx-password-file FILE
                          The password of --tlspfx: the whole file, without a trailing newline.

REVOCATION (default: fail closed):
    --crl FILE            Certificate revocation list, PEM or DER. Repeatable: one per CA
                          (root and intermediates). By default every certificate of a client's
                          chain must be covered by a CRL from its issuer, an unknown status is
                          refused, and a CRL past its nextUpdate refuses all clients it covers.
    --crl-leaf-only       Check only the client's own certificate, not its intermediate CAs.
    --crl-allow-unknown   Accept certificates whose issuer has no CRL.
    --crl-allow-expired   Keep accepting clients when a CRL is past its nextUpdate.
    --no-crl              Run WITHOUT revocation checks (required to start without a CRL source).
    --crl-url URL         Download a CRL from an http:// or https:// URL at start, again before its
                          nextUpdate and at least every --crl-refresh. Repeatable. A failed
                          download keeps the cached copy; it never opens the gate.
    --crl-from-cdp        Also download the CRLs named in the CRL Distribution Points of the
                          --tlscacert certificates.
    --crl-refresh DUR     Longest time between two downloads of a --crl-url. Default: 1h.
    --crl-cache DIR       Where downloaded CRLs are kept, so a restart without network still
                          enforces revocation, and the newest CRL number seen from each
                          source, so a restart cannot roll one back (also useful with only
                          --crl files). Default: /var/cache/dockgate/crl with --crl-url
    --crl-url-ca FILE     CA bundle (PEM) that verifies https:// CRL servers, instead of the
                          public web roots (webpki-roots).
    --crl-warn-before DUR Warn when a CRL's nextUpdate is closer than this. Default: 24h.

RELOAD:
    --reload-interval SECS  How often the certificate, key and CRL files are checked for
                          changes (modification time and content); changed files are reloaded
                          without a restart, and open connections of clients that are now
                          revoked are closed. 0: only on SIGHUP. Default: 5.
                          SIGHUP reloads at once. A file that fails to load keeps the previous
                          configuration in force; one that cannot be read (I/O error) is
                          retried after 1 s, doubling up to 60 s. An older CRL, or another
                          CA's, than a source held before is refused.

NETWORK:
    --listen ADDR         Address to listen on, IPv4 or IPv6 ([::]:2376). Repeatable.
                          Default: 0.0.0.0:2376. Port 0 picks a free port (logged).
    --upstream URL        Docker's endpoint: unix:///path/docker.sock, tcp://host:port or
                          npipe:////./pipe/docker_engine (Windows).
                          Default: unix:///var/run/docker.sock
                          (Windows: npipe:////./pipe/docker_engine)

LIMITS AND SHUTDOWN:
    --max-connections N   Open connections of verified clients, in total. Past it a client gets
                          503 with a JSON message (and a WARN line). Default: 4096.
    --max-connections-per-client N
                          The same per client certificate (subject and issuer). Default: 256.
    --shutdown-grace DUR  On SIGTERM/SIGINT: stop accepting, close idle connections, and give
                          in-flight requests and sessions this long before cutting them; then
                          exit 0. A second signal cuts at once. Default: 10s.

METRICS:
    --metrics-listen ADDR Serve Prometheus metrics at http://ADDR/metrics and a health check at
                          /healthz, in PLAIN HTTP without authentication: bind it to localhost or
                          a management network (e.g. 127.0.0.1:9323). Default: off.

ACCESS POLICY:
    --policy FILE         Decide every request by the client certificate's role (TOML; see
                          README \"Access policy\" and dockgate policy check). Reloaded like the
                          certificates (and on SIGHUP); a broken file keeps the previous policy.
                          Default: none (every verified client has full access, said in a WARN
                          line at start).

LOGGING:
    --log-format FORMAT   text or json (one JSON object per line). Default: text.
                          The level comes from RUST_LOG (default: info).

    -h, --help            Print this help.
    -V, --version         Print the version.

SUBCOMMANDS:
    dockgate policy check FILE       Validate an access policy (see dockgate policy --help).
    dockgate policy explain FILE ... Show the decision for one request.

Clients use the normal docker CLI:
    DOCKER_HOST=tcp://HOST:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=DIR docker version
";

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
    if args.contains(["-h", "--help"]) {
        return Ok(Command::Help);
    }
    if args.contains(["-V", "--version"]) {
        return Ok(Command::Version);
    }
    let flags = Flags {
        tlscacert: args.opt_value_from_str("--tlscacert").map_err(describe)?,
        tlscert: args.opt_value_from_str("--tlscert").map_err(describe)?,
        tlskey: args.opt_value_from_str("--tlskey").map_err(describe)?,
        tlspfx: args.opt_value_from_str("--tlspfx").map_err(describe)?,
        tlspfx_password_file: args
            .opt_value_from_str("--tlspfx-password-file")
            .map_err(describe)?,
        crls: args.values_from_str("--crl").map_err(describe)?,
        no_crl: args.contains("--no-crl"),
        crl_leaf_only: args.contains("--crl-leaf-only"),
        crl_allow_unknown: args.contains("--crl-allow-unknown"),
        crl_allow_expired: args.contains("--crl-allow-expired"),
        crl_urls: args.values_from_str("--crl-url").map_err(describe)?,
        crl_from_cdp: args.contains("--crl-from-cdp"),
        crl_refresh: args.opt_value_from_str("--crl-refresh").map_err(describe)?,
        crl_cache: args.opt_value_from_str("--crl-cache").map_err(describe)?,
        crl_url_ca: args.opt_value_from_str("--crl-url-ca").map_err(describe)?,
        crl_warn_before: args
            .opt_value_from_str("--crl-warn-before")
            .map_err(describe)?,
        reload_interval: args
            .opt_value_from_str("--reload-interval")
            .map_err(describe)?,
        listen: args.values_from_str("--listen").map_err(describe)?,
        upstream: args.opt_value_from_str("--upstream").map_err(describe)?,
        log_format: args.opt_value_from_str("--log-format").map_err(describe)?,
        max_connections: args
            .opt_value_from_str("--max-connections")
            .map_err(describe)?,
        max_connections_per_client: args
            .opt_value_from_str("--max-connections-per-client")
            .map_err(describe)?,
        shutdown_grace: args
            .opt_value_from_str("--shutdown-grace")
            .map_err(describe)?,
        policy: args.opt_value_from_str("--policy").map_err(describe)?,
        metrics_listen: args
            .opt_value_from_str("--metrics-listen")
            .map_err(describe)?,
    };
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
        assert!(HELP.contains("dockgate policy check FILE"));
    }

    #[test]
    fn help_mentions_every_flag() {
        for flag in [
            "--tlscacert",
            "--tlscert",
            "--tlskey",
            "--tlspfx ",
            "--tlspfx-password-file",
            "--crl ",
            "--crl-leaf-only",
            "--crl-allow-unknown",
            "--crl-allow-expired",
            "--no-crl",
            "--listen",
            "--upstream",
            "--log-format",
            "--max-connections ",
            "--max-connections-per-client",
            "--shutdown-grace",
            "--metrics-listen",
            "--policy",
            "--help",
            "--version",
        ] {
            assert!(HELP.contains(flag), "{flag} missing from --help");
        }
    }
}
