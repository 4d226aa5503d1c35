//! The resolved configuration: flags checked against each other and turned into values the
//! gate runs with. Every error names the flag it is about.

use std::net::SocketAddr;

use crate::cli::Flags;
use crate::logging::LogFormat;
use crate::tls::{RevocationPolicy, TlsFiles};
use crate::upstream::Upstream;

const DEFAULT_LISTEN: &str = "0.0.0.0:2376";

#[derive(Debug)]
pub struct Config {
    pub tls: TlsFiles,
    pub revocation: RevocationPolicy,
    pub listen: Vec<SocketAddr>,
    pub upstream: Upstream,
    pub log_format: LogFormat,
}

impl Config {
    pub fn from_flags(flags: Flags) -> Result<Config, String> {
        let required = |value: Option<std::path::PathBuf>, flag: &str| {
            value.ok_or_else(|| format!("{flag} FILE is required (see --help)"))
        };
        let tls = TlsFiles {
            client_ca: required(flags.tlscacert, "--tlscacert")?,
            server_cert: required(flags.tlscert, "--tlscert")?,
            server_key: required(flags.tlskey, "--tlskey")?,
            crls: flags.crls,
        };
        let revocation = revocation_policy(
            &tls,
            flags.no_crl,
            flags.crl_leaf_only,
            flags.crl_allow_unknown,
            flags.crl_allow_expired,
        )?;
        let listen = parse_listen(&flags.listen)?;
        let upstream = match flags.upstream {
            Some(url) => Upstream::parse(&url).map_err(|e| format!("--upstream {e}"))?,
            None => Upstream::platform_default(),
        };
        let log_format = match flags.log_format {
            Some(format) => LogFormat::parse(&format)?,
            None => LogFormat::Text,
        };
        Ok(Config {
            tls,
            revocation,
            listen,
            upstream,
            log_format,
        })
    }
}

/// Revocation is on unless `--no-crl` says otherwise, so that nobody runs without it by accident.
fn revocation_policy(
    tls: &TlsFiles,
    no_crl: bool,
    leaf_only: bool,
    allow_unknown: bool,
    allow_expired: bool,
) -> Result<RevocationPolicy, String> {
    if no_crl {
        if !tls.crls.is_empty() {
            return Err("--no-crl and --crl exclude each other".into());
        }
        if leaf_only || allow_unknown || allow_expired {
            return Err("--crl-leaf-only, --crl-allow-unknown and --crl-allow-expired need --crl, not --no-crl".into());
        }
    } else if tls.crls.is_empty() {
        return Err(
            "--crl FILE is required: give the CA's revocation list (or --no-crl to run without revocation checks)"
                .into(),
        );
    }
    Ok(RevocationPolicy {
        enabled: !no_crl,
        leaf_only,
        allow_unknown,
        allow_expired,
    })
}

fn parse_listen(values: &[String]) -> Result<Vec<SocketAddr>, String> {
    if values.is_empty() {
        return Ok(vec![DEFAULT_LISTEN.parse().expect("valid default address")]);
    }
    values
        .iter()
        .map(|value| {
            value.parse().map_err(|_| {
                format!("--listen {value}: expected IP:PORT, e.g. 0.0.0.0:2376 or [::]:2376")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags {
            tlscacert: Some("ca.pem".into()),
            tlscert: Some("cert.pem".into()),
            tlskey: Some("key.pem".into()),
            crls: vec!["crl.pem".into()],
            ..Flags::default()
        }
    }

    #[test]
    fn defaults() {
        let config = Config::from_flags(flags()).unwrap();
        assert_eq!(config.listen, ["0.0.0.0:2376".parse().unwrap()]);
        assert_eq!(config.upstream, Upstream::platform_default());
        assert!(config.revocation.enabled && !config.revocation.is_softened());
    }

    #[test]
    fn revocation_cannot_be_left_out_by_accident() {
        let mut f = flags();
        f.crls.clear();
        assert!(Config::from_flags(f).unwrap_err().contains("--no-crl"));
        let mut f = flags();
        f.crls.clear();
        f.no_crl = true;
        assert!(!Config::from_flags(f).unwrap().revocation.enabled);
        let mut f = flags();
        f.no_crl = true;
        assert!(Config::from_flags(f).unwrap_err().contains("exclude"));
    }

    #[test]
    fn errors_name_the_flag() {
        let mut f = flags();
        f.tlskey = None;
        assert!(Config::from_flags(f).unwrap_err().contains("--tlskey"));
        let mut f = flags();
        f.listen = vec!["localhost:2376".into()];
        assert!(Config::from_flags(f)
            .unwrap_err()
            .contains("--listen localhost:2376"));
        let mut f = flags();
        f.log_format = Some("xml".into());
        assert!(Config::from_flags(f).unwrap_err().contains("--log-format"));
    }
}
