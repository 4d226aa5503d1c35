//! Reading a policy file: TOML (with the `toml` crate) into the raw tables below, then
//! validation into a [`Policy`]. Every error names the file, the line and the column, so an
//! operator can fix a typo without guessing; unknown keys are errors (a misspelt
//! `privilged = true` must not silently mean the default).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::groups::Group;
use super::identity::{Field, IdentityRule};
use super::{
    clean_absolute_path, normalise_capability, ContainerLimits, DenyRule, Mode, Policy, Role,
    NO_ROLE,
};
use crate::tenancy::owner::check_owner_name;
use crate::tenancy::Kind;

/// A policy file that cannot be used, and where.
#[derive(Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub file: PathBuf,
    /// 1-based; 0 when the error has no position (the file could not be read).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for PolicyError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    mode: Option<Spanned<String>>,
    default_role: Option<Spanned<String>>,
    #[serde(default)]
    identity: Vec<Spanned<RawIdentity>>,
    #[serde(default)]
    role: BTreeMap<Spanned<String>, RawRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    cn: Option<Vec<String>>,
    ou: Option<Vec<String>>,
    o: Option<Vec<String>>,
    san_dns: Option<Vec<String>>,
    san_uri: Option<Vec<String>>,
    san_email: Option<Vec<String>>,
    serial: Option<Vec<String>>,
    issuer_cn: Option<Vec<String>>,
    role: Spanned<String>,
    owner: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    own: Vec<Spanned<String>>,
    containers: Option<RawLimits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    privileged: Option<bool>,
    host_namespaces: Option<bool>,
    devices: Option<bool>,
    cap_add: Option<Vec<Spanned<String>>>,
    security_opt: Option<bool>,
    bind_mounts: Option<Vec<Spanned<String>>>,
    run_as_root: Option<bool>,
    images: Option<Vec<Spanned<String>>>,
    build_remote: Option<bool>,
}

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: e.to_string(),
    })?;
    parse(path, &text)
}

/// Parses and validates the text of a policy file; `path` is only used in errors.
pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    let at = |span: Range<usize>, message: String| {
        let (line, column) = line_and_column(text, span.start);
        PolicyError {
            file: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let raw: RawPolicy = toml::from_str(text)
        .map_err(|e| at(e.span().unwrap_or(0..0), e.message().trim_end().to_string()))?;
    build(path, raw).map_err(|(span, message)| at(span, message))
}

type Invalid = (Range<usize>, String);

fn build(path: &Path, raw: RawPolicy) -> Result<Policy, Invalid> {
    let mode = match raw.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("enforce", _)) => Mode::Enforce,
        Some(("audit", _)) => Mode::Audit,
        Some((other, span)) => {
            return Err((
                span,
                format!("mode must be \"enforce\" or \"audit\", not {other:?}"),
            ))
        }
    };
    let mut roles = BTreeMap::new();
    for (name, raw_role) in raw.role {
        if name.get_ref() == NO_ROLE {
            return Err((name.span(), "\"none\" is reserved for \"no access\"".into()));
        }
        let role = build_role(name.get_ref(), raw_role)?;
        roles.insert(name.into_inner(), role);
    }
    let known_role = |name: &Spanned<String>| {
        if name.get_ref() == NO_ROLE || roles.contains_key(name.get_ref()) {
            Ok(name.get_ref().clone())
        } else {
            Err((
                name.span(),
                format!(
                    "no [role.{}] is defined (nor is it \"none\")",
                    name.get_ref()
                ),
            ))
        }
    };
    let default_role = match &raw.default_role {
        Some(name) => known_role(name)?,
        None => NO_ROLE.to_string(),
    };
    let mut identities = Vec::new();
    for (n, entry) in raw.identity.iter().enumerate() {
        let span = entry.span();
        let entry = entry.get_ref();
        let fields = identity_fields(entry);
        if fields.is_empty() {
            return Err((
                span,
                "this [[identity]] names no certificate field (cn, ou, o, san_dns, san_uri, san_email, serial, issuer_cn); use default_role for everyone else".into(),
            ));
        }
        if let Some((field, _)) = fields.iter().find(|(_, patterns)| patterns.is_empty()) {
            return Err((
                span,
                format!("[[identity]] {} is an empty list", field.name()),
            ));
        }
        let owner = match &entry.owner {
            Some(owner) => {
                check_owner_name(owner.get_ref()).map_err(|why| (owner.span(), why))?;
                Some(owner.get_ref().clone())
            }
            None => None,
        };
        identities.push(IdentityRule {
            index: n + 1,
            fields,
            role: known_role(&entry.role)?,
            owner,
        });
    }
    Ok(Policy {
        source: path.to_path_buf(),
        mode,
        default_role,
        identities,
        roles,
    })
}

fn identity_fields(entry: &RawIdentity) -> Vec<(Field, Vec<String>)> {
    let given = [
        (Field::Cn, &entry.cn),
        (Field::Ou, &entry.ou),
        (Field::O, &entry.o),
        (Field::SanDns, &entry.san_dns),
        (Field::SanUri, &entry.san_uri),
        (Field::SanEmail, &entry.san_email),
        (Field::Serial, &entry.serial),
        (Field::IssuerCn, &entry.issuer_cn),
    ];
    given
        .into_iter()
        .filter_map(|(field, patterns)| {
            let mut patterns = patterns.clone()?;
            if field == Field::Serial {
                // The audit log prints serials in lower case.
                patterns
                    .iter_mut()
                    .for_each(|p| *p = p.to_ascii_lowercase());
            }
            Some((field, patterns))
        })
        .collect()
}

fn build_role(name: &str, raw: RawRole) -> Result<Role, Invalid> {
    let mut allow = Vec::new();
    for group in &raw.allow {
        let parsed = Group::parse(group.get_ref()).ok_or_else(|| {
            let names: Vec<&str> = super::groups::GROUPS.iter().map(|(_, n, _)| *n).collect();
            (
                group.span(),
                format!(
                    "unknown group {:?} (groups: {})",
                    group.get_ref(),
                    names.join(", ")
                ),
            )
        })?;
        allow.push(parsed);
    }
    let deny = raw
        .deny
        .iter()
        .map(parse_deny_rule)
        .collect::<Result<Vec<_>, _>>()?;
    let everything = allow.contains(&Group::All);
    let own = build_own(&raw.own, everything)?;
    let limits = match raw.containers {
        Some(raw_limits) => build_limits(raw_limits, everything)?,
        None if everything => unrestricted(),
        None => ContainerLimits::restricted(),
    };
    Ok(Role {
        name: name.to_string(),
        allow,
        deny,
        limits,
        own,
    })
}

/// `own = ["containers", "volumes", "networks", "exec"]`: any subset, each once. An `all` role
/// cannot own (admins see everything and create unowned objects), and exec ownership is the
/// container's, so `exec` needs `containers`.
fn build_own(raw: &[Spanned<String>], everything: bool) -> Result<Vec<Kind>, Invalid> {
    let mut own = Vec::new();
    for entry in raw {
        let kind = Kind::parse(entry.get_ref()).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            (
                entry.span(),
                format!(
                    "unknown kind {:?} in own (kinds: {})",
                    entry.get_ref(),
                    names.join(", ")
                ),
            )
        })?;
        if own.contains(&kind) {
            return Err((
                entry.span(),
                format!("{:?} is listed twice in own", kind.name()),
            ));
        }
        if everything {
            return Err((
                entry.span(),
                "a role that allows \"all\" cannot own: admins see everything and their creates carry no owner".into(),
            ));
        }
        own.push(kind);
    }
    if own.contains(&Kind::Exec) && !own.contains(&Kind::Containers) {
        let span = raw.first().map(Spanned::span).unwrap_or(0..0);
        return Err((
            span,
            "own = [\"exec\"] needs \"containers\" too (an exec belongs to its container's owner)"
                .into(),
        ));
    }
    own.sort();
    Ok(own)
}

/// The limits of a role that allows `all` (they are not checked, but `policy check` prints them).
fn unrestricted() -> ContainerLimits {
    ContainerLimits {
        privileged: true,
        host_namespaces: true,
        devices: true,
        cap_add: vec!["ALL".into()],
        security_opt: true,
        bind_mounts: vec!["/".into()],
        run_as_root: true,
        images: vec!["*".into()],
        build_remote: true,
    }
}

fn build_limits(raw: RawLimits, everything: bool) -> Result<ContainerLimits, Invalid> {
    let defaults = if everything {
        unrestricted()
    } else {
        ContainerLimits::restricted()
    };
    let mut cap_add = Vec::new();
    for cap in raw.cap_add.iter().flatten() {
        let valid = !cap.get_ref().is_empty()
            && cap
                .get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err((
                cap.span(),
                format!("{:?} is not a capability name", cap.get_ref()),
            ));
        }
        cap_add.push(normalise_capability(cap.get_ref()));
    }
    let mut bind_mounts = Vec::new();
    for dir in raw.bind_mounts.iter().flatten() {
        let clean = clean_absolute_path(dir.get_ref()).ok_or_else(|| {
            (
                dir.span(),
                format!(
                    "bind_mounts entry {:?} must be an absolute path without //, . or .. segments",
                    dir.get_ref()
                ),
            )
        })?;
        bind_mounts.push(clean);
    }
    let mut images = Vec::new();
    for image in raw.images.iter().flatten() {
        if image.get_ref().is_empty() {
            return Err((
                image.span(),
                "an empty image pattern matches nothing".into(),
            ));
        }
        images.push(image.get_ref().clone());
    }
    Ok(ContainerLimits {
        privileged: raw.privileged.unwrap_or(defaults.privileged),
        host_namespaces: raw.host_namespaces.unwrap_or(defaults.host_namespaces),
        devices: raw.devices.unwrap_or(defaults.devices),
        cap_add: if raw.cap_add.is_some() {
            cap_add
        } else {
            defaults.cap_add
        },
        security_opt: raw.security_opt.unwrap_or(defaults.security_opt),
        bind_mounts: if raw.bind_mounts.is_some() {
            bind_mounts
        } else {
            defaults.bind_mounts
        },
        run_as_root: raw.run_as_root.unwrap_or(defaults.run_as_root),
        images: if raw.images.is_some() {
            images
        } else {
            defaults.images
        },
        build_remote: raw.build_remote.unwrap_or(defaults.build_remote),
    })
}

/// `"DELETE /images/*"`: an HTTP method (or `*`) and a path pattern starting with `/`.
fn parse_deny_rule(rule: &Spanned<String>) -> Result<DenyRule, Invalid> {
    let text = rule.get_ref();
    let invalid = || {
        (
            rule.span(),
            format!(
                "deny entry {text:?} must be \"METHOD /path/pattern\", e.g. \"DELETE /images/*\""
            ),
        )
    };
    let (method, path) = text.split_once(' ').ok_or_else(invalid)?;
    let method_ok =
        method == "*" || (!method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()));
    if !method_ok || !path.starts_with('/') || path.contains(' ') {
        return Err(invalid());
    }
    Ok(DenyRule {
        method: method.to_string(),
        path: path.to_string(),
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1; // a span inside a multi-byte character: point at the character
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of issue #12, verbatim.
    pub const EXAMPLE: &str = r#"
mode = "enforce"              # or "audit"
default_role = "none"

[[identity]]
cn = ["alice", "bob"]
role = "admin"

[[identity]]
ou = ["ci"]
role = "ci"

[[identity]]
san_uri = ["spiffe://example.org/monitoring/*"]
role = "observer"

[role.admin]
allow = ["all"]

[role.ci]
allow = ["read", "logs", "containers", "exec", "images", "build", "volumes", "networks"]
deny = ["DELETE /images/*"]
[role.ci.containers]
privileged = false
host_namespaces = false
devices = false
cap_add = ["NET_BIND_SERVICE"]
security_opt = false
bind_mounts = ["/srv/ci-cache"]
run_as_root = true
images = ["*"]

[role.observer]
allow = ["read"]
"#;

    fn parse_text(text: &str) -> Result<Policy, PolicyError> {
        parse(Path::new("policy.toml"), text)
    }

    #[test]
    fn the_issue_example_loads() {
        let policy = parse_text(EXAMPLE).unwrap();
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.default_role, "none");
        assert_eq!(policy.identities.len(), 3);
        let ci = &policy.roles["ci"];
        assert_eq!(ci.limits.cap_add, ["CAP_NET_BIND_SERVICE"]);
        assert_eq!(ci.limits.bind_mounts, ["/srv/ci-cache"]);
        assert_eq!(
            ci.deny,
            [DenyRule {
                method: "DELETE".into(),
                path: "/images/*".into()
            }]
        );
        assert!(policy.roles["admin"].allows_all());
        assert!(policy.roles["admin"].limits.privileged);
        assert!(!policy.roles["observer"].limits.privileged);
        assert!(!ci.limits.build_remote);
        assert!(policy.roles["admin"].limits.build_remote);
    }

    #[test]
    fn own_and_owner_are_read_and_checked() {
        let p = parse_text(
            "[[identity]]\ncn = [\"runner-a*\"]\nowner = \"team-a\"\nrole = \"ci\"\n[role.ci]\nallow = [\"containers\"]\nown = [\"exec\", \"containers\", \"networks\"]\n",
        )
        .unwrap();
        assert_eq!(p.identities[0].owner.as_deref(), Some("team-a"));
        assert_eq!(
            p.roles["ci"].own,
            [Kind::Containers, Kind::Networks, Kind::Exec]
        );
        for (text, needle, line) in [
            ("[role.x]\nown = [\"images\"]", "unknown kind \"images\"", 2),
            ("[role.x]\nown = [\"volumes\", \"volumes\"]", "twice", 2),
            ("[role.x]\nown = [\"exec\"]", "needs \"containers\"", 2),
            (
                "[role.x]\nallow = [\"all\"]\nown = [\"containers\"]",
                "cannot own",
                3,
            ),
            (
                "[[identity]]\ncn = [\"a\"]\nowner = \"team a\"\nrole = \"none\"",
                "character ' '",
                3,
            ),
            (
                "[[identity]]\ncn = [\"a\"]\nowner = \"\"\nrole = \"none\"",
                "1 to 128",
                3,
            ),
        ] {
            let err = parse_text(text).unwrap_err();
            assert!(err.message.contains(needle), "{text}: {err}");
            assert_eq!(err.line, line, "{text}: {err}");
        }
    }

    #[test]
    fn build_remote_is_a_container_limit() {
        let p = parse_text(
            "[role.ci]\nallow = [\"build\"]\n[role.ci.containers]\nbuild_remote = true\n",
        )
        .unwrap();
        assert!(p.roles["ci"].limits.build_remote);
        let err = parse_text("[role.ci.containers]\nbuild_remote = \"yes\"\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let err = parse_text("mode = \"enforce\"\n[role.ci]\nallow = [\"read\", \"raed\"]\n")
            .unwrap_err();
        assert_eq!((err.line, err.column), (3, 18), "{err}");
        assert!(
            err.to_string()
                .starts_with("policy.toml:3:18: unknown group \"raed\""),
            "{err}"
        );

        let err = parse_text("[role.ci.containers]\nprivilged = true\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.message.contains("privilged"), "{err}");

        let err = parse_text("default_role = \"none\"\nmode = = 1\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 8), "{err}");

        let err = parse_text("[[identity]]\ncn = [\"a\"]\nrole = \"ci\"\n").unwrap_err();
        assert_eq!((err.line, err.column), (3, 8), "{err}");
        assert!(err.message.contains("no [role.ci]"), "{err}");
    }

    #[test]
    fn invalid_values_are_refused() {
        for (text, needle) in [
            ("mode = \"strict\"", "mode must be"),
            ("default_role = \"ghost\"", "no [role.ghost]"),
            ("[role.none]\nallow = [\"read\"]", "reserved"),
            (
                "[[identity]]\nrole = \"none\"",
                "names no certificate field",
            ),
            ("[[identity]]\ncn = []\nrole = \"none\"", "empty list"),
            ("[role.x]\ndeny = [\"delete /images/*\"]", "METHOD /path"),
            ("[role.x]\ndeny = [\"DELETE images\"]", "METHOD /path"),
            (
                "[role.x.containers]\nbind_mounts = [\"/srv/../etc\"]",
                "absolute path",
            ),
            (
                "[role.x.containers]\nbind_mounts = [\"srv\"]",
                "absolute path",
            ),
            (
                "[role.x.containers]\ncap_add = [\"SYS ADMIN\"]",
                "capability",
            ),
            ("[role.x.containers]\nimages = [\"\"]", "image pattern"),
            ("unknown = 1", "unknown"),
        ] {
            let err = parse_text(text).unwrap_err();
            assert!(err.message.contains(needle), "{text}: {err}");
            assert!(err.line >= 1, "{text}: {err}");
        }
    }

    #[test]
    fn positions_count_characters_and_survive_any_offset() {
        let text = "a = \"\u{17f}\u{17f}\"\nb";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, text.len()), (2, 2));
        for offset in 0..text.len() + 3 {
            let (line, column) = line_and_column(text, offset);
            assert!(line >= 1 && column >= 1);
        }
    }

    #[test]
    fn serial_patterns_are_lowercased_and_missing_files_are_named() {
        let p = parse_text("[[identity]]\nserial = [\"1D2C\"]\nrole = \"none\"").unwrap();
        assert_eq!(p.identities[0].fields[0].1, ["1d2c"]);
        let err = load(Path::new("/nonexistent/policy.toml")).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/policy.toml: "),
            "{err}"
        );
    }
}
