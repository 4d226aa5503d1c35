//! Handing a client certificate to its user, in the three shapes clients read:
//! a `DOCKER_CERT_PATH` folder (`ca.pem`, `cert.pem`, `key.pem`), a docker context archive
//! (`PATH.dockercontext`, for `docker context import NAME FILE`) and a PKCS#12 file
//! (`PATH.pfx`, for Windows). Every file that holds the key is created 0600; the folder 0700.
//!
//! The context archive is what `docker context export` writes (checked against docker CLI
//! v28): a tar with `meta.json` at its root and the TLS files under `tls/docker/`. The CLI
//! stores an imported context under `contexts/meta/<sha256 of NAME>/`, but that is its own
//! layout, not the archive's; the name in `meta.json` is replaced by the one given to import.

use std::path::Path;

use super::certs::Issued;
use super::files::{create_new, Access};

/// Writes `dir/ca.pem`, `dir/cert.pem` and `dir/key.pem` into the (new, empty) folder `dir`.
pub fn write_cert_files(dir: &Path, ca_pem: &str, issued: &Issued) -> Result<(), String> {
    create_new(&dir.join("ca.pem"), ca_pem.as_bytes(), Access::Public)?;
    create_new(
        &dir.join("cert.pem"),
        issued.cert_pem.as_bytes(),
        Access::Public,
    )?;
    create_new(
        &dir.join("key.pem"),
        issued.key_pem.as_bytes(),
        Access::OwnerOnly,
    )
}

/// The docker context archive for endpoint `tcp://HOST:PORT`.
pub fn context_archive(
    name: &str,
    host_port: &str,
    ca_pem: &str,
    issued: &Issued,
) -> Result<Vec<u8>, String> {
    let meta = serde_json::json!({
        "Name": name,
        "Metadata": { "Description": format!("dockgate at {host_port}") },
        "Endpoints": {
            "docker": { "Host": format!("tcp://{host_port}"), "SkipTLSVerify": false }
        },
    });
    let meta = serde_json::to_vec(&meta).map_err(|e| format!("cannot encode meta.json: {e}"))?;
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |path: &str, mode: u32, bytes: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_mode(mode);
        header.set_mtime(0);
        if bytes.is_empty() && path.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
        }
        header.set_size(bytes.len() as u64);
        archive
            .append_data(&mut header, path, bytes)
            .map_err(|e| format!("cannot build the context archive: {e}"))
    };
    add("meta.json", 0o644, &meta)?;
    add("tls/", 0o700, &[])?;
    add("tls/docker/", 0o700, &[])?;
    add("tls/docker/ca.pem", 0o600, ca_pem.as_bytes())?;
    add("tls/docker/cert.pem", 0o600, issued.cert_pem.as_bytes())?;
    add("tls/docker/key.pem", 0o600, issued.key_pem.as_bytes())?;
    archive
        .into_inner()
        .map_err(|e| format!("cannot build the context archive: {e}"))
}

/// The certificate, the CA and the key as PKCS#12 (AES-256, PBKDF2, HMAC-SHA256: what Windows
/// 10 1709 and later import; dockgate's own `--tlspfx` reads it too).
pub fn pfx(name: &str, issued: &Issued, ca_der: &[u8], password: &str) -> Result<Vec<u8>, String> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let failed = |e: p12_keystore::error::Error| format!("cannot build the PFX: {e}");
    let key = PrivateKey::from_der(&issued.key_der).map_err(failed)?;
    let chain = [
        Certificate::from_der(&issued.cert_der).map_err(failed)?,
        Certificate::from_der(ca_der).map_err(failed)?,
    ];
    let mut store = KeyStore::new();
    let local_key_id = issued.serial.as_bytes().to_vec();
    store.add_entry(
        name,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, chain)),
    );
    store.writer(password).write().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::super::certs::{Ca, ClientProfile};
    use super::*;

    fn alice() -> (Ca, Issued) {
        let (ca, _) = Ca::create("test CA", 1).unwrap();
        let issued = ca
            .issue_client("alice", &ClientProfile::default(), 1)
            .unwrap();
        (ca, issued)
    }

    /// The gate's own `--tlspfx` loader reads what `ca issue --pfx` writes.
    #[test]
    fn pfx_opens_with_the_gates_loader() {
        let (ca, issued) = alice();
        let bytes = pfx("alice", &issued, &ca.cert_der, "s3cret pass").unwrap();
        let dir = std::env::temp_dir().join(format!("dockgate-ca-pfx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (file, password_file) = (dir.join("alice.pfx"), dir.join("password"));
        std::fs::write(&file, bytes).unwrap();
        let load = |password: &[u8]| {
            let bytes = std::fs::read(&file).unwrap();
            crate::tls::load::parse_pfx(&file, &bytes, &password_file, password)
        };
        let (chain, key) = load(b"s3cret pass").unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].as_ref(), issued.cert_der.as_slice());
        assert_eq!(chain[1].as_ref(), ca.cert_der.as_slice());
        assert_eq!(key.secret_der(), issued.key_der.as_slice());
        assert!(load(b"wrong").is_err());
    }

    #[test]
    fn context_archive_has_the_layout_docker_exports() {
        let (ca, issued) = alice();
        let bytes = context_archive("alice", "gate.example:2376", &ca.cert_pem, &issued).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut entries = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mode = entry.header().mode().unwrap();
            let mut body = String::new();
            std::io::Read::read_to_string(&mut entry, &mut body).unwrap();
            entries.push((path, mode, body));
        }
        let names: Vec<(&str, u32)> = entries.iter().map(|(p, m, _)| (p.as_str(), *m)).collect();
        assert_eq!(
            names,
            [
                ("meta.json", 0o644),
                ("tls/", 0o700),
                ("tls/docker/", 0o700),
                ("tls/docker/ca.pem", 0o600),
                ("tls/docker/cert.pem", 0o600),
                ("tls/docker/key.pem", 0o600),
            ]
        );
        let meta: serde_json::Value = serde_json::from_str(&entries[0].2).unwrap();
        assert_eq!(
            meta["Endpoints"]["docker"]["Host"],
            "tcp://gate.example:2376"
        );
        assert_eq!(meta["Endpoints"]["docker"]["SkipTLSVerify"], false);
        assert_eq!(entries[5].2, issued.key_pem);
    }
}
