//! Inspection of what a request asks dockerd to do to the host, apart from container create
//! (in `container`): exec create, volume create, network connect and the query (and content
//! type) of `POST /build`; and what every inspection shares: the [`Finding`] it reports, the content-type
//! rule and the strict body parse.
//!
//! dockerd decodes bodies with Go's `encoding/json`: keys match struct fields case-insensitively
//! with Unicode folding, duplicates merge, unknown keys are ignored, and dockerd <= 26 (Debian's
//! 20.10 included) takes top-level HostConfig fields of a create when there is no `HostConfig`
//! key. Rather than re-implementing all of that, the gate is stricter than dockerd where no real
//! client goes, and refuses (400):
//! - a key that is not spelled exactly as dockerd's field but folds to it, and any other
//!   non-ASCII key in an inspected object (`docker_json`);
//! - duplicate keys anywhere in the body and trailing data (`json`);
//! - HostConfig fields at the top level of a create (`container`);
//! - a body whose content type is not `application/json` (parameters such as `charset` are
//!   fine), and form or multipart bodies on `/build` (their values override the query);
//! - values of the wrong JSON type in the fields it checks (dockerd would refuse them too).

use super::container::{check_endpoint_settings, check_user};
use super::docker_json::{
    bool_member, map_member, member, str_member, struct_members, wrong_type, EXEC_FIELDS,
    NETWORK_CONNECT_FIELDS, VOLUME_CREATE_FIELDS,
};
use super::json::Json;
use super::Role;
use crate::api::parse_query;

/// Why an inspected request is not forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The role may not do this (403). `rule` names the policy setting, `field` the JSON
    /// field or query parameter, `what` completes "CN=x (role y) ...".
    Denied {
        rule: String,
        field: String,
        what: String,
    },
    /// The request could be read differently by dockerd than by the gate (400).
    Refused {
        field: Option<String>,
        reason: String,
    },
}

pub(super) fn refused(field: Option<&str>, reason: impl Into<String>) -> Finding {
    Finding::Refused {
        field: field.map(str::to_owned),
        reason: reason.into(),
    }
}

/// `field` rejected by `[role.NAME.containers] setting`.
pub(super) fn denied(role: &Role, setting: &str, field: &str, what: impl Into<String>) -> Finding {
    Finding::Denied {
        rule: format!("[role.{}.containers] {setting}", role.name),
        field: field.to_owned(),
        what: what.into(),
    }
}

/// A host-reaching field the policy file cannot allow for an inspected role.
pub(super) fn denied_always(role: &Role, field: &str, why: &str) -> Finding {
    Finding::Denied {
        rule: format!(
            "{field} is allowed only for roles with allow = [\"all\"] (role {} is inspected)",
            role.name
        ),
        field: field.to_owned(),
        what: format!("may not set {field} ({why})"),
    }
}

/// Request headers as (name, value) pairs, names in any case.
pub type Headers<'a> = [(&'a str, &'a [u8])];

pub(super) fn bind_denied(role: &Role, field: &str, host_path: &str) -> Finding {
    denied(
        role,
        &format!("bind_mounts = {:?}", role.limits.bind_mounts),
        field,
        format!("may not mount the host path {host_path:?}"),
    )
}

/// The body must be declared as JSON (`application/json`, parameters allowed), once.
fn require_json_content_type(headers: &Headers<'_>) -> Result<(), Finding> {
    match content_types(headers).as_slice() {
        [one] if media_type(one) == "application/json" => Ok(()),
        [] => Err(refused(
            None,
            "a JSON body needs Content-Type: application/json",
        )),
        [one] => Err(refused(
            None,
            format!(
                "Content-Type {:?} is not application/json",
                String::from_utf8_lossy(one)
            ),
        )),
        _ => Err(refused(None, "more than one Content-Type header")),
    }
}

fn content_types<'a>(headers: &Headers<'a>) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| *value)
        .collect()
}

/// `application/json; charset=utf-8` -> `application/json` (lower case, like Go's mime package).
fn media_type(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    text.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub(crate) fn parse_body(headers: &Headers<'_>, body: &[u8]) -> Result<Json, Finding> {
    require_json_content_type(headers)?;
    let value = Json::parse(body).map_err(|e| refused(None, format!("body: {e}")))?;
    if value.as_object().is_none() {
        return Err(refused(
            None,
            format!("the body must be a JSON object, not {}", value.kind()),
        ));
    }
    Ok(value)
}

/// `POST /containers/{id}/exec`.
pub fn exec_create(role: &Role, headers: &Headers<'_>, body: &[u8]) -> Result<(), Finding> {
    let value = parse_body(headers, body)?;
    let exec = struct_members(&value, "", EXEC_FIELDS)?;
    if bool_member(exec, "Privileged", "")? && !role.limits.privileged {
        return Err(denied(
            role,
            "privileged = false",
            "Privileged",
            "may not run privileged exec processes",
        ));
    }
    if !role.limits.run_as_root {
        check_user(role, str_member(exec, "User", "")?, "User")?;
    }
    Ok(())
}

/// `POST /containers/{id}/start`: dockerd applies a body as the container's HostConfig for API
/// versions below 1.24 (and refuses it for newer ones). No client sends one any more.
pub fn container_start(body: &[u8]) -> Result<(), Finding> {
    if body.is_empty() {
        return Ok(());
    }
    Err(refused(
        None,
        "a body on container start is refused (dockerd applies it as the HostConfig for API versions below 1.24)",
    ))
}

/// `POST /volumes/create`: a local volume with bind options is a bind mount made later by
/// any plain volume mount.
pub fn volume_create(role: &Role, headers: &Headers<'_>, body: &[u8]) -> Result<(), Finding> {
    let value = parse_body(headers, body)?;
    let volume = struct_members(&value, "", VOLUME_CREATE_FIELDS)?;
    let driver = str_member(volume, "Driver", "")?;
    let options = map_member(volume, "DriverOpts", "")?;
    check_volume_driver(role, driver, options, "DriverOpts")
}

/// `POST /networks/{id}/connect`: the container's endpoint on the network gets the same check
/// as an entry of a create's `NetworkingConfig.EndpointsConfig` (dockerd decodes both into
/// `EndpointSettings`).
pub fn network_connect(role: &Role, headers: &Headers<'_>, body: &[u8]) -> Result<(), Finding> {
    let value = parse_body(headers, body)?;
    let connect = struct_members(&value, "", NETWORK_CONNECT_FIELDS)?;
    match member(connect, "EndpointConfig") {
        Some(settings) => check_endpoint_settings(
            role,
            settings,
            "EndpointConfig",
            "EndpointConfig.DriverOpts",
        ),
        None => Ok(()),
    }
}

/// The `local` driver mounts `device` with `type` and `o`: a bind (`o=bind`) of a host path,
/// a block device or a network file system. Only tmpfs and binds inside `bind_mounts` pass;
/// other drivers are plugins and are denied when they get options or are named at all.
pub(super) fn check_volume_driver(
    role: &Role,
    driver: &str,
    options: &[(String, Json)],
    path: &str,
) -> Result<(), Finding> {
    let setting = format!("bind_mounts = {:?}", role.limits.bind_mounts);
    if !driver.is_empty() && driver != "local" {
        return Err(denied(
            role,
            &setting,
            &format!("{path}.Driver"),
            format!("may not use the volume driver {driver:?} (only local)"),
        ));
    }
    if options.is_empty() {
        return Ok(());
    }
    let option = |key: &str| -> Result<&str, Finding> {
        match options.iter().find(|(k, _)| k == key).map(|(_, v)| v) {
            None => Ok(""),
            Some(Json::String(s)) => Ok(s),
            Some(other) => Err(wrong_type(path, key, "a string", other)),
        }
    };
    let (kind, flags, device) = (option("type")?, option("o")?, option("device")?);
    let binds = flags.split(',').any(|f| f == "bind" || f == "rbind");
    if binds {
        if role.limits.bind_allowed(device) {
            return Ok(());
        }
        return Err(bind_denied(role, &format!("{path}.device"), device));
    }
    if kind == "tmpfs" {
        return Ok(());
    }
    Err(denied(
        role,
        &setting,
        path,
        format!("may not create volumes that mount {device:?} (type {kind:?}); only tmpfs and binds of allowed paths"),
    ))
}

/// `POST /build`: the classic builder reads its settings from the query, and from a form body
/// whose values override the query; BuildKit (`version=2`) needs the `buildkit` group.
pub fn build(
    role: &Role,
    buildkit_allowed: bool,
    query: &str,
    headers: &Headers<'_>,
) -> Result<(), Finding> {
    match content_types(headers).as_slice() {
        [] => {}
        [one] => {
            let media = media_type(one);
            if media == "application/x-www-form-urlencoded" || media.starts_with("multipart/") {
                return Err(refused(
                    None,
                    format!(
                        "{media} bodies on /build are refused (their values override the query)"
                    ),
                ));
            }
        }
        _ => return Err(refused(None, "more than one Content-Type header")),
    }
    let pairs = parse_query(query).map_err(|e| refused(None, e))?;
    let inspected = ["networkmode", "remote", "cgroupparent", "version"];
    for key in inspected {
        if pairs.iter().filter(|(k, _)| k == key).count() > 1 {
            return Err(refused(
                Some(key),
                format!("the query parameter {key} is given more than once"),
            ));
        }
    }
    let value = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    };
    if value("version") == "2" && !buildkit_allowed {
        return Err(Finding::Denied {
            rule: format!("[role.{}] allow has no \"buildkit\"", role.name),
            field: "version".into(),
            what: "may not build with BuildKit (version=2)".into(),
        });
    }
    let network = value("networkmode");
    if !["", "default", "none"].contains(&network) && !role.limits.host_namespaces {
        return Err(denied(
            role,
            "host_namespaces = false",
            "networkmode",
            format!("may not build with the network {network:?}"),
        ));
    }
    if !value("cgroupparent").is_empty() && !role.limits.host_namespaces {
        return Err(denied(
            role,
            "host_namespaces = false",
            "cgroupparent",
            "may not build in a host cgroup",
        ));
    }
    if !value("remote").is_empty() && !role.limits.build_remote {
        return Err(denied(
            role,
            "build_remote = false",
            "remote",
            "may not make dockerd fetch a remote build context (remote)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
