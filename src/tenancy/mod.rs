//! Tenants on one Docker host (issue #13): each identity sees and touches only the containers,
//! volumes, networks and execs its owner created. Docker has no notion of ownership, so the gate
//! adds it as the label `dockgate.owner=<owner>` and lets dockerd itself do the filtering:
//!
//! - `owner`: who the tenant is (`owner` of the `[[identity]]`, default the certificate's CN)
//!   and what its role owns (`own = [...]`);
//! - `plan`: what tenancy does with one classified request ([`plan::Step`]);
//! - `create`: the owner label set on container, volume and network creates (a client that sets
//!   it is refused);
//! - `references`: the containers, volumes and networks a container create body names;
//! - `resolve`: references (name, ID prefix, alias, exec ID) resolved through dockerd, checked
//!   against the owner, and the request path rewritten to the full ID;
//! - `filters`: the owner label merged into the `filters` of lists, prunes and events;
//! - `docker_get`: the small blocking GET the resolver sends to dockerd.
//!
//! Every refusal is a [`Refusal`]: a status and a message in dockerd's JSON shape. An object
//! that exists but belongs to someone else gets exactly the 404 dockerd gives for one that does
//! not exist, so tenants cannot probe for each other's names.

pub mod create;
pub mod docker_get;
pub mod filters;
pub mod owner;
pub mod plan;
pub mod references;
pub mod resolve;

use std::fmt;

/// The label the gate sets on every create of an owned kind, and filters on.
pub const OWNER_LABEL: &str = "dockgate.owner";

/// What a role can own (`own = [...]` in `[role.X]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Containers,
    Volumes,
    Networks,
    /// Exec instances: owned through their container (an exec ID is global in dockerd).
    Exec,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Containers, Kind::Volumes, Kind::Networks, Kind::Exec];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Containers => "containers",
            Kind::Volumes => "volumes",
            Kind::Networks => "networks",
            Kind::Exec => "exec",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A request tenancy does not forward: the local answer's status and its JSON `message`,
/// and for the audit line why (which may say more than the client is told).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    pub reason: String,
}

/// What the policy's body reader found, as tenancy answers it.
impl From<crate::policy::body::Finding> for Refusal {
    fn from(finding: crate::policy::body::Finding) -> Refusal {
        use crate::policy::body::Finding;
        match finding {
            Finding::Refused { reason, .. } => Refusal::bad_request(reason),
            Finding::Denied { what, .. } => Refusal::denied(what),
        }
    }
}

impl Refusal {
    pub fn bad_request(message: impl Into<String>) -> Refusal {
        let message = format!("dockgate: bad request: {}", message.into());
        Refusal {
            status: 400,
            reason: message.clone(),
            message,
        }
    }

    pub fn denied(message: impl Into<String>) -> Refusal {
        let message = format!("dockgate: access denied: {}", message.into());
        Refusal {
            status: 403,
            reason: message.clone(),
            message,
        }
    }

    /// dockerd's own 404 message; `reason` tells the audit log whether the object exists.
    pub fn not_found(message: String, reason: impl Into<String>) -> Refusal {
        Refusal {
            status: 404,
            message,
            reason: reason.into(),
        }
    }

    /// dockerd could not be asked (502), like any other upstream failure.
    pub fn upstream(reason: impl Into<String>) -> Refusal {
        let reason = reason.into();
        Refusal {
            status: 502,
            message: format!("dockgate: cannot resolve the reference through Docker: {reason}"),
            reason,
        }
    }

    /// The response body: `{"message":"..."}` as dockerd writes it.
    pub fn body(&self) -> String {
        format!("{}\n", serde_json::json!({ "message": self.message }))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}
