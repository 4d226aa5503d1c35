//! Lists, prunes and events filtered by dockerd itself: the gate merges
//! `label=dockgate.owner=<owner>` into the `filters` query parameter, keeping every filter the
//! client sent. dockerd ANDs filter keys and ANDs the values of `label`, so the result is "the
//! client's filter, among the tenant's own objects". `docker ps`, `docker volume ls`,
//! `docker container prune` then show and touch only the tenant's own.
//!
//! Events are also limited to the types a tenant owns (`container`, `volume`, `network`):
//! image events carry the image's labels, so an image built with `LABEL dockgate.owner=...`
//! would otherwise pass the label filter; daemon and plugin events are not a tenant's business.
//! A `type` filter the client sent is intersected with those (nothing left: 403), because
//! dockerd ORs the values of `type`.
//!
//! `filters` is a JSON map of lists (`{"label":["a=b"]}`) or, as Go's filters package writes
//! it, of sets (`{"label":{"a=b":true}}`); both are read, the set form is written. A filter that
//! is not one of those, `filters` given twice, or a bad escape is refused (400). A form body
//! on a prune would override the query in dockerd (`ParseForm`), so [`refuse_form_body`] must
//! be called for them.

use super::owner::Tenant;
use super::{Kind, Refusal, OWNER_LABEL};
use crate::api::{parse_query, Endpoint};
use crate::policy::body::Headers;
use crate::policy::json::Json;

/// The query of a filtered request with the owner filter merged in. `query` is the raw query
/// (after `?`); the other parameters are kept byte for byte, in order.
pub fn merge_owner_filter(
    tenant: &Tenant,
    endpoint: &Endpoint,
    query: &str,
) -> Result<String, Refusal> {
    let parts: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let mut filter_at = None;
    for (n, part) in parts.iter().enumerate() {
        let pairs = parse_query(part).map_err(Refusal::bad_request)?;
        if pairs.first().is_some_and(|(key, _)| key == "filters") {
            if filter_at.is_some() {
                return Err(Refusal::bad_request(
                    "the query parameter filters is given more than once",
                ));
            }
            filter_at = Some((n, pairs[0].1.clone()));
        }
    }
    let sent = filter_at.as_ref().map_or("", |(_, v)| v.as_str());
    let mut filters = parse_filters(sent)?;
    add_value(
        &mut filters,
        "label",
        &format!("{OWNER_LABEL}={}", tenant.owner),
    );
    if *endpoint == Endpoint::Events {
        restrict_event_types(tenant, &mut filters)?;
    }
    let encoded = format!("filters={}", query_escape(&render(&filters)));
    let mut out: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
    match filter_at {
        Some((n, _)) => out[n] = encoded,
        None => out.push(encoded),
    }
    Ok(out.join("&"))
}

/// Prunes read their filters from a form body too, and the body's win (Go's `ParseForm`).
pub fn refuse_form_body(headers: &Headers<'_>) -> Result<(), Refusal> {
    let form = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("content-type")
            && String::from_utf8_lossy(value)
                .to_ascii_lowercase()
                .trim_start()
                .starts_with("application/x-www-form-urlencoded")
    });
    if form {
        return Err(Refusal::bad_request(
            "a form body is not accepted here (its filters would override the query)",
        ));
    }
    Ok(())
}

/// Filters as (key, values) in the client's order.
type Filters = Vec<(String, Vec<String>)>;

fn parse_filters(text: &str) -> Result<Filters, Refusal> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |why: String| Refusal::bad_request(format!("malformed filters: {why}"));
    let value = Json::parse(text.as_bytes()).map_err(bad)?;
    let members = value
        .as_object()
        .ok_or_else(|| bad(format!("expected a JSON object, not {}", value.kind())))?;
    let mut filters = Vec::new();
    for (key, values) in members {
        let list = match values {
            Json::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>(),
            // Go ignores the booleans: {"a=b":false} filters like {"a=b":true}.
            Json::Object(set) => set
                .iter()
                .map(|(v, b)| matches!(b, Json::Bool(_)).then(|| v.clone()))
                .collect::<Option<Vec<_>>>(),
            _ => None,
        };
        let list = list.ok_or_else(|| {
            bad(format!(
                "{key:?} must be a list of strings or a map of booleans"
            ))
        })?;
        filters.push((key.clone(), list));
    }
    Ok(filters)
}

fn add_value(filters: &mut Filters, key: &str, value: &str) {
    match filters.iter_mut().find(|(k, _)| k == key) {
        Some((_, values)) if values.iter().any(|v| v == value) => {}
        Some((_, values)) => values.push(value.to_string()),
        None => filters.push((key.to_string(), vec![value.to_string()])),
    }
}

/// The event types the tenant may see, intersected with the client's `type` filter.
fn restrict_event_types(tenant: &Tenant, filters: &mut Filters) -> Result<(), Refusal> {
    let own: Vec<&str> = [
        (Kind::Containers, "container"),
        (Kind::Volumes, "volume"),
        (Kind::Networks, "network"),
    ]
    .into_iter()
    .filter(|(kind, _)| tenant.owns(*kind))
    .map(|(_, name)| name)
    .collect();
    let allowed: Vec<String> = match filters.iter().find(|(k, _)| k == "type") {
        Some((_, asked)) => own
            .iter()
            .filter(|t| asked.iter().any(|a| a == *t))
            .map(|t| t.to_string())
            .collect(),
        None => own.iter().map(|t| t.to_string()).collect(),
    };
    if allowed.is_empty() {
        return Err(Refusal::denied(format!(
            "tenant {} sees only {} events",
            tenant.owner,
            own.join(", ")
        )));
    }
    match filters.iter_mut().find(|(k, _)| k == "type") {
        Some((_, values)) => *values = allowed,
        None => filters.push(("type".to_string(), allowed)),
    }
    Ok(())
}

/// `{"label":{"a=b":true,...},...}`: the form Go's `filters.ToJSON` writes.
fn render(filters: &Filters) -> String {
    let members = filters
        .iter()
        .map(|(key, values)| {
            let set = values
                .iter()
                .map(|v| (v.clone(), Json::Bool(true)))
                .collect();
            (key.clone(), Json::Object(set))
        })
        .collect();
    String::from_utf8(Json::Object(members).to_bytes()).unwrap_or_default()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(super) fn query_escape(text: &str) -> String {
    percent_escape(text, b"")
}

/// Percent-encodes everything but RFC 3986's unreserved characters and those in `also_keep`.
pub(super) fn percent_escape(text: &str, also_keep: &[u8]) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || also_keep.contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(owns: &[Kind]) -> Tenant {
        Tenant {
            owner: "team-a".into(),
            owns: owns.to_vec(),
        }
    }

    fn merged(endpoint: Endpoint, query: &str) -> Result<(String, String), Refusal> {
        let t = tenant(&[Kind::Containers, Kind::Volumes, Kind::Exec]);
        let out = merge_owner_filter(&t, &endpoint, query)?;
        let filters = parse_query(&out)
            .unwrap()
            .into_iter()
            .find(|(k, _)| k == "filters")
            .unwrap()
            .1;
        Ok((out, filters))
    }

    #[test]
    fn the_owner_label_is_added_and_client_filters_kept() {
        let (out, filters) = merged(Endpoint::ContainerList, "all=1").unwrap();
        assert_eq!(filters, r#"{"label":{"dockgate.owner=team-a":true}}"#);
        assert!(out.starts_with("all=1&filters=%7B%22label%22"), "{out}");
        let sent = query_escape(r#"{"status":["exited"],"label":{"app=web":true}}"#);
        let (out, filters) =
            merged(Endpoint::ContainerList, &format!("filters={sent}&limit=3")).unwrap();
        assert_eq!(
            filters,
            r#"{"status":{"exited":true},"label":{"app=web":true,"dockgate.owner=team-a":true}}"#
        );
        assert!(out.ends_with("&limit=3"), "{out}");
        let (_, filters) = merged(Endpoint::VolumePrune, "filters=").unwrap();
        assert_eq!(filters, r#"{"label":{"dockgate.owner=team-a":true}}"#);
    }

    #[test]
    fn events_are_limited_to_the_owned_types() {
        let (_, filters) = merged(Endpoint::Events, "since=1").unwrap();
        assert_eq!(
            filters,
            r#"{"label":{"dockgate.owner=team-a":true},"type":{"container":true,"volume":true}}"#
        );
        let asked = query_escape(r#"{"type":["image","container"]}"#);
        let (_, filters) = merged(Endpoint::Events, &format!("filters={asked}")).unwrap();
        assert_eq!(
            filters,
            r#"{"type":{"container":true},"label":{"dockgate.owner=team-a":true}}"#
        );
        let images = query_escape(r#"{"type":["image","daemon"]}"#);
        let err = merged(Endpoint::Events, &format!("filters={images}")).unwrap_err();
        assert_eq!(err.status, 403, "{err}");
    }

    #[test]
    fn malformed_filters_are_refused() {
        for sent in [
            r#"["label"]"#,
            r#"{"label":"a=b"}"#,
            r#"{"label":[1]}"#,
            r#"{"label":{"a":"yes"}}"#,
            r#"{"label":[],"label":[]}"#,
            r#"{"label":[]"#,
        ] {
            let q = format!("filters={}", query_escape(sent));
            let err = merged(Endpoint::ContainerList, &q).unwrap_err();
            assert_eq!(err.status, 400, "{sent}: {err}");
        }
        for q in ["filters={}&filters={}", "filters=%zz", "a=1;filters=x"] {
            let err = merged(Endpoint::ContainerList, q).unwrap_err();
            assert_eq!(err.status, 400, "{q}: {err}");
        }
        let form: &[(&str, &[u8])] = &[("Content-Type", b"application/x-www-form-urlencoded")];
        assert_eq!(refuse_form_body(form).unwrap_err().status, 400);
        refuse_form_body(&[("Content-Type", b"application/json")]).unwrap();
    }
}
