//! A CRL the size of a large CA's: a million revoked serials, alice's among the last. The gate
//! loads it, refuses alice and lets bob in (his intermediate CA is looked up in it too).

use std::time::{Duration, Instant};

use crate::common::expect::{assert_cli_refused, assert_cli_works};
use crate::common::pki::SERIAL_ALICE;
use crate::common::util::fresh_dir;
use crate::common::{pki, GateBuilder};

const ENTRIES: u32 = 1_000_000;

/// Serials nobody has: 4 bytes from 0x40000000 up.
fn filler_serial(i: u32) -> [u8; 4] {
    (0x4000_0000 + i).to_be_bytes()
}

fn large_root_crl() -> Vec<u8> {
    let serials: Vec<[u8; 4]> = (0..ENTRIES - 1).map(filler_serial).collect();
    let mut refs: Vec<&[u8]> = serials.iter().map(|s| &s[..]).collect();
    refs.insert(refs.len() - 10, SERIAL_ALICE);
    crate::common::pki::sign_crl(&pki().root_issuer, 7, &refs, 30 * 86_400)
        .der()
        .to_vec()
}

#[test]
fn million_entry_crl_loads_and_is_enforced() {
    let pki = pki();
    let generating = Instant::now();
    let der = large_root_crl();
    eprintln!(
        "generated a {ENTRIES}-entry CRL ({} bytes) in {:?}",
        der.len(),
        generating.elapsed()
    );
    let path = fresh_dir("large-crl").join("root-crl.der");
    std::fs::write(&path, &der).unwrap();

    let loading = Instant::now();
    let gate = GateBuilder::standard()
        .crls(&[&path, &pki.intermediate_crl])
        .start_within(Duration::from_secs(120));
    eprintln!(
        "dockgate loaded it and listened after {:?}",
        loading.elapsed()
    );
    gate.wait_for_log(
        &[
            "CRL loaded:",
            &path.display().to_string(),
            &format!("{ENTRIES} revoked"),
        ],
        Duration::from_secs(5),
    );
    assert_cli_refused(&gate, &pki.alice, "certificate revoked");
    assert_cli_works(&gate, &pki.bob);
}
