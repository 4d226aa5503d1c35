//! Graceful shutdown (issue #15): SIGTERM stops accepting at once, lets in-flight work finish
//! within `--shutdown-grace`, cuts what is left, logs a summary and exits 0.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::cli::Docker;
use crate::common::util::poll;
use crate::common::{pki, GateBuilder};

/// A `docker logs -f` whose container ends 3-4 s after SIGTERM is drained (the client gets the
/// whole log and exits 0); an `exec -i` session still open when the 8 s grace runs out is cut;
/// the gate refuses new connections from the signal on and exits 0 with a summary.
#[test]
fn sigterm_drains_a_log_stream_and_cuts_an_open_exec_session() {
    // Long enough for the log stream to end and the exec to echo on a loaded machine.
    let grace = Duration::from_secs(15);
    let mut gate = GateBuilder::standard()
        .flags(&["--shutdown-grace", "15s"])
        .start();
    let docker = Docker::via(&gate, &pki().alice);
    let direct = Docker::direct();
    // The log stream: the container waits for a file, then prints its last line and exits.
    let logger = direct.run_detached(&[
        "sh",
        "-c",
        "echo first; while [ ! -e /go ]; do sleep 1; done; sleep 1; echo last",
    ]);
    let shell = direct.run_detached(&["sleep", "600"]);
    let mut logs = docker.stream(&["logs", "-f", &logger.name]);
    logs.expect_line("first", Duration::from_secs(20));
    let mut exec = docker.exec_cat(&shell.name);
    exec.send_line("hello").unwrap();
    exec.expect_line("hello", Duration::from_secs(20));

    direct.ok(&["exec", &logger.name, "touch", "/go"]);
    let signalled = Instant::now();
    gate.signal(libc::SIGTERM);
    gate.wait_for_log(&["SIGTERM"], Duration::from_secs(5));
    let refused = poll(Duration::from_secs(2), || {
        TcpStream::connect(("127.0.0.1", gate.port))
            .is_err()
            .then_some(())
    });
    assert!(
        refused.is_some(),
        "new connections must be refused once SIGTERM arrived"
    );

    // Drained: the stream runs to its natural end, inside the grace period.
    logs.expect_line("last", Duration::from_secs(10));
    let logs_exit = logs
        .wait_exit(Duration::from_secs(5))
        .expect("docker logs -f ended");
    assert!(logs_exit.success(), "docker logs -f: {logs_exit}");
    // The session is still served during the grace period ...
    exec.send_line("still there").unwrap();
    exec.expect_line("still there", Duration::from_secs(10));
    // ... and cut when it runs out; the gate then exits 0.
    let status = gate.wait_exit(grace + Duration::from_secs(10));
    let took = signalled.elapsed();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        gate.logs()
    );
    assert!(
        took >= grace - Duration::from_millis(500),
        "exited after {took:?}, before the {grace:?} grace period ran out"
    );
    let cut = gate.wait_for_log(&["connection cut", "grace period"], Duration::from_secs(5));
    assert!(
        cut.contains("session POST /") && cut.contains("/exec/"),
        "{cut}"
    );
    let summary = gate.wait_for_log(&["shutdown complete"], Duration::from_secs(5));
    assert!(summary.contains(", 1 cut"), "{summary}");
    assert!(!summary.contains(" 0 connection(s) drained"), "{summary}");
    assert!(
        exec.wait_exit(Duration::from_secs(10)).is_some(),
        "docker exec ended"
    );
}

/// With nothing open, SIGINT ends the gate at once (no waiting for the grace period), exit 0.
#[test]
fn sigint_with_only_idle_connections_exits_at_once() {
    let mut gate = GateBuilder::standard()
        .flags(&["--shutdown-grace", "30s"])
        .start();
    // An authenticated keep-alive connection that sent one request and now idles.
    let mut idle = crate::common::tls::RawTls::connect(gate.port, Some(&pki().alice));
    idle.ping("before SIGINT");
    let signalled = Instant::now();
    gate.signal(libc::SIGINT);
    let status = gate.wait_exit(Duration::from_secs(10));
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        gate.logs()
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
    let summary = gate.wait_for_log(&["shutdown complete"], Duration::from_secs(5));
    assert!(
        summary.contains("1 connection(s) drained, 0 cut"),
        "{summary}"
    );
    // The idle client saw an orderly end of the connection, not a reset.
    let outcome = idle.read_to_close();
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
}
