//! The resolved configuration: flags checked against each other and turned into values the
//! gate runs with. Every error names the flag it is about.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Flags;
use crate::logging::LogFormat;
use crate::reload::ReloadSettings;
use crate::tls::{RevocationPolicy, ServerIdentity, TlsFiles};
use crate::upstream::Upstream;

const DEFAULT_LISTEN: &str = "0.0.0.0:2376";
const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_CRL_WARN_BEFORE: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_CRL_REFRESH: Duration = Duration::from_secs(3600);
const DEFAULT_CRL_CACHE: &str = "/var/cache/dockgate/crl";
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// CRLs downloaded from URLs.
#[derive(Debug)]
pub struct CrlDownloads {
    pub urls: Vec<String>,
    pub from_cdp: bool,
    pub refresh: Duration,
    pub cache_dir: PathBuf,
    pub server_ca: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Config {
    pub tls: TlsFiles,
    pub revocation: RevocationPolicy,
    /// `None` when no `--crl-url` or `--crl-from-cdp` was given.
    pub downloads: Option<CrlDownloads>,
    /// Where the newest CRL seen from each source is kept across restarts (`crl_history`):
    /// `--crl-cache`, or its default when CRLs are downloaded; `None`: in memory only.
    pub crl_history_dir: Option<PathBuf>,
    pub reload: ReloadSettings,
    pub listen: Vec<SocketAddr>,
    pub upstream: Upstream,
    pub log_format: LogFormat,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub shutdown_grace: Duration,
    /// `--metrics-listen`; `None`: no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// `--policy FILE`, loaded by `main` (its errors name line and column).
    pub policy: Option<std::path::PathBuf>,
}

impl Config {
    pub fn from_flags(flags: Flags) -> Result<Config, String> {
        let required = |value: Option<std::path::PathBuf>, flag: &str| {
            value.ok_or_else(|| format!("{flag} FILE is required (see --help)"))
        };
        let server = server_identity(&flags)?;
        let tls = TlsFiles {
            client_ca: required(flags.tlscacert, "--tlscacert")?,
            server,
            crls: flags.crls,
            fetched_crls: Vec::new(),
        };
        let downloads = (!flags.crl_urls.is_empty() || flags.crl_from_cdp)
            .then(|| -> Result<CrlDownloads, String> {
                for url in &flags.crl_urls {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(format!(
                            "--crl-url {url}: expected an http:// or https:// URL"
                        ));
                    }
                }
                Ok(CrlDownloads {
                    urls: flags.crl_urls.clone(),
                    from_cdp: flags.crl_from_cdp,
                    refresh: duration("--crl-refresh", flags.crl_refresh.as_deref())?
                        .unwrap_or(DEFAULT_CRL_REFRESH),
                    cache_dir: flags
                        .crl_cache
                        .clone()
                        .unwrap_or_else(|| PathBuf::from(DEFAULT_CRL_CACHE)),
                    server_ca: flags.crl_url_ca.clone(),
                })
            })
            .transpose()?;
        let crl_history_dir = match &downloads {
            Some(downloads) => Some(downloads.cache_dir.clone()),
            None => flags.crl_cache.clone(),
        };
        let revocation = revocation_policy(
            &tls,
            downloads.is_some(),
            flags.no_crl,
            flags.crl_leaf_only,
            flags.crl_allow_unknown,
            flags.crl_allow_expired,
        )?;
        let interval = duration("--reload-interval", flags.reload_interval.as_deref())?
            .unwrap_or(DEFAULT_RELOAD_INTERVAL);
        let reload = ReloadSettings {
            interval: (!interval.is_zero()).then_some(interval),
            warn_before: duration("--crl-warn-before", flags.crl_warn_before.as_deref())?
                .unwrap_or(DEFAULT_CRL_WARN_BEFORE),
        };
        let listen = parse_listen(&flags.listen)?;
        let upstream = match flags.upstream {
            Some(url) => Upstream::parse(&url).map_err(|e| format!("--upstream {e}"))?,
            None => Upstream::platform_default(),
        };
        let log_format = match flags.log_format {
            Some(format) => LogFormat::parse(&format)?,
            None => LogFormat::Text,
        };
        let positive = |flag: &str, value: Option<usize>, default: usize| match value {
            Some(0) => Err(format!("{flag} 0: must be at least 1")),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let max_connections = positive(
            "--max-connections",
            flags.max_connections,
            crate::limits::DEFAULT_MAX_CONNECTIONS,
        )?;
        let max_connections_per_client = positive(
            "--max-connections-per-client",
            flags.max_connections_per_client,
            crate::limits::DEFAULT_MAX_PER_CLIENT,
        )?;
        let shutdown_grace = duration("--shutdown-grace", flags.shutdown_grace.as_deref())?
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE);
        let metrics_listen = flags
            .metrics_listen
            .map(|value| {
                value.parse().map_err(|_| {
                    format!("--metrics-listen {value}: expected IP:PORT, e.g. 127.0.0.1:9323")
                })
            })
            .transpose()?;
        Ok(Config {
            tls,
            revocation,
            downloads,
            crl_history_dir,
            reload,
            listen,
            upstream,
            log_format,
            max_connections,
            max_connections_per_client,
            shutdown_grace,
            metrics_listen,
            policy: flags.policy.clone(),
        })
    }
}

/// `--tlscert` with `--tlskey`, or `--tlspfx` with `--tlspfx-password-file`.
fn server_identity(flags: &Flags) -> Result<ServerIdentity, String> {
    match (&flags.tlspfx, &flags.tlscert, &flags.tlskey) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err("--tlspfx replaces --tlscert and --tlskey: give one or the other".into())
        }
        (Some(file), None, None) => Ok(ServerIdentity::Pfx {
            file: file.clone(),
            password_file: flags.tlspfx_password_file.clone().ok_or(
                "--tlspfx needs --tlspfx-password-file FILE (the whole file is the password)",
            )?,
        }),
        (None, cert, key) => Ok(ServerIdentity::Pem {
            cert: cert
                .clone()
                .ok_or("--tlscert FILE is required (or --tlspfx; see --help)")?,
            key: key
                .clone()
                .ok_or("--tlskey FILE is required (see --help)")?,
        }),
    }
}

/// Revocation is on unless `--no-crl` says otherwise, so that nobody runs without it by accident.
fn revocation_policy(
    tls: &TlsFiles,
    downloads: bool,
    no_crl: bool,
    leaf_only: bool,
    allow_unknown: bool,
    allow_expired: bool,
) -> Result<RevocationPolicy, String> {
    if no_crl {
        if !tls.crls.is_empty() || downloads {
            return Err("--no-crl excludes --crl, --crl-url and --crl-from-cdp".into());
        }
        if leaf_only || allow_unknown || allow_expired {
            return Err("--crl-leaf-only, --crl-allow-unknown and --crl-allow-expired need --crl, not --no-crl".into());
        }
    } else if tls.crls.is_empty() && !downloads {
        return Err(
            "--crl FILE is required: give the CA's revocation list (or --crl-url, or --no-crl to run without revocation checks)"
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

/// Durations: plain seconds (`5`) or with a unit (`90s`, `30m`, `24h`).
fn duration(flag: &str, value: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    if let Ok(secs) = value.parse::<u64>() {
        return Ok(Some(Duration::from_secs(secs)));
    }
    humantime::parse_duration(value)
        .map(Some)
        .map_err(|e| format!("{flag} {value}: {e} (e.g. 30, 90s, 30m, 24h)"))
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
        assert!(Config::from_flags(f).unwrap_err().contains("excludes"));
        let mut f = flags();
        f.crls.clear();
        f.crl_urls = vec!["http://ca.example/crl".into()];
        assert!(Config::from_flags(f).unwrap().revocation.enabled);
    }

    #[test]
    fn durations_accept_seconds_and_units() {
        let mut f = flags();
        f.reload_interval = Some("0".into());
        f.crl_warn_before = Some("36h".into());
        let config = Config::from_flags(f).unwrap();
        assert_eq!(config.reload.interval, None);
        assert_eq!(config.reload.warn_before, Duration::from_secs(36 * 3600));
        assert_eq!(
            Config::from_flags(flags()).unwrap().reload.interval,
            Some(Duration::from_secs(5))
        );
        let mut f = flags();
        f.crl_refresh = Some("soon".into());
        f.crl_urls = vec!["https://ca.example/crl".into()];
        assert!(Config::from_flags(f)
            .unwrap_err()
            .contains("--crl-refresh soon"));
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
