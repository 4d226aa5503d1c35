//! dockgate: a mutual-TLS gateway for the Docker Engine API that enforces certificate
//! revocation lists, which `dockerd --tlsverify` never checks.
//!
//! `main` only turns the outcome of `run` into a message and an exit code:
//! 2 for bad flags or files (nothing was started), 1 when listening failed.

#![forbid(unsafe_code)]

mod audit;
mod cli;
mod config;
mod conn;
mod http;
mod logging;
mod net;
mod relay;
mod server;
mod tls;
mod upstream;

use std::process::ExitCode;
use std::sync::Arc;

use log::{info, warn};

use crate::cli::Command;
use crate::config::Config;
use crate::conn::Gate;

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
            print!("{}", cli::HELP);
            return Ok(());
        }
        Command::Version => {
            println!("dockgate {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Command::Run(flags) => flags,
    };
    let config = Config::from_flags(flags).map_err(Failure::usage)?;
    logging::init(config.log_format);

    let tls = tls::build_server_config(&config.tls, config.revocation)
        .map_err(|e| Failure::usage(e.to_string()))?;
    log_startup(&config, &tls);

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
    let gate = Arc::new(Gate {
        tls: tls.config,
        upstream: config.upstream,
    });
    server::serve_forever(gate, listeners);
    Ok(())
}

fn log_startup(config: &Config, tls: &tls::LoadedTls) {
    info!(
        "dockgate {} starting: upstream {}, client CA {} ({} certificate(s))",
        env!("CARGO_PKG_VERSION"),
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
                "CRL {}: its issuer is not in --tlscacert, so its signature is checked at each handshake (add the intermediate CA to --tlscacert to check it at start)",
                crl.file
            );
        }
        if crl.is_expired() {
            let effect = if config.revocation.allow_expired {
                "clients it covers are still accepted (--crl-allow-expired)"
            } else {
                "clients it covers are REFUSED until a fresh CRL is installed"
            };
            warn!("CRL {} is past its nextUpdate: {effect}", crl.file);
        }
    }
}
