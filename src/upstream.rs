//! Docker's local endpoint: where requests go once a client is authenticated.
//!
//! Each transport connects and splits into a reading half and a writing half that can end its
//! direction alone (`close_write`), because hijacked sessions half-close: the client's stdin ends
//! while the container's output keeps flowing.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[cfg(windows)]
mod npipe;

/// How long dialing a TCP upstream may take before the client gets a 502.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where Docker listens (`--upstream`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// `unix:///var/run/docker.sock`
    Unix(PathBuf),
    /// `tcp://127.0.0.1:2375`: plain TCP to a daemon bound to localhost.
    Tcp(String),
    /// `npipe:////./pipe/docker_engine`: a Windows named pipe, held as its Windows path
    /// (`\\.\pipe\docker_engine`).
    Npipe(String),
}

impl Upstream {
    /// The default endpoint of the platform.
    pub fn platform_default() -> Upstream {
        if cfg!(windows) {
            Upstream::Npipe(r"\\.\pipe\docker_engine".to_string())
        } else {
            Upstream::Unix(PathBuf::from("/var/run/docker.sock"))
        }
    }

    /// Parses `unix:///path`, `tcp://host:port` or `npipe:////./pipe/name` (Docker's spelling;
    /// `npipe://./pipe/name` is accepted too).
    pub fn parse(url: &str) -> Result<Upstream, String> {
        if let Some(rest) = url.strip_prefix("npipe://") {
            return parse_npipe(rest).ok_or_else(|| {
                format!(
                    "{url}: expected npipe:////./pipe/NAME, e.g. npipe:////./pipe/docker_engine"
                )
            });
        }
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{url}: a unix socket URL needs an absolute path, e.g. unix:///var/run/docker.sock"
                ));
            }
            return Ok(Upstream::Unix(PathBuf::from(path)));
        }
        if let Some(address) = url.strip_prefix("tcp://") {
            let address = address.trim_end_matches('/');
            let has_port = address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !has_port {
                return Err(format!("{url}: expected tcp://host:port"));
            }
            return Ok(Upstream::Tcp(address.to_string()));
        }
        Err(format!(
            "{url}: unsupported scheme (use unix:///path/docker.sock, tcp://host:port or npipe:////./pipe/docker_engine)"
        ))
    }

    /// Opens a new connection to Docker.
    pub fn connect(&self) -> io::Result<UpstreamConn> {
        match self {
            #[cfg(unix)]
            Upstream::Unix(path) => Ok(UnixStream::connect(path)?.into()),
            #[cfg(not(unix))]
            Upstream::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "unix sockets are not available on this platform",
            )),
            Upstream::Tcp(address) => {
                let stream = Arc::new(connect_tcp(address)?);
                Ok(UpstreamConn {
                    reader: Box::new(SharedSocket(stream.clone())),
                    writer: Box::new(SharedSocket(stream)),
                })
            }
            #[cfg(windows)]
            Upstream::Npipe(path) => npipe::connect(path),
            #[cfg(not(windows))]
            Upstream::Npipe(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "named pipes are only available on Windows",
            )),
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Unix(path) => write!(f, "unix://{}", path.display()),
            Upstream::Tcp(address) => write!(f, "tcp://{address}"),
            Upstream::Npipe(path) => write!(f, "npipe://{}", path.replace('\\', "/")),
        }
    }
}

/// `//./pipe/name` or `./pipe/name` (what follows `npipe://`) -> `\\.\pipe\name`. The host
/// part may name a remote machine (`//server/pipe/name`), as in Windows pipe paths.
fn parse_npipe(rest: &str) -> Option<Upstream> {
    let rest = rest.replace('\\', "/");
    let rest = rest.strip_prefix("//").unwrap_or(&rest);
    let (host, name) = rest.split_once('/')?;
    let name = name.strip_prefix("pipe/")?;
    if host.is_empty() || host.contains('/') || name.is_empty() || name.ends_with('/') {
        return None;
    }
    Some(Upstream::Npipe(format!(
        r"\\{host}\pipe\{}",
        name.replace('/', "\\")
    )))
}

fn connect_tcp(address: &str) -> io::Result<TcpStream> {
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "address resolved to nothing");
    for addr in crate::net::resolve(address)? {
        match TcpStream::connect_timeout(&addr, TCP_CONNECT_TIMEOUT) {
            Ok(stream) => {
                crate::net::tune_socket(&stream);
                return Ok(stream);
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// An open connection to Docker, split into its two directions.
pub struct UpstreamConn {
    pub reader: Box<dyn UpstreamRead>,
    pub writer: Box<dyn UpstreamWrite>,
}

#[cfg(unix)]
impl From<UnixStream> for UpstreamConn {
    fn from(stream: UnixStream) -> UpstreamConn {
        let stream = Arc::new(stream);
        UpstreamConn {
            reader: Box::new(SharedSocket(stream.clone())),
            writer: Box::new(SharedSocket(stream)),
        }
    }
}

/// The reading half of an upstream connection.
pub trait UpstreamRead: Read + Send {
    /// Ends both directions, from the reading side (the other half may be blocked in a write).
    fn abort(&self);
    /// Bounds each read (`None`: reads block until data or the end). Only the gate's own short
    /// exchanges with dockerd set one (`tenancy::docker_get`); relayed traffic never does.
    /// Transports that cannot (named pipes) answer `Unsupported`.
    fn set_read_timeout(&self, _timeout: Option<Duration>) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this upstream transport has no read timeout",
        ))
    }
}

/// The writing half of an upstream connection.
pub trait UpstreamWrite: Write + Send {
    /// Ends the direction toward Docker (dockerd then closes the container's stdin) while
    /// Docker's output keeps coming.
    fn close_write(&mut self) -> io::Result<()>;
    /// Ends both directions: the reading half returns at once.
    fn abort(&mut self);
}

/// One socket to Docker shared by the reading and the writing half: one file descriptor per
/// connection instead of a `try_clone` each (`&UnixStream` and `&TcpStream` read and write).
struct SharedSocket<S>(Arc<S>);

/// The sockets a `SharedSocket` can hold.
trait Socket: Send + Sync {
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

#[cfg(unix)]
impl Socket for UnixStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        UnixStream::shutdown(self, how)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
}

impl Socket for TcpStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl<S: Socket> Read for SharedSocket<S>
where
    for<'a> &'a S: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl<S: Socket> Write for SharedSocket<S>
where
    for<'a> &'a S: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

impl<S: Socket> UpstreamRead for SharedSocket<S>
where
    for<'a> &'a S: Read,
{
    fn abort(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }
}

impl<S: Socket> UpstreamWrite for SharedSocket<S>
where
    for<'a> &'a S: Write,
{
    fn close_write(&mut self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Write)
    }
    fn abort(&mut self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_style_urls() {
        assert_eq!(
            Upstream::parse("unix:///var/run/docker.sock").unwrap(),
            Upstream::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            Upstream::parse("tcp://127.0.0.1:2375").unwrap(),
            Upstream::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            Upstream::parse("tcp://[::1]:2375").unwrap(),
            Upstream::Tcp("[::1]:2375".into())
        );
        assert!(Upstream::parse("unix://relative.sock").is_err());
        assert!(Upstream::parse("tcp://localhost").is_err());
        assert!(Upstream::parse("http://localhost:2375").is_err());
        assert_eq!(
            Upstream::parse("unix:///run/d.sock").unwrap().to_string(),
            "unix:///run/d.sock"
        );
    }

    #[test]
    fn parses_named_pipe_urls() {
        let engine = Upstream::Npipe(r"\\.\pipe\docker_engine".into());
        assert_eq!(
            Upstream::parse("npipe:////./pipe/docker_engine").unwrap(),
            engine
        );
        assert_eq!(
            Upstream::parse("npipe://./pipe/docker_engine").unwrap(),
            engine
        );
        assert_eq!(engine.to_string(), "npipe:////./pipe/docker_engine");
        assert_eq!(
            Upstream::parse("npipe:////server/pipe/docker_engine").unwrap(),
            Upstream::Npipe(r"\\server\pipe\docker_engine".into())
        );
        for bad in [
            "npipe://",
            "npipe:////./docker_engine",
            "npipe:////./pipe/",
            "npipe://pipe/docker_engine",
            "npipe:////.//pipe/x",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn platform_default_is_the_docker_engine_pipe_on_windows() {
        let expected = if cfg!(windows) {
            "npipe:////./pipe/docker_engine"
        } else {
            "unix:///var/run/docker.sock"
        };
        assert_eq!(Upstream::platform_default().to_string(), expected);
    }
}
