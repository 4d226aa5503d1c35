//! Docker for Windows' named pipe (`\\.\pipe\docker_engine`), full duplex.
//!
//! Why `interprocess` (2.4) and not `named_pipe` or `std::fs::File`:
//! - a pipe handle opened for synchronous I/O (what `std::fs::File` gives) serialises a blocked
//!   ReadFile with a WriteFile from another thread on the same handle, so a hijacked session would
//!   deadlock as soon as Docker is silent while the client types (Docker.DotNet hit exactly this);
//! - `named_pipe` 0.4 opens the handle overlapped but keeps one OVERLAPPED per client behind
//!   `&mut self` and cannot be split, so it cannot have a read and a write outstanding at once
//!   (and has had no release since 2019);
//! - `interprocess` opens the client end with `FILE_FLAG_OVERLAPPED`, issues every read and write
//!   with its own OVERLAPPED (ReadFileEx/WriteFileEx waited for in an alertable sleep), and
//!   `split()`s a stream into a receive half and a send half that two threads use at once. The
//!   wine tests (`make test-windows`) run a 64 MiB transfer in both directions at once through it.
//!
//! Ending the connection: dockerd's pipe is message mode, so half-closing toward Docker is a
//! zero-length message (what go-winio's `CloseWrite` sends), and a zero-length read from Docker is
//! the end of its output. Aborting must wake the other half, which may be blocked in a read or a
//! write: `CancelIoEx` on the shared handle cancels both, and that is the one `unsafe` call here
//! (neither `interprocess` nor std offer a safe way to cancel pending I/O on a handle).

use std::io::{self, Read, Write};
use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use interprocess::os::windows::named_pipe::{
    pipe_mode, DuplexPipeStream, RecvPipeStream, SendPipeStream,
};
use interprocess::ConnectWaitMode;

use super::{UpstreamConn, UpstreamRead, UpstreamWrite};

/// How long to wait while every instance of the pipe is busy (`ERROR_PIPE_BUSY`) before the
/// client gets a 502. dockerd keeps a spare instance listening, so this only bites under load.
const BUSY_WAIT: Duration = Duration::from_secs(10);
/// How long an abort keeps cancelling I/O that the other half is about to issue.
const ABORT_SPIN: Duration = Duration::from_secs(1);

/// Opens `path` (`\\.\pipe\docker_engine`), waiting a bounded time while the pipe is busy.
pub fn connect(path: &str) -> io::Result<UpstreamConn> {
    let stream = DuplexPipeStream::<pipe_mode::Bytes>::connect_by_path_with_wait_mode(
        std::ffi::OsStr::new(path),
        ConnectWaitMode::Timeout(BUSY_WAIT),
    )
    .map_err(|e| describe_connect_error(path, e))?;
    let (rx, tx) = stream.split();
    let shared = Arc::new(Shared {
        aborted: AtomicBool::new(false),
        busy: AtomicUsize::new(0),
    });
    Ok(UpstreamConn {
        reader: Box::new(PipeReader {
            rx,
            shared: shared.clone(),
        }),
        writer: Box::new(PipeWriter {
            tx,
            shared,
            closed: false,
        }),
    })
}

/// Turns the Windows error of a failed open into a message that names the likely cause.
fn describe_connect_error(path: &str, e: io::Error) -> io::Error {
    const ERROR_FILE_NOT_FOUND: i32 = 2;
    const ERROR_ACCESS_DENIED: i32 = 5;
    const ERROR_PIPE_BUSY: i32 = 231;
    let message = match e.raw_os_error() {
        Some(ERROR_FILE_NOT_FOUND) => {
            format!("named pipe {path} does not exist (is Docker running?)")
        }
        Some(ERROR_ACCESS_DENIED) => format!(
            "access to named pipe {path} denied (the Docker pipe admits Administrators and SYSTEM only)"
        ),
        Some(ERROR_PIPE_BUSY) => {
            format!("named pipe {path} stayed busy for {}s", BUSY_WAIT.as_secs())
        }
        _ if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) =>
        {
            format!("named pipe {path} stayed busy for {}s", BUSY_WAIT.as_secs())
        }
        _ => format!("named pipe {path}: {e}"),
    };
    io::Error::new(e.kind(), message)
}

/// What the two halves share: whether the connection was aborted, and how many of them are
/// inside an I/O call (which an abort must cancel).
struct Shared {
    aborted: AtomicBool,
    busy: AtomicUsize,
}

impl Shared {
    /// Runs one I/O call unless the connection was aborted. The counter goes up before the
    /// abort flag is read, and `abort` sets the flag before it reads the counter, so either the
    /// call sees the flag or the abort sees the call and cancels it.
    fn io<T>(&self, op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        self.busy.fetch_add(1, SeqCst);
        let result = if self.aborted.load(SeqCst) {
            Err(aborted())
        } else {
            op()
        };
        self.busy.fetch_sub(1, SeqCst);
        if self.aborted.load(SeqCst) {
            return Err(aborted());
        }
        result
    }

    /// Ends both directions: cancels the I/O in flight on the handle until neither half is
    /// inside a call (the other half may be between its flag check and issuing its call).
    fn abort(&self, handle: BorrowedHandle<'_>) {
        self.aborted.store(true, SeqCst);
        let deadline = Instant::now() + ABORT_SPIN;
        loop {
            cancel_io(handle);
            if self.busy.load(SeqCst) == 0 || Instant::now() >= deadline {
                return;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "upstream connection aborted",
    )
}

/// Cancels every read and write pending on `handle`, from whichever thread issued it; each
/// completes with `ERROR_OPERATION_ABORTED`.
#[allow(unsafe_code)]
fn cancel_io(handle: BorrowedHandle<'_>) {
    // SAFETY: `handle` is borrowed from a live pipe stream, so it stays open for the call, and a
    // null OVERLAPPED asks to cancel all I/O on it without touching any caller's OVERLAPPED.
    // Failure (ERROR_NOT_FOUND: nothing pending) is expected and harmless.
    unsafe {
        windows_sys::Win32::System::IO::CancelIoEx(handle.as_raw_handle(), std::ptr::null());
    }
}

struct PipeReader {
    rx: RecvPipeStream<pipe_mode::Bytes>,
    shared: Arc<Shared>,
}

impl Read for PipeReader {
    /// `Ok(0)` is Docker's end of output: a zero-length message, or the pipe closed (which
    /// `interprocess` reports as EOF too).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let rx = &self.rx;
        self.shared.io(|| (&*rx).read(buf))
    }
}

impl UpstreamRead for PipeReader {
    fn abort(&self) {
        self.shared.abort(self.rx.as_handle());
    }
}

struct PipeWriter {
    tx: SendPipeStream<pipe_mode::Bytes>,
    shared: Arc<Shared>,
    closed: bool,
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after close_write",
            ));
        }
        // An empty write would put a zero-length message on the pipe, which dockerd reads as
        // the end of the client's input: only `close_write` may send one.
        if buf.is_empty() {
            return Ok(0);
        }
        let tx = &self.tx;
        self.shared.io(|| (&*tx).write(buf))
    }

    /// Writes complete once the bytes are in the pipe; there is no buffer of ours to flush (and
    /// FlushFileBuffers would wait for Docker to read everything).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl UpstreamWrite for PipeWriter {
    fn close_write(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let tx = &self.tx;
        // `write`, not `write_all`: `write_all(&[])` sends nothing.
        self.shared.io(|| (&*tx).write(&[])).map(|_| ())
    }

    fn abort(&mut self) {
        self.closed = true;
        self.shared.abort(self.tx.as_handle());
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        if self.shared.aborted.load(SeqCst) {
            // Do not hand the handle to interprocess' "limbo" flusher: Docker may never read
            // what is left, and the flush would hold a thread forever.
            self.tx.assume_flushed();
        }
    }
}
