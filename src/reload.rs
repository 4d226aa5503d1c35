//! Revocation that takes effect: the watcher that reloads certificates and CRLs without a
//! restart, warns before CRLs expire, and ends the open connections of clients that are no
//! longer valid.
//!
//! Every `--reload-interval` the watcher compares each input file's size and modification time
//! with what it loaded, and the content (a hash) of those whose metadata changed; SIGHUP and a
//! fresh download from `--crl-url` reload at once. A reload builds a complete new configuration
//! on this thread, off the accept path. When anything about it fails (a half-written file, a key
//! that does not match, a CRL not signed by a configured CA) the previous configuration stays in
//! force and one error line names the file; the same broken files are not retried until they
//! change again.

use std::collections::HashMap;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use log::{error, info, warn};
use x509_parser::time::ASN1Time;

use crate::gate::Gate;
use crate::tls::load::{CrlSummary, LoadError};
use crate::tls::{build_server_config, LoadedTls, RevocationPolicy, TlsFiles};

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
) -> Sender<Trigger> {
    let (trigger, triggers) = mpsc::channel();
    let mut watcher = Watcher {
        seen: Snapshot::take(&files, None),
        failed: None,
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
    /// The files as they were when a reload last failed.
    failed: Option<Snapshot>,
    expiry: ExpiryWarnings,
}

impl Watcher {
    fn run(&mut self, triggers: &Receiver<Trigger>) {
        self.expiry
            .check(&self.gate.tls().tls.crls, &self.settings, self.policy);
        // Without polling, wake up hourly anyway for the CRL expiry warnings.
        let tick = self.settings.interval.unwrap_or(Duration::from_secs(3600));
        loop {
            let trigger = match triggers.recv_timeout(tick) {
                Ok(trigger) => Some(trigger),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    thread::sleep(tick);
                    None
                }
            };
            let forced = matches!(trigger, Some(Trigger::Signal));
            let look = forced || trigger.is_some() || self.settings.interval.is_some();
            if look {
                let now = Snapshot::take(&self.files, Some(&self.seen));
                let changed = now != self.seen && self.failed.as_ref() != Some(&now);
                if forced || changed {
                    self.reload(now);
                }
            }
            self.expiry
                .check(&self.gate.tls().tls.crls, &self.settings, self.policy);
        }
    }

    fn reload(&mut self, files_now: Snapshot) {
        let built = build_server_config(&self.files, self.policy).and_then(|tls| {
            keeps_unverified_issuers(&self.gate.tls().tls, &tls)?;
            Ok(tls)
        });
        match built {
            Ok(tls) => {
                log_changes(&self.gate.tls().tls, &tls);
                let state = self.gate.replace_tls(tls);
                info!(
                    "TLS configuration reloaded (generation {}); new connections use it",
                    state.generation
                );
                self.seen = files_now;
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
                error!("reload failed, the previous configuration stays in force: {e}");
                crate::metrics::RELOAD_LAST_FAILURE.set(crate::metrics::unix_now());
                self.failed = Some(files_now);
            }
        }
    }
}

/// A CRL whose issuer is not in `--tlscacert` (an intermediate that clients send) cannot be
/// checked at load time. Such a CRL is accepted at start, and on reload only when its file held
/// a CRL of the same issuer before: a reload never swaps a checkable CRL, or one CA's CRL, for
/// one from an issuer the gate cannot verify (a file mixed up with another CA's).
fn keeps_unverified_issuers(old: &LoadedTls, new: &LoadedTls) -> Result<(), LoadError> {
    for crl in new.crls.iter().filter(|crl| !crl.signature_checked) {
        let before: Vec<&CrlSummary> = old.crls.iter().filter(|o| o.file == crl.file).collect();
        if !before.is_empty() && !before.iter().any(|o| o.issuer == crl.issuer) {
            return Err(LoadError(format!(
                "--crl {}: issued by \"{}\", which is not in --tlscacert, where the file held the CRL of \"{}\": its signature cannot be checked, so it is not taken",
                crl.file, crl.issuer, before[0].issuer
            )));
        }
    }
    Ok(())
}

/// Size, modification time and content hash of every input file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot(Vec<(PathBuf, Option<FileStamp>)>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    content: u64,
}

impl Snapshot {
    /// Reads only files whose size or modification time differs from `previous`.
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

fn stamp(path: &PathBuf, known: Option<&FileStamp>) -> Option<FileStamp> {
    let meta = fs::metadata(path).ok()?;
    let (len, modified) = (meta.len(), meta.modified().ok());
    if let Some(known) = known {
        if known.len == len && known.modified == modified {
            return Some(known.clone());
        }
    }
    let mut hasher = DefaultHasher::new();
    fs::read(path).ok()?.hash(&mut hasher);
    Some(FileStamp {
        len,
        modified,
        content: hasher.finish(),
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
