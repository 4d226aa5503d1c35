//! Tenancy in the request path (issue #13): after the policy allowed a request of a tenant (a
//! role with `own`), `tenancy::plan::apply` resolves the objects it names through dockerd,
//! checks their owner and says what to forward instead; this module turns that into the bytes
//! that go to Docker ([`rewrite_head`]) and into the local answer of a refused request.
//!
//! What is forwarded is exactly what was checked: the full ID in the path (a rename or a remove
//! and recreate under the same name after the check cannot redirect it), the labelled body
//! with its own Content-Length. The library does the deciding (`crate::tenancy`); this is the
//! glue, kept out of `request` so that the request loop stays readable.

use crate::api::ApiRequest;
use crate::policy::body::Headers;
use crate::policy::CertIdentity;
use crate::policy::Policy;
use crate::tenancy::owner::Tenant;
use crate::tenancy::plan::{self, Forward};
use crate::tenancy::Refusal;
use crate::upstream::Upstream;

/// The tenant a request is made as, worked out before its body is read (the body is read
/// whole when tenancy needs it).
pub struct TenantOf {
    /// `Ok(None)`: the role owns nothing, the request goes on as without tenancy.
    tenant: Result<Option<Tenant>, Refusal>,
}

/// What tenancy made of an allowed request.
pub enum Tenancy {
    /// No tenant: forward as decided.
    None,
    /// Forward this instead; `owner` and the resolved full ID go into the audit line.
    Forward { owner: String, forward: Forward },
    /// Answer locally (`status`, dockerd's JSON shape); never forwarded.
    Refused {
        owner: Option<String>,
        refusal: Refusal,
    },
}

impl TenantOf {
    pub fn new(policy: &Policy, who: &CertIdentity) -> TenantOf {
        TenantOf {
            tenant: policy.tenant_for(who),
        }
    }

    /// True when tenancy needs the complete body of `request` (owned creates, network
    /// connect/disconnect).
    pub fn needs_body(&self, request: &ApiRequest) -> bool {
        match &self.tenant {
            Ok(Some(tenant)) => plan::needs_body(tenant, request),
            _ => false,
        }
    }

    /// Applies tenancy to a request the policy let through. `request` is `None` when the
    /// target could not be classified: a tenant's request then fails closed (400).
    pub fn apply(
        self,
        request: Option<&ApiRequest>,
        headers: &Headers<'_>,
        body: &[u8],
        upstream: Option<&Upstream>,
    ) -> Tenancy {
        let tenant = match self.tenant {
            Ok(None) => return Tenancy::None,
            Ok(Some(tenant)) => tenant,
            Err(refusal) => {
                return Tenancy::Refused {
                    owner: None,
                    refusal,
                }
            }
        };
        let applied = match (request, upstream) {
            (None, _) => Err(Refusal::bad_request(
                "a tenant's request target must be a Docker API path",
            )),
            (Some(_), None) => Err(Refusal::upstream("no Docker endpoint to resolve through")),
            (Some(request), Some(upstream)) => {
                plan::apply(&tenant, request, headers, body, upstream)
            }
        };
        match applied {
            Ok(forward) => Tenancy::Forward {
                owner: tenant.owner,
                forward,
            },
            Err(refusal) => Tenancy::Refused {
                owner: Some(tenant.owner),
                refusal,
            },
        }
    }
}

/// The request head to send in place of `head`: the request line's target replaced by
/// `target`; when `body_len` is given, the framing headers (`Content-Length`,
/// `Transfer-Encoding`) replaced by one `Content-Length`; with `drop_expect`, no `Expect` header
/// (the gate answered it with its own `100 Continue` and sends the body along). Every other
/// byte stays as received.
pub fn rewrite_head(
    head: &[u8],
    target: Option<&str>,
    body_len: Option<usize>,
    drop_expect: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + 64);
    let mut lines = head.split_inclusive(|&b| b == b'\n');
    if let Some(request_line) = lines.next() {
        out.extend_from_slice(&rewrite_request_line(request_line, target));
    }
    for line in lines {
        let is_end = line == b"\r\n" || line == b"\n";
        if is_end {
            if let Some(len) = body_len {
                out.extend_from_slice(format!("Content-Length: {len}\r\n").as_bytes());
            }
            out.extend_from_slice(line);
            continue;
        }
        if body_len.is_some() && is_framing_header(line) {
            continue;
        }
        if drop_expect && header_name(line).eq_ignore_ascii_case(b"expect") {
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

/// `METHOD SP target SP version` with the target replaced.
fn rewrite_request_line(line: &[u8], target: Option<&str>) -> Vec<u8> {
    let Some(target) = target else {
        return line.to_vec();
    };
    let first = line.iter().position(|&b| b == b' ');
    let last = line.iter().rposition(|&b| b == b' ');
    match (first, last) {
        (Some(first), Some(last)) if first < last => {
            let mut out = line[..=first].to_vec();
            out.extend_from_slice(target.as_bytes());
            out.extend_from_slice(&line[last..]);
            out
        }
        // The parser accepted this head, so this does not happen; keep it rather than guess.
        _ => line.to_vec(),
    }
}

fn header_name(line: &[u8]) -> &[u8] {
    line.split(|&b| b == b':')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

fn is_framing_header(line: &[u8]) -> bool {
    let name = header_name(line);
    name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"transfer-encoding")
}

/// The request asks for `100 Continue` before it sends its body.
pub fn expects_continue(headers: &[(&str, &[u8])]) -> bool {
    headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("expect")
            && value.trim_ascii().eq_ignore_ascii_case(b"100-continue")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_and_the_framing_are_replaced_and_nothing_else() {
        let head =
            b"POST /v1.41/containers/web/stop?t=1 HTTP/1.1\r\nHost: x\r\nX-Odd:  keep me \r\n\r\n";
        assert_eq!(
            rewrite_head(head, Some("/v1.41/containers/abc/stop?t=1"), None, false),
            b"POST /v1.41/containers/abc/stop?t=1 HTTP/1.1\r\nHost: x\r\nX-Odd:  keep me \r\n\r\n"
        );
        assert_eq!(rewrite_head(head, None, None, false), head);

        let chunked = b"POST /containers/create HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\nContent-Type: application/json\r\n\r\n";
        assert_eq!(
            String::from_utf8(rewrite_head(chunked, None, Some(42), false)).unwrap(),
            "POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n"
        );
        let sized = b"POST /containers/create HTTP/1.1\nContent-Length : 7\nHost: x\n\n";
        assert_eq!(
            String::from_utf8(rewrite_head(sized, None, Some(9), false)).unwrap(),
            "POST /containers/create HTTP/1.1\nHost: x\nContent-Length: 9\r\n\n"
        );
        let expecting =
            b"POST /containers/create HTTP/1.1\r\nexpect: 100-continue\r\nHost: x\r\n\r\n";
        assert_eq!(
            rewrite_head(expecting, None, None, true),
            b"POST /containers/create HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        assert!(expects_continue(&[("Expect", b" 100-Continue")]));
        assert!(!expects_continue(&[("Expected", b"100-continue")]));
    }
}
