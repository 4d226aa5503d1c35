//! What tenancy does with one request, after the policy allowed it and before anything reaches
//! dockerd: [`plan`] names the step for a classified request, [`apply`] carries it out (the one
//! call the request path makes for a tenant) and says what to forward instead.
//!
//! A container create is also checked for the objects its body names (`references`).
//!
//! `GET /system/df` (every container and volume, no filters) is refused (403) to tenants that
//! own containers or volumes.

use super::create::label_create;
use super::filters::query_escape;
use super::filters::{merge_owner_filter, refuse_form_body};
use super::owner::Tenant;
use super::references::{connect_body_with_id, connect_references, create_references};
use super::resolve::{resolve, resolve_owned, rewrite_target, RefKind, Resolved};
use super::{Kind, Refusal};
use crate::api::{parse_query, ApiRequest, Endpoint, NetworkOp};
use crate::policy::body::Headers;
use crate::upstream::Upstream;

/// The tenancy step of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing owned is named: forward unchanged.
    Forward,
    /// A create of an owned kind: set the owner label in the body.
    Label(Kind),
    /// The path names an owned object: resolve it, check the owner, rewrite to the full ID.
    Resolve(RefKind, String),
    /// `POST /commit?container=`: the query parameter names an owned object; it is resolved,
    /// checked and replaced by the full ID.
    ResolveQuery(RefKind, &'static str),
    /// Network connect/disconnect: the network (when networks are owned) and the body's
    /// container (when containers are owned) are resolved and checked, both get full IDs.
    Connect(String),
    /// A list, prune or event stream of an owned kind: merge the owner filter into the query.
    Filter,
    /// Refused for tenants.
    Refuse(Refusal),
}

/// The step for `request` of `tenant`.
pub fn plan(tenant: &Tenant, request: &ApiRequest) -> Step {
    let owns = |kind| tenant.owns(kind);
    let containers = owns(Kind::Containers);
    match &request.endpoint {
        Endpoint::ContainerCreate if containers => Step::Label(Kind::Containers),
        Endpoint::VolumeCreate if owns(Kind::Volumes) => Step::Label(Kind::Volumes),
        Endpoint::NetworkCreate if owns(Kind::Networks) => Step::Label(Kind::Networks),
        Endpoint::ContainerList | Endpoint::ContainerPrune if containers => Step::Filter,
        Endpoint::VolumeList | Endpoint::VolumePrune if owns(Kind::Volumes) => Step::Filter,
        Endpoint::NetworkList | Endpoint::NetworkPrune if owns(Kind::Networks) => Step::Filter,
        Endpoint::Events if containers || owns(Kind::Volumes) || owns(Kind::Networks) => {
            Step::Filter
        }
        Endpoint::Container { id, .. } if containers => {
            Step::Resolve(RefKind::Container, id.clone())
        }
        Endpoint::ExecCreate { container } if containers => {
            Step::Resolve(RefKind::Container, container.clone())
        }
        Endpoint::ExecStart { exec }
        | Endpoint::ExecResize { exec }
        | Endpoint::ExecInspect { exec }
            if owns(Kind::Exec) =>
        {
            Step::Resolve(RefKind::Exec, exec.clone())
        }
        Endpoint::Volume { name, .. } if owns(Kind::Volumes) => {
            Step::Resolve(RefKind::Volume, name.clone())
        }
        Endpoint::Network {
            id,
            op: NetworkOp::Connect | NetworkOp::Disconnect,
        } if containers || owns(Kind::Networks) => Step::Connect(id.clone()),
        Endpoint::Network { id, .. } if owns(Kind::Networks) => {
            Step::Resolve(RefKind::Network, id.clone())
        }
        Endpoint::SystemDf if containers || owns(Kind::Volumes) => not_for_tenants(
            tenant,
            "GET /system/df (it lists every container and volume)",
        ),
        Endpoint::Commit if containers => Step::ResolveQuery(RefKind::Container, "container"),
        _ => Step::Forward,
    }
}

fn not_for_tenants(tenant: &Tenant, what: &str) -> Step {
    Step::Refuse(Refusal::denied(format!(
        "tenant {} may not use {what}",
        tenant.owner
    )))
}

/// True when [`apply`] needs the complete request body: creates of owned kinds and network
/// connect/disconnect (the caller reads it like the policy's inspected bodies, up to 1 MiB).
pub fn needs_body(tenant: &Tenant, request: &ApiRequest) -> bool {
    matches!(plan(tenant, request), Step::Label(_) | Step::Connect(_))
}

/// What to forward in place of the request, after [`apply`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forward {
    /// The new request target (path and query), `None`: the original one.
    pub target: Option<String>,
    /// The new body (the caller sends it with a recomputed Content-Length, not chunked),
    /// `None`: the original one.
    pub body: Option<Vec<u8>>,
    /// The object the request was checked against, for the audit line (owner, full ID).
    pub resolved: Option<Resolved>,
}

/// Carries out the step of `request` for `tenant`. `body` is the complete body for creates
/// (`plan` says `Label`), may be empty otherwise; `upstream` is asked only for `Resolve`.
pub fn apply(
    tenant: &Tenant,
    request: &ApiRequest,
    headers: &Headers<'_>,
    body: &[u8],
    upstream: &Upstream,
) -> Result<Forward, Refusal> {
    match plan(tenant, request) {
        Step::Forward => Ok(Forward::default()),
        Step::Refuse(refusal) => Err(refusal),
        Step::Label(kind) => {
            let labelled = label_create(kind, &tenant.owner, headers, body)?;
            if kind == Kind::Containers {
                check_create_references(tenant, headers, body, upstream)?;
            }
            Ok(Forward {
                body: Some(labelled),
                ..Forward::default()
            })
        }
        Step::Filter => {
            refuse_form_body(headers)?;
            let query = merge_owner_filter(tenant, &request.endpoint, &request.query)?;
            Ok(Forward {
                target: Some(format!(
                    "{}{}?{query}",
                    version_prefix(request),
                    request.path
                )),
                ..Forward::default()
            })
        }
        Step::ResolveQuery(kind, param) => {
            let (query, resolved) = resolve_query(tenant, request, kind, param, upstream)?;
            Ok(Forward {
                target: Some(format!(
                    "{}{}?{query}",
                    version_prefix(request),
                    request.path
                )),
                body: None,
                resolved: Some(resolved),
            })
        }
        Step::Connect(network) => connect(tenant, request, &network, headers, body, upstream),
        Step::Resolve(kind, reference) => {
            let resolved = resolve_owned(upstream, tenant, kind, &reference)?;
            let target = rewrite_target(request, &resolved).ok_or_else(|| {
                Refusal::bad_request(format!("cannot rewrite the path {}", request.path))
            })?;
            Ok(Forward {
                target: Some(target),
                body: None,
                resolved: Some(resolved),
            })
        }
    }
}

fn version_prefix(request: &ApiRequest) -> String {
    request
        .version
        .as_ref()
        .map(|v| format!("/v{v}"))
        .unwrap_or_default()
}

/// The query with `param`'s value resolved, checked and replaced by the full ID (the other
/// parameters kept byte for byte). `param` missing or given twice: 400.
fn resolve_query(
    tenant: &Tenant,
    request: &ApiRequest,
    kind: RefKind,
    param: &str,
    upstream: &Upstream,
) -> Result<(String, Resolved), Refusal> {
    let mut parts: Vec<String> = request.query.split('&').map(str::to_owned).collect();
    let mut found = None;
    for (n, part) in parts.iter().enumerate() {
        let pairs = parse_query(part).map_err(Refusal::bad_request)?;
        if let Some((_, value)) = pairs.into_iter().find(|(k, _)| k == param) {
            if found.is_some() {
                return Err(Refusal::bad_request(format!(
                    "the query parameter {param} is given more than once"
                )));
            }
            found = Some((n, value));
        }
    }
    let (n, reference) = found
        .ok_or_else(|| Refusal::bad_request(format!("the query parameter {param} is missing")))?;
    let resolved = resolve_owned(upstream, tenant, kind, &reference)?;
    parts[n] = format!("{param}={}", query_escape(&resolved.id));
    Ok((parts.join("&"), resolved))
}

/// Network connect/disconnect: the network in the path and the container in the body.
fn connect(
    tenant: &Tenant,
    request: &ApiRequest,
    network: &str,
    headers: &Headers<'_>,
    body: &[u8],
    upstream: &Upstream,
) -> Result<Forward, Refusal> {
    let mut forward = Forward::default();
    if tenant.owns(Kind::Networks) {
        let resolved = resolve_owned(upstream, tenant, RefKind::Network, network)?;
        forward.target = Some(rewrite_target(request, &resolved).ok_or_else(|| {
            Refusal::bad_request(format!("cannot rewrite the path {}", request.path))
        })?);
        forward.resolved = Some(resolved);
    }
    if tenant.owns(Kind::Containers) {
        let mut container_id = None;
        for reference in connect_references(headers, body)? {
            let resolved = resolve_owned(upstream, tenant, reference.kind, &reference.name)?;
            container_id.get_or_insert(resolved.id);
        }
        let id = container_id.ok_or_else(|| Refusal::bad_request("the body names no Container"))?;
        forward.body = Some(connect_body_with_id(headers, body, &id)?);
    }
    Ok(forward)
}

/// Every container, volume and network a container create names must be the tenant's (or a
/// built-in network, or a volume dockerd will create).
fn check_create_references(
    tenant: &Tenant,
    headers: &Headers<'_>,
    body: &[u8],
    upstream: &Upstream,
) -> Result<(), Refusal> {
    for reference in create_references(headers, body)? {
        if reference.created_if_missing
            && resolve(upstream, reference.kind, &reference.name)?.is_none()
        {
            continue;
        }
        resolve_owned(upstream, tenant, reference.kind, &reference.name).map_err(
            |mut refusal| {
                refusal.reason = format!("{} ({})", refusal.reason, reference.field);
                refusal
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::classify;

    fn step(owns: &[Kind], method: &str, target: &str) -> Step {
        let tenant = Tenant {
            owner: "team-a".into(),
            owns: owns.to_vec(),
        };
        plan(&tenant, &classify(method, target).unwrap())
    }

    const ALL: &[Kind] = &[Kind::Containers, Kind::Volumes, Kind::Networks, Kind::Exec];

    #[test]
    fn every_endpoint_naming_an_owned_object_is_resolved() {
        let c = |r: &str| Step::Resolve(RefKind::Container, r.into());
        for (method, target, expected) in [
            ("GET", "/v1.41/containers/web/json", c("web")),
            ("GET", "/v1.41/containers/web/logs?follow=1", c("web")),
            ("POST", "/v1.41/containers/abc/stop", c("abc")),
            ("DELETE", "/v1.41/containers/abc?force=1", c("abc")),
            ("POST", "/v1.41/containers/abc/attach?stream=1", c("abc")),
            ("GET", "/v1.41/containers/abc/archive?path=/", c("abc")),
            ("PUT", "/v1.41/containers/abc/archive?path=/", c("abc")),
            ("POST", "/v1.41/containers/abc/rename?name=x", c("abc")),
            ("POST", "/v1.41/containers/p/alias/exec", c("p/alias")),
            (
                "POST",
                "/v1.41/exec/e1/start",
                Step::Resolve(RefKind::Exec, "e1".into()),
            ),
            (
                "GET",
                "/v1.41/exec/e1/json",
                Step::Resolve(RefKind::Exec, "e1".into()),
            ),
            (
                "DELETE",
                "/v1.41/volumes/v",
                Step::Resolve(RefKind::Volume, "v".into()),
            ),
            (
                "GET",
                "/v1.41/networks/n",
                Step::Resolve(RefKind::Network, "n".into()),
            ),
            (
                "POST",
                "/v1.41/containers/create",
                Step::Label(Kind::Containers),
            ),
            ("POST", "/v1.41/volumes/create", Step::Label(Kind::Volumes)),
            (
                "POST",
                "/v1.41/networks/create",
                Step::Label(Kind::Networks),
            ),
            ("GET", "/v1.41/containers/json", Step::Filter),
            ("POST", "/v1.41/containers/prune", Step::Filter),
            ("GET", "/v1.41/volumes", Step::Filter),
            ("POST", "/v1.41/networks/prune", Step::Filter),
            ("GET", "/v1.41/events", Step::Filter),
            ("GET", "/v1.41/images/json", Step::Forward),
            ("POST", "/v1.41/build", Step::Forward),
        ] {
            assert_eq!(step(ALL, method, target), expected, "{method} {target}");
        }
        let Step::Refuse(r) = step(ALL, "GET", "/v1.41/system/df") else {
            panic!("system df is not refused");
        };
        assert_eq!(r.status, 403);
        assert_eq!(
            step(ALL, "POST", "/v1.41/commit?container=abc"),
            Step::ResolveQuery(RefKind::Container, "container")
        );
        assert_eq!(
            step(ALL, "POST", "/v1.41/networks/n/disconnect"),
            Step::Connect("n".into())
        );
        let tenant = Tenant {
            owner: "t".into(),
            owns: ALL.to_vec(),
        };
        for (target, body) in [
            ("/v1.41/containers/create", true),
            ("/v1.41/networks/n/connect", true),
            ("/v1.41/containers/c/stop", false),
            ("/v1.41/commit?container=c", false),
        ] {
            assert_eq!(
                needs_body(&tenant, &classify("POST", target).unwrap()),
                body,
                "{target}"
            );
        }
    }

    #[test]
    fn only_owned_kinds_are_touched() {
        let containers = &[Kind::Containers];
        assert_eq!(step(containers, "GET", "/volumes"), Step::Forward);
        assert_eq!(step(containers, "POST", "/volumes/create"), Step::Forward);
        assert_eq!(step(containers, "POST", "/exec/e/start"), Step::Forward);
        assert_eq!(step(containers, "GET", "/networks/n"), Step::Forward);
        assert_eq!(
            step(&[Kind::Volumes], "GET", "/containers/c/json"),
            Step::Forward
        );
        assert_eq!(step(&[Kind::Volumes], "GET", "/events"), Step::Filter);
    }
}
