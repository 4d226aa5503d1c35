//! systemd's readiness protocol (`Type=notify`), without a library: a datagram such as
//! `READY=1` sent to the unix socket named by `$NOTIFY_SOCKET`. The name is a path, or starts
//! with `@` for a Linux abstract socket (the `@` stands for the leading NUL byte). Without the
//! variable (not started by systemd) nothing is sent.

use std::io;

/// Tells systemd the gate is ready: called once every listener is bound.
pub fn ready() {
    send_logged("READY=1");
}

/// Tells systemd the gate is stopping (shutdown has begun; the grace period runs). Only the
/// Unix signal handler calls it.
#[cfg_attr(not(unix), allow(dead_code))]
pub fn stopping() {
    send_logged("STOPPING=1");
}

fn send_logged(state: &str) {
    if let Err(e) = send(state) {
        log::warn!("cannot notify systemd ({state}): {e}");
    }
}

#[cfg(target_os = "linux")]
fn send(state: &str) -> io::Result<()> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(target) => send_to(target, state),
        None => Ok(()),
    }
}

/// Sends `state` to the socket `target` names (a `$NOTIFY_SOCKET` value).
#[cfg(target_os = "linux")]
fn send_to(target: std::ffi::OsString, state: &str) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    let target = target
        .into_string()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NOTIFY_SOCKET is not UTF-8"))?;
    let addr = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None if target.starts_with('/') => SocketAddr::from_pathname(&target)?,
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("NOTIFY_SOCKET {target:?} is neither a path nor @abstract"),
            ))
        }
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn send(_state: &str) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    /// Both spellings reach the socket: a path and an abstract name; anything else is an error.
    /// (`send_to` takes the value, so the test leaves the process environment alone.)
    #[test]
    fn ready_reaches_path_and_abstract_sockets() {
        let dir = std::env::temp_dir().join(format!("dockgate-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let by_path = UnixDatagram::bind(&path).unwrap();
        send_to(path.clone().into(), "READY=1").unwrap();
        let mut buf = [0; 64];
        let n = by_path.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("dockgate-notify-test-{}", std::process::id());
        let abstract_addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let by_name = UnixDatagram::bind_addr(&abstract_addr).unwrap();
        send_to(format!("@{name}").into(), "STOPPING=1").unwrap();
        let n = by_name.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");

        assert!(send_to("relative/path".into(), "READY=1").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
