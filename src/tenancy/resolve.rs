//! References resolved through dockerd, so that the gate checks exactly the object dockerd
//! would act on: a container by full ID, name (with or without the leading `/`), legacy link
//! alias (`parent/alias`) or unique ID prefix (`GET /containers/{ref}/json`); an exec by ID
//! (`GET /exec/{id}/json`, owned through its `ContainerID`); a volume by name; a network by
//! name, ID or ID prefix. The owner is the object's `dockgate.owner` label.
//!
//! A reference that does not exist, is not the tenant's, or is an ID prefix dockerd finds
//! ambiguous gets the 404 dockerd itself gives for a missing object, with the reference as the
//! client wrote it, so a tenant cannot tell another tenant's object from nothing. The request
//! is then forwarded with the **full ID** in its path ([`rewrite_target`]): a rename, or a
//! remove and recreate under the same name between the check and the action, cannot redirect
//! it (container, exec and network IDs are never reused; a volume's name is its ID).

use serde_json::Value;

use super::docker_get::{self, Answer};
use super::owner::Tenant;
use super::{Refusal, OWNER_LABEL};
use crate::api::ApiRequest;
use crate::upstream::Upstream;

/// What kind of object a reference names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    Container,
    Exec,
    Volume,
    Network,
}

impl RefKind {
    /// The path prefix of the routes that name this kind (after the version prefix).
    pub fn route_prefix(self) -> &'static str {
        match self {
            RefKind::Container => "/containers/",
            RefKind::Exec => "/exec/",
            RefKind::Volume => "/volumes/",
            RefKind::Network => "/networks/",
        }
    }
}

/// A reference dockerd resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub kind: RefKind,
    /// As the client wrote it (decoded).
    pub reference: String,
    /// The full ID (a volume's name).
    pub id: String,
    /// The exec's container, for execs.
    pub container: Option<String>,
    /// The `dockgate.owner` label, `None` when the object has none.
    pub owner: Option<String>,
}

/// dockerd's own 404 message for a missing object (20.10 to 29).
pub fn not_found_message(kind: RefKind, reference: &str) -> String {
    match kind {
        RefKind::Container => format!("No such container: {reference}"),
        RefKind::Exec => format!("No such exec instance: {reference}"),
        RefKind::Volume => format!("get {reference}: no such volume"),
        RefKind::Network => format!("network {reference} not found"),
    }
}

/// Asks dockerd what `reference` names. `Ok(None)`: dockerd knows no such object (or finds an
/// ID prefix ambiguous).
pub fn resolve(
    upstream: &Upstream,
    kind: RefKind,
    reference: &str,
) -> Result<Option<Resolved>, Refusal> {
    let lookup = match kind {
        // dockerd adds the leading `/` of names itself; a `//` path would be redirected.
        RefKind::Container => reference.strip_prefix('/').unwrap_or(reference),
        _ => reference,
    };
    if lookup.is_empty() {
        return Ok(None);
    }
    let path = match kind {
        RefKind::Container => format!("/containers/{}/json", path_escape(lookup)),
        RefKind::Exec => format!("/exec/{}/json", path_escape(lookup)),
        RefKind::Volume => format!("/volumes/{}", path_escape(lookup)),
        RefKind::Network => format!("/networks/{}", path_escape(lookup)),
    };
    let Some(object) = inspect(upstream, &path)? else {
        return Ok(None);
    };
    let field = |name: &str| object[name].as_str().map(str::to_owned);
    let (id, container, owner) = match kind {
        RefKind::Container => (field("Id"), None, owner_of(&object["Config"]["Labels"])),
        RefKind::Exec => {
            let Some(container_id) = field("ContainerID") else {
                return Err(Refusal::upstream("exec inspect has no ContainerID"));
            };
            // The exec's owner is its container's; a container removed since is not found.
            let Some(container) = resolve(upstream, RefKind::Container, &container_id)? else {
                return Ok(None);
            };
            (field("ID"), Some(container.id), container.owner)
        }
        RefKind::Volume => (field("Name"), None, owner_of(&object["Labels"])),
        RefKind::Network => (field("Id"), None, owner_of(&object["Labels"])),
    };
    let id = id.ok_or_else(|| Refusal::upstream(format!("the answer to GET {path} has no ID")))?;
    Ok(Some(Resolved {
        kind,
        reference: reference.to_string(),
        id,
        container,
        owner,
    }))
}

/// Resolves `reference` and checks that `tenant` owns it; anything else is dockerd's 404.
///
/// dockerd looks a container or network up by full ID, then by name, then by ID prefix, across
/// every tenant: another tenant's container named `3f9a` would hide a tenant's own container
/// whose ID starts with `3f9a`, and another tenant's ID sharing a prefix makes it ambiguous.
/// Either way the answer would tell the tenant that someone else's object exists. So when
/// dockerd's answer is not the tenant's and the reference looks like an ID prefix, it is
/// looked up among the tenant's own objects only (dockerd lists them, filtered by the label).
pub fn resolve_owned(
    upstream: &Upstream,
    tenant: &Tenant,
    kind: RefKind,
    reference: &str,
) -> Result<Resolved, Refusal> {
    let missing = |why: String| Refusal::not_found(not_found_message(kind, reference), why);
    let found = resolve(upstream, kind, reference)?;
    if let Some(found) = &found {
        if found.owner.as_deref() == Some(tenant.owner.as_str()) {
            return Ok(found.clone());
        }
    }
    if let Some(own) = own_by_id_prefix(upstream, tenant, kind, reference)? {
        return Ok(own);
    }
    Err(missing(match found {
        None => format!("{kind:?} {reference:?} not found"),
        Some(found) => format!(
            "{kind:?} {reference:?} is {} owned by {}, not {}",
            found.id,
            found.owner.as_deref().unwrap_or("nobody"),
            tenant.owner
        ),
    }))
}

/// The tenant's only container or network whose ID starts with `prefix` (hex), if exactly one.
fn own_by_id_prefix(
    upstream: &Upstream,
    tenant: &Tenant,
    kind: RefKind,
    prefix: &str,
) -> Result<Option<Resolved>, Refusal> {
    let is_hex_prefix = !prefix.is_empty()
        && prefix.len() < 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let list = match kind {
        RefKind::Container => "/containers/json?all=1&filters=",
        RefKind::Network => "/networks?filters=",
        RefKind::Exec | RefKind::Volume => return Ok(None),
    };
    if !is_hex_prefix {
        return Ok(None);
    }
    let filter = serde_json::json!({ "label": [format!("{OWNER_LABEL}={}", tenant.owner)] });
    let path = format!(
        "{list}{}",
        super::filters::query_escape(&filter.to_string())
    );
    let Some(Value::Array(own)) = inspect(upstream, &path)? else {
        return Ok(None);
    };
    let ids: Vec<&str> = own
        .iter()
        .filter(|object| owner_of(&object["Labels"]).as_deref() == Some(tenant.owner.as_str()))
        .filter_map(|object| object["Id"].as_str())
        .filter(|id| id.starts_with(prefix))
        .collect();
    let [id] = ids.as_slice() else {
        return Ok(None);
    };
    Ok(Some(Resolved {
        kind,
        reference: prefix.to_string(),
        id: id.to_string(),
        container: None,
        owner: Some(tenant.owner.clone()),
    }))
}

/// The request target with the reference replaced by the full ID: `/v1.41/containers/web/stop
/// ?t=1` -> `/v1.41/containers/<64 hex>/stop?t=1`. `None` when the path does not hold the
/// reference where `kind`'s routes put it (a mismatch between the classifier and the caller).
pub fn rewrite_target(request: &ApiRequest, resolved: &Resolved) -> Option<String> {
    let prefix = resolved.kind.route_prefix();
    let rest = request
        .path
        .strip_prefix(prefix)?
        .strip_prefix(resolved.reference.as_str())?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    let mut target = String::new();
    if let Some(version) = &request.version {
        target.push_str(&format!("/v{version}"));
    }
    target.push_str(prefix);
    target.push_str(&path_escape(&resolved.id));
    target.push_str(&path_escape(rest));
    if !request.query.is_empty() {
        target.push('?');
        target.push_str(&request.query);
    }
    Some(target)
}

/// The object dockerd describes at `path`, `None` on 404 (and on an ambiguous ID prefix,
/// which dockerd answers with 400 or 500 depending on the version; telling it apart would let
/// a tenant learn that another tenant's IDs share a prefix).
fn inspect(upstream: &Upstream, path: &str) -> Result<Option<Value>, Refusal> {
    let Answer { status, body } = docker_get::get(upstream, path)
        .map_err(|e| Refusal::upstream(format!("GET {path}: {e}")))?;
    let text = String::from_utf8_lossy(&body);
    match status {
        200 => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| Refusal::upstream(format!("GET {path}: {e}"))),
        404 => Ok(None),
        _ if text.to_ascii_lowercase().contains("multiple ids found")
            || text.contains("ambiguous") =>
        {
            Ok(None)
        }
        _ => Err(Refusal::upstream(format!(
            "GET {path}: {status} {}",
            text.trim()
        ))),
    }
}

fn owner_of(labels: &Value) -> Option<String> {
    labels[OWNER_LABEL].as_str().map(str::to_owned)
}

/// Percent-encodes a path piece: RFC 3986 unreserved characters and `/` stay.
fn path_escape(text: &str) -> String {
    super::filters::percent_escape(text, b"/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::classify;

    fn resolved(kind: RefKind, reference: &str, id: &str) -> Resolved {
        Resolved {
            kind,
            reference: reference.into(),
            id: id.into(),
            container: None,
            owner: Some("team-a".into()),
        }
    }

    #[test]
    fn the_reference_is_replaced_by_the_full_id() {
        let id = "a".repeat(64);
        for (target, kind, reference, expected) in [
            (
                "/v1.41/containers/web/stop?t=1",
                RefKind::Container,
                "web",
                format!("/v1.41/containers/{id}/stop?t=1"),
            ),
            (
                "/containers/parent/alias/json",
                RefKind::Container,
                "parent/alias",
                format!("/containers/{id}/json"),
            ),
            (
                "/v1.41/containers/%77eb",
                RefKind::Container,
                "web",
                format!("/v1.41/containers/{id}"),
            ),
            (
                "/v1.41/containers/abc/attach/ws?stream=1",
                RefKind::Container,
                "abc",
                format!("/v1.41/containers/{id}/attach/ws?stream=1"),
            ),
            (
                "/v1.41/exec/abc/start",
                RefKind::Exec,
                "abc",
                format!("/v1.41/exec/{id}/start"),
            ),
            (
                "/v1.41/volumes/data",
                RefKind::Volume,
                "data",
                format!("/v1.41/volumes/{id}"),
            ),
            (
                "/v1.41/networks/net1/connect",
                RefKind::Network,
                "net1",
                format!("/v1.41/networks/{id}/connect"),
            ),
        ] {
            let request = classify("POST", target).unwrap();
            let r = resolved(kind, reference, &id);
            assert_eq!(
                rewrite_target(&request, &r).as_deref(),
                Some(expected.as_str()),
                "{target}"
            );
        }
        // A reference that is not where the route puts it is not rewritten.
        let request = classify("GET", "/v1.41/containers/webapp/json").unwrap();
        assert_eq!(
            rewrite_target(&request, &resolved(RefKind::Container, "web", &id)),
            None
        );
        assert_eq!(
            rewrite_target(&request, &resolved(RefKind::Volume, "webapp", &id)),
            None
        );
    }

    #[test]
    fn missing_and_foreign_objects_get_dockerds_message() {
        assert_eq!(
            not_found_message(RefKind::Container, "web"),
            "No such container: web"
        );
        assert_eq!(
            not_found_message(RefKind::Volume, "v"),
            "get v: no such volume"
        );
        let r = Refusal::not_found(not_found_message(RefKind::Network, "n"), "why");
        assert_eq!(r.body(), "{\"message\":\"network n not found\"}\n");
        assert_eq!(r.status, 404);
    }

    #[test]
    fn references_are_escaped_in_the_lookup_path() {
        assert_eq!(path_escape("parent/alias"), "parent/alias");
        assert_eq!(path_escape("a b?c#%"), "a%20b%3Fc%23%25");
    }
}
