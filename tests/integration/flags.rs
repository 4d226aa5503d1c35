//! Command-line handling: configuration errors exit 2 with one `dockgate: ` line naming the
//! culprit; --help; --no-crl.

use crate::common::expect::{assert_cli_works, LOG_WAIT};
use crate::common::gate::run_dockgate;
use crate::common::util::{fresh_dir, Finished};
use crate::common::{pki, GateBuilder};

/// A standard configuration that needs no dockerd (config errors never connect upstream).
fn offline() -> GateBuilder {
    GateBuilder::standard().upstream("unix:///tmp/dockgate-it-unused.sock")
}

fn assert_config_error(out: Finished, names: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit status; stderr:\n{}",
        out.stderr
    );
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stderr:\n{}",
        out.stderr
    );
    assert!(lines[0].starts_with("dockgate: "), "{}", lines[0]);
    assert!(
        lines[0].contains(names),
        "the error should name {names:?}: {}",
        lines[0]
    );
}

#[test]
fn missing_crl_without_no_crl_exits_2() {
    assert_config_error(offline().crls(&[]).run_to_exit(), "--crl");
}

#[test]
fn nonexistent_ca_file_exits_2_naming_it() {
    let missing = fresh_dir("flags").join("no-such-ca.pem");
    assert_config_error(
        offline().ca(&missing).run_to_exit(),
        missing.to_str().unwrap(),
    );
}

/// An intermediate alone cannot be a trust anchor (its expiry and revocation would go
/// unchecked): the gate asks for the root. It used to start and trust it.
#[test]
fn ca_bundle_with_only_an_intermediate_exits_2_asking_for_the_root() {
    let pki = pki();
    let out = offline().ca(&pki.intermediate_ca_only).run_to_exit();
    assert_config_error(out, "--tlscacert");
    let out = offline().ca(&pki.intermediate_ca_only).run_to_exit();
    assert!(
        out.stderr.contains(
            "certificate #1 \"CN=dockgate test intermediate CA\" is an intermediate CA, but its issuer \"CN=dockgate test root CA\" is not in the file; add the root CA"
        ),
        "{}",
        out.stderr
    );
}

/// A client certificate in the CA bundle would be a trust anchor that nothing checks.
#[test]
fn ca_bundle_with_a_non_ca_certificate_exits_2() {
    let pki = pki();
    let bundle = fresh_dir("flags").join("root-and-alice.pem");
    let alice = std::fs::read_to_string(pki.alice.dir.join("cert.pem")).unwrap();
    let root = std::fs::read_to_string(&pki.root_ca).unwrap();
    std::fs::write(&bundle, root + &alice).unwrap();
    let out = offline().ca(&bundle).run_to_exit();
    assert!(
        out.stderr
            .contains("certificate #2 \"CN=alice\" is not a CA (no basicConstraints CA:TRUE)"),
        "{}",
        out.stderr
    );
    assert_config_error(out, bundle.to_str().unwrap());
}

#[test]
fn key_not_matching_certificate_exits_2() {
    let alice_key = pki().alice.dir.join("key.pem");
    let out = offline().key(&alice_key).run_to_exit();
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", out.stderr);
    assert!(out.stderr.starts_with("dockgate: "), "{}", out.stderr);
}

#[test]
fn garbage_crl_exits_2_naming_it() {
    let garbage = fresh_dir("flags").join("garbage-crl.pem");
    std::fs::write(&garbage, "this is not a CRL\n").unwrap();
    assert_config_error(
        offline().crls(&[&garbage]).run_to_exit(),
        garbage.to_str().unwrap(),
    );
}

#[test]
fn unknown_flag_exits_2_naming_it() {
    assert_config_error(offline().flag("--frobnicate").run_to_exit(), "--frobnicate");
}

#[test]
fn bad_log_format_exits_2() {
    assert_config_error(
        offline().flag("--log-format").flag("xml").run_to_exit(),
        "log-format",
    );
}

/// The flags in the first column of the README's "### Flags" table (`--name VALUE`).
fn readme_flag_heads() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let table = readme
        .split("\n### Flags\n")
        .nth(1)
        .expect("the README has a ### Flags section");
    table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .flat_map(|row| {
            let first_cell = row.split('|').nth(1).unwrap_or("").to_string();
            first_cell
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|code| code.starts_with("--"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every flag of the README's table is in `--help`, with the same value name.
#[test]
fn help_exits_0_and_lists_every_flag() {
    let out = run_dockgate(&["--help".into()]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    let heads = readme_flag_heads();
    assert!(heads.len() >= 25, "the README table parsed to {heads:?}");
    for head in heads {
        let listed = out.stdout.lines().any(|line| {
            let line = line.trim_start();
            line.starts_with(&format!("{head} "))
                || line == head
                || line.contains(&format!(", {head} "))
                || line.ends_with(&format!(", {head}"))
        });
        assert!(listed, "--help does not list {head:?}:\n{}", out.stdout);
    }
}

/// The subcommands keep their own help.
#[test]
fn subcommand_help_exits_0() {
    for (args, names) in [
        (["ca", "--help"], "dockgate ca init"),
        (["policy", "--help"], "dockgate policy check"),
    ] {
        let out = run_dockgate(&args.map(Into::into));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", out.stderr);
        assert!(
            out.stdout.contains(names),
            "{args:?}:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn no_crl_warns_and_skips_revocation_checks() {
    let gate = GateBuilder::standard().crls(&[]).flag("--no-crl").start();
    let line = gate.wait_for_log(
        &["revocation policy: OFF (--no-crl): revoked certificates are accepted"],
        LOG_WAIT,
    );
    assert!(line.contains("WARN"), "not a warning: {line}");
    // mallory is revoked, but nothing checks that now.
    assert_cli_works(&gate, &pki().mallory);
}

/// `--listen` is repeatable and takes IPv6: an IPv6 listener is IPv6-only, so it can sit beside
/// an IPv4 one, and a TLS client reaches the gate over [::1].
#[test]
fn listen_is_repeatable_and_takes_ipv6() {
    let gate = GateBuilder::standard()
        .flag("--listen")
        .flag("[::1]:0")
        .start();
    let line = gate.wait_for_log(&["listening on [::1]:"], LOG_WAIT);
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    gate.wait_for_log(&["listening on 127.0.0.1:"], LOG_WAIT);
    // The IPv6 listener is the same gate: a connection that closes without sending anything
    // is logged with its IPv6 source (a /64).
    let sock = std::net::TcpStream::connect(("::1", port)).expect("connect to [::1]");
    drop(sock);
    gate.wait_for_log(
        &[
            "handshakes refused",
            "source=::/64",
            "closed before sending anything",
        ],
        LOG_WAIT,
    );
}
