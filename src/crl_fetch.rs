//! CRLs from URLs (`--crl-url`, `--crl-from-cdp`): downloaded at start and again before their
//! nextUpdate (and at least every `--crl-refresh`), validated, and kept in `--crl-cache` so that
//! a restart without network still enforces revocation.
//!
//! A download is only written to the cache when it parses, its signature verifies with the
//! CA in `--tlscacert` that issued it, it comes from the CA the URL is pinned to and it is not
//! older than the CRL already accepted from the URL (`crl_history`); the file is replaced by
//! rename, so the reload watcher never sees half a CRL. A failed download keeps the cached copy
//! and is logged (an older or another CA's CRL at ERROR): it never opens the gate. The watcher
//! loads the cache files like any other `--crl`.
//!
//! ureq is the HTTP client: blocking like the rest of the gate, small, and using the same
//! rustls and ring. HTTPS servers are verified with webpki-roots, or with `--crl-url-ca`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use x509_parser::time::ASN1Time;

use crate::config::CrlDownloads;
use crate::crl_history::{self, CrlHistory};
use crate::reload::Trigger;
use crate::tls::load::{load_certs, parse_crls, CrlSummary, LoadError};
use crate::tls::TlsFiles;

/// Time allowed for one download, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// A million-entry CRL is about 40 MB; anything far beyond is not a CRL.
const MAX_CRL_BYTES: u64 = 512 * 1024 * 1024;
/// After a failure, retry after this long, doubling up to the refresh interval.
const FIRST_RETRY: Duration = Duration::from_secs(30);
/// Fetch this long before a CRL's nextUpdate, so that a fresh one is in place in time.
const BEFORE_NEXT_UPDATE: Duration = Duration::from_secs(300);

/// The CRL downloads of one run: the fetcher and its sources, each downloaded once already.
pub struct Downloads {
    fetcher: Fetcher,
    sources: Vec<CrlSource>,
}

impl Downloads {
    /// Resolves the URLs (`--crl-url`, and `--crl-from-cdp` from the `client_ca` bundle),
    /// takes over cache files under their legacy names, downloads each CRL once (a failure
    /// falls back to the cache) and adds the cache files to the CRL inputs in `files`.
    pub fn start(
        client_ca: &Path,
        downloads: &CrlDownloads,
        files: &mut TlsFiles,
        history: &Arc<Mutex<CrlHistory>>,
    ) -> Result<Downloads, String> {
        let mut urls = downloads.urls.clone();
        if downloads.from_cdp {
            let ca_bundle = load_certs("--tlscacert", client_ca).map_err(|e| e.to_string())?;
            let points = crate::tls::load::distribution_points(&ca_bundle);
            if points.is_empty() {
                warn!("--crl-from-cdp: the --tlscacert certificates name no http(s) CRL Distribution Point");
            }
            for url in points {
                if !urls.contains(&url) {
                    info!("--crl-from-cdp: {url}");
                    urls.push(url);
                }
            }
        }
        std::fs::create_dir_all(&downloads.cache_dir)
            .map_err(|e| format!("--crl-cache {}: {e}", downloads.cache_dir.display()))?;
        let sources: Vec<_> = urls
            .iter()
            .map(|url| CrlSource::new(url, &downloads.cache_dir))
            .collect();
        for source in &sources {
            source.adopt_legacy_cache(history);
        }
        files
            .fetched_crls
            .extend(sources.iter().map(|s| s.cache_file.clone()));
        let fetcher = Fetcher::new(
            client_ca.to_path_buf(),
            downloads.server_ca.as_deref(),
            downloads.refresh,
            history.clone(),
        )
        .map_err(|e| e.to_string())?;
        fetcher.fetch_all(&sources);
        Ok(Downloads { fetcher, sources })
    }

    /// Keeps the CRLs fresh for as long as the process runs; `reload` hears of every change.
    pub fn spawn(self, reload: Sender<Trigger>) {
        self.fetcher.spawn(self.sources, reload);
    }
}

/// One URL and the cache file its CRL is kept in.
#[derive(Clone, Debug)]
pub struct CrlSource {
    pub url: String,
    pub cache_file: PathBuf,
}

impl CrlSource {
    /// The cache file is named by the SHA-256 of the URL: the same name from every build.
    pub fn new(url: &str, cache_dir: &Path) -> CrlSource {
        let digest = ring::digest::digest(&ring::digest::SHA256, url.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        CrlSource {
            url: url.to_string(),
            cache_file: cache_dir.join(format!("crl-{hex}.crl")),
        }
    }

    /// The name earlier builds gave the cache file: std's `DefaultHasher`, whose
    /// output std does not promise across Rust releases (hence the move to SHA-256). Only
    /// looked for at start, to take over a cache written by such a release.
    fn legacy_cache_file(&self) -> PathBuf {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        self.url.hash(&mut hasher);
        let dir = self.cache_file.parent().unwrap_or(Path::new(""));
        dir.join(format!("crl-{:016x}.crl", hasher.finish()))
    }

    /// Renames a cache file left under its legacy name, when there is no file under the new
    /// one, so that an upgrade without network still starts from its cached CRL; the CRL
    /// history follows the file (it names a source by its cache file).
    fn adopt_legacy_cache(&self, history: &Mutex<CrlHistory>) {
        let legacy = self.legacy_cache_file();
        if self.cache_file.exists() || !legacy.exists() {
            return;
        }
        match std::fs::rename(&legacy, &self.cache_file) {
            Ok(()) => {
                info!(
                    "CRL cache of {}: renamed {} to {}",
                    self.url,
                    legacy.display(),
                    self.cache_file.display()
                );
                crl_history::lock(history).rename_source(
                    &legacy.display().to_string(),
                    &self.cache_file.display().to_string(),
                );
            }
            Err(e) => warn!(
                "CRL cache of {}: cannot rename {} to {}: {e}; it is not used",
                self.url,
                legacy.display(),
                self.cache_file.display()
            ),
        }
    }
}

/// ureq's resolver, except that `localhost` needs no `/etc/hosts` (see `net::resolve`).
#[derive(Debug, Default)]
struct LocalhostResolver(DefaultResolver);

impl Resolver for LocalhostResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if uri.host().is_some_and(crate::net::is_localhost) {
            let default_port = if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            };
            let mut addrs = self.empty();
            for addr in crate::net::loopback(uri.port_u16().unwrap_or(default_port)) {
                addrs.push(addr);
            }
            return Ok(addrs);
        }
        self.0.resolve(uri, config, timeout)
    }
}

pub struct Fetcher {
    agent: ureq::Agent,
    client_ca: PathBuf,
    refresh: Duration,
    /// Pins each URL to its CA and refuses older CRLs (shared with the reload watcher).
    history: Arc<Mutex<CrlHistory>>,
}

impl Fetcher {
    /// `server_ca`: trust these roots for HTTPS instead of webpki-roots (`--crl-url-ca`).
    fn new(
        client_ca: PathBuf,
        server_ca: Option<&Path>,
        refresh: Duration,
        history: Arc<Mutex<CrlHistory>>,
    ) -> Result<Fetcher, LoadError> {
        let roots = match server_ca {
            Some(path) => {
                let certs = load_certs("--crl-url-ca", path)?;
                ureq::tls::RootCerts::new_with_certs(
                    &certs
                        .iter()
                        .map(|c| ureq::tls::Certificate::from_der(c).to_owned())
                        .collect::<Vec<_>>(),
                )
            }
            None => ureq::tls::RootCerts::WebPki,
        };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(roots)
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(FETCH_TIMEOUT))
            .http_status_as_error(true)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            DefaultConnector::default(),
            LocalhostResolver::default(),
        );
        Ok(Fetcher {
            agent,
            client_ca,
            refresh,
            history,
        })
    }

    /// Downloads every source once, at start. Failures are logged: the cached copy, if any,
    /// is used instead.
    fn fetch_all(&self, sources: &[CrlSource]) {
        for source in sources {
            if let Err(e) = self.fetch(source) {
                self.log_failure(source, &e);
            }
        }
    }

    /// Refreshes the sources for as long as the process runs; tells the watcher after each
    /// download that changed a cache file.
    fn spawn(self, sources: Vec<CrlSource>, reload: Sender<Trigger>) {
        let fetcher = Arc::new(self);
        for source in sources {
            let fetcher = fetcher.clone();
            let reload = reload.clone();
            thread::Builder::new()
                .name("dockgate-crl-fetch".into())
                .spawn(move || fetcher.refresh_forever(&source, &reload))
                .expect("cannot start a CRL fetch thread");
        }
    }

    fn refresh_forever(&self, source: &CrlSource, reload: &Sender<Trigger>) {
        let mut retry = FIRST_RETRY;
        let mut wait = self.next_wait(cached_summary(source, &self.client_ca).as_ref());
        loop {
            thread::sleep(wait);
            match self.fetch(source) {
                Ok(outcome) => {
                    retry = FIRST_RETRY;
                    if outcome.changed {
                        let _ = reload.send(Trigger::Fetched);
                    }
                    wait = self.next_wait(Some(&outcome.summary));
                }
                Err(e) => {
                    self.log_failure(source, &e);
                    wait = retry.min(self.refresh);
                    retry = (retry * 2).min(self.refresh);
                }
            }
        }
    }

    /// At the latest after `--crl-refresh`; earlier when the CRL's nextUpdate comes first.
    fn next_wait(&self, summary: Option<&CrlSummary>) -> Duration {
        let Some(next_update) = summary.and_then(|s| s.next_update) else {
            return FIRST_RETRY.min(self.refresh);
        };
        let until = next_update.timestamp() - ASN1Time::now().timestamp();
        let until = Duration::from_secs(u64::try_from(until).unwrap_or(0));
        self.refresh
            .min(until.saturating_sub(BEFORE_NEXT_UPDATE))
            .max(FIRST_RETRY.min(self.refresh))
    }

    /// Downloads one CRL and installs it in the cache if it is valid and different.
    fn fetch(&self, source: &CrlSource) -> Result<Fetched, FetchError> {
        let started = Instant::now();
        let bytes = self
            .agent
            .get(&source.url)
            .call()
            .map_err(|e| e.to_string())?
            .body_mut()
            .with_config()
            .limit(MAX_CRL_BYTES)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        let ca_bundle = load_certs("--tlscacert", &self.client_ca).map_err(|e| e.to_string())?;
        let label = format!("--crl-url {}", source.url);
        let mut summaries: Vec<CrlSummary> = parse_crls(&label, Path::new(""), &bytes, &ca_bundle)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|crl| CrlSummary {
                // The source as the reload watcher names it: its cache file.
                file: source.cache_file.display().to_string(),
                ..crl.summary
            })
            .collect();
        if summaries.is_empty() {
            return Err(FetchError::Failed("no CRL in the download".into()));
        }
        // Pinned to the CA of the cached copy (or of the first download), and never older
        // than what was accepted: over plain http anyone on the path can serve any CRL.
        let mut history = crl_history::lock(&self.history);
        if let Some(cached) = cached_summaries(source, &self.client_ca) {
            history.pin_unpinned(&cached);
        }
        history
            .check(&summaries)
            .map_err(|e| FetchError::Refused(format!("{label}: {e}")))?;
        let changed = std::fs::read(&source.cache_file).map_or(true, |cached| cached != bytes);
        if changed {
            write_atomically(&source.cache_file, &bytes).map_err(|e| {
                format!(
                    "cannot write the cache file {}: {e}",
                    source.cache_file.display()
                )
            })?;
            let summary = &summaries[0];
            info!(
                "CRL downloaded from {} in {} ms: {} revoked, nextUpdate {}",
                source.url,
                started.elapsed().as_millis(),
                summary.revoked,
                summary
                    .next_update
                    .map_or("none".to_string(), |t| t.to_string())
            );
        }
        history.record(&summaries);
        Ok(Fetched {
            summary: summaries.swap_remove(0),
            changed,
        })
    }

    fn log_failure(&self, source: &CrlSource, e: &FetchError) {
        let e = match e {
            FetchError::Failed(e) => e,
            FetchError::Refused(e) => {
                // Not a network hiccup: someone serves a CRL that must not be taken.
                error!(
                    "CRL download from {} failed: refused ({e}); the cached copy {} stays in force",
                    source.url,
                    source.cache_file.display()
                );
                return;
            }
        };
        if source.cache_file.exists() {
            warn!(
                "CRL download from {} failed ({e}); the cached copy {} stays in force",
                source.url,
                source.cache_file.display()
            );
        } else {
            error!(
                "CRL download from {} failed ({e}) and there is no cached copy: clients of its CA are refused until it succeeds",
                source.url
            );
        }
    }
}

enum FetchError {
    /// The download failed or is not a valid CRL of a `--tlscacert` CA.
    Failed(String),
    /// A valid CRL, but older than the one accepted or from another CA than the URL's.
    Refused(String),
}

impl From<String> for FetchError {
    fn from(e: String) -> FetchError {
        FetchError::Failed(e)
    }
}

struct Fetched {
    summary: CrlSummary,
    changed: bool,
}

fn cached_summary(source: &CrlSource, client_ca: &Path) -> Option<CrlSummary> {
    cached_summaries(source, client_ca)?.into_iter().next()
}

/// The CRLs of the cached copy, named by the cache file as the reload watcher names them.
fn cached_summaries(source: &CrlSource, client_ca: &Path) -> Option<Vec<CrlSummary>> {
    let bytes = std::fs::read(&source.cache_file).ok()?;
    let ca_bundle = load_certs("--tlscacert", client_ca).ok()?;
    let crls = parse_crls("--crl-url", &source.cache_file, &bytes, &ca_bundle).ok()?;
    Some(crls.into_iter().map(|crl| crl.summary).collect())
}

/// Write to a temporary file in the same directory, then rename over the target (also for
/// `crl_history`'s record).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_file_is_named_by_the_sha256_of_the_url() {
        let source = CrlSource::new("http://ca.example/root.crl", Path::new("/cache"));
        // sha256("http://ca.example/root.crl"), computed independently (Python's hashlib).
        assert_eq!(
            source.cache_file,
            Path::new(
                "/cache/crl-d2c5321baca33fc0d94c4e3c2358e10256cf51e1d6d36eb4cb39b83cb47bebda.crl"
            )
        );
    }

    #[test]
    fn a_cache_file_under_its_legacy_name_is_taken_over() {
        let dir = std::env::temp_dir().join(format!("dockgate-legacy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let history = Mutex::new(CrlHistory::default());
        let source = CrlSource::new("http://ca.example/root.crl", &dir);
        let legacy = source.legacy_cache_file();
        assert_ne!(legacy, source.cache_file);

        std::fs::write(&legacy, b"old cache").unwrap();
        source.adopt_legacy_cache(&history);
        assert_eq!(std::fs::read(&source.cache_file).unwrap(), b"old cache");
        assert!(!legacy.exists());

        // A file under the new name wins: the legacy one is left alone.
        std::fs::write(&legacy, b"stale").unwrap();
        source.adopt_legacy_cache(&history);
        assert_eq!(std::fs::read(&source.cache_file).unwrap(), b"old cache");
        assert_eq!(std::fs::read(&legacy).unwrap(), b"stale");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
