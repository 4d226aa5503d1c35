//! Release artefacts (issue #15): `--version` names the commit.

use std::process::Command;

use crate::common::gate::run_dockgate;

/// `dockgate --version` prints the package version and the commit it was built from (the
/// same `git rev-parse --short=12 HEAD` as the checkout the test runs in).
#[test]
fn version_names_the_git_commit() {
    let out = run_dockgate(&["--version".into()]);
    assert!(out.success(), "stderr:\n{}", out.stderr);
    let expected_version = format!("dockgate {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(out.stdout.starts_with(&expected_version), "{}", out.stdout);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git");
    // Outside a checkout (a source tarball) build.rs falls back to DOCKGATE_COMMIT or `unknown`.
    let commit = match head.status.success() {
        true => String::from_utf8(head.stdout).unwrap().trim().to_string(),
        false => option_env!("DOCKGATE_COMMIT")
            .unwrap_or("unknown")
            .to_string(),
    };
    assert_eq!(out.stdout.trim(), format!("{expected_version}{commit})"));
}

use std::ffi::OsString;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::cli::Docker;
use crate::common::dockerd::dockerd;
use crate::common::expect::{assert_cli_refused, assert_cli_works, LOG_WAIT};
use crate::common::gate::{Gate, BIN};
use crate::common::http::CrlServer;
use crate::common::util::{fresh_dir, run_with_timeout, unique_name};
use crate::common::{pki, GateBuilder};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const STATIC_BIN: &str = "target/x86_64-unknown-linux-musl/release/dockgate";
const WINDOWS_EXE: &str = "target/x86_64-pc-windows-gnu/release/dockgate.exe";

/// The static binary `make static` built (`make test` builds it first).
fn static_bin() -> PathBuf {
    let path = Path::new(REPO).join(STATIC_BIN);
    assert!(
        path.exists(),
        "{} is missing: run `make static` (make test does)",
        path.display()
    );
    path
}

fn run(program: &str, args: &[&str]) -> crate::common::util::Finished {
    run_with_timeout(
        std::process::Command::new(program).args(args),
        None,
        Duration::from_secs(60),
    )
}

#[test]
fn static_binary_has_no_interpreter_and_no_shared_libraries() {
    let bin = static_bin();
    let file = run("file", &[bin.to_str().unwrap()]);
    assert!(file.stdout.contains("statically linked"), "{}", file.stdout);
    let ldd = run("ldd", &[bin.to_str().unwrap()]);
    assert!(
        format!("{}{}", ldd.stdout, ldd.stderr).contains("not a dynamic executable"),
        "{ldd:?}"
    );
}

/// A TCP port on 127.0.0.1 that forwards each connection to the test dockerd's unix socket:
/// a `tcp://localhost:PORT` upstream.
fn tcp_to_dockerd() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let socket = dockerd().socket();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(docker) = UnixStream::connect(&socket) else {
                continue;
            };
            let (mut client_r, mut docker_w) =
                (client.try_clone().unwrap(), docker.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_r, &mut docker_w);
                let _ = docker_w.shutdown(std::net::Shutdown::Write);
            });
            let (mut docker_r, mut client_w) = (docker, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut docker_r, &mut client_w);
                let _ = client_w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// The static binary in an empty root (no /etc/hosts, no /etc/resolv.conf, no libraries)
/// resolves `localhost` for `--upstream tcp://localhost:PORT` and `--crl-url
/// http://localhost:PORT/...`, enforces the downloaded CRL and serves the docker CLI.
#[test]
fn static_binary_resolves_localhost_in_an_empty_root() {
    let root = fresh_dir("empty-root");
    std::fs::copy(static_bin(), root.join("dockgate")).unwrap();
    let pki = pki();
    for (from, to) in [
        (&pki.root_ca, "ca.pem"),
        (&pki.server_cert, "cert.pem"),
        (&pki.server_key, "key.pem"),
        (&pki.intermediate_crl, "intermediate-crl.pem"),
    ] {
        std::fs::copy(from, root.join(to)).unwrap();
    }
    let crls = CrlServer::start(std::fs::read(&pki.root_crl).unwrap());
    let crl_url = crls.url("root.crl").replace("127.0.0.1", "localhost");
    let upstream = format!("tcp://localhost:{}", tcp_to_dockerd());
    let mut chroot = std::process::Command::new("/usr/sbin/chroot");
    chroot
        .env_clear()
        .args([root.as_os_str(), "/dockgate".as_ref()]);
    let args: Vec<OsString> = [
        "--tlscacert",
        "/ca.pem",
        "--tlscert",
        "/cert.pem",
        "--tlskey",
        "/key.pem",
        "--crl",
        "/intermediate-crl.pem",
        "--crl-url",
        &crl_url,
        "--crl-cache",
        "/cache",
        "--upstream",
        &upstream,
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let gate = Gate::start_command(chroot, args, Duration::from_secs(20));
    gate.wait_for_log(&["CRL downloaded"], LOG_WAIT);
    assert_cli_works(&gate, &pki.alice);
    assert_cli_refused(&gate, &pki.mallory, "certificate revoked");
}

/// `make image` builds a FROM scratch image under 10 MB with the static binary only; run on the
/// test dockerd (host network: it has no bridge) with the socket and certificates mounted
/// read-only, a read-only root, no capabilities and a non-root user, it serves the docker CLI.
#[test]
fn scratch_image_serves_the_docker_cli() {
    let image = format!("{}:latest", unique_name("image"));
    let make = run_with_timeout(
        std::process::Command::new("make")
            .args(["-C", REPO, "-s", "image", &format!("IMAGE={image}")])
            .env("DOCKER_HOST", &dockerd().host),
        None,
        Duration::from_secs(900),
    );
    assert!(
        make.success(),
        "make image: {}\n{}",
        make.stdout,
        make.stderr
    );
    let direct = Docker::direct();
    let size: u64 = direct
        .ok(&["image", "inspect", "-f", "{{.Size}}", &image])
        .trim()
        .parse()
        .unwrap();
    assert!(size < 10_000_000, "image is {size} bytes");
    // Nothing but the binary: one layer holding one file.
    let history = direct.ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &image]);
    assert_eq!(history.trim(), "1");

    // A non-root user in the group of Docker's socket.
    let socket_group =
        std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(dockerd().socket()).unwrap());
    let user = format!("65534:{socket_group}");
    let name = unique_name("gate");
    let _container = crate::common::cli::Container::named(name.clone());
    let builder = GateBuilder::standard().upstream("unix:///var/run/docker.sock");
    let mut cmd = direct.command(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--user",
        &user,
    ]);
    cmd.env_remove("DOCKER_CERT_PATH");
    let socket = dockerd().socket();
    cmd.arg("-v")
        .arg(format!("{}:/var/run/docker.sock", socket.display()));
    let pki = pki();
    for file in [
        &pki.root_ca,
        &pki.server_cert,
        &pki.server_key,
        &pki.root_crl,
        &pki.intermediate_crl,
    ] {
        cmd.arg("-v").arg(format!("{0}:{0}:ro", file.display()));
    }
    cmd.arg(&image);
    let gate = Gate::start_command(cmd, builder.args(), Duration::from_secs(30));
    assert_cli_works(&gate, &pki.alice);
    let out = Docker::via(&gate, &pki.alice).ok(&[
        "run",
        "--rm",
        crate::common::dockerd::TEST_IMAGE,
        "echo",
        "from scratch",
    ]);
    assert_eq!(out.trim(), "from scratch");
    assert_cli_refused(&gate, &pki.mallory, "certificate revoked");
    let _ = direct.run(&["rmi", "-f", &image]);
}

/// packaging/dockgate.service passes `systemd-analyze verify` (with ExecStart pointing at the
/// test binary, since verify checks that the program exists) and keeps its hardening.
#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(Path::new(REPO).join("packaging/dockgate.service")).unwrap();
    for directive in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
        "SupplementaryGroups=docker",
        "ReadWritePaths=/var/cache/dockgate",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(directive), "the unit lacks {directive:?}");
    }
    let dir = fresh_dir("systemd");
    let path = dir.join("dockgate.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/dockgate", BIN)).unwrap();
    let verify = run("systemd-analyze", &["verify", path.to_str().unwrap()]);
    assert!(
        verify.success() && verify.stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{}{}",
        verify.status,
        verify.stdout,
        verify.stderr
    );
    // The exposure score the README reports (lower is better; systemd calls < 2 "OK").
    let security = run(
        "systemd-analyze",
        &["security", "--offline=yes", path.to_str().unwrap()],
    );
    let score = security
        .stdout
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for dockgate.service: ")
                .nth(1)
        })
        .unwrap_or_else(|| panic!("no score: {}{}", security.stdout, security.stderr));
    let value: f64 = score.split_whitespace().next().unwrap().parse().unwrap();
    assert!(value <= 2.0, "exposure {score}");
}

/// With `$NOTIFY_SOCKET` naming an abstract socket, the gate sends `READY=1` once its
/// listeners (TLS and metrics) accept connections, and `STOPPING=1` on SIGTERM.
#[test]
fn readiness_is_notified_once_listening() {
    use std::os::linux::net::SocketAddrExt;
    let name = unique_name("notify");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let notify = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut cmd = crate::common::gate::dockgate_command();
    cmd.env("NOTIFY_SOCKET", format!("@{name}"));
    let mut args = GateBuilder::standard().args();
    args.extend(["--metrics-listen".into(), "127.0.0.1:0".into()]);
    let mut gate = Gate::start_command(cmd, args, Duration::from_secs(10));
    let mut buf = [0; 256];
    let n = notify.recv(&mut buf).expect("READY=1 within 20 s");
    assert_eq!(&buf[..n], b"READY=1");
    assert!(
        gate.logs().contains("metrics: serving"),
        "READY before every listener was bound"
    );
    std::net::TcpStream::connect(("127.0.0.1", gate.port)).expect("the TLS port accepts");
    gate.signal(libc::SIGTERM);
    let n = notify.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(gate.wait_exit(Duration::from_secs(15)).success());
}

/// The DLLs a Nano Server image ships that the exe may import (the `api-ms-win-*` API sets
/// are matched by prefix, whatever their version suffix).
const NANO_SERVER_DLLS: [&str; 8] = [
    "kernel32.dll",
    "ntdll.dll",
    "ws2_32.dll",
    "advapi32.dll",
    "bcrypt.dll",
    "bcryptprimitives.dll",
    "msvcrt.dll",
    "api-ms-win-core-synch-",
];

/// `make windows`' dockgate.exe imports only DLLs that Nano Server has (mingw `objdump -p`
/// lists the import table). It does not check which functions of those DLLs are used.
#[test]
fn windows_exe_imports_only_nano_server_dlls() {
    let exe = Path::new(REPO).join(WINDOWS_EXE);
    assert!(
        exe.exists(),
        "{} is missing: run `make windows` (make test does)",
        exe.display()
    );
    let dump = run("x86_64-w64-mingw32-objdump", &["-p", exe.to_str().unwrap()]);
    assert!(dump.success(), "{}", dump.stderr);
    let imported: Vec<String> = dump
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("DLL Name: "))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    assert!(
        imported.iter().any(|d| d == "kernel32.dll"),
        "no imports found:\n{}",
        dump.stdout
    );
    let foreign: Vec<&String> = imported
        .iter()
        .filter(|dll| {
            !NANO_SERVER_DLLS
                .iter()
                .any(|ok| *dll == ok || (ok.ends_with('-') && dll.starts_with(ok)))
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "not on Nano Server: {foreign:?} (all imports: {imported:?})"
    );
}

/// `make dist` writes the static binary, the exe and the unit with their SHA256SUMS, and the
/// binary in dist/ names the commit.
#[test]
fn make_dist_writes_checksummed_artefacts() {
    let make = run_with_timeout(
        std::process::Command::new("make").args(["-C", REPO, "-s", "dist"]),
        None,
        Duration::from_secs(900),
    );
    assert!(
        make.success(),
        "make dist: {}\n{}",
        make.stdout,
        make.stderr
    );
    let dist = Path::new(REPO).join("dist");
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    for file in [
        "dockgate-linux-x86_64",
        "dockgate-windows-x86_64.exe",
        "dockgate.service",
    ] {
        assert!(
            sums.contains(&format!("  {file}\n")),
            "{file} not in SHA256SUMS:\n{sums}"
        );
    }
    let check = run_with_timeout(
        std::process::Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&dist),
        None,
        Duration::from_secs(60),
    );
    assert!(check.success(), "{}{}", check.stdout, check.stderr);
    let version = run(
        dist.join("dockgate-linux-x86_64").to_str().unwrap(),
        &["--version"],
    );
    let ours = run(BIN, &["--version"]);
    assert_eq!(version.stdout, ours.stdout);
}
