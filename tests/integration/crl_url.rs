//! `--crl-url`: the root CRL comes from a small HTTP server in the test instead of a file.
//! Downloads are refreshed (`--crl-refresh 2s`) and take effect at once; an outage keeps the
//! cached copy in force, also across a restart; a download that is not a CRL of a
//! `--tlscacert` CA is never cached, nor an older CRL (rollback) or another CA's CRL
//! (substitution) than the URL served before.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::expect::{assert_cli_refused_again, assert_cli_works, LOG_WAIT};
use crate::common::gate::Gate;
use crate::common::http::CrlServer;
use crate::common::pki::{sign_crl, SERIAL_ALICE, SERIAL_MALLORY};
use crate::common::util::fresh_dir;
use crate::common::{pki, GateBuilder};

const THIRTY_DAYS: i64 = 30 * 86_400;
/// `--crl-refresh 2s`: a change on the server must be in force well within this.
const REFRESH_WITHIN: Duration = Duration::from_secs(6);

/// A root CRL revoking `serials`, DER, as CAs publish them.
fn root_crl_der(number: u64, serials: &[&[u8]]) -> Vec<u8> {
    sign_crl(&pki().root_issuer, number, serials, THIRTY_DAYS)
        .der()
        .to_vec()
}

/// A gate whose only CRL source is `url`, with `cache` as `--crl-cache`.
fn url_gate(url: &str, cache: &Path) -> GateBuilder {
    GateBuilder::standard().crls(&[]).flags(&[
        "--crl-url",
        url,
        "--crl-cache",
        cache.to_str().unwrap(),
        "--crl-refresh",
        "2s",
        "--reload-interval",
        "1",
    ])
}

/// The one `crl-*.crl` file in the cache directory.
fn cache_file(cache: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("crl-") && name.ends_with(".crl")
        })
        .collect();
    assert_eq!(files.len(), 1, "cache {}: {files:?}", cache.display());
    files[0].clone()
}

/// Alice and mallory revoked, carol (also from the root CA) let in.
fn assert_alice_and_mallory_refused_carol_works(gate: &Gate) {
    let pki = pki();
    assert_cli_refused_again(gate, &pki.alice, "certificate revoked");
    assert_cli_refused_again(gate, &pki.mallory, "certificate revoked");
    assert_cli_works(gate, &pki.carol);
}

/// First download, a changed CRL on the server, the server gone, and a restart while it is
/// still gone.
#[test]
fn download_refresh_outage_and_restart_from_cache() {
    let pki = pki();
    let mut server = CrlServer::start(root_crl_der(1, &[SERIAL_MALLORY]));
    let url = server.url("root.crl");
    let cache = fresh_dir("crl-cache");
    let downloaded = format!("CRL downloaded from {url} in ");

    // 1. No --crl at all: the first download is what the gate starts with.
    let mut gate = url_gate(&url, &cache).start();
    let line = gate.wait_for_log(&[&downloaded], LOG_WAIT);
    assert!(line.contains("ms: 1 revoked, nextUpdate "), "{line}");
    assert_cli_works(&gate, &pki.alice);
    assert_cli_refused_again(&gate, &pki.mallory, "certificate revoked");
    assert_cli_works(&gate, &pki.carol);

    // 2. The CA publishes a CRL revoking alice too: downloaded and in force within seconds.
    let published = Instant::now();
    server.serve(root_crl_der(2, &[SERIAL_MALLORY, SERIAL_ALICE]));
    let logs = gate.logs_handle();
    let lines = logs.wait_for_count(&[&downloaded], 2, REFRESH_WITHIN);
    assert!(
        lines[1].contains("ms: 2 revoked, nextUpdate "),
        "{}",
        lines[1]
    );
    logs.wait_for(
        &["TLS configuration reloaded (generation 1)"],
        REFRESH_WITHIN.saturating_sub(published.elapsed()),
    );
    eprintln!(
        "new CRL in force {:?} after the server started serving it",
        published.elapsed()
    );
    let cached = cache_file(&cache);
    logs.wait_for(
        &[
            "CRL updated:",
            &cached.display().to_string(),
            "number 2, 2 revoked",
        ],
        LOG_WAIT,
    );
    assert_alice_and_mallory_refused_carol_works(&gate);

    // 3. The server goes away: the cached copy stays in force.
    server.stop();
    let line = logs.wait_for(
        &[&format!("CRL download from {url} failed")],
        REFRESH_WITHIN,
    );
    assert!(
        line.contains(&format!(
            "the cached copy {} stays in force",
            cached.display()
        )),
        "{line}"
    );
    assert_alice_and_mallory_refused_carol_works(&gate);

    // 4. Restart with the server still gone: the gate starts from the cache.
    gate.kill();
    let gate = url_gate(&url, &cache).start();
    gate.wait_for_log(
        &[&format!("CRL download from {url} failed"), "stays in force"],
        LOG_WAIT,
    );
    gate.wait_for_log(
        &["CRL loaded:", &cached.display().to_string(), "2 revoked"],
        LOG_WAIT,
    );
    assert_alice_and_mallory_refused_carol_works(&gate);
}

/// Serves `bad` instead of the good CRL and checks that the download fails (logged with
/// `problem`), the cache keeps the good CRL byte for byte, and nothing changes for clients.
fn bad_download_is_not_cached(bad: Vec<u8>, problem: &str) {
    let pki = pki();
    let server = CrlServer::start(root_crl_der(1, &[SERIAL_MALLORY]));
    let url = server.url("root.crl");
    let cache = fresh_dir("crl-cache");
    let gate = url_gate(&url, &cache).start();
    gate.wait_for_log(&[&format!("CRL downloaded from {url}")], LOG_WAIT);
    let cached = cache_file(&cache);
    let good = std::fs::read(&cached).unwrap();

    server.serve(bad);
    let line = gate.wait_for_log(
        &[&format!("CRL download from {url} failed")],
        REFRESH_WITHIN,
    );
    assert!(
        line.contains(problem)
            && line.contains(&format!(
                "the cached copy {} stays in force",
                cached.display()
            )),
        "expected {problem:?} and the cached copy in: {line}"
    );
    assert_eq!(cache_file(&cache), cached);
    assert!(
        std::fs::read(&cached).unwrap() == good,
        "the cache file changed\n--- dockgate log:\n{}",
        gate.logs()
    );
    gate.logs_handle().assert_no_line(
        &["TLS configuration reloaded"],
        "a refused download was installed",
    );
    assert_cli_works(&gate, &pki.alice);
    assert_cli_refused_again(&gate, &pki.mallory, "certificate revoked");
}

#[test]
fn garbage_download_is_not_cached() {
    bad_download_is_not_cached(
        b"<html><body>503 Service Unavailable</body></html>".to_vec(),
        "not a valid X.509 CRL",
    );
}

/// Named as from the root CA, signed with another key; it would revoke alice.
#[test]
fn forged_crl_download_is_not_cached() {
    let forged = sign_crl(
        &pki().forged_root_issuer,
        2,
        &[SERIAL_MALLORY, SERIAL_ALICE],
        THIRTY_DAYS,
    );
    bad_download_is_not_cached(forged.der().to_vec(), "signature does not verify");
}

/// From the unrelated CA (not in `--tlscacert`): its signature cannot be verified against
/// `--tlscacert`, so it must not replace the root CRL in the cache.
#[test]
fn crl_from_other_ca_download_is_not_cached() {
    let foreign = sign_crl(
        &pki().other_issuer,
        2,
        &[SERIAL_MALLORY, SERIAL_ALICE],
        THIRTY_DAYS,
    );
    bad_download_is_not_cached(foreign.der().to_vec(), "--crl-url ");
}

/// Nothing to download and nothing cached: the gate does not start (exit 2).
#[test]
fn unreachable_url_without_cache_refuses_to_start() {
    let closed = crate::common::util::ClosedPort::new();
    let url = format!("http://127.0.0.1:{}/root.crl", closed.port);
    let cache = fresh_dir("crl-cache");
    let out = url_gate(&url, &cache).run_to_exit();
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("CRL download from {url} failed"))
            && out.stderr.contains("there is no cached copy"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("dockgate: no CRL available yet"),
        "{}",
        out.stderr
    );
}

/// HTTPS CRL servers are verified with the public roots (webpki-roots) by default, which do not
/// know a private CA: the download fails and, with nothing cached, the gate does not start.
/// `--crl-url-ca` names the CA that does verify the server.
#[test]
fn https_crl_url_is_verified_with_public_roots_or_crl_url_ca() {
    let server = CrlServer::start_https(root_crl_der(1, &[SERIAL_MALLORY]));
    let url = server.url("root.crl");
    assert!(url.starts_with("https://"));

    let out = url_gate(&url, &fresh_dir("crl-cache")).run_to_exit();
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("CRL download from {url} failed"))
            && out.stderr.contains("dockgate: no CRL available yet"),
        "{}",
        out.stderr
    );

    let root_ca = pki().root_ca.to_str().unwrap().to_string();
    let gate = url_gate(&url, &fresh_dir("crl-cache"))
        .flags(&["--crl-url-ca", &root_ca])
        .start();
    gate.wait_for_log(&[&format!("CRL downloaded from {url}")], LOG_WAIT);
    assert_cli_works(&gate, &pki().alice);
    crate::common::expect::assert_cli_refused(&gate, &pki().mallory, "certificate revoked");
}

/// `--crl-from-cdp`: the CRL Distribution Points named in the `--tlscacert` certificates are
/// downloaded like `--crl-url`. Here a second CA in the bundle names the test server, which
/// serves the root CRL (mallory revoked).
#[test]
fn crl_from_cdp_downloads_the_distribution_points_of_the_ca_bundle() {
    use rcgen::{BasicConstraints, CertificateParams, CrlDistributionPoint, IsCa, KeyPair};

    let server = CrlServer::start(root_crl_der(1, &[SERIAL_MALLORY]));
    let url = server.url("ca.crl");
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "CA with a distribution point");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec![url.clone()],
    }];
    let cdp_ca = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
    let dir = fresh_dir("cdp");
    let bundle = dir.join("bundle.pem");
    let root = std::fs::read_to_string(&pki().root_ca).unwrap();
    std::fs::write(&bundle, root + &cdp_ca.pem()).unwrap();

    let cache = fresh_dir("crl-cache");
    let gate = GateBuilder::standard()
        .ca(&bundle)
        .crls(&[])
        .flags(&["--crl-from-cdp", "--crl-cache", cache.to_str().unwrap()])
        .start();
    gate.wait_for_log(&["--crl-from-cdp", &url], LOG_WAIT);
    gate.wait_for_log(&[&format!("CRL downloaded from {url}")], LOG_WAIT);
    assert_cli_works(&gate, &pki().alice);
    crate::common::expect::assert_cli_refused(&gate, &pki().mallory, "certificate revoked");
}

/// Rollback: the server (or anyone on the plain-http path) serves CRL 4096 again after 4100,
/// which revoked alice. The older CRL is refused with an ERROR line and alice stays revoked,
/// also after a restart (the newest number is kept in `--crl-cache`).
#[test]
fn older_crl_is_refused_also_after_a_restart() {
    let pki = pki();
    // Signed first, so that its thisUpdate is not after the newer one's.
    let old = root_crl_der(4096, &[SERIAL_MALLORY]);
    let server = CrlServer::start(old.clone());
    let url = server.url("root.crl");
    let cache = fresh_dir("crl-cache");
    let downloaded = format!("CRL downloaded from {url} in ");

    let mut gate = url_gate(&url, &cache).start();
    gate.wait_for_log(&[&downloaded], LOG_WAIT);
    assert_cli_works(&gate, &pki.alice);

    thread::sleep(Duration::from_millis(1100)); // a later thisUpdate, to the second
    server.serve(root_crl_der(4100, &[SERIAL_MALLORY, SERIAL_ALICE]));
    gate.wait_for_log(&["CRL updated:", "number 4100"], REFRESH_WITHIN * 2);
    assert_cli_refused_again(&gate, &pki.alice, "certificate revoked");

    server.serve(old);
    let line = gate.wait_for_log(
        &[
            "ERROR",
            &format!("CRL download from {url} failed"),
            "number 4096, lower than number 4100",
        ],
        REFRESH_WITHIN,
    );
    assert!(line.contains("rollback"), "{line}");
    // The next attempt is refused too: by then the first refused download, had it reached the
    // cache, would have been reloaded (the watcher looks every second).
    gate.logs_handle().wait_for_count(
        &[
            &format!("CRL download from {url} failed"),
            "lower than number 4100",
        ],
        2,
        REFRESH_WITHIN,
    );
    assert_cli_refused_again(&gate, &pki.alice, "certificate revoked");
    gate.logs_handle().assert_no_line(
        &["CRL updated:", ", number 4096,"],
        "the old CRL was applied again",
    );

    // A restart while the server still serves the old CRL: the cache directory remembers 4100.
    gate.kill();
    let gate = url_gate(&url, &cache).start();
    gate.wait_for_log(
        &[
            &format!("CRL download from {url} failed"),
            "lower than number 4100",
        ],
        LOG_WAIT,
    );
    assert_cli_refused_again(&gate, &pki.alice, "certificate revoked");
    assert_cli_works(&gate, &pki.carol);
}

/// Substitution: the URL of the intermediate's CRL serves the root's CRL (valid, signed by a
/// CA in `--tlscacert`). It must not replace the intermediate's CRL: the URL is pinned to the
/// intermediate. (It used to: bob, from the intermediate, was then refused as "revocation status
/// unknown", or admitted unchecked with `--crl-allow-unknown`.)
#[test]
fn another_cas_crl_at_a_pinned_url_is_refused() {
    let pki = pki();
    let intermediate_crl = std::fs::read(&pki.intermediate_crl).unwrap();
    let server = CrlServer::start(intermediate_crl);
    let url = server.url("intermediate.crl");
    let cache = fresh_dir("crl-cache");
    let gate = url_gate(&url, &cache).crls(&[&pki.root_crl]).start();
    gate.wait_for_log(&[&format!("CRL downloaded from {url} in ")], LOG_WAIT);
    assert_cli_works(&gate, &pki.bob);

    server.serve(root_crl_der(5, &[SERIAL_MALLORY]));
    let line = gate.wait_for_log(
        &["ERROR", &format!("CRL download from {url} failed")],
        REFRESH_WITHIN,
    );
    assert!(
        line.contains("substitution") && line.contains("dockgate test root CA"),
        "{line}"
    );
    // The next attempt is refused too: by then the first one, had it reached the cache, would
    // have been reloaded (the watcher looks every second).
    gate.logs_handle().wait_for_count(
        &[
            "ERROR",
            &format!("CRL download from {url} failed"),
            "substitution",
        ],
        2,
        REFRESH_WITHIN,
    );
    gate.logs_handle().assert_no_line(
        &["TLS configuration reloaded"],
        "a refused download was installed",
    );
    assert_cli_works(&gate, &pki.bob);
    assert_cli_refused_again(&gate, &pki.mallory, "certificate revoked");
}

/// An upgrade from a build that named cache files with std's `DefaultHasher`, restarted
/// without network: the cache file under the old name is taken over (renamed) and enforced.
#[test]
fn upgrade_without_network_finds_the_cache_under_its_legacy_name() {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let pki = pki();
    let mut server = CrlServer::start(root_crl_der(1, &[SERIAL_MALLORY]));
    let url = server.url("root.crl");
    server.stop();
    let cache = fresh_dir("crl-cache");
    let mut hasher = DefaultHasher::new();
    url.hash(&mut hasher);
    let legacy = cache.join(format!("crl-{:016x}.crl", hasher.finish()));
    std::fs::write(&legacy, root_crl_der(1, &[SERIAL_MALLORY])).unwrap();

    let gate = url_gate(&url, &cache).start();
    let line = gate.wait_for_log(&["CRL cache of", "renamed"], LOG_WAIT);
    let adopted = cache_file(&cache);
    assert!(
        line.contains(&legacy.display().to_string())
            && line.contains(&adopted.display().to_string()),
        "{line}"
    );
    assert!(!legacy.exists() && adopted != legacy);
    gate.wait_for_log(
        &["CRL loaded:", &adopted.display().to_string(), "1 revoked"],
        LOG_WAIT,
    );
    assert_cli_refused_again(&gate, &pki.mallory, "certificate revoked");
    assert_cli_works(&gate, &pki.alice);
}
