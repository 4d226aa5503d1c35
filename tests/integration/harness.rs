//! Checks of the harness itself, without dockgate: if these fail, the other failures are not
//! the gate's fault.

use crate::common::{pki, Docker, TEST_IMAGE};

#[test]
fn dockerd_runs_the_test_image_directly() {
    let docker = Docker::direct();
    assert!(docker.ok(&["version"]).contains("Server:"));
    assert_eq!(
        docker.ok(&["run", "--rm", TEST_IMAGE, "echo", "ok"]).trim(),
        "ok"
    );
}

#[test]
fn pki_files_exist() {
    let pki = pki();
    for id in [
        &pki.alice,
        &pki.mallory,
        &pki.expired,
        &pki.serveronly,
        &pki.stranger,
        &pki.bob,
    ] {
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            assert!(id.dir.join(f).is_file(), "{}/{f}", id.dir.display());
        }
    }
    let bob_chain = std::fs::read_to_string(pki.bob.dir.join("cert.pem")).unwrap();
    assert_eq!(
        bob_chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "bob sends leaf + intermediate"
    );
    assert_eq!(pki.mallory.serial_hex, "3f2a02");
}
