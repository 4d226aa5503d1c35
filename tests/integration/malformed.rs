//! Hand-made requests over TLS (as alice): the gate answers bad ones itself and closes, and
//! keeps serving well-formed traffic afterwards.

use crate::common::expect::assert_cli_works;
use crate::common::tls::{exchange, RawTls};
use crate::common::{pki, Gate};

/// Sends `request` on a fresh connection, expects `status` followed by a close, then checks
/// that `docker version` through the same gate still works.
fn assert_rejected(request: &[u8], status: u16) {
    let gate = Gate::standard();
    let out = exchange(gate.port, Some(&pki().alice), request);
    assert_eq!(
        out.status(),
        Some(status),
        "response {:?} (error {:?})\n--- dockgate log:\n{}",
        out.text(),
        out.error,
        gate.logs()
    );
    if status == 400 {
        assert!(
            out.text().contains("dockgate: bad request"),
            "{:?}",
            out.text()
        );
    }
    assert_cli_works(&gate, &pki().alice);
}

#[test]
fn garbage_request_line_gets_400() {
    assert_rejected(b"this is not http at all\r\n\r\n", 400);
}

#[test]
fn oversized_head_gets_431() {
    let mut request = b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 100 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    assert_rejected(&request, 431);
}

#[test]
fn content_length_with_chunked_gets_400() {
    assert_rejected(
        b"POST /_ping HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn conflicting_content_lengths_get_400() {
    assert_rejected(
        b"POST /_ping HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    );
}

#[test]
fn unknown_transfer_encoding_gets_400() {
    assert_rejected(
        b"POST /_ping HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\nxxxx",
        400,
    );
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let gate = Gate::standard();
    let mut conn = RawTls::connect(gate.port, Some(&pki().alice));
    for n in 1..=2 {
        conn.ping(&format!("request {n}\n{}", gate.logs()));
    }
}

/// A bad head after a good exchange: the response side, asleep in its read from Docker with
/// nothing outstanding, must still answer the refusal and close (not hang).
#[test]
fn bad_head_after_a_served_request_gets_400_and_a_close() {
    let gate = Gate::standard();
    let mut conn = RawTls::connect(gate.port, Some(&pki().alice));
    conn.ping("first request");
    conn.send(b"this is not http at all\r\n\r\n").unwrap();
    let out = conn.read_to_close();
    assert_eq!(out.status(), Some(400), "{:?}\n{}", out.text(), gate.logs());
    assert!(
        out.text().contains("dockgate: bad request"),
        "{:?}",
        out.text()
    );
}

/// Pipelined requests with a bad head behind them: the earlier answers come first, in order,
/// then the refusal.
#[test]
fn pipelined_requests_are_answered_in_order_before_a_refusal() {
    let gate = Gate::standard();
    let mut conn = RawTls::connect(gate.port, Some(&pki().alice));
    conn.send(
        b"GET /_ping HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n\
          this is not http at all\r\n\r\n",
    )
    .unwrap();
    let (status, head, body) = conn.read_response();
    assert_eq!((status, body.as_slice()), (200, &b"OK"[..]), "{head}");
    let (status, head, body) = conn.read_response();
    assert_eq!(status, 200, "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("ApiVersion"),
        "{body:?}"
    );
    let out = conn.read_to_close();
    assert_eq!(out.status(), Some(400), "{:?}\n{}", out.text(), gate.logs());
}

/// A client that ends its side after an exchange gets the connection closed by the gate
/// (close_notify, then EOF), not held open.
#[test]
fn client_close_after_a_request_ends_the_connection() {
    let gate = Gate::standard();
    let mut conn = RawTls::connect(gate.port, Some(&pki().alice));
    conn.ping("first request");
    conn.half_close_notify();
    let out = conn.read_to_close();
    assert!(out.bytes.is_empty(), "{:?}", out.text());
    assert_eq!(out.error, None, "{}", gate.logs());
}
