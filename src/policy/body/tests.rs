//! One test per rule and per bypass variant, each sent the way an attacker would.

use super::*;
use crate::policy::container::container_create;
use crate::policy::docker_json::go_fold;
use crate::policy::{ContainerLimits, Role};

fn ci() -> Role {
    Role {
        name: "ci".into(),
        allow: Vec::new(),
        deny: Vec::new(),
        limits: ContainerLimits {
            cap_add: vec!["CAP_NET_BIND_SERVICE".into()],
            bind_mounts: vec!["/srv/ci-cache".into()],
            ..ContainerLimits::restricted()
        },
        own: Vec::new(),
    }
}

const JSON: &[(&str, &[u8])] = &[("Content-Type", b"application/json")];

fn create(body: &str) -> Result<(), Finding> {
    container_create(&ci(), JSON, body.as_bytes())
}

fn with_host_config(host_config: &str) -> Result<(), Finding> {
    create(&format!(
        r#"{{"Image":"busybox","HostConfig":{host_config}}}"#
    ))
}

#[track_caller]
fn assert_denied(result: Result<(), Finding>, field: &str) {
    match result {
        Err(Finding::Denied { field: f, .. }) if f == field => {}
        other => panic!("expected a denial of {field}, got {other:?}"),
    }
}

#[track_caller]
fn assert_refused(result: Result<(), Finding>, needle: &str) {
    match result {
        Err(Finding::Refused { reason, .. }) if reason.contains(needle) => {}
        other => panic!("expected a 400 mentioning {needle:?}, got {other:?}"),
    }
}

/// What `docker run --rm -it -v /srv/ci-cache/x:/cache busybox sh` sends (docker CLI 28).
const CLI_RUN: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":true,"OpenStdin":true,"StdinOnce":true,"Env":null,"Cmd":["sh"],"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":["/srv/ci-cache/x:/cache"],"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[50,200],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":null,"OomKillDisable":false,"PidsLimit":null,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}"#;

#[test]
fn what_the_docker_cli_sends_is_allowed() {
    create(CLI_RUN).unwrap();
    create(r#"{"Image":"busybox"}"#).unwrap();
    with_host_config(r#"{"CapAdd":["NET_BIND_SERVICE"],"Mounts":[{"Type":"volume","Source":"data","Target":"/d"},{"Type":"tmpfs","Target":"/t"}],"Binds":["named:/n","/srv/ci-cache:/c:ro"],"SecurityOpt":["no-new-privileges"],"IpcMode":"private","NetworkMode":"bridge","LogConfig":{"Type":"json-file","Config":{"max-size":"1m"}}}"#).unwrap();
}

#[test]
fn privileged_in_every_spelling() {
    assert_denied(
        with_host_config(r#"{"Privileged":true}"#),
        "HostConfig.Privileged",
    );
    assert_denied(
        with_host_config(r#"{"Privil\u0065ged":true}"#),
        "HostConfig.Privileged",
    );
    assert_refused(
        with_host_config(r#"{"privileged":true}"#),
        "not spelled as dockerd's field \"Privileged\"",
    );
    assert_refused(with_host_config(r#"{"PRIVILEGED":true}"#), "\"Privileged\"");
    assert_refused(
        with_host_config(r#"{"Privileged":false,"privileged":true}"#),
        "\"Privileged\"",
    );
    assert_refused(
        create(r#"{"Image":"x","hostConfig":{"Privileged":true}}"#),
        "\"HostConfig\"",
    );
    assert_refused(
        create(r#"{"Image":"x","H\u006fstconfig":{"Privileged":true}}"#),
        "\"HostConfig\"",
    );
    assert_refused(
        with_host_config(r#"{"Privileged":"true"}"#),
        "must be a boolean",
    );
}

#[test]
fn unicode_folded_keys_are_refused() {
    // U+017F LATIN SMALL LETTER LONG S folds to S; U+212A KELVIN SIGN folds to K.
    assert_refused(
        with_host_config("{\"\u{17f}ecurityOpt\":[\"seccomp=unconfined\"]}"),
        "\"SecurityOpt\"",
    );
    assert_refused(
        with_host_config("{\"Networ\u{212a}Mode\":\"host\"}"),
        "\"NetworkMode\"",
    );
    assert_refused(
        with_host_config(r#"{"\u017fecurityOpt":["apparmor=unconfined"]}"#),
        "\"SecurityOpt\"",
    );
    assert_refused(
        create("{\"Image\":\"x\",\"Ho\u{17f}tConfig\":{\"Privileged\":true}}"),
        "\"HostConfig\"",
    );
    // Other non-ASCII keys at struct level are refused too (Go versions fold differently).
    assert_refused(
        with_host_config("{\"Pr\u{130}vileged\":true}"),
        "non-ASCII key",
    );
    // Map keys (labels) are free text.
    create("{\"Image\":\"x\",\"Labels\":{\"\u{17f}\":\"ok\"}}").unwrap();
}

#[test]
fn duplicate_keys_and_objects_and_trailing_data_are_refused() {
    assert_refused(
        with_host_config(r#"{"Privileged":false,"Privileged":true}"#),
        "duplicate key",
    );
    assert_refused(
        create(r#"{"Image":"x","HostConfig":{"Memory":1},"HostConfig":{"Privileged":true}}"#),
        "duplicate key",
    );
    assert_refused(create(r#"{"Image":"x","HostConfig":{}}}"#), "trailing data");
    assert_refused(create(r#"{"Image":"x"}]"#), "trailing data");
    assert_refused(
        create(r#"{"Image":"x"}{"HostConfig":{"Privileged":true}}"#),
        "trailing data",
    );
    assert_refused(create(r#"["Image"]"#), "must be a JSON object");
    assert_refused(create(""), "body");
}

#[test]
fn top_level_host_config_fields_are_refused() {
    assert_refused(
        create(r#"{"Image":"x","Privileged":true}"#),
        "belongs inside HostConfig",
    );
    assert_refused(
        create(r#"{"Image":"x","Binds":["/:/host"]}"#),
        "belongs inside HostConfig",
    );
    assert_refused(
        create(r#"{"Image":"x","HostConfig":{},"PidMode":"host"}"#),
        "belongs inside HostConfig",
    );
    assert_refused(
        create(r#"{"Image":"x","privileged":true}"#),
        "\"Privileged\"",
    );
    assert_refused(
        create(r#"{"Image":"x","CgroupParent":"/"}"#),
        "belongs inside HostConfig",
    );
}

#[test]
fn content_type_must_be_json_with_parameters_allowed() {
    let body = br#"{"Image":"x"}"#;
    let role = ci();
    container_create(
        &role,
        &[("content-type", b"application/json; charset=utf-8")],
        body,
    )
    .unwrap();
    container_create(&role, &[("Content-Type", b"Application/JSON")], body).unwrap();
    assert_refused(container_create(&role, &[], body), "needs Content-Type");
    assert_refused(
        container_create(&role, &[("Content-Type", b"text/plain")], body),
        "not application/json",
    );
    assert_refused(
        container_create(
            &role,
            &[("Content-Type", b"application/x-www-form-urlencoded")],
            body,
        ),
        "not application/json",
    );
    assert_refused(
        container_create(
            &role,
            &[
                ("Content-Type", b"application/json"),
                ("Content-Type", b"text/plain"),
            ],
            body,
        ),
        "more than one",
    );
}

#[test]
fn host_namespaces_including_container_ids() {
    for (key, value) in [
        ("PidMode", "host"),
        ("PidMode", "container:abc"),
        ("IpcMode", "host"),
        ("IpcMode", "container:abc"),
        ("UTSMode", "host"),
        ("UsernsMode", "host"),
        ("CgroupnsMode", "host"),
        ("Cgroup", "container:abc"),
        ("CgroupParent", "/"),
        ("NetworkMode", "host"),
        ("NetworkMode", "container:abc"),
        ("NetworkMode", "3f2a"),
    ] {
        let field = format!("HostConfig.{key}");
        assert_denied(
            with_host_config(&format!(r#"{{"{key}":"{value}"}}"#)),
            &field,
        );
    }
    assert_denied(
        with_host_config(r#"{"Sysctls":{"net.ipv4.ip_forward":"1"}}"#),
        "HostConfig.Sysctls",
    );
    assert_denied(
        create(r#"{"Image":"x","NetworkingConfig":{"EndpointsConfig":{"host":{}}}}"#),
        "NetworkingConfig.EndpointsConfig.host",
    );
    assert_refused(
        create(r#"{"Image":"x","NetworkingConfig":{"endpointsConfig":{"host":{}}}}"#),
        "\"EndpointsConfig\"",
    );
    with_host_config(
        r#"{"NetworkMode":"ci_default","IpcMode":"shareable","CgroupnsMode":"private"}"#,
    )
    .unwrap();
}

#[test]
fn devices_capabilities_and_security_options() {
    assert_denied(
        with_host_config(
            r#"{"Devices":[{"PathOnHost":"/dev/sda","PathInContainer":"/dev/sda","CgroupPermissions":"rwm"}]}"#,
        ),
        "HostConfig.Devices",
    );
    assert_denied(
        with_host_config(r#"{"DeviceCgroupRules":["a *:* rwm"]}"#),
        "HostConfig.DeviceCgroupRules",
    );
    assert_denied(
        with_host_config(r#"{"DeviceRequests":[{"Count":-1}]}"#),
        "HostConfig.DeviceRequests",
    );
    for cap in [
        "SYS_ADMIN",
        "sys_admin",
        "CAP_SYS_ADMIN",
        "cap_sys_admin",
        "ALL",
        "all",
    ] {
        assert_denied(
            with_host_config(&format!(r#"{{"CapAdd":["{cap}"]}}"#)),
            "HostConfig.CapAdd",
        );
    }
    for cap in [
        "NET_BIND_SERVICE",
        "net_bind_service",
        "CAP_NET_BIND_SERVICE",
    ] {
        with_host_config(&format!(r#"{{"CapAdd":["{cap}"]}}"#)).unwrap();
    }
    for opt in [
        "seccomp=unconfined",
        "apparmor=unconfined",
        "label=disable",
        "label:disable",
        "systempaths=unconfined",
        "seccomp={}",
    ] {
        assert_denied(
            with_host_config(&format!(r#"{{"SecurityOpt":["{opt}"]}}"#)),
            "HostConfig.SecurityOpt",
        );
    }
    assert_denied(
        with_host_config(r#"{"MaskedPaths":[]}"#),
        "HostConfig.MaskedPaths",
    );
    assert_denied(
        with_host_config(r#"{"ReadonlyPaths":[]}"#),
        "HostConfig.ReadonlyPaths",
    );
}

#[test]
fn bind_mounts_in_every_form() {
    for bind in [
        "/:/host",
        "/etc:/etc:ro",
        "/srv/ci-cache/../../etc:/x",
        "/srv/ci-cache-x:/x",
        "/srv//ci-cache:/x",
        "./rel:/x",
    ] {
        assert_denied(
            with_host_config(&format!(r#"{{"Binds":["{bind}"]}}"#)),
            "HostConfig.Binds",
        );
    }
    assert_denied(
        with_host_config(r#"{"Mounts":[{"Type":"bind","Source":"/","Target":"/host"}]}"#),
        "HostConfig.Mounts[0].Source",
    );
    assert_refused(
        with_host_config(r#"{"Mounts":[{"type":"bind","Source":"/","Target":"/host"}]}"#),
        "\"Type\"",
    );
    assert_denied(
        with_host_config(
            r#"{"Mounts":[{"Type":"volume","Source":"v","Target":"/v","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/"}}}}]}"#,
        ),
        "HostConfig.Mounts[0].VolumeOptions.DriverConfig.device",
    );
    assert_denied(
        with_host_config(
            r#"{"Mounts":[{"Type":"volume","Target":"/v","VolumeOptions":{"DriverConfig":{"Options":{"type":"ext4","device":"/dev/sda1"}}}}]}"#,
        ),
        "HostConfig.Mounts[0].VolumeOptions.DriverConfig",
    );
    assert_refused(
        with_host_config(
            r#"{"Mounts":[{"Type":"volume","Target":"/v","VolumeOptions":{"driverConfig":{"Options":{"o":"bind","device":"/"}}}}]}"#,
        ),
        "\"DriverConfig\"",
    );
    with_host_config(r#"{"Mounts":[{"Type":"bind","Source":"/srv/ci-cache/go","Target":"/go"},{"Type":"volume","Target":"/v","VolumeOptions":{"DriverConfig":{"Options":{"type":"none","o":"bind","device":"/srv/ci-cache/v"}}}}]}"#).unwrap();
    assert_denied(
        with_host_config(r#"{"VolumesFrom":["other"]}"#),
        "HostConfig.VolumesFrom",
    );
}

#[test]
fn fields_without_a_switch_are_denied_to_inspected_roles() {
    assert_denied(
        with_host_config(r#"{"Runtime":"kata"}"#),
        "HostConfig.Runtime",
    );
    assert_denied(
        with_host_config(r#"{"Annotations":{"a":"b"}}"#),
        "HostConfig.Annotations",
    );
    assert_denied(
        with_host_config(r#"{"VolumeDriver":"nfs-plugin"}"#),
        "HostConfig.VolumeDriver",
    );
    assert_denied(
        with_host_config(
            r#"{"LogConfig":{"Type":"syslog","Config":{"syslog-address":"udp://10.0.0.1:514"}}}"#,
        ),
        "HostConfig.LogConfig",
    );
    assert_denied(
        create(
            r#"{"Image":"x","NetworkingConfig":{"EndpointsConfig":{"ci_default":{"DriverOpts":{"a":"b"}}}}}"#,
        ),
        "NetworkingConfig.EndpointsConfig.DriverOpts",
    );
    with_host_config(r#"{"Runtime":"runc","LogConfig":{"Type":"local"}}"#).unwrap();
}

#[test]
fn images_and_users() {
    let mut role = ci();
    role.limits.images = vec!["registry.example.org/*".into()];
    role.limits.run_as_root = false;
    let create = |body: &str| container_create(&role, JSON, body.as_bytes());
    assert_denied(create(r#"{"Image":"busybox","User":"1000"}"#), "Image");
    assert_denied(
        create(r#"{"Image":"registry.example.org.evil/x","User":"1000"}"#),
        "Image",
    );
    create(r#"{"Image":"registry.example.org/team/app:1","User":"1000:1000"}"#).unwrap();
    for user in ["", "root", "0", "0:0", "root:wheel", "00", "+0", "-0"] {
        let body = format!(r#"{{"Image":"registry.example.org/a","User":"{user}"}}"#);
        assert_denied(create(&body), "User");
    }
    assert_refused(
        create(r#"{"Image":"registry.example.org/a","user":"0"}"#),
        "\"User\"",
    );
}

#[test]
fn exec_create() {
    let role = ci();
    let exec = |body: &str| super::exec_create(&role, JSON, body.as_bytes());
    exec(r#"{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":true,"Cmd":["sh"],"Env":null,"WorkingDir":"","Privileged":false,"User":""}"#).unwrap();
    assert_denied(exec(r#"{"Cmd":["sh"],"Privileged":true}"#), "Privileged");
    assert_refused(
        exec(r#"{"Cmd":["sh"],"privileged":true}"#),
        "\"Privileged\"",
    );
    assert_refused(
        exec(r#"{"Cmd":["sh"],"Privileged":false,"Privileged":true}"#),
        "duplicate key",
    );
    let mut strict = ci();
    strict.limits.run_as_root = false;
    assert_denied(
        super::exec_create(&strict, JSON, br#"{"Cmd":["sh"],"User":"root"}"#),
        "User",
    );
    assert_denied(
        super::exec_create(&strict, JSON, br#"{"Cmd":["sh"]}"#),
        "User",
    );
    super::exec_create(&strict, JSON, br#"{"Cmd":["sh"],"User":"nobody"}"#).unwrap();
}

#[test]
fn volume_create_with_bind_options_is_a_bind_mount() {
    let role = ci();
    let volume = |body: &str| super::volume_create(&role, JSON, body.as_bytes());
    volume(r#"{"Name":"cache","Driver":"local","DriverOpts":{},"Labels":{}}"#).unwrap();
    volume(r#"{"Name":"t","Driver":"local","DriverOpts":{"type":"tmpfs","device":"tmpfs","o":"size=100m"}}"#).unwrap();
    volume(r#"{"Name":"c","DriverOpts":{"type":"none","o":"bind","device":"/srv/ci-cache/c"}}"#)
        .unwrap();
    assert_denied(
        volume(
            r#"{"Name":"r","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"/"}}"#,
        ),
        "DriverOpts.device",
    );
    assert_denied(
        volume(r#"{"Name":"r","DriverOpts":{"type":"tmpfs","o":"rw,bind","device":"/etc"}}"#),
        "DriverOpts.device",
    );
    assert_denied(
        volume(
            r#"{"Name":"r","DriverOpts":{"type":"nfs","o":"addr=10.0.0.1","device":":/export"}}"#,
        ),
        "DriverOpts",
    );
    assert_denied(
        volume(r#"{"Name":"r","Driver":"someplugin"}"#),
        "DriverOpts.Driver",
    );
    assert_refused(
        volume(r#"{"Name":"r","driverOpts":{"o":"bind","device":"/"}}"#),
        "\"DriverOpts\"",
    );
    assert_refused(
        volume(r#"{"Name":"r","DriverOpts":{"o":"bind","device":"/srv/ci-cache","device":"/"}}"#),
        "duplicate key",
    );
}

#[test]
fn build_query_and_form_bodies() {
    let role = ci();
    let tar: &[(&str, &[u8])] = &[("Content-Type", b"application/x-tar")];
    build(&role, false, "t=app&networkmode=default&rm=1", tar).unwrap();
    build(&role, false, "networkmode=none", &[]).unwrap();
    assert_denied(build(&role, false, "networkmode=host", tar), "networkmode");
    assert_denied(
        build(&role, false, "networkmode=container%3Aabc", tar),
        "networkmode",
    );
    assert_denied(
        build(&role, false, "remote=https://example.org/ctx.tar", tar),
        "remote",
    );
    assert_denied(build(&role, false, "cgroupparent=/", tar), "cgroupparent");
    let remote_allowed = Role {
        limits: ContainerLimits {
            build_remote: true,
            ..ci().limits
        },
        ..ci()
    };
    build(
        &remote_allowed,
        false,
        "remote=https://example.org/ctx.tar",
        tar,
    )
    .unwrap();
    assert_denied(
        build(&remote_allowed, false, "remote=x&networkmode=host", tar),
        "networkmode",
    );
    assert_denied(build(&role, false, "version=2", tar), "version");
    build(&role, true, "version=2", tar).unwrap();
    assert_refused(
        build(&role, false, "networkmode=none&networkmode=host", tar),
        "more than once",
    );
    assert_refused(
        build(&role, false, "networkmode=none;networkmode=host", tar),
        "';'",
    );
    assert_refused(build(&role, false, "networkmode=%zz", tar), "percent");
    for form in [
        &b"application/x-www-form-urlencoded"[..],
        b"Application/X-WWW-Form-Urlencoded; charset=utf-8",
        b"multipart/form-data; boundary=x",
    ] {
        assert_refused(
            build(&role, false, "", &[("Content-Type", form)]),
            "bodies on /build are refused",
        );
    }
}

#[test]
fn go_fold_matches_gos_simple_folding_for_the_known_tricks() {
    assert_eq!(go_fold("ſecurityOpt"), go_fold("SecurityOpt"));
    assert_eq!(go_fold("Networ\u{212a}Mode"), go_fold("NetworkMode"));
    assert_eq!(go_fold("privileged"), "PRIVILEGED");
    assert_ne!(go_fold("Privileged"), go_fold("Privileges"));
}

fn connect(body: &str) -> Result<(), Finding> {
    network_connect(&ci(), JSON, body.as_bytes())
}

/// What `docker network connect --alias a NET CONTAINER` sends (docker CLI 28, captured).
const CLI_CONNECT: &str = r#"{"Container":"web","EndpointConfig":{"IPAMConfig":{},"Links":null,"Aliases":["a"],"MacAddress":"","DriverOpts":{},"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}"#;

#[test]
fn network_connect_endpoint_driver_options_in_every_spelling() {
    connect(CLI_CONNECT).unwrap();
    connect(r#"{"Container":"web"}"#).unwrap();
    connect(r#"{"Container":"web","EndpointConfig":null}"#).unwrap();
    connect(r#"{"Container":"web","EndpointConfig":{"DriverOpts":{}}}"#).unwrap();
    let field = "EndpointConfig.DriverOpts";
    assert_denied(
        connect(
            r#"{"Container":"web","EndpointConfig":{"DriverOpts":{"com.docker.network.endpoint.ifname":"x"}}}"#,
        ),
        field,
    );
    // An escaped key is the key it decodes to, as for dockerd.
    assert_denied(
        connect(r#"{"Container":"web","EndpointConfig":{"Driver\u004fpts":{"a":"b"}}}"#),
        field,
    );
    // Spellings dockerd's case-insensitive decoding would take for the fields: refused.
    for (body, needle) in [
        (
            r#"{"Container":"web","EndpointConfig":{"driverOpts":{"a":"b"}}}"#,
            "\"DriverOpts\"",
        ),
        (
            r#"{"Container":"web","EndpointConfig":{"DRIVEROPTS":{"a":"b"}}}"#,
            "\"DriverOpts\"",
        ),
        (
            r#"{"Container":"web","endpointconfig":{"DriverOpts":{"a":"b"}}}"#,
            "\"EndpointConfig\"",
        ),
        (
            "{\"Container\":\"web\",\"EndpointConfig\":{\"DriverOpt\u{17f}\":{\"a\":\"b\"}}}",
            "\"DriverOpts\"",
        ),
        // Go merges duplicate objects and keeps the last scalar: duplicates are refused.
        (
            r#"{"Container":"web","EndpointConfig":{},"EndpointConfig":{"DriverOpts":{"a":"b"}}}"#,
            "duplicate",
        ),
        (
            r#"{"Container":"web","EndpointConfig":{"DriverOpts":null,"DriverOpts":{"a":"b"}}}"#,
            "duplicate",
        ),
        (
            r#"{"Container":"web","EndpointConfig":{"DriverOpts":"a=b"}}"#,
            "must be an object",
        ),
        (
            r#"{"Container":"web","EndpointConfig":[{"DriverOpts":{"a":"b"}}]}"#,
            "must be an object",
        ),
        (
            r#"{"Container":"web","EndpointConfig":{"DriverOpts":{"a":"b"}}}]"#,
            "body",
        ),
        (r#"["Container"]"#, "must be a JSON object"),
    ] {
        assert_refused(connect(body), needle);
    }
    assert_refused(
        network_connect(
            &ci(),
            &[("Content-Type", b"text/plain")],
            CLI_CONNECT.as_bytes(),
        ),
        "not application/json",
    );
}
