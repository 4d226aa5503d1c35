//! Input files that tests rewrite under a running gate: private copies of the root CRL and the
//! server certificate and key, and the two ways an operator (or a tool) replaces a file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::gate::GateBuilder;
use super::pki::{pki, root_crl_pem, SERIAL_MALLORY};
use super::util::fresh_dir;

/// How a file is replaced.
#[derive(Clone, Copy, Debug)]
pub enum Rewrite {
    /// Write a temporary file in the same directory, then rename it over the target
    /// (what `install`, `mv` and most tools do).
    Atomic,
    /// Truncate the target and write the new bytes into the same inode (`cat new > file`).
    InPlace,
}

/// Replaces the contents of `path` with `bytes` as `how` says.
pub fn rewrite(path: &Path, bytes: impl AsRef<[u8]>, how: Rewrite) {
    match how {
        Rewrite::Atomic => write_atomically(path, bytes.as_ref()),
        Rewrite::InPlace => overwrite_in_place(path, bytes.as_ref()),
    }
}

pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let temp = path.with_extension("tmp-new");
    std::fs::write(&temp, bytes).unwrap_or_else(|e| panic!("write {}: {e}", temp.display()));
    std::fs::rename(&temp, path)
        .unwrap_or_else(|e| panic!("rename {} over {}: {e}", temp.display(), path.display()));
}

pub fn overwrite_in_place(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for writing: {e}", path.display()));
    file.write_all(bytes)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A gate's own copies of the files a reload can change, in a fresh directory: the root CRL
/// (number 1, revoking mallory), the server certificate and its key. The intermediate CRL and
/// the CA bundle are the shared read-only ones.
pub struct LiveFiles {
    pub dir: PathBuf,
    pub root_crl: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl LiveFiles {
    pub fn new() -> LiveFiles {
        let pki = pki();
        let dir = fresh_dir("live");
        let files = LiveFiles {
            root_crl: dir.join("root-crl.pem"),
            server_cert: dir.join("server-cert.pem"),
            server_key: dir.join("server-key.pem"),
            dir,
        };
        std::fs::write(&files.root_crl, root_crl_pem(1, &[SERIAL_MALLORY])).unwrap();
        std::fs::copy(&pki.server_cert, &files.server_cert).unwrap();
        std::fs::copy(&pki.server_key, &files.server_key).unwrap();
        files
    }

    /// The standard gate on these files, checking them every `reload_interval` seconds
    /// (`"0"`: only on SIGHUP).
    pub fn gate(&self, reload_interval: &str) -> GateBuilder {
        GateBuilder::standard()
            .crls(&[&self.root_crl, &pki().intermediate_crl])
            .cert(&self.server_cert)
            .key(&self.server_key)
            .flags(&["--reload-interval", reload_interval])
    }

    /// Replaces the root CRL with CRL `number` revoking exactly `serials`.
    pub fn publish_root_crl(&self, number: u64, serials: &[&[u8]], how: Rewrite) {
        rewrite(&self.root_crl, root_crl_pem(number, serials), how);
    }

    /// The path as the gate logs it.
    pub fn root_crl_name(&self) -> String {
        self.root_crl.display().to_string()
    }
}
