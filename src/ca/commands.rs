//! What each `dockgate ca` subcommand does, in order: check everything that can be checked,
//! make everything in memory, then write. Commands that change an existing CA hold
//! `DIR/ca.lock` and record a change in the database before writing the files derived from it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::certs::{
    Ca, ClientProfile, Issued, ServerNames, CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY,
};
use super::cli::{InitArgs, IssueArgs, RevokeArgs};
use super::crl::{self, CRL_FILE, DEFAULT_CRL_DAYS};
use super::db::{format_time, Database, Kind, Record, Status, DB_FILE};
use super::export;
use super::files::{
    create_new, create_private_dir, create_private_dir_all, read_text, replace_atomically, Access,
    DirLock,
};

const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// The files `init` writes, in the order it writes them.
const CA_FILES: [&str; 6] = [CA_KEY, CA_CERT, SERVER_KEY, SERVER_CERT, CRL_FILE, DB_FILE];

pub fn init(args: InitArgs) -> Result<(), String> {
    if let Some(existing) = CA_FILES.iter().find(|f| args.dir.join(f).exists()) {
        return Err(format!(
            "{} already holds a CA ({existing} exists); nothing was changed",
            args.dir.display()
        ));
    }
    if args.dir.exists() && !args.dir.is_dir() {
        return Err(format!("{} is not a directory", args.dir.display()));
    }
    let contents = new_ca_files(&args)?;
    write_all_or_nothing(&args.dir, &contents)?;
    print_init_summary(&args);
    Ok(())
}

/// Everything `init` writes, made in memory: (file name, contents, who may read it).
fn new_ca_files(args: &InitArgs) -> Result<Vec<(&'static str, String, Access)>, String> {
    let (ca, ca_key) = Ca::create(&args.ca_name, args.days_ca)?;
    let names = ServerNames {
        dns: args.server_names.clone(),
        ips: args.server_ips.clone(),
    };
    let server = ca.issue_server(&names, args.days_server)?;
    let mut db = Database::new();
    db.certs
        .push(record(&server, Kind::Server, &args.server_names[0]));
    db.crl_number = 1;
    let crl = crl::sign(&ca, &db, DEFAULT_CRL_DAYS)?;
    Ok(vec![
        (CA_KEY, ca_key, Access::OwnerOnly),
        (CA_CERT, ca.cert_pem.clone(), Access::Public),
        (SERVER_KEY, server.key_pem, Access::OwnerOnly),
        (SERVER_CERT, server.cert_pem, Access::Public),
        (CRL_FILE, crl, Access::Public),
        (DB_FILE, db.render(), Access::Public),
    ])
}

/// Creates `dir` if needed and every file in it, none of which may exist; on a failure removes
/// what this run created, so a CA is either complete or absent.
fn write_all_or_nothing(dir: &Path, contents: &[(&str, String, Access)]) -> Result<(), String> {
    let created_dir = !dir.exists();
    if created_dir {
        create_private_dir_all(dir)?;
    }
    let mut written = Vec::new();
    for (file, text, access) in contents {
        let path = dir.join(file);
        if let Err(e) = create_new(&path, text.as_bytes(), *access) {
            written.iter().for_each(|p| drop(std::fs::remove_file(p)));
            if created_dir {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(format!("{e}; nothing was kept"));
        }
        written.push(path);
    }
    Ok(())
}

fn print_init_summary(args: &InitArgs) {
    let dir = absolute(&args.dir);
    let ips: Vec<String> = args.server_ips.iter().map(IpAddr::to_string).collect();
    let next_update = SystemTime::now() + DAY * DEFAULT_CRL_DAYS;
    println!(
        "Created a CA in {}: {CA_CERT} (\"CN={}\", {} days), {CA_KEY} (0600, keep it here), {SERVER_CERT} and {SERVER_KEY} for {} ({} days), {CRL_FILE} (number 1, nextUpdate {}), {DB_FILE}.",
        dir.display(),
        args.ca_name,
        args.days_ca,
        [args.server_names.clone(), ips].concat().join(", "),
        args.days_server,
        format_time(next_update),
    );
    println!("Serve with:");
    println!("{}", serve_command(&dir));
    println!("Then issue a client certificate (re-sign the CRL daily with `dockgate ca crl`):");
    println!(
        "dockgate ca issue {} NAME --context {}:2376",
        quote(&dir.to_string_lossy()),
        args.server_names[0]
    );
}

/// The gate's command line for the files of `dir` (add --listen and --upstream as needed).
fn serve_command(dir: &Path) -> String {
    let file = |name: &str| quote(&dir.join(name).to_string_lossy());
    format!(
        "dockgate --tlscacert {} --tlscert {} --tlskey {} --crl {}",
        file(CA_CERT),
        file(SERVER_CERT),
        file(SERVER_KEY),
        file(CRL_FILE)
    )
}

pub fn issue(args: IssueArgs) -> Result<(), String> {
    require_ca_dir(&args.dir)?;
    let outputs = IssueOutputs::new(&args)?;
    let password = args
        .pfx_password_file
        .as_deref()
        .map(read_password)
        .transpose()?;

    let _lock = DirLock::acquire(&args.dir)?;
    let mut db = Database::load(&args.dir)?;
    let ca = Ca::load(&args.dir)?;
    let profile = ClientProfile {
        organizational_units: args.organizational_units.clone(),
        san_uris: args.san_uris.clone(),
    };
    let issued = ca.issue_client(&args.name, &profile, args.days)?;
    let context = args
        .context
        .as_deref()
        .map(|host_port| export::context_archive(&args.name, host_port, &ca.cert_pem, &issued))
        .transpose()?;
    let pfx = password
        .as_deref()
        .map(|password| export::pfx(&args.name, &issued, &ca.cert_der, password))
        .transpose()?;
    let earlier: Vec<String> = db
        .clients_named(&args.name)
        .filter(|c| c.status == Status::Valid && c.not_after > SystemTime::now())
        .map(|c| c.serial.clone())
        .collect();

    // The folder first (a wrong --out fails here, before anything changed), then the database
    // (a certificate that exists is always one that can be revoked), then the files.
    create_private_dir(&outputs.folder)?;
    db.certs.push(record(&issued, Kind::Client, &args.name));
    if let Err(e) = db.save(&args.dir) {
        let _ = std::fs::remove_dir(&outputs.folder);
        return Err(e);
    }
    export::write_cert_files(&outputs.folder, &ca.cert_pem, &issued)?;
    for (path, bytes) in [(&outputs.context, &context), (&outputs.pfx, &pfx)] {
        if let (Some(path), Some(bytes)) = (path, bytes) {
            create_new(path, bytes, Access::OwnerOnly)?;
        }
    }
    print_issue_summary(&args, &outputs, &issued, &earlier);
    Ok(())
}

/// Where `issue` writes: the folder, and `PATH.dockercontext` / `PATH.pfx` when asked for.
struct IssueOutputs {
    folder: PathBuf,
    context: Option<PathBuf>,
    pfx: Option<PathBuf>,
}

impl IssueOutputs {
    /// The paths for `args`, none of which may exist (nothing is ever overwritten).
    fn new(args: &IssueArgs) -> Result<IssueOutputs, String> {
        let outputs = IssueOutputs {
            folder: args.out.clone(),
            context: args
                .context
                .as_ref()
                .map(|_| with_suffix(&args.out, ".dockercontext")),
            pfx: args
                .pfx_password_file
                .as_ref()
                .map(|_| with_suffix(&args.out, ".pfx")),
        };
        let all = std::iter::once(&outputs.folder)
            .chain(&outputs.context)
            .chain(&outputs.pfx);
        for path in all {
            if path.exists() || path.is_symlink() {
                return Err(format!(
                    "{} already exists; nothing was changed",
                    path.display()
                ));
            }
        }
        Ok(outputs)
    }
}

fn print_issue_summary(
    args: &IssueArgs,
    outputs: &IssueOutputs,
    issued: &Issued,
    earlier: &[String],
) {
    println!(
        "Issued {} to \"{}\": serial {}, clientAuth, valid until {}.",
        args.name,
        issued.subject,
        issued.serial,
        format_time(issued.not_after)
    );
    println!(
        "{}: ca.pem, cert.pem, key.pem (0600); use DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={}",
        outputs.folder.display(),
        absolute(&outputs.folder).display()
    );
    if let (Some(path), Some(host_port)) = (&outputs.context, &args.context) {
        println!(
            "{} (0600): docker context import {} {} && docker --context {} ps   (gate at {host_port})",
            path.display(),
            args.name,
            path.display(),
            args.name
        );
    }
    if let Some(path) = &outputs.pfx {
        println!(
            "{} (0600): PKCS#12 with the certificate, the CA and the key",
            path.display()
        );
    }
    if !earlier.is_empty() {
        println!(
            "Note: {} still has valid certificate(s) {}; revoke them with `dockgate ca revoke DIR SERIAL` if this one replaces them.",
            args.name,
            earlier.join(", ")
        );
    }
}

pub fn revoke(args: RevokeArgs) -> Result<(), String> {
    require_ca_dir(&args.dir)?;
    let _lock = DirLock::acquire(&args.dir)?;
    let mut db = Database::load(&args.dir)?;
    let ca = Ca::load(&args.dir)?;
    let targets = revocation_targets(&db, &args.target, &args.dir)?;
    let now = SystemTime::now();
    for &index in &targets {
        db.certs[index].status = Status::Revoked {
            at: now,
            reason: args.reason,
        };
    }
    let number = crl::publish(&args.dir, &ca, &mut db, DEFAULT_CRL_DAYS)?;
    for &index in &targets {
        let cert = &db.certs[index];
        println!(
            "Revoked {} (serial {}, {}, reason {}).",
            cert.name,
            cert.serial,
            cert.subject,
            args.reason.name()
        );
    }
    print_crl_summary(&args.dir, &db, number, DEFAULT_CRL_DAYS);
    Ok(())
}

/// The database rows `target` (a serial or a client name) designates that are not revoked yet.
fn revocation_targets(db: &Database, target: &str, dir: &Path) -> Result<Vec<usize>, String> {
    let serial = target.replace(':', "").to_ascii_lowercase();
    let matches: Vec<usize> = match db.certs.iter().position(|c| c.serial == serial) {
        Some(index) => vec![index],
        None => (0..db.certs.len())
            .filter(|&i| db.certs[i].kind == Kind::Client && db.certs[i].name == target)
            .collect(),
    };
    if matches.is_empty() {
        return Err(format!(
            "no certificate named or numbered {target:?} in {} (see dockgate ca list); nothing was changed",
            dir.join(DB_FILE).display()
        ));
    }
    let open: Vec<usize> = matches
        .iter()
        .copied()
        .filter(|&i| !matches!(db.certs[i].status, Status::Revoked { .. }))
        .collect();
    if open.is_empty() {
        let first = &db.certs[matches[0]];
        let Status::Revoked { at, reason } = first.status else {
            unreachable!("filtered above")
        };
        return Err(format!(
            "{target} is already revoked (serial {}, {}, {}); nothing was changed",
            first.serial,
            format_time(at),
            reason.name()
        ));
    }
    Ok(open)
}

pub fn crl(dir: &Path, days: u32) -> Result<(), String> {
    require_ca_dir(dir)?;
    let _lock = DirLock::acquire(dir)?;
    let mut db = Database::load(dir)?;
    let ca = Ca::load(dir)?;
    let number = crl::publish(dir, &ca, &mut db, days)?;
    print_crl_summary(dir, &db, number, days);
    Ok(())
}

fn print_crl_summary(dir: &Path, db: &Database, number: u64, days: u32) {
    let revoked = db
        .certs
        .iter()
        .filter(|c| matches!(c.status, Status::Revoked { .. }))
        .count();
    println!(
        "Wrote {}: CRL number {number}, {revoked} revoked, nextUpdate {}.",
        dir.join(CRL_FILE).display(),
        format_time(SystemTime::now() + DAY * days)
    );
}

pub fn list(dir: &Path) -> Result<(), String> {
    require_ca_dir(dir)?;
    let db = Database::load(dir)?;
    let now = SystemTime::now();
    let mut rows = vec![[
        "SERIAL".to_string(),
        "KIND".to_string(),
        "NAME".to_string(),
        "STATUS".to_string(),
        "EXPIRES".to_string(),
        "SUBJECT".to_string(),
    ]];
    for cert in &db.certs {
        let status = match &cert.status {
            Status::Revoked { at, reason } => {
                format!("revoked {} {}", format_time(*at), reason.name())
            }
            Status::Replaced => "replaced".to_string(),
            Status::Valid if cert.not_after <= now => "expired".to_string(),
            Status::Valid => "valid".to_string(),
        };
        let kind = match cert.kind {
            Kind::Server => "server",
            Kind::Client => "client",
        };
        rows.push([
            cert.serial.clone(),
            kind.to_string(),
            cert.name.clone(),
            status,
            format_time(cert.not_after),
            cert.subject.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|col| rows.iter().map(|r| r[col].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
}

pub fn renew_server(dir: &Path, days: Option<u32>) -> Result<(), String> {
    require_ca_dir(dir)?;
    let _lock = DirLock::acquire(dir)?;
    let mut db = Database::load(dir)?;
    let ca = Ca::load(dir)?;
    let current = CurrentServer::read(&dir.join(SERVER_CERT))?;
    let issued = ca.issue_server(&current.names, days.unwrap_or(current.days))?;

    for cert in db.certs.iter_mut() {
        if cert.kind == Kind::Server && cert.status == Status::Valid {
            cert.status = Status::Replaced;
        }
    }
    db.certs
        .push(record(&issued, Kind::Server, &current.names.dns[0]));
    db.save(dir)?;
    // Key first, then certificate: a gate that looks in between sees a key that does not match
    // its certificate, refuses that reload (keeping the old pair) and takes the new pair when
    // the certificate arrives, microseconds later.
    replace_atomically(
        &dir.join(SERVER_KEY),
        issued.key_pem.as_bytes(),
        Access::OwnerOnly,
    )?;
    replace_atomically(
        &dir.join(SERVER_CERT),
        issued.cert_pem.as_bytes(),
        Access::Public,
    )?;
    println!(
        "Renewed {}: serial {} for {}, valid until {}; a running gate serves it within its --reload-interval.",
        dir.join(SERVER_CERT).display(),
        issued.serial,
        current.describe(),
        format_time(issued.not_after)
    );
    Ok(())
}

/// The names and lifetime of the server certificate being renewed.
struct CurrentServer {
    names: ServerNames,
    days: u32,
}

impl CurrentServer {
    fn read(path: &Path) -> Result<CurrentServer, String> {
        use rustls::pki_types::pem::PemObject;
        use x509_parser::extensions::GeneralName;
        let pem = read_text(path)?;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("{}: malformed certificate: {e}", path.display()))?;
        let mut names = ServerNames {
            dns: Vec::new(),
            ips: Vec::new(),
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.dns.push(dns.to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(octets) = <[u8; 4]>::try_from(*bytes) {
                            names.ips.push(IpAddr::from(octets));
                        } else if let Ok(octets) = <[u8; 16]>::try_from(*bytes) {
                            names.ips.push(IpAddr::from(octets));
                        }
                    }
                    _ => {}
                }
            }
        }
        if names.dns.is_empty() {
            return Err(format!(
                "{}: has no DNS name to renew it for",
                path.display()
            ));
        }
        let validity = cert.validity();
        let seconds = (validity.not_after.timestamp() - validity.not_before.timestamp()).max(0);
        let days = u32::try_from((seconds + 43_200) / 86_400)
            .unwrap_or(397)
            .max(1);
        Ok(CurrentServer { names, days })
    }

    fn describe(&self) -> String {
        let ips = self.names.ips.iter().map(IpAddr::to_string);
        self.names
            .dns
            .iter()
            .cloned()
            .chain(ips)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn record(issued: &Issued, kind: Kind, name: &str) -> Record {
    Record {
        serial: issued.serial.clone(),
        kind,
        not_after: issued.not_after,
        status: Status::Valid,
        name: name.to_string(),
        subject: issued.subject.clone(),
    }
}

/// `dir` must exist and hold a CA made by `ca init`.
fn require_ca_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!(
            "{} does not exist or is not a directory (create a CA with: dockgate ca init {} --server-name NAME)",
            dir.display(),
            dir.display()
        ));
    }
    if !dir.join(DB_FILE).exists() {
        return Err(format!(
            "{} holds no dockgate CA (no {DB_FILE}; create one with dockgate ca init)",
            dir.display()
        ));
    }
    Ok(())
}

/// The PFX password: the whole file, refused with a trailing newline (as the gate's
/// `--tlspfx-password-file` does, so one file serves both).
fn read_password(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("--password-file {}: cannot read: {e}", path.display()))?;
    if bytes.ends_with(b"\n") {
        return Err(format!(
            "--password-file {}: ends with a newline, but the whole file is the password; write it without one (printf '%s' \"$PASSWORD\" > FILE)",
            path.display()
        ));
    }
    let password = String::from_utf8(bytes).map_err(|_| {
        format!(
            "--password-file {}: the password is not UTF-8 text",
            path.display()
        )
    })?;
    if password.is_empty() {
        return Err(format!("--password-file {}: is empty", path.display()));
    }
    Ok(password)
}

/// `PATH` + `suffix` (`alice` -> `alice.dockercontext`), also for names with dots.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Quotes a path for a POSIX shell when it needs it.
fn quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
