//! bob's certificate is issued by an intermediate CA; his cert.pem holds leaf + intermediate.

use crate::common::expect::{assert_cli_refused, assert_cli_works};
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
