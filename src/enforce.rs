//! The access policy in force (`--policy FILE`): loaded at start, replaced whole by a reload
//! (a broken file keeps the previous policy), and, after each reload, the open raw sessions
//! (exec, attach) and the requests in progress (events, `logs -f`) re-checked, so that a role
//! that lost a permission loses what it has open too.
//!
//! The decision on each request happens on the request side of a connection
//! (`conn::request`), before anything of the request reaches Docker.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use log::{error, info, warn};

use crate::api;
use crate::locks;
use crate::policy::decide::Request;
use crate::policy::file::PolicyError;
use crate::policy::{self, Mode, Policy};
use crate::registry::{Activity, Registry};

/// The policy in force, if any.
#[derive(Default)]
pub struct PolicyInForce {
    current: RwLock<Option<Arc<Policy>>>,
    /// The file and how it looked when last loaded (or last failed).
    watch: Mutex<Option<Watched>>,
}

struct Watched {
    path: PathBuf,
    seen: Option<(u64, SystemTime)>,
}

fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

impl PolicyInForce {
    /// No policy: every verified client has full access.
    pub fn none() -> PolicyInForce {
        PolicyInForce::default()
    }

    /// Loads `path` (an error names the file, line and column).
    pub fn load(path: &Path) -> Result<PolicyInForce, PolicyError> {
        let seen = stamp(path);
        let policy = policy::file::load(path)?;
        log_loaded(&policy, "loaded");
        Ok(PolicyInForce {
            current: RwLock::new(Some(Arc::new(policy))),
            watch: Mutex::new(Some(Watched {
                path: path.to_path_buf(),
                seen,
            })),
        })
    }

    /// The policy requests are decided with now.
    pub fn current(&self) -> Option<Arc<Policy>> {
        // Recovered when poisoned: one `Arc`, replaced whole (see `locks`).
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reloads the file when it changed (or always, when `forced`: SIGHUP), then re-checks the
    /// open sessions in `registry`. A broken file keeps the previous policy (one ERROR line,
    /// not repeated until the file changes again).
    pub fn reload_if_changed(&self, registry: &Registry, forced: bool) {
        let mut watch = locks::recover(&self.watch);
        let Some(watched) = watch.as_mut() else {
            return;
        };
        let now = stamp(&watched.path);
        if !forced && now == watched.seen {
            return;
        }
        watched.seen = now;
        match policy::file::load(&watched.path) {
            Ok(policy) => {
                log_loaded(&policy, "reloaded");
                let policy = Arc::new(policy);
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(policy.clone());
                drop(watch);
                let cut = recheck_open_work(&policy, registry);
                if cut > 0 {
                    warn!("{cut} open session(s) or request(s) the reloaded policy no longer allows were closed");
                }
            }
            Err(e) => error!("policy reload failed, the previous policy stays in force: {e}"),
        }
    }
}

fn log_loaded(policy: &Policy, what: &str) {
    info!(
        "access policy {} {what}: mode {}, {} role(s), {} identity rule(s)",
        policy.source.display(),
        policy.mode.name(),
        policy.roles.len(),
        policy.identities.len()
    );
}

/// Cuts every raw session (exec, attach, BuildKit) and every request in progress (`docker
/// events`, `logs -f`, `stats`) whose request the policy no longer allows. In `mode = "audit"`
/// nothing is cut; a `would deny` line is logged instead.
fn recheck_open_work(policy: &Policy, registry: &Registry) -> usize {
    let mut cut = 0;
    for conn in registry.live() {
        let doing = match conn.activity() {
            Activity::Session(doing) | Activity::Request(doing) => doing,
            Activity::Idle => continue,
        };
        let who = conn.cert_identity();
        // Classified again from the target the activity kept: this runs once per open session
        // and reload, not on the request path.
        let target = api::classify(&doing.method, &doing.target);
        if let Ok(request) = &target {
            // A request decided on its body (a create) cannot be decided again: the body is
            // gone. One still reading its body is decided with the policy in force once the
            // body is complete (`conn::request`), so it gets this policy; one already decided
            // was checked whole and is short.
            if policy.needs_body(who, request) {
                continue;
            }
        }
        let decision = policy.decide(
            who,
            &Request {
                method: &doing.method,
                target: &target,
                headers: &[],
                body: &[],
            },
        );
        if decision.allowed() {
            continue;
        }
        if policy.mode == Mode::Audit {
            warn!(target: "dockgate::audit",
                peer:% = conn.client.peer,
                subject = conn.client.identity.subject.as_str(),
                role = decision.role.as_str(),
                rule = decision.rule.as_str(),
                reason = decision.message.as_str();
                "would deny");
            continue;
        }
        let reason = format!("policy {}: {}", policy.source.display(), decision.message);
        if conn.cut(&reason) {
            cut += 1;
        }
    }
    cut
}
