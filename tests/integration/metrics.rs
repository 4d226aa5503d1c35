//! Metrics (issue #15): `--metrics-listen` serves Prometheus text that `promtool check metrics`
//! accepts, the counters move as clients come and go, and `/healthz` answers 200.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::common::cli::Docker;
use crate::common::expect::{assert_cli_refused, assert_cli_works, LOG_WAIT};
use crate::common::gate::Gate;
use crate::common::util::run_with_timeout;
use crate::common::{pki, GateBuilder};

/// GET `path` on the metrics listener; (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().expect("a status code");
    let body = response
        .split_once("\r\n\r\n")
        .expect("a head")
        .1
        .to_string();
    (status, body)
}

fn metrics_port(gate: &Gate) -> u16 {
    let line = gate.wait_for_log(&["metrics: serving http://127.0.0.1:"], LOG_WAIT);
    let rest = &line[line.find("127.0.0.1:").unwrap() + "127.0.0.1:".len()..];
    rest.split('/').next().unwrap().parse().unwrap()
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .unwrap()
}

fn promtool_check(text: &str) {
    let out = run_with_timeout(
        Command::new("promtool").args(["check", "metrics"]),
        Some(text.as_bytes()),
        Duration::from_secs(30),
    );
    assert!(
        out.success() && out.stdout.trim().is_empty() && out.stderr.trim().is_empty(),
        "promtool check metrics: {}\n{}{}\n--- metrics:\n{text}",
        out.status,
        out.stdout,
        out.stderr
    );
}

#[test]
fn metrics_pass_promtool_and_move_with_traffic() {
    let gate = GateBuilder::standard()
        .flags(&["--metrics-listen", "127.0.0.1:0"])
        .start();
    let port = metrics_port(&gate);
    let (status, health) = get(port, "/healthz");
    assert_eq!(status, 200, "{health}");

    let (status, before) = get(port, "/metrics");
    assert_eq!(status, 200);
    promtool_check(&before);

    assert_cli_works(&gate, &pki().alice);
    assert_cli_refused(&gate, &pki().mallory, "certificate revoked");
    let session = Docker::via(&gate, &pki().alice);
    let container = Docker::direct().run_detached(&["sleep", "600"]);
    let mut exec = session.exec_cat(&container.name);
    exec.send_line("ping").unwrap();
    exec.expect_line("ping", Duration::from_secs(20));
    gate.sighup();
    gate.wait_for_log(&["TLS configuration reloaded"], LOG_WAIT);

    let (_, after) = get(port, "/metrics");
    promtool_check(&after);
    let grew = |series: &str| {
        let (was, is) = (sample(&before, series), sample(&after, series));
        assert!(is > was, "{series}: {was} -> {is}");
        is - was
    };
    grew("dockgate_connections_accepted_total");
    grew("dockgate_requests_total{method=\"GET\",code=\"2xx\"}");
    grew("dockgate_client_bytes_total{direction=\"in\"}");
    grew("dockgate_client_bytes_total{direction=\"out\"}");
    // The docker CLI tries more than once: one count per logged refusal.
    let logged = gate
        .logs_handle()
        .lines_with(&["handshake refused", "reason=\"certificate revoked\""])
        .len();
    assert_eq!(
        grew("dockgate_handshakes_refused_total{reason=\"revoked\"}"),
        logged as f64
    );
    assert_eq!(sample(&after, "dockgate_sessions_open"), 1.0);
    assert!(sample(&after, "dockgate_connections_open") >= 1.0);
    assert!(sample(&after, "dockgate_reload_last_success_timestamp_seconds") > 1.7e9);
    assert_eq!(sample(&after, "dockgate_tls_config_generation"), 1.0);
    // The test CRLs are valid for 30 days.
    let root_crl = format!(
        "dockgate_crl_next_update_timestamp_seconds{{file=\"{}\"}}",
        pki().root_crl.display()
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let next_update = sample(&after, &root_crl);
    assert!(next_update > now + 86400.0, "{next_update} vs now {now}");
    let revoked = format!(
        "dockgate_crl_revoked_certificates{{file=\"{}\"}}",
        pki().root_crl.display()
    );
    assert_eq!(sample(&after, &revoked), 1.0);

    exec.close_stdin();
    assert!(exec.wait_exit(Duration::from_secs(20)).is_some());
    let closed = crate::common::util::poll(Duration::from_secs(5), || {
        let (_, text) = get(port, "/metrics");
        (sample(&text, "dockgate_sessions_open") == 0.0).then_some(())
    });
    assert!(
        closed.is_some(),
        "dockgate_sessions_open back to 0 after the session"
    );
    let (status, _) = get(port, "/nope");
    assert_eq!(status, 404);
}
