//! What `dockgate ca` writes, checked by the tools that read it: openssl agrees with the CRL
//! (verify accepts a good client, rejects the revoked one, `crl -text` shows serial and reason),
//! the key usages are the ones the gate and the docker CLI rely on, every file with a key is
//! 0600, the PFX opens with openssl, and every subcommand has a `--help`.

use std::path::Path;

use crate::common::ca::{assert_days_ahead, mode_of, run_ca, run_tool, serial_of, CaDir};
use crate::common::util::fresh_dir;

fn openssl_verify(ca: &CaDir, extra: &[&str], cert: &Path) -> crate::common::util::Finished {
    let ca_pem = ca.file("ca.pem");
    let crl_pem = ca.file("crl.pem");
    let mut args = vec![
        "verify",
        "-CAfile",
        ca_pem.to_str().unwrap(),
        "-CRLfile",
        crl_pem.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(cert.to_str().unwrap());
    run_tool("openssl", &args)
}

#[test]
fn openssl_agrees_with_the_crl_and_the_key_usages() {
    let ca = CaDir::init();
    let alice = ca
        .issue(
            "alice",
            &[
                "--ou",
                "dev",
                "--san-uri",
                "spiffe://corp/alice",
                "--days",
                "7",
            ],
        )
        .join("cert.pem");
    let bob = ca.issue("bob", &[]).join("cert.pem");
    ca.ok("revoke", &["bob", "--reason", "keyCompromise"]);
    let bob_serial = serial_of(&bob);
    let list = ca.ok("list", &[]);
    let bob_line = list.lines().find(|l| l.starts_with(&bob_serial)).unwrap();
    assert!(
        bob_line.contains(" bob ")
            && bob_line.contains("revoked")
            && bob_line.contains("keyCompromise"),
        "{list}"
    );

    for check in ["-crl_check", "-crl_check_all"] {
        let good = openssl_verify(&ca, &[check, "-purpose", "sslclient"], &alice);
        assert!(
            good.success() && good.stdout.contains(": OK"),
            "{check} alice: {good:?}"
        );
        let revoked = openssl_verify(&ca, &[check], &bob);
        assert!(
            !revoked.success(),
            "{check} accepted revoked bob: {revoked:?}"
        );
        assert!(
            format!("{}{}", revoked.stdout, revoked.stderr).contains("certificate revoked"),
            "{revoked:?}"
        );
    }

    let text = run_tool(
        "openssl",
        &[
            "crl",
            "-in",
            ca.file("crl.pem").to_str().unwrap(),
            "-noout",
            "-text",
        ],
    );
    assert!(text.success(), "{text:?}");
    let listed = format!("Serial Number: {}", bob_serial.to_uppercase());
    let entry = text
        .stdout
        .split("Serial Number:")
        .skip(1)
        .map(|e| format!("Serial Number:{e}"))
        .find(|e| e.starts_with(&listed))
        .unwrap_or_else(|| panic!("{listed} not in the CRL:\n{}", text.stdout));
    assert!(entry.contains("Key Compromise"), "{entry}");
    assert!(
        !text.stdout.contains(&serial_of(&alice).to_uppercase()),
        "alice is listed:\n{}",
        text.stdout
    );
    // init wrote CRL number 1, the revocation number 2.
    let number = text.stdout.split("X509v3 CRL Number:").nth(1).unwrap();
    assert_eq!(
        number.split_whitespace().next(),
        Some("2"),
        "{}",
        text.stdout
    );

    // Usages: the server certificate serves TLS, a client certificate cannot.
    let server = ca.file("server.pem");
    assert!(openssl_verify(&ca, &["-purpose", "sslserver"], &server).success());
    assert!(!openssl_verify(&ca, &["-purpose", "sslserver"], &alice).success());
    assert!(!openssl_verify(&ca, &["-purpose", "sslclient"], &server).success());
    let subject = run_tool(
        "openssl",
        &[
            "x509",
            "-in",
            alice.to_str().unwrap(),
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage,keyUsage",
        ],
    );
    assert!(
        subject.stdout.contains("CN=alice, OU=dev")
            || subject.stdout.contains("CN = alice, OU = dev"),
        "{subject:?}"
    );
    assert!(
        subject.stdout.contains("TLS Web Client Authentication"),
        "{subject:?}"
    );
    assert!(
        !subject.stdout.contains("Server Authentication"),
        "{subject:?}"
    );
    let alice_sans = run_tool(
        "openssl",
        &[
            "x509",
            "-in",
            alice.to_str().unwrap(),
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    assert!(
        alice_sans.stdout.contains("URI:spiffe://corp/alice"),
        "{alice_sans:?}"
    );
    let end = run_tool(
        "openssl",
        &["x509", "-in", alice.to_str().unwrap(), "-noout", "-enddate"],
    );
    assert!(end.success(), "{end:?}");
    assert_days_ahead(&end.stdout, 7);
    let sans = run_tool(
        "openssl",
        &[
            "x509",
            "-in",
            server.to_str().unwrap(),
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    assert!(
        sans.stdout.contains("DNS:localhost, IP Address:127.0.0.1"),
        "{sans:?}"
    );
    let key_type = run_tool(
        "openssl",
        &["x509", "-in", server.to_str().unwrap(), "-noout", "-text"],
    );
    assert!(
        key_type.stdout.contains("NIST CURVE: P-256"),
        "{}",
        key_type.stdout
    );
}

#[test]
fn keys_are_owner_only_and_the_pfx_opens_with_openssl() {
    let ca = CaDir::init();
    let password = ca.work.join("pfx-password");
    std::fs::write(&password, "correct horse").unwrap();
    let alice = ca.issue(
        "alice",
        &[
            "--context",
            "gate.example:2376",
            "--pfx",
            "--password-file",
            password.to_str().unwrap(),
        ],
    );

    for secret in [
        ca.file("ca-key.pem"),
        ca.file("server-key.pem"),
        alice.join("key.pem"),
        ca.work.join("alice.dockercontext"),
        ca.work.join("alice.pfx"),
    ] {
        assert_eq!(mode_of(&secret), 0o600, "{}", secret.display());
    }
    assert_eq!(mode_of(&ca.dir), 0o700);
    assert_eq!(mode_of(&alice), 0o700);
    for public in [
        ca.file("ca.pem"),
        ca.file("crl.pem"),
        ca.file("ca-db.tsv"),
        alice.join("cert.pem"),
    ] {
        assert_eq!(mode_of(&public), 0o644, "{}", public.display());
    }
    // ca.pem in the client's folder is the CA that verifies the gate.
    assert_eq!(
        std::fs::read(alice.join("ca.pem")).unwrap(),
        std::fs::read(ca.file("ca.pem")).unwrap()
    );
    // The CA key is never printed.
    let key = std::fs::read_to_string(ca.file("ca-key.pem")).unwrap();
    let body = key.lines().nth(1).unwrap();
    assert!(!ca.init_stdout.contains(body));

    let password_arg = format!("file:{}", password.display());
    let pfx = ca.work.join("alice.pfx");
    let certs = run_tool(
        "openssl",
        &[
            "pkcs12",
            "-in",
            pfx.to_str().unwrap(),
            "-passin",
            &password_arg,
            "-nokeys",
            "-clcerts",
        ],
    );
    assert!(certs.success(), "{certs:?}");
    let extracted = ca.work.join("from-pfx.pem");
    std::fs::write(&extracted, &certs.stdout).unwrap();
    assert_eq!(serial_of(&extracted), serial_of(&alice.join("cert.pem")));
    let wrong = run_tool(
        "openssl",
        &[
            "pkcs12",
            "-in",
            pfx.to_str().unwrap(),
            "-passin",
            "pass:wrong",
            "-nokeys",
        ],
    );
    assert!(!wrong.success(), "the PFX opened with a wrong password");
}

#[test]
fn every_subcommand_has_help() {
    let cwd = fresh_dir("ca-help");
    let top = run_ca(&cwd, &["--help"]);
    assert!(top.success());
    for sub in ["init", "issue", "revoke", "crl", "list", "renew-server"] {
        assert!(
            top.stdout.contains(&format!("dockgate ca {sub} ")),
            "{}",
            top.stdout
        );
        let help = run_ca(&cwd, &[sub, "--help"]);
        assert!(help.success(), "{sub} --help: {help:?}");
        assert!(
            help.stdout.contains("USAGE:") && help.stdout.contains(&format!("dockgate ca {sub} ")),
            "{sub} --help:\n{}",
            help.stdout
        );
    }
    let gate_help = crate::common::gate::run_dockgate(&["--help".into()]);
    assert!(
        gate_help.stdout.contains("dockgate ca --help"),
        "{}",
        gate_help.stdout
    );
}
