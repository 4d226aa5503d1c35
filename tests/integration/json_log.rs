//! `--log-format json`: every stderr line is one JSON object.

use std::time::Duration;

use serde_json::Value;

use crate::common::util::poll;
use crate::common::{pki, Docker, GateBuilder};

#[test]
fn json_log_lines_parse_and_record_requests() {
    let gate = GateBuilder::standard()
        .flag("--log-format")
        .flag("json")
        .start();
    let out = Docker::via(&gate, &pki().alice).ok(&["version"]);
    assert!(out.contains("Server:"));
    let alice = &pki().alice;
    let request = poll(Duration::from_secs(5), || {
        gate.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["msg"] == "request" && v["status"] == 200)
    })
    .unwrap_or_else(|| panic!("no JSON request line with status 200:\n{}", gate.logs()));
    assert_eq!(request["subject"], alice.subject.as_str(), "{request}");
    assert_eq!(request["serial"], alice.serial_hex.as_str(), "{request}");
    assert!(
        request["method"].is_string() && request["path"].is_string(),
        "{request}"
    );
    for line in gate.logs().lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["ts", "level", "msg"] {
            assert!(v.get(key).is_some(), "no {key:?} in {line}");
        }
    }
}
