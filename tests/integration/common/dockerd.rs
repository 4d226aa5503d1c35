//! One private dockerd for the whole test binary, plus the test image `dockgate-test/busybox`.
//!
//! dockerd is spawned from a dedicated thread that never exits, with PR_SET_PDEATHSIG=SIGTERM:
//! the death signal fires when the *spawning thread* dies, and libtest's test threads end after
//! each test. An `atexit` hook removes leftover containers, stops dockerd and cleans up
//! `/tmp/dockgate-it-<pid>` when the test binary exits normally.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::cli::docker_command;
use super::util::{poll, run_dir, run_with_timeout};

pub const TEST_IMAGE: &str = "dockgate-test/busybox";
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Dockerd {
    pub dir: PathBuf,
    /// `unix:///tmp/dockgate-it-<pid>/d/docker.sock`
    pub host: String,
    child: Mutex<Child>,
}

/// The shared dockerd, started (and the test image imported) on first use.
/// Panics with dockerd's log if it cannot be started: these tests never skip.
pub fn dockerd() -> &'static Dockerd {
    // A failed start is remembered, so every later test fails at once with the same message
    // instead of trying (and waiting for) dockerd again.
    static DOCKERD: OnceLock<Result<Dockerd, String>> = OnceLock::new();
    let started = DOCKERD.get_or_init(|| {
        std::panic::catch_unwind(|| {
            remove_stale_run_dirs();
            let d = start(&run_dir().join("d"));
            import_test_image(&d);
            unsafe { libc::atexit(shutdown_at_exit) };
            d
        })
        .map_err(|panic| {
            let msg = panic.downcast_ref::<String>().cloned();
            msg.or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match started {
        Ok(d) => d,
        Err(msg) => panic!("the test dockerd could not be set up: {msg}"),
    }
}

impl Dockerd {
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id() as i32
    }
}

/// One HTTP/1.0 exchange straight with dockerd's socket, bypassing the gate (HTTP/1.0: no
/// chunked answers): the status and the body as JSON (a string when it is not JSON). For the
/// tests' setup and for asking dockerd, the oracle, what it really did.
pub fn docker_api(method: &str, target: &str, content_type: &str, body: &str) -> (u16, Value) {
    let mut s = UnixStream::connect(dockerd().socket()).expect("connect to dockerd");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {target} HTTP/1.0\r\nHost: docker\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or_else(|_| Value::String(b.to_string())))
        .unwrap_or(Value::Null);
    (status, json)
}

/// `docker_api` with a JSON body.
pub fn docker_api_json(method: &str, target: &str, body: &str) -> (u16, Value) {
    docker_api(method, target, "application/json", body)
}

fn start(dir: &Path) -> Dockerd {
    std::fs::create_dir_all(dir).unwrap();
    let socket = dir.join("docker.sock");
    assert!(
        socket.as_os_str().len() < 100,
        "socket path too long: {}",
        socket.display()
    );
    let host = format!("unix://{}", socket.display());
    let log = File::create(dir.join("dockerd.log")).unwrap();
    let mut cmd = Command::new(if Path::new("/usr/sbin/dockerd").exists() {
        "/usr/sbin/dockerd"
    } else {
        "dockerd"
    });
    cmd.arg("-H")
        .arg(&host)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("pid"))
        .args(["--bridge=none", "--iptables=false"])
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("dockerd-owner".into())
        .spawn(move || {
            let _ = tx.send(cmd.spawn());
            loop {
                thread::park();
            }
        })
        .unwrap();
    let child = rx.recv().unwrap().unwrap_or_else(|e| {
        panic!("cannot start dockerd (these tests need root and docker.io installed): {e}")
    });
    let d = Dockerd {
        dir: dir.to_path_buf(),
        host,
        child: Mutex::new(child),
    };
    let up = poll(START_TIMEOUT, || {
        if let Some(status) = d.child.lock().unwrap().try_wait().unwrap() {
            panic!(
                "dockerd exited with {status} during startup; its log:\n{}",
                d.log()
            );
        }
        ping(&socket).then_some(())
    });
    if up.is_none() {
        panic!(
            "dockerd did not answer _ping within {START_TIMEOUT:?}; its log:\n{}",
            d.log()
        );
    }
    d
}

/// True if dockerd answers `GET /_ping` with `OK` on `socket`.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.") && resp.contains(" 200 ") && resp.ends_with("OK")
}

/// `docker import` of a tarball holding /bin/busybox and its applet symlinks in bin/.
fn import_test_image(d: &Dockerd) {
    let rootfs = d.dir.join("img");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("copy /bin/busybox (install busybox-static)");
    let list = run_with_timeout(
        Command::new("/bin/busybox").arg("--list"),
        None,
        Duration::from_secs(10),
    );
    assert!(list.success(), "busybox --list failed: {}", list.stderr);
    for applet in list
        .stdout
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let tarball = d.dir.join("img.tar");
    let tar = run_with_timeout(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
        None,
        Duration::from_secs(30),
    );
    assert!(tar.success(), "tar failed: {}", tar.stderr);
    let import = run_with_timeout(
        docker_command(&d.host, None, &d.dir.join("cfg"))
            .arg("import")
            .arg(&tarball)
            .arg(TEST_IMAGE),
        None,
        Duration::from_secs(60),
    );
    assert!(
        import.success(),
        "docker import failed: {}\n{}\ndockerd log:\n{}",
        import.stdout,
        import.stderr,
        d.log()
    );
}

/// Removes `/tmp/dockgate-it-<pid>` directories of earlier runs whose process is gone.
fn remove_stale_run_dirs() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("dockgate-it-") else {
            continue;
        };
        if pid == std::process::id().to_string() || Path::new("/proc").join(pid).exists() {
            continue;
        }
        unmount_all_under(&entry.path());
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

fn unmount_all_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let c = std::ffi::CString::new(p).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

extern "C" fn shutdown_at_exit() {
    // Registered only after dockerd() has finished, so this does not start anything.
    let d = dockerd();
    let docker = || docker_command(&d.host, None, &d.dir.join("cfg"));
    let ps = run_with_timeout(docker().args(["ps", "-aq"]), None, Duration::from_secs(30));
    let ids: Vec<&str> = ps.stdout.split_whitespace().collect();
    if !ids.is_empty() {
        let _ = run_with_timeout(
            docker().args(["rm", "-f"]).args(&ids),
            None,
            Duration::from_secs(60),
        );
    }
    unsafe { libc::kill(d.pid(), libc::SIGTERM) };
    let stopped = poll(Duration::from_secs(30), || {
        d.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_wait()
            .ok()
            .flatten()
    });
    if stopped.is_none() {
        eprintln!(
            "dockerd did not stop within 30 s; leaving {}",
            run_dir().display()
        );
        return;
    }
    if std::env::var_os("DOCKGATE_IT_KEEP").is_none() {
        unmount_all_under(run_dir());
        let _ = std::fs::remove_dir_all(run_dir());
    }
}
