//! Release artefacts (issue #15): `--version` names the commit.

use std::process::Command;

use crate::common::gate::run_dockgate;

/// `dockgate --version` prints the package version and the commit it was built from (the
/// same `git rev-parse --short=12 HEAD` as the checkout the test runs in).
#[test]
fn version_names_the_git_commit() {
    let out = run_dockgate(&["--version".into()]);
    assert!(out.success(), "stderr:\n{}", out.stderr);
    let expected_version = format!("dockgate {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(out.stdout.starts_with(&expected_version), "{}", out.stdout);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git");
    // Outside a checkout (a source tarball) build.rs falls back to DOCKGATE_COMMIT or `unknown`.
    let commit = match head.status.success() {
        true => String::from_utf8(head.stdout).unwrap().trim().to_string(),
        false => option_env!("DOCKGATE_COMMIT")
            .unwrap_or("unknown")
            .to_string(),
    };
    assert_eq!(out.stdout.trim(), format!("{expected_version}{commit})"));
}
