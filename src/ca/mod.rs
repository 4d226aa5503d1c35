//! `dockgate ca`: a small certificate authority for one gate and its docker clients, so that
//! issuing, revoking and renewing is one command each instead of a page of openssl. It owns a
//! directory (`DIR`) with the CA, the gate's server certificate, the CRL and the issuance
//! database. It runs as a separate command and shares nothing with the serving path: the gate
//! only ever sees the PEM files it writes.
//!
//! - `cli`: arguments and `--help` of each subcommand
//! - `commands`: what each subcommand does, in order
//! - `certs`: making certificates and keys (rcgen, ECDSA P-256)
//! - `crl`: signing and publishing the CRL
//! - `db`: the issuance database `ca-db.tsv`
//! - `export`: the client's folder, docker context archive and PKCS#12 file
//! - `files`: 0600 creation, atomic replacement, the directory lock

mod certs;
mod cli;
mod commands;
mod crl;
mod db;
mod export;
mod files;

use std::ffi::OsString;
use std::process::ExitCode;

use cli::CaCommand;

/// Runs `dockgate ca ARGS...`. Every failure is one line on stderr and exit code 2.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let command = match cli::parse(args) {
        Ok(command) => command,
        Err((sub, message)) => return fail(&sub, &message),
    };
    let (sub, result) = match command {
        CaCommand::Help(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        CaCommand::Init(args) => ("init", commands::init(args)),
        CaCommand::Issue(args) => ("issue", commands::issue(args)),
        CaCommand::Revoke(args) => ("revoke", commands::revoke(args)),
        CaCommand::Crl { dir, days } => ("crl", commands::crl(&dir, days)),
        CaCommand::List { dir } => ("list", commands::list(&dir)),
        CaCommand::RenewServer { dir, days } => {
            ("renew-server", commands::renew_server(&dir, days))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(sub, &message),
    }
}

fn fail(sub: &str, message: &str) -> ExitCode {
    let prefix = if sub.is_empty() {
        "dockgate ca".to_string()
    } else {
        format!("dockgate ca {sub}")
    };
    eprintln!("{prefix}: {message}");
    ExitCode::from(2)
}
