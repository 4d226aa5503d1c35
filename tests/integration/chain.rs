//! bob's certificate is issued by an intermediate CA; his cert.pem holds leaf + intermediate.
//! An intermediate in --tlscacert is used for path building, never as a trust anchor.

use crate::common::expect::{assert_cli_refused, assert_cli_works, assert_raw_refused, LOG_WAIT};
use crate::common::pki::Identity;
use crate::common::tls::RawTls;
use crate::common::{pki, GateBuilder};

#[test]
fn intermediate_chain_with_both_crls_works() {
    let gate = GateBuilder::standard().start();
    assert_cli_works(&gate, &pki().bob);
}

#[test]
fn intermediate_revoked_by_root_crl_refuses_leaf() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .crls(&[&pki.root_crl_revoking_intermediate, &pki.intermediate_crl])
        .start();
    assert_cli_refused(&gate, &pki.bob, "certificate revoked");
    // alice's own chain does not include the intermediate.
    assert_cli_works(&gate, &pki.alice);
}

#[test]
fn ca_bundle_with_root_and_intermediate_works() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .ca(&pki.root_and_intermediate_ca)
        .start();
    assert_cli_works(&gate, &pki.bob);
    assert_cli_works(&gate, &pki.alice);
    assert_cli_refused(&gate, &pki.mallory, "certificate revoked");
}

/// bob's certificate alone, without the intermediate that issued it.
fn bob_leaf_only() -> Identity {
    let bob = &pki().bob;
    Identity {
        name: "bob (leaf only)",
        dir: bob.dir.clone(),
        chain_der: bob.chain_der[..1].to_vec(),
        key_der: bob.key_der.clone(),
        subject: bob.subject.clone(),
        serial_hex: bob.serial_hex.clone(),
    }
}

/// The intermediate in --tlscacert is not a trust anchor: its revocation at the root counts,
/// whether the client sends it (path built through the client's copy) or not (through the
/// bundle's). It used to be an anchor, which admitted bob.
#[test]
fn bundled_intermediate_revoked_at_the_root_refuses_its_leaves() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .ca(&pki.root_and_intermediate_ca)
        .crls(&[&pki.root_crl_revoking_intermediate, &pki.intermediate_crl])
        .start();
    assert_cli_refused(&gate, &pki.bob, "certificate revoked");
    let line = assert_raw_refused(&gate, Some(&bob_leaf_only()), "certificate revoked");
    assert!(line.contains("subject=\"CN=bob\""), "{line}");
    assert_cli_works(&gate, &pki.alice);
}

/// A client that sends only its own certificate gets in through the intermediate in the bundle.
#[test]
fn bundled_intermediate_completes_a_leaf_only_chain() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .ca(&pki.root_and_intermediate_ca)
        .start();
    RawTls::connect(gate.port, Some(&bob_leaf_only())).ping("bob, leaf only");
    gate.wait_for_log(&["request", "subject=\"CN=bob\"", "status=200"], LOG_WAIT);
}

/// An expired intermediate in the bundle is announced at start and admits none of its leaves.
/// It used to be an anchor, whose validity webpki never checks: dave got in.
#[test]
fn bundled_expired_intermediate_is_announced_and_refuses_its_leaves() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .ca(&pki.root_and_expired_intermediate_ca)
        .crls(&[&pki.root_crl, &pki.expired_intermediate_crl])
        .start();
    let line = assert_cli_refused(&gate, &pki.dave, "certificate expired");
    assert!(line.contains("subject=\"CN=dave\""), "{line}");
    let warning = gate.wait_for_log(
        &[
            "WARN",
            "certificate #2 \"CN=dockgate test expired intermediate CA\" expired on",
            "every client whose chain goes through it is refused",
        ],
        LOG_WAIT,
    );
    assert!(warning.contains("--tlscacert"), "{warning}");
    assert_cli_works(&gate, &pki.alice);
}
