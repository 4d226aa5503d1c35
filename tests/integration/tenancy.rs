//! Tenancy (issue #13) against the real dockerd, through `dockgate policy explain --upstream`,
//! which runs the gate's tenancy step (`tenancy::plan::apply`) and prints what the gate would
//! forward. What the gate would forward is then sent straight to dockerd, so each test checks
//! dockerd's own semantics: how it resolves names, ID prefixes and link aliases, that the
//! merged filters really filter on 20.10, and how it merges image labels into a container's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::cli::docker_command;
use crate::common::dockerd::{docker_api_json, dockerd};
use crate::common::gate::dockgate_command;
use crate::common::util::{fresh_dir, run_with_timeout, unique_name};
use crate::common::TEST_IMAGE;

const API: &str = "/v1.41";

/// Two tenants with role ci: team-a by owner, team-b by its CN.
const POLICY: &str = r#"
[[identity]]
cn = ["runner-a*"]
owner = "team-a"
role = "ci"
[[identity]]
ou = ["ci"]
role = "ci"
[role.ci]
allow = ["read", "logs", "containers", "exec", "volumes", "networks", "images"]
own = ["containers", "volumes", "networks", "exec"]
"#;

fn policy() -> PathBuf {
    let path = fresh_dir("tenancy").join("policy.toml");
    std::fs::write(&path, POLICY).unwrap();
    path
}

/// One tenant's view: `dockgate policy explain` with the tenant's identity and dockerd.
struct Tenant {
    policy: PathBuf,
    identity: [&'static str; 4],
}

/// What `policy explain` printed for a request.
struct Explained {
    ok: bool,
    text: String,
}

impl Explained {
    fn line(&self, prefix: &str) -> Option<&str> {
        self.text.lines().find_map(|l| l.strip_prefix(prefix))
    }

    /// The target the gate would forward (must be there).
    fn target(&self) -> &str {
        self.line("forward target: ")
            .unwrap_or_else(|| panic!("no forward target:\n{}", self.text))
    }

    fn body(&self) -> &str {
        self.line("forward body: ")
            .unwrap_or_else(|| panic!("no forward body:\n{}", self.text))
    }

    /// The local answer's JSON message of a refused request.
    fn answer(&self) -> (u16, String) {
        let answer = self
            .line("answer: ")
            .unwrap_or_else(|| panic!("no answer:\n{}", self.text));
        let (status, json) = answer.split_once(' ').unwrap();
        let json: Value = serde_json::from_str(json).unwrap();
        (
            status.parse().unwrap(),
            json["message"].as_str().unwrap().to_string(),
        )
    }
}

impl Tenant {
    fn a(policy: &Path) -> Tenant {
        Tenant {
            policy: policy.to_path_buf(),
            identity: ["--cn", "runner-a1", "--ou", "ci"],
        }
    }

    fn b(policy: &Path) -> Tenant {
        Tenant {
            policy: policy.to_path_buf(),
            identity: ["--cn", "team-b", "--ou", "ci"],
        }
    }

    fn explain(&self, method: &str, target: &str, body: &str) -> Explained {
        let upstream = format!("unix://{}", dockerd().socket().display());
        let out = run_with_timeout(
            dockgate_command()
                .args(["policy", "explain"])
                .arg(&self.policy)
                .args(self.identity)
                .args(["--upstream", &upstream])
                .args([method, target]),
            Some(body.as_bytes()),
            Duration::from_secs(20),
        );
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.starts_with("decision: allowed\n"),
            "the policy must allow {method} {target}:\n{text}"
        );
        let ok = out.status.code() == Some(0);
        assert!(ok || out.status.code() == Some(1), "{text}");
        Explained { ok, text }
    }

    /// Creates through the gate's rewriting: the forwarded body goes to dockerd.
    fn create(&self, kind: &str, query: &str, body: &str) -> String {
        let explained = self.explain("POST", &format!("{API}/{kind}/create{query}"), body);
        assert!(explained.ok, "{}", explained.text);
        let (status, json) = docker_api_json(
            "POST",
            explained.target_or(&format!("{API}/{kind}/create{query}")),
            explained.body(),
        );
        assert!(
            status == 201 || status == 200,
            "{kind} create: {status} {json}"
        );
        json["Id"]
            .as_str()
            .or(json["Name"].as_str())
            .unwrap()
            .to_string()
    }

    /// The full ID the gate resolved `reference` to, or the 404 message it answered.
    fn resolve(&self, method: &str, target: &str) -> Result<String, (u16, String)> {
        let explained = self.explain(method, target, "");
        if !explained.ok {
            return Err(explained.answer());
        }
        let resolved = explained
            .line("resolved: ")
            .unwrap_or_else(|| panic!("nothing resolved:\n{}", explained.text));
        let id = resolved.split(" -> ").nth(1).unwrap();
        Ok(id.split([' ', ',']).next().unwrap().to_string())
    }
}

impl Explained {
    fn target_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.line("forward target: ").unwrap_or(default)
    }
}

fn remove_container(id: &str) {
    docker_api_json("DELETE", &format!("{API}/containers/{id}?force=1"), "");
}

/// A 3-character ID prefix of `id` that no other container's ID starts with right now.
fn unique_prefix(id: &str) -> Option<String> {
    let (_, all) = docker_api_json("GET", &format!("{API}/containers/json?all=1"), "");
    let prefix = &id[..3];
    let sharing = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["Id"].as_str().unwrap().starts_with(prefix))
        .count();
    (sharing == 1).then(|| prefix.to_string())
}

#[test]
fn tenancy_resolves_names_prefixes_aliases_and_execs_like_dockerd() {
    let policy = policy();
    let (a, b) = (Tenant::a(&policy), Tenant::b(&policy));
    let run = format!(
        r#"{{"Image":"{TEST_IMAGE}","Cmd":["sleep","600"],"HostConfig":{{"NetworkMode":"none"}}}}"#
    );
    let db_name = unique_name("db");
    let db = a.create("containers", &format!("?name={db_name}"), &run);
    let web_name = unique_name("web");
    let linked = format!(
        r#"{{"Image":"{TEST_IMAGE}","Cmd":["sleep","600"],"HostConfig":{{"NetworkMode":"none","Links":["{db_name}:alias"]}}}}"#
    );
    let web = a.create("containers", &format!("?name={web_name}"), &linked);

    // By name, full ID, and the legacy link alias: dockerd's answer and the gate's agree.
    assert_eq!(
        a.resolve("GET", &format!("{API}/containers/{web_name}/json")),
        Ok(web.clone())
    );
    assert_eq!(
        a.resolve("POST", &format!("{API}/containers/{web}/stop")),
        Ok(web.clone())
    );
    let (status, direct) = docker_api_json(
        "GET",
        &format!("{API}/containers/{web_name}/alias/json"),
        "",
    );
    assert_eq!(
        (status, direct["Id"].as_str()),
        (200, Some(db.as_str())),
        "dockerd resolves the alias"
    );
    assert_eq!(
        a.resolve("GET", &format!("{API}/containers/{web_name}/alias/json")),
        Ok(db.clone())
    );
    // A 3-character ID prefix (another test's container may share it: then try another).
    let mut checked_prefix = false;
    for _ in 0..5 {
        let c = a.create("containers", "", &run);
        if let Some(prefix) = unique_prefix(&c) {
            let resolved = a.resolve("GET", &format!("{API}/containers/{prefix}/json"));
            let wrong = b.resolve("GET", &format!("{API}/containers/{prefix}/json"));
            remove_container(&c);
            if resolved.is_err() && unique_prefix(&c).is_none() {
                continue; // a container sharing the prefix appeared meanwhile
            }
            assert_eq!(resolved, Ok(c.clone()));
            assert_eq!(wrong, Err((404, format!("No such container: {prefix}"))));
            checked_prefix = true;
            break;
        }
        remove_container(&c);
    }
    assert!(
        checked_prefix,
        "no container with a unique 3-character prefix in 5 tries"
    );

    // team-b gets dockerd's own 404, byte for byte the one for a name that does not exist.
    let (status, missing) = docker_api_json(
        "GET",
        &format!("{API}/containers/no-such-{web_name}/json"),
        "",
    );
    assert_eq!(status, 404);
    assert_eq!(
        missing["message"],
        format!("No such container: no-such-{web_name}")
    );
    for target in [
        format!("{API}/containers/{web_name}/json"),
        format!("{API}/containers/{web}/json"),
        format!("{API}/containers/{web_name}/alias/json"),
    ] {
        let reference = target
            .strip_prefix(&format!("{API}/containers/"))
            .unwrap()
            .strip_suffix("/json")
            .unwrap();
        assert_eq!(
            b.resolve("GET", &target),
            Err((404, format!("No such container: {reference}"))),
            "{target}"
        );
    }
    for (method, suffix) in [("POST", "stop"), ("GET", "logs"), ("POST", "kill")] {
        assert_eq!(
            b.resolve(method, &format!("{API}/containers/{web_name}/{suffix}")),
            Err((404, format!("No such container: {web_name}"))),
        );
    }
    assert!(b
        .resolve("DELETE", &format!("{API}/containers/{web_name}?force=1"))
        .is_err());
    let exec_create = b.explain(
        "POST",
        &format!("{API}/containers/{web_name}/exec"),
        r#"{"Cmd":["true"]}"#,
    );
    assert_eq!(
        exec_create.answer(),
        (404, format!("No such container: {web_name}"))
    );

    // An exec ID team-b learned is not team-b's.
    let (status, _) = docker_api_json("POST", &format!("{API}/containers/{web}/start"), "");
    assert_eq!(status, 204);
    let (status, exec) = docker_api_json(
        "POST",
        &format!("{API}/containers/{web}/exec"),
        r#"{"Cmd":["true"]}"#,
    );
    assert_eq!(status, 201, "{exec}");
    let exec_id = exec["Id"].as_str().unwrap();
    let a_exec = a.explain("POST", &format!("{API}/exec/{exec_id}/start"), "");
    assert!(a_exec.ok, "{}", a_exec.text);
    assert!(
        a_exec
            .text
            .contains(&format!("(container {web}), owner team-a")),
        "{}",
        a_exec.text
    );
    let (_, missing_exec) =
        docker_api_json("GET", &format!("{API}/exec/{}/json", "0".repeat(64)), "");
    assert_eq!(
        missing_exec["message"],
        format!("No such exec instance: {}", "0".repeat(64))
    );
    assert_eq!(
        b.resolve("POST", &format!("{API}/exec/{exec_id}/start")),
        Err((404, format!("No such exec instance: {exec_id}")))
    );

    // Volumes and networks: same shape as dockerd's own 404s.
    let volume = unique_name("vol");
    a.create("volumes", "", &format!(r#"{{"Name":"{volume}"}}"#));
    assert_eq!(
        a.resolve("GET", &format!("{API}/volumes/{volume}")),
        Ok(volume.clone())
    );
    let (_, missing_volume) = docker_api_json("GET", &format!("{API}/volumes/no-{volume}"), "");
    assert_eq!(
        missing_volume["message"],
        format!("get no-{volume}: no such volume")
    );
    assert_eq!(
        b.resolve("DELETE", &format!("{API}/volumes/{volume}")),
        Err((404, format!("get {volume}: no such volume")))
    );
    let network = unique_name("net");
    let net_id = a.create("networks", "", &format!(r#"{{"Name":"{network}","Driver":"bridge","Options":{{"com.docker.network.bridge.name":"dgt{}"}}}}"#, &web[..8]));
    assert_eq!(
        a.resolve("GET", &format!("{API}/networks/{network}")),
        Ok(net_id.clone())
    );
    assert_eq!(
        a.resolve("DELETE", &format!("{API}/networks/{}", &net_id[..5])),
        Ok(net_id.clone())
    );
    let (_, missing_network) = docker_api_json("GET", &format!("{API}/networks/no-{network}"), "");
    assert_eq!(
        missing_network["message"],
        format!("network no-{network} not found")
    );
    assert_eq!(
        b.resolve("GET", &format!("{API}/networks/{network}")),
        Err((404, format!("network {network} not found")))
    );

    for id in [&web, &db] {
        remove_container(id);
    }
    docker_api_json("DELETE", &format!("{API}/volumes/{volume}"), "");
    docker_api_json("DELETE", &format!("{API}/networks/{net_id}"), "");
}

/// The names of the containers a forwarded list target returns, straight from dockerd.
fn listed_names(target: &str) -> Vec<String> {
    let (status, list) = docker_api_json("GET", target, "");
    assert_eq!(status, 200, "{target}: {list}");
    list.as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["Names"].as_array().unwrap().clone())
        .map(|n| n.as_str().unwrap().trim_start_matches('/').to_string())
        .collect()
}

#[test]
fn tenancy_merged_filters_really_filter_on_dockerd() {
    let policy = policy();
    let (a, b) = (Tenant::a(&policy), Tenant::b(&policy));
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    // A label of this test only: other tests' containers of the same tenants stay out of the
    // list and the prune below.
    let app = unique_name("app");
    let body = format!(r#"{{"Image":"{TEST_IMAGE}","Cmd":["true"],"Labels":{{"app":"{app}"}}}}"#);
    let app_filter = format!(
        "filters=%7B%22label%22%3A%5B%22app%3D{}%22%5D%7D",
        app.replace('-', "%2D")
    );
    let a_name = unique_name("list-a");
    let a_id = a.create("containers", &format!("?name={a_name}"), &body);
    let b_name = unique_name("list-b");
    let b_id = b.create("containers", &format!("?name={b_name}"), &body);
    let a_volume = unique_name("vol-a");
    a.create("volumes", "", &format!(r#"{{"Name":"{a_volume}"}}"#));

    // docker ps -a: only the tenant's own, with the client's own filter kept.
    let a_list = a.explain("GET", &format!("{API}/containers/json?all=1"), "");
    let names = listed_names(a_list.target());
    assert!(names.contains(&a_name), "{names:?}");
    assert!(!names.contains(&b_name), "{names:?}");
    let b_filtered = b.explain(
        "GET",
        &format!("{API}/containers/json?all=1&{app_filter}"),
        "",
    );
    assert_eq!(listed_names(b_filtered.target()), vec![b_name.to_string()]);
    let (_, unfiltered) = docker_api_json("GET", &format!("{API}/containers/json?all=1"), "");
    assert!(unfiltered.as_array().unwrap().len() >= 2);

    // docker volume ls
    let b_volumes = b.explain("GET", &format!("{API}/volumes"), "");
    let (_, volumes) = docker_api_json("GET", b_volumes.target(), "");
    let volume_names: Vec<&str> = volumes["Volumes"]
        .as_array()
        .map(|v| v.iter().map(|v| v["Name"].as_str().unwrap()).collect())
        .unwrap_or_default();
    assert!(
        !volume_names.contains(&a_volume.as_str()),
        "{volume_names:?}"
    );
    let a_volumes = a.explain("GET", &format!("{API}/volumes"), "");
    let (_, volumes) = docker_api_json("GET", a_volumes.target(), "");
    assert!(volumes.to_string().contains(&a_volume), "{volumes}");

    // docker network ls
    let a_network = unique_name("list-net");
    let a_net_id = a.create(
        "networks",
        "",
        &format!(r#"{{"Name":"{a_network}","Driver":"bridge","Options":{{"com.docker.network.bridge.name":"dgl{}"}}}}"#, &a_id[..8]),
    );
    let network_names = |t: &Tenant| -> Vec<String> {
        let listed = t.explain("GET", &format!("{API}/networks"), "");
        let (status, networks) = docker_api_json("GET", listed.target(), "");
        assert_eq!(status, 200, "{networks}");
        networks
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["Name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(network_names(&a).contains(&a_network));
    assert!(!network_names(&b).contains(&a_network));
    docker_api_json("DELETE", &format!("{API}/networks/{a_net_id}"), "");

    // docker container prune as team-b removes team-b's stopped container, not team-a's.
    let prune = b.explain("POST", &format!("{API}/containers/prune?{app_filter}"), "");
    let (status, pruned) = docker_api_json("POST", prune.target(), "");
    assert_eq!(status, 200, "{pruned}");
    let deleted = pruned["ContainersDeleted"].to_string();
    assert!(deleted.contains(&b_id), "{pruned}");
    assert!(!deleted.contains(&a_id), "{pruned}");
    let (status, _) = docker_api_json("GET", &format!("{API}/containers/{a_id}/json"), "");
    assert_eq!(status, 200, "team-a's container survived team-b's prune");

    // docker events: team-a's container events only.
    let until = since + 30;
    let events_a = a.explain(
        "GET",
        &format!("{API}/events?since={since}&until={until}"),
        "",
    );
    let events_b = b.explain(
        "GET",
        &format!("{API}/events?since={since}&until={until}"),
        "",
    );
    remove_container(&a_id);
    docker_api_json("DELETE", &format!("{API}/volumes/{a_volume}"), "");
    let events = |target: &str| -> Vec<Value> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let target = target.replace(&format!("until={until}"), &format!("until={}", now + 1));
        let (status, body) = docker_api_json("GET", &target, "");
        assert_eq!(status, 200, "{body}");
        let text = body
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_string());
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let seen_a = events(events_a.target());
    let seen_b = events(events_b.target());
    let ids = |seen: &[Value]| -> Vec<String> {
        seen.iter()
            .map(|e| e["Actor"]["ID"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert!(ids(&seen_a).contains(&a_id), "{seen_a:?}");
    assert!(!ids(&seen_a).contains(&b_id), "{seen_a:?}");
    assert!(!ids(&seen_b).contains(&a_id), "{seen_b:?}");
    for event in seen_a.iter().chain(&seen_b) {
        assert!(
            ["container", "volume", "network"].contains(&event["Type"].as_str().unwrap()),
            "{event}"
        );
    }
    // Unfiltered, dockerd reports team-a's container and volume to anyone: the filter did it.
    let all = events(&format!("{API}/events?since={since}&until={until}"));
    assert!(ids(&all).contains(&a_id) && ids(&all).contains(&b_id));
}

#[test]
fn tenancy_an_image_label_cannot_supply_the_owner() {
    let d = dockerd();
    let ctx = fresh_dir("tenancy-image");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {TEST_IMAGE}\nLABEL dockgate.owner=team-b\n"),
    )
    .unwrap();
    let tag = unique_name("owned-image");
    let out = run_with_timeout(
        docker_command(&d.host, None, &ctx.join("cfg"))
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", &tag])
            .arg(&ctx),
        None,
        Duration::from_secs(120),
    );
    assert!(out.success(), "docker build: {}{}", out.stdout, out.stderr);
    let owner = |id: &str| {
        let (_, inspect) = docker_api_json("GET", &format!("{API}/containers/{id}/json"), "");
        remove_container(id);
        inspect["Config"]["Labels"]["dockgate.owner"].clone()
    };
    // Without the gate, dockerd takes the image's label: the image would make team-b the owner.
    let body = format!(r#"{{"Image":"{tag}","Cmd":["true"]}}"#);
    let (status, direct) = docker_api_json("POST", &format!("{API}/containers/create"), &body);
    assert_eq!(status, 201, "{direct}");
    assert_eq!(owner(direct["Id"].as_str().unwrap()), "team-b");
    // Through the gate's create rewriting, team-a owns what team-a runs.
    let policy = policy();
    let id = Tenant::a(&policy).create("containers", "", &body);
    assert_eq!(owner(&id), "team-a");
    // And team-a cannot set the label itself, in any spelling.
    for key in ["dockgate.owner", "Dockgate.Owner", "DOCKGATE.OWNER"] {
        let explained = Tenant::a(&policy).explain(
            "POST",
            &format!("{API}/containers/create"),
            &format!(r#"{{"Image":"{tag}","Labels":{{"{key}":"team-a"}}}}"#),
        );
        assert!(!explained.ok);
        assert_eq!(explained.answer().0, 403, "{}", explained.text);
    }
    docker_api_json("DELETE", &format!("{API}/images/{tag}"), "");
}

#[test]
fn tenancy_a_create_cannot_name_another_tenants_objects() {
    let policy = policy();
    let (a, b) = (Tenant::a(&policy), Tenant::b(&policy));
    let db_name = unique_name("ref-db");
    let db = a.create(
        "containers",
        &format!("?name={db_name}"),
        &format!(r#"{{"Image":"{TEST_IMAGE}","Cmd":["sleep","600"],"Env":["SECRET=a"],"HostConfig":{{"NetworkMode":"none"}}}}"#),
    );
    let volume = unique_name("ref-vol");
    a.create("volumes", "", &format!(r#"{{"Name":"{volume}"}}"#));
    let network = unique_name("ref-net");
    let net_id = a.create(
        "networks",
        "",
        &format!(r#"{{"Name":"{network}","Driver":"bridge","Options":{{"com.docker.network.bridge.name":"dgr{}"}}}}"#, &db[..8]),
    );
    let create = |t: &Tenant, host_config: &str| {
        t.explain(
            "POST",
            &format!("{API}/containers/create"),
            &format!(r#"{{"Image":"{TEST_IMAGE}","HostConfig":{host_config}}}"#),
        )
    };
    let cases = [
        (
            format!(r#"{{"NetworkMode":"none","Links":["{db_name}:db"]}}"#),
            format!("No such container: {db_name}"),
        ),
        (
            format!(r#"{{"Binds":["{volume}:/data"]}}"#),
            format!("get {volume}: no such volume"),
        ),
        (
            format!(r#"{{"Mounts":[{{"Type":"volume","Source":"{volume}","Target":"/data"}}]}}"#),
            format!("get {volume}: no such volume"),
        ),
        (
            format!(r#"{{"NetworkMode":"{network}"}}"#),
            format!("network {network} not found"),
        ),
    ];
    for (host_config, message) in &cases {
        let refused = create(&b, host_config);
        assert!(!refused.ok, "{}", refused.text);
        assert_eq!(refused.answer(), (404, message.clone()), "{}", refused.text);
        let allowed = create(&a, host_config);
        assert!(allowed.ok, "{}", allowed.text);
    }
    // A volume that does not exist yet is created by dockerd: allowed; built-in networks too.
    let fresh = create(
        &b,
        &format!(r#"{{"NetworkMode":"none","Binds":["new-{volume}:/data"]}}"#),
    );
    assert!(fresh.ok, "{}", fresh.text);
    remove_container(&db);
    docker_api_json("DELETE", &format!("{API}/volumes/{volume}"), "");
    docker_api_json("DELETE", &format!("{API}/networks/{net_id}"), "");
}

#[test]
fn tenancy_commit_and_network_connect_check_the_container_they_name() {
    let policy = policy();
    let (a, b) = (Tenant::a(&policy), Tenant::b(&policy));
    let name = unique_name("conn");
    let id = a.create(
        "containers",
        &format!("?name={name}"),
        &format!(r#"{{"Image":"{TEST_IMAGE}","Cmd":["true"],"HostConfig":{{}}}}"#),
    );
    let network = unique_name("conn-net");
    let net_id = a.create(
        "networks",
        "",
        &format!(r#"{{"Name":"{network}","Driver":"bridge","Options":{{"com.docker.network.bridge.name":"dgc{}"}}}}"#, &id[..8]),
    );
    let connect_body = format!(r#"{{"Container":"{name}","EndpointConfig":{{}}}}"#);
    let connect = format!("{API}/networks/{network}/connect");

    // team-b: not its network, and not its container (own network, team-a's container).
    let refused = b.explain("POST", &connect, &connect_body);
    assert_eq!(
        refused.answer(),
        (404, format!("network {network} not found"))
    );
    let b_network = unique_name("conn-net-b");
    let b_net_id = b.create(
        "networks",
        "",
        &format!(r#"{{"Name":"{b_network}","Driver":"bridge","Options":{{"com.docker.network.bridge.name":"dgb{}"}}}}"#, &id[..8]),
    );
    let refused = b.explain(
        "POST",
        &format!("{API}/networks/{b_network}/connect"),
        &connect_body,
    );
    assert_eq!(
        refused.answer(),
        (404, format!("No such container: {name}"))
    );

    // team-a: forwarded with both full IDs, and dockerd connects exactly that container.
    let allowed = a.explain("POST", &connect, &connect_body);
    assert!(allowed.ok, "{}", allowed.text);
    assert_eq!(allowed.target(), format!("{API}/networks/{net_id}/connect"));
    assert_eq!(
        allowed.body(),
        format!(r#"{{"Container":"{id}","EndpointConfig":{{}}}}"#)
    );
    let (status, answer) = docker_api_json("POST", allowed.target(), allowed.body());
    assert_eq!(status, 200, "{answer}");
    let (_, inspect) = docker_api_json("GET", &format!("{API}/containers/{id}/json"), "");
    assert!(
        inspect["NetworkSettings"]["Networks"][&network].is_object(),
        "{}",
        inspect["NetworkSettings"]
    );

    // docker commit: the container in the query.
    let tag = unique_name("committed");
    let commit = format!("{API}/commit?container={name}&repo={tag}");
    assert_eq!(
        b.explain("POST", &commit, "").answer(),
        (404, format!("No such container: {name}"))
    );
    let committed = a.explain("POST", &commit, "");
    assert_eq!(
        committed.target(),
        format!("{API}/commit?container={id}&repo={tag}")
    );

    remove_container(&id);
    for net in [&net_id, &b_net_id] {
        docker_api_json("DELETE", &format!("{API}/networks/{net}"), "");
    }
}

#[test]
fn tenancy_another_tenants_name_cannot_hide_an_own_id_prefix() {
    let policy = policy();
    let (a, b) = (Tenant::a(&policy), Tenant::b(&policy));
    let run = format!(r#"{{"Image":"{TEST_IMAGE}","Cmd":["true"]}}"#);
    let a_id = a.create("containers", "", &run);
    // team-b names its container like the first 10 characters of team-a's ID.
    let prefix = &a_id[..10];
    let b_id = b.create("containers", &format!("?name={prefix}"), &run);
    // dockerd looks names up before ID prefixes: alone, it would pick team-b's container.
    let (_, direct) = docker_api_json("GET", &format!("{API}/containers/{prefix}/json"), "");
    assert_eq!(direct["Id"], b_id);
    // Each tenant gets its own, and neither learns that the other's exists.
    assert_eq!(
        a.resolve("GET", &format!("{API}/containers/{prefix}/json")),
        Ok(a_id.clone())
    );
    assert_eq!(
        b.resolve("GET", &format!("{API}/containers/{prefix}/json")),
        Ok(b_id.clone())
    );
    let team_c = Tenant {
        policy: policy.clone(),
        identity: ["--cn", "team-c", "--ou", "ci"],
    };
    assert_eq!(
        team_c.resolve("GET", &format!("{API}/containers/{prefix}/json")),
        Err((404, format!("No such container: {prefix}")))
    );
    remove_container(&a_id);
    remove_container(&b_id);
}
