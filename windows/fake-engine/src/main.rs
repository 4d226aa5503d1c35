//! A fake Docker engine for dockgate's named-pipe tests, run under wine.
//!
//! `fake-engine.exe \\.\pipe\NAME [--busy-for MS]` serves HTTP/1.1 on a message-mode pipe, like
//! dockerd (go-winio, `MessageMode: true`):
//! - `GET /_ping` -> `200 OK`;
//! - `GET /stream?n=N&ms=M` -> a chunked body of N chunks `chunk I\n`, M ms apart;
//! - `POST /echo` with `Upgrade: tcp` -> `101`, then echoes every byte until the client's
//!   zero-length message (its half-close), then sends `[engine: input ended]\n` and its own
//!   zero-length message;
//! - `POST /server-first` with `Upgrade: tcp` -> `101`, `hello\n`, a zero-length message, then
//!   reads the client's input to its end and prints `server-first: received N bytes: TEXT`.
//!
//! It prints `ready` on stdout once the pipe exists. With `--busy-for MS` it first occupies the
//! only pipe instance itself for MS ms, so clients get ERROR_PIPE_BUSY meanwhile.

#[cfg(not(windows))]
fn main() {
    eprintln!("fake-engine is a Windows program");
    std::process::exit(2);
}

#[cfg(windows)]
fn main() {
    engine::main()
}

#[cfg(windows)]
mod engine {
    use std::ffi::OsStr;
    use std::io::{self, Read, Write};
    use std::thread;
    use std::time::Duration;

    use interprocess::os::windows::named_pipe::{
        pipe_mode, DuplexPipeStream, PipeListenerOptions, PipeMode, RecvPipeStream,
        SendPipeStream,
    };
    use interprocess::ConnectWaitMode;

    type Rx = RecvPipeStream<pipe_mode::Bytes>;
    type Tx = SendPipeStream<pipe_mode::Bytes>;

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let path = args.first().expect("usage: fake-engine \\\\.\\pipe\\NAME [--busy-for MS]");
        let busy_ms: u64 = match args.get(1).map(String::as_str) {
            Some("--busy-for") => args[2].parse().expect("--busy-for MS"),
            _ => 0,
        };
        let listener = PipeListenerOptions::new()
            .path(OsStr::new(path))
            .mode(PipeMode::Messages)
            .create_duplex::<pipe_mode::Bytes>()
            .expect("create pipe");
        if busy_ms > 0 {
            // Take the only listening instance ourselves: until accept() makes the next one,
            // the pipe exists but every instance is connected, i.e. busy.
            let hog = DuplexPipeStream::<pipe_mode::Bytes>::connect_by_path_with_wait_mode(
                OsStr::new(path),
                ConnectWaitMode::Timeout(Duration::from_secs(5)),
            )
            .expect("occupy pipe");
            say("ready");
            thread::sleep(Duration::from_millis(busy_ms));
            let ours = listener.accept().expect("accept own connection");
            drop(hog);
            drop(ours);
            say("busy period over");
        } else {
            say("ready");
        }
        for conn in listener.incoming() {
            match conn {
                Ok(conn) => {
                    thread::spawn(move || {
                        let (rx, tx) = conn.split();
                        if let Err(e) = serve(rx, tx) {
                            say(&format!("connection error: {e}"));
                        }
                    });
                }
                Err(e) => say(&format!("accept error: {e}")),
            }
        }
    }

    fn say(line: &str) {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Serves requests on one connection until the client ends it or a session takes it over.
    fn serve(mut rx: Rx, mut tx: Tx) -> io::Result<()> {
        let mut buffered = Vec::new();
        loop {
            let Some((head, rest)) = read_head(&mut rx, &mut buffered)? else {
                return Ok(());
            };
            buffered = rest;
            let mut lines = head.split("\r\n");
            let request_line = lines.next().unwrap_or_default().to_string();
            let mut parts = request_line.split(' ');
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let mut content_length = 0usize;
            let mut upgrade = false;
            for line in lines {
                if let Some((name, value)) = line.split_once(':') {
                    let value = value.trim();
                    if name.eq_ignore_ascii_case("content-length") {
                        content_length = value.parse().unwrap_or(0);
                    } else if name.eq_ignore_ascii_case("upgrade") {
                        upgrade = value.eq_ignore_ascii_case("tcp");
                    }
                }
            }
            // Discard a request body.
            while buffered.len() < content_length {
                let mut buf = [0u8; 8192];
                let n = rx.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                buffered.extend_from_slice(&buf[..n]);
            }
            buffered.drain(..content_length);
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            say(&format!("request: {method} {target}"));
            match path {
                "/_ping" => tx.write_all(
                    b"HTTP/1.1 200 OK\r\nApi-Version: 1.47\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nOK",
                )?,
                "/stream" => {
                    let n = param(query, "n", 3);
                    let ms = param(query, "ms", 200);
                    tx.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")?;
                    for i in 0..n {
                        let data = format!("chunk {i}\n");
                        tx.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())?;
                        thread::sleep(Duration::from_millis(ms));
                    }
                    tx.write_all(b"0\r\n\r\n")?;
                }
                "/echo" | "/server-first" if upgrade => {
                    tx.write_all(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")?;
                    return if path == "/echo" {
                        echo(rx, tx, buffered)
                    } else {
                        server_first(rx, tx, buffered)
                    };
                }
                _ => tx.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n",
                )?,
            }
        }
    }

    fn param(query: &str, name: &str, default: u64) -> u64 {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or(default)
    }

    /// The next request head and the bytes read after it; `None` at the end of the input.
    fn read_head(rx: &mut Rx, buffered: &mut Vec<u8>) -> io::Result<Option<(String, Vec<u8>)>> {
        loop {
            if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffered[..end]).into_owned();
                return Ok(Some((head, buffered[end + 4..].to_vec())));
            }
            let mut buf = [0u8; 8192];
            let n = rx.read(&mut buf)?;
            if n == 0 {
                return Ok(None);
            }
            buffered.extend_from_slice(&buf[..n]);
        }
    }

    /// The end of our output: a zero-length message, as dockerd (go-winio CloseWrite) sends.
    fn close_write(tx: &mut Tx) -> io::Result<()> {
        tx.write(&[]).map(|_| ())
    }

    fn echo(mut rx: Rx, mut tx: Tx, early: Vec<u8>) -> io::Result<()> {
        tx.write_all(&early)?;
        let mut total = early.len() as u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = rx.read(&mut buf)?;
            if n == 0 {
                break;
            }
            tx.write_all(&buf[..n])?;
            total += n as u64;
        }
        say(&format!("echo: input ended after {total} bytes"));
        tx.write_all(b"[engine: input ended]\n")?;
        close_write(&mut tx)?;
        tx.flush()?;
        Ok(())
    }

    fn server_first(mut rx: Rx, mut tx: Tx, early: Vec<u8>) -> io::Result<()> {
        tx.write_all(b"hello\n")?;
        close_write(&mut tx)?;
        let mut received = early;
        let mut buf = [0u8; 8192];
        loop {
            let n = rx.read(&mut buf)?;
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
        say(&format!(
            "server-first: received {} bytes: {}",
            received.len(),
            String::from_utf8_lossy(&received).trim_end()
        ));
        tx.flush()?;
        Ok(())
    }
}
