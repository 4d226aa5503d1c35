//! The revocation policy flags: DER CRLs, unknown status, expired CRLs, leaf-only checking.

use crate::common::expect::{assert_cli_refused, assert_cli_works};
use crate::common::{pki, GateBuilder};

#[test]
fn der_crl_is_accepted() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .crls(&[&pki.root_crl_der, &pki.intermediate_crl])
        .start();
    assert_cli_works(&gate, &pki.alice);
    assert_cli_refused(&gate, &pki.mallory, "certificate revoked");
}

#[test]
fn missing_intermediate_crl_means_unknown_status() {
    let pki = pki();
    let gate = GateBuilder::standard().crls(&[&pki.root_crl]).start();
    assert_cli_refused(&gate, &pki.bob, "revocation status unknown");
    assert_cli_works(&gate, &pki.alice);
}

#[test]
fn allow_unknown_accepts_chain_without_intermediate_crl() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .crls(&[&pki.root_crl])
        .flag("--crl-allow-unknown")
        .start();
    assert_cli_works(&gate, &pki.bob);
    assert_cli_refused(&gate, &pki.mallory, "certificate revoked");
}

#[test]
fn expired_crl_is_rejected() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .crls(&[&pki.root_crl_expired, &pki.intermediate_crl])
        .start();
    assert_cli_refused(&gate, &pki.alice, "CRL expired");
}

#[test]
fn allow_expired_uses_expired_crl() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .crls(&[&pki.root_crl_expired, &pki.intermediate_crl])
        .flag("--crl-allow-expired")
        .start();
    assert_cli_works(&gate, &pki.alice);
    assert_cli_refused(&gate, &pki.mallory, "certificate revoked");
}

#[test]
fn leaf_only_ignores_revoked_intermediate() {
    let pki = pki();
    let gate = GateBuilder::standard()
        .crls(&[&pki.root_crl_revoking_intermediate, &pki.intermediate_crl])
        .flag("--crl-leaf-only")
        .start();
    assert_cli_works(&gate, &pki.bob);
    assert_cli_refused(&gate, &pki.mallory, "certificate revoked");
}
