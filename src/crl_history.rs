//! CRL history: which CAs each CRL source belongs to, and the newest edition seen of each of
//! its CRLs, so that an older CRL (rollback) or another CA's CRL (substitution) where a CRL is
//! expected is refused instead of replacing the one in force.
//!
//! A *source* is one `--crl` file or one `--crl-url` (named by its cache file). It is pinned to
//! the issuers (name and key) of the first CRLs accepted from it: later content must hold CRLs
//! of exactly those issuers. For each (source, issuer, scope) the newest cRLNumber and
//! thisUpdate accepted are kept, and a CRL with a lower number or an older thisUpdate is
//! refused. CRLs usually travel over plain http: without this, anyone on the path could serve
//! last month's CRL and re-admit a client revoked since.
//!
//! The newest editions are also written to `crl-history.json` in `--crl-cache` (when there is
//! one), so a restart cannot be rolled back either. Pins are kept in memory: after a restart a
//! source is pinned by the first CRL accepted again, which for a `--crl-url` is its cached copy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use log::error;
use serde_json::{json, Value};
use x509_parser::num_bigint::BigUint;

use crate::crl_fetch::write_atomically;
use crate::tls::load::{CrlIdentity, CrlSummary};

/// The file in `--crl-cache` that keeps the newest editions across restarts.
pub const HISTORY_FILE: &str = "crl-history.json";

#[derive(Debug, Default)]
pub struct CrlHistory {
    /// Per source: the issuers of the CRLs first accepted from it.
    pins: HashMap<String, Vec<Issuer>>,
    /// The newest edition accepted of each CRL.
    newest: HashMap<EditionKey, Edition>,
    /// `crl-history.json`; `None` (no `--crl-cache`): kept in memory only.
    store: Option<PathBuf>,
}

/// A CRL issuer as a pin: its name, and the `--tlscacert` keys its CRL verified with (empty
/// when the issuer is not in the bundle: its signature is then checked at each handshake).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Issuer {
    name: Vec<u8>,
    keys: Vec<Vec<u8>>,
}

impl Issuer {
    fn of(identity: &CrlIdentity) -> Issuer {
        Issuer {
            name: identity.issuer_name.clone(),
            keys: identity.issuer_keys.clone(),
        }
    }

    /// Same name, and the same key when both were checked against `--tlscacert`.
    fn matches(&self, other: &Issuer) -> bool {
        self.name == other.name
            && (self.keys.is_empty() && other.keys.is_empty()
                || self.keys.iter().any(|key| other.keys.contains(key)))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EditionKey {
    source: String,
    issuer: Vec<u8>,
    scope: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Edition {
    number: Option<BigUint>,
    this_update: i64,
}

impl CrlHistory {
    /// A history kept in `dir` (`--crl-cache`), or in memory only. A history file that cannot
    /// be read is an error: starting without it would let a rollback through.
    pub fn open(dir: Option<&Path>) -> Result<CrlHistory, String> {
        let mut history = CrlHistory {
            store: dir.map(|dir| dir.join(HISTORY_FILE)),
            ..CrlHistory::default()
        };
        let Some(store) = history.store.clone() else {
            return Ok(history);
        };
        let text = match std::fs::read_to_string(&store) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(history),
            Err(e) => return Err(format!("{}: cannot read: {e}", store.display())),
        };
        history.newest = parse_editions(&text).map_err(|e| {
            format!(
                "{}: {e} (it records the newest CRL seen from each source; delete it only to accept older CRLs on purpose)",
                store.display()
            )
        })?;
        Ok(history)
    }

    /// Pins the sources of `crls` that are not pinned yet (the cached copy of a `--crl-url`
    /// before its first download after a restart).
    pub fn pin_unpinned(&mut self, crls: &[CrlSummary]) {
        for (source, group) in by_source(crls) {
            self.pins
                .entry(source.to_string())
                .or_insert_with(|| group.iter().map(|crl| Issuer::of(&crl.identity)).collect());
        }
    }

    /// Whether `crls` (everything one build or one download holds, grouped by source) may
    /// replace what each source held: the same issuers, and no older edition of any CRL.
    pub fn check(&self, crls: &[CrlSummary]) -> Result<(), String> {
        for (source, group) in by_source(crls) {
            if let Some(pinned) = self.pins.get(source) {
                check_issuers(source, pinned, &group)?;
            }
            for crl in group {
                self.check_edition(source, crl)?;
            }
        }
        Ok(())
    }

    fn check_edition(&self, source: &str, crl: &CrlSummary) -> Result<(), String> {
        let Some(newest) = self.newest.get(&edition_key(source, &crl.identity)) else {
            return Ok(());
        };
        let identity = &crl.identity;
        if let (Some(number), Some(newest_number)) = (&identity.number, &newest.number) {
            if number < newest_number {
                return Err(format!(
                    "{source}: the CRL of \"{}\" has number {number}, lower than number {newest_number} already accepted from this source: an older CRL is not taken (rollback)",
                    crl.issuer
                ));
            }
        }
        if identity.this_update < newest.this_update {
            return Err(format!(
                "{source}: the CRL of \"{}\" was issued (thisUpdate {}) before the one already accepted from this source: an older CRL is not taken (rollback)",
                crl.issuer, crl.this_update
            ));
        }
        Ok(())
    }

    /// Records `crls` as accepted: pins new sources, raises the newest editions, and writes the
    /// history file. A write failure is logged; the CRLs stay accepted (refusing them would keep
    /// an older CRL in force).
    pub fn record(&mut self, crls: &[CrlSummary]) {
        self.pin_unpinned(crls);
        let mut changed = false;
        for crl in crls {
            let key = edition_key(&crl.file, &crl.identity);
            let edition = Edition {
                number: crl.identity.number.clone(),
                this_update: crl.identity.this_update,
            };
            let newer = self.newest.get(&key).is_none_or(|known| {
                edition.this_update > known.this_update
                    || edition.number.as_ref() > known.number.as_ref()
            });
            if newer {
                self.newest.insert(key, edition);
                changed = true;
            }
        }
        if changed {
            self.save();
        }
    }

    /// A source now goes by another name (its cache file was renamed): its editions follow it.
    pub fn rename_source(&mut self, old: &str, new: &str) {
        let moved: Vec<EditionKey> = self
            .newest
            .keys()
            .filter(|key| key.source == old)
            .cloned()
            .collect();
        if moved.is_empty() {
            return;
        }
        for key in moved {
            let edition = self.newest.remove(&key).expect("the key was just listed");
            let renamed = EditionKey {
                source: new.to_string(),
                ..key
            };
            self.newest.insert(renamed, edition);
        }
        if let Some(pins) = self.pins.remove(old) {
            self.pins.insert(new.to_string(), pins);
        }
        self.save();
    }

    fn save(&self) {
        let Some(store) = &self.store else {
            return;
        };
        if let Err(e) = write_atomically(store, render_editions(&self.newest).as_bytes()) {
            error!(
                "cannot write the CRL history {}: {e}; after a restart an older CRL than the one in force could be accepted",
                store.display()
            );
        }
    }
}

fn edition_key(source: &str, identity: &CrlIdentity) -> EditionKey {
    EditionKey {
        source: source.to_string(),
        issuer: identity.issuer_name.clone(),
        scope: identity.scope.clone(),
    }
}

fn by_source(crls: &[CrlSummary]) -> Vec<(&str, Vec<&CrlSummary>)> {
    let mut groups: Vec<(&str, Vec<&CrlSummary>)> = Vec::new();
    for crl in crls {
        match groups.iter_mut().find(|(source, _)| *source == crl.file) {
            Some((_, group)) => group.push(crl),
            None => groups.push((&crl.file, vec![crl])),
        }
    }
    groups
}

/// A source must keep holding CRLs of exactly the issuers it was pinned to: a CRL of another
/// CA is a substitution, and a missing one would leave that CA's certificates without a CRL.
fn check_issuers(source: &str, pinned: &[Issuer], group: &[&CrlSummary]) -> Result<(), String> {
    for crl in group {
        if !pinned
            .iter()
            .any(|pin| pin.matches(&Issuer::of(&crl.identity)))
        {
            return Err(format!(
                "{source}: holds a CRL of \"{}\" (or signed with another key), but this source was pinned to the CA(s) of the first CRL accepted from it: not taken (substitution); restart to change a source's CA",
                crl.issuer
            ));
        }
    }
    for pin in pinned {
        if !group
            .iter()
            .any(|crl| pin.matches(&Issuer::of(&crl.identity)))
        {
            return Err(format!(
                "{source}: no longer holds the CRL of a CA it was pinned to: not taken; restart to change a source's CAs"
            ));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn render_editions(newest: &HashMap<EditionKey, Edition>) -> String {
    let mut entries: Vec<Value> = newest
        .iter()
        .map(|(key, edition)| {
            json!({
                "source": key.source,
                "issuer": hex(&key.issuer),
                "scope": hex(&key.scope),
                "number": edition.number.as_ref().map(|n| n.to_string()),
                "this_update": edition.this_update,
            })
        })
        .collect();
    entries.sort_by_key(|entry| entry.to_string());
    let document = json!({ "version": 1, "newest": entries });
    serde_json::to_string_pretty(&document).expect("JSON values always render") + "\n"
}

fn parse_editions(text: &str) -> Result<HashMap<EditionKey, Edition>, String> {
    let document: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let entries = document
        .get("newest")
        .and_then(Value::as_array)
        .ok_or("no \"newest\" list")?;
    entries
        .iter()
        .map(|entry| parse_edition(entry).ok_or_else(|| format!("bad entry {entry}")))
        .collect()
}

fn parse_edition(entry: &Value) -> Option<(EditionKey, Edition)> {
    let text = |field: &str| entry.get(field).and_then(Value::as_str);
    let key = EditionKey {
        source: text("source")?.to_string(),
        issuer: unhex(text("issuer")?)?,
        scope: unhex(text("scope")?)?,
    };
    let number = match entry.get("number")? {
        Value::Null => None,
        Value::String(n) => Some(n.parse::<BigUint>().ok()?),
        _ => return None,
    };
    let this_update = entry.get("this_update")?.as_i64()?;
    Some((
        key,
        Edition {
            number,
            this_update,
        },
    ))
}

/// The history is a record of facts accepted one at a time: a panic elsewhere cannot leave it
/// half-updated in a way that opens the gate (a fact it misses is recorded again with the next
/// accepted CRL). `locks`: recovered.
pub fn lock(history: &Mutex<CrlHistory>) -> MutexGuard<'_, CrlHistory> {
    crate::locks::recover(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    use x509_parser::time::ASN1Time;

    fn crl(source: &str, issuer: &str, key: u8, number: u32, this_update: i64) -> CrlSummary {
        CrlSummary {
            file: source.into(),
            issuer: issuer.into(),
            number: Some(number.to_string()),
            this_update: ASN1Time::from_timestamp(this_update).unwrap(),
            next_update: None,
            revoked: 0,
            signature_checked: true,
            identity: CrlIdentity {
                issuer_name: issuer.as_bytes().to_vec(),
                issuer_keys: vec![vec![key]],
                scope: Vec::new(),
                number: Some(BigUint::from(number)),
                this_update,
            },
        }
    }

    #[test]
    fn older_number_or_older_this_update_is_refused() {
        let mut history = CrlHistory::default();
        history.record(&[crl("a.crl", "root", 1, 4100, 1000)]);
        assert!(history
            .check(&[crl("a.crl", "root", 1, 4100, 1000)])
            .is_ok());
        assert!(history
            .check(&[crl("a.crl", "root", 1, 4101, 2000)])
            .is_ok());
        let rollback = history
            .check(&[crl("a.crl", "root", 1, 4096, 2000)])
            .unwrap_err();
        assert!(
            rollback.contains("number 4096, lower than number 4100"),
            "{rollback}"
        );
        let older = history
            .check(&[crl("a.crl", "root", 1, 4101, 999)])
            .unwrap_err();
        assert!(older.contains("rollback"), "{older}");
        assert!(
            history.check(&[crl("b.crl", "root", 1, 1, 1)]).is_ok(),
            "another source has its own history"
        );
    }

    #[test]
    fn source_stays_pinned_to_its_issuers() {
        let mut history = CrlHistory::default();
        history.record(&[crl("int.crl", "intermediate", 2, 7, 1000)]);
        let other_ca = history
            .check(&[crl("int.crl", "root", 1, 8, 2000)])
            .unwrap_err();
        assert!(other_ca.contains("substitution"), "{other_ca}");
        assert!(
            history
                .check(&[crl("int.crl", "intermediate", 3, 8, 2000)])
                .is_err(),
            "same name, another key"
        );
        assert!(history
            .check(&[
                crl("int.crl", "intermediate", 2, 8, 2000),
                crl("int.crl", "root", 1, 8, 2000)
            ])
            .is_err());
    }

    #[test]
    fn history_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("dockgate-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join(HISTORY_FILE));
        let mut history = CrlHistory::open(Some(&dir)).unwrap();
        history.record(&[crl("a.crl", "root", 1, 4100, 1000)]);
        let reopened = CrlHistory::open(Some(&dir)).unwrap();
        assert!(reopened
            .check(&[crl("a.crl", "root", 1, 4096, 2000)])
            .is_err());
        assert!(reopened
            .check(&[crl("a.crl", "root", 1, 4100, 1000)])
            .is_ok());
        std::fs::write(dir.join(HISTORY_FILE), "{").unwrap();
        assert!(CrlHistory::open(Some(&dir)).is_err(), "fails closed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_renamed_source_keeps_its_editions_across_a_restart() {
        let dir = std::env::temp_dir().join(format!("dockgate-rename-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join(HISTORY_FILE));
        let mut history = CrlHistory::open(Some(&dir)).unwrap();
        history.record(&[crl("old.crl", "root", 1, 4100, 1000)]);
        history.rename_source("old.crl", "new.crl");
        let older_under_new_name = [crl("new.crl", "root", 1, 4096, 2000)];
        assert!(history.check(&older_under_new_name).is_err(), "in memory");
        assert!(
            history
                .check(&[crl("new.crl", "other", 1, 4200, 2000)])
                .is_err(),
            "the pin follows the source"
        );
        let reopened = CrlHistory::open(Some(&dir)).unwrap();
        assert!(reopened.check(&older_under_new_name).is_err(), "on disk");
        assert!(reopened
            .check(&[crl("old.crl", "root", 1, 4096, 2000)])
            .is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
