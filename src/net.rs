//! Listening sockets and the socket options every connection gets.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

/// Streams such as `/events` may be silent for hours, so there is no idle timeout; keepalive
/// probes find peers that vanished without a FIN instead.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Binds a listener. IPv6 listeners are IPv6-only, so `0.0.0.0:2376` and `[::]:2376` can be
/// given together.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// No Nagle delay (interactive sessions, small responses) and TCP keepalive.
pub fn tune_socket(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    let _ = SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// Resolves `host:port` (or `[v6]:port`). `localhost` and `*.localhost` are the loopback
/// addresses without asking the system (RFC 6761 reserves them for that): the static binary may
/// run in an empty filesystem (a `FROM scratch` image, a chroot) with no `/etc/hosts`, where the
/// C library would otherwise send `localhost` to DNS and fail.
pub fn resolve(host_port: &str) -> io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    if let Some((host, port)) = host_port.rsplit_once(':') {
        if is_localhost(host) {
            let port = port.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid port in {host_port}"),
                )
            })?;
            return Ok(loopback(port));
        }
    }
    Ok(host_port.to_socket_addrs()?.collect())
}

/// `localhost`, `LOCALHOST.`, `docker.localhost`: names that always mean this machine.
pub fn is_localhost(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// The IPv4 loopback first (what a daemon bound to `localhost` most often listens on), then IPv6.
pub fn loopback(port: u16) -> Vec<SocketAddr> {
    vec![
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_resolves_without_the_system() {
        assert!(
            is_localhost("localhost") && is_localhost("LocalHost.") && is_localhost("a.localhost")
        );
        assert!(!is_localhost("localhost.example") && !is_localhost("notlocalhost"));
        assert_eq!(
            resolve("localhost:2375").unwrap(),
            [
                "127.0.0.1:2375".parse().unwrap(),
                "[::1]:2375".parse().unwrap()
            ]
        );
        assert_eq!(resolve("[::1]:80").unwrap(), ["[::1]:80".parse().unwrap()]);
        assert!(resolve("localhost:http").is_err());
    }
}
