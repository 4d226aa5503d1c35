//! How dockerd reads a JSON body, and the strict reading the policy does instead: the field
//! names of the Docker structs the policy inspects, Go's case folding, and accessors that
//! refuse (400) a key that dockerd would take for a field but that is not spelled exactly as it,
//! and values of the wrong JSON type in the fields the policy checks.
//!
//! Go's `encoding/json` matches keys to struct fields case-insensitively with Unicode folding
//! (`privileged`, `ſecurityOpt` with U+017F, `NetworKMode` with U+212A all hit the field).
//! Keys of map-typed fields (`Labels`, `DriverOpts`, `Sysctls`, `EndpointsConfig`) are free
//! text and are not folded. Unknown keys are ignored by dockerd and here.

use super::body::{refused, Finding};
use super::json::Json;

/// Fields of container.Config (promoted to the top level of a create).
#[rustfmt::skip]
pub(crate) const CONFIG_FIELDS: &[&str] = &[
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
    "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped",
    "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild",
    "Labels", "StopSignal", "StopTimeout", "Shell",
];

/// Members of the create request itself besides Config's.
#[rustfmt::skip]
pub(crate) const CREATE_FIELDS: &[&str] = &[
    "HostConfig", "NetworkingConfig",
];

/// Fields of container.HostConfig, including those of the embedded Resources.
#[rustfmt::skip]
pub(crate) const HOST_CONFIG_FIELDS: &[&str] = &[
    "Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy",
    "AutoRemove", "VolumeDriver", "VolumesFrom", "ConsoleSize", "Annotations", "CapAdd", "CapDrop",
    "CgroupnsMode", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd", "IpcMode",
    "Cgroup", "Links", "OomScoreAdj", "PidMode", "Privileged", "PublishAllPorts", "ReadonlyRootfs",
    "SecurityOpt", "StorageOpt", "Tmpfs", "UTSMode", "UsernsMode", "ShmSize", "Sysctls", "Runtime",
    "Isolation", "CpuShares", "Memory", "NanoCpus", "CgroupParent", "BlkioWeight",
    "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime",
    "CpusetCpus", "CpusetMems", "Devices", "DeviceCgroupRules", "DeviceRequests", "KernelMemory",
    "KernelMemoryTCP", "MemoryReservation", "MemorySwap", "MemorySwappiness", "OomKillDisable",
    "PidsLimit", "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth",
    "Mounts", "MaskedPaths", "ReadonlyPaths", "Init",
];

#[rustfmt::skip]
pub(crate) const NETWORKING_CONFIG_FIELDS: &[&str] = &[
    "EndpointsConfig",
];

#[rustfmt::skip]
pub(crate) const ENDPOINT_SETTINGS_FIELDS: &[&str] = &[
    "IPAMConfig", "Links", "Aliases", "MacAddress", "DriverOpts", "GwPriority", "NetworkID",
    "EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway", "GlobalIPv6Address",
    "GlobalIPv6PrefixLen", "DNSNames",
];

/// Fields of NetworkConnect (`Container`, `EndpointConfig`) and NetworkDisconnect
/// (`Container`, `Force`): the bodies of `POST /networks/{id}/connect` and `/disconnect`.
#[rustfmt::skip]
pub(crate) const NETWORK_CONNECT_FIELDS: &[&str] = &[
    "Container", "EndpointConfig", "Force",
];

#[rustfmt::skip]
pub(crate) const MOUNT_FIELDS: &[&str] = &[
    "Type", "Source", "Target", "ReadOnly", "Consistency", "BindOptions", "VolumeOptions",
    "TmpfsOptions", "ImageOptions", "ClusterOptions",
];

#[rustfmt::skip]
pub(super) const VOLUME_OPTIONS_FIELDS: &[&str] = &[
    "NoCopy", "Labels", "Subpath", "DriverConfig",
];

#[rustfmt::skip]
pub(super) const DRIVER_CONFIG_FIELDS: &[&str] = &[
    "Name", "Options",
];

#[rustfmt::skip]
pub(super) const LOG_CONFIG_FIELDS: &[&str] = &[
    "Type", "Config",
];

#[rustfmt::skip]
pub(super) const EXEC_FIELDS: &[&str] = &[
    "User", "Privileged", "Tty", "ConsoleSize", "AttachStdin", "AttachStderr", "AttachStdout",
    "Detach", "DetachKeys", "Env", "WorkingDir", "Cmd",
];

#[rustfmt::skip]
pub(crate) const VOLUME_CREATE_FIELDS: &[&str] = &[
    "Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec",
];

/// Case-insensitive comparison as Go's encoding/json does it: ASCII upper-casing, and for other
/// characters the upper case of the lower case. Characters whose Rust case mapping is not one
/// character are kept; non-ASCII keys are refused anyway (see `struct_members`).
pub(crate) fn go_fold(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() {
                return c.to_ascii_uppercase();
            }
            let lower = single_char(c.to_lowercase()).unwrap_or(c);
            single_char(lower.to_uppercase()).unwrap_or(lower)
        })
        .collect()
}

/// The only character of a case mapping, `None` when it maps to several (Go maps one to one).
fn single_char(mut mapped: impl Iterator<Item = char>) -> Option<char> {
    let first = mapped.next()?;
    mapped.next().is_none().then_some(first)
}

/// The members of the object `value` at `path`, after checking that every key that dockerd
/// would read as one of `known` is spelled exactly so. `null` reads as absent (Go leaves the
/// field unset); another non-object is refused.
pub(crate) fn struct_members<'a>(
    value: &'a Json,
    path: &str,
    known: &[&str],
) -> Result<&'a [(String, Json)], Finding> {
    let members = match value {
        Json::Null => return Ok(&[]),
        Json::Object(members) => members,
        other => {
            return Err(refused(
                Some(path),
                format!("{path} must be an object, not {}", other.kind()),
            ))
        }
    };
    for (key, _) in members {
        if known.contains(&key.as_str()) {
            continue;
        }
        let folded = go_fold(key);
        if let Some(canonical) = known.iter().find(|k| go_fold(k) == folded) {
            return Err(refused(
                Some(&join(path, key)),
                format!(
                    "key {key:?} in {} is not spelled as dockerd's field {canonical:?} (dockerd matches keys case-insensitively; send the exact spelling)",
                    display_path(path)
                ),
            ));
        }
        if !key.is_ascii() {
            return Err(refused(
                Some(&join(path, key)),
                format!("non-ASCII key {key:?} in {}", display_path(path)),
            ));
        }
    }
    Ok(members)
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "the body"
    } else {
        path
    }
}

pub(crate) fn member<'a>(members: &'a [(String, Json)], key: &str) -> Option<&'a Json> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

pub(super) fn bool_member(
    members: &[(String, Json)],
    key: &str,
    path: &str,
) -> Result<bool, Finding> {
    match member(members, key) {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(other) => Err(wrong_type(path, key, "a boolean", other)),
    }
}

pub(crate) fn str_member<'a>(
    members: &'a [(String, Json)],
    key: &str,
    path: &str,
) -> Result<&'a str, Finding> {
    match member(members, key) {
        None | Some(Json::Null) => Ok(""),
        Some(Json::String(s)) => Ok(s),
        Some(other) => Err(wrong_type(path, key, "a string", other)),
    }
}

pub(crate) fn str_list<'a>(
    members: &'a [(String, Json)],
    key: &str,
    path: &str,
) -> Result<Vec<&'a str>, Finding> {
    match member(members, key) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| wrong_type(path, key, "a list of strings", item))
            })
            .collect(),
        Some(other) => Err(wrong_type(path, key, "a list of strings", other)),
    }
}

/// A map-typed member (`Labels`, `DriverOpts`, ...): keys are case-sensitive there.
pub(crate) fn map_member<'a>(
    members: &'a [(String, Json)],
    key: &str,
    path: &str,
) -> Result<&'a [(String, Json)], Finding> {
    match member(members, key) {
        None | Some(Json::Null) => Ok(&[]),
        Some(Json::Object(m)) => Ok(m),
        Some(other) => Err(wrong_type(path, key, "an object", other)),
    }
}

pub(super) fn wrong_type(path: &str, key: &str, expected: &str, got: &Json) -> Finding {
    let field = join(path, key);
    refused(
        Some(&field),
        format!("{field} must be {expected}, not {}", got.kind()),
    )
}
