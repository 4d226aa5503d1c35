//! `--policy` in force, through the real docker CLI and a real dockerd: per-role flows, the 403
//! that keeps the connection, reloads that cut what a role lost, audit mode, start-up.
//!
//! Roles by certificate: bob is `observer`, carol is `ci`, alice is `admin`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::cli::BIG_TIMEOUT;
use crate::common::gate::GateBuilder;
use crate::common::tls::{exchange, RawTls};
use crate::common::util::{fresh_dir, run_with_timeout, unique_name};
use crate::common::{pki, Docker, Gate, TEST_IMAGE};

const WAIT: Duration = Duration::from_secs(15);

fn policy_text(mode: &str, ci_allow: &str) -> String {
    format!(
        r#"
mode = "{mode}"
default_role = "none"
[[identity]]
cn = ["alice"]
role = "admin"
[[identity]]
cn = ["carol"]
role = "ci"
[[identity]]
cn = ["bob"]
role = "observer"
[role.admin]
allow = ["all"]
[role.ci]
allow = [{ci_allow}]
[role.observer]
allow = ["read"]
"#
    )
}

const CI_ALLOW: &str =
    r#""read", "logs", "files", "containers", "exec", "images", "build", "volumes", "networks""#;

fn write_policy(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("policy.toml");
    // Written beside and renamed, so the watcher never reads half a file.
    let tmp = dir.join("policy.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

fn gate_with(policy: &Path) -> Gate {
    GateBuilder::standard()
        .flags(&["--policy", policy.to_str().unwrap()])
        .start()
}

fn enforcing() -> Gate {
    let dir = fresh_dir("policy");
    gate_with(&write_policy(&dir, &policy_text("enforce", CI_ALLOW)))
}

/// `docker args...` fails with the gate's 403 message for `subject` in `role`.
fn denied(docker: &Docker, args: &[&str], subject: &str, role: &str) {
    let out = docker.fails(args);
    let wanted = format!("dockgate: access denied: {subject} (role {role})");
    assert!(
        out.stderr.contains(&wanted),
        "docker {args:?}: expected {wanted:?} in:\n{}",
        out.stderr
    );
}

#[test]
fn observer_reads_and_is_denied_everything_else() {
    let gate = enforcing();
    let bob = Docker::via(&gate, &pki().bob);
    let c = Docker::direct().run_detached(&["sleep", "600"]);

    assert!(bob.ok(&["ps", "--format", "{{.Names}}"]).contains(&c.name));
    assert!(bob
        .ok(&["images", "--format", "{{.Repository}}"])
        .contains(TEST_IMAGE));
    assert!(bob
        .ok(&["inspect", "--format", "{{.Name}}", &c.name])
        .contains(&c.name));
    bob.ok(&["events", "--since", "1", "--until", "2"]);

    for args in [
        &["run", "--rm", TEST_IMAGE, "true"][..],
        &["exec", &c.name, "true"],
        &["logs", &c.name],
        &["cp", &format!("{}:/etc/hostname", c.name), "-"],
        &["rm", "-f", &c.name],
        &["pull", "busybox:latest"],
    ] {
        denied(&bob, args, "CN=bob", "observer");
    }
    // Nothing of it reached Docker: the container still runs.
    let running = Docker::direct().ok(&["inspect", "--format", "{{.State.Running}}", &c.name]);
    assert_eq!(running.trim(), "true");

    let line = gate.wait_for_log(
        &["request denied", "subject=\"CN=bob\"", "role=observer"],
        WAIT,
    );
    assert!(line.contains("rule="), "{line}");
    let ps = gate.wait_for_log(
        &["request", "status=200", "CN=bob", "/containers/json"],
        WAIT,
    );
    assert!(ps.contains("role=observer"), "{ps}");
}

#[test]
fn ci_runs_builds_and_execs_but_cannot_escalate() {
    let gate = enforcing();
    let carol = Docker::via(&gate, &pki().carol);

    assert_eq!(carol.ok(&["run", "--rm", TEST_IMAGE, "echo", "ok"]), "ok\n");
    let c = carol.run_detached(&["sleep", "600"]);
    let inner = format!("docker exec -it {} sh -c 'echo tty-ok'", c.name);
    let mut script = carol.with_env("script", &["-qec", &inner, "/dev/null"]);
    let out = run_with_timeout(&mut script, None, Duration::from_secs(60));
    assert!(
        out.stdout.contains("tty-ok"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    carol.ok(&["logs", &c.name]);
    let dir = fresh_dir("ci-cp");
    let file = dir.join("f.txt");
    std::fs::write(&file, "hello").unwrap();
    carol.ok(&["cp", file.to_str().unwrap(), &format!("{}:/f.txt", c.name)]);
    assert_eq!(carol.ok(&["exec", &c.name, "cat", "/f.txt"]), "hello");

    let ctx = fresh_dir("ci-build");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {TEST_IMAGE}\nRUN true\n"),
    )
    .unwrap();
    let tag = format!("dockgate-test/ci:{}", unique_name("b"));
    let mut build = carol.command(&["build", "-t", &tag, ctx.to_str().unwrap()]);
    build.env("DOCKER_BUILDKIT", "0");
    let out = run_with_timeout(&mut build, None, BIG_TIMEOUT);
    carol.assert_success(&["build"], &out);
    let mut host_build = carol.command(&["build", "--network", "host", ctx.to_str().unwrap()]);
    host_build.env("DOCKER_BUILDKIT", "0");
    let out = run_with_timeout(&mut host_build, None, BIG_TIMEOUT);
    assert!(
        !out.success()
            && out
                .stderr
                .contains("dockgate: access denied: CN=carol (role ci)"),
        "build --network host: {}",
        out.stderr
    );
    let _ = Docker::direct().run(&["rmi", "-f", &tag]);

    for extra in [
        &["--privileged"][..],
        &["-v", "/:/host"],
        &["--pid", "host"],
        &["--network", "host"],
        &["--cap-add", "SYS_ADMIN"],
        &["--device", "/dev/null"],
        &["--security-opt", "seccomp=unconfined"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[TEST_IMAGE, "true"]);
        denied(&carol, &args, "CN=carol", "ci");
    }
    denied(
        &carol,
        &["exec", "--privileged", &c.name, "true"],
        "CN=carol",
        "ci",
    );
    let volume = unique_name("v");
    denied(
        &carol,
        &[
            "volume",
            "create",
            "--opt",
            "type=none",
            "--opt",
            "o=bind",
            "--opt",
            "device=/",
            &volume,
        ],
        "CN=carol",
        "ci",
    );
    assert_eq!(carol.ok(&["rm", "-f", &c.name]).trim(), c.name);
}

#[test]
fn admin_may_do_all_of_it() {
    let gate = enforcing();
    let alice = Docker::via(&gate, &pki().alice);
    let args = [
        "run",
        "--rm",
        "-v",
        "/:/host",
        "--network",
        "host",
        "--pid",
        "host",
    ];
    let out = alice.ok(&[&args[..], &[TEST_IMAGE, "echo", "ok"]].concat());
    assert_eq!(out, "ok\n");
    // This sandbox cannot start privileged containers; creating one shows the gate let it by.
    let name = unique_name("priv");
    alice.ok(&[
        "create",
        "--name",
        &name,
        "--privileged",
        "--cap-add",
        "SYS_ADMIN",
        TEST_IMAGE,
        "true",
    ]);
    let privileged =
        Docker::direct().ok(&["inspect", "--format", "{{.HostConfig.Privileged}}", &name]);
    let _ = Docker::direct().run(&["rm", "-f", &name]);
    assert_eq!(privileged.trim(), "true");
    let line = gate.wait_for_log(&["request", "CN=alice", "/containers/create"], WAIT);
    assert!(line.contains("role=admin"), "{line}");
}

#[test]
fn a_denial_keeps_the_connection_usable() {
    let gate = enforcing();
    let mut tls = RawTls::connect(gate.port, Some(&pki().bob));
    let body = format!(r#"{{"Image":"{TEST_IMAGE}"}}"#);
    let request = format!(
        "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.send(request.as_bytes()).unwrap();
    let (status, head, body) = tls.read_response();
    assert_eq!(status, 403, "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .starts_with("dockgate: access denied: CN=bob (role observer)"),
        "{json}"
    );
    tls.ping("the request after a 403, on the same connection");
}

/// Carol's open `exec -it`-style session is cut when her role loses `exec`; new execs get
/// 403; a broken file afterwards keeps the policy in force.
#[test]
fn a_reload_cuts_sessions_the_role_lost_and_a_broken_file_keeps_the_policy() {
    let dir = fresh_dir("policy-reload");
    let path = write_policy(&dir, &policy_text("enforce", CI_ALLOW));
    let gate = gate_with(&path);
    let logs = gate.logs_handle();
    let c = Docker::direct().run_detached(&["sleep", "600"]);
    let carol = Docker::via(&gate, &pki().carol);
    let mut session = carol.exec_cat(&c.name);
    session.send_line("before").unwrap();
    session.expect_line("before", WAIT);

    let without_exec = CI_ALLOW.replace(r#", "exec""#, "");
    write_policy(&dir, &policy_text("enforce", &without_exec));
    gate.sighup();
    let cut = logs.wait_for(&["connection cut", "subject=\"CN=carol\"", "policy"], WAIT);
    assert!(
        cut.contains("/exec/") && cut.contains(path.to_str().unwrap()),
        "{cut}"
    );
    assert!(session.wait_exit(WAIT).is_some(), "the cut session ended");
    denied(&carol, &["exec", &c.name, "true"], "CN=carol", "ci");

    std::fs::write(&path, "mode = \"enforce\"\n[[identity]\n").unwrap();
    gate.sighup();
    let error = logs.wait_for(
        &["policy reload failed", "previous policy stays in force"],
        WAIT,
    );
    assert!(error.contains("ERROR"), "{error}");
    denied(&carol, &["exec", &c.name, "true"], "CN=carol", "ci");
    carol.ok(&["ps"]);
}

/// Long plain requests are re-checked too: carol's `logs -f` is cut when her role loses
/// `logs`, while her `docker events` (still allowed: `read`) goes on and sees the next event.
#[test]
fn a_reload_cuts_a_log_stream_the_role_lost_and_keeps_what_it_still_allows() {
    let dir = fresh_dir("policy-reload-plain");
    let path = write_policy(&dir, &policy_text("enforce", CI_ALLOW));
    let gate = gate_with(&path);
    let logs = gate.logs_handle();
    let c = Docker::direct().run_detached(&["sh", "-c", "while true; do echo tick; sleep 1; done"]);
    let carol = Docker::via(&gate, &pki().carol);
    let mut follow = carol.stream(&["logs", "-f", &c.name]);
    follow.expect_line("tick", WAIT);
    let label = unique_name("after-reload");
    let label_filter = format!("label={label}");
    let mut events = carol.stream(&["events", "--filter", &label_filter]);
    // `docker events` has sent its request once the gate logged its start.
    logs.wait_for(&["request start", "subject=\"CN=carol\"", "/events"], WAIT);

    let without_logs = CI_ALLOW.replace(r#", "logs""#, "");
    write_policy(&dir, &policy_text("enforce", &without_logs));
    gate.sighup();
    let cut = logs.wait_for(&["connection cut", "subject=\"CN=carol\"", "policy"], WAIT);
    assert!(cut.contains("/logs"), "{cut}");
    assert!(follow.wait_exit(WAIT).is_some(), "docker logs -f ended");
    denied(&carol, &["logs", &c.name], "CN=carol", "ci");

    assert!(events.is_running(), "docker events was cut too");
    let created = unique_name("evt");
    Docker::direct().ok(&[
        "create", "--label", &label, "--name", &created, TEST_IMAGE, "true",
    ]);
    events.expect_line_containing(&created, WAIT);
    let _ = Docker::direct().run(&["rm", "-f", &created]);
    assert_eq!(
        logs.lines_with(&["connection cut", "subject=\"CN=carol\""])
            .len(),
        1,
        "{}",
        logs.text()
    );
}

#[test]
fn audit_mode_forwards_and_logs_would_deny() {
    let dir = fresh_dir("policy-audit");
    let gate = gate_with(&write_policy(&dir, &policy_text("audit", CI_ALLOW)));
    let bob = Docker::via(&gate, &pki().bob);
    assert_eq!(bob.ok(&["run", "--rm", TEST_IMAGE, "echo", "ok"]), "ok\n");
    let line = gate.wait_for_log(&["would deny", "CN=bob", "role=observer"], WAIT);
    assert!(line.contains("WARN"), "{line}");
    assert!(gate.logs().lines().all(|l| !l.contains("request denied")));
}

#[test]
fn start_without_policy_warns_and_a_broken_policy_exits_2_naming_line_and_column() {
    let gate = Gate::standard();
    gate.wait_for_log(&["WARN", "no --policy", "full access"], WAIT);

    let dir = fresh_dir("policy-broken");
    let path = dir.join("broken.toml");
    std::fs::write(&path, "mode = \"enforce\"\ndefault_role = 7\n").unwrap();
    let out = GateBuilder::standard()
        .flags(&["--policy", path.to_str().unwrap()])
        .run_to_exit();
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{}:2:", path.display())),
        "{}",
        out.stderr
    );
}

/// Ways to smuggle a privileged container past a decision, sent by hand as carol (ci): none
/// may create a container (each payload carries a label the check looks for afterwards).
#[test]
fn bypass_attempts_through_the_gate_create_nothing() {
    let gate = enforcing();
    let label = unique_name("bypass");
    let image = TEST_IMAGE;
    let json = |host_config: &str| {
        format!(
            r#"{{"Image":"{image}","Cmd":["true"],"Labels":{{"dockgate.bypass":"{label}"}}{host_config}}}"#
        )
    };
    let with_length = |target: &str, content_type: &str, body: &str| {
        format!(
            "POST {target} HTTP/1.1\r\nHost: d\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let privileged = json(r#","HostConfig":{"Privileged":true}"#);
    let create = "/v1.41/containers/create";
    let chunked = format!(
        "POST {create} HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{privileged}\r\n0\r\n\r\n",
        privileged.len()
    );
    let attempts = [
        ("chunked body", chunked),
        (
            "lower-case keys",
            with_length(create, "application/json", &json(r#","hostconfig":{"privileged":true}"#)),
        ),
        (
            "duplicate keys",
            with_length(
                create,
                "application/json",
                &json(r#","HostConfig":{"Privileged":false,"Privileged":true}"#),
            ),
        ),
        (
            "duplicate HostConfig objects",
            with_length(
                create,
                "application/json",
                &json(r#","HostConfig":{},"HostConfig":{"Privileged":true}"#),
            ),
        ),
        (
            "top-level HostConfig field",
            with_length(create, "application/json", &json(r#","Privileged":true"#)),
        ),
        (
            "charset in the content type",
            with_length(create, "application/json; charset=utf-8", &privileged),
        ),
        (
            "escaped key",
            with_length(
                create,
                "application/json",
                &json(r#","HostConfig":{"Privil\u0065ged":true}"#),
            ),
        ),
        (
            "Content-Length 0 with a body",
            format!(
                "POST {create} HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n{privileged}"
            ),
        ),
        (
            "version prefix and encoded path",
            with_length("/v1.41/containers/cre%61te", "application/json", &privileged),
        ),
        (
            "encoded slash",
            with_length("/v1.41/containers%2Fcreate", "application/json", &privileged),
        ),
        (
            "doubled slash",
            with_length("/v1.41//containers/create", "application/json", &privileged),
        ),
        (
            "absolute-form target",
            with_length("http://d/v1.41/containers/create", "application/json", &privileged),
        ),
    ];
    for (what, request) in &attempts {
        let mut tls = RawTls::connect(gate.port, Some(&pki().carol));
        tls.send(request.as_bytes()).unwrap();
        let (status, head, _) = tls.read_response();
        assert!(
            status == 400 || status == 403,
            "{what}: answered {status}\n{head}"
        );
    }
    let created = Docker::direct().ok(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=dockgate.bypass={label}"),
    ]);
    assert_eq!(created.trim(), "", "a bypass created a container");
}

/// A create body in broken chunked framing (one the policy must read, as carol's role is
/// inspected) gets the gate's own 400 with a JSON message, `Connection: close` and one
/// `request refused` line, and never reaches dockerd: the ordinary create it carries, which the
/// same body in good framing makes, creates nothing.
#[test]
fn a_malformed_chunked_create_is_400_and_creates_nothing() {
    let gate = enforcing();
    let label = unique_name("malformed");
    let body = format!(
        r#"{{"Image":"{TEST_IMAGE}","Cmd":["true"],"Labels":{{"dockgate.malformed":"{label}"}},"HostConfig":{{}}}}"#
    );
    let head = "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let size = body.len();
    let cases = [
        (format!("zz\r\n{body}\r\n0\r\n\r\n"), "invalid chunk size"),
        // No CRLF after the data: the last chunk's size line runs into it.
        (
            format!("{size:x}\r\n{body}0\r\n\r\n"),
            "chunk data longer than its size",
        ),
        (
            format!("{:x}\r\n{body}\r\n0\r\n\r\n", size - 1),
            "chunk data longer than its size",
        ),
        (
            format!("{}\r\n{body}\r\n0\r\n\r\n", "0".repeat(5000)),
            "chunk size line too long",
        ),
        (
            format!("1{}\r\n{body}\r\n0\r\n\r\n", "0".repeat(16)),
            "invalid chunk size",
        ),
    ];
    for (chunked, why) in &cases {
        let out = exchange(
            gate.port,
            Some(&pki().carol),
            format!("{head}{chunked}").as_bytes(),
        );
        let text = out.text();
        let (answer_head, answer_body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        assert_eq!(out.status(), Some(400), "{why}: {text}");
        assert!(answer_head.contains("Connection: close"), "{why}: {text}");
        let json: serde_json::Value = serde_json::from_str(answer_body).unwrap_or_else(|e| {
            panic!("{why}: the answer's body is not one JSON value ({e}): {text}")
        });
        let message = format!("dockgate: bad request: malformed chunked body: {why}");
        assert_eq!(json["message"], message.as_str(), "{text}");
        gate.wait_for_log(
            &[
                "WARN",
                "request refused",
                "subject=\"CN=carol\"",
                "method=POST",
                "path=/v1.41/containers/create",
                "status=400",
                &format!("reason=\"{message}\""),
            ],
            WAIT,
        );
    }
    let created = |label: &str| {
        Docker::direct().ok(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=dockgate.malformed={label}"),
        ])
    };
    assert_eq!(
        created(&label).trim(),
        "",
        "a malformed body reached dockerd"
    );

    // The same create in good framing is allowed and made: the check above has teeth.
    let good_label = unique_name("wellformed");
    let good_body = body.replace(&label, &good_label);
    let good = format!("{head}{:x}\r\n{good_body}\r\n0\r\n\r\n", good_body.len());
    let mut tls = RawTls::connect(gate.port, Some(&pki().carol));
    tls.send(good.as_bytes()).unwrap();
    let (status, answer, _) = tls.read_response();
    assert_eq!(status, 201, "{answer}");
    let id = created(&good_label);
    assert_ne!(id.trim(), "", "the well-formed create made no container");
    Docker::direct().ok(&["rm", "-f", id.trim()]);
}

/// `docker network connect` through the gate: carol (ci, `networks` allowed) connects a
/// container, but not with endpoint driver options; alice (admin, not inspected) may.
#[test]
fn network_connect_with_driver_options_is_denied_to_inspected_roles() {
    let gate = enforcing();
    let carol = Docker::via(&gate, &pki().carol);
    let alice = Docker::via(&gate, &pki().alice);
    let direct = Docker::direct();
    let network = unique_name("gate-net");
    let bridge = format!("dgt{}", &network[network.len() - 8..]);
    direct.ok(&[
        "network",
        "create",
        "-o",
        &format!("com.docker.network.bridge.name={bridge}"),
        &network,
    ]);
    let endpoint_opts = |container: &str| {
        direct.ok(&[
            "inspect",
            "--format",
            &format!("{{{{json (index .NetworkSettings.Networks \"{network}\").DriverOpts}}}}"),
            container,
        ])
    };
    let [denied_to, plain, by_admin] = ["opts", "plain", "admin"].map(|what| {
        let name = unique_name(what);
        direct.ok(&[
            "create",
            "--name",
            &name,
            "--network",
            "none",
            TEST_IMAGE,
            "true",
        ]);
        // Off `none`, so the container may join another network.
        direct.ok(&["network", "disconnect", "none", &name]);
        name
    });
    let opt = "com.docker.network.endpoint.ifname=dgt0";

    denied(
        &carol,
        &[
            "network",
            "connect",
            "--driver-opt",
            opt,
            &network,
            &denied_to,
        ],
        "CN=carol",
        "ci",
    );
    let line = gate.wait_for_log(&["request denied", "CN=carol", "/connect"], WAIT);
    assert!(line.contains("field=EndpointConfig.DriverOpts"), "{line}");
    let networks = direct.ok(&[
        "inspect",
        "--format",
        "{{json .NetworkSettings.Networks}}",
        &denied_to,
    ]);
    assert!(
        !networks.contains(&network),
        "the denied connect reached dockerd: {networks}"
    );

    carol.ok(&["network", "connect", &network, &plain]);
    assert_eq!(endpoint_opts(&plain).trim(), "{}");
    alice.ok(&[
        "network",
        "connect",
        "--driver-opt",
        opt,
        &network,
        &by_admin,
    ]);
    assert!(endpoint_opts(&by_admin).contains("dgt0"));

    for name in [&denied_to, &plain, &by_admin] {
        let _ = direct.run(&["rm", "-f", name]);
    }
    let _ = direct.run(&["network", "rm", &network]);
}
