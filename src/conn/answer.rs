//! The gate's own answers to requests (as opposed to dockerd's): each kind knows its status,
//! its JSON message (the docker CLI prints it as `Error response from daemon: ...`) and whether
//! the connection closes after it.

use std::io::{self, Write};

use crate::audit::Outcome;
use crate::http::head::{HeadError, MAX_HEAD};
use crate::http::write_json_error;

/// An answer the gate gives instead of Docker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalAnswer {
    /// Not HTTP, or framing the gate refuses to guess about: where this request ends is
    /// unknown, so the connection closes.
    BadRequest(String),
    /// A request head over `MAX_HEAD`: closes, like `BadRequest`.
    HeadTooLarge,
    /// The policy denies the request (the whole message: `dockgate: access denied: ...`). Its
    /// body has been consumed, so the connection goes on.
    Forbidden(String),
    /// Tenancy refused the request (`tenancy::Refusal`): dockerd's own 404 for another tenant's
    /// object, 403 for a spoofed owner label, 502 when dockerd could not be asked. Its body has
    /// been consumed, so the connection goes on.
    Tenancy { status: u16, message: String },
    /// A body the gate must inspect is larger than it reads: the rest of it is unread, so the
    /// connection closes.
    PayloadTooLarge(u64),
    /// The gate cannot take the request now (a limit): closes.
    ServiceUnavailable(String),
    /// Docker cannot be reached or failed before answering: closes.
    BadGateway(String),
}

impl LocalAnswer {
    /// The answer to a request head the gate refuses; `None` when the client just went away.
    pub fn for_head_error(e: &HeadError) -> Option<LocalAnswer> {
        match e {
            HeadError::Malformed(why) => Some(LocalAnswer::BadRequest(why.clone())),
            HeadError::TooLarge => Some(LocalAnswer::HeadTooLarge),
            HeadError::Truncated | HeadError::Io(_) => None,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            LocalAnswer::BadRequest(_) => 400,
            LocalAnswer::HeadTooLarge => 431,
            LocalAnswer::Forbidden(_) => 403,
            LocalAnswer::Tenancy { status, .. } => *status,
            LocalAnswer::PayloadTooLarge(_) => 413,
            LocalAnswer::ServiceUnavailable(_) => 503,
            LocalAnswer::BadGateway(_) => 502,
        }
    }

    pub fn message(&self) -> String {
        match self {
            LocalAnswer::BadRequest(why) => format!("dockgate: bad request: {why}"),
            LocalAnswer::HeadTooLarge => {
                format!("dockgate: request head larger than {} KiB", MAX_HEAD / 1024)
            }
            LocalAnswer::Forbidden(message) | LocalAnswer::Tenancy { message, .. } => {
                message.clone()
            }
            LocalAnswer::PayloadTooLarge(limit) => format!(
                "dockgate: request body larger than {} KiB, the most the gate inspects",
                limit / 1024
            ),
            LocalAnswer::ServiceUnavailable(why) | LocalAnswer::BadGateway(why) => {
                format!("dockgate: {why}")
            }
        }
    }

    /// The connection ends after this answer.
    pub fn closes(&self) -> bool {
        !matches!(
            self,
            LocalAnswer::Forbidden(_) | LocalAnswer::Tenancy { .. }
        )
    }

    /// How the exchange ended, for its audit record.
    pub fn outcome(&self) -> Outcome {
        match self {
            LocalAnswer::BadGateway(_) => Outcome::UpstreamClosed,
            _ => Outcome::Complete,
        }
    }

    /// Writes the answer; to a `HEAD` request (`head_only`) without its body, which the client
    /// will not read: on a connection that goes on, those bytes would be taken for the next
    /// response.
    pub fn write_to<W: Write>(&self, dst: &mut W, head_only: bool) -> io::Result<()> {
        let mut response = Vec::new();
        write_json_error(&mut response, self.status(), &self.message(), self.closes())?;
        if head_only {
            if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                response.truncate(end + 4);
            }
        }
        dst.write_all(&response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(answer: &LocalAnswer) -> (String, serde_json::Value) {
        let mut out = Vec::new();
        answer.write_to(&mut out, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn a_denial_keeps_the_connection_and_every_other_answer_closes_it() {
        let (head, body) = written(&LocalAnswer::Forbidden(
            "dockgate: access denied: CN=x (role r) may not y".into(),
        ));
        assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
        assert!(!head.contains("Connection: close"), "{head}");
        assert_eq!(
            body["message"],
            "dockgate: access denied: CN=x (role r) may not y"
        );
        for answer in [
            LocalAnswer::BadRequest("x".into()),
            LocalAnswer::HeadTooLarge,
            LocalAnswer::PayloadTooLarge(1 << 20),
            LocalAnswer::ServiceUnavailable("x".into()),
            LocalAnswer::BadGateway("x".into()),
        ] {
            let (head, _) = written(&answer);
            assert!(answer.closes());
            assert!(head.contains("Connection: close"), "{head}");
            assert!(head.starts_with(&format!("HTTP/1.1 {} ", answer.status())));
        }
    }

    #[test]
    fn a_head_request_gets_the_head_only() {
        let answer = LocalAnswer::Tenancy {
            status: 404,
            message: "No such container: web".into(),
        };
        let mut out = Vec::new();
        answer.write_to(&mut out, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        assert!(!text.contains("Connection: close"), "{text}");
    }

    #[test]
    fn head_errors_map_to_400_and_431_and_a_vanished_client_to_nothing() {
        let bad = HeadError::Malformed("no".into());
        assert_eq!(LocalAnswer::for_head_error(&bad).unwrap().status(), 400);
        assert_eq!(
            LocalAnswer::for_head_error(&HeadError::TooLarge)
                .unwrap()
                .message(),
            "dockgate: request head larger than 64 KiB"
        );
        assert!(LocalAnswer::for_head_error(&HeadError::Truncated).is_none());
    }
}
