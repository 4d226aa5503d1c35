//! `Policy::decide`: one request of one identity in, one [`Decision`] out, with the role, the
//! rule that decided and the field it was about, ready for the 403/400 answer and the audit line.
//!
//! The order: a target the classifier refused (one dockerd would read differently) is a 400 for
//! every role; the identity's role is found (none: denied); the role's `deny` patterns; `all`
//! (allowed, not inspected); the endpoint's group must be in `allow` (an unclassified endpoint
//! needs `all`); then the body or query of the inspected endpoints is checked against
//! `[role.X.containers]`.
//!
//! The policy takes the request already classified (`api::classify`): the request side parses
//! each target once and hands the same [`ApiRequest`] to the registry, to this module and to
//! tenancy, so that they cannot disagree about what a request is.

use super::body::{self, Finding, Headers};
use super::container;
use super::groups::{group_of, Group};
use super::identity::{CertIdentity, IdentityRule};
use super::{Policy, Role, NO_ROLE};
use crate::api::{ApiRequest, ContainerOp, Endpoint, NetworkOp, TargetError};

/// One request as the policy needs it. `body` is the complete body for the endpoints
/// [`Policy::needs_body`] names, and may be empty for every other.
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target as `api::classify` read it; an `Err` is answered 400 for every role.
    pub target: &'a Result<ApiRequest, TargetError>,
    pub headers: &'a Headers<'a>,
    pub body: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    /// 403: the role may not do this.
    Denied,
    /// 400: the request is refused for every role, because dockerd could read it differently.
    BadRequest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The role's name, or `none`.
    pub role: String,
    /// The policy setting that decided, e.g. `[role.ci.containers] privileged = false`.
    pub rule: String,
    /// The JSON field or query parameter the decision is about.
    pub field: Option<String>,
    /// For the client: the JSON `message` of the 403/400 answer; "allowed" otherwise.
    pub message: String,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allowed
    }

    /// The status of the local answer, `None` when the request goes to Docker.
    pub fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Allowed => None,
            Outcome::Denied => Some(403),
            Outcome::BadRequest => Some(400),
        }
    }
}

impl Policy {
    /// True when deciding this request for `who` needs its complete body: container create,
    /// exec create, volume create, network connect and container start (API < 1.24 applies a
    /// start body as the HostConfig) of a role that allows them and is inspected.
    pub fn needs_body(&self, who: &CertIdentity, request: &ApiRequest) -> bool {
        let Some(role) = self.role_for(who).0 else {
            return false;
        };
        let inspected = matches!(
            request.endpoint,
            Endpoint::ContainerCreate
                | Endpoint::ExecCreate { .. }
                | Endpoint::VolumeCreate
                | Endpoint::Network {
                    op: NetworkOp::Connect,
                    ..
                }
                | Endpoint::Container {
                    op: ContainerOp::Start,
                    ..
                }
        );
        inspected
            && !role.allows_all()
            && group_of(&request.endpoint).is_some_and(|g| role.allows(g))
    }

    /// Decides one request of `who`.
    pub fn decide(&self, who: &CertIdentity, req: &Request<'_>) -> Decision {
        let (role, identity_rule) = self.role_for(who);
        let role_name = role.map_or(NO_ROLE, |r| r.name.as_str()).to_string();
        let request = match req.target {
            Ok(request) => request,
            Err(e) => {
                return Decision {
                    outcome: Outcome::BadRequest,
                    role: role_name,
                    rule: "request target".into(),
                    field: None,
                    message: format!("dockgate: bad request: {e}"),
                }
            }
        };
        let mut decision = Decision {
            outcome: Outcome::Allowed,
            role: role_name,
            rule: String::new(),
            field: None,
            message: "allowed".into(),
        };
        match role {
            None => {
                let rule = match identity_rule {
                    Some(rule) => format!(
                        "[[identity]] #{} ({}) role = \"none\"",
                        rule.index,
                        rule.describe()
                    ),
                    None => format!(
                        "no [[identity]] matches and default_role = \"{}\"",
                        self.default_role
                    ),
                };
                let what = "has no role: every request is denied".to_string();
                deny(&mut decision, who, rule, None, &what);
            }
            Some(role) => decide_for_role(&mut decision, who, role, request, req),
        }
        decision
    }

    /// The `[[identity]]` that gives `who` its role, for explanations.
    pub fn identity_rule_for(&self, who: &CertIdentity) -> Option<&IdentityRule> {
        self.role_for(who).1
    }
}

fn decide_for_role(
    decision: &mut Decision,
    who: &CertIdentity,
    role: &Role,
    request: &ApiRequest,
    req: &Request<'_>,
) {
    let name = &role.name;
    if let Some(rule) = role
        .deny
        .iter()
        .find(|r| r.matches(req.method, &request.path))
    {
        let what = format!("may not use {} {}", req.method, request.path);
        let rule = format!("[role.{name}] deny \"{} {}\"", rule.method, rule.path);
        return deny(decision, who, rule, None, &what);
    }
    if role.allows_all() {
        decision.rule = format!("[role.{name}] allow = [\"all\"]");
        return;
    }
    let Some(group) = group_of(&request.endpoint) else {
        let what = format!(
            "may not use {} {} (an endpoint only \"all\" allows)",
            req.method, request.path
        );
        let rule = format!("[role.{name}] allow has no \"all\" (endpoint not classified)");
        return deny(decision, who, rule, None, &what);
    };
    if !role.allows(group) {
        let what = format!(
            "may not use {} {} (group {})",
            req.method,
            request.path,
            group.name()
        );
        let rule = format!("[role.{name}] allow has no \"{}\"", group.name());
        return deny(decision, who, rule, None, &what);
    }
    decision.rule = format!("[role.{name}] allow \"{}\"", group.name());
    let inspected = match &request.endpoint {
        Endpoint::ContainerCreate => container::container_create(role, req.headers, req.body),
        Endpoint::ExecCreate { .. } => body::exec_create(role, req.headers, req.body),
        Endpoint::VolumeCreate => body::volume_create(role, req.headers, req.body),
        Endpoint::Network {
            op: NetworkOp::Connect,
            ..
        } => body::network_connect(role, req.headers, req.body),
        Endpoint::Container {
            op: ContainerOp::Start,
            ..
        } => body::container_start(req.body),
        Endpoint::Build => body::build(
            role,
            role.allows(Group::Buildkit),
            &request.query,
            req.headers,
        ),
        _ => Ok(()),
    };
    match inspected {
        Ok(()) => {}
        Err(Finding::Denied { rule, field, what }) => deny(decision, who, rule, Some(field), &what),
        Err(Finding::Refused { field, reason }) => {
            decision.outcome = Outcome::BadRequest;
            decision.rule = "strict decoding (dockerd could read this request differently)".into();
            decision.message = format!("dockgate: bad request: {reason}");
            decision.field = field;
        }
    }
}

fn deny(
    decision: &mut Decision,
    who: &CertIdentity,
    rule: String,
    field: Option<String>,
    what: &str,
) {
    let suffix = field
        .as_ref()
        .map(|f| format!(" ({f})"))
        .unwrap_or_default();
    decision.outcome = Outcome::Denied;
    decision.message = format!(
        "dockgate: access denied: {} (role {}) {what}{suffix}",
        who.display_name(),
        decision.role
    );
    decision.rule = rule;
    decision.field = field;
}

/// For tests: decides `method target` as the request side would classify it, with a JSON
/// content type.
#[cfg(test)]
impl Policy {
    pub fn decide_json(
        &self,
        who: &CertIdentity,
        method: &str,
        target: &str,
        body: &[u8],
    ) -> Decision {
        const JSON: &[(&str, &[u8])] = &[("Content-Type", b"application/json")];
        self.decide(
            who,
            &Request {
                method,
                target: &crate::api::classify(method, target),
                headers: JSON,
                body,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::file;
    use std::path::Path;

    const POLICY: &str = r#"
default_role = "none"
[[identity]]
cn = ["alice"]
role = "admin"
[[identity]]
ou = ["ci"]
role = "ci"
[[identity]]
cn = ["mallory"]
role = "none"
[[identity]]
san_uri = ["spiffe://example.org/monitoring/*"]
role = "observer"
[role.admin]
allow = ["all"]
deny = ["POST /swarm/leave"]
[role.ci]
allow = ["read", "logs", "containers", "exec", "images", "build", "volumes", "networks"]
deny = ["DELETE /images/*"]
[role.ci.containers]
cap_add = ["NET_BIND_SERVICE"]
bind_mounts = ["/srv/ci-cache"]
[role.observer]
allow = ["read"]
"#;

    fn policy() -> Policy {
        file::parse(Path::new("p.toml"), POLICY).unwrap()
    }

    fn cn(name: &str) -> CertIdentity {
        CertIdentity {
            cn: vec![name.into()],
            serial: "1d".into(),
            ..Default::default()
        }
    }

    fn ci() -> CertIdentity {
        CertIdentity {
            ou: vec!["ci".into()],
            ..cn("ci-runner-1")
        }
    }

    fn decide(who: &CertIdentity, method: &str, target: &str, body: &str) -> Decision {
        policy().decide_json(who, method, target, body.as_bytes())
    }

    fn needs_body(who: &CertIdentity, method: &str, target: &str) -> bool {
        let request = crate::api::classify(method, target).unwrap();
        policy().needs_body(who, &request)
    }

    #[test]
    fn the_issue_denial_message() {
        let d = decide(
            &ci(),
            "POST",
            "/v1.41/containers/create",
            r#"{"Image":"busybox","HostConfig":{"Privileged":true}}"#,
        );
        assert_eq!(d.outcome, Outcome::Denied);
        assert_eq!(d.status(), Some(403));
        assert_eq!(
            d.message,
            "dockgate: access denied: CN=ci-runner-1 (role ci) may not create privileged containers (HostConfig.Privileged)"
        );
        assert_eq!(d.rule, "[role.ci.containers] privileged = false");
        assert_eq!(d.field.as_deref(), Some("HostConfig.Privileged"));
        assert_eq!(d.role, "ci");
    }

    #[test]
    fn roles_come_from_the_first_matching_identity_or_the_default() {
        let p = policy();
        assert_eq!(decide(&cn("alice"), "GET", "/info", "").role, "admin");
        let observer = CertIdentity {
            san_uri: vec!["spiffe://example.org/monitoring/grafana".into()],
            ..cn("grafana")
        };
        assert_eq!(decide(&observer, "GET", "/info", "").role, "observer");
        let stranger = decide(&cn("eve"), "GET", "/_ping", "");
        assert_eq!(
            (stranger.outcome, stranger.role.as_str()),
            (Outcome::Denied, "none")
        );
        assert!(stranger.rule.contains("default_role"), "{}", stranger.rule);
        let mallory = decide(&cn("mallory"), "GET", "/_ping", "");
        assert_eq!(mallory.outcome, Outcome::Denied);
        assert!(mallory.rule.contains("#3"), "{}", mallory.rule);
        assert!(p.identity_rule_for(&cn("eve")).is_none());
    }

    #[test]
    fn groups_allow_and_everything_else_is_denied() {
        let observer = CertIdentity {
            san_uri: vec!["spiffe://example.org/monitoring/x".into()],
            ..Default::default()
        };
        for (method, target) in [
            ("GET", "/v1.41/containers/json?all=1"),
            ("GET", "/v1.41/images/json"),
            ("GET", "/v1.41/containers/abc/json"),
            ("GET", "/v1.41/events"),
            ("HEAD", "/_ping"),
        ] {
            assert!(
                decide(&observer, method, target, "").allowed(),
                "{method} {target}"
            );
        }
        for (method, target) in [
            ("POST", "/v1.41/containers/create"),
            ("POST", "/v1.41/containers/abc/exec"),
            ("GET", "/v1.41/containers/abc/logs"),
            ("GET", "/v1.41/containers/abc/archive?path=/etc"),
            ("DELETE", "/v1.41/containers/abc"),
            ("POST", "/v1.41/images/create?fromImage=busybox"),
            ("GET", "/v1.41/swarm"),
            ("GET", "/v1.41/brand/new"),
        ] {
            let d = decide(&observer, method, target, "{}");
            assert_eq!(d.outcome, Outcome::Denied, "{method} {target}");
        }
        let d = decide(&observer, "GET", "/v1.41/containers/abc/logs", "");
        assert_eq!(d.rule, "[role.observer] allow has no \"logs\"");
    }

    #[test]
    fn deny_patterns_apply_after_the_groups_and_to_admins() {
        let d = decide(&ci(), "DELETE", "/v1.41/images/busybox:latest", "");
        assert_eq!(d.outcome, Outcome::Denied);
        assert_eq!(d.rule, "[role.ci] deny \"DELETE /images/*\"");
        // Encoded, the path still matches after decoding.
        let d = decide(&ci(), "DELETE", "/v1.41/%69mages/busybox", "");
        assert_eq!(d.outcome, Outcome::Denied);
        assert!(decide(&cn("alice"), "POST", "/swarm/init", "").allowed());
        assert_eq!(
            decide(&cn("alice"), "POST", "/v1.41/swarm/leave", "").outcome,
            Outcome::Denied
        );
    }

    #[test]
    fn admins_are_not_inspected() {
        let d = decide(
            &cn("alice"),
            "POST",
            "/containers/create",
            r#"{"Image":"x","privileged":true,"Privileged":true} trailing"#,
        );
        assert!(d.allowed(), "{d:?}");
        assert!(!needs_body(&cn("alice"), "POST", "/containers/create"));
        assert!(needs_body(&ci(), "POST", "/v1.41/containers/create"));
        assert!(needs_body(&ci(), "POST", "/v1.41/containers/x/exec"));
        assert!(needs_body(&ci(), "POST", "/volumes/create"));
        assert!(needs_body(&ci(), "POST", "/v1.23/containers/x/start"));
        assert!(!needs_body(&ci(), "POST", "/build?t=x"));
        assert!(!needs_body(&ci(), "POST", "/exec/x/start"));
        assert!(needs_body(&ci(), "POST", "/v1.41/networks/n/connect"));
        assert!(!needs_body(&ci(), "POST", "/v1.41/networks/n/disconnect"));
        assert!(!needs_body(&cn("alice"), "POST", "/networks/n/connect"));
    }

    #[test]
    fn network_connect_endpoint_driver_options_are_denied_like_on_create() {
        let connect = |body: &str| decide(&ci(), "POST", "/v1.41/networks/n/connect", body);
        let d = connect(r#"{"Container":"c","EndpointConfig":{"DriverOpts":{"a":"b"}}}"#);
        assert_eq!(d.outcome, Outcome::Denied, "{d:?}");
        assert_eq!(d.field.as_deref(), Some("EndpointConfig.DriverOpts"));
        assert!(
            d.message.contains("EndpointConfig.DriverOpts"),
            "{}",
            d.message
        );
        let d = connect(r#"{"Container":"c","endpointConfig":{"DriverOpts":{"a":"b"}}}"#);
        assert_eq!(d.outcome, Outcome::BadRequest, "{d:?}");
        assert!(connect(r#"{"Container":"c","EndpointConfig":{"DriverOpts":null}}"#).allowed());
        assert!(connect(r#"{"Container":"c"}"#).allowed());
        // Admins are not inspected; disconnect carries no endpoint settings.
        let admin = decide(
            &cn("alice"),
            "POST",
            "/v1.41/networks/n/connect",
            r#"{"Container":"c","EndpointConfig":{"DriverOpts":{"a":"b"}}}"#,
        );
        assert!(admin.allowed(), "{admin:?}");
    }

    #[test]
    fn refused_targets_are_bad_requests_for_every_role() {
        for target in [
            "//containers/create",
            "/containers%2Fcreate",
            "/v1.41/containers/x/../create",
            "http://docker/containers/create",
            "*",
        ] {
            for who in [cn("alice"), ci()] {
                let d = decide(&who, "POST", target, "{}");
                assert_eq!(d.outcome, Outcome::BadRequest, "{target}");
                assert_eq!(d.status(), Some(400));
                assert!(
                    d.message.starts_with("dockgate: bad request: "),
                    "{}",
                    d.message
                );
            }
        }
    }

    #[test]
    fn a_body_on_container_start_is_refused() {
        // dockerd 20.10 applies it as the HostConfig for API versions below 1.24.
        let d = decide(
            &ci(),
            "POST",
            "/v1.23/containers/c/start",
            r#"{"Privileged":true}"#,
        );
        assert_eq!(d.outcome, Outcome::BadRequest, "{d:?}");
        assert!(d.message.contains("start"), "{}", d.message);
        assert!(decide(&ci(), "POST", "/v1.41/containers/c/start", "").allowed());
        assert!(decide(&cn("alice"), "POST", "/v1.23/containers/c/start", "{}").allowed());
    }

    /// Bad input gets an answer, never a panic: mangled bodies and targets, decided for an
    /// inspected role. A small deterministic generator keeps the test reproducible.
    #[test]
    fn mangled_requests_never_panic() {
        let seeds = [
            r#"{"Image":"busybox","HostConfig":{"Binds":["/srv/ci-cache:/c"],"Mounts":[{"Type":"volume","VolumeOptions":{"DriverConfig":{"Options":{"o":"bind","device":"/"}}}}],"CapAdd":["x"],"NetworkMode":"host"},"NetworkingConfig":{"EndpointsConfig":{"n":{"DriverOpts":{}}}}}"#,
            r#"{"Cmd":["sh"],"Privileged":true,"User":"0"}"#,
            r#"{"Name":"v","DriverOpts":{"type":"none","o":"bind","device":"/"}}"#,
        ];
        let targets = [
            "/v1.41/containers/create",
            "/v1.41/containers/c/exec",
            "/volumes/create",
            "/v1.23/containers/c/start",
            "/build?networkmode=host&remote=x",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        const NOISE: &[u8] = b"{}[]\",:\\\x00\xc5\xbf";
        let p = policy();
        for round in 0..3000 {
            let mut body = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % body.len().max(1);
                match next() % 4 {
                    0 => body.truncate(at),
                    1 if at < body.len() => body[at] = (next() % 256) as u8,
                    2 => body.insert(at.min(body.len()), NOISE[(next() as usize) % NOISE.len()]),
                    _ => body.extend_from_slice(b"}]"),
                }
            }
            let mut target = targets[round % targets.len()].as_bytes().to_vec();
            if next() % 3 == 0 {
                let at = (next() as usize) % target.len();
                target.insert(at, b"%./?#*"[(next() % 6) as usize]);
            }
            let target = String::from_utf8_lossy(&target).into_owned();
            let d = p.decide_json(&ci(), "POST", &target, &body);
            assert!(!d.message.is_empty());
        }
    }

    #[test]
    fn attach_and_exec_start_need_their_groups() {
        let observer = CertIdentity {
            san_uri: vec!["spiffe://example.org/monitoring/x".into()],
            ..Default::default()
        };
        assert_eq!(
            decide(&observer, "POST", "/v1.41/exec/abc/start", "").outcome,
            Outcome::Denied
        );
        assert_eq!(
            decide(&observer, "POST", "/v1.41/containers/c/attach", "").outcome,
            Outcome::Denied
        );
        assert!(decide(&ci(), "POST", "/v1.41/exec/abc/start", "").allowed());
        assert!(decide(&ci(), "POST", "/v1.41/containers/c/attach?stream=1", "").allowed());
    }
}
