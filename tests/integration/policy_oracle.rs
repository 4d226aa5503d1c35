//! The policy engine checked against the oracle: the real dockerd says what a create payload
//! does. Each payload is POSTed straight to dockerd's socket, the container it created is
//! inspected (HostConfig), its effective configuration is classified as dangerous or not for
//! the `ci` role, and `dockgate policy explain` (the engine the gate runs) must deny every
//! dangerous one and allow the ordinary ones the docker CLI sends.
//!
//! The docker CLI's own payloads are captured by pointing the real CLI (v28) at a small unix
//! socket that answers `_ping` and records the create body (then answers 500, so nothing runs).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::common::cli::docker_command;
use crate::common::dockerd::docker_api;
use crate::common::gate::dockgate_command;
use crate::common::util::{fresh_dir, run_with_timeout, unique_name};
use crate::common::TEST_IMAGE;

const API: &str = "/v1.41";

/// The issue's ci role; `{ALLOWED}` is the one host directory it may bind.
const POLICY: &str = r#"
default_role = "none"
[[identity]]
ou = ["ci"]
role = "ci"
[role.ci]
allow = ["read", "logs", "containers", "exec", "images", "build", "volumes", "networks"]
[role.ci.containers]
cap_add = ["NET_BIND_SERVICE"]
bind_mounts = ["{ALLOWED}"]
"#;

struct Oracle {
    policy: PathBuf,
    allowed: PathBuf,
    victim: String,
    /// Inspect of a plain `{"Image": ...}` container: the daemon's defaults.
    baseline: Value,
}

impl Oracle {
    fn new() -> Oracle {
        let dir = fresh_dir("policy-oracle");
        let allowed = dir.join("ci-cache");
        std::fs::create_dir_all(&allowed).unwrap();
        let policy = dir.join("policy.toml");
        let text = POLICY.replace("{ALLOWED}", allowed.to_str().unwrap());
        std::fs::write(&policy, text).unwrap();
        let victim = create_direct(&format!(
            r#"{{"Image":"{TEST_IMAGE}","Cmd":["sleep","600"]}}"#
        ))
        .expect("the victim container is created");
        // With a HostConfig, as every client sends: without one dockerd 20.10 leaves some
        // defaults (Runtime) unset.
        let plain = create_direct(&format!(
            r#"{{"Image":"{TEST_IMAGE}","Cmd":["true"],"HostConfig":{{}}}}"#
        ))
        .expect("plain create");
        let baseline = inspect_and_remove(&plain);
        Oracle {
            policy,
            allowed,
            victim,
            baseline,
        }
    }

    /// Why the container's effective HostConfig is dangerous for `ci`, if it is.
    fn danger(&self, inspect: &Value) -> Option<String> {
        let hc = &inspect["HostConfig"];
        let base = &self.baseline["HostConfig"];
        if hc["Privileged"] == true {
            return Some("Privileged".into());
        }
        for key in [
            "PidMode",
            "IpcMode",
            "UTSMode",
            "UsernsMode",
            "CgroupnsMode",
            "NetworkMode",
        ] {
            let value = hc[key].as_str().unwrap_or("");
            let foreign = value == "host" || value.starts_with("container:");
            if foreign && hc[key] != base[key] {
                return Some(format!("{key}={value}"));
            }
        }
        for key in [
            "Devices",
            "DeviceCgroupRules",
            "DeviceRequests",
            "VolumesFrom",
            "Sysctls",
        ] {
            if non_empty(&hc[key]) {
                return Some(format!("{key}={}", hc[key]));
            }
        }
        for cap in strings(&hc["CapAdd"]) {
            let normal = cap.to_ascii_uppercase();
            if normal != "NET_BIND_SERVICE" && normal != "CAP_NET_BIND_SERVICE" {
                return Some(format!("CapAdd {cap}"));
            }
        }
        for opt in strings(&hc["SecurityOpt"]) {
            if !opt.starts_with("no-new-privileges") {
                return Some(format!("SecurityOpt {opt}"));
            }
        }
        for key in [
            "MaskedPaths",
            "ReadonlyPaths",
            "CgroupParent",
            "Cgroup",
            "Runtime",
            "LogConfig",
        ] {
            if hc[key] != base[key] {
                return Some(format!("{key}={}", hc[key]));
            }
        }
        for bind in strings(&hc["Binds"]) {
            let source = bind.split(':').next().unwrap_or("");
            if source.starts_with('/') && !self.under_allowed(source) {
                return Some(format!("Binds {bind}"));
            }
        }
        for mount in hc["Mounts"].as_array().into_iter().flatten() {
            let source = mount["Source"].as_str().unwrap_or("");
            if mount["Type"] == "bind" && !self.under_allowed(source) {
                return Some(format!("bind mount of {source}"));
            }
            let options = &mount["VolumeOptions"]["DriverConfig"]["Options"];
            let device = options["device"].as_str().unwrap_or("");
            if non_empty(options) && options["type"] != "tmpfs" && !self.under_allowed(device) {
                return Some(format!("volume with driver options {options}"));
            }
        }
        None
    }

    fn under_allowed(&self, path: &str) -> bool {
        let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
        let lexical_ok = !path.split('/').any(|s| s == ".." || s == ".");
        lexical_ok && resolved.starts_with(&self.allowed)
    }

    /// `dockgate policy explain` for the ci identity: (allowed, its output).
    fn explain(
        &self,
        method: &str,
        target: &str,
        content_type: &str,
        body: &str,
    ) -> (bool, String) {
        let out = run_with_timeout(
            dockgate_command()
                .args(["policy", "explain"])
                .arg(&self.policy)
                .args([
                    "--cn",
                    "ci-runner-1",
                    "--ou",
                    "ci",
                    "--content-type",
                    content_type,
                ])
                .args([method, target]),
            Some(body.as_bytes()),
            Duration::from_secs(10),
        );
        let text = format!("{}{}", out.stdout, out.stderr);
        let allowed = out.stdout.starts_with("decision: allowed\n");
        assert_eq!(
            out.status.code(),
            Some(if allowed { 0 } else { 1 }),
            "exit code of policy explain does not match its decision:\n{text}"
        );
        (allowed, text)
    }
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// Creates a container straight at dockerd; its ID, or dockerd's error message.
fn create_direct(body: &str) -> Result<String, String> {
    let name = unique_name("oracle");
    let (status, json) = docker_api(
        "POST",
        &format!("{API}/containers/create?name={name}"),
        "application/json",
        body,
    );
    match (status, json["Id"].as_str()) {
        (201, Some(id)) => Ok(id.to_string()),
        _ => Err(format!("{status} {}", json["message"])),
    }
}

fn inspect_and_remove(id: &str) -> Value {
    let (status, json) = docker_api(
        "GET",
        &format!("{API}/containers/{id}/json"),
        "application/json",
        "",
    );
    assert_eq!(status, 200, "inspect {id}: {json}");
    docker_api(
        "DELETE",
        &format!("{API}/containers/{id}?force=1&v=1"),
        "application/json",
        "",
    );
    json
}

fn host_network_id() -> String {
    let (status, json) = docker_api(
        "GET",
        &format!("{API}/networks/host"),
        "application/json",
        "",
    );
    assert_eq!(status, 200, "inspect the host network: {json}");
    json["Id"].as_str().unwrap().to_string()
}

/// What dockerd did with one payload and what the engine decided.
struct Verdict {
    created: bool,
    danger: Option<String>,
    allowed: bool,
    explain: String,
    dockerd_said: String,
}

fn judge(oracle: &Oracle, body: &str, content_type: &str) -> Verdict {
    let (allowed, explain) = oracle.explain(
        "POST",
        &format!("{API}/containers/create"),
        content_type,
        body,
    );
    let (status, json) = docker_api(
        "POST",
        &format!("{API}/containers/create?name={}", unique_name("oracle")),
        content_type,
        body,
    );
    let (created, danger, dockerd_said) = match (status, json["Id"].as_str()) {
        (201, Some(id)) => {
            let inspect = inspect_and_remove(id);
            (
                true,
                oracle.danger(&inspect),
                format!("created; HostConfig {}", inspect["HostConfig"]),
            )
        }
        _ => (false, None, format!("{status} {}", json["message"])),
    };
    Verdict {
        created,
        danger,
        allowed,
        explain,
        dockerd_said,
    }
}

/// One request the docker CLI sent to the recording socket.
struct Captured {
    /// `POST /v1.41/containers/create HTTP/1.1`
    request_line: String,
    content_type: String,
    body: String,
}

impl Captured {
    fn target(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or("")
    }
}

/// `docker create ARGS` against a recording socket: the create body the CLI sent.
fn capture_cli_create(args: &[&str]) -> String {
    // The test image has no CMD; dockerd refuses a create without one.
    let command: &[&str] = if args.last() == Some(&TEST_IMAGE) {
        &["true"]
    } else {
        &[]
    };
    let all: Vec<&str> = ["create"]
        .iter()
        .chain(args)
        .chain(command)
        .copied()
        .collect();
    let captured = capture_cli(&all, &[]);
    assert!(
        captured.request_line.contains("/containers/create"),
        "expected a create, got {}",
        captured.request_line
    );
    captured.body
}

/// Runs the real docker CLI with `args` (and `env`) against a socket that answers `_ping` and
/// records the first other request, answering it 500 so nothing else follows.
fn capture_cli(args: &[&str], env: &[(&str, &str)]) -> Captured {
    let dir = fresh_dir("capture");
    let socket = dir.join("c.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            if let Some(captured) = answer_one(conn) {
                let _ = tx.send(captured);
                return;
            }
        }
    });
    let mut cmd = docker_command(
        &format!("unix://{}", socket.display()),
        None,
        &dir.join("cfg"),
    );
    cmd.args(args).envs(env.iter().copied());
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(30));
    rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| {
        panic!(
            "the docker CLI sent nothing for {args:?}: {}{}",
            out.stdout, out.stderr
        )
    })
}

/// Answers one request on `conn` (one per connection: `Connection: close`). Returns the
/// request unless it was a `_ping`.
fn answer_one(mut conn: UnixStream) -> Option<Captured> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request_line = head.lines().next().unwrap_or("").to_string();
    let reply = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nApi-Version: 1.41\r\nOstype: linux\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    if request_line.contains("/_ping") {
        let _ = conn.write_all(reply("200 OK", "OK").as_bytes());
        return None;
    }
    let _ =
        conn.write_all(reply("500 Internal Server Error", r#"{"message":"captured"}"#).as_bytes());
    let end = (head_end + length).min(buf.len());
    Some(Captured {
        request_line,
        content_type: header("content-type").unwrap_or_default(),
        body: String::from_utf8_lossy(&buf[head_end..end]).into_owned(),
    })
}

#[test]
fn the_cli_classic_build_is_allowed_and_its_escapes_are_denied() {
    let oracle = Oracle::new();
    let context = fresh_dir("build-context");
    std::fs::write(context.join("Dockerfile"), "FROM scratch\n").unwrap();
    let context = context.to_str().unwrap();
    let cases: [(&[&str], bool); 4] = [
        (&[], true),
        (&["--network", "host"], false),
        (&["--network", "container:abc"], false),
        (&["--cgroup-parent", "/dockgate"], false),
    ];
    for (extra, expect_allowed) in cases {
        let args: Vec<&str> = ["build", "-t", "dgt-build"]
            .iter()
            .chain(extra)
            .chain([&context])
            .copied()
            .collect();
        let captured = capture_cli(&args, &[("DOCKER_BUILDKIT", "0")]);
        assert!(
            captured.request_line.starts_with("POST /v1.41/build?"),
            "{}",
            captured.request_line
        );
        let (allowed, explain) =
            oracle.explain("POST", captured.target(), &captured.content_type, "");
        assert_eq!(
            allowed,
            expect_allowed,
            "docker {}\n{}\n{explain}",
            args.join(" "),
            captured.request_line
        );
    }
}

#[test]
fn cli_payloads_ordinary_are_allowed_and_dangerous_are_denied() {
    let oracle = Oracle::new();
    let allowed_dir = oracle.allowed.display().to_string();
    let victim = oracle.victim.as_str();
    let bind_ok = format!("{allowed_dir}/x:/cache");
    let mount_ok = format!("type=bind,src={allowed_dir},dst=/c");
    let ordinary: Vec<Vec<&str>> = vec![
        vec![TEST_IMAGE],
        vec!["-it", TEST_IMAGE, "sh"],
        vec![
            "-e",
            "A=1",
            "-w",
            "/tmp",
            "--label",
            "x=y",
            "-p",
            "8080:80",
            "--restart",
            "on-failure:3",
            TEST_IMAGE,
            "true",
        ],
        vec![
            "-v",
            &bind_ok,
            "--mount",
            &mount_ok,
            "--mount",
            "type=tmpfs,dst=/t",
            "-v",
            "named-cache:/data",
            TEST_IMAGE,
        ],
        vec![
            "--cap-add",
            "NET_BIND_SERVICE",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            TEST_IMAGE,
        ],
        vec![
            "--network",
            "none",
            "--read-only",
            "--memory",
            "64m",
            "--pids-limit",
            "100",
            "--init",
            TEST_IMAGE,
        ],
    ];
    let pid_victim = format!("container:{victim}");
    let dangerous: Vec<Vec<&str>> = vec![
        vec!["--privileged", TEST_IMAGE],
        vec!["-v", "/:/host", TEST_IMAGE],
        vec!["--mount", "type=bind,src=/,dst=/host", TEST_IMAGE],
        vec!["--mount", "type=volume,dst=/v,volume-driver=local,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/", TEST_IMAGE],
        vec!["--pid", "host", TEST_IMAGE],
        vec!["--pid", &pid_victim, TEST_IMAGE],
        vec!["--ipc", "host", TEST_IMAGE],
        vec!["--uts", "host", TEST_IMAGE],
        vec!["--userns", "host", TEST_IMAGE],
        vec!["--network", "host", TEST_IMAGE],
        vec!["--network", &pid_victim, TEST_IMAGE],
        vec!["--cap-add", "SYS_ADMIN", TEST_IMAGE],
        vec!["--cap-add", "all", TEST_IMAGE],
        vec!["--device", "/dev/null:/dev/xnull", TEST_IMAGE],
        vec!["--device-cgroup-rule", "a *:* rwm", TEST_IMAGE],
        vec!["--security-opt", "seccomp=unconfined", TEST_IMAGE],
        vec!["--security-opt", "apparmor=unconfined", TEST_IMAGE],
        vec!["--security-opt", "systempaths=unconfined", TEST_IMAGE],
        vec!["--sysctl", "net.ipv4.ip_unprivileged_port_start=0", TEST_IMAGE],
        vec!["--cgroup-parent", "/dockgate-oracle", TEST_IMAGE],
        vec!["--volumes-from", victim, TEST_IMAGE],
        vec!["--log-driver", "syslog", "--log-opt", "syslog-address=udp://127.0.0.1:514", TEST_IMAGE],
    ];
    let mut failures = Vec::new();
    let mut dangerous_created = 0;
    for args in &ordinary {
        let body = capture_cli_create(args);
        let v = judge(&oracle, &body, "application/json");
        if !v.created || v.danger.is_some() || !v.allowed {
            failures.push(format!(
                "ordinary `docker create {}`: created={} danger={:?} allowed={}\n  body {body}\n  dockerd: {}\n  explain: {}",
                args.join(" "), v.created, v.danger, v.allowed, v.dockerd_said, v.explain
            ));
        }
    }
    for args in &dangerous {
        let body = capture_cli_create(args);
        let v = judge(&oracle, &body, "application/json");
        if v.danger.is_some() {
            dangerous_created += 1;
        }
        if v.allowed && (v.danger.is_some() || !v.created) {
            failures.push(format!(
                "`docker create {}` was allowed: created={} danger={:?}\n  body {body}\n  dockerd: {}\n  explain: {}",
                args.join(" "), v.created, v.danger, v.dockerd_said, v.explain
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The oracle has teeth: dockerd really creates most of these as dangerous containers.
    assert!(
        dangerous_created >= dangerous.len() - 4,
        "only {dangerous_created} of {} dangerous CLI payloads were created as dangerous",
        dangerous.len()
    );
}

#[test]
fn bypass_payloads_are_denied_whenever_dockerd_would_execute_them() {
    let oracle = Oracle::new();
    let allowed = oracle.allowed.display().to_string();
    let host_prefix = &host_network_id()[..12];
    let img = TEST_IMAGE;
    // name -> (body, content type)
    let json = "application/json";
    let mut payloads: BTreeMap<&str, (String, &str)> = BTreeMap::new();
    let mut add = |name, body: String, ct| {
        payloads.insert(name, (body, ct));
    };
    add(
        "lowercase key",
        format!(r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"privileged":true}}}}"#),
        json,
    );
    add(
        "uppercase key",
        format!(r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"PRIVILEGED":true}}}}"#),
        json,
    );
    add(
        "lowercase HostConfig",
        format!(r#"{{"Image":"{img}","Cmd":["true"],"hostconfig":{{"Privileged":true}}}}"#),
        json,
    );
    add(
        "escaped key",
        format!(r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"Privil\u0065ged":true}}}}"#),
        json,
    );
    add("U+017F long s", format!("{{\"Image\":\"{img}\",\"Cmd\":[\"true\"],\"HostConfig\":{{\"\u{17f}ecurityOpt\":[\"seccomp=unconfined\"]}}}}"), json);
    add(
        "U+212A kelvin",
        format!("{{\"Image\":\"{img}\",\"Cmd\":[\"true\"],\"HostConfig\":{{\"Networ\u{212a}Mode\":\"host\"}}}}"),
        json,
    );
    add(
        "duplicate key",
        format!(
            r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"Privileged":false,"Privileged":true}}}}"#
        ),
        json,
    );
    add(
        "duplicate object",
        format!(
            r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"Privileged":true}},"HostConfig":{{"Memory":0}}}}"#
        ),
        json,
    );
    add(
        "top-level Privileged",
        format!(r#"{{"Image":"{img}","Cmd":["true"],"Privileged":true}}"#),
        json,
    );
    add(
        "top-level Binds",
        format!(r#"{{"Image":"{img}","Cmd":["true"],"Binds":["/:/host"]}}"#),
        json,
    );
    add(
        "top-level PidMode",
        format!(r#"{{"Image":"{img}","Cmd":["true"],"PidMode":"host"}}"#),
        json,
    );
    add(
        "trailing bracket",
        format!(r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"Privileged":true}}}}]"#),
        json,
    );
    add(
        "charset content type",
        format!(r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"Privileged":true}}}}"#),
        "application/json; charset=utf-8",
    );
    // dockerd 20.10 records this container as attached to the host network but gives it a
    // private namespace (checked by hand: only `lo` inside), so the oracle does not call it
    // dangerous; the engine refuses hex-only network names anyway (they may be ID prefixes).
    add(
        "host network ID prefix",
        format!(
            r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"NetworkMode":"{host_prefix}"}}}}"#
        ),
        json,
    );
    add(
        "local volume bind of /",
        format!(
            r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"Mounts":[{{"Type":"volume","Target":"/v","VolumeOptions":{{"DriverConfig":{{"Name":"local","Options":{{"type":"none","o":"bind","device":"/"}}}}}}}}]}}}}"#
        ),
        json,
    );
    add(
        "MaskedPaths emptied",
        format!(r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"MaskedPaths":[]}}}}"#),
        json,
    );
    add(
        "dot-dot out of the allowed dir",
        format!(
            r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"Binds":["{allowed}/../../../..:/host"]}}}}"#
        ),
        json,
    );
    add(
        "allowed bind",
        format!(r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"Binds":["{allowed}:/c"]}}}}"#),
        json,
    );
    let must_be_dangerous = [
        "lowercase key",
        "uppercase key",
        "lowercase HostConfig",
        "escaped key",
        "U+017F long s",
        "U+212A kelvin",
        "duplicate key",
        "duplicate object",
        "top-level Privileged",
        "top-level Binds",
        "top-level PidMode",
        "charset content type",
        "local volume bind of /",
        "MaskedPaths emptied",
        "dot-dot out of the allowed dir",
    ];
    let mut failures = Vec::new();
    for (name, (body, content_type)) in &payloads {
        let v = judge(&oracle, body, content_type);
        let line = format!(
            "{name}: created={} danger={:?} allowed={}\n  body {body}\n  dockerd: {}\n  explain: {}",
            v.created, v.danger, v.allowed, v.dockerd_said, v.explain
        );
        if v.allowed && v.danger.is_some() {
            failures.push(format!("ALLOWED A DANGEROUS PAYLOAD {line}"));
        }
        if must_be_dangerous.contains(name) && v.danger.is_none() {
            failures.push(format!(
                "the oracle no longer shows this bypass (test assumption broken) {line}"
            ));
        }
        if *name == "allowed bind" && (!v.allowed || v.danger.is_some()) {
            failures.push(format!("the ordinary bind was not allowed {line}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn volume_create_with_bind_options_is_judged_by_the_volume_dockerd_made() {
    let oracle = Oracle::new();
    let allowed = oracle.allowed.display().to_string();
    let cases = [
        (
            format!(
                r#"{{"Name":"{}","Driver":"local","DriverOpts":{{"type":"none","o":"bind","device":"/"}}}}"#,
                unique_name("v")
            ),
            false,
        ),
        (
            format!(
                r#"{{"Name":"{}","Driver":"local","driverOpts":{{"type":"none","o":"bind","device":"/"}}}}"#,
                unique_name("v")
            ),
            false,
        ),
        (
            format!(
                r#"{{"Name":"{}","Driver":"local","DriverOpts":{{"type":"none","o":"bind","device":"{allowed}"}}}}"#,
                unique_name("v")
            ),
            true,
        ),
        (
            format!(
                r#"{{"Name":"{}","Driver":"local","DriverOpts":{{}},"Labels":{{}}}}"#,
                unique_name("v")
            ),
            true,
        ),
    ];
    for (body, expect_allowed) in cases {
        let (allowed_by_engine, explain) = oracle.explain(
            "POST",
            &format!("{API}/volumes/create"),
            "application/json",
            &body,
        );
        let (status, json) = docker_api(
            "POST",
            &format!("{API}/volumes/create"),
            "application/json",
            &body,
        );
        assert_eq!(status, 201, "dockerd refused {body}: {json}");
        let device = json["Options"]["device"].as_str().unwrap_or("");
        let binds_outside = json["Options"]["o"]
            .as_str()
            .is_some_and(|o| o.contains("bind"))
            && !oracle.under_allowed(device);
        let name = json["Name"].as_str().unwrap().to_string();
        docker_api(
            "DELETE",
            &format!("{API}/volumes/{name}"),
            "application/json",
            "",
        );
        assert_eq!(binds_outside, !expect_allowed, "oracle: {json}");
        assert_eq!(allowed_by_engine, expect_allowed, "{body}\n{explain}");
    }
}

#[test]
fn policy_check_prints_roles_and_names_the_line_of_an_error() {
    let dir = fresh_dir("policy-check");
    let good = dir.join("good.toml");
    std::fs::write(&good, POLICY.replace("{ALLOWED}", "/srv/ci-cache")).unwrap();
    let out = run_with_timeout(
        dockgate_command().args(["policy", "check"]).arg(&good),
        None,
        Duration::from_secs(10),
    );
    assert!(out.success(), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("role ci:"), "{}", out.stdout);
    assert!(
        out.stdout.contains("bind_mounts = [\"/srv/ci-cache\"]"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("#1 ou = [\"ci\"] -> role ci"),
        "{}",
        out.stdout
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[role.ci]\nallow = [\"read\",\n  \"exce\"]\n").unwrap();
    let out = run_with_timeout(
        dockgate_command().args(["policy", "check"]).arg(&bad),
        None,
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{}{}", out.stdout, out.stderr);
    let expected = format!("dockgate: {}:3:3: unknown group \"exce\"", bad.display());
    assert!(out.stderr.starts_with(&expected), "{}", out.stderr);
}

#[test]
fn policy_explain_prints_the_decision_and_the_rule() {
    let oracle = Oracle::new();
    let body =
        format!(r#"{{"Image":"{TEST_IMAGE}","Cmd":["true"],"HostConfig":{{"Privileged":true}}}}"#);
    let (allowed, text) = oracle.explain(
        "POST",
        "/v1.41/containers/create",
        "application/json",
        &body,
    );
    assert!(!allowed, "{text}");
    for line in [
        "decision: denied (403)\n",
        "role: ci (from [[identity]] #1 (ou = [\"ci\"]))\n",
        "rule: [role.ci.containers] privileged = false\n",
        "field: HostConfig.Privileged\n",
        "message: dockgate: access denied: CN=ci-runner-1 (role ci) may not create privileged containers (HostConfig.Privileged)\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let (allowed, text) = oracle.explain(
        "POST",
        "//v1.41/containers/create",
        "application/json",
        &body,
    );
    assert!(
        !allowed && text.contains("decision: refused (400)") && text.contains("empty path segment"),
        "{text}"
    );
    let (allowed, text) = oracle.explain("GET", "/v1.41/containers/json", "application/json", "");
    assert!(
        allowed && text.contains("rule: [role.ci] allow \"read\""),
        "{text}"
    );
}

/// A running container (`sleep 600`, no network) for exec and start payloads.
fn running_container() -> String {
    let id = create_direct(&format!(
        r#"{{"Image":"{TEST_IMAGE}","Cmd":["sleep","600"],"HostConfig":{{"NetworkMode":"none"}}}}"#
    ))
    .expect("create a sleeping container");
    let (status, json) = docker_api(
        "POST",
        &format!("{API}/containers/{id}/start"),
        "application/json",
        "",
    );
    assert_eq!(status, 204, "start {id}: {json}");
    id
}

#[test]
fn exec_payloads_are_judged_by_the_exec_dockerd_made() {
    let oracle = Oracle::new();
    let container = running_container();
    let cli_exec = r#"{"User":"","Privileged":false,"Tty":true,"ConsoleSize":[0,0],"AttachStdin":true,"AttachStderr":true,"AttachStdout":true,"Detach":false,"DetachKeys":"","Env":null,"WorkingDir":"","Cmd":["sh"]}"#;
    let cases = [
        (cli_exec, false),
        (r#"{"Cmd":["true"],"Privileged":true}"#, true),
        (r#"{"Cmd":["true"],"privileged":true}"#, true),
        (r#"{"Cmd":["true"],"PRIVILEGED":true}"#, true),
        (r#"{"Cmd":["true"],"Privil\u0065ged":true}"#, true),
        (
            r#"{"Cmd":["true"],"Privileged":false,"Privileged":true}"#,
            true,
        ),
        (r#"{"Cmd":["true"],"Privileged":true}]"#, true),
    ];
    for (body, dangerous) in cases {
        let target = format!("{API}/containers/{container}/exec");
        let (allowed, explain) = oracle.explain("POST", &target, "application/json", body);
        let (status, json) = docker_api("POST", &target, "application/json", body);
        assert_eq!(status, 201, "dockerd refused the exec {body}: {json}");
        let exec = json["Id"].as_str().unwrap();
        let (_, inspect) = docker_api(
            "GET",
            &format!("{API}/exec/{exec}/json"),
            "application/json",
            "",
        );
        let privileged = inspect["ProcessConfig"]["privileged"] == true;
        assert_eq!(privileged, dangerous, "oracle for {body}: {inspect}");
        assert_eq!(allowed, !dangerous, "{body}\n{explain}");
    }
    docker_api(
        "DELETE",
        &format!("{API}/containers/{container}?force=1"),
        "application/json",
        "",
    );
}

#[test]
fn a_start_body_on_an_old_api_version_is_refused() {
    let oracle = Oracle::new();
    // dockerd 20.10 applies a start body as the HostConfig for API versions below 1.24.
    let id = create_direct(&format!(
        r#"{{"Image":"{TEST_IMAGE}","Cmd":["true"],"HostConfig":{{}}}}"#
    ))
    .expect("create");
    let target = format!("/v1.23/containers/{id}/start");
    let body = r#"{"Binds":["/:/host"],"NetworkMode":"none"}"#;
    let (allowed, explain) = oracle.explain("POST", &target, "application/json", body);
    let (status, json) = docker_api("POST", &target, "application/json", body);
    assert!(status == 204 || status == 200, "start: {status} {json}");
    let inspect = inspect_and_remove(&id);
    // The start body replaced the whole HostConfig: the bind, and MaskedPaths emptied.
    assert_eq!(
        strings(&inspect["HostConfig"]["Binds"]),
        ["/:/host"],
        "oracle: {inspect}"
    );
    assert!(oracle.danger(&inspect).is_some(), "oracle: {inspect}");
    assert!(
        !allowed && explain.contains("decision: refused (400)"),
        "{explain}"
    );
    let (allowed, explain) = oracle.explain(
        "POST",
        &format!("{API}/containers/{id}/start"),
        "application/json",
        "",
    );
    assert!(allowed, "{explain}");
}

/// A bridge network made straight at dockerd (its Linux bridge gets a name of its own: the
/// test dockerd runs with `--bridge=none`); returns its name.
fn bridge_network(prefix: &str) -> String {
    let name = unique_name(prefix);
    let bridge = format!("dgt{}", &name[name.len() - 8..]);
    let (status, json) = docker_api(
        "POST",
        &format!("{API}/networks/create"),
        "application/json",
        &format!(
            r#"{{"Name":"{name}","Driver":"bridge","Options":{{"com.docker.network.bridge.name":"{bridge}"}}}}"#
        ),
    );
    assert_eq!(status, 201, "network create: {json}");
    name
}

fn remove_network(name: &str) {
    docker_api(
        "DELETE",
        &format!("{API}/networks/{name}"),
        "application/json",
        "",
    );
}

/// `docker network connect` bodies, each sent straight to dockerd for a fresh container: the
/// driver options dockerd stored for the endpoint (inspect, `NetworkSettings.Networks`) say
/// whether the payload reached the driver; the engine must deny every such payload and allow
/// what the docker CLI sends for a plain connect.
#[test]
fn network_connect_payloads_are_judged_by_the_endpoint_dockerd_made() {
    let oracle = Oracle::new();
    let home = bridge_network("home");
    let net = bridge_network("conn");
    let target = format!("{API}/networks/{net}/connect");
    let plain_cli = capture_cli(&["network", "connect", "--alias", "a", &net, "web"], &[]);
    let opts_cli = capture_cli(
        &[
            "network",
            "connect",
            "--driver-opt",
            "com.docker.network.endpoint.ifname=dgt0",
            &net,
            "web",
        ],
        &[],
    );
    for captured in [&plain_cli, &opts_cli] {
        assert_eq!(
            captured.request_line,
            format!("POST {target} HTTP/1.1"),
            "{}",
            captured.body
        );
    }
    // Each payload names its container as {C}; the CLI's name `web` is replaced by it.
    let opts = r#"{"com.docker.network.endpoint.ifname":"dgt0"}"#;
    let json = "application/json";
    let mut payloads: Vec<(&str, String, &str, bool)> = vec![
        (
            "docker CLI connect",
            plain_cli.body.replace("\"web\"", "\"{C}\""),
            json,
            false,
        ),
        (
            "docker CLI --driver-opt",
            opts_cli.body.replace("\"web\"", "\"{C}\""),
            json,
            true,
        ),
    ];
    let mut add = |name, body: String, content_type, must_be_dangerous| {
        payloads.push((name, body, content_type, must_be_dangerous));
    };
    add(
        "DriverOpts",
        format!(r#"{{"Container":"{{C}}","EndpointConfig":{{"DriverOpts":{opts}}}}}"#),
        json,
        true,
    );
    add(
        "lowercase driverOpts",
        format!(r#"{{"Container":"{{C}}","EndpointConfig":{{"driverOpts":{opts}}}}}"#),
        json,
        true,
    );
    add(
        "uppercase DRIVEROPTS",
        format!(r#"{{"Container":"{{C}}","EndpointConfig":{{"DRIVEROPTS":{opts}}}}}"#),
        json,
        true,
    );
    add(
        "lowercase endpointconfig",
        format!(r#"{{"Container":"{{C}}","endpointconfig":{{"DriverOpts":{opts}}}}}"#),
        json,
        true,
    );
    add(
        "escaped key",
        format!(r#"{{"Container":"{{C}}","EndpointConfig":{{"Driver\u004fpts":{opts}}}}}"#),
        json,
        true,
    );
    add(
        "U+017F long s",
        format!("{{\"Container\":\"{{C}}\",\"EndpointConfig\":{{\"DriverOpt\u{17f}\":{opts}}}}}"),
        json,
        true,
    );
    add(
        "duplicate EndpointConfig objects",
        format!(
            r#"{{"Container":"{{C}}","EndpointConfig":{{"DriverOpts":{opts}}},"EndpointConfig":{{"Aliases":["x"]}}}}"#
        ),
        json,
        true,
    );
    add(
        "duplicate DriverOpts maps",
        format!(
            r#"{{"Container":"{{C}}","EndpointConfig":{{"DriverOpts":{opts},"DriverOpts":{{}}}}}}"#
        ),
        json,
        true,
    );
    add(
        "trailing bracket",
        format!(r#"{{"Container":"{{C}}","EndpointConfig":{{"DriverOpts":{opts}}}}}]"#),
        json,
        true,
    );
    add(
        "charset content type",
        format!(r#"{{"Container":"{{C}}","EndpointConfig":{{"DriverOpts":{opts}}}}}"#),
        "application/json; charset=utf-8",
        true,
    );
    add(
        "empty DriverOpts",
        r#"{"Container":"{C}","EndpointConfig":{"DriverOpts":{}}}"#.to_string(),
        json,
        false,
    );
    let mut failures = Vec::new();
    for (name, body, content_type, must_be_dangerous) in &payloads {
        let container = create_direct(&format!(
            r#"{{"Image":"{TEST_IMAGE}","Cmd":["true"],"HostConfig":{{"NetworkMode":"{home}"}}}}"#
        ))
        .expect("create a container on the home network");
        let body = body.replace("{C}", &container);
        let (allowed, explain) = oracle.explain("POST", &target, content_type, &body);
        let (status, json) = docker_api("POST", &target, content_type, &body);
        let inspect = inspect_and_remove(&container);
        let endpoint = &inspect["NetworkSettings"]["Networks"][&net];
        let connected = status == 200 && endpoint.is_object();
        let dangerous = connected && non_empty(&endpoint["DriverOpts"]);
        let line = format!(
            "{name}: dockerd {status} {json}, endpoint {endpoint}, allowed={allowed}\n  body {body}\n  explain: {explain}"
        );
        if allowed && dangerous {
            failures.push(format!("ALLOWED DRIVER OPTIONS {line}"));
        }
        if *must_be_dangerous && !dangerous {
            failures.push(format!(
                "the oracle no longer shows this payload reaching the driver (test assumption broken) {line}"
            ));
        }
        if !must_be_dangerous && (!allowed || !connected || dangerous) {
            failures.push(format!(
                "the ordinary connect was not allowed and made {line}"
            ));
        }
    }
    remove_network(&net);
    remove_network(&home);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
