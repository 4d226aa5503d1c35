//! `dockgate ca` refusing bad input: an existing CA, a missing DIR, an unknown name to revoke,
//! a second revocation, a corrupted database, a held lock. Each gets one line on stderr and
//! exit code 2, and leaves every file as it was (no half-written CRL, database or folder).

use crate::common::ca::{assert_one_line_failure, run_ca, snapshot, CaDir};

#[test]
fn init_refuses_a_directory_that_holds_a_ca() {
    let ca = CaDir::init();
    let before = ca.snapshot();
    let out = ca.run("init", &["--server-name", "other"]);
    assert_one_line_failure(&out, "init", "already holds a CA");
    assert_eq!(ca.snapshot(), before);
}

#[test]
fn commands_on_a_missing_directory_create_nothing() {
    let ca = CaDir::init();
    let missing = ca.work.join("no-such-ca");
    let missing = missing.to_str().unwrap();
    let cases: [(&str, &[&str]); 5] = [
        ("issue", &["carol"]),
        ("revoke", &["carol"]),
        ("crl", &[]),
        ("list", &[]),
        ("renew-server", &[]),
    ];
    for (sub, rest) in cases {
        let mut args = vec![sub, missing];
        args.extend_from_slice(rest);
        let out = run_ca(&ca.work, &args);
        assert_one_line_failure(&out, sub, "does not exist");
    }
    let mut names: Vec<_> = std::fs::read_dir(&ca.work)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ca"], "something was created");
}

#[test]
fn revoking_an_unknown_name_or_twice_changes_nothing() {
    let ca = CaDir::init();
    ca.issue("alice", &[]);
    let before = ca.snapshot();
    let out = ca.run("revoke", &["carol"]);
    assert_one_line_failure(&out, "revoke", "no certificate named or numbered \"carol\"");
    assert_eq!(ca.snapshot(), before);

    ca.ok("revoke", &["alice"]);
    let revoked = ca.snapshot();
    assert_ne!(revoked["crl.pem"], before["crl.pem"]);
    let out = ca.run("revoke", &["alice", "--reason", "superseded"]);
    let line = assert_one_line_failure(&out, "revoke", "alice is already revoked");
    assert!(line.contains("unspecified"), "{line}");
    assert_eq!(ca.snapshot(), revoked);
}

#[test]
fn a_corrupted_database_stops_every_command_and_nothing_is_written() {
    let ca = CaDir::init();
    ca.issue("alice", &[]);
    let db_file = ca.file("ca-db.tsv");
    let good = std::fs::read_to_string(&db_file).unwrap();
    let truncated = &good[..good.len() - 30];
    let garbage = good.replace("crl-number\t1", "crl-number\tone");
    for (corrupted, line) in [(truncated, "line 5"), (garbage.as_str(), "line 3")] {
        std::fs::write(&db_file, corrupted).unwrap();
        let before = ca.snapshot();
        let cases: [(&str, &[&str]); 5] = [
            ("issue", &["carol"]),
            ("revoke", &["alice"]),
            ("crl", &[]),
            ("list", &[]),
            ("renew-server", &[]),
        ];
        for (sub, args) in cases {
            let out = ca.run(sub, args);
            let message = assert_one_line_failure(&out, sub, "is corrupted at ");
            assert!(
                message.contains(line) && message.contains("ca-db.tsv"),
                "{message}"
            );
            assert_eq!(ca.snapshot(), before, "ca {sub} changed files");
        }
        assert!(
            !ca.work.join("carol").exists(),
            "issue wrote carol's folder"
        );
    }
}

#[test]
fn a_held_lock_refuses_and_existing_outputs_are_not_overwritten() {
    let ca = CaDir::init();
    std::fs::write(ca.file("ca.lock"), "12345").unwrap();
    let before = ca.snapshot();
    let out = ca.run("revoke", &["alice"]);
    assert_one_line_failure(&out, "revoke", "pid 12345");
    assert_eq!(ca.snapshot(), before);
    std::fs::remove_file(ca.file("ca.lock")).unwrap();

    let alice = ca.issue("alice", &[]);
    let folder = snapshot(&alice);
    let before = ca.snapshot();
    let out = ca.run("issue", &["alice"]);
    assert_one_line_failure(&out, "issue", "already exists");
    assert_eq!(snapshot(&alice), folder);
    assert_eq!(ca.snapshot(), before, "a refused issue changed the CA");
}

/// An --out whose parent does not exist fails before the certificate is recorded: the database
/// does not list a certificate nobody received.
#[test]
fn issue_to_an_impossible_path_records_nothing() {
    let ca = CaDir::init();
    let before = ca.snapshot();
    let out = ca.run(
        "issue",
        &["carol", "--out", "no-such-parent/carol", "--context", "h:1"],
    );
    assert_one_line_failure(&out, "issue", "cannot create no-such-parent/carol");
    assert_eq!(ca.snapshot(), before);
    assert!(!ca.work.join("no-such-parent").exists());
    assert!(!ca.ok("list", &[]).contains("carol"));
}
