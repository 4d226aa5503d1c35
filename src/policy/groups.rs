//! The permission groups a role's `allow` names, and which group each Docker endpoint belongs
//! to. An endpoint the classifier does not know (`Endpoint::Other`) belongs to no group: only
//! `all` allows it, so a new Docker API version cannot open a hole.

use crate::api::{ContainerOp, Endpoint, ImageOp, NetworkOp, ObjectOp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Read,
    Logs,
    Files,
    Containers,
    Exec,
    Images,
    Build,
    Buildkit,
    Volumes,
    Networks,
    System,
    Swarm,
    Services,
    Nodes,
    Secrets,
    Configs,
    Plugins,
    All,
}

/// Every group with its name and the endpoints it allows (the README's table).
pub const GROUPS: &[(Group, &str, &str)] = &[
    (Group::Read, "read", "GET /_ping, HEAD /_ping, /version, /info, /system/df, /events; GET /containers/json, /containers/{id}/json, /top, /changes, /stats; GET /images/json, /images/{name}/json, /images/{name}/history; GET /volumes, /volumes/{name}; GET /networks, /networks/{id}"),
    (Group::Logs, "logs", "GET /containers/{id}/logs"),
    (Group::Files, "files", "GET, HEAD, PUT /containers/{id}/archive; GET /containers/{id}/export; GET /images/{name}/get, /images/get"),
    (Group::Containers, "containers", "POST /containers/create (checked against [role.X.containers]); POST /containers/{id}/start (a body is refused), stop, restart, kill, pause, unpause, wait, rename, update, resize, attach; GET /containers/{id}/attach/ws; DELETE /containers/{id}; POST /containers/prune"),
    (Group::Exec, "exec", "POST /containers/{id}/exec (checked); POST /exec/{id}/start, /exec/{id}/resize; GET /exec/{id}/json"),
    (Group::Images, "images", "POST /images/create (pull, import), /images/{name}/push, /images/{name}/tag, /images/load, /commit, /images/prune; GET /images/search, /distribution/{name}/json (dockerd contacts the registry named); DELETE /images/{name}"),
    (Group::Build, "build", "POST /build with the classic builder (query checked), POST /build/cancel"),
    (Group::Buildkit, "buildkit", "POST /session, /grpc, POST /build?version=2 (BuildKit; cannot be inspected)"),
    (Group::Volumes, "volumes", "POST /volumes/create (checked: a local-driver bind is a bind mount), PUT and DELETE /volumes/{name}, POST /volumes/prune"),
    (Group::Networks, "networks", "POST /networks/create, /networks/{id}/connect (checked: endpoint DriverOpts), /networks/{id}/disconnect, /networks/prune; DELETE /networks/{id}"),
    (Group::System, "system", "POST /auth, POST /build/prune"),
    (Group::Swarm, "swarm", "/swarm and below (GET /swarm returns the join tokens)"),
    (Group::Services, "services", "/services and /tasks and below"),
    (Group::Nodes, "nodes", "/nodes and below"),
    (Group::Secrets, "secrets", "/secrets and below"),
    (Group::Configs, "configs", "/configs and below"),
    (Group::Plugins, "plugins", "/plugins and below"),
    (Group::All, "all", "everything, including endpoints the gate does not know; bodies are not inspected"),
];

impl Group {
    pub fn parse(name: &str) -> Option<Group> {
        GROUPS
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(g, _, _)| *g)
    }

    pub fn name(self) -> &'static str {
        GROUPS
            .iter()
            .find(|(g, _, _)| *g == self)
            .map_or("?", |(_, n, _)| n)
    }

    pub fn endpoints(self) -> &'static str {
        GROUPS
            .iter()
            .find(|(g, _, _)| *g == self)
            .map_or("?", |(_, _, e)| e)
    }
}

/// The group that allows `endpoint`; `None` for endpoints only `all` allows. `POST /build`
/// belongs to `build` here; a BuildKit build (`version=2`) additionally needs `buildkit`
/// (checked with the query).
pub fn group_of(endpoint: &Endpoint) -> Option<Group> {
    use Endpoint as E;
    let group = match endpoint {
        E::Ping | E::Version | E::Info | E::SystemDf | E::Events => Group::Read,
        E::Auth | E::BuildPrune => Group::System,
        E::ContainerList => Group::Read,
        E::ContainerCreate | E::ContainerPrune => Group::Containers,
        E::Container { op, .. } => container_group(*op),
        E::ExecCreate { .. }
        | E::ExecStart { .. }
        | E::ExecResize { .. }
        | E::ExecInspect { .. } => Group::Exec,
        E::ImageList => Group::Read,
        E::ImageCreate | E::ImageLoad | E::ImageSearch | E::ImagePrune | E::Commit => Group::Images,
        E::ImagesSave => Group::Files,
        E::Image { op, .. } => match op {
            ImageOp::Inspect | ImageOp::History => Group::Read,
            ImageOp::Save => Group::Files,
            ImageOp::Push | ImageOp::Tag | ImageOp::Remove => Group::Images,
        },
        // dockerd contacts the registry the name names: any host:port, from the host.
        E::DistributionInspect { .. } => Group::Images,
        E::Build | E::BuildCancel => Group::Build,
        E::BuildKitSession | E::BuildKitGrpc => Group::Buildkit,
        E::VolumeList => Group::Read,
        E::VolumeCreate | E::VolumePrune => Group::Volumes,
        E::Volume { op, .. } => match op {
            ObjectOp::Inspect => Group::Read,
            ObjectOp::Update | ObjectOp::Remove => Group::Volumes,
        },
        E::NetworkList => Group::Read,
        E::NetworkCreate | E::NetworkPrune => Group::Networks,
        E::Network { op, .. } => match op {
            NetworkOp::Inspect => Group::Read,
            NetworkOp::Connect | NetworkOp::Disconnect | NetworkOp::Remove => Group::Networks,
        },
        E::Swarm => Group::Swarm,
        E::Services | E::Tasks => Group::Services,
        E::Nodes => Group::Nodes,
        E::Secrets => Group::Secrets,
        E::Configs => Group::Configs,
        E::Plugins => Group::Plugins,
        E::Other => return None,
    };
    Some(group)
}

fn container_group(op: ContainerOp) -> Group {
    use ContainerOp as C;
    match op {
        C::Inspect | C::Top | C::Changes | C::Stats => Group::Read,
        C::Logs => Group::Logs,
        C::Export | C::ArchiveGet | C::ArchiveHead | C::ArchivePut => Group::Files,
        C::Resize
        | C::Start
        | C::Stop
        | C::Restart
        | C::Kill
        | C::Pause
        | C::Unpause
        | C::Wait
        | C::Rename
        | C::Update
        | C::Attach
        | C::AttachWs
        | C::Remove => Group::Containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::classify;

    fn group(method: &str, target: &str) -> Option<Group> {
        group_of(&classify(method, target).unwrap().endpoint)
    }

    #[test]
    fn read_excludes_file_contents_logs_stdin_and_secrets() {
        assert_eq!(group("GET", "/v1.41/containers/json"), Some(Group::Read));
        assert_eq!(group("GET", "/containers/x/json"), Some(Group::Read));
        assert_eq!(group("GET", "/events"), Some(Group::Read));
        assert_eq!(group("HEAD", "/_ping"), Some(Group::Read));
        assert_eq!(
            group("GET", "/containers/x/archive?path=/"),
            Some(Group::Files)
        );
        assert_eq!(
            group("HEAD", "/containers/x/archive?path=/"),
            Some(Group::Files)
        );
        assert_eq!(group("GET", "/containers/x/export"), Some(Group::Files));
        assert_eq!(group("GET", "/images/busybox/get"), Some(Group::Files));
        assert_eq!(
            group("GET", "/images/get?names=busybox"),
            Some(Group::Files)
        );
        assert_eq!(group("GET", "/containers/x/logs"), Some(Group::Logs));
        assert_eq!(
            group("GET", "/containers/x/attach/ws"),
            Some(Group::Containers)
        );
        assert_eq!(group("GET", "/swarm"), Some(Group::Swarm));
        assert_eq!(group("GET", "/secrets"), Some(Group::Secrets));
        assert_eq!(group("GET", "/configs/x"), Some(Group::Configs));
    }

    #[test]
    fn unknown_endpoints_belong_to_no_group() {
        assert_eq!(group("GET", "/containers/json/"), None);
        assert_eq!(group("POST", "/brand/new/endpoint"), None);
        assert_eq!(group("PATCH", "/containers/x/json"), None);
    }

    #[test]
    fn every_group_has_a_unique_name_that_parses_back() {
        for (g, name, endpoints) in GROUPS {
            assert_eq!(Group::parse(name), Some(*g));
            assert_eq!(g.name(), *name);
            assert!(!endpoints.is_empty());
        }
        assert_eq!(Group::parse("Read"), None);
    }

    #[test]
    fn the_readme_table_lists_every_group_with_its_endpoints() {
        let readme = include_str!("../../README.md");
        for (_, name, endpoints) in GROUPS {
            let row = format!("| `{name}` | {endpoints} |");
            assert!(readme.contains(&row), "README lacks the row\n{row}");
        }
    }
}
