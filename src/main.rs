//! dockgate: a mutual-TLS gateway for the Docker Engine API that enforces certificate
//! revocation lists, which `dockerd --tlsverify` never checks.
//!
//! `main` only turns the outcome of `run` into a message and an exit code:
//! 2 for bad flags or files (nothing was started), 1 when listening failed.

// No unsafe code, except on Windows for the one call that cancels pending named-pipe I/O
// (`upstream::npipe::cancel_io`, allowed there explicitly).
#![cfg_attr(not(windows), forbid(unsafe_code))]
#![cfg_attr(windows, deny(unsafe_code))]

mod api;
mod audit;
mod ca;
mod cli;
mod config;
mod conn;
mod crl_fetch;
mod crl_history;
mod enforce;
mod fds;
mod gate;
mod handshakers;
mod http;
mod limits;
mod locks;
mod logging;
mod metrics;
mod net;
mod policy;
mod refusals;
mod registry;
mod relay;
mod reload;
mod sd_notify;
mod server;
mod shutdown;
mod tenancy;
mod threads;
mod tls;
mod upstream;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use log::{info, warn};

use crate::cli::Command;
use crate::config::Config;
use crate::gate::Gate;

/// A start-up failure and the exit code it deserves.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    // `dockgate ca ...` is a separate tool that shares nothing with the gate (src/ca/).
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "ca") {
        return ca::main(std::env::args_os().skip(2).collect());
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("dockgate: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn run() -> Result<(), Failure> {
    let flags = match cli::parse(std::env::args_os().skip(1).collect()).map_err(Failure::usage)? {
        Command::Help => {
            print!("{}", cli::help());
            return Ok(());
        }
        Command::Version => {
            println!(
                "dockgate {} (commit {})",
                env!("CARGO_PKG_VERSION"),
                env!("DOCKGATE_COMMIT")
            );
            return Ok(());
        }
        Command::Policy(args) => {
            return policy::cli::run(args).map_err(|(code, message)| Failure { code, message })
        }
        Command::Run(flags) => flags,
    };
    let config = Config::from_flags(*flags).map_err(Failure::usage)?;
    logging::init(config.log_format);

    let history = Arc::new(Mutex::new(open_crl_history(&config)?));
    let mut files = config.tls.clone();
    let downloads = config
        .downloads
        .as_ref()
        .map(|downloads| {
            crl_fetch::Downloads::start(&config.tls.client_ca, downloads, &mut files, &history)
        })
        .transpose()
        .map_err(Failure::usage)?;

    // Read once: the watcher compares later changes with exactly the bytes built here.
    let inputs = reload::Inputs::read(&files).map_err(Failure::usage)?;
    let tls = tls::build_from_contents(&files, &inputs.contents, config.revocation)
        .map_err(|e| Failure::usage(e.to_string()))?;
    {
        let mut history = crl_history::lock(&history);
        history.check(&tls.crls).map_err(Failure::usage)?;
        history.record(&tls.crls);
    }
    log_startup(&config, &tls);
    fds::raise_limit();

    let listeners = config
        .listen
        .iter()
        .map(|addr| {
            net::bind(*addr).map_err(|e| Failure {
                code: 1,
                message: format!("--listen {addr}: {e}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metrics_listener = config
        .metrics_listen
        .map(|addr| {
            metrics::bind(addr).map_err(|e| Failure {
                code: 1,
                message: format!("--metrics-listen {addr}: {e}"),
            })
        })
        .transpose()?;
    let limits = limits::Limits::new(config.max_connections, config.max_connections_per_client);
    let policy = match &config.policy {
        Some(path) => enforce::PolicyInForce::load(path)
            .map_err(|e| Failure::usage(format!("--policy {e}")))?,
        None => {
            warn!("no --policy: every verified client has full access to the Docker API");
            enforce::PolicyInForce::none()
        }
    };
    let gate = Arc::new(Gate::new(tls, config.upstream, limits).with_policy(policy));

    let reload = reload::spawn(
        gate.clone(),
        files,
        config.revocation,
        config.reload,
        history,
        inputs,
    );
    #[cfg(unix)]
    reload::forward_sighup(reload.clone()).map_err(|e| Failure {
        code: 1,
        message: format!("cannot handle SIGHUP: {e}"),
    })?;
    let expiry_gate = gate.clone();
    std::thread::Builder::new()
        .name("dockgate-expiry".into())
        .spawn(move || expiry_gate.connections.cut_at_expiry())
        .map_err(|e| Failure {
            code: 1,
            message: format!("cannot start the certificate expiry thread: {e}"),
        })?;
    if let Some(downloads) = downloads {
        downloads.spawn(reload);
    }
    if let Some(listener) = metrics_listener {
        metrics::spawn(gate.clone(), listener);
    }
    listeners
        .iter()
        .map(|listener| listener.try_clone())
        .collect::<Result<Vec<_>, _>>()
        .and_then(shutdown::handle_signals)
        .map_err(|e| Failure {
            code: 1,
            message: format!("cannot handle SIGTERM and SIGINT: {e}"),
        })?;
    sd_notify::ready();
    // Returns once a signal has stopped the accept loops.
    server::serve_forever(gate.clone(), listeners);
    shutdown::drain(&gate, config.shutdown_grace);
    Ok(())
}

/// The record of the newest CRL seen from each source, from `--crl-cache` when there is one.
fn open_crl_history(config: &Config) -> Result<crl_history::CrlHistory, Failure> {
    let dir = config.crl_history_dir.as_deref();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::usage(format!("--crl-cache {}: {e}", dir.display())))?;
    }
    crl_history::CrlHistory::open(dir).map_err(|e| Failure::usage(format!("--crl-cache {e}")))
}

fn log_startup(config: &Config, tls: &tls::LoadedTls) {
    info!(
        "dockgate {} (commit {}) starting: upstream {}, client CA {} ({} certificate(s))",
        env!("CARGO_PKG_VERSION"),
        env!("DOCKGATE_COMMIT"),
        config.upstream,
        config.tls.client_ca.display(),
        tls.client_ca_count
    );
    let policy = config.revocation.describe();
    if config.revocation.is_softened() {
        warn!("revocation policy: {policy}");
    } else {
        info!("revocation policy: {policy}");
    }
    for crl in &tls.crls {
        info!("CRL loaded: {crl}");
        if !crl.signature_checked {
            warn!(
                "CRL {}: its issuer is not in --tlscacert, so its signature is checked at the first handshake that needs it (add the intermediate CA to --tlscacert to check it at start; an intermediate there is not a trust anchor: its own expiry and revocation are still checked)",
                crl.file
            );
        }
    }
}
