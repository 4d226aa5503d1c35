//! Everyday docker CLI commands through the gate with a good client certificate (alice).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::cli::BIG_TIMEOUT;
use crate::common::util::{
    fresh_dir, run_with_timeout, sha256_file, unique_name, write_random_file,
};
use crate::common::{pki, Container, Docker, Gate, TEST_IMAGE};

/// A fresh standard gate and a CLI presenting alice's certificate to it.
fn alice() -> (Gate, Docker) {
    let gate = Gate::standard();
    let docker = Docker::via(&gate, &pki().alice);
    (gate, docker)
}

#[test]
fn version_shows_server_and_is_logged() {
    let (gate, docker) = alice();
    let out = docker.ok(&["version"]);
    assert!(out.contains("Server:"), "no Server section:\n{out}");
    assert!(out.contains("Engine:"), "no Engine section:\n{out}");
    let alice = &pki().alice;
    let line = gate.wait_for_log(
        &["request", "status=200", &alice.subject],
        Duration::from_secs(5),
    );
    assert!(
        line.contains(&format!("serial={}", alice.serial_hex)),
        "{line}"
    );
    assert!(line.contains("path=/"), "{line}");
}

#[test]
fn info_and_images() {
    let (_gate, docker) = alice();
    let info = docker.ok(&["info"]);
    assert!(info.contains("Server Version"), "{info}");
    let images = docker.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(images.lines().any(|l| l == TEST_IMAGE), "{images}");
}

#[test]
fn run_echo() {
    let (_gate, docker) = alice();
    assert_eq!(
        docker.ok(&["run", "--rm", TEST_IMAGE, "echo", "ok"]),
        "ok\n"
    );
}

#[test]
fn run_interactive_stdin_half_close() {
    let (gate, docker) = alice();
    let args = ["run", "-i", "--rm", TEST_IMAGE, "cat"];
    let out = docker.run_with(&args, Some(b"hi\n"), Duration::from_secs(30));
    docker.assert_success(&args, &out);
    assert_eq!(out.stdout, "hi\n");
    assert!(
        out.elapsed < Duration::from_secs(20),
        "took {:?} to exit after stdin EOF",
        out.elapsed
    );
    // The attach session is logged when it ends, with the 3 stdin bytes counted.
    let line = gate.wait_for_log(
        &["session end", &pki().alice.subject],
        Duration::from_secs(5),
    );
    let bytes_in = log_field(&line, "bytes_in").unwrap_or_else(|| panic!("no bytes_in: {line}"));
    assert!(bytes_in >= 3, "{line}");
}

/// The numeric value of `key=N` in a text log line.
fn log_field(line: &str, key: &str) -> Option<u64> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn logs_follow_streams_lines_as_written() {
    let (_gate, docker) = alice();
    let c = docker.run_detached(&[
        "sh",
        "-c",
        "i=0; while true; do echo line$i; i=$((i+1)); sleep 1; done",
    ]);
    let mut logs = docker.stream(&["logs", "-f", &c.name]);
    logs.expect_line("line0", Duration::from_secs(20));
    // line3 is written ~3 s after line0: seeing it proves chunks are relayed as they come.
    let start = Instant::now();
    for n in 1..=3 {
        logs.expect_line(&format!("line{n}"), Duration::from_secs(10));
    }
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "lines arrived late"
    );
    assert!(logs.is_running(), "docker logs -f exited early");
}

#[test]
fn exec_with_and_without_stdin() {
    let (_gate, docker) = alice();
    let c = docker.run_detached(&["sleep", "600"]);
    assert_eq!(
        docker.ok(&["exec", &c.name, "echo", "exec-ok"]),
        "exec-ok\n"
    );
    let args = ["exec", "-i", &c.name, "cat"];
    let out = docker.run_with(&args, Some(b"data\n"), Duration::from_secs(30));
    docker.assert_success(&args, &out);
    assert_eq!(out.stdout, "data\n");
    assert!(
        out.elapsed < Duration::from_secs(20),
        "exec -i took {:?}",
        out.elapsed
    );
}

/// Many TLS records per upstream write (the gate batches what it has decrypted): every byte
/// must still arrive, in order.
#[test]
fn exec_stdin_of_16_mib_arrives_intact() {
    let (_gate, docker) = alice();
    let c = docker.run_detached(&["sleep", "600"]);
    let dir = fresh_dir("stdin");
    let src = dir.join("stdin.bin");
    write_random_file(&src, 16 << 20);
    let data = std::fs::read(&src).unwrap();
    let args = ["exec", "-i", &c.name, "sha256sum"];
    let out = docker.run_with(&args, Some(&data), BIG_TIMEOUT);
    docker.assert_success(&args, &out);
    assert_eq!(
        out.stdout.split_whitespace().next(),
        Some(sha256_file(&src).as_str())
    );
}

#[test]
fn exec_tty_under_pseudo_terminal() {
    let (_gate, docker) = alice();
    let c = docker.run_detached(&["sleep", "600"]);
    // `script` gives the CLI a pseudo-terminal, so `-t` is accepted.
    let inner = format!("docker exec -it {} sh -c 'echo tty-ok; tty'", c.name);
    let mut script = docker.with_env("script", &["-qec", &inner, "/dev/null"]);
    let out = run_with_timeout(&mut script, None, Duration::from_secs(60));
    assert!(
        out.success(),
        "script/docker exec -it failed: {}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("tty-ok"), "{:?}", out.stdout);
    assert!(out.stdout.contains("/dev/pts"), "{:?}", out.stdout);
}

#[test]
fn cp_64_mib_in_and_out() {
    let (_gate, docker) = alice();
    let c = docker.run_detached(&["sleep", "600"]);
    let dir = fresh_dir("cp");
    let src = dir.join("big.bin");
    write_random_file(&src, 64 << 20);
    let src_str = src.to_str().unwrap();
    docker.ok_with(
        &["cp", src_str, &format!("{}:/big.bin", c.name)],
        None,
        BIG_TIMEOUT,
    );
    let inside = docker.ok(&["exec", &c.name, "sha256sum", "/big.bin"]);
    let back = dir.join("back.bin");
    docker.ok_with(
        &[
            "cp",
            &format!("{}:/big.bin", c.name),
            back.to_str().unwrap(),
        ],
        None,
        BIG_TIMEOUT,
    );
    let expected = sha256_file(&src);
    assert_eq!(
        inside.split_whitespace().next(),
        Some(expected.as_str()),
        "inside the container"
    );
    assert_eq!(sha256_file(&back), expected, "copied back out");
}

#[test]
fn save_and_load_round_trip() {
    let (_gate, docker) = alice();
    let tag = format!("dockgate-test/saveload:{}", unique_name("t"));
    Docker::direct().ok(&["tag", TEST_IMAGE, &tag]);
    let archive = fresh_dir("save").join("image.tar");
    docker.ok_with(
        &["save", "-o", archive.to_str().unwrap(), &tag],
        None,
        BIG_TIMEOUT,
    );
    assert!(
        std::fs::metadata(&archive).unwrap().len() > 1 << 20,
        "archive too small"
    );
    docker.ok(&["rmi", &tag]);
    assert!(
        !docker.run(&["image", "inspect", &tag]).success(),
        "{tag} still there after rmi"
    );
    let loaded = docker.ok_with(
        &["load", "-i", archive.to_str().unwrap()],
        None,
        BIG_TIMEOUT,
    );
    assert!(loaded.contains(&format!("Loaded image: {tag}")), "{loaded}");
    docker.ok(&["image", "inspect", &tag]);
    Docker::direct().ok(&["rmi", &tag]);
}

#[test]
fn events_stream_sees_create() {
    let (_gate, docker) = alice();
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let name = unique_name("ev");
    let filter = format!("container={name}");
    let mut events = docker.stream(&[
        "events",
        "--since",
        &since,
        "--filter",
        &filter,
        "--format",
        "{{.Action}}",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let _c = Container::named(name.clone());
    docker.ok(&["create", "--name", &name, TEST_IMAGE, "true"]);
    events.expect_line("create", Duration::from_secs(20));
    assert!(events.is_running(), "docker events exited");
}

#[test]
fn build_without_buildkit_then_run() {
    let (_gate, docker) = alice();
    let ctx = fresh_dir("build");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {TEST_IMAGE}\nRUN echo built > /built.txt\n"),
    )
    .unwrap();
    let tag = format!("dockgate-test/built:{}", unique_name("b"));
    let mut cmd = docker.command(&["build", "-t", &tag, ctx.to_str().unwrap()]);
    cmd.env("DOCKER_BUILDKIT", "0");
    let out = run_with_timeout(&mut cmd, None, BIG_TIMEOUT);
    docker.assert_success(&["build"], &out);
    let content = docker.ok(&["run", "--rm", &tag, "cat", "/built.txt"]);
    let _ = Docker::direct().run(&["rmi", "-f", &tag]);
    assert_eq!(content, "built\n");
}

#[test]
fn stats_no_stream() {
    let (_gate, docker) = alice();
    let c = docker.run_detached(&["sleep", "600"]);
    let out = docker.ok(&["stats", "--no-stream", &c.name]);
    assert!(out.contains("CPU %"), "{out}");
    assert!(out.contains(&c.name), "{out}");
}

#[test]
fn rm_force_running_container() {
    let (_gate, docker) = alice();
    let c = docker.run_detached(&["sleep", "600"]);
    assert_eq!(docker.ok(&["rm", "-f", &c.name]).trim(), c.name);
    let left = Docker::direct().ok(&["ps", "-aq", "--filter", &format!("name=^{}$", c.name)]);
    assert_eq!(left.trim(), "", "container still exists");
}
