//! dockgate: a mutual-TLS gateway for the Docker Engine API that enforces certificate
//! revocation lists, which `dockerd --tlsverify` never checks.
//!
//! `main` only turns the outcome of `run` into a message and an exit code:
//! 2 for bad flags or files (nothing was started), 1 when listening failed.

// No unsafe code, except on Windows for the one call that cancels pending named-pipe I/O
// (`upstream::npipe::cancel_io`, allowed there explicitly).
#![cfg_attr(not(windows), forbid(unsafe_code))]
#![cfg_attr(windows, deny(unsafe_code))]

mod audit;
mod cli;
mod config;
mod conn;
mod crl_fetch;
mod gate;
mod handshakers;
mod http;
mod limits;
mod logging;
mod metrics;
mod net;
mod registry;
mod relay;
mod reload;
mod sd_notify;
mod server;
mod shutdown;
mod tls;
mod upstream;

use std::process::ExitCode;
use std::sync::Arc;

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
            println!(
                "dockgate {} (commit {})",
                env!("CARGO_PKG_VERSION"),
                env!("DOCKGATE_COMMIT")
            );
            return Ok(());
        }
        Command::Run(flags) => flags,
    };
    let config = Config::from_flags(*flags).map_err(Failure::usage)?;
    logging::init(config.log_format);

    let mut files = config.tls.clone();
    let downloads = config
        .downloads
        .as_ref()
        .map(|downloads| prepare_downloads(&config, downloads, &mut files))
        .transpose()?;

    let tls = tls::build_server_config(&files, config.revocation)
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
    let gate = Arc::new(Gate::new(tls, config.upstream, limits));

    let reload = reload::spawn(gate.clone(), files, config.revocation, config.reload);
    #[cfg(unix)]
    reload::forward_sighup(reload.clone()).map_err(|e| Failure {
        code: 1,
        message: format!("cannot handle SIGHUP: {e}"),
    })?;
    if let Some((fetcher, sources)) = downloads {
        fetcher.spawn(sources, reload);
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

/// Resolves the CRL URLs, downloads each once (falling back to the cache) and adds the cache
/// files to the CRL inputs.
fn prepare_downloads(
    config: &Config,
    downloads: &config::CrlDownloads,
    files: &mut tls::TlsFiles,
) -> Result<(crl_fetch::Fetcher, Vec<crl_fetch::CrlSource>), Failure> {
    let mut urls = downloads.urls.clone();
    if downloads.from_cdp {
        let ca_bundle = tls::load::load_certs("--tlscacert", &config.tls.client_ca)
            .map_err(|e| Failure::usage(e.to_string()))?;
        let points = tls::load::distribution_points(&ca_bundle);
        if points.is_empty() {
            warn!("--crl-from-cdp: the --tlscacert certificates name no http(s) CRL Distribution Point");
        }
        for url in points {
            if !urls.contains(&url) {
                info!("--crl-from-cdp: {url}");
                urls.push(url);
            }
        }
    }
    std::fs::create_dir_all(&downloads.cache_dir).map_err(|e| {
        Failure::usage(format!(
            "--crl-cache {}: {e}",
            downloads.cache_dir.display()
        ))
    })?;
    let sources: Vec<_> = urls
        .iter()
        .map(|url| crl_fetch::CrlSource::new(url, &downloads.cache_dir))
        .collect();
    files
        .fetched_crls
        .extend(sources.iter().map(|s| s.cache_file.clone()));
    let fetcher = crl_fetch::Fetcher::new(
        config.tls.client_ca.clone(),
        downloads.server_ca.as_deref(),
        downloads.refresh,
    )
    .map_err(|e| Failure::usage(e.to_string()))?;
    fetcher.fetch_all(&sources);
    Ok((fetcher, sources))
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
                "CRL {}: its issuer is not in --tlscacert, so its signature is checked at each handshake (add the intermediate CA to --tlscacert to check it at start)",
                crl.file
            );
        }
    }
}
