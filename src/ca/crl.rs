//! The CRL `DIR/crl.pem`, always generated whole from the database: every revoked serial with
//! its revocation time and reason, the next CRL number, thisUpdate now and nextUpdate `days`
//! ahead. It replaces the old file atomically, so a gate watching `--crl DIR/crl.pem` reloads
//! either the old CRL or the new one.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

use super::certs::Ca;
use super::db::{Database, Reason, Status};
use super::files::{replace_atomically, Access};

pub const CRL_FILE: &str = "crl.pem";
/// nextUpdate of the CRLs that `init` and `revoke` write, and the default of `ca crl --days`.
pub const DEFAULT_CRL_DAYS: u32 = 30;

/// Signs a CRL with number `db.crl_number` listing every revoked certificate of `db`.
pub fn sign(ca: &Ca, db: &Database, days: u32) -> Result<String, String> {
    let now = SystemTime::now();
    let revoked_certs = db
        .certs
        .iter()
        .filter_map(|cert| match cert.status {
            Status::Revoked { at, reason } => Some(revoked_entry(&cert.serial, at, reason)),
            _ => None,
        })
        .collect::<Result<Vec<_>, String>>()?;
    let params = CertificateRevocationListParams {
        this_update: OffsetDateTime::from(now),
        next_update: OffsetDateTime::from(now + Duration::from_secs(86_400) * days),
        crl_number: SerialNumber::from_slice(&db.crl_number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(ca.issuer())
        .map_err(|e| format!("cannot sign the CRL: {e}"))?;
    crl.pem().map_err(|e| format!("cannot encode the CRL: {e}"))
}

/// Takes the next CRL number, records it in the database, then writes the CRL. The database
/// goes first: if the CRL cannot be written, the next `ca crl` writes it from the database,
/// whereas a CRL ahead of its database would lose a revocation at the next write.
pub fn publish(dir: &Path, ca: &Ca, db: &mut Database, days: u32) -> Result<u64, String> {
    db.crl_number += 1;
    let pem = sign(ca, db, days)?;
    db.save(dir)?;
    replace_atomically(&dir.join(CRL_FILE), pem.as_bytes(), Access::Public).map_err(|e| {
        format!(
            "{e}; the database is updated, run `dockgate ca crl {}` to write the CRL",
            dir.display()
        )
    })?;
    Ok(db.crl_number)
}

fn revoked_entry(
    serial: &str,
    at: SystemTime,
    reason: Reason,
) -> Result<RevokedCertParams, String> {
    let bytes = (0..serial.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(serial.get(i..i + 2).unwrap_or("x"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| format!("serial {serial} in the database is not whole hex bytes"))?;
    Ok(RevokedCertParams {
        serial_number: SerialNumber::from_slice(&bytes),
        revocation_time: OffsetDateTime::from(at),
        // RFC 5280 5.3.1: the reason code extension should be absent rather than unspecified.
        reason_code: rcgen_reason(reason),
        invalidity_date: None,
    })
}

fn rcgen_reason(reason: Reason) -> Option<RevocationReason> {
    Some(match reason {
        Reason::Unspecified => return None,
        Reason::KeyCompromise => RevocationReason::KeyCompromise,
        Reason::CaCompromise => RevocationReason::CaCompromise,
        Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
        Reason::Superseded => RevocationReason::Superseded,
        Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
        Reason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
    })
}
