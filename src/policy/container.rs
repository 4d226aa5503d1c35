//! Container create (`POST /containers/create`): what the body asks of the host, checked
//! against the role's `[role.X.containers]`. Runs after the strict reading of `docker_json`, so
//! every key here is spelled exactly as dockerd's field.
//!
//! Fields the file format has no switch for are denied to every inspected role (only a role
//! with `allow = ["all"]`, never inspected, can use them); [`HOST_FIELDS_WITHOUT_SWITCH`] lists
//! each with its reason. `Sysctls` and `CgroupParent` count as host namespaces, `VolumesFrom`
//! needs `bind_mounts = ["/"]` (it copies another container's binds). `PortBindings`,
//! `Ulimits`, `OomScoreAdj` and resource limits are not restricted.

use super::body::{
    bind_denied, check_volume_driver, denied, denied_always, parse_body, refused, Finding, Headers,
};
use super::docker_json::*;
use super::json::Json;
use super::{normalise_capability, Role};

/// HostConfig fields that reach the host and that `[role.X.containers]` has no switch for,
/// with why each is denied to inspected roles. (Namespaces, devices, capabilities, security
/// options and mounts have switches; see the checks below.)
pub const HOST_FIELDS_WITHOUT_SWITCH: &[(&str, &str)] = &[
    (
        "HostConfig.Runtime",
        "another OCI runtime may run without confinement; only runc or empty",
    ),
    (
        "HostConfig.Annotations",
        "OCI annotations are interpreted by the runtime and its hooks",
    ),
    (
        "HostConfig.LogConfig",
        "log drivers other than json-file, local, journald and none send to network addresses",
    ),
    (
        "HostConfig.VolumeDriver",
        "a volume driver plugin decides what an anonymous volume mounts; only local or empty",
    ),
    (
        "NetworkingConfig.EndpointsConfig.DriverOpts",
        "endpoint driver options set host-side interface settings",
    ),
];

/// `POST /containers/create`.
pub fn container_create(role: &Role, headers: &Headers<'_>, body: &[u8]) -> Result<(), Finding> {
    let value = parse_body(headers, body)?;
    let all_known: Vec<&str> = CONFIG_FIELDS
        .iter()
        .chain(CREATE_FIELDS)
        .chain(HOST_CONFIG_FIELDS)
        .copied()
        .collect();
    let top = struct_members(&value, "", &all_known)?;
    if let Some((key, _)) = top
        .iter()
        .find(|(k, _)| HOST_CONFIG_FIELDS.contains(&k.as_str()))
    {
        return Err(refused(
            Some(key),
            format!("{key} belongs inside HostConfig (dockerd <= 26 honours it at the top level; send it in HostConfig)"),
        ));
    }
    let limits = &role.limits;
    check_image(role, str_member(top, "Image", "")?)?;
    if !limits.run_as_root {
        check_user(role, str_member(top, "User", "")?, "User")?;
    }
    if let Some(host_config) = member(top, "HostConfig") {
        let hc = struct_members(host_config, "HostConfig", HOST_CONFIG_FIELDS)?;
        check_host_config(role, hc)?;
    }
    if let Some(networking) = member(top, "NetworkingConfig") {
        let nc = struct_members(networking, "NetworkingConfig", NETWORKING_CONFIG_FIELDS)?;
        check_endpoints(role, map_member(nc, "EndpointsConfig", "NetworkingConfig")?)?;
    }
    Ok(())
}

fn check_image(role: &Role, image: &str) -> Result<(), Finding> {
    if role
        .limits
        .images
        .iter()
        .any(|p| super::identity::glob_match(p, image))
    {
        return Ok(());
    }
    Err(denied(
        role,
        &format!("images = {:?}", role.limits.images),
        "Image",
        format!("may not run the image {image:?}"),
    ))
}

/// `run_as_root = false`: the user must be given and must not be root (name or UID 0).
pub(super) fn check_user(role: &Role, user: &str, field: &str) -> Result<(), Finding> {
    let name = user.split(':').next().unwrap_or("");
    // Go's strconv.Atoi takes "+0", "-0" and "000" as UID 0 too.
    let is_root = name.is_empty() || name == "root" || name.parse::<i128>() == Ok(0);
    if !is_root {
        return Ok(());
    }
    let what = if user.is_empty() {
        format!("must set {field} to a user other than root (the image's default user may be root)")
    } else {
        format!("may not run as root ({field} {user:?})")
    };
    Err(denied(role, "run_as_root = false", field, what))
}

fn check_host_config(role: &Role, hc: &[(String, Json)]) -> Result<(), Finding> {
    let limits = &role.limits;
    let p = "HostConfig";
    if bool_member(hc, "Privileged", p)? && !limits.privileged {
        return Err(denied(
            role,
            "privileged = false",
            "HostConfig.Privileged",
            "may not create privileged containers",
        ));
    }
    check_namespaces(role, hc)?;
    check_devices(role, hc)?;
    check_capabilities(role, str_list(hc, "CapAdd", p)?, "HostConfig.CapAdd")?;
    check_security(role, hc)?;
    check_binds(role, str_list(hc, "Binds", p)?)?;
    check_mounts(role, hc)?;
    if !str_list(hc, "VolumesFrom", p)?.is_empty() && !limits.bind_allowed("/") {
        return Err(denied(
            role,
            &format!("bind_mounts = {:?}", limits.bind_mounts),
            "HostConfig.VolumesFrom",
            "may not use --volumes-from (it copies another container's mounts, binds included; only a role with bind_mounts = [\"/\"] may)",
        ));
    }
    check_fields_without_switch(role, hc)
}

/// `host_namespaces`: pid/ipc/uts/userns/cgroupns/network `host` or `container:<id>`, also
/// `Cgroup`, `CgroupParent` and `Sysctls` (host cgroup placement and kernel settings).
fn check_namespaces(role: &Role, hc: &[(String, Json)]) -> Result<(), Finding> {
    if role.limits.host_namespaces {
        return Ok(());
    }
    let p = "HostConfig";
    // The values that keep a private namespace; everything else joins the host's or
    // another container's.
    let private: &[(&str, &[&str])] = &[
        ("PidMode", &[""]),
        ("IpcMode", &["", "private", "shareable", "none"]),
        ("UTSMode", &[""]),
        ("UsernsMode", &[""]),
        ("CgroupnsMode", &["", "private"]),
        ("Cgroup", &[""]),
        ("CgroupParent", &[""]),
    ];
    for (key, allowed) in private {
        let value = str_member(hc, key, p)?;
        if !allowed.contains(&value) {
            return Err(denied(
                role,
                "host_namespaces = false",
                &format!("HostConfig.{key}"),
                format!("may not share host or container namespaces ({key} {value:?})"),
            ));
        }
    }
    let network = str_member(hc, "NetworkMode", p)?;
    if joins_foreign_network(network) {
        return Err(denied(
            role,
            "host_namespaces = false",
            "HostConfig.NetworkMode",
            format!("may not share host or container namespaces (NetworkMode {network:?})"),
        ));
    }
    if !map_member(hc, "Sysctls", p)?.is_empty() {
        return Err(denied(
            role,
            "host_namespaces = false",
            "HostConfig.Sysctls",
            "may not set kernel parameters (Sysctls)",
        ));
    }
    Ok(())
}

/// `host`, `container:<id>`, or a name of hex digits only, which dockerd may resolve as an ID
/// prefix of another network, the host network included (dockerd 20.10 then lists the
/// container on the host network, although it still gets a private namespace; refusing such
/// names is cheaper than knowing what every version does with them).
fn joins_foreign_network(mode: &str) -> bool {
    mode == "host"
        || mode.starts_with("container:")
        || (!mode.is_empty() && mode.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check_endpoints(role: &Role, endpoints: &[(String, Json)]) -> Result<(), Finding> {
    for (network, settings) in endpoints {
        let path = format!("NetworkingConfig.EndpointsConfig.{network}");
        if !role.limits.host_namespaces && joins_foreign_network(network) {
            return Err(denied(
                role,
                "host_namespaces = false",
                &path,
                format!("may not join the network {network:?} (host, container or ID prefix)"),
            ));
        }
        check_endpoint_settings(
            role,
            settings,
            &path,
            "NetworkingConfig.EndpointsConfig.DriverOpts",
        )?;
    }
    Ok(())
}

/// The settings of one endpoint (`settings` at `path`): a create's
/// `NetworkingConfig.EndpointsConfig.NAME`, or a network connect's `EndpointConfig`. Driver
/// options are denied to every inspected role, named `driver_opts_field` in the denial.
pub(super) fn check_endpoint_settings(
    role: &Role,
    settings: &Json,
    path: &str,
    driver_opts_field: &str,
) -> Result<(), Finding> {
    let es = struct_members(settings, path, ENDPOINT_SETTINGS_FIELDS)?;
    if !map_member(es, "DriverOpts", path)?.is_empty() {
        return Err(denied_always(
            role,
            driver_opts_field,
            "endpoint driver options set host-side interface settings",
        ));
    }
    Ok(())
}

fn check_devices(role: &Role, hc: &[(String, Json)]) -> Result<(), Finding> {
    if role.limits.devices {
        return Ok(());
    }
    for key in ["Devices", "DeviceCgroupRules", "DeviceRequests"] {
        if member(hc, key).is_some_and(|v| !v.is_empty_value()) {
            return Err(denied(
                role,
                "devices = false",
                &format!("HostConfig.{key}"),
                format!("may not give containers host devices ({key})"),
            ));
        }
    }
    Ok(())
}

fn check_capabilities(role: &Role, caps: Vec<&str>, field: &str) -> Result<(), Finding> {
    let allowed = &role.limits.cap_add;
    if allowed.iter().any(|c| c == "ALL") {
        return Ok(());
    }
    for cap in caps {
        let normal = normalise_capability(cap);
        if !allowed.contains(&normal) {
            return Err(denied(
                role,
                &format!("cap_add = {allowed:?}"),
                field,
                format!("may not add the capability {normal}"),
            ));
        }
    }
    Ok(())
}

/// `security_opt`: every SecurityOpt except `no-new-privileges` (which only tightens), and
/// `MaskedPaths`/`ReadonlyPaths` given at all (even `[]` unmasks /proc paths).
fn check_security(role: &Role, hc: &[(String, Json)]) -> Result<(), Finding> {
    let p = "HostConfig";
    let opts = str_list(hc, "SecurityOpt", p)?;
    if role.limits.security_opt {
        return Ok(());
    }
    let tightening = [
        "no-new-privileges",
        "no-new-privileges:true",
        "no-new-privileges=true",
    ];
    if let Some(opt) = opts.iter().find(|o| !tightening.contains(o)) {
        return Err(denied(
            role,
            "security_opt = false",
            "HostConfig.SecurityOpt",
            format!("may not change security options ({opt:?})"),
        ));
    }
    for key in ["MaskedPaths", "ReadonlyPaths"] {
        if member(hc, key).is_some_and(|v| *v != Json::Null) {
            return Err(denied(
                role,
                "security_opt = false",
                &format!("HostConfig.{key}"),
                format!("may not change {key}"),
            ));
        }
    }
    Ok(())
}

/// `Binds` entries are `source:target[:options]`; a source that is not a volume name is a
/// host path (dockerd's Linux parser).
fn check_binds(role: &Role, binds: Vec<&str>) -> Result<(), Finding> {
    for bind in binds {
        let parts: Vec<&str> = bind.split(':').collect();
        if parts.len() < 2 {
            continue; // `/data`: an anonymous volume at that path
        }
        let source = parts[0];
        if !is_volume_name(source) && !role.limits.bind_allowed(source) {
            return Err(bind_denied(role, "HostConfig.Binds", source));
        }
    }
    Ok(())
}

/// dockerd's volume name pattern `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn is_volume_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn check_mounts(role: &Role, hc: &[(String, Json)]) -> Result<(), Finding> {
    let mounts = match member(hc, "Mounts") {
        None | Some(Json::Null) => return Ok(()),
        Some(Json::Array(items)) => items,
        Some(other) => return Err(wrong_type("HostConfig", "Mounts", "a list", other)),
    };
    for (n, mount) in mounts.iter().enumerate() {
        let path = format!("HostConfig.Mounts[{n}]");
        let m = struct_members(mount, &path, MOUNT_FIELDS)?;
        match str_member(m, "Type", &path)? {
            "bind" => {
                let source = str_member(m, "Source", &path)?;
                if !role.limits.bind_allowed(source) {
                    return Err(bind_denied(role, &format!("{path}.Source"), source));
                }
            }
            "volume" => check_volume_mount(role, m, &path)?,
            "tmpfs" | "image" => {}
            other => {
                return Err(denied(
                    role,
                    &format!("bind_mounts = {:?}", role.limits.bind_mounts),
                    &format!("{path}.Type"),
                    format!("may not use mounts of type {other:?}"),
                ))
            }
        }
    }
    Ok(())
}

/// A volume mount whose driver options mount something: the same rule as `volume create`.
fn check_volume_mount(role: &Role, m: &[(String, Json)], path: &str) -> Result<(), Finding> {
    let Some(options) = member(m, "VolumeOptions") else {
        return Ok(());
    };
    let vo_path = format!("{path}.VolumeOptions");
    let vo = struct_members(options, &vo_path, VOLUME_OPTIONS_FIELDS)?;
    let Some(driver) = member(vo, "DriverConfig") else {
        return Ok(());
    };
    let dc_path = format!("{vo_path}.DriverConfig");
    let dc = struct_members(driver, &dc_path, DRIVER_CONFIG_FIELDS)?;
    let name = str_member(dc, "Name", &dc_path)?;
    let options = map_member(dc, "Options", &dc_path)?;
    check_volume_driver(role, name, options, &dc_path)
}

fn check_fields_without_switch(role: &Role, hc: &[(String, Json)]) -> Result<(), Finding> {
    let p = "HostConfig";
    let why = |field: &str| {
        HOST_FIELDS_WITHOUT_SWITCH
            .iter()
            .find(|(f, _)| *f == field)
            .map_or("it reaches the host", |(_, why)| why)
    };
    let runtime = str_member(hc, "Runtime", p)?;
    if !runtime.is_empty() && runtime != "runc" {
        return Err(denied_always(
            role,
            "HostConfig.Runtime",
            why("HostConfig.Runtime"),
        ));
    }
    if !map_member(hc, "Annotations", p)?.is_empty() {
        return Err(denied_always(
            role,
            "HostConfig.Annotations",
            why("HostConfig.Annotations"),
        ));
    }
    let driver = str_member(hc, "VolumeDriver", p)?;
    if !driver.is_empty() && driver != "local" {
        return Err(denied_always(
            role,
            "HostConfig.VolumeDriver",
            why("HostConfig.VolumeDriver"),
        ));
    }
    if let Some(log_config) = member(hc, "LogConfig") {
        let lc = struct_members(log_config, "HostConfig.LogConfig", LOG_CONFIG_FIELDS)?;
        let kind = str_member(lc, "Type", "HostConfig.LogConfig")?;
        if !["", "json-file", "local", "journald", "none"].contains(&kind) {
            return Err(denied_always(
                role,
                "HostConfig.LogConfig",
                why("HostConfig.LogConfig"),
            ));
        }
    }
    Ok(())
}
