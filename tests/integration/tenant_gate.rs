//! Tenants through the running gate (issue #13): the real docker CLI as team-a and team-b (role
//! `ci` with `own`) and alice (`all`), a real dockerd. Each tenant sees and touches only what
//! its owner created; another tenant's container is `No such container` by name, full ID and ID
//! prefix; the owner label cannot be spoofed or inherited from an image; an action lands on the
//! container that was checked even when the name is taken over between check and action.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::cli::docker_command;
use crate::common::dockerd::{docker_api_json, dockerd};
use crate::common::gate::GateBuilder;
use crate::common::tls::RawTls;
use crate::common::util::{fresh_dir, poll, run_with_timeout, unique_name};
use crate::common::{pki, Docker, Gate, TEST_IMAGE};

const API: &str = "/v1.41";
const WAIT: Duration = Duration::from_secs(15);

const POLICY: &str = r#"
default_role = "none"
[[identity]]
cn = ["alice"]
role = "admin"
[[identity]]
cn = ["team-a", "team-b"]
role = "ci"
[role.admin]
allow = ["all"]
[role.ci]
allow = ["read", "logs", "files", "containers", "exec", "images", "build", "volumes", "networks"]
own = ["containers", "volumes", "networks", "exec"]
"#;

fn policy_file() -> PathBuf {
    let path = fresh_dir("tenant-gate").join("policy.toml");
    std::fs::write(&path, POLICY).unwrap();
    path
}

fn gate() -> Gate {
    GateBuilder::standard()
        .flags(&["--policy", policy_file().to_str().unwrap()])
        .start()
}

/// dockerd's view of a container: `None` when it does not exist.
fn inspect_direct(reference: &str) -> Option<Value> {
    let (status, json) = docker_api_json("GET", &format!("{API}/containers/{reference}/json"), "");
    (status == 200).then_some(json)
}

fn owner_label(reference: &str) -> Value {
    inspect_direct(reference).expect("container exists")["Config"]["Labels"]["dockgate.owner"]
        .clone()
}

/// Removes the named containers (directly) when dropped.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            docker_api_json("DELETE", &format!("{API}/containers/{name}?force=1"), "");
        }
    }
}

/// A 3-character prefix of `id`.
fn prefix(id: &str) -> String {
    id[..3].to_string()
}

fn no_such_container(docker: &Docker, args: &[&str]) {
    let out = docker.fails(args);
    assert!(
        out.stderr.contains("No such container"),
        "docker {args:?}: expected No such container, got:\n{}",
        out.stderr
    );
}

#[test]
fn tenant_gate_another_tenants_container_is_no_such_container() {
    let gate = gate();
    let a = Docker::via(&gate, &pki().team_a);
    let b = Docker::via(&gate, &pki().team_b);
    let web = unique_name("web");
    let attachable = unique_name("att");
    let _cleanup = Cleanup(vec![web.clone(), attachable.clone()]);
    a.ok(&["run", "-d", "--name", &web, TEST_IMAGE, "sleep", "600"]);
    let id = a
        .ok(&["container", "inspect", "--format", "{{.Id}}", &web])
        .trim()
        .to_string();
    assert_eq!(owner_label(&id), "team-a");

    let listed = |docker: &Docker| docker.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(listed(&a).lines().any(|n| n == web));
    assert!(!listed(&b).contains(&web), "{}", listed(&b));

    for reference in [web.as_str(), id.as_str(), &prefix(&id)] {
        let from = format!("{reference}:/etc/hostname");
        let renamed = unique_name("stolen");
        for args in [
            &["logs", reference][..],
            &["exec", reference, "true"],
            &["stop", "-t", "0", reference],
            &["rm", reference],
            &["container", "inspect", reference],
            &["cp", &from, "-"],
            &["attach", "--no-stdin", reference],
            &["rename", reference, &renamed],
        ] {
            no_such_container(&b, args);
        }
    }
    let line = gate.wait_for_log(
        &[
            "tenancy refused",
            "subject=\"CN=team-b\"",
            "owner=team-b",
            "status=404",
        ],
        WAIT,
    );
    assert!(line.contains("owned by team-a"), "{line}");
    // Untouched: still running, still named web.
    let state = inspect_direct(&id).unwrap();
    assert_eq!(state["State"]["Running"], true);
    assert_eq!(state["Name"], format!("/{web}"));

    // team-a does all of it, by name, by full ID and by ID prefix.
    assert_eq!(a.ok(&["exec", &web, "echo", "by-name"]), "by-name\n");
    assert_eq!(a.ok(&["exec", &id, "echo", "by-id"]), "by-id\n");
    assert_eq!(
        a.ok(&["exec", &prefix(&id), "echo", "by-prefix"]),
        "by-prefix\n"
    );
    a.ok(&["logs", &prefix(&id)]);
    a.ok(&["container", "inspect", &prefix(&id)]);
    let hostname = a.ok(&["cp", &format!("{}:/etc/hostname", prefix(&id)), "-"]);
    assert!(!hostname.is_empty());
    let renamed = unique_name("web2");
    a.ok(&["rename", &prefix(&id), &renamed]);
    a.ok(&["rename", &id, &web]);
    let line = gate.wait_for_log(
        &[
            "request",
            "subject=\"CN=team-a\"",
            "owner=team-a",
            "/rename",
        ],
        WAIT,
    );
    assert!(line.contains(&format!("id={id}")), "{line}");
    // `start -a` attaches before it starts, so the output cannot be missed however slow the
    // machine is (a `run -d` then `attach` races the container's exit).
    a.ok(&[
        "create",
        "--name",
        &attachable,
        TEST_IMAGE,
        "sh",
        "-c",
        "echo attached-ok",
    ]);
    let attached = a.ok(&["start", "-a", &attachable]);
    assert!(attached.contains("attached-ok"), "{attached}");
    a.ok(&["stop", "-t", "0", &prefix(&id)]);
    a.ok(&["rm", &id]);
    assert!(inspect_direct(&id).is_none());
}

#[test]
fn tenant_gate_admins_see_all_and_their_containers_have_no_owner() {
    let gate = gate();
    let a = Docker::via(&gate, &pki().team_a);
    let alice = Docker::via(&gate, &pki().alice);
    let theirs = unique_name("admin");
    let mine = unique_name("mine");
    let _cleanup = Cleanup(vec![theirs.clone(), mine.clone()]);
    alice.ok(&["run", "-d", "--name", &theirs, TEST_IMAGE, "sleep", "600"]);
    a.ok(&["run", "-d", "--name", &mine, TEST_IMAGE, "sleep", "600"]);
    assert_eq!(owner_label(&theirs), Value::Null);
    assert_eq!(owner_label(&mine), "team-a");
    let seen_by_a = a.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(
        seen_by_a.contains(&mine) && !seen_by_a.contains(&theirs),
        "{seen_by_a}"
    );
    no_such_container(&a, &["stop", "-t", "0", &theirs]);
    let seen_by_alice = alice.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(
        seen_by_alice.contains(&mine) && seen_by_alice.contains(&theirs),
        "{seen_by_alice}"
    );
    assert_eq!(alice.ok(&["exec", &mine, "echo", "admin"]), "admin\n");
    alice.ok(&["rm", "-f", &mine]);
    assert!(inspect_direct(&mine).is_none());
}

#[test]
fn tenant_gate_the_owner_label_cannot_be_claimed_or_inherited() {
    let gate = gate();
    let a = Docker::via(&gate, &pki().team_a);
    let b = Docker::via(&gate, &pki().team_b);
    for key in ["dockgate.owner", "Dockgate.Owner", "DOCKGATE.OWNER"] {
        let name = unique_name("spoof");
        let _cleanup = Cleanup(vec![name.clone()]);
        let label = format!("{key}=team-a");
        let out = b.fails(&[
            "run", "-d", "--name", &name, "--label", &label, TEST_IMAGE, "true",
        ]);
        assert!(
            out.stderr.contains("dockgate: access denied"),
            "{key}: {}",
            out.stderr
        );
        assert!(inspect_direct(&name).is_none(), "{key}: created");
    }

    // An image that carries LABEL dockgate.owner=team-b, run by team-a, is team-a's.
    let ctx = fresh_dir("tenant-gate-image");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {TEST_IMAGE}\nLABEL dockgate.owner=team-b\n"),
    )
    .unwrap();
    let tag = unique_name("labelled");
    let out = run_with_timeout(
        docker_command(&dockerd().host, None, &ctx.join("cfg"))
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", &tag])
            .arg(&ctx),
        None,
        Duration::from_secs(120),
    );
    assert!(out.success(), "docker build: {}{}", out.stdout, out.stderr);
    let name = unique_name("inherit");
    let _cleanup = Cleanup(vec![name.clone()]);
    a.ok(&["run", "-d", "--name", &name, &tag, "sleep", "600"]);
    assert_eq!(owner_label(&name), "team-a");
    assert!(a.ok(&["ps", "--format", "{{.Names}}"]).contains(&name));
    assert!(!b
        .ok(&["ps", "-a", "--format", "{{.Names}}"])
        .contains(&name));
    no_such_container(&b, &["exec", &name, "true"]);
    drop(_cleanup);
    docker_api_json("DELETE", &format!("{API}/images/{tag}?force=1"), "");
}

/// One request over a fresh TLS connection as `who`: (status, JSON body).
fn raw(
    gate: &Gate,
    who: &crate::common::pki::Identity,
    method: &str,
    target: &str,
    body: &str,
) -> (u16, Value) {
    let mut conn = RawTls::connect(gate.port, Some(who));
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.send(request.as_bytes()).unwrap();
    let (status, _, body) = conn.read_response();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, json)
}

#[test]
fn tenant_gate_exec_ids_prunes_and_events_stay_with_their_owner() {
    let gate = gate();
    let pki = pki();
    let a = Docker::via(&gate, &pki.team_a);
    let b = Docker::via(&gate, &pki.team_b);
    let web = unique_name("web");
    let a_stopped = unique_name("a-stopped");
    let b_stopped = unique_name("b-stopped");
    let _cleanup = Cleanup(vec![web.clone(), a_stopped.clone(), b_stopped.clone()]);
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    a.ok(&["run", "-d", "--name", &web, TEST_IMAGE, "sleep", "600"]);

    // An exec ID team-b learned: created by team-a, started or inspected by team-b.
    let (status, created) = raw(
        &gate,
        &pki.team_a,
        "POST",
        &format!("{API}/containers/{web}/exec"),
        r#"{"Cmd":["touch","/pwned"]}"#,
    );
    assert_eq!(status, 201, "{created}");
    let exec = created["Id"].as_str().unwrap().to_string();
    for (method, target, body) in [
        (
            "POST",
            format!("{API}/exec/{exec}/start"),
            r#"{"Detach":true}"#,
        ),
        ("GET", format!("{API}/exec/{exec}/json"), ""),
    ] {
        let (status, answer) = raw(&gate, &pki.team_b, method, &target, body);
        assert_eq!(status, 404, "{method} {target}: {answer}");
        assert_eq!(answer["message"], format!("No such exec instance: {exec}"));
    }
    let (_, exec_state) = docker_api_json("GET", &format!("{API}/exec/{exec}/json"), "");
    assert_eq!(exec_state["Running"], false);
    Docker::direct().fails(&["exec", &web, "test", "-e", "/pwned"]);
    // team-a's own exec ID works.
    let (status, answer) = raw(
        &gate,
        &pki.team_a,
        "POST",
        &format!("{API}/exec/{exec}/start"),
        r#"{"Detach":true}"#,
    );
    assert_eq!(status, 200, "{answer}");
    let touched = poll(WAIT, || {
        Docker::direct()
            .run(&["exec", &web, "test", "-e", "/pwned"])
            .success()
            .then_some(())
    });
    assert!(touched.is_some(), "team-a's exec did not run");

    // team-b's prune removes team-b's stopped containers only. The label keeps the prune
    // away from the team-b containers of tests running at the same time.
    let this_test = format!("app={}", unique_name("prune"));
    a.ok(&[
        "run", "--label", &this_test, "--name", &a_stopped, TEST_IMAGE, "true",
    ]);
    b.ok(&[
        "run", "--label", &this_test, "--name", &b_stopped, TEST_IMAGE, "true",
    ]);
    let label_filter = format!("label={this_test}");
    b.ok(&["container", "prune", "-f", "--filter", &label_filter]);
    assert!(
        inspect_direct(&a_stopped).is_some(),
        "team-b pruned team-a's container"
    );
    assert!(
        inspect_direct(&b_stopped).is_none(),
        "team-b's prune did not prune its own"
    );

    // Events: team-b sees its own container's, nothing of team-a's.
    let a_ids: Vec<String> = [&web, &a_stopped]
        .iter()
        .map(|n| {
            inspect_direct(n).unwrap()["Id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    std::thread::sleep(Duration::from_secs(2));
    let events = |docker: &Docker| {
        docker.ok(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"name\"}}",
        ])
    };
    let seen_by_b = events(&b);
    assert!(
        seen_by_b.contains(&b_stopped),
        "team-b's own events missing:\n{seen_by_b}"
    );
    for id in &a_ids {
        assert!(
            !seen_by_b.contains(id.as_str()),
            "team-b saw {id}:\n{seen_by_b}"
        );
    }
    assert!(
        !seen_by_b.contains(&web) && !seen_by_b.contains(&a_stopped),
        "{seen_by_b}"
    );
    let seen_by_a = events(&a);
    assert!(seen_by_a.contains(&a_ids[0]), "{seen_by_a}");
}

/// A fake Docker endpoint in front of the real one: relays every connection to dockerd's
/// socket, except that the first resolver lookup of `GET /containers/<name>/json` runs `hook`
/// after dockerd answered and before the gate gets the answer: the gap between the gate's check
/// and its action, made as wide as a race can make it.
struct HookedUpstream {
    port: u16,
    fired: Arc<AtomicBool>,
}

impl HookedUpstream {
    fn start(name: &str, hook: impl Fn() + Send + Sync + 'static) -> HookedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fired = Arc::new(AtomicBool::new(false));
        let lookup = format!("GET /containers/{name}/json HTTP/1.0\r\n");
        let hook = Arc::new(Mutex::new(hook));
        let state = fired.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (lookup, hook, fired) = (lookup.clone(), hook.clone(), state.clone());
                std::thread::spawn(move || relay(conn, &lookup, &*hook, &fired));
            }
        });
        HookedUpstream { port, fired }
    }
}

fn relay(client: TcpStream, lookup: &str, hook: &Mutex<impl Fn()>, fired: &AtomicBool) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let before = head.len();
        if reader.read_until(b'\n', &mut head).is_err() || head.len() == before {
            return;
        }
    }
    let mut docker = UnixStream::connect(dockerd().socket()).unwrap();
    docker.write_all(&head).unwrap();
    if head.starts_with(lookup.as_bytes()) && !fired.swap(true, Ordering::SeqCst) {
        // HTTP/1.0: dockerd answers and closes.
        let mut answer = Vec::new();
        docker.read_to_end(&mut answer).unwrap();
        (hook.lock().unwrap())();
        let mut client = client;
        let _ = client.write_all(&answer);
        return;
    }
    let buffered = reader.buffer().to_vec();
    docker.write_all(&buffered).unwrap();
    let mut to_docker = docker.try_clone().unwrap();
    let mut from_client = client.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_docker);
        let _ = to_docker.shutdown(std::net::Shutdown::Write);
    });
    let mut to_client = client;
    let _ = std::io::copy(&mut docker, &mut to_client);
    let _ = to_client.shutdown(std::net::Shutdown::Write);
}

/// Creates and starts `name` directly on dockerd, owned by team-a (the worst case: the same
/// owner, so an owner check alone would pass); returns its ID.
fn create_direct(name: &str) -> String {
    let body = format!(
        r#"{{"Image":"{TEST_IMAGE}","Cmd":["sleep","600"],"Labels":{{"dockgate.owner":"team-a"}}}}"#
    );
    let (status, created) = docker_api_json(
        "POST",
        &format!("{API}/containers/create?name={name}"),
        &body,
    );
    assert_eq!(status, 201, "{created}");
    let id = created["Id"].as_str().unwrap().to_string();
    let (status, started) = docker_api_json("POST", &format!("{API}/containers/{id}/start"), "");
    assert_eq!(status, 204, "{started}");
    id
}

#[test]
fn tenant_gate_an_action_lands_on_the_checked_container_or_fails() {
    let web = unique_name("race");
    let _cleanup = Cleanup(vec![web.clone()]);
    let checked = create_direct(&web);
    let replacement = Arc::new(Mutex::new(None::<String>));
    let (name, seen) = (web.clone(), replacement.clone());
    // Between the gate's check and its action, another client removes `web` and recreates it.
    let upstream = HookedUpstream::start(&web, move || {
        docker_api_json("DELETE", &format!("{API}/containers/{name}?force=1"), "");
        *seen.lock().unwrap() = Some(create_direct(&name));
    });
    let gate = GateBuilder::standard()
        .upstream(&format!("tcp://127.0.0.1:{}", upstream.port))
        .flags(&["--policy", policy_file().to_str().unwrap()])
        .start();
    let a = Docker::via(&gate, &pki().team_a);

    let out = a.fails(&["stop", "-t", "0", &web]);
    assert!(
        upstream.fired.load(Ordering::SeqCst),
        "the hook did not run"
    );
    let recreated = replacement.lock().unwrap().clone().expect("recreated");
    assert_ne!(recreated, checked);
    // The stop was forwarded to the checked container's full ID, which is gone: dockerd's 404.
    assert!(
        out.stderr
            .contains(&format!("No such container: {checked}")),
        "{}",
        out.stderr
    );
    let line = gate.wait_for_log(
        &[
            "request",
            "subject=\"CN=team-a\"",
            "owner=team-a",
            "/stop",
            "status=404",
        ],
        WAIT,
    );
    assert!(line.contains(&format!("id={checked}")), "{line}");
    // The container now named `web` was not touched.
    let now = inspect_direct(&web).unwrap();
    assert_eq!(now["Id"], recreated.as_str());
    assert_eq!(
        now["State"]["Running"], true,
        "the recreated container was stopped"
    );
}

#[test]
fn tenant_gate_answers_expect_100_continue_on_a_body_it_reads() {
    let gate = gate();
    let name = unique_name("continue");
    let _cleanup = Cleanup(vec![name.clone()]);
    let mut conn = RawTls::connect(gate.port, Some(&pki().team_a));
    // A request first, so the second one finds an open upstream connection with nothing due.
    conn.ping("before the create");
    let body = format!(r#"{{"Image":"{TEST_IMAGE}","Cmd":["true"]}}"#);
    let head = format!(
        "POST {API}/containers/create?name={name} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.send(head.as_bytes()).unwrap();
    // The client waits for the gate's 100 Continue before it sends the body the gate reads.
    let (status, interim) = conn.read_head();
    assert_eq!(status, 100, "{interim}");
    conn.send(body.as_bytes()).unwrap();
    let (status, head, created) = conn.read_response();
    assert_eq!(status, 201, "{head}{}", String::from_utf8_lossy(&created));
    assert_eq!(owner_label(&name), "team-a");
    // The connection goes on.
    conn.ping("after the create");
}
