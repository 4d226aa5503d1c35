//! Revocation that takes effect: the watcher that reloads certificates and CRLs without a
//! restart, warns before CRLs expire, and ends the open connections of clients that are no
//! longer valid.
//!
//! Every `--reload-interval` the watcher compares each input file's size and modification time
//! with what it loaded, and the content (a hash) of those whose metadata changed; SIGHUP and a
//! fresh download from `--crl-url` reload at once. A reload builds a complete new configuration
//! on this thread, off the accept path, from the files read once each: what is built is exactly
//! what was hashed. When the content is wrong (a half-written file, a key that does not match, a
//! CRL not signed by a configured CA, an older CRL or another CA's CRL where a CRL source is
//! pinned, see `crl_history`) the previous configuration stays in force and one error line
//! names the file; the same broken files are not retried until they change again. When a file
//! cannot be read at all (out of file descriptors, EIO, a file briefly missing) nothing is
//! known about its content: the reload is retried, after 1 s and then twice as late each time
//! up to a minute, with an ERROR line on every attempt, until it is applied.

use std::collections::HashMap;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use log::{error, info, warn};
use x509_parser::time::ASN1Time;

use crate::crl_history::{self, CrlHistory};
use crate::fds::FdReserve;
use crate::gate::Gate;
use crate::tls::load::{CrlSummary, LoadError};
use crate::tls::{build_from_contents, FileContents, LoadedTls, RevocationPolicy, TlsFiles};

/// Why the watcher should look now rather than at the next interval.
#[derive(Debug)]
pub enum Trigger {
    /// SIGHUP: reload even if no file seems to have changed (there are no signals on Windows).
    #[cfg_attr(not(unix), allow(dead_code))]
    Signal,
    /// A CRL was downloaded into the cache.
    Fetched,
}

#[derive(Debug)]
pub struct ReloadSettings {
    /// How often files are checked; `None`: only on SIGHUP and downloads.
    pub interval: Option<Duration>,
    /// Warn when a CRL's nextUpdate is closer than this.
    pub warn_before: Duration,
}

/// Starts the watcher thread; send it a `Trigger` to make it look at once.
pub fn spawn(
    gate: Arc<Gate>,
    files: TlsFiles,
    policy: RevocationPolicy,
    settings: ReloadSettings,
    history: Arc<Mutex<CrlHistory>>,
    built_from: Inputs,
) -> Sender<Trigger> {
    let (trigger, triggers) = mpsc::channel();
    let mut watcher = Watcher {
        history,
        seen: built_from.snapshot,
        failed: None,
        retry: None,
        reserve: FdReserve::new(),
        expiry: ExpiryWarnings::default(),
        gate,
        files,
        policy,
        settings,
    };
    thread::Builder::new()
        .name("dockgate-reload".into())
        .spawn(move || watcher.run(&triggers))
        .expect("cannot start the reload thread");
    trigger
}

/// Forwards SIGHUP to the watcher.
#[cfg(unix)]
pub fn forward_sighup(trigger: Sender<Trigger>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    thread::Builder::new()
        .name("dockgate-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                info!("SIGHUP: reloading certificates and CRLs");
                if trigger.send(Trigger::Signal).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}

struct Watcher {
    gate: Arc<Gate>,
    files: TlsFiles,
    policy: RevocationPolicy,
    settings: ReloadSettings,
    /// The files as they were when the configuration in force was built.
    seen: Snapshot,
    /// The files as they were when a reload last failed on their content.
    failed: Option<Snapshot>,
    /// Set while a reload that could not read its files waits to be tried again.
    retry: Option<Retry>,
    /// Descriptors kept for the reload's reads (see `fds`).
    reserve: FdReserve,
    expiry: ExpiryWarnings,
    /// Pins each CRL source to its CA and refuses older CRLs (shared with the downloads).
    history: Arc<Mutex<CrlHistory>>,
}

impl Watcher {
    fn run(&mut self, triggers: &Receiver<Trigger>) {
        self.expiry
            .check(&self.gate.tls().tls.crls, &self.settings, self.policy);
        // Without polling, wake up hourly anyway for the CRL expiry warnings.
        let tick = self.settings.interval.unwrap_or(Duration::from_secs(3600));
        loop {
            let wait = match &self.retry {
                Some(retry) => tick.min(retry.due.saturating_duration_since(Instant::now())),
                None => tick,
            };
            let trigger = match triggers.recv_timeout(wait) {
                Ok(trigger) => Some(trigger),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    thread::sleep(wait);
                    None
                }
            };
            let retry_due = self
                .retry
                .as_ref()
                .is_some_and(|retry| Instant::now() >= retry.due);
            let forced = matches!(trigger, Some(Trigger::Signal)) || retry_due;
            // While a retry waits, only its time (or SIGHUP) reloads: polling would defeat
            // the backoff.
            let waiting = self.retry.is_some() && !forced;
            let look =
                !waiting && (forced || trigger.is_some() || self.settings.interval.is_some());
            if look {
                let now = Snapshot::take(&self.files, Some(&self.seen));
                let changed = now != self.seen && self.failed.as_ref() != Some(&now);
                if forced || changed {
                    self.reload();
                }
                // The access policy (`--policy`) is watched along with the TLS files.
                self.gate
                    .policy
                    .reload_if_changed(&self.gate.connections, forced);
            }
            self.expiry
                .check(&self.gate.tls().tls.crls, &self.settings, self.policy);
        }
    }

    fn reload(&mut self) {
        // The reserve's descriptors are given back for the reads: when clients hold every
        // other descriptor, the reload can still open its files.
        let files = &self.files;
        let read = self.reserve.released(|| Inputs::read(files));
        let inputs = match read {
            Ok(inputs) => inputs,
            Err(e) => return self.retry_later(&e),
        };
        self.retry = None;
        let built =
            build_from_contents(&self.files, &inputs.contents, self.policy).and_then(|tls| {
                crl_history::lock(&self.history)
                    .check(&tls.crls)
                    .map_err(|e| LoadError(format!("--crl {e}")))?;
                Ok(tls)
            });
        match built {
            Ok(tls) => {
                crl_history::lock(&self.history).record(&tls.crls);
                log_changes(&self.gate.tls().tls, &tls);
                let state = self.gate.replace_tls(tls);
                info!(
                    "TLS configuration reloaded (generation {}); new connections use it",
                    state.generation
                );
                self.seen = inputs.snapshot;
                self.failed = None;
                crate::metrics::RELOAD_LAST_SUCCESS.set(crate::metrics::unix_now());
                let cut = self
                    .gate
                    .connections
                    .cut_invalid(&*state.tls.client_verifier);
                if cut > 0 {
                    warn!("{cut} open connection(s) of clients no longer valid were closed");
                }
            }
            Err(e) => {
                // The files hold what was built: they are broken, and are not tried again
                // until they change.
                error!("reload failed, the previous configuration stays in force: {e}");
                crate::metrics::RELOAD_LAST_FAILURE.set(crate::metrics::unix_now());
                self.failed = Some(inputs.snapshot);
            }
        }
    }

    /// A file could not be read (EMFILE, EIO, a file briefly missing): nothing says its
    /// content is broken, so the reload is tried again, sooner at first.
    fn retry_later(&mut self, e: &str) {
        let (attempt, delay) = match &self.retry {
            Some(retry) => (retry.attempt + 1, (retry.delay * 2).min(MAX_RETRY_DELAY)),
            None => (1, FIRST_RETRY_DELAY),
        };
        error!(
            "reload failed (attempt {attempt}), the previous configuration stays in force: {e}; retrying in {}",
            humantime::format_duration(delay)
        );
        self.retry = Some(Retry {
            attempt,
            delay,
            due: Instant::now() + delay,
        });
    }
}

/// A reload to try again after a file could not be read.
struct Retry {
    attempt: u32,
    delay: Duration,
    due: Instant,
}

/// The first retry after a read error comes this soon; each next one twice as late, up to
/// `MAX_RETRY_DELAY`.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// The input files of one build, each read once, and the snapshot of exactly those bytes.
pub struct Inputs {
    pub contents: FileContents,
    snapshot: Snapshot,
}

impl Inputs {
    /// Reads every input file once. Any error is an I/O error (the content is not looked at
    /// here), so the caller should try again rather than call the file broken.
    pub fn read(files: &TlsFiles) -> Result<Inputs, String> {
        let mut contents = FileContents::default();
        let mut stamps = Vec::new();
        for path in files.all() {
            match read_stamped(path) {
                Ok((bytes, stamp)) => {
                    contents.insert(path.clone(), bytes);
                    stamps.push((path.clone(), Some(stamp)));
                }
                // A CRL download that has not happened yet.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound && files.fetched_crls.contains(path) =>
                {
                    stamps.push((path.clone(), None));
                }
                Err(e) => {
                    return Err(format!(
                        "{} {}: cannot read: {e}",
                        files.flag_of(path),
                        path.display()
                    ))
                }
            }
        }
        Ok(Inputs {
            contents,
            snapshot: Snapshot(stamps),
        })
    }
}

/// The file's bytes and their stamp. The metadata is taken first: if the file changes while
/// it is read, the next look sees a newer modification time and reads it again.
fn read_stamped(path: &Path) -> io::Result<(Vec<u8>, FileStamp)> {
    let meta = fs::metadata(path)?;
    let bytes = read_input(path)?;
    let stamp = FileStamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        content: content_hash(&bytes),
    };
    Ok((bytes, stamp))
}

fn read_input(path: &Path) -> io::Result<Vec<u8>> {
    #[cfg(debug_assertions)]
    if let Some(e) = test_hook::injected_read_failure() {
        return Err(e);
    }
    fs::read(path)
}

/// Debug builds only (the tests run those): `DOCKGATE_TEST_FAIL_RELOAD_READS=N` makes the
/// first N reads of the reload watcher (not those at start) fail as if the process were out of
/// file descriptors, so that the tests can show a reload is retried after an I/O error.
#[cfg(debug_assertions)]
mod test_hook {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    pub fn injected_read_failure() -> Option<std::io::Error> {
        if std::thread::current().name() != Some("dockgate-reload") {
            return None;
        }
        static LEFT: OnceLock<AtomicUsize> = OnceLock::new();
        let left = LEFT.get_or_init(|| {
            let n = std::env::var("DOCKGATE_TEST_FAIL_RELOAD_READS").ok();
            AtomicUsize::new(n.and_then(|n| n.parse().ok()).unwrap_or(0))
        });
        let failed = left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        failed.is_ok().then(|| {
            std::io::Error::other(
                "Too many open files (injected by DOCKGATE_TEST_FAIL_RELOAD_READS)",
            )
        })
    }
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Size, modification time and content hash of every input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot(Vec<(PathBuf, Option<FileStamp>)>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    content: u64,
}

impl Snapshot {
    /// Looks for changes: reads only files whose size or modification time differs from
    /// `previous`. What a reload builds is read again, once, by `Inputs::read`.
    fn take(files: &TlsFiles, previous: Option<&Snapshot>) -> Snapshot {
        let stamps = files
            .all()
            .map(|path| {
                let known = previous
                    .and_then(|p| p.0.iter().find(|(known, _)| known == path))
                    .and_then(|(_, stamp)| stamp.as_ref());
                (path.clone(), stamp(path, known))
            })
            .collect();
        Snapshot(stamps)
    }
}

fn stamp(path: &Path, known: Option<&FileStamp>) -> Option<FileStamp> {
    let meta = fs::metadata(path).ok()?;
    let (len, modified) = (meta.len(), meta.modified().ok());
    if let Some(known) = known {
        if known.len == len && known.modified == modified {
            return Some(known.clone());
        }
    }
    Some(FileStamp {
        len,
        modified,
        content: content_hash(&fs::read(path).ok()?),
    })
}

/// Logs what a reload changes: CRL numbers, update times and revoked counts, the server
/// certificate, the size of the client CA bundle.
fn log_changes(old: &LoadedTls, new: &LoadedTls) {
    for crl in &new.crls {
        let before = old
            .crls
            .iter()
            .find(|o| o.file == crl.file && o.issuer == crl.issuer);
        match before {
            None => info!("CRL added: {crl}"),
            Some(before) if differs(before, crl) => info!(
                "CRL updated: {crl}; was number {}, {} revoked",
                before.number.as_deref().unwrap_or("none"),
                before.revoked
            ),
            Some(_) => {}
        }
    }
    for crl in &old.crls {
        if !new
            .crls
            .iter()
            .any(|n| n.file == crl.file && n.issuer == crl.issuer)
        {
            info!("CRL removed: {crl}");
        }
    }
    if old.server_cert != new.server_cert {
        info!("server certificate now {}", new.server_cert);
    }
    if old.client_ca_count != new.client_ca_count {
        info!(
            "client CA bundle now holds {} certificate(s)",
            new.client_ca_count
        );
    }
}

fn differs(a: &CrlSummary, b: &CrlSummary) -> bool {
    a.number != b.number
        || a.revoked != b.revoked
        || a.this_update != b.this_update
        || a.next_update != b.next_update
}

/// Warns once when a CRL gets close to its nextUpdate and once when it has passed it.
#[derive(Default)]
struct ExpiryWarnings {
    /// Per CRL (file, issuer, nextUpdate): whether it was already called expiring / expired.
    said: HashMap<(String, String, i64), Warned>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Warned {
    Expiring,
    Expired,
}

impl ExpiryWarnings {
    fn check(&mut self, crls: &[CrlSummary], settings: &ReloadSettings, policy: RevocationPolicy) {
        let now = ASN1Time::now().timestamp();
        let soon = i64::try_from(settings.warn_before.as_secs()).unwrap_or(i64::MAX);
        for crl in crls {
            let Some(next) = crl.next_update else {
                continue;
            };
            let next = next.timestamp();
            let state = if next <= now {
                Warned::Expired
            } else if next - now <= soon {
                Warned::Expiring
            } else {
                continue;
            };
            let key = (crl.file.clone(), crl.issuer.clone(), next);
            if self.said.get(&key).is_some_and(|said| *said >= state) {
                continue;
            }
            self.said.insert(key, state);
            match state {
                Warned::Expiring => warn!(
                    "CRL {} (issuer \"{}\") expires in {}: publish a fresh one before then",
                    crl.file,
                    crl.issuer,
                    humantime::format_duration(Duration::from_secs((next - now) as u64))
                ),
                Warned::Expired if policy.allow_expired => warn!(
                    "CRL {} (issuer \"{}\") is past its nextUpdate: clients it covers are still accepted (--crl-allow-expired)",
                    crl.file, crl.issuer
                ),
                Warned::Expired => warn!(
                    "CRL {} (issuer \"{}\") is past its nextUpdate: new connections of clients it covers are REFUSED until a fresh CRL is installed",
                    crl.file, crl.issuer
                ),
            }
        }
    }
}
