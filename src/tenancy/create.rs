//! The owner label on creates: `POST /containers/create`, `/volumes/create` and
//! `/networks/create` of a kind the tenant owns get `Labels["dockgate.owner"] = <owner>`, set by
//! the gate on every create. dockerd merges an image's `LABEL`s into a container's labels only
//! for keys the request lacks, so always setting it also closes `LABEL dockgate.owner=...` in an
//! image.
//!
//! A request that sets the label itself is refused (403), in any spelling: Go's label maps are
//! case-sensitive, but a key that folds to `dockgate.owner` is refused anyway. The body is read
//! with the policy's strict JSON (duplicate keys, trailing data and keys that dockerd would fold
//! onto `Labels` are refused, 400) and written back in the same member order; every number
//! must come out spelled as it came in, else 400, so the rest of the body keeps its meaning
//! exactly. The caller forwards the returned bytes with a recomputed Content-Length.

use super::{Kind, Refusal, OWNER_LABEL};
use crate::policy::body::{parse_body, Headers};
use crate::policy::docker_json::{
    go_fold, map_member, struct_members, CONFIG_FIELDS, CREATE_FIELDS, HOST_CONFIG_FIELDS,
    VOLUME_CREATE_FIELDS,
};
use crate::policy::json::{number_literals, Json};

/// Fields of the network create request (types.NetworkCreateRequest, 20.10 to 29).
#[rustfmt::skip]
const NETWORK_CREATE_FIELDS: &[&str] = &[
    "Name", "CheckDuplicate", "Driver", "Scope", "EnableIPv4", "EnableIPv6", "IPAM", "Internal",
    "Attachable", "Ingress", "ConfigOnly", "ConfigFrom", "Options", "Labels",
];

/// The create body with the owner label set. `kind` is the kind created (not `Exec`).
pub fn label_create(
    kind: Kind,
    owner: &str,
    headers: &Headers<'_>,
    body: &[u8],
) -> Result<Vec<u8>, Refusal> {
    let value = parse_body(headers, body)?;
    let members = known_members(kind, &value)?;
    let labels = map_member(members, "Labels", "")?;
    let owner_key = go_fold(OWNER_LABEL);
    if let Some((key, _)) = labels.iter().find(|(k, _)| go_fold(k) == owner_key) {
        return Err(Refusal::denied(format!(
            "the label {key:?} is set by the gate (Labels.{OWNER_LABEL}); remove it from the {} create",
            singular(kind)
        )));
    }
    let mut labels = labels.to_vec();
    labels.push((OWNER_LABEL.to_string(), Json::String(owner.to_string())));
    let mut members = members.to_vec();
    match members.iter_mut().find(|(k, _)| k == "Labels") {
        Some((_, value)) => *value = Json::Object(labels),
        None => members.push(("Labels".to_string(), Json::Object(labels))),
    }
    let out = Json::Object(members).to_bytes();
    if number_literals(body) != number_literals(&out) {
        return Err(Refusal::bad_request(
            "a number in the body is not in canonical form (e.g. -0, 1.0, 1e2); send it as the docker CLI does",
        ));
    }
    Ok(out)
}

/// The members of the create body, refusing keys dockerd would read as a field under another
/// spelling (`labels`, `LABELS`, `ŀabels`...).
fn known_members(kind: Kind, value: &Json) -> Result<&[(String, Json)], Refusal> {
    let container_fields: Vec<&str>;
    let known: &[&str] = match kind {
        Kind::Containers => {
            container_fields = [CONFIG_FIELDS, CREATE_FIELDS, HOST_CONFIG_FIELDS].concat();
            &container_fields
        }
        Kind::Volumes => VOLUME_CREATE_FIELDS,
        Kind::Networks => NETWORK_CREATE_FIELDS,
        Kind::Exec => return Err(Refusal::bad_request("an exec create carries no labels")),
    };
    struct_members(value, "", known).map_err(Refusal::from)
}

fn singular(kind: Kind) -> &'static str {
    match kind {
        Kind::Containers => "container",
        Kind::Volumes => "volume",
        Kind::Networks => "network",
        Kind::Exec => "exec",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &[(&str, &[u8])] = &[("Content-Type", b"application/json")];

    fn label(kind: Kind, body: &str) -> Result<String, Refusal> {
        label_create(kind, "team-a", JSON, body.as_bytes())
            .map(|out| String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_owner_label_is_added_and_the_rest_is_kept_in_order() {
        assert_eq!(
            label(
                Kind::Containers,
                r#"{"Image":"busybox", "Labels":{"app":"web"},"HostConfig":{"Memory":1048576}}"#
            )
            .unwrap(),
            r#"{"Image":"busybox","Labels":{"app":"web","dockgate.owner":"team-a"},"HostConfig":{"Memory":1048576}}"#
        );
        assert_eq!(
            label(Kind::Containers, r#"{"Image":"b","Labels":null}"#).unwrap(),
            r#"{"Image":"b","Labels":{"dockgate.owner":"team-a"}}"#
        );
        assert_eq!(
            label(Kind::Volumes, r#"{"Name":"data","Driver":"local"}"#).unwrap(),
            r#"{"Name":"data","Driver":"local","Labels":{"dockgate.owner":"team-a"}}"#
        );
        assert_eq!(
            label(Kind::Networks, r#"{"Name":"n","Labels":{}}"#).unwrap(),
            r#"{"Name":"n","Labels":{"dockgate.owner":"team-a"}}"#
        );
    }

    #[test]
    fn a_client_that_sets_the_owner_label_is_refused_in_any_spelling() {
        for key in [
            "dockgate.owner",
            "Dockgate.Owner",
            "DOCKGATE.OWNER",
            "doc\\u006bgate.owner",
            "doc\u{212a}gate.owner", // KELVIN SIGN folds to k
        ] {
            for kind in [Kind::Containers, Kind::Volumes, Kind::Networks] {
                let body = format!(r#"{{"Name":"x","Labels":{{"a":"b","{key}":"team-b"}}}}"#);
                let err = label(kind, &body).unwrap_err();
                assert_eq!(err.status, 403, "{key}: {err}");
                assert!(err.message.contains("set by the gate"), "{err}");
            }
        }
        // A similar but different key is just a label.
        label(Kind::Containers, r#"{"Labels":{"dockgate.owner2":"x"}}"#).unwrap();
    }

    #[test]
    fn bodies_dockerd_could_read_differently_are_refused() {
        for (kind, body, needle) in [
            (Kind::Containers, r#"{"labels":{"x":"y"}}"#, "not spelled"),
            (Kind::Volumes, r#"{"LABELS":{"x":"y"}}"#, "not spelled"),
            (Kind::Networks, r#"{"Labels":{},"Labels":{}}"#, "duplicate"),
            (Kind::Containers, r#"{"Labels":{"x":"y"}} {}"#, "trailing"),
            (Kind::Containers, r#"{"Labels":["x"]}"#, "must be an object"),
            (Kind::Containers, r#"["x"]"#, "JSON object"),
            (Kind::Containers, r#"{"StopTimeout":-0}"#, "canonical"),
            (
                Kind::Containers,
                r#"{"HostConfig":{"Memory":1e6}}"#,
                "canonical",
            ),
        ] {
            let err = label(kind, body).unwrap_err();
            assert_eq!(err.status, 400, "{body}: {err}");
            assert!(err.message.contains(needle), "{body}: {err}");
        }
        let form: &[(&str, &[u8])] = &[("Content-Type", b"application/x-www-form-urlencoded")];
        let err = label_create(Kind::Volumes, "t", form, b"{}").unwrap_err();
        assert_eq!(err.status, 400);
    }
}
