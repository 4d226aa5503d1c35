//! Parsing request and response heads with httparse, and deciding how each message is framed.
//!
//! The head bytes themselves are forwarded unchanged; what is extracted here is only what the
//! gate needs to frame the body, recognise a raw-stream answer, and write the audit line.
//! Whether a connection is hijacked is decided from dockerd's answer alone (see `conn`), never
//! from the request: dockerd routes on the percent-decoded path, which the gate does not. Ambiguous
//! request framing is refused, because the gate and dockerd must agree on where a request ends
//! (CVE-2024-41110 was an AuthZ bypass through a length mismatch).

use std::io::{self, Read};

use super::inbound::Inbound;

/// The largest request or response head accepted (a bigger request head is answered 431).
pub const MAX_HEAD: usize = 64 * 1024;
/// BuildKit's /session request repeats X-Docker-Expose-Session-* headers many times.
const MAX_HEADERS: usize = 512;
/// Enough for every other Docker request and response.
const FEW_HEADERS: usize = 64;

/// How a request body is delimited: a request never runs until the connection closes (the
/// client would have no way to send another, and the gate no way to know where it ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFraming {
    None,
    Length(u64),
    Chunked,
}

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Response only: the body runs until the upstream closes the connection.
    UntilClose,
}

/// Why a request head was refused; each maps to a status code.
#[derive(Debug)]
pub enum HeadError {
    /// Not HTTP, or framing the gate refuses to guess about: 400.
    Malformed(String),
    /// The head exceeded `MAX_HEAD` or `MAX_HEADERS`: 431.
    TooLarge,
    /// The stream ended in the middle of a head.
    Truncated,
    Io(io::Error),
}

impl From<io::Error> for HeadError {
    fn from(e: io::Error) -> Self {
        HeadError::Io(e)
    }
}

/// What the gate keeps of a request head.
#[derive(Debug)]
pub struct RequestHead {
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    pub framing: RequestFraming,
    /// The head's length in the reader's buffer.
    pub len: usize,
}

/// What the gate keeps of a response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    pub framing: Framing,
    /// `Content-Type: application/vnd.docker.raw-stream` or `...multiplexed-stream`.
    pub raw_stream: bool,
    /// The upstream closes the connection after this response (`Connection: close`, or
    /// HTTP/1.0 without keep-alive): the client's connection must end with it.
    pub closes: bool,
    pub len: usize,
}

/// Reads the next request head. `Ok(None)` when the client closed between requests.
pub fn read_request<R: Read>(inbound: &mut Inbound<R>) -> Result<Option<RequestHead>, HeadError> {
    read_head(inbound, true, |bytes| {
        with_headers(|headers| {
            let mut request = httparse::Request::new(headers);
            match request.parse(bytes) {
                Ok(httparse::Status::Complete(len)) => request_head(&request, len).map(Some),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
                Err(e) => Err(HeadError::Malformed(format!("malformed request head: {e}"))),
            }
        })
    })
}

/// The header fields of a complete request head (as `read_request` found it), for the access
/// policy: name and value as sent.
pub fn request_headers(head: &[u8]) -> Vec<(&str, &[u8])> {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let _ = request.parse(head);
    request.headers.iter().map(|h| (h.name, h.value)).collect()
}

/// RFC 9112 lets a server ignore empty lines before a request line, but Go's server refuses
/// them, so they are dropped rather than forwarded.
fn skip_empty_lines<R: Read>(inbound: &mut Inbound<R>) {
    loop {
        let skip = match inbound.buffered() {
            [b'\r', b'\n', ..] => 2,
            [b'\n', ..] => 1,
            _ => return,
        };
        inbound.consume(skip);
    }
}

/// Reads the next response head. `Ok(None)` when the upstream closed before sending one.
pub fn read_response<R: Read>(
    inbound: &mut Inbound<R>,
    request_method: &str,
) -> Result<Option<ResponseHead>, HeadError> {
    read_head(inbound, false, |bytes| {
        with_headers(|headers| {
            let mut response = httparse::Response::new(headers);
            match response.parse(bytes) {
                Ok(httparse::Status::Complete(len)) => {
                    response_head(&response, len, request_method).map(Some)
                }
                Ok(httparse::Status::Partial) => Ok(None),
                Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
                Err(e) => Err(HeadError::Malformed(format!(
                    "malformed response head: {e}"
                ))),
            }
        })
    })
}

/// Reads until `parse` finds a complete head in the buffer (it returns `Ok(None)` while the
/// head is incomplete). `Ok(None)` when the stream ends before any byte of a head.
fn read_head<R: Read, T>(
    inbound: &mut Inbound<R>,
    skip_leading_empty_lines: bool,
    parse: impl Fn(&[u8]) -> Result<Option<T>, HeadError>,
) -> Result<Option<T>, HeadError> {
    loop {
        if skip_leading_empty_lines {
            skip_empty_lines(inbound);
        }
        if let Some(head) = parse(inbound.buffered())? {
            return Ok(Some(head));
        }
        // The buffer may be larger than a head may be (the client's, for uploads).
        if inbound.buffered().len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        match inbound.read_more()? {
            None => return Err(HeadError::TooLarge),
            Some(0) if inbound.buffered().is_empty() => return Ok(None),
            Some(0) => return Err(HeadError::Truncated),
            Some(_) => {}
        }
    }
}

/// Runs `parse` with room for `FEW_HEADERS` headers on the stack, and for `MAX_HEADERS` on the
/// heap only when a head has more: every request is parsed this way, and few have many headers.
fn with_headers<'b, T>(
    parse: impl Fn(&mut [httparse::Header<'b>]) -> Result<T, HeadError>,
) -> Result<T, HeadError> {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    match parse(&mut few) {
        Err(HeadError::TooLarge) => parse(&mut vec![httparse::EMPTY_HEADER; MAX_HEADERS]),
        other => other,
    }
}

fn request_head(request: &httparse::Request<'_, '_>, len: usize) -> Result<RequestHead, HeadError> {
    let method = request.method.unwrap_or_default().to_string();
    let target = request.path.unwrap_or_default().to_string();
    // Only origin-form (`/path?query`): the path in the audit log must be the one dockerd
    // routes on.
    if !target.starts_with('/') {
        return Err(HeadError::Malformed(format!(
            "request target must be a path starting with /: {target}"
        )));
    }
    let framing = request_framing(request.headers, request.version == Some(0))?;
    Ok(RequestHead {
        method,
        target,
        framing,
        len,
    })
}

/// Request bodies: exactly one of Content-Length (all values equal) or `Transfer-Encoding:
/// chunked`, or neither. Everything else is refused.
fn request_framing(
    headers: &[httparse::Header<'_>],
    http10: bool,
) -> Result<RequestFraming, HeadError> {
    let (lengths, encodings) = framing_headers(headers);
    if http10 && !encodings.is_empty() {
        // Go ignores Transfer-Encoding in HTTP/1.0 and would read the body as the next request.
        return Err(HeadError::Malformed(
            "Transfer-Encoding in an HTTP/1.0 request".into(),
        ));
    }
    if !encodings.is_empty() && !lengths.is_empty() {
        return Err(HeadError::Malformed(
            "both Content-Length and Transfer-Encoding".into(),
        ));
    }
    if !encodings.is_empty() {
        return if encodings.len() == 1 && encodings[0].eq_ignore_ascii_case("chunked") {
            Ok(RequestFraming::Chunked)
        } else {
            Err(HeadError::Malformed(format!(
                "unsupported Transfer-Encoding: {}",
                encodings.join(", ")
            )))
        };
    }
    match content_length(&lengths).map_err(HeadError::Malformed)? {
        Some(0) | None => Ok(RequestFraming::None),
        Some(n) => Ok(RequestFraming::Length(n)),
    }
}

/// Response bodies, as RFC 9112 section 6.3 orders the rules.
fn response_head(
    response: &httparse::Response<'_, '_>,
    len: usize,
    request_method: &str,
) -> Result<ResponseHead, HeadError> {
    let status = response.code.unwrap_or_default();
    let raw_stream = response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("content-type")
            && std::str::from_utf8(h.value).is_ok_and(|v| {
                let v = v.trim().to_ascii_lowercase();
                v.starts_with("application/vnd.docker.raw-stream")
                    || v.starts_with("application/vnd.docker.multiplexed-stream")
            })
    });
    let (lengths, encodings) = framing_headers(response.headers);
    let framing = if request_method == "HEAD"
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        Framing::None
    } else if let Some(last) = encodings.last() {
        if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match content_length(&lengths).map_err(HeadError::Malformed)? {
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let closes = connection_closes(response.headers, response.version == Some(0));
    Ok(ResponseHead {
        status,
        framing,
        raw_stream,
        closes,
        len,
    })
}

/// `Connection: close` (any token of any Connection header), or HTTP/1.0 without `keep-alive`.
fn connection_closes(headers: &[httparse::Header<'_>], http10: bool) -> bool {
    let tokens: Vec<String> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| {
            String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    if tokens.iter().any(|t| t == "close") {
        return true;
    }
    http10 && !tokens.iter().any(|t| t == "keep-alive")
}

/// The values of every Content-Length header and every Transfer-Encoding list element.
fn framing_headers<'h>(headers: &'h [httparse::Header<'_>]) -> (Vec<&'h [u8]>, Vec<String>) {
    let mut lengths = Vec::new();
    let mut encodings = Vec::new();
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            lengths.push(header.value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let value = String::from_utf8_lossy(header.value);
            encodings.extend(
                value
                    .split(',')
                    .map(|e| trim_ows(e).to_string())
                    .filter(|e| !e.is_empty()),
            );
            if trim_ows(&value).is_empty() {
                encodings.push(String::new());
            }
        }
    }
    (lengths, encodings)
}

/// HTTP's optional whitespace is spaces and tabs only (`str::trim` would also take Unicode
/// spaces, which Go does not).
fn trim_ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// All Content-Length values must be plain decimal and identical, byte for byte, as Go
/// requires (it would refuse `05` next to `5`, so the gate must not call them equal).
fn content_length(values: &[&[u8]]) -> Result<Option<u64>, String> {
    let mut found: Option<(&str, u64)> = None;
    for raw in values {
        let text = trim_ows(std::str::from_utf8(raw).unwrap_or(""));
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "invalid Content-Length: {}",
                String::from_utf8_lossy(raw)
            ));
        }
        let n: u64 = text
            .parse()
            .map_err(|_| format!("Content-Length too large: {text}"))?;
        match found {
            Some((previous, _)) if previous != text => {
                return Err(format!(
                    "conflicting Content-Length values {previous} and {text}"
                ))
            }
            _ => found = Some((text, n)),
        }
    }
    Ok(found.map(|(_, n)| n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_request(raw: &str) -> Result<Option<RequestHead>, HeadError> {
        read_request(&mut Inbound::new(raw.as_bytes(), MAX_HEAD))
    }

    /// As the client's side is read: through a buffer four times the head limit.
    fn parse_request_from_large_buffer(raw: &str) -> Result<Option<RequestHead>, HeadError> {
        read_request(&mut Inbound::new(raw.as_bytes(), 4 * MAX_HEAD))
    }

    fn framing_of(raw: &str) -> RequestFraming {
        parse_request(raw).unwrap().unwrap().framing
    }

    fn refused(raw: &str) -> String {
        match parse_request(raw) {
            Err(HeadError::Malformed(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn request_framing_rules() {
        assert_eq!(
            framing_of("GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"),
            RequestFraming::None
        );
        assert_eq!(
            framing_of("POST /a HTTP/1.1\r\nContent-Length: 12\r\n\r\n"),
            RequestFraming::Length(12)
        );
        assert_eq!(
            framing_of("POST /a HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
            RequestFraming::Length(5)
        );
        assert_eq!(
            framing_of("POST /build HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            RequestFraming::Chunked
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        assert!(refused(
            "POST /a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .contains("both"));
        assert!(
            refused("POST /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")
                .contains("conflicting")
        );
        assert!(
            refused("POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
                .contains("unsupported")
        );
        assert!(refused(
            "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .contains("unsupported"));
        assert!(refused("POST /a HTTP/1.1\r\nContent-Length: +5\r\n\r\n").contains("invalid"));
        assert!(
            refused("POST /a HTTP/1.1\r\nContent-Length: 05\r\nContent-Length: 5\r\n\r\n")
                .contains("conflicting")
        );
        assert!(refused("POST /a HTTP/1.1\r\nContent-Length: \u{a0}2\r\n\r\n").contains("invalid"));
        assert!(
            refused("POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").contains("HTTP/1.0")
        );
        assert!(refused("POST http://x/containers/a/attach HTTP/1.1\r\n\r\n").contains("path"));
        assert!(
            refused("POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n")
                .contains("too large")
        );
        assert!(matches!(
            parse_request("hello there\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn empty_lines_before_a_request_are_dropped_not_forwarded() {
        let mut inbound = Inbound::new(&b"\r\n\nGET /_ping HTTP/1.1\r\n\r\n"[..], MAX_HEAD);
        let head = read_request(&mut inbound).unwrap().unwrap();
        assert_eq!(
            &inbound.buffered()[..head.len],
            b"GET /_ping HTTP/1.1\r\n\r\n"
        );
    }

    #[test]
    fn header_count_limit_is_max_headers_not_the_first_attempt() {
        let with_headers = |n: usize| {
            let headers: String = (0..n)
                .map(|i| format!("X-Docker-Expose-Session-{i}: v\r\n"))
                .collect();
            parse_request(&format!("POST /session HTTP/1.1\r\n{headers}\r\n"))
        };
        assert!(with_headers(FEW_HEADERS + 100).unwrap().is_some());
        assert!(matches!(
            with_headers(MAX_HEADERS + 1),
            Err(HeadError::TooLarge)
        ));
    }

    #[test]
    fn oversized_heads_are_too_large() {
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(parse_request(&big), Err(HeadError::TooLarge)));
        assert!(matches!(
            parse_request_from_large_buffer(&big),
            Err(HeadError::TooLarge)
        ));
        let just_fits = format!(
            "GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "a".repeat(MAX_HEAD - 28)
        );
        assert_eq!(just_fits.len(), MAX_HEAD - 1);
        assert!(parse_request_from_large_buffer(&just_fits)
            .unwrap()
            .is_some());
    }

    #[test]
    fn clean_eof_between_requests_is_not_an_error() {
        assert!(parse_request("").unwrap().is_none());
        assert!(matches!(
            parse_request("GET / HTTP/1.1\r\n"),
            Err(HeadError::Truncated)
        ));
    }

    #[test]
    fn response_framing_rules() {
        let parse = |raw: &str, method: &str| {
            read_response(&mut Inbound::new(raw.as_bytes(), MAX_HEAD), method)
                .unwrap()
                .unwrap()
        };
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
        assert_eq!(parse(ok, "GET").framing, Framing::Length(2));
        assert!(!parse(ok, "GET").closes);
        let closing =
            "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 2\r\n\r\nOK";
        assert!(parse(closing, "GET").closes);
        assert!(parse("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK", "GET").closes);
        assert!(!parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", "HEAD").closes);
        assert_eq!(parse(ok, "HEAD").framing, Framing::None);
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(chunked, "GET").framing, Framing::Chunked);
        let upgraded = "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
        let head = parse(upgraded, "POST");
        assert_eq!((head.status, head.raw_stream), (101, true));
        let legacy =
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n\r\n";
        let head = parse(legacy, "POST");
        assert_eq!((head.framing, head.raw_stream), (Framing::UntilClose, true));
    }
}
