//! Process and file helpers shared by every test: every child process gets a timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// Every directory this test binary creates lives under `/tmp/dockgate-it-<pid>/`.
pub fn run_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(format!("/tmp/dockgate-it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create run dir");
        dir
    })
}

/// A fresh, uniquely named directory under the run dir (kept until the run dir is removed).
pub fn fresh_dir(label: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = run_dir().join(format!("{label}-{}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).expect("create fresh dir");
    dir
}

/// A name unique within this run, for containers and image tags.
pub fn unique_name(label: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "dgt-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The finished result of a command run with [`run_with_timeout`].
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub stdout_bytes: Vec<u8>,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs `cmd` with `stdin` as input (closed afterwards; `None` means /dev/null), collecting
/// stdout and stderr. Kills the process and panics if it does not finish within `timeout`.
pub fn run_with_timeout(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Finished {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let status = wait_timeout(&mut child, timeout);
    let elapsed = start.elapsed();
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        let stdout = String::from_utf8_lossy(&out.join().unwrap()).into_owned();
        let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
        panic!("timed out after {timeout:?}: {what}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    };
    let stdout_bytes = out.join().unwrap();
    Finished {
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        elapsed,
        stdout_bytes,
    }
}

/// Polls `child` until it exits or `timeout` passes (then `None`; the child is left running).
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A long-running child whose stdout is read line by line as it is produced.
/// Killed on drop.
pub struct Streaming {
    child: Child,
    /// Open until [`Streaming::close_stdin`] when spawned with [`Streaming::spawn_with_stdin`].
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    what: String,
}

impl Streaming {
    pub fn spawn(cmd: &mut Command) -> Streaming {
        cmd.stdin(Stdio::null());
        Streaming::spawn_configured(cmd)
    }

    /// The same with a stdin pipe that stays open (write to it with [`Streaming::send_line`]).
    pub fn spawn_with_stdin(cmd: &mut Command) -> Streaming {
        cmd.stdin(Stdio::piped());
        Streaming::spawn_configured(cmd)
    }

    fn spawn_configured(cmd: &mut Command) -> Streaming {
        let what = format!("{cmd:?}");
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            what,
        }
    }

    /// Writes `line` and a newline to the child's stdin.
    pub fn send_line(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().expect("spawned without a stdin pipe");
        stdin.write_all(format!("{line}\n").as_bytes())?;
        stdin.flush()
    }

    /// Closes the child's stdin (EOF for it).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_timeout(&mut self.child, timeout)
    }

    /// The lines seen so far by the `expect_*` methods.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Waits for the next output line containing `wanted`, skipping others; returns it.
    /// Panics like [`Streaming::expect_line`].
    pub fn expect_line_containing(&mut self, wanted: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(wanted) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line containing {wanted:?} within {timeout:?} from {}; saw {:?}",
                    self.what, self.seen
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{} closed its output before printing {wanted:?}; saw {:?}; exit {:?}",
                    self.what,
                    self.seen,
                    wait_timeout(&mut self.child, Duration::from_secs(5))
                ),
            }
        }
    }

    /// Waits for the next output line equal to `wanted` (after trimming), skipping others.
    /// Panics if it does not arrive within `timeout` or the process closes stdout first.
    pub fn expect_line(&mut self, wanted: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.trim() == wanted;
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line {wanted:?} within {timeout:?} from {}; saw {:?}",
                    self.what, self.seen
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{} closed its output before printing {wanted:?}; saw {:?}; exit {:?}",
                    self.what,
                    self.seen,
                    wait_timeout(&mut self.child, Duration::from_secs(5))
                ),
            }
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or returns `None` after `timeout`.
pub fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// sha256 of a file, via the `sha256sum` command.
pub fn sha256_file(path: &Path) -> String {
    let out = run_with_timeout(
        Command::new("sha256sum").arg(path),
        None,
        Duration::from_secs(60),
    );
    assert!(
        out.success(),
        "sha256sum {}: {}",
        path.display(),
        out.stderr
    );
    out.stdout
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

/// Writes `len` random bytes (from /dev/urandom) to `path`.
pub fn write_random_file(path: &Path, len: u64) {
    let mut src = std::fs::File::open("/dev/urandom").expect("open /dev/urandom");
    let mut dst = std::fs::File::create(path).expect("create random file");
    let copied = std::io::copy(&mut (&mut src).take(len), &mut dst).expect("copy random bytes");
    assert_eq!(copied, len);
}

/// A local TCP port that refuses connections for as long as this value lives: bound, never
/// listening. (Binding and dropping a listener would free the port for a parallel test to take.)
pub struct ClosedPort {
    _bound: socket2::Socket,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any_port.into()).unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        ClosedPort {
            _bound: socket,
            port,
        }
    }
}
