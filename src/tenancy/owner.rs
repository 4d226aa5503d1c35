//! Who the tenant is: the `owner` of the `[[identity]]` that matched (several certificates may
//! share one owner: a team), or the certificate's CN; and which kinds its role owns. A role
//! without `own` (and every `all` role, which may not have it) is no tenant: its requests are
//! not rewritten, and what it creates carries no owner label.

use super::{Kind, Refusal};
use crate::policy::{CertIdentity, Policy};

/// The longest owner name; it is a label value and appears in every audit line.
pub const MAX_OWNER_LEN: usize = 128;

/// A tenant: the owner label value and the kinds its role owns (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub owner: String,
    pub owns: Vec<Kind>,
}

impl Tenant {
    pub fn owns(&self, kind: Kind) -> bool {
        self.owns.contains(&kind)
    }
}

/// Owner names: ASCII letters, digits and `.`, `_`, `-`, `@`, `+`, `:`; 1 to 128 characters.
/// Narrow on purpose: the value goes into labels, filters and log lines unquoted.
pub fn check_owner_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_OWNER_LEN {
        return Err(format!(
            "an owner must have 1 to {MAX_OWNER_LEN} characters, not {}",
            name.len()
        ));
    }
    let bad = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-@+:".contains(*c)));
    match bad {
        Some(c) => Err(format!(
            "owner {name:?} has the character {c:?} (allowed: ASCII letters, digits and . _ - @ + :)"
        )),
        None => Ok(()),
    }
}

impl Policy {
    /// The tenant `who` acts as, `None` when its role owns nothing (or it has no role).
    /// A certificate without a usable owner (no `owner` and no CN, or a CN that is not a valid
    /// owner name) is refused (403): failing open would make it an untracked admin of its kinds.
    pub fn tenant_for(&self, who: &CertIdentity) -> Result<Option<Tenant>, Refusal> {
        let (role, rule) = self.role_for(who);
        let Some(role) = role.filter(|r| !r.own.is_empty()) else {
            return Ok(None);
        };
        let owner = match rule.and_then(|r| r.owner.clone()) {
            Some(owner) => owner,
            None => who.cn.first().cloned().ok_or_else(|| {
                Refusal::denied(format!(
                    "{} (role {}) has no owner: the certificate has no CN and its [[identity]] sets no owner",
                    who.display_name(),
                    role.name
                ))
            })?,
        };
        check_owner_name(&owner).map_err(|why| {
            Refusal::denied(format!(
                "{} (role {}) has no usable owner: {why}; set owner in its [[identity]]",
                who.display_name(),
                role.name
            ))
        })?;
        Ok(Some(Tenant {
            owner,
            owns: role.own.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::file;
    use std::path::Path;

    const POLICY: &str = r#"
[[identity]]
cn = ["runner-a*"]
owner = "team-a"
role = "ci"
[[identity]]
ou = ["ci"]
role = "ci"
[[identity]]
cn = ["alice"]
role = "admin"
[role.ci]
allow = ["containers", "exec", "volumes"]
own = ["containers", "exec", "volumes"]
[role.admin]
allow = ["all"]
"#;

    fn who(cn: &[&str], ou: &[&str]) -> CertIdentity {
        CertIdentity {
            cn: cn.iter().map(|s| s.to_string()).collect(),
            ou: ou.iter().map(|s| s.to_string()).collect(),
            serial: "1d".into(),
            ..Default::default()
        }
    }

    #[test]
    fn owner_comes_from_the_identity_or_the_cn() {
        let p = file::parse(Path::new("p.toml"), POLICY).unwrap();
        let a1 = p.tenant_for(&who(&["runner-a1"], &[])).unwrap().unwrap();
        let a2 = p
            .tenant_for(&who(&["runner-a2"], &["ci"]))
            .unwrap()
            .unwrap();
        assert_eq!((a1.owner.as_str(), a2.owner.as_str()), ("team-a", "team-a"));
        assert_eq!(a1.owns, [Kind::Containers, Kind::Volumes, Kind::Exec]);
        assert!(a1.owns(Kind::Exec) && !a1.owns(Kind::Networks));
        let b = p.tenant_for(&who(&["team-b"], &["ci"])).unwrap().unwrap();
        assert_eq!(b.owner, "team-b");
        assert_eq!(p.tenant_for(&who(&["alice"], &[])).unwrap(), None);
        assert_eq!(p.tenant_for(&who(&["eve"], &[])).unwrap(), None);
    }

    #[test]
    fn a_certificate_without_a_usable_owner_is_refused() {
        let p = file::parse(Path::new("p.toml"), POLICY).unwrap();
        let no_cn = p.tenant_for(&who(&[], &["ci"])).unwrap_err();
        assert_eq!(no_cn.status, 403);
        assert!(no_cn.message.contains("no CN"), "{no_cn}");
        let odd = p.tenant_for(&who(&["team b,O=x"], &["ci"])).unwrap_err();
        assert_eq!(odd.status, 403);
        assert!(odd.message.contains("' '"), "{odd}");
    }

    #[test]
    fn owner_names_are_narrow() {
        for ok in ["team-a", "ci.runner_1", "a@example.org", "x+y:z"] {
            check_owner_name(ok).unwrap();
        }
        for bad in ["", "a b", "a=b", "é", "a\n", &"x".repeat(129)] {
            assert!(check_owner_name(bad).is_err(), "{bad:?}");
        }
    }
}
