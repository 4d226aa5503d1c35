//! dgbench: the load client of `make bench`, and the minimal upstream it measures gates against.
//!
//!   dgbench ping      --target T [--tls DIR] --conns N --secs S [--path P]
//!       keep-alive GET requests on N connections (one thread each): req/s, p50, p99.
//!   dgbench handshake --target T --tls DIR --conns N --secs S
//!       a new TCP + full mTLS handshake (no resumption) + one GET /_ping per request.
//!   dgbench create    --target T [--tls DIR] --conns N --secs S --body FILE [--api /v1.41]
//!       keep-alive `POST /containers/create` with FILE as the JSON body, each followed by a
//!       `DELETE /containers/ID?force=1`: create+remove pairs/s, p50 and p99 of the create.
//!   dgbench idle      --target T [--tls DIR] --n N --path P [--method POST] [--upgrade]
//!                     [--pids 1,2,...] [--settle S]
//!       opens N sessions (hijacked with --upgrade, else a streaming GET such as /events), waits
//!       for each response head, holds them all, then reports the memory (Rss and Pss summed
//!       over --pids) and thread count of the gate processes.
//!   dgbench ready     --target T [--tls DIR] --timeout S
//!       polls until one GET /_ping succeeds; prints the milliseconds it took.
//!   dgbench stream    --target T [--tls DIR] --dir out|in --bytes N
//!       one hijacked session through the gate to `dgbench upstream`, which then sends N bytes
//!       (out: to the client) or counts what the client sends until it half-closes (in). Prints
//!       the byte count that arrived (a number, for `make bench`'s stream checks).
//!   dgbench upstream  --listen PATH
//!       a tiny HTTP/1.1 responder on a unix socket: 200 "OK" for every request, keep-alive;
//!       `POST /stream/out?bytes=N` and `POST /stream/in` with `Upgrade: tcp` answer
//!       `101 UPGRADED` and become the raw streams of `dgbench stream`.
//!
//! T is tcp://127.0.0.1:PORT or unix:///path. DIR holds ca.pem, cert.pem, key.pem (the
//! DOCKER_CERT_PATH layout). Results are printed as one JSON object on stdout.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

type Args = HashMap<String, String>;

fn parse_args() -> (String, Args) {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().unwrap_or_default();
    let mut args = HashMap::new();
    let rest: Vec<String> = it.collect();
    let mut i = 0;
    while i < rest.len() {
        let key = rest[i].trim_start_matches("--").to_string();
        if i + 1 < rest.len() && !rest[i + 1].starts_with("--") {
            args.insert(key, rest[i + 1].clone());
            i += 2;
        } else {
            args.insert(key, "1".into());
            i += 1;
        }
    }
    (cmd, args)
}

fn arg<T: std::str::FromStr>(args: &Args, key: &str, default: T) -> T {
    args.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn die(msg: &str) -> ! {
    eprintln!("dgbench: {msg}");
    std::process::exit(2)
}

// ---------------------------------------------------------------------------------------------
// Connecting

trait Stream: Read + Write + Send {
    /// Ends the sending direction only (TLS: close_notify, then a TCP half-close).
    fn close_write(&mut self) -> io::Result<()>;
}

impl Stream for UnixStream {
    fn close_write(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Stream for TcpStream {
    fn close_write(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Stream for StreamOwned<ClientConnection, TcpStream> {
    fn close_write(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush()?;
        self.sock.shutdown(std::net::Shutdown::Write)
    }
}

#[derive(Clone)]
struct Target {
    tcp: Option<String>,
    unix: Option<String>,
    tls: Option<Arc<ClientConfig>>,
}

impl Target {
    fn from_args(args: &Args) -> Target {
        let t = args
            .get("target")
            .unwrap_or_else(|| die("--target is required"));
        let (tcp, unix) = if let Some(a) = t.strip_prefix("tcp://") {
            (Some(a.to_string()), None)
        } else if let Some(p) = t.strip_prefix("unix://") {
            (None, Some(p.to_string()))
        } else {
            die("target must be tcp://IP:PORT or unix:///path")
        };
        let tls = args
            .get("tls")
            .map(|dir| Arc::new(tls_config(Path::new(dir))));
        Target { tcp, unix, tls }
    }

    fn connect(&self) -> io::Result<Box<dyn Stream>> {
        if let Some(path) = &self.unix {
            return Ok(Box::new(UnixStream::connect(path)?));
        }
        let sock = TcpStream::connect(self.tcp.as_deref().unwrap())?;
        sock.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Box::new(sock)),
            Some(cfg) => {
                let name = ServerName::try_from("127.0.0.1").unwrap();
                let conn = ClientConnection::new(cfg.clone(), name)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                let mut s = StreamOwned::new(conn, sock);
                // Finish the handshake now, so that a refusal is an error here.
                while s.conn.is_handshaking() {
                    s.conn.complete_io(&mut s.sock)?;
                }
                Ok(Box::new(s))
            }
        }
    }
}

fn tls_config(dir: &Path) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap_or_else(|e| die(&e.to_string()))
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .unwrap_or_else(|e| die(&e.to_string()))
        .map(|c| c.unwrap())
        .collect();
    let key =
        PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap_or_else(|e| die(&e.to_string()));
    let mut cfg = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap_or_else(|e| die(&e.to_string()));
    // Every connection is a full handshake, as with the docker CLI's one-shot commands.
    cfg.resumption = rustls::client::Resumption::disabled();
    cfg
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 response reader (keep-alive, Content-Length or chunked, 101)

struct Http<S: Read> {
    r: BufReader<S>,
}

struct Head {
    status: u16,
}

impl<S: Read> Http<S> {
    fn new(s: S) -> Self {
        Http {
            r: BufReader::with_capacity(16 * 1024, s),
        }
    }

    /// Reads one response; skips its body unless `head_only` (101 or a stream left open).
    fn response(&mut self, head_only: bool) -> io::Result<Head> {
        self.read_response(head_only, None)
    }

    /// Reads one response and returns its body (for answers the client needs, such as an ID).
    fn response_with_body(&mut self) -> io::Result<(Head, Vec<u8>)> {
        let mut body = Vec::new();
        let head = self.read_response(false, Some(&mut body))?;
        Ok((head, body))
    }

    fn read_response(
        &mut self,
        head_only: bool,
        mut body: Option<&mut Vec<u8>>,
    ) -> io::Result<Head> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let mut length: Option<u64> = None;
        let mut chunked = false;
        loop {
            line.clear();
            if self.r.read_line(&mut line)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof in head"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim();
                if k == "content-length" {
                    length = v.parse().ok();
                } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                    chunked = true;
                }
            }
        }
        if head_only || status == 101 || status == 204 || status == 304 {
            return Ok(Head { status });
        }
        if chunked {
            loop {
                line.clear();
                self.r.read_line(&mut line)?;
                let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| io::Error::other("bad chunk size"))?;
                if size == 0 {
                    // trailers until an empty line
                    loop {
                        line.clear();
                        self.r.read_line(&mut line)?;
                        if line.trim_end().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                self.skip(size, body.as_deref_mut())?;
                self.skip(2, None)?;
            }
        } else if let Some(n) = length {
            self.skip(n, body)?;
        } else {
            return Err(io::Error::other("response without length on keep-alive"));
        }
        Ok(Head { status })
    }

    /// Consumes `n` body bytes, keeping them in `keep` if given.
    fn skip(&mut self, mut n: u64, mut keep: Option<&mut Vec<u8>>) -> io::Result<()> {
        while n > 0 {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof in body"));
            }
            let k = (buf.len() as u64).min(n) as usize;
            if let Some(keep) = keep.as_deref_mut() {
                keep.extend_from_slice(&buf[..k]);
            }
            self.r.consume(k);
            n -= k as u64;
        }
        Ok(())
    }
}

const PING: &[u8] = b"GET /_ping HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: dgbench\r\n\r\n";

fn ping_request(path: &str) -> Vec<u8> {
    if path == "/_ping" {
        return PING.to_vec();
    }
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: dgbench\r\n\r\n").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Latency summary

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64
}

fn report(
    kind: &str,
    mut lat_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    elapsed: f64,
    extra: &str,
) {
    lat_us.sort_unstable();
    let n = lat_us.len();
    let err = first_error
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| "null".into());
    println!(
        "{{\"kind\":\"{kind}\",\"ok\":{n},\"errors\":{errors},\"first_error\":{err},\"secs\":{elapsed:.3},\
         \"rate\":{:.1},\"p50_us\":{:.0},\"p99_us\":{:.0}{extra}}}",
        n as f64 / elapsed,
        percentile(&lat_us, 0.50),
        percentile(&lat_us, 0.99),
    );
}

type WorkerResult = (Vec<u32>, u64, Option<String>);

fn run_workers<F>(conns: usize, secs: f64, work: F) -> (Vec<u32>, u64, Option<String>, f64)
where
    F: Fn(&AtomicBool) -> WorkerResult + Send + Sync + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let work = Arc::new(work);
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let stop = stop.clone();
            let work = work.clone();
            std::thread::spawn(move || work(&stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut first = None;
    for h in handles {
        let (l, e, f) = h.join().unwrap();
        lat.extend(l);
        errors += e;
        if first.is_none() {
            first = f;
        }
    }
    (lat, errors, first, start.elapsed().as_secs_f64())
}

fn cmd_ping(args: &Args) {
    let target = Target::from_args(args);
    let conns: usize = arg(args, "conns", 1);
    let secs: f64 = arg(args, "secs", 3.0);
    let req = ping_request(args.get("path").map(String::as_str).unwrap_or("/_ping"));
    let (lat, errors, first, elapsed) = run_workers(conns, secs, move |stop| {
        let mut lat = Vec::with_capacity(1 << 16);
        let mut errors = 0;
        let mut first = None;
        let mut conn: Option<Http<Box<dyn Stream>>> = None;
        while !stop.load(Ordering::Relaxed) {
            if conn.is_none() {
                match target.connect() {
                    Ok(s) => conn = Some(Http::new(s)),
                    Err(e) => {
                        errors += 1;
                        first.get_or_insert(format!("connect: {e}"));
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
            }
            let h = conn.as_mut().unwrap();
            let t = Instant::now();
            let res =
                h.r.get_mut()
                    .write_all(&req)
                    .and_then(|_| h.r.get_mut().flush())
                    .and_then(|_| h.response(false));
            match res {
                Ok(head) if head.status == 200 => lat.push(t.elapsed().as_micros() as u32),
                Ok(head) => {
                    errors += 1;
                    first.get_or_insert(format!("status {}", head.status));
                }
                Err(e) => {
                    errors += 1;
                    first.get_or_insert(format!("request: {e}"));
                    conn = None;
                }
            }
        }
        (lat, errors, first)
    });
    report(
        "ping",
        lat,
        errors,
        first,
        elapsed,
        &format!(",\"conns\":{conns}"),
    );
}

fn cmd_handshake(args: &Args) {
    let target = Target::from_args(args);
    let conns: usize = arg(args, "conns", 2);
    let secs: f64 = arg(args, "secs", 3.0);
    let (lat, errors, first, elapsed) = run_workers(conns, secs, move |stop| {
        let mut lat = Vec::new();
        let mut errors = 0;
        let mut first = None;
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let res = target.connect().and_then(|s| {
                let mut h = Http::new(s);
                h.r.get_mut().write_all(PING)?;
                h.r.get_mut().flush()?;
                h.response(false)
            });
            match res {
                Ok(head) if head.status == 200 => lat.push(t.elapsed().as_micros() as u32),
                Ok(head) => {
                    errors += 1;
                    first.get_or_insert(format!("status {}", head.status));
                }
                Err(e) => {
                    errors += 1;
                    first.get_or_insert(format!("{e}"));
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        (lat, errors, first)
    });
    report(
        "handshake",
        lat,
        errors,
        first,
        elapsed,
        &format!(",\"conns\":{conns}"),
    );
}

/// `create`: on each keep-alive connection, `POST /containers/create` with the body of `--body`
/// (a docker CLI create body), then `DELETE /containers/ID?force=1` of what it made: a `docker
/// create` + `docker rm` pair, so dockerd's state stays the same during the run. Latency is the
/// create's alone; the rate counts pairs where both answers were right (201, then 204).
fn cmd_create(args: &Args) {
    let target = Target::from_args(args);
    let conns: usize = arg(args, "conns", 4);
    let secs: f64 = arg(args, "secs", 3.0);
    let api = args.get("api").cloned().unwrap_or_else(|| "/v1.41".into());
    let file = args
        .get("body")
        .unwrap_or_else(|| die("--body FILE is required"));
    let body = std::fs::read(file).unwrap_or_else(|e| die(&format!("{file}: {e}")));
    // The head the docker CLI sends with it (Content-Type decides whether the gate reads JSON).
    let mut create = format!(
        "POST {api}/containers/create HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: dgbench\r\n\
         Content-Length: {}\r\nContent-Type: application/json\r\n\r\n",
        body.len()
    )
    .into_bytes();
    create.extend_from_slice(&body);
    let (lat, errors, first, elapsed) = run_workers(conns, secs, move |stop| {
        let mut lat = Vec::new();
        let mut errors = 0;
        let mut first = None;
        let mut conn: Option<Http<Box<dyn Stream>>> = None;
        while !stop.load(Ordering::Relaxed) {
            if conn.is_none() {
                match target.connect() {
                    Ok(s) => conn = Some(Http::new(s)),
                    Err(e) => {
                        errors += 1;
                        first.get_or_insert(format!("connect: {e}"));
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
            }
            match create_and_remove(conn.as_mut().unwrap(), &create, &api) {
                Ok(create_us) => lat.push(create_us),
                Err(e) => {
                    errors += 1;
                    first.get_or_insert(e.to_string());
                    conn = None;
                }
            }
        }
        (lat, errors, first)
    });
    report(
        "create",
        lat,
        errors,
        first,
        elapsed,
        &format!(",\"conns\":{conns}"),
    );
}

/// One create + force-remove on a keep-alive connection: the create's microseconds, or an
/// error naming the unexpected answer (the connection is then dropped by the caller).
fn create_and_remove(h: &mut Http<Box<dyn Stream>>, create: &[u8], api: &str) -> io::Result<u32> {
    let t = Instant::now();
    h.r.get_mut().write_all(create)?;
    h.r.get_mut().flush()?;
    let (head, body) = h.response_with_body()?;
    let create_us = t.elapsed().as_micros() as u32;
    let text = String::from_utf8_lossy(&body);
    if head.status != 201 {
        return Err(io::Error::other(format!(
            "create: status {}: {}",
            head.status,
            text.trim()
        )));
    }
    let id = text
        .split("\"Id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| io::Error::other(format!("create: no Id in {text:?}")))?
        .to_string();
    let remove = format!(
        "DELETE {api}/containers/{id}?force=1 HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: dgbench\r\n\r\n"
    );
    h.r.get_mut().write_all(remove.as_bytes())?;
    h.r.get_mut().flush()?;
    let head = h.response(false)?;
    if head.status != 204 {
        return Err(io::Error::other(format!(
            "remove {id}: status {}",
            head.status
        )));
    }
    Ok(create_us)
}

fn proc_mem(pids: &[u32]) -> (u64, u64, u64) {
    let (mut rss, mut pss, mut threads) = (0, 0, 0);
    for pid in pids {
        let field = |file: &str, key: &str| -> u64 {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with(key))
                        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
                })
                .unwrap_or(0)
        };
        rss += field("status", "VmRSS:");
        threads += field("status", "Threads:");
        pss += field("smaps_rollup", "Pss:");
    }
    (rss, pss, threads)
}

fn cmd_idle(args: &Args) {
    let target = Target::from_args(args);
    let n: usize = arg(args, "n", 1000);
    let path = args
        .get("path")
        .cloned()
        .unwrap_or_else(|| die("--path is required"));
    let method = args.get("method").cloned().unwrap_or_else(|| "GET".into());
    let upgrade = args.contains_key("upgrade");
    let settle: f64 = arg(args, "settle", 2.0);
    let pids: Vec<u32> = args
        .get("pids")
        .map(|s| s.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_default();
    let req = if upgrade {
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: dgbench\r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    } else {
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: dgbench\r\n\r\n")
    };
    let before = proc_mem(&pids);
    let start = Instant::now();
    // Open from a few threads at once; keep every session.
    let per = n.div_ceil(8);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let target = target.clone();
            let req = req.clone();
            let count = per.min(n.saturating_sub(i * per));
            std::thread::spawn(move || {
                let mut held = Vec::new();
                let mut errors = 0u64;
                let mut first = None;
                for _ in 0..count {
                    let res = target.connect().and_then(|s| {
                        let mut h = Http::new(s);
                        h.r.get_mut().write_all(req.as_bytes())?;
                        h.r.get_mut().flush()?;
                        let head = h.response(true)?;
                        Ok((h, head.status))
                    });
                    match res {
                        Ok((h, status)) if status == 101 || status == 200 => held.push(h),
                        Ok((_, status)) => {
                            errors += 1;
                            first.get_or_insert(format!("status {status}"));
                        }
                        Err(e) => {
                            errors += 1;
                            first.get_or_insert(format!("{e}"));
                        }
                    }
                }
                (held, errors, first)
            })
        })
        .collect();
    let mut held = Vec::new();
    let mut errors = 0;
    let mut first: Option<String> = None;
    for h in handles {
        let (hs, e, f) = h.join().unwrap();
        held.extend(hs);
        errors += e;
        if first.is_none() {
            first = f;
        }
    }
    let open_secs = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs_f64(settle));
    let after = proc_mem(&pids);
    let err = first
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| "null".into());
    println!(
        "{{\"kind\":\"idle\",\"ok\":{},\"errors\":{errors},\"first_error\":{err},\"open_secs\":{open_secs:.2},\
         \"rss_kib_before\":{},\"pss_kib_before\":{},\"threads_before\":{},\
         \"rss_kib\":{},\"pss_kib\":{},\"threads\":{}}}",
        held.len(),
        before.0,
        before.1,
        before.2,
        after.0,
        after.1,
        after.2
    );
    drop(held);
}

fn cmd_ready(args: &Args) {
    let target = Target::from_args(args);
    let timeout: f64 = arg(args, "timeout", 60.0);
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed().as_secs_f64() < timeout {
        let res = target.connect().and_then(|s| {
            let mut h = Http::new(s);
            h.r.get_mut().write_all(PING)?;
            h.r.get_mut().flush()?;
            h.response(false)
        });
        match res {
            Ok(h) if h.status == 200 => {
                println!(
                    "{{\"kind\":\"ready\",\"ms\":{}}}",
                    start.elapsed().as_millis()
                );
                return;
            }
            Ok(h) => last = format!("status {}", h.status),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("dgbench ready: not ready after {timeout}s: {last}");
    std::process::exit(1);
}

// ---------------------------------------------------------------------------------------------
// A raw hijacked stream

const STREAM_CHUNK: usize = 256 * 1024;

fn cmd_stream(args: &Args) {
    let target = Target::from_args(args);
    let bytes: u64 = arg(args, "bytes", 1 << 30);
    let dir = args.get("dir").map(String::as_str).unwrap_or("out");
    let path = match dir {
        "out" => format!("/stream/out?bytes={bytes}"),
        "in" => "/stream/in".to_string(),
        _ => die("--dir is out or in"),
    };
    let result = target.connect().and_then(|s| {
        let mut h = Http::new(s);
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: dgbench\r\nContent-Length: 0\r\n\
             Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        );
        h.r.get_mut().write_all(req.as_bytes())?;
        h.r.get_mut().flush()?;
        let head = h.response(true)?;
        if head.status != 101 {
            return Err(io::Error::other(format!("status {} instead of 101", head.status)));
        }
        match dir {
            "out" => io::copy(&mut h.r, &mut io::sink()),
            _ => send_and_count(h, bytes),
        }
    });
    match result {
        Ok(arrived) => println!("{arrived}"),
        Err(e) => {
            eprintln!("dgbench stream: {e}");
            std::process::exit(1)
        }
    }
}

/// Sends `bytes` zero bytes, half-closes, and returns the count the upstream says it received.
fn send_and_count(mut h: Http<Box<dyn Stream>>, bytes: u64) -> io::Result<u64> {
    let chunk = vec![0u8; STREAM_CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(STREAM_CHUNK as u64) as usize;
        h.r.get_mut().write_all(&chunk[..n])?;
        left -= n as u64;
    }
    h.r.get_mut().flush()?;
    h.r.get_mut().close_write()?;
    let mut reply = String::new();
    h.r.read_to_string(&mut reply)?;
    reply
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("upstream reply {reply:?} is not a byte count")))
}

// ---------------------------------------------------------------------------------------------
// The minimal upstream

fn cmd_upstream(args: &Args) {
    let path = args
        .get("listen")
        .unwrap_or_else(|| die("--listen is required"));
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).unwrap_or_else(|e| die(&format!("bind {path}: {e}")));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || serve_upstream(stream));
    }
}

fn serve_upstream(stream: UnixStream) {
    let mut w = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::with_capacity(8 * 1024, stream);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let head = line.starts_with("HEAD ");
        let stream_out = line
            .split_whitespace()
            .nth(1)
            .and_then(|target| target.strip_prefix("/stream/out?bytes="))
            .and_then(|n| n.parse::<u64>().ok());
        let stream_in = line.starts_with("POST /stream/in ");
        let mut length = 0u64;
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        if length > 0 && io::copy(&mut (&mut r).take(length), &mut io::sink()).is_err() {
            return;
        }
        if stream_out.is_some() || stream_in {
            let _ = w
                .write_all(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n");
            match stream_out {
                Some(n) => upstream_send(r, w, n),
                None => upstream_count(r, w),
            }
            return;
        }
        let resp: &[u8] = if head {
            b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nOK"
        };
        if w.write_all(resp).is_err() {
            return;
        }
    }
}

/// `/stream/out`: sends `n` bytes, half-closes, then waits for the client to close.
fn upstream_send(mut r: BufReader<UnixStream>, mut w: UnixStream, n: u64) {
    let chunk = vec![0u8; STREAM_CHUNK];
    let mut left = n;
    while left > 0 {
        let k = left.min(STREAM_CHUNK as u64) as usize;
        if w.write_all(&chunk[..k]).is_err() {
            return;
        }
        left -= k as u64;
    }
    let _ = w.shutdown(std::net::Shutdown::Write);
    let _ = io::copy(&mut r, &mut io::sink());
}

/// `/stream/in`: counts bytes until the client half-closes, then answers with the count.
fn upstream_count(mut r: BufReader<UnixStream>, mut w: UnixStream) {
    let mut buf = vec![0u8; STREAM_CHUNK];
    let mut count = r.buffer().len() as u64;
    r.consume(r.buffer().len());
    let inner = r.get_mut();
    loop {
        match inner.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => count += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    let _ = w.write_all(format!("{count}\n").as_bytes());
}

fn main() {
    let (cmd, args) = parse_args();
    match cmd.as_str() {
        "ping" => cmd_ping(&args),
        "handshake" => cmd_handshake(&args),
        "create" => cmd_create(&args),
        "idle" => cmd_idle(&args),
        "ready" => cmd_ready(&args),
        "stream" => cmd_stream(&args),
        "upstream" => cmd_upstream(&args),
        _ => die(
            "usage: dgbench ping|handshake|create|idle|ready|stream|upstream ... (see src/main.rs)",
        ),
    }
}
