//! What the audit log says about a request target.
//!
//! dockerd routes on the percent-decoded path (`/v1.41/exec/ID/st%61rt` is exec start,
//! `/containers/c1%2Fattach` is attach), so the log shows the decoded path, and the target as
//! sent next to it when the two differ. The query is shown as sent, except for values that carry
//! secrets: `buildargs` (build-time variables of `POST /build`, often tokens) is replaced by
//! `REDACTED`. The gate decides nothing from the path: hijacks are recognised from dockerd's
//! answer (see `conn`).

use std::borrow::Cow;

/// Query parameters whose values never reach the log (matched after decoding the name, as
/// dockerd's query parser does).
const SECRET_PARAMETERS: &[&str] = &["buildargs"];
const REDACTED: &str = "REDACTED";

/// A request target as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedTarget {
    /// The decoded path, then `?` and the (redacted) query as sent.
    pub path: String,
    /// The (redacted) target as sent, when its path is not already in decoded form.
    pub raw: Option<String>,
}

impl LoggedTarget {
    /// Takes the target as sent; the common case (nothing encoded, nothing secret) keeps the
    /// string without a copy.
    pub fn new(target: String) -> LoggedTarget {
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if !path.contains('%') && !query.split('&').any(is_secret) {
            return LoggedTarget {
                path: target,
                raw: None,
            };
        }
        LoggedTarget::rewritten(&target)
    }

    fn rewritten(target: &str) -> LoggedTarget {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(redact_query(query))),
            None => (target, None),
        };
        let decoded = percent_decode(path);
        let with_query = |path: &str| match &query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_string(),
        };
        let raw = match &decoded {
            Cow::Borrowed(_) => None,
            Cow::Owned(_) => Some(with_query(path)),
        };
        LoggedTarget {
            path: with_query(&decoded),
            raw,
        }
    }
}

/// `%XX` sequences decoded (invalid ones kept as they are: dockerd refuses such a request with
/// 400, and the log should show what was sent); bytes that are not UTF-8 become U+FFFD.
fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut changed = false;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(byte) = hex_pair(bytes.get(i + 1..i + 3)) {
                out.push(byte);
                i += 3;
                changed = true;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_pair(pair: Option<&[u8]>) -> Option<u8> {
    let pair = std::str::from_utf8(pair?).ok()?;
    if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(pair, 16).ok()
}

/// A `name=value` pair of a query whose value must not be logged.
fn is_secret(pair: &str) -> bool {
    let name = pair.split('=').next().unwrap_or("");
    if !name.contains(['%', '+']) {
        return SECRET_PARAMETERS.contains(&name);
    }
    SECRET_PARAMETERS.contains(&percent_decode(&name.replace('+', " ")).as_ref())
}

/// The query with the values of `SECRET_PARAMETERS` replaced (pairs are split on `&`, as Go's
/// query parser does; a `+` in a name is a space there).
fn redact_query(query: &str) -> Cow<'_, str> {
    if !query.split('&').any(is_secret) {
        return Cow::Borrowed(query);
    }
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret(pair) => format!("{name}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect();
    Cow::Owned(pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(target: &str) -> (String, Option<String>) {
        let t = LoggedTarget::new(target.to_string());
        (t.path, t.raw)
    }

    #[test]
    fn plain_targets_are_logged_as_sent() {
        assert_eq!(
            logged("/v1.41/containers/json?all=1"),
            ("/v1.41/containers/json?all=1".into(), None)
        );
    }

    #[test]
    fn encoded_paths_are_logged_decoded_with_the_raw_target_next_to_them() {
        assert_eq!(
            logged("/v1.41/exec/abc/st%61rt"),
            (
                "/v1.41/exec/abc/start".into(),
                Some("/v1.41/exec/abc/st%61rt".into())
            )
        );
        assert_eq!(
            logged("/%63ontainers/c1%2F%61ttach?stream=1&x=%41"),
            (
                "/containers/c1/attach?stream=1&x=%41".into(),
                Some("/%63ontainers/c1%2F%61ttach?stream=1&x=%41".into())
            )
        );
        // Not an escape: kept.
        assert_eq!(logged("/a%zz%4"), ("/a%zz%4".into(), None));
        // Decoded control characters are escaped by the logger, not here.
        assert_eq!(logged("/a%0Ab").0, "/a\nb");
    }

    #[test]
    fn buildargs_values_are_redacted() {
        let target = "/v1.41/build?t=app&buildargs=%7B%22TOKEN%22%3A%22s3cr3t%22%7D&q=1";
        let (path, raw) = logged(target);
        assert_eq!(path, "/v1.41/build?t=app&buildargs=REDACTED&q=1");
        assert_eq!(raw, None);
        let (path, raw) = logged("/b%75ild?build%61rgs=%7B%22A%22%3A%22s3cr3t%22%7D");
        assert_eq!(path, "/build?build%61rgs=REDACTED");
        assert_eq!(raw.as_deref(), Some("/b%75ild?build%61rgs=REDACTED"));
    }
}
