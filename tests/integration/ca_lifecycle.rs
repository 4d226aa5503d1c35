//! `dockgate ca` end to end with the real docker CLI and the real dockerd: a CA from `ca init`,
//! the gate started with the command line it printed, a user who imports the context that
//! `ca issue --context` wrote, and `ca revoke` / `ca crl` / `ca renew-server` applied by the
//! running gate within its reload interval (1 s here), without a restart.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use rcgen::{CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, SerialNumber};

use crate::common::ca::{assert_days_ahead, run_tool, serial_of, CaDir, ContextCli};
use crate::common::expect::LOG_WAIT;
use crate::common::files::write_atomically;
use crate::common::util::Streaming;
use crate::common::{Docker, Gate};

/// How long the gate may take to apply a rewritten file with `--reload-interval 1` (a tick, a
/// debug-build reload, room for a loaded CI machine).
const APPLIED_WITHIN: Duration = Duration::from_secs(8);
const ECHO_WAIT: Duration = Duration::from_secs(15);

/// `docker version` through the gate with DOCKER_CERT_PATH=`cert_dir` works and is logged
/// with the certificate's subject and serial.
fn assert_cert_dir_works(gate: &Gate, cert_dir: &Path, name: &str) {
    let out = Docker::via_cert_dir(gate, cert_dir).ok(&["version"]);
    assert!(out.contains("Server:"), "{out}");
    let serial = format!("serial={}", serial_of(&cert_dir.join("cert.pem")));
    let subject = format!("subject=\"CN={name}\"");
    gate.wait_for_log(&["request", &subject, &serial, "status=200"], LOG_WAIT);
}

/// One more `handshake refused` line for CN=`name` with `reason` after `action` than before.
fn assert_refused_by(gate: &Gate, name: &str, reason: &str, action: impl FnOnce()) -> String {
    let subject = format!("subject=\"CN={name}\"");
    let reason = format!("reason=\"{reason}\"");
    let needles = ["handshake refused", subject.as_str(), reason.as_str()];
    let before = gate.logs_handle().lines_with(&needles).len();
    action();
    gate.logs_handle()
        .wait_for_count(&needles, before + 1, LOG_WAIT)
        .remove(before)
}

#[test]
fn issue_import_use_revoke_through_the_docker_cli() {
    let ca = CaDir::init();
    let mut gate = ca.start_gate();
    let pid = gate.pid();
    let logs = gate.logs_handle();
    let gate_address = format!("127.0.0.1:{}", gate.port);

    // The user's side: one file, one import, then plain `docker --context alice ...`.
    let alice_dir = ca.issue("alice", &["--context", &gate_address]);
    let bob_dir = ca.issue("bob", &[]);
    let alice_serial = serial_of(&alice_dir.join("cert.pem"));
    let cli = ContextCli::new();
    let import = cli.run(&[
        "context",
        "import",
        "alice",
        ca.work.join("alice.dockercontext").to_str().unwrap(),
    ]);
    assert!(import.success(), "docker context import: {import:?}");
    assert!(
        format!("{}{}", import.stdout, import.stderr)
            .contains("Successfully imported context \"alice\""),
        "{import:?}"
    );
    let inspect = cli.run(&[
        "context",
        "inspect",
        "alice",
        "--format",
        "{{.Endpoints.docker.Host}}",
    ]);
    assert_eq!(
        inspect.stdout.trim(),
        format!("tcp://{gate_address}"),
        "{inspect:?}"
    );

    let ps = cli.run(&["--context", "alice", "ps"]);
    assert!(
        ps.success(),
        "docker --context alice ps: {ps:?}\n{}",
        gate.logs()
    );
    assert!(ps.stdout.starts_with("CONTAINER ID"), "{}", ps.stdout);
    gate.wait_for_log(
        &[
            "request",
            "subject=\"CN=alice\"",
            &format!("serial={alice_serial}"),
            "path=/v1.",
            "/containers/json",
            "status=200",
        ],
        LOG_WAIT,
    );

    // A live `exec -i` session of alice's, through the imported context.
    let container = Docker::direct().run_detached(&["sleep", "600"]);
    let mut session = Streaming::spawn_with_stdin(&mut cli.command(&[
        "--context",
        "alice",
        "exec",
        "-i",
        &container.name,
        "cat",
    ]));
    session.send_line("before the revocation").unwrap();
    session.expect_line("before the revocation", ECHO_WAIT);

    let revoked_at = Instant::now();
    let out = ca.ok("revoke", &["alice", "--reason", "keyCompromise"]);
    assert!(
        out.contains(&format!("Revoked alice (serial {alice_serial}"))
            && out.contains("CRL number 2, 1 revoked"),
        "{out}"
    );

    let cut = logs.wait_for(
        &[
            "connection cut",
            "subject=\"CN=alice\"",
            &format!("serial={alice_serial}"),
            "reason=\"certificate revoked\"",
            "/exec/",
        ],
        APPLIED_WITHIN.saturating_sub(revoked_at.elapsed()),
    );
    eprintln!("cut {:?} after ca revoke: {cut}", revoked_at.elapsed());
    let status = session.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some(),
        "alice's docker exec still running after her session was cut\n{}",
        gate.logs()
    );
    let updated = logs.wait_for(&["CRL updated:", "crl.pem"], LOG_WAIT);
    assert!(
        updated.contains("number 2, 1 revoked") && updated.contains("was number 1, 0 revoked"),
        "{updated}"
    );

    // New connections of alice are refused; bob still gets in.
    let refused = assert_refused_by(&gate, "alice", "certificate revoked", || {
        let again = cli.run(&["--context", "alice", "ps"]);
        assert!(
            !again.success(),
            "revoked alice still runs docker ps: {again:?}"
        );
    });
    assert!(
        refused.contains(&format!("serial={alice_serial}")),
        "{refused}"
    );
    assert_cert_dir_works(&gate, &bob_dir, "bob");

    // The same gate process did all of this, and started listening once.
    assert!(gate.is_running());
    assert_eq!(gate.pid(), pid);
    assert_eq!(logs.lines_with(&["listening on"]).len(), 1);
}

/// A CRL signed with the CA's own key whose nextUpdate passed an hour ago: what `DIR/crl.pem`
/// becomes when the daily `ca crl` timer has not run for a month.
fn expired_crl_pem(ca: &CaDir) -> String {
    let key = KeyPair::from_pem(&std::fs::read_to_string(ca.file("ca-key.pem")).unwrap()).unwrap();
    let issuer =
        Issuer::from_ca_cert_pem(&std::fs::read_to_string(ca.file("ca.pem")).unwrap(), key)
            .unwrap();
    let now = SystemTime::now();
    let hours_ago = |h: u64| time::OffsetDateTime::from(now - Duration::from_secs(h * 3600));
    CertificateRevocationListParams {
        this_update: hours_ago(48),
        next_update: hours_ago(1),
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap()
    .pem()
    .unwrap()
}

#[test]
fn ca_crl_renews_an_expired_crl_and_the_gate_reloads_it() {
    let ca = CaDir::init();
    let alice_dir = ca.issue("alice", &[]);
    // The gate starts on a CRL that has expired (a renewal timer that stopped): a reload to an
    // older CRL would be refused as a rollback, so the expired one is in force from the start.
    write_atomically(&ca.file("crl.pem"), expired_crl_pem(&ca).as_bytes());
    let gate = ca.start_gate();
    gate.wait_for_log(
        &["crl.pem", "is past its nextUpdate", "REFUSED"],
        APPLIED_WITHIN,
    );
    assert_refused_by(&gate, "alice", "CRL expired", || {
        Docker::via_cert_dir(&gate, &alice_dir).fails(&["version"]);
    });

    let renewed_at = Instant::now();
    let out = ca.ok("crl", &[]);
    assert!(out.contains("CRL number 2, 0 revoked"), "{out}");
    let updated = gate.wait_for_log(&["CRL updated:", "number 2"], APPLIED_WITHIN);
    eprintln!(
        "reloaded {:?} after ca crl: {updated}",
        renewed_at.elapsed()
    );
    assert_cert_dir_works(&gate, &alice_dir, "alice");

    // nextUpdate 30 days ahead (the default of --days), as openssl reads it.
    let next = run_tool(
        "openssl",
        &[
            "crl",
            "-in",
            ca.file("crl.pem").to_str().unwrap(),
            "-noout",
            "-nextupdate",
        ],
    );
    assert!(next.success(), "{next:?}");
    assert_days_ahead(&next.stdout, 30);
}

/// The serial of the certificate the gate serves to a new connection, as openssl sees it.
fn served_serial(gate: &Gate, ca: &CaDir, client: &Path) -> String {
    let connect = format!("127.0.0.1:{}", gate.port);
    let out = crate::common::util::run_with_timeout(
        std::process::Command::new("openssl").args([
            "s_client",
            "-connect",
            &connect,
            "-CAfile",
            ca.file("ca.pem").to_str().unwrap(),
            "-cert",
            client.join("cert.pem").to_str().unwrap(),
            "-key",
            client.join("key.pem").to_str().unwrap(),
            "-verify_return_error",
        ]),
        Some(b""),
        Duration::from_secs(30),
    );
    assert!(out.stdout.contains("Verify return code: 0 (ok)"), "{out:?}");
    let pem_start = out
        .stdout
        .find("-----BEGIN CERTIFICATE-----")
        .expect("served certificate");
    let pem_end = out.stdout.find("-----END CERTIFICATE-----").unwrap() + 25;
    let file = ca.work.join("served.pem");
    std::fs::write(&file, &out.stdout[pem_start..pem_end]).unwrap();
    serial_of(&file)
}

#[test]
fn renew_server_is_served_by_the_running_gate() {
    let ca = CaDir::init();
    let mut gate = ca.start_gate();
    let alice_dir = ca.issue("alice", &[]);
    let old_serial = serial_of(&ca.file("server.pem"));
    assert_eq!(served_serial(&gate, &ca, &alice_dir), old_serial);

    let renewed_at = Instant::now();
    let out = ca.ok("renew-server", &[]);
    let new_serial = serial_of(&ca.file("server.pem"));
    assert_ne!(new_serial, old_serial);
    assert!(
        out.contains(&format!("serial {new_serial} for localhost, 127.0.0.1")),
        "{out}"
    );
    let line = gate.wait_for_log(
        &["server certificate now", &format!("serial {new_serial}")],
        APPLIED_WITHIN,
    );
    eprintln!("{line} ({:?} after ca renew-server)", renewed_at.elapsed());
    gate.wait_for_log(&["TLS configuration reloaded"], LOG_WAIT);
    assert_eq!(served_serial(&gate, &ca, &alice_dir), new_serial);
    // The docker CLI verifies the new certificate (names, CA) just as it did the old one.
    assert_cert_dir_works(&gate, &alice_dir, "alice");
    assert!(gate.is_running());

    let list = ca.ok("list", &[]);
    let status_of = |serial: &str| {
        list.lines()
            .find(|l| l.starts_with(serial))
            .unwrap_or_else(|| panic!("{serial} not in ca list:\n{list}"))
            .split_whitespace()
            .nth(3)
            .unwrap()
            .to_string()
    };
    assert_eq!(status_of(&old_serial), "replaced", "{list}");
    assert_eq!(status_of(&new_serial), "valid", "{list}");
}
