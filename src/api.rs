//! What a request means to Docker: the request target is decoded the way dockerd's router
//! decodes it (percent-decoding, an optional `/v{version}` prefix) and classified into a typed
//! [`Endpoint`], with the container, exec, image, volume or network reference it names.
//!
//! Targets that dockerd would clean, redirect or route differently from what they look like are
//! refused instead of being guessed about: `//`, `.` and `..` segments (also percent-encoded),
//! an encoded `/` anywhere in the path, absolute-form and `*` targets, bad percent escapes,
//! NUL and other control characters. The docker CLI and the SDKs never send any of these.
//!
//! Path variables in moby's routes are `{name:.*}`, so a reference may contain `/`:
//! `POST /containers/a/exec/start` starts the *container* `a/exec`; it is not an exec start.
//! The classifier therefore matches a route's fixed suffix at the end of the path, exactly like
//! the anchored regular expressions gorilla/mux builds, and keeps whatever lies between as the
//! reference.

use std::fmt;

/// Why a request target is refused (answered 400 before anything reaches Docker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// `http://host/path`: Go routes it by its path, the gate does not accept it at all.
    AbsoluteForm,
    /// `*` (OPTIONS *).
    Asterisk,
    /// Anything else that does not start with `/`.
    NotOriginForm,
    /// `%` not followed by two hex digits.
    BadPercentEscape,
    /// `%2F` or `%2f`: dockerd routes on the decoded path, so it would split there.
    EncodedSlash,
    /// An empty segment (`//`): dockerd answers with a redirect to the cleaned path.
    EmptySegment,
    /// A `.` or `..` segment, also encoded (`%2e%2e`): dockerd redirects to the cleaned path.
    DotSegment,
    /// NUL or another control character, raw or encoded; or `#`.
    ControlCharacter,
    /// The decoded path is not UTF-8.
    NotUtf8,
    /// `/v.../`: looks like a version prefix but is not `digits(.digits)*`.
    BadVersion,
}

impl TargetError {
    pub fn message(self) -> &'static str {
        match self {
            TargetError::AbsoluteForm => "absolute-form request targets are not accepted",
            TargetError::Asterisk => "the request target * is not accepted",
            TargetError::NotOriginForm => "the request target must start with /",
            TargetError::BadPercentEscape => "bad percent escape in the request path",
            TargetError::EncodedSlash => {
                "an encoded slash (%2F) in the request path is not accepted"
            }
            TargetError::EmptySegment => "an empty path segment (//) is not accepted",
            TargetError::DotSegment => "a . or .. path segment is not accepted",
            TargetError::ControlCharacter => {
                "control characters and # are not accepted in the request target"
            }
            TargetError::NotUtf8 => "the decoded request path is not UTF-8",
            TargetError::BadVersion => "malformed API version prefix in the request path",
        }
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A classified request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    /// The API version of a `/v1.41/...` prefix, without the `v`.
    pub version: Option<String>,
    /// The percent-decoded path without the version prefix, e.g. `/containers/create`.
    pub path: String,
    /// The raw query string (after `?`, not decoded), empty when there is none.
    pub query: String,
    pub endpoint: Endpoint,
}

/// What the request does, with the object it names. Names are Docker's own words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Ping,
    Version,
    Info,
    SystemDf,
    Events,
    Auth,

    ContainerList,
    ContainerCreate,
    ContainerPrune,
    Container {
        id: String,
        op: ContainerOp,
    },
    /// `POST /containers/{id}/exec`: creates an exec; its body is inspected.
    ExecCreate {
        container: String,
    },
    /// `POST /exec/{id}/start`: becomes a raw stream; decided before the hijack.
    ExecStart {
        exec: String,
    },
    ExecResize {
        exec: String,
    },
    ExecInspect {
        exec: String,
    },

    ImageList,
    /// `POST /images/create`: pull (`fromImage`) or import (`fromSrc`).
    ImageCreate,
    ImageLoad,
    ImageSearch,
    ImagePrune,
    /// `GET /images/get?names=...`: saves several images (file contents).
    ImagesSave,
    Image {
        name: String,
        op: ImageOp,
    },
    Commit,
    DistributionInspect {
        name: String,
    },

    /// `POST /build` with the classic builder or BuildKit (`version=2`).
    Build,
    BuildPrune,
    BuildCancel,
    /// BuildKit's `/session` and `/grpc`: HTTP/2 streams the gate cannot inspect.
    BuildKitSession,
    BuildKitGrpc,

    VolumeList,
    VolumeCreate,
    VolumePrune,
    Volume {
        name: String,
        op: ObjectOp,
    },

    NetworkList,
    NetworkCreate,
    NetworkPrune,
    Network {
        id: String,
        op: NetworkOp,
    },

    Swarm,
    Services,
    Tasks,
    Nodes,
    Secrets,
    Configs,
    Plugins,

    /// A route the gate does not know (or a method dockerd has no route for).
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerOp {
    Inspect,
    Top,
    Logs,
    Changes,
    Export,
    Stats,
    Resize,
    Start,
    Stop,
    Restart,
    Kill,
    Pause,
    Unpause,
    Wait,
    Rename,
    Update,
    /// `POST /containers/{id}/attach`: becomes a raw stream.
    Attach,
    /// `GET /containers/{id}/attach/ws`: a websocket that takes stdin.
    AttachWs,
    Remove,
    ArchiveGet,
    ArchiveHead,
    ArchivePut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageOp {
    Inspect,
    History,
    Push,
    Tag,
    Remove,
    /// `GET /images/{name}/get`: the image as a tarball.
    Save,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectOp {
    Inspect,
    Update,
    Remove,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkOp {
    Inspect,
    Connect,
    Disconnect,
    Remove,
}

impl Endpoint {
    /// A request that dockerd answers by turning the connection into a raw stream.
    pub fn is_attach_or_exec_start(&self) -> bool {
        matches!(
            self,
            Endpoint::ExecStart { .. }
                | Endpoint::Container {
                    op: ContainerOp::Attach | ContainerOp::AttachWs,
                    ..
                }
        )
    }
}

/// Decodes and classifies `method` + `target` (the request target exactly as received).
pub fn classify(method: &str, target: &str) -> Result<ApiRequest, TargetError> {
    let (raw_path, query) = split_target(target)?;
    let decoded = decode_path(raw_path)?;
    let (version, path) = strip_version(&decoded)?;
    let endpoint = route(method, path);
    Ok(ApiRequest {
        version: version.map(str::to_owned),
        path: path.to_owned(),
        query: query.to_owned(),
        endpoint,
    })
}

fn split_target(target: &str) -> Result<(&str, &str), TargetError> {
    if target == "*" {
        return Err(TargetError::Asterisk);
    }
    if target.contains("://") && !target.starts_with('/') {
        return Err(TargetError::AbsoluteForm);
    }
    if !target.starts_with('/') {
        return Err(TargetError::NotOriginForm);
    }
    if target.bytes().any(|b| b.is_ascii_control() || b == b'#') {
        return Err(TargetError::ControlCharacter);
    }
    Ok(target.split_once('?').unwrap_or((target, "")))
}

/// Percent-decodes the path and refuses everything dockerd's router would see differently.
fn decode_path(raw: &str) -> Result<String, TargetError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .ok_or(TargetError::BadPercentEscape)?;
        let value = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .filter(|_| hex.iter().all(u8::is_ascii_hexdigit))
            .ok_or(TargetError::BadPercentEscape)?;
        if value == b'/' {
            return Err(TargetError::EncodedSlash);
        }
        if value.is_ascii_control() || value == b'#' {
            return Err(TargetError::ControlCharacter);
        }
        out.push(value);
        i += 3;
    }
    let path = String::from_utf8(out).map_err(|_| TargetError::NotUtf8)?;
    // The first segment is the empty one before the leading `/`; a trailing `/` is kept by
    // dockerd's cleaning (so is an empty last segment here).
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (n, segment) in segments.iter().enumerate() {
        if *segment == "." || *segment == ".." {
            return Err(TargetError::DotSegment);
        }
        if segment.is_empty() && n + 1 < segments.len() {
            return Err(TargetError::EmptySegment);
        }
    }
    Ok(path)
}

/// Splits `/v1.41/rest` into `("1.41", "/rest")`. dockerd's version variable is `[0-9.]+`.
fn strip_version(path: &str) -> Result<(Option<&str>, &str), TargetError> {
    let Some(after_v) = path.strip_prefix("/v") else {
        return Ok((None, path));
    };
    let Some(end) = after_v.find('/') else {
        return Ok((None, path));
    };
    let version = &after_v[..end];
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Ok((None, path));
    }
    if version.split('.').any(str::is_empty) {
        return Err(TargetError::BadVersion);
    }
    Ok((Some(version), &after_v[end..]))
}

/// The route dockerd would pick for `method` and a decoded, version-less `path`.
fn route(method: &str, path: &str) -> Endpoint {
    if let Some(rest) = path.strip_prefix("/containers/") {
        return container_route(method, rest);
    }
    if let Some(rest) = path.strip_prefix("/exec/") {
        return exec_route(method, rest);
    }
    if let Some(rest) = path.strip_prefix("/images/") {
        return image_route(method, rest);
    }
    if let Some(rest) = path.strip_prefix("/volumes/") {
        return volume_route(method, rest);
    }
    if let Some(rest) = path.strip_prefix("/networks/") {
        return network_route(method, rest);
    }
    if let Some(rest) = path.strip_prefix("/distribution/") {
        return match (method, strip_suffix_ref(rest, "/json")) {
            ("GET", Some(name)) => Endpoint::DistributionInspect { name },
            _ => Endpoint::Other,
        };
    }
    match (method, path) {
        ("GET" | "HEAD", "/_ping") => Endpoint::Ping,
        ("GET", "/version") => Endpoint::Version,
        ("GET", "/info") => Endpoint::Info,
        ("GET", "/system/df") => Endpoint::SystemDf,
        ("GET", "/events") => Endpoint::Events,
        ("POST", "/auth") => Endpoint::Auth,
        ("POST", "/commit") => Endpoint::Commit,
        ("POST", "/build") => Endpoint::Build,
        ("POST", "/build/prune") => Endpoint::BuildPrune,
        ("POST", "/build/cancel") => Endpoint::BuildCancel,
        ("POST", "/session") => Endpoint::BuildKitSession,
        (_, "/grpc") => Endpoint::BuildKitGrpc,
        ("GET", "/volumes") => Endpoint::VolumeList,
        ("GET", "/networks") => Endpoint::NetworkList,
        _ => admin_route(path),
    }
}

/// Swarm, secrets, configs and plugins: every method and sub-path belongs to its group.
fn admin_route(path: &str) -> Endpoint {
    let first = path.split('/').nth(1).unwrap_or("");
    match first {
        "swarm" => Endpoint::Swarm,
        "services" => Endpoint::Services,
        "tasks" => Endpoint::Tasks,
        "nodes" => Endpoint::Nodes,
        "secrets" => Endpoint::Secrets,
        "configs" => Endpoint::Configs,
        "plugins" => Endpoint::Plugins,
        _ => Endpoint::Other,
    }
}

/// `rest` without `suffix` when what remains is a non-empty reference (`{name:.*}`).
fn strip_suffix_ref(rest: &str, suffix: &str) -> Option<String> {
    rest.strip_suffix(suffix)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

/// Suffixes of `/containers/{name:.*}/...` routes per method, the two-segment one first.
const CONTAINER_SUFFIXES: &[(&str, &str, ContainerOp)] = &[
    ("GET", "/attach/ws", ContainerOp::AttachWs),
    ("GET", "/json", ContainerOp::Inspect),
    ("GET", "/top", ContainerOp::Top),
    ("GET", "/logs", ContainerOp::Logs),
    ("GET", "/changes", ContainerOp::Changes),
    ("GET", "/export", ContainerOp::Export),
    ("GET", "/stats", ContainerOp::Stats),
    ("GET", "/archive", ContainerOp::ArchiveGet),
    ("HEAD", "/archive", ContainerOp::ArchiveHead),
    ("PUT", "/archive", ContainerOp::ArchivePut),
    ("POST", "/resize", ContainerOp::Resize),
    ("POST", "/start", ContainerOp::Start),
    ("POST", "/stop", ContainerOp::Stop),
    ("POST", "/restart", ContainerOp::Restart),
    ("POST", "/kill", ContainerOp::Kill),
    ("POST", "/pause", ContainerOp::Pause),
    ("POST", "/unpause", ContainerOp::Unpause),
    ("POST", "/wait", ContainerOp::Wait),
    ("POST", "/rename", ContainerOp::Rename),
    ("POST", "/update", ContainerOp::Update),
    ("POST", "/attach", ContainerOp::Attach),
];

fn container_route(method: &str, rest: &str) -> Endpoint {
    match (method, rest) {
        ("GET", "json") => return Endpoint::ContainerList,
        ("POST", "create") => return Endpoint::ContainerCreate,
        ("POST", "prune") => return Endpoint::ContainerPrune,
        ("DELETE", name) if !name.is_empty() => {
            return Endpoint::Container {
                id: name.to_owned(),
                op: ContainerOp::Remove,
            }
        }
        _ => {}
    }
    if method == "POST" {
        if let Some(container) = strip_suffix_ref(rest, "/exec") {
            return Endpoint::ExecCreate { container };
        }
    }
    for (route_method, suffix, op) in CONTAINER_SUFFIXES {
        if method == *route_method {
            if let Some(id) = strip_suffix_ref(rest, suffix) {
                return Endpoint::Container { id, op: *op };
            }
        }
    }
    Endpoint::Other
}

fn exec_route(method: &str, rest: &str) -> Endpoint {
    let pick = |suffix| strip_suffix_ref(rest, suffix);
    match method {
        "POST" => {
            if let Some(exec) = pick("/start") {
                return Endpoint::ExecStart { exec };
            }
            if let Some(exec) = pick("/resize") {
                return Endpoint::ExecResize { exec };
            }
        }
        "GET" => {
            if let Some(exec) = pick("/json") {
                return Endpoint::ExecInspect { exec };
            }
        }
        _ => {}
    }
    Endpoint::Other
}

fn image_route(method: &str, rest: &str) -> Endpoint {
    match (method, rest) {
        ("GET", "json") => return Endpoint::ImageList,
        ("GET", "search") => return Endpoint::ImageSearch,
        ("GET", "get") => return Endpoint::ImagesSave,
        ("POST", "create") => return Endpoint::ImageCreate,
        ("POST", "load") => return Endpoint::ImageLoad,
        ("POST", "prune") => return Endpoint::ImagePrune,
        ("DELETE", name) if !name.is_empty() => {
            return Endpoint::Image {
                name: name.to_owned(),
                op: ImageOp::Remove,
            }
        }
        _ => {}
    }
    let suffixes: &[(&str, &str, ImageOp)] = &[
        ("GET", "/json", ImageOp::Inspect),
        ("GET", "/history", ImageOp::History),
        ("GET", "/get", ImageOp::Save),
        ("POST", "/push", ImageOp::Push),
        ("POST", "/tag", ImageOp::Tag),
    ];
    for (route_method, suffix, op) in suffixes {
        if method == *route_method {
            if let Some(name) = strip_suffix_ref(rest, suffix) {
                return Endpoint::Image { name, op: *op };
            }
        }
    }
    Endpoint::Other
}

fn volume_route(method: &str, rest: &str) -> Endpoint {
    let op = match (method, rest) {
        ("POST", "create") => return Endpoint::VolumeCreate,
        ("POST", "prune") => return Endpoint::VolumePrune,
        // `GET /volumes/` is not a route: `{name:.*}` needs the slash and an empty name
        // finds nothing.
        (_, "") => return Endpoint::Other,
        ("GET", _) => ObjectOp::Inspect,
        ("PUT", _) => ObjectOp::Update,
        ("DELETE", _) => ObjectOp::Remove,
        _ => return Endpoint::Other,
    };
    Endpoint::Volume {
        name: rest.to_owned(),
        op,
    }
}

fn network_route(method: &str, rest: &str) -> Endpoint {
    match (method, rest) {
        // moby registers both `/networks` and `/networks/` for the list.
        ("GET", "") => return Endpoint::NetworkList,
        ("POST", "create") => return Endpoint::NetworkCreate,
        ("POST", "prune") => return Endpoint::NetworkPrune,
        _ => {}
    }
    let (id, op) = match method {
        "GET" if !rest.is_empty() => (Some(rest.to_owned()), NetworkOp::Inspect),
        "DELETE" if !rest.is_empty() => (Some(rest.to_owned()), NetworkOp::Remove),
        "POST" => match strip_suffix_ref(rest, "/connect") {
            Some(id) => (Some(id), NetworkOp::Connect),
            None => (strip_suffix_ref(rest, "/disconnect"), NetworkOp::Disconnect),
        },
        _ => (None, NetworkOp::Inspect),
    };
    match id {
        Some(id) => Endpoint::Network { id, op },
        None => Endpoint::Other,
    }
}

/// Decodes an `application/x-www-form-urlencoded` string (a query) the way Go's
/// `url.ParseQuery` does, into (key, value) pairs in order. `;` separators (which older Go
/// split on and newer Go rejects) and bad escapes are errors.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        if part.contains(';') {
            return Err("a ';' in the query string is not accepted".into());
        }
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((unescape_query(key)?, unescape_query(value)?));
    }
    Ok(pairs)
}

fn unescape_query(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let value = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
                    .ok_or_else(|| format!("bad percent escape in the query parameter {s:?}"))?;
                out.push(value);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("query parameter {s:?} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(method: &str, target: &str) -> Endpoint {
        classify(method, target).unwrap().endpoint
    }

    fn container(id: &str, op: ContainerOp) -> Endpoint {
        Endpoint::Container { id: id.into(), op }
    }

    #[test]
    fn version_prefix_is_stripped_and_kept() {
        let r = classify("GET", "/v1.41/containers/json?all=1").unwrap();
        assert_eq!(r.version.as_deref(), Some("1.41"));
        assert_eq!(r.path, "/containers/json");
        assert_eq!(r.query, "all=1");
        assert_eq!(r.endpoint, Endpoint::ContainerList);
        let bare = classify("GET", "/containers/json").unwrap();
        assert_eq!(bare.version, None);
        assert_eq!(bare.endpoint, Endpoint::ContainerList);
        assert_eq!(endpoint("GET", "/v1/_ping"), Endpoint::Ping);
        assert_eq!(endpoint("HEAD", "/v1.24/_ping"), Endpoint::Ping);
    }

    #[test]
    fn only_one_version_prefix_is_a_route() {
        // `[0-9.]+` cannot span a `/`: a second prefix is no route at all.
        assert_eq!(
            endpoint("GET", "/v1.41/v1.40/containers/json"),
            Endpoint::Other
        );
        // `/version` and `/volumes` are not version prefixes.
        assert_eq!(endpoint("GET", "/version"), Endpoint::Version);
        assert_eq!(endpoint("GET", "/v1.41/volumes"), Endpoint::VolumeList);
        assert_eq!(
            classify("GET", "/v1..41/info"),
            Err(TargetError::BadVersion)
        );
        assert_eq!(classify("GET", "/v./info"), Err(TargetError::BadVersion));
    }

    #[test]
    fn references_with_slashes_keep_everything_before_the_route_suffix() {
        assert_eq!(
            endpoint("POST", "/v1.41/containers/a/exec/start"),
            container("a/exec", ContainerOp::Start)
        );
        assert_eq!(
            endpoint("GET", "/containers/parent/alias/json"),
            container("parent/alias", ContainerOp::Inspect)
        );
        assert_eq!(
            endpoint("DELETE", "/containers/x/json"),
            container("x/json", ContainerOp::Remove)
        );
        assert_eq!(
            endpoint("GET", "/images/registry.example.org/team/app:1/json"),
            Endpoint::Image {
                name: "registry.example.org/team/app:1".into(),
                op: ImageOp::Inspect
            }
        );
        assert_eq!(
            endpoint("DELETE", "/v1.41/images/docker.io/library/busybox:latest"),
            Endpoint::Image {
                name: "docker.io/library/busybox:latest".into(),
                op: ImageOp::Remove
            }
        );
        // A container named like an endpoint is still a container (twistlock/authz's bug).
        assert_eq!(
            endpoint("POST", "/containers/build1/exec"),
            Endpoint::ExecCreate {
                container: "build1".into()
            }
        );
    }

    #[test]
    fn attach_and_exec_start_are_detected_and_only_those() {
        let attach = endpoint("POST", "/v1.41/containers/abc/attach?stream=1&stdin=1");
        assert_eq!(attach, container("abc", ContainerOp::Attach));
        assert!(attach.is_attach_or_exec_start());
        let ws = endpoint("GET", "/containers/abc/attach/ws");
        assert_eq!(ws, container("abc", ContainerOp::AttachWs));
        assert!(ws.is_attach_or_exec_start());
        let start = endpoint("POST", "/v1.41/exec/0123abcd/start");
        assert_eq!(
            start,
            Endpoint::ExecStart {
                exec: "0123abcd".into()
            }
        );
        assert!(start.is_attach_or_exec_start());
        assert!(!endpoint("POST", "/containers/a/exec/start").is_attach_or_exec_start());
        assert!(!endpoint("GET", "/containers/abc/attach").is_attach_or_exec_start());
        assert!(!endpoint("POST", "/exec/abc/json").is_attach_or_exec_start());
        assert_eq!(
            endpoint("GET", "/exec/abc/json"),
            Endpoint::ExecInspect { exec: "abc".into() }
        );
    }

    #[test]
    fn methods_match_exactly() {
        assert_eq!(endpoint("get", "/containers/json"), Endpoint::Other);
        assert_eq!(endpoint("HEAD", "/containers/json"), Endpoint::Other);
        assert_eq!(
            endpoint("HEAD", "/containers/c/archive"),
            container("c", ContainerOp::ArchiveHead)
        );
        assert_eq!(endpoint("POST", "/containers/json"), Endpoint::Other);
        assert_eq!(endpoint("GET", "/containers/create"), Endpoint::Other);
    }

    #[test]
    fn creates_and_other_collections() {
        assert_eq!(
            endpoint("POST", "/v1.41/containers/create?name=x"),
            Endpoint::ContainerCreate
        );
        assert_eq!(endpoint("POST", "/volumes/create"), Endpoint::VolumeCreate);
        assert_eq!(
            endpoint("POST", "/networks/create"),
            Endpoint::NetworkCreate
        );
        assert_eq!(endpoint("GET", "/networks/"), Endpoint::NetworkList);
        assert_eq!(endpoint("POST", "/build?t=x"), Endpoint::Build);
        assert_eq!(endpoint("POST", "/session"), Endpoint::BuildKitSession);
        assert_eq!(endpoint("GET", "/swarm"), Endpoint::Swarm);
        assert_eq!(endpoint("POST", "/services/create"), Endpoint::Services);
        assert_eq!(endpoint("GET", "/secrets"), Endpoint::Secrets);
        assert_eq!(endpoint("POST", "/plugins/pull"), Endpoint::Plugins);
        assert_eq!(endpoint("GET", "/something/new"), Endpoint::Other);
        assert_eq!(
            endpoint("POST", "/networks/n1/connect"),
            Endpoint::Network {
                id: "n1".into(),
                op: NetworkOp::Connect
            }
        );
        assert_eq!(endpoint("GET", "/volumes/"), Endpoint::Other);
    }

    #[test]
    fn percent_encoding_is_decoded_like_dockerd() {
        assert_eq!(
            endpoint("GET", "/v1.41/containers/%6Aso%6e"),
            Endpoint::ContainerList
        );
        assert_eq!(endpoint("POST", "/%761.41/build"), Endpoint::Build);
        assert_eq!(
            endpoint("POST", "/containers/c/%61ttach"),
            container("c", ContainerOp::Attach)
        );
    }

    #[test]
    fn targets_dockerd_would_clean_or_split_are_refused() {
        let refused = [
            ("/containers%2Fjson", TargetError::EncodedSlash),
            ("/containers%2fcreate", TargetError::EncodedSlash),
            ("/containers/a%2Fb/json", TargetError::EncodedSlash),
            ("//containers/json", TargetError::EmptySegment),
            ("/v1.41//containers/create", TargetError::EmptySegment),
            ("/containers//x/json", TargetError::EmptySegment),
            ("/containers/./json", TargetError::DotSegment),
            ("/containers/x/../create", TargetError::DotSegment),
            ("/containers/x/%2e%2e/create", TargetError::DotSegment),
            ("/containers/x/%2E/json", TargetError::DotSegment),
            ("/v1.41/..", TargetError::DotSegment),
            ("/containers/%zz/json", TargetError::BadPercentEscape),
            ("/containers/%4/json", TargetError::BadPercentEscape),
            ("/containers/%", TargetError::BadPercentEscape),
            ("/containers/%00/json", TargetError::ControlCharacter),
            ("/containers/a\0/json", TargetError::ControlCharacter),
            ("/containers/a#/json", TargetError::ControlCharacter),
            ("/containers/%ff/json", TargetError::NotUtf8),
            (
                "http://docker/v1.41/containers/create",
                TargetError::AbsoluteForm,
            ),
            ("HTTP://docker/containers/create", TargetError::AbsoluteForm),
            ("*", TargetError::Asterisk),
            ("containers/json", TargetError::NotOriginForm),
        ];
        for (target, error) in refused {
            assert_eq!(classify("POST", target), Err(error), "{target}");
        }
        // Only the path is checked for %2F: the CLI encodes `/` in query values.
        let pull = classify(
            "POST",
            "/images/create?fromImage=docker.io%2Flibrary%2Fbusybox",
        );
        assert_eq!(pull.unwrap().endpoint, Endpoint::ImageCreate);
        // A trailing slash is kept by dockerd's cleaning, and is a different route.
        assert_eq!(endpoint("GET", "/containers/json/"), Endpoint::Other);
    }

    #[test]
    fn queries_decode_like_go_and_refuse_semicolons() {
        assert_eq!(
            parse_query("networkmode=host&t=a%2Fb+c&q").unwrap(),
            vec![
                ("networkmode".into(), "host".into()),
                ("t".into(), "a/b c".into()),
                ("q".into(), String::new()),
            ]
        );
        assert!(parse_query("networkmode=none;networkmode=host").is_err());
        assert!(parse_query("networkmode=%zz").is_err());
    }
}
