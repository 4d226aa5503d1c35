//! The ready policies of the README ("Ready policies"), loaded from the README itself so that
//! the documentation cannot drift from what the engine accepts: each ```toml block that starts
//! with `# policy: NAME` is run through `policy check` and decided on the requests its
//! comments promise.

use std::path::Path;

use super::cli::describe;
use super::decide::Outcome;
use super::{file, CertIdentity, Policy};

const README: &str = include_str!("../../README.md");

fn readme_policy(name: &str) -> Policy {
    let marker = format!("```toml\n# policy: {name}\n");
    let start = README
        .find(&marker)
        .unwrap_or_else(|| panic!("README has no policy {name:?}"))
        + "```toml\n".len();
    let end = start + README[start..].find("```").unwrap();
    let policy = file::parse(Path::new(name), &README[start..end])
        .unwrap_or_else(|e| panic!("README policy {name}: {e}"));
    // `policy check` prints it without complaint.
    assert!(describe(&policy).contains(": valid\n"));
    policy
}

fn outcome(policy: &Policy, who: &CertIdentity, method: &str, target: &str, body: &str) -> Outcome {
    policy
        .decide_json(who, method, target, body.as_bytes())
        .outcome
}

const RUN: &str =
    r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Binds":["/srv/ci-cache/go:/go"]}}"#;
const PRIVILEGED: &str = r#"{"Image":"busybox","HostConfig":{"Privileged":true}}"#;

#[test]
fn monitoring_reads_and_nothing_else() {
    let p = readme_policy("monitoring");
    let grafana = CertIdentity {
        cn: vec!["grafana".into()],
        san_uri: vec!["spiffe://example.org/monitoring/grafana".into()],
        ..Default::default()
    };
    for (method, target) in [
        ("GET", "/v1.41/containers/json?all=1"),
        ("GET", "/v1.41/containers/c/json"),
        ("GET", "/v1.41/images/json"),
        ("GET", "/v1.41/events"),
        ("GET", "/v1.41/info"),
    ] {
        assert_eq!(
            outcome(&p, &grafana, method, target, ""),
            Outcome::Allowed,
            "{target}"
        );
    }
    for (method, target, body) in [
        ("GET", "/v1.41/containers/c/logs", ""),
        ("GET", "/v1.41/containers/c/archive?path=/etc", ""),
        ("GET", "/v1.41/containers/c/export", ""),
        ("POST", "/v1.41/containers/create", RUN),
        ("POST", "/v1.41/containers/c/exec", r#"{"Cmd":["sh"]}"#),
        ("DELETE", "/v1.41/containers/c", ""),
        ("GET", "/v1.41/swarm", ""),
    ] {
        assert_eq!(
            outcome(&p, &grafana, method, target, body),
            Outcome::Denied,
            "{target}"
        );
    }
    let stranger = CertIdentity {
        cn: vec!["grafana".into()],
        ..Default::default()
    };
    assert_eq!(outcome(&p, &stranger, "GET", "/_ping", ""), Outcome::Denied);
}

#[test]
fn ci_runs_builds_and_execs_without_escalation() {
    let p = readme_policy("ci");
    let runner = CertIdentity {
        cn: vec!["runner-1".into()],
        ou: vec!["ci".into()],
        ..Default::default()
    };
    for (method, target, body) in [
        ("POST", "/v1.41/containers/create", RUN),
        (
            "POST",
            "/v1.41/containers/c/exec",
            r#"{"Cmd":["sh"],"Tty":true}"#,
        ),
        ("POST", "/v1.41/build?t=app", ""),
        ("GET", "/v1.41/containers/c/logs", ""),
        ("PUT", "/v1.41/containers/c/archive?path=/", ""),
        ("POST", "/v1.41/images/create?fromImage=busybox", ""),
    ] {
        assert_eq!(
            outcome(&p, &runner, method, target, body),
            Outcome::Allowed,
            "{target} {body}"
        );
    }
    for (method, target, body) in [
        ("POST", "/v1.41/containers/create", PRIVILEGED),
        (
            "POST",
            "/v1.41/containers/create",
            r#"{"Image":"b","HostConfig":{"Binds":["/:/host"]}}"#,
        ),
        (
            "POST",
            "/v1.41/containers/create",
            r#"{"Image":"b","HostConfig":{"PidMode":"host"}}"#,
        ),
        (
            "POST",
            "/v1.41/containers/create",
            r#"{"Image":"b","HostConfig":{"CapAdd":["SYS_ADMIN"]}}"#,
        ),
        (
            "POST",
            "/v1.41/containers/c/exec",
            r#"{"Cmd":["sh"],"Privileged":true}"#,
        ),
        ("POST", "/v1.41/build?networkmode=host", ""),
        (
            "POST",
            "/v1.41/build?remote=https://example.org/ctx.tar",
            "",
        ),
        ("POST", "/v1.41/images/app/push", ""),
        ("DELETE", "/v1.41/images/app", ""),
        ("POST", "/v1.41/session", ""),
        ("POST", "/v1.41/swarm/init", "{}"),
    ] {
        assert_eq!(
            outcome(&p, &runner, method, target, body),
            Outcome::Denied,
            "{target} {body}"
        );
    }
    let checked = describe(&p);
    assert!(
        checked
            .contains("  own: containers, volumes, networks, exec (label dockgate.owner=<owner>"),
        "{checked}"
    );
    assert!(checked.contains("remote denied"), "{checked}");
    let tenant = p.tenant_for(&runner).unwrap().unwrap();
    assert_eq!(tenant.owner, "runner-1");
    assert_eq!(tenant.owns.len(), 4);
}

#[test]
fn admins_may_do_everything_but_only_from_their_ca() {
    let p = readme_policy("admins");
    let alice = CertIdentity {
        cn: vec!["alice".into()],
        issuer_cn: vec!["Example Ops CA".into()],
        ..Default::default()
    };
    for (method, target, body) in [
        ("POST", "/v1.41/containers/create", PRIVILEGED),
        ("POST", "/v1.41/swarm/init", "{}"),
        ("GET", "/v1.41/some/new/endpoint", ""),
    ] {
        assert_eq!(
            outcome(&p, &alice, method, target, body),
            Outcome::Allowed,
            "{target}"
        );
    }
    assert_eq!(p.tenant_for(&alice).unwrap(), None);
    let other_ca = CertIdentity {
        issuer_cn: vec!["Another CA".into()],
        ..alice
    };
    assert_eq!(outcome(&p, &other_ca, "GET", "/_ping", ""), Outcome::Denied);
}
