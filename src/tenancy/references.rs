//! Objects a container create names in its body: another tenant's container must not be linked
//! to (a legacy link copies its environment), shared from (`VolumesFrom`) or joined
//! (`container:<id>` namespaces), and another tenant's volume or network must not be mounted
//! or joined. [`create_references`] lists them; `plan::apply` resolves each through dockerd and
//! refuses a create that names anything the tenant does not own, with the 404 dockerd gives for
//! a missing object of that kind.
//!
//! Two exceptions, both dockerd's semantics: the built-in networks (`default`, `bridge`,
//! `host`, `none`) belong to nobody and may be named (host namespaces are the policy's
//! business), and a named volume that does not exist yet may be named, because dockerd creates
//! it on the spot (unowned: the tenant will not see it in `volume ls`).
//!
//! Network connect and disconnect name a container in their body (`Container`, and links in
//! `EndpointConfig.Links`): [`connect_references`] lists them, and [`connect_body_with_id`]
//! writes the body back with the container's full ID, so the check and the action cannot part.
//!
//! The body has already passed the policy's strict reading (tenant roles are never `all`
//! roles); its members are read here with the same accessors, so a wrong type is a 400.

use super::resolve::RefKind;
use super::Refusal;
use crate::policy::body::{parse_body, Finding, Headers};
use crate::policy::docker_json::{
    map_member, member, str_list, str_member, struct_members, CONFIG_FIELDS, CREATE_FIELDS,
    ENDPOINT_SETTINGS_FIELDS, HOST_CONFIG_FIELDS, MOUNT_FIELDS, NETWORKING_CONFIG_FIELDS,
    NETWORK_CONNECT_FIELDS,
};
use crate::policy::json::{number_literals, Json};

/// One object the body names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub kind: RefKind,
    /// As written in the body (for a link, the container part of `name:alias`).
    pub name: String,
    /// Where, e.g. `HostConfig.Links`.
    pub field: String,
    /// dockerd creates it when it does not exist (named volumes).
    pub created_if_missing: bool,
}

/// Networks every container may join by name; nobody owns them.
const BUILTIN_NETWORKS: &[&str] = &["", "default", "bridge", "host", "none"];

/// The containers, volumes and networks a container create body names.
pub fn create_references(headers: &Headers<'_>, body: &[u8]) -> Result<Vec<Reference>, Refusal> {
    let value = parse_body(headers, body)?;
    let known = [CONFIG_FIELDS, CREATE_FIELDS, HOST_CONFIG_FIELDS].concat();
    let top = struct_members(&value, "", &known)?;
    let mut refs = Vec::new();
    if let Some(host_config) = member(top, "HostConfig") {
        let hc = struct_members(host_config, "HostConfig", HOST_CONFIG_FIELDS)?;
        host_config_references(hc, &mut refs)?;
    }
    if let Some(networking) = member(top, "NetworkingConfig") {
        let nc = struct_members(networking, "NetworkingConfig", NETWORKING_CONFIG_FIELDS)?;
        let endpoints = map_member(nc, "EndpointsConfig", "NetworkingConfig")?;
        for (network, settings) in endpoints {
            let field = format!("NetworkingConfig.EndpointsConfig.{network}");
            if !BUILTIN_NETWORKS.contains(&network.as_str()) {
                refs.push(reference(RefKind::Network, network, &field));
            }
            let es = struct_members(settings, &field, ENDPOINT_SETTINGS_FIELDS)?;
            for link in str_list(es, "Links", &field)? {
                refs.push(link_reference(link, &format!("{field}.Links")));
            }
        }
    }
    Ok(refs)
}

fn host_config_references(hc: &[(String, Json)], refs: &mut Vec<Reference>) -> Result<(), Finding> {
    let p = "HostConfig";
    for link in str_list(hc, "Links", p)? {
        refs.push(link_reference(link, "HostConfig.Links"));
    }
    for from in str_list(hc, "VolumesFrom", p)? {
        let container = from.split(':').next().unwrap_or("");
        refs.push(reference(
            RefKind::Container,
            container,
            "HostConfig.VolumesFrom",
        ));
    }
    for mode in ["NetworkMode", "PidMode", "IpcMode"] {
        let value = str_member(hc, mode, p)?;
        let field = format!("HostConfig.{mode}");
        if let Some(container) = value.strip_prefix("container:") {
            refs.push(reference(RefKind::Container, container, &field));
        } else if mode == "NetworkMode" && !BUILTIN_NETWORKS.contains(&value) {
            refs.push(reference(RefKind::Network, value, &field));
        }
    }
    for bind in str_list(hc, "Binds", p)? {
        let source = bind.split(':').next().unwrap_or("");
        // Only `source:target...` names a volume; a source starting with `/` is a host path.
        if bind.contains(':') && !source.is_empty() && !source.starts_with('/') {
            refs.push(Reference {
                created_if_missing: true,
                ..reference(RefKind::Volume, source, "HostConfig.Binds")
            });
        }
    }
    if let Some(Json::Array(mounts)) = member(hc, "Mounts") {
        for (n, mount) in mounts.iter().enumerate() {
            let path = format!("HostConfig.Mounts[{n}]");
            let m = struct_members(mount, &path, MOUNT_FIELDS)?;
            let source = str_member(m, "Source", &path)?;
            if str_member(m, "Type", &path)? == "volume" && !source.is_empty() {
                refs.push(Reference {
                    created_if_missing: true,
                    ..reference(RefKind::Volume, source, &format!("{path}.Source"))
                });
            }
        }
    }
    Ok(())
}

/// The containers a network connect or disconnect body names: `Container` first.
pub fn connect_references(headers: &Headers<'_>, body: &[u8]) -> Result<Vec<Reference>, Refusal> {
    let value = parse_body(headers, body)?;
    let members = struct_members(&value, "", NETWORK_CONNECT_FIELDS)?;
    let container = str_member(members, "Container", "")?;
    let mut refs = vec![reference(RefKind::Container, container, "Container")];
    if let Some(settings) = member(members, "EndpointConfig") {
        let es = struct_members(settings, "EndpointConfig", ENDPOINT_SETTINGS_FIELDS)?;
        for link in str_list(es, "Links", "EndpointConfig")? {
            refs.push(link_reference(link, "EndpointConfig.Links"));
        }
    }
    Ok(refs)
}

/// The connect/disconnect body with `Container` set to the full ID (everything else kept;
/// numbers must keep their spelling).
pub fn connect_body_with_id(
    headers: &Headers<'_>,
    body: &[u8],
    container_id: &str,
) -> Result<Vec<u8>, Refusal> {
    let value = parse_body(headers, body)?;
    let mut members = struct_members(&value, "", NETWORK_CONNECT_FIELDS)?.to_vec();
    match members.iter_mut().find(|(k, _)| k == "Container") {
        Some((_, v)) => *v = Json::String(container_id.to_string()),
        None => return Err(Refusal::bad_request("the body names no Container")),
    }
    let out = Json::Object(members).to_bytes();
    if number_literals(body) != number_literals(&out) {
        return Err(Refusal::bad_request(
            "a number in the body is not in canonical form (e.g. -0, 1e2)",
        ));
    }
    Ok(out)
}

/// `name:alias` or `name`: the container is the part before the first `:`.
fn link_reference(link: &str, field: &str) -> Reference {
    let container = link.split(':').next().unwrap_or("");
    reference(RefKind::Container, container, field)
}

fn reference(kind: RefKind, name: &str, field: &str) -> Reference {
    Reference {
        kind,
        name: name.to_string(),
        field: field.to_string(),
        created_if_missing: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &[(&str, &[u8])] = &[("Content-Type", b"application/json")];

    fn refs(body: &str) -> Vec<(RefKind, String, String, bool)> {
        create_references(JSON, body.as_bytes())
            .unwrap()
            .into_iter()
            .map(|r| (r.kind, r.name, r.field, r.created_if_missing))
            .collect()
    }

    #[test]
    fn every_named_object_is_found() {
        let body = r#"{"Image":"b","HostConfig":{
            "Links":["db:alias","/cache"],
            "VolumesFrom":["data:ro"],
            "NetworkMode":"team-net",
            "PidMode":"container:abc",
            "IpcMode":"shareable",
            "Binds":["vol1:/v","/srv/x:/x","anon"],
            "Mounts":[{"Type":"volume","Source":"vol2","Target":"/w"},{"Type":"volume","Target":"/anon"},{"Type":"tmpfs","Target":"/t"}]},
          "NetworkingConfig":{"EndpointsConfig":{"bridge":{},"n2":{"Links":["web:w"]}}}}"#;
        let c = RefKind::Container;
        let s = |x: &str| x.to_string();
        assert_eq!(
            refs(body),
            [
                (c, s("db"), s("HostConfig.Links"), false),
                (c, s("/cache"), s("HostConfig.Links"), false),
                (c, s("data"), s("HostConfig.VolumesFrom"), false),
                (
                    RefKind::Network,
                    s("team-net"),
                    s("HostConfig.NetworkMode"),
                    false
                ),
                (c, s("abc"), s("HostConfig.PidMode"), false),
                (RefKind::Volume, s("vol1"), s("HostConfig.Binds"), true),
                (
                    RefKind::Volume,
                    s("vol2"),
                    s("HostConfig.Mounts[0].Source"),
                    true
                ),
                (
                    RefKind::Network,
                    s("n2"),
                    s("NetworkingConfig.EndpointsConfig.n2"),
                    false
                ),
                (
                    c,
                    s("web"),
                    s("NetworkingConfig.EndpointsConfig.n2.Links"),
                    false
                ),
            ]
        );
    }

    #[test]
    fn connect_bodies_name_their_container_and_get_its_full_id() {
        let body = br#"{"Container":"web","EndpointConfig":{"Aliases":["w"],"Links":["db:d"],"IPAMConfig":{"IPv4Address":""}},"Force":false}"#;
        let found: Vec<(String, String)> = connect_references(JSON, body)
            .unwrap()
            .into_iter()
            .map(|r| (r.name, r.field))
            .collect();
        assert_eq!(
            found,
            [
                ("web".into(), "Container".into()),
                ("db".into(), "EndpointConfig.Links".into())
            ]
        );
        let out = connect_body_with_id(JSON, body, "abc123").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"Container":"abc123","EndpointConfig":{"Aliases":["w"],"Links":["db:d"],"IPAMConfig":{"IPv4Address":""}},"Force":false}"#
        );
        for bad in [
            &br#"{"container":"web"}"#[..],
            br#"{"Container":1}"#,
            br#"{}"#,
        ] {
            assert!(
                connect_body_with_id(JSON, bad, "x").is_err()
                    || connect_references(JSON, bad).is_err()
            );
        }
    }

    #[test]
    fn what_the_docker_cli_sends_for_a_plain_run_names_nothing() {
        let body = r#"{"Image":"busybox","Cmd":["sh"],"HostConfig":{"NetworkMode":"default","Binds":null,"Mounts":null},"NetworkingConfig":{"EndpointsConfig":{"default":{}}}}"#;
        assert!(refs(body).is_empty());
        assert_eq!(
            create_references(JSON, br#"{"HostConfig":{"Links":"db"}}"#)
                .unwrap_err()
                .status,
            400
        );
    }
}
