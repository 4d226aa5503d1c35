//! The access policy: which certificate identity may do what with the Docker API (`--policy
//! FILE`, issue #12). This module holds the loaded policy; the pieces live one concern per file:
//!
//! - `file`: reading and validating the TOML file (errors name the file, line and column);
//! - `identity`: the certificate fields `[[identity]]` entries match, and `*` globs;
//! - `groups`: the permission groups and the endpoints each allows;
//! - `json` and `docker_json`: strict decoding of bodies (duplicate keys, trailing data, key
//!   spellings dockerd would fold);
//! - `container` and `body`: inspection of what reaches the host (container create; exec
//!   create, volume create, build);
//! - `decide`: `Policy::decide`, the one function the request path calls;
//! - `cli`: `dockgate policy check` and `dockgate policy explain`.
//!
//! Roles that allow `all` are not inspected at all; every other role is decided on exactly
//! what dockerd would execute, refusing (400) what dockerd could decode differently.

pub mod body;
pub mod cli;
pub mod container;
pub mod decide;
pub mod docker_json;
pub mod file;
pub mod groups;
pub mod identity;
pub mod json;
#[cfg(test)]
mod readme_policies;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use identity::CertIdentity;

use groups::Group;
use identity::IdentityRule;

/// The role of a client that matches no `[[identity]]` when `default_role = "none"`.
pub const NO_ROLE: &str = "none";

/// Enforce denials, or only log what would be denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// A loaded, validated policy file.
#[derive(Clone, Debug)]
pub struct Policy {
    pub source: PathBuf,
    pub mode: Mode,
    /// A role name, or `none`.
    pub default_role: String,
    pub identities: Vec<IdentityRule>,
    pub roles: BTreeMap<String, Role>,
}

/// One `[role.NAME]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    /// The groups of `allow`, in file order. `Group::All` makes every other setting moot except
    /// `deny`.
    pub allow: Vec<Group>,
    pub deny: Vec<DenyRule>,
    pub limits: ContainerLimits,
    /// `own = [...]`: the kinds this role's identities own (see `crate::tenancy`), sorted.
    pub own: Vec<crate::tenancy::Kind>,
}

impl Role {
    pub fn allows_all(&self) -> bool {
        self.allow.contains(&Group::All)
    }

    pub fn allows(&self, group: Group) -> bool {
        self.allows_all() || self.allow.contains(&group)
    }
}

/// A `deny` entry: `METHOD /path/pattern`, matched against the decoded path without the
/// version prefix (and without the query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenyRule {
    pub method: String,
    pub path: String,
}

impl DenyRule {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        (self.method == "*" || self.method == method) && identity::glob_match(&self.path, path)
    }
}

/// `[role.X.containers]`: what container create and exec create may ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerLimits {
    pub privileged: bool,
    pub host_namespaces: bool,
    pub devices: bool,
    /// Normalised like dockerd: upper case with the `CAP_` prefix, or `ALL`.
    pub cap_add: Vec<String>,
    pub security_opt: bool,
    /// Absolute, clean host paths without a trailing `/` (except `/` itself).
    pub bind_mounts: Vec<String>,
    pub run_as_root: bool,
    pub images: Vec<String>,
    /// `POST /build?remote=URL`: dockerd itself fetches the build context (a git repository or
    /// a tarball URL), from the host's network. Default false except for `all` roles.
    pub build_remote: bool,
}

impl ContainerLimits {
    /// The defaults of a role that does not allow `all`: nothing that reaches the host.
    pub fn restricted() -> ContainerLimits {
        ContainerLimits {
            privileged: false,
            host_namespaces: false,
            devices: false,
            cap_add: Vec::new(),
            security_opt: false,
            bind_mounts: Vec::new(),
            run_as_root: true,
            images: vec!["*".to_string()],
            build_remote: false,
        }
    }

    /// True when `host_path` (absolute) is one of the allowed directories or below one.
    pub fn bind_allowed(&self, host_path: &str) -> bool {
        let Some(clean) = clean_absolute_path(host_path) else {
            return false;
        };
        self.bind_mounts.iter().any(|allowed| {
            allowed == "/"
                || clean == *allowed
                || clean
                    .strip_prefix(allowed.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// `path` without a trailing `/`, when it is absolute and has no empty, `.` or `..` segment
/// (the kernel would resolve `..`, so `/srv/ci/../../etc` must not pass as below `/srv/ci`).
pub fn clean_absolute_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return Some("/".to_string());
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let ok = rest
        .split('/')
        .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\0'));
    ok.then(|| format!("/{rest}"))
}

/// dockerd's capability normalisation: upper case, `CAP_` prefix added, `ALL` kept.
pub fn normalise_capability(cap: &str) -> String {
    let upper = cap.to_ascii_uppercase();
    if upper == "ALL" || upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

impl Policy {
    /// The role of `who` and the `[[identity]]` that chose it (`None`: `default_role`).
    pub fn role_for(&self, who: &CertIdentity) -> (Option<&Role>, Option<&IdentityRule>) {
        let rule = self.identities.iter().find(|rule| rule.matches(who));
        let name = rule.map_or(self.default_role.as_str(), |r| r.role.as_str());
        (self.roles.get(name), rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_paths_are_compared_by_whole_segments_after_cleaning() {
        let limits = ContainerLimits {
            bind_mounts: vec!["/srv/ci-cache".into()],
            ..ContainerLimits::restricted()
        };
        assert!(limits.bind_allowed("/srv/ci-cache"));
        assert!(limits.bind_allowed("/srv/ci-cache/"));
        assert!(limits.bind_allowed("/srv/ci-cache/go/pkg"));
        assert!(!limits.bind_allowed("/srv/ci-cache-other"));
        assert!(!limits.bind_allowed("/srv/ci-cache/../../etc"));
        assert!(!limits.bind_allowed("/srv/ci-cache/./x"));
        assert!(!limits.bind_allowed("/srv//ci-cache"));
        assert!(!limits.bind_allowed("/"));
        assert!(!limits.bind_allowed("srv/ci-cache"));
        let root = ContainerLimits {
            bind_mounts: vec!["/".into()],
            ..ContainerLimits::restricted()
        };
        assert!(root.bind_allowed("/etc"));
    }

    #[test]
    fn capabilities_are_normalised_like_dockerd() {
        assert_eq!(normalise_capability("sys_admin"), "CAP_SYS_ADMIN");
        assert_eq!(normalise_capability("Cap_Sys_Admin"), "CAP_SYS_ADMIN");
        assert_eq!(normalise_capability("all"), "ALL");
        assert_eq!(
            normalise_capability("CAP_NET_BIND_SERVICE"),
            "CAP_NET_BIND_SERVICE"
        );
    }
}
