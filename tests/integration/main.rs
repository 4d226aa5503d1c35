//! Integration tests for dockgate: the real docker CLI (and a raw TLS client) talk to a private
//! dockerd through a dockgate child process.
//!
//! Needs root, `dockerd` (docker.io), the docker CLI, `/bin/busybox` (busybox-static), `tar`,
//! `script` and `sha256sum`; `make test` installs what is missing. dockerd is started once per
//! test binary and stopped when it exits; a missing prerequisite fails the tests (no skipping).

mod common;

mod audit_log;
mod ca_bad_input;
mod ca_files;
mod ca_lifecycle;
mod chain;
mod crl_expiry;
mod crl_policy;
mod crl_url;
mod demo_pki;
mod docker_cli;
mod flags;
mod harness;
mod hijack;
mod json_log;
mod large_crl;
mod limits;
mod malformed;
mod metrics;
mod pfx;
mod policy_gate;
mod policy_oracle;
mod preauth;
mod refusals;
mod release;
mod reload;
mod reload_broken;
mod reload_server_cert;
mod shutdown;
mod tenancy;
mod tenant_gate;
mod upstream_down;
mod wire;
