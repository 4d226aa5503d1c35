//! The test PKI, generated once per test binary with rcgen and written as PEM files.
//!
//! ```text
//! root CA ──┬── server (serverAuth, IP:127.0.0.1, DNS:localhost)
//!           ├── alice (clientAuth)            good
//!           ├── mallory (clientAuth)          revoked in every root CRL
//!           ├── expired (clientAuth)          not_after in the past
//!           ├── serveronly (serverAuth only)  wrong key usage
//!           ├── carol (clientAuth)            good (a third root client for the reload tests)
//!           ├── team-a, team-b (clientAuth)   good (two tenants for the tenancy tests)
//!           ├── intermediate CA ── bob (clientAuth; cert.pem = bob + intermediate)
//!           └── expired intermediate CA ── dave (clientAuth; cert.pem = dave + intermediate)
//! other CA ──── stranger (clientAuth)         unknown issuer
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::util::run_dir;

/// Seconds since the epoch of "now + `days`".
fn epoch_secs_plus_days(days: i64) -> u64 {
    epoch_secs_plus(days * 86_400)
}

/// Seconds since the epoch of "now + `secs`".
fn epoch_secs_plus(secs: i64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now + secs) as u64
}

/// "Now + `days`" as rcgen's date type (the `time` crate is not a dependency of the tests).
macro_rules! days_from_now {
    ($days:expr) => {
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(epoch_secs_plus_days($days))
    };
}

// Explicit serials: first byte non-zero and < 0x80, so the logged hex is exactly these bytes.
pub const SERIAL_ALICE: &[u8] = &[0x1d, 0x2c, 0x01];
pub const SERIAL_MALLORY: &[u8] = &[0x3f, 0x2a, 0x02];
pub const SERIAL_EXPIRED: &[u8] = &[0x4e, 0x11, 0x03];
pub const SERIAL_SERVERONLY: &[u8] = &[0x5a, 0x22, 0x04];
pub const SERIAL_STRANGER: &[u8] = &[0x6b, 0x33, 0x05];
pub const SERIAL_BOB: &[u8] = &[0x7c, 0x44, 0x06];
pub const SERIAL_CAROL: &[u8] = &[0x2e, 0x5d, 0x0a];
pub const SERIAL_DAVE: &[u8] = &[0x3a, 0x6e, 0x0b];
pub const SERIAL_TEAM_A: &[u8] = &[0x4a, 0x7a, 0x0d];
pub const SERIAL_TEAM_B: &[u8] = &[0x4b, 0x7b, 0x0e];
/// The server certificate's serial (a renewed one gets another, see [`issue_server_cert`]).
pub const SERIAL_SERVER_CERT: &[u8] = SERIAL_SERVER;
const SERIAL_ROOT: &[u8] = &[0x01, 0x01];
const SERIAL_INTERMEDIATE: &[u8] = &[0x22, 0x22, 0x07];
const SERIAL_EXPIRED_INTERMEDIATE: &[u8] = &[0x23, 0x23, 0x0c];
const SERIAL_OTHER_CA: &[u8] = &[0x02, 0x02];
const SERIAL_SERVER: &[u8] = &[0x11, 0x11, 0x08];
/// Revoked by the intermediate CRL; no certificate has it (the CRL is just not empty).
const SERIAL_NOBODY: &[u8] = &[0x55, 0xaa, 0x09];

/// A client: its DOCKER_CERT_PATH dir (ca.pem, cert.pem, key.pem) and the same material in
/// DER for the raw rustls client.
pub struct Identity {
    pub name: &'static str,
    pub dir: PathBuf,
    pub chain_der: Vec<Vec<u8>>,
    pub key_der: Vec<u8>,
    /// How dockgate logs the subject: `CN=<name>`.
    pub subject: String,
    /// How dockgate logs the serial: lowercase hex, no colons.
    pub serial_hex: String,
}

pub struct Pki {
    /// Root CA certificate (PEM): `--tlscacert` and every client's `ca.pem`.
    pub root_ca: PathBuf,
    pub root_der: Vec<u8>,
    /// Root + intermediate CA certificates in one PEM file.
    pub root_and_intermediate_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Only the intermediate CA, without its root.
    pub intermediate_ca_only: PathBuf,
    /// Root + the expired intermediate CA (dave's issuer).
    pub root_and_expired_intermediate_ca: PathBuf,
    /// A CRL of the expired intermediate CA (revokes a serial nobody has).
    pub expired_intermediate_crl: PathBuf,
    /// Root CRL revoking mallory (PEM, and the same CRL in DER).
    pub root_crl: PathBuf,
    pub root_crl_der: PathBuf,
    /// Root CRL revoking mallory and the intermediate CA.
    pub root_crl_revoking_intermediate: PathBuf,
    /// Root CRL revoking mallory whose next_update is in the past.
    pub root_crl_expired: PathBuf,
    /// Intermediate CRL (revokes a serial nobody has).
    pub intermediate_crl: PathBuf,
    pub alice: Identity,
    pub mallory: Identity,
    pub expired: Identity,
    pub serveronly: Identity,
    pub stranger: Identity,
    pub bob: Identity,
    pub carol: Identity,
    /// Two tenants (CN team-a, team-b) of the root CA.
    pub team_a: Identity,
    pub team_b: Identity,
    /// Issued by the expired intermediate CA.
    pub dave: Identity,
    /// A DOCKER_CERT_PATH with only ca.pem.
    pub no_cert_dir: PathBuf,
    /// The root CA, to sign fresh CRLs and server certificates while a gate runs.
    pub root_issuer: CertifiedIssuer<'static, KeyPair>,
    /// The unrelated CA that issued stranger.
    pub other_issuer: CertifiedIssuer<'static, KeyPair>,
    /// The root CA's name with another key: what it signs claims to be from the root CA.
    pub forged_root_issuer: Issuer<'static, KeyPair>,
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| generate(&run_dir().join("pki")))
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str, serial: &[u8]) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.serial_number = Some(SerialNumber::from_slice(serial));
    p.not_before = days_from_now!(-2);
    p.not_after = days_from_now!(365);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.use_authority_key_identifier_extension = true;
    p
}

fn leaf_params(cn: &str, serial: &[u8], eku: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.serial_number = Some(SerialNumber::from_slice(serial));
    p.not_before = days_from_now!(-1);
    p.not_after = days_from_now!(30);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![eku];
    p.use_authority_key_identifier_extension = true;
    p
}

fn write(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs a CRL with `issuer` revoking `serials`, with thisUpdate an hour ago and nextUpdate
/// `next_update_in_secs` from now (negative: in the past).
pub fn sign_crl(
    issuer: &Issuer<'_, KeyPair>,
    number: u64,
    serials: &[&[u8]],
    next_update_in_secs: i64,
) -> rcgen::CertificateRevocationList {
    let issued = (-3600i64).min(next_update_in_secs - 3600);
    sign_crl_at(issuer, number, serials, issued, next_update_in_secs)
}

/// As `sign_crl`, with thisUpdate `this_update_in_secs` from now (negative: in the past).
pub fn sign_crl_at(
    issuer: &Issuer<'_, KeyPair>,
    number: u64,
    serials: &[&[u8]],
    this_update_in_secs: i64,
    next_update_in_secs: i64,
) -> rcgen::CertificateRevocationList {
    let at =
        |secs: i64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(epoch_secs_plus(secs));
    let issued = this_update_in_secs;
    CertificateRevocationListParams {
        this_update: at(issued),
        next_update: at(next_update_in_secs),
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: at(issued),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .expect("sign CRL")
}

/// A root CRL (PEM) revoking `serials`, valid for 30 days.
pub fn root_crl_pem(number: u64, serials: &[&[u8]]) -> String {
    sign_crl(&pki().root_issuer, number, serials, 30 * 86_400)
        .pem()
        .unwrap()
}

/// A new server certificate from the root CA with `serial` (same names and usages as the
/// original) and its key, both PEM.
pub fn issue_server_cert(serial: &[u8]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = server_params(serial)
        .signed_by(&key, &pki().root_issuer)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn server_params(serial: &[u8]) -> CertificateParams {
    let mut params = leaf_params(
        "dockgate test server",
        serial,
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    params.subject_alt_names = vec![
        SanType::IpAddress([127, 0, 0, 1].into()),
        SanType::DnsName("localhost".try_into().unwrap()),
    ];
    params
}

/// Lowercase hex, as dockgate logs serials.
pub fn serial_hex(bytes: &[u8]) -> String {
    to_hex(bytes)
}

/// Signs a CRL with `issuer` revoking `serials`; `expired` puts next_update in the past.
fn crl(
    issuer: &Issuer<'_, KeyPair>,
    number: u8,
    serials: &[&[u8]],
    expired: bool,
) -> rcgen::CertificateRevocationList {
    let (this_update, next_update) = if expired {
        (days_from_now!(-10), days_from_now!(-1))
    } else {
        (days_from_now!(-1), days_from_now!(30))
    };
    CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&[number]),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: days_from_now!(-1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .expect("sign CRL")
}

struct Ctx<'a> {
    dir: &'a Path,
    root_pem: String,
}

impl Ctx<'_> {
    /// Issues a client certificate and writes its DOCKER_CERT_PATH directory.
    fn client(
        &self,
        name: &'static str,
        params: CertificateParams,
        serial: &[u8],
        issuer: &Issuer<'_, KeyPair>,
        intermediate: Option<&CertifiedIssuer<'_, KeyPair>>,
    ) -> Identity {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).expect("sign client cert");
        let mut chain_der = vec![cert.der().to_vec()];
        let mut chain_pem = cert.pem();
        if let Some(ca) = intermediate {
            chain_der.push(ca.der().to_vec());
            chain_pem += &ca.pem();
        }
        let dir = self.dir.join("clients").join(name);
        write(&dir.join("ca.pem"), &self.root_pem);
        write(&dir.join("cert.pem"), chain_pem);
        write(&dir.join("key.pem"), key.serialize_pem());
        Identity {
            name,
            dir,
            chain_der,
            key_der: key.serialize_der(),
            subject: format!("CN={name}"),
            serial_hex: to_hex(serial),
        }
    }
}

fn generate(dir: &Path) -> Pki {
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};

    let root = CertifiedIssuer::self_signed(
        ca_params("dockgate test root CA", SERIAL_ROOT),
        KeyPair::generate().unwrap(),
    )
    .unwrap();
    let intermediate = CertifiedIssuer::signed_by(
        ca_params("dockgate test intermediate CA", SERIAL_INTERMEDIATE),
        KeyPair::generate().unwrap(),
        &root,
    )
    .unwrap();
    let mut expired_intermediate_params = ca_params(
        "dockgate test expired intermediate CA",
        SERIAL_EXPIRED_INTERMEDIATE,
    );
    expired_intermediate_params.not_before = days_from_now!(-60);
    expired_intermediate_params.not_after = days_from_now!(-1);
    let expired_intermediate = CertifiedIssuer::signed_by(
        expired_intermediate_params,
        KeyPair::generate().unwrap(),
        &root,
    )
    .unwrap();
    let other_ca = CertifiedIssuer::self_signed(
        ca_params("unrelated CA", SERIAL_OTHER_CA),
        KeyPair::generate().unwrap(),
    )
    .unwrap();

    let ctx = Ctx {
        dir,
        root_pem: root.pem(),
    };
    let root_ca = dir.join("ca.pem");
    write(&root_ca, root.pem());
    let root_and_intermediate_ca = dir.join("ca-bundle.pem");
    write(&root_and_intermediate_ca, root.pem() + &intermediate.pem());
    let intermediate_ca_only = dir.join("intermediate-ca.pem");
    write(&intermediate_ca_only, intermediate.pem());
    let root_and_expired_intermediate_ca = dir.join("ca-bundle-expired-intermediate.pem");
    write(
        &root_and_expired_intermediate_ca,
        root.pem() + &expired_intermediate.pem(),
    );

    let server_key = KeyPair::generate().unwrap();
    let server = server_params(SERIAL_SERVER)
        .signed_by(&server_key, &root)
        .unwrap();
    let server_cert = dir.join("server-cert.pem");
    let server_key_path = dir.join("server-key.pem");
    write(&server_cert, server.pem());
    write(&server_key_path, server_key.serialize_pem());

    let mut expired_params = leaf_params("expired", SERIAL_EXPIRED, ClientAuth);
    expired_params.not_before = days_from_now!(-30);
    expired_params.not_after = days_from_now!(-1);

    let alice = ctx.client(
        "alice",
        leaf_params("alice", SERIAL_ALICE, ClientAuth),
        SERIAL_ALICE,
        &root,
        None,
    );
    let mallory = ctx.client(
        "mallory",
        leaf_params("mallory", SERIAL_MALLORY, ClientAuth),
        SERIAL_MALLORY,
        &root,
        None,
    );
    let expired = ctx.client("expired", expired_params, SERIAL_EXPIRED, &root, None);
    let serveronly = ctx.client(
        "serveronly",
        leaf_params("serveronly", SERIAL_SERVERONLY, ServerAuth),
        SERIAL_SERVERONLY,
        &root,
        None,
    );
    let stranger = ctx.client(
        "stranger",
        leaf_params("stranger", SERIAL_STRANGER, ClientAuth),
        SERIAL_STRANGER,
        &other_ca,
        None,
    );
    let bob = ctx.client(
        "bob",
        leaf_params("bob", SERIAL_BOB, ClientAuth),
        SERIAL_BOB,
        &intermediate,
        Some(&intermediate),
    );
    let mut dave_params = leaf_params("dave", SERIAL_DAVE, ClientAuth);
    dave_params.not_before = days_from_now!(-30);
    let dave = ctx.client(
        "dave",
        dave_params,
        SERIAL_DAVE,
        &expired_intermediate,
        Some(&expired_intermediate),
    );
    let carol = ctx.client(
        "carol",
        leaf_params("carol", SERIAL_CAROL, ClientAuth),
        SERIAL_CAROL,
        &root,
        None,
    );

    let team_a = ctx.client(
        "team-a",
        leaf_params("team-a", SERIAL_TEAM_A, ClientAuth),
        SERIAL_TEAM_A,
        &root,
        None,
    );
    let team_b = ctx.client(
        "team-b",
        leaf_params("team-b", SERIAL_TEAM_B, ClientAuth),
        SERIAL_TEAM_B,
        &root,
        None,
    );

    let no_cert_dir = dir.join("clients").join("nocert");
    write(&no_cert_dir.join("ca.pem"), root.pem());

    let crl_file = |name: &str, crl: rcgen::CertificateRevocationList| {
        let path = dir.join(name);
        write(&path, crl.pem().unwrap());
        path
    };
    let root_crl_signed = crl(&root, 1, &[SERIAL_MALLORY], false);
    let root_crl_der = dir.join("root-crl.der");
    write(&root_crl_der, root_crl_signed.der());
    Pki {
        root_ca,
        root_der: root.der().to_vec(),
        root_and_intermediate_ca,
        intermediate_ca_only,
        root_and_expired_intermediate_ca,
        expired_intermediate_crl: crl_file(
            "expired-intermediate-crl.pem",
            crl(&expired_intermediate, 1, &[SERIAL_NOBODY], false),
        ),
        server_cert,
        server_key: server_key_path,
        root_crl: crl_file("root-crl.pem", root_crl_signed),
        root_crl_der,
        root_crl_revoking_intermediate: crl_file(
            "root-crl-intermediate-revoked.pem",
            crl(&root, 2, &[SERIAL_MALLORY, SERIAL_INTERMEDIATE], false),
        ),
        root_crl_expired: crl_file(
            "root-crl-expired.pem",
            crl(&root, 3, &[SERIAL_MALLORY], true),
        ),
        intermediate_crl: crl_file(
            "intermediate-crl.pem",
            crl(&intermediate, 1, &[SERIAL_NOBODY], false),
        ),
        alice,
        mallory,
        expired,
        serveronly,
        stranger,
        bob,
        carol,
        team_a,
        team_b,
        dave,
        no_cert_dir,
        forged_root_issuer: Issuer::new(
            ca_params("dockgate test root CA", SERIAL_ROOT),
            KeyPair::generate().unwrap(),
        ),
        root_issuer: root,
        other_issuer: other_ca,
    }
}

/// The server certificate and key exported with openssl as a .pfx in `dir`, protected by the
/// password written (without a newline) to `dir/password`, which is returned alongside.
/// `legacy`: the old 3DES/RC2 encoding instead of AES.
pub fn export_server_pfx(dir: &Path, legacy: bool) -> (PathBuf, PathBuf) {
    let pki = pki();
    let password_file = dir.join("password");
    write(&password_file, PFX_PASSWORD);
    let pfx = dir.join(if legacy { "legacy.pfx" } else { "server.pfx" });
    let mut openssl = std::process::Command::new("openssl");
    openssl.args(["pkcs12", "-export"]);
    if legacy {
        openssl.arg("-legacy");
    }
    let status = openssl
        .arg("-in")
        .arg(&pki.server_cert)
        .arg("-inkey")
        .arg(&pki.server_key)
        .arg("-out")
        .arg(&pfx)
        .arg("-passout")
        .arg(format!("file:{}", password_file.display()))
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl pkcs12 -export failed");
    (pfx, password_file)
}

/// The password of `export_server_pfx` files.
pub const PFX_PASSWORD: &str = "pfx secret";
