//! `dockgate policy check FILE` and `dockgate policy explain FILE --cn NAME ... METHOD TARGET
//! [< body.json]`: operators validate a policy and test decisions before rolling it out. Both
//! run the same engine the gate runs.

use std::ffi::OsString;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use super::container::HOST_FIELDS_WITHOUT_SWITCH;
use super::decide::{Outcome, Request};
use super::groups::{group_of, Group};
use super::identity::CertIdentity;
use super::{file, Policy, Role};
use crate::api::{self, ApiRequest};
use crate::tenancy::create::label_create;
use crate::tenancy::plan::{apply, needs_body, plan, Forward, Step};
use crate::tenancy::Refusal;
use crate::upstream::Upstream;

pub const HELP: &str = "\
dockgate policy: check and try out an access policy file (see README, \"Access policy\")

USAGE:
    dockgate policy check FILE
        Validates FILE and prints each role's effective permissions. Exit 2 when invalid.

    dockgate policy explain FILE [IDENTITY] [--content-type TYPE] METHOD TARGET [< BODY]
        Prints the decision for one request and the rule that made it. The body is read from
        stdin when stdin is not a terminal. Exit 0 when allowed, 1 when denied or refused.
        IDENTITY (each repeatable): --cn NAME, --ou OU, --o ORG, --san-dns NAME,
        --san-uri URI, --san-email ADDRESS, --serial HEX, --issuer-cn NAME;
        or --cert CLIENT.pem to take them from a client certificate.
        --content-type TYPE   Content-Type of the body. Default: application/json when a body
                              is given, none otherwise.
        --upstream URL        For a tenant (a role with own = [...]): resolve the objects the
                              request names through this Docker endpoint (unix:///var/run/docker.sock)
                              and print what the gate would forward (target and body).
                              Without it, references are not resolved.
        Example: dockgate policy explain policy.toml --ou ci POST /v1.41/containers/create < run.json
";

/// A failed command: exit code and message.
pub type Failure = (u8, String);

/// Runs `dockgate policy ...` with the arguments after `policy`.
pub fn run(args: Vec<OsString>) -> Result<(), Failure> {
    let mut args = pico_args::Arguments::from_vec(args);
    if args.contains(["-h", "--help"]) {
        print!("{HELP}");
        return Ok(());
    }
    let sub: Option<String> = args.subcommand().map_err(usage)?;
    match sub.as_deref() {
        Some("check") => check(args),
        Some("explain") => explain(args),
        Some(other) => Err(usage(format!("unknown policy command {other:?}"))),
        None => Err(usage("missing policy command (check or explain)")),
    }
}

fn usage(e: impl ToString) -> Failure {
    (
        2,
        format!("policy: {} (see dockgate policy --help)", e.to_string()),
    )
}

fn free_args(
    args: pico_args::Arguments,
    expected: usize,
    what: &str,
) -> Result<Vec<String>, Failure> {
    let rest = args.finish();
    if let Some(flag) = rest.iter().find(|a| a.to_string_lossy().starts_with("--")) {
        return Err(usage(format!("unknown flag {}", flag.to_string_lossy())));
    }
    if rest.len() != expected {
        return Err(usage(format!("expected {what}")));
    }
    Ok(rest
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect())
}

fn load(path: &str) -> Result<Policy, Failure> {
    file::load(&PathBuf::from(path)).map_err(|e| (2, e.to_string()))
}

fn check(args: pico_args::Arguments) -> Result<(), Failure> {
    let [path] = <[String; 1]>::try_from(free_args(args, 1, "FILE")?).map_err(|_| usage("FILE"))?;
    let policy = load(&path)?;
    print!("{}", describe(&policy));
    Ok(())
}

/// The effective permissions of every role, as `policy check` prints them.
pub fn describe(policy: &Policy) -> String {
    let mut out = format!(
        "{}: valid\nmode = {:?}\ndefault_role = {:?}\n",
        policy.source.display(),
        policy.mode.name(),
        policy.default_role
    );
    out.push_str("identities (first match wins):\n");
    for rule in &policy.identities {
        let owner = match &rule.owner {
            Some(owner) => format!(", owner {owner}"),
            None => String::new(),
        };
        out.push_str(&format!(
            "  #{} {} -> role {}{owner}\n",
            rule.index,
            rule.describe(),
            rule.role
        ));
    }
    for role in policy.roles.values() {
        out.push_str(&describe_role(role));
    }
    out
}

fn describe_role(role: &Role) -> String {
    let mut out = format!("\nrole {}:\n", role.name);
    if role.allows_all() {
        out.push_str(
            "  allow: all (every endpoint, including unknown ones; bodies not inspected)\n",
        );
    } else {
        out.push_str("  allow:\n");
        for group in &role.allow {
            out.push_str(&format!("    {}: {}\n", group.name(), group.endpoints()));
        }
        if role.allow.is_empty() {
            out.push_str("    (nothing)\n");
        }
    }
    for rule in &role.deny {
        out.push_str(&format!("  deny: {} {}\n", rule.method, rule.path));
    }
    if !role.own.is_empty() {
        let kinds: Vec<&str> = role.own.iter().map(|k| k.name()).collect();
        out.push_str(&format!(
            "  own: {} (label {}=<owner>: the identity's owner, default its CN)\n",
            kinds.join(", "),
            crate::tenancy::OWNER_LABEL
        ));
    }
    if role.allows_all() {
        return out;
    }
    if role.allow.contains(&Group::Containers) || role.allow.contains(&Group::Exec) {
        let l = &role.limits;
        out.push_str(&format!(
            "  containers: privileged = {}, host_namespaces = {}, devices = {}, cap_add = {:?}, security_opt = {}, bind_mounts = {:?}, run_as_root = {}, images = {:?}\n",
            l.privileged, l.host_namespaces, l.devices, l.cap_add, l.security_opt, l.bind_mounts, l.run_as_root, l.images
        ));
        let fields: Vec<&str> = HOST_FIELDS_WITHOUT_SWITCH.iter().map(|(f, _)| *f).collect();
        out.push_str(&format!(
            "  always denied (only \"all\" roles may): {}\n",
            fields.join(", ")
        ));
    }
    if role.allow.contains(&Group::Build) {
        let buildkit = if role.allows(Group::Buildkit) {
            "allowed"
        } else {
            "denied"
        };
        out.push_str(&format!(
            "  build: networkmode default/none{}, remote {}, form bodies refused, BuildKit (version=2) {buildkit}\n",
            if role.limits.host_namespaces { " or any (host_namespaces)" } else { " only" },
            if role.limits.build_remote { "allowed (build_remote)" } else { "denied" }
        ));
    }
    out
}

fn explain(mut args: pico_args::Arguments) -> Result<(), Failure> {
    let mut values = |flag: &'static str| -> Result<Vec<String>, Failure> {
        args.values_from_str(flag).map_err(usage)
    };
    let who = CertIdentity {
        cn: values("--cn")?,
        ou: values("--ou")?,
        o: values("--o")?,
        san_dns: values("--san-dns")?,
        san_uri: values("--san-uri")?,
        san_email: values("--san-email")?,
        serial: values("--serial")?
            .first()
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default(),
        issuer_cn: values("--issuer-cn")?,
    };
    let cert: Option<PathBuf> = args.opt_value_from_str("--cert").map_err(usage)?;
    let content_type: Option<String> = args.opt_value_from_str("--content-type").map_err(usage)?;
    let upstream: Option<String> = args.opt_value_from_str("--upstream").map_err(usage)?;
    let upstream = upstream
        .map(|url| Upstream::parse(&url).map_err(usage))
        .transpose()?;
    let who = match cert {
        Some(cert) => identity_from_pem(&cert)?,
        None => who,
    };
    let [path, method, target] = <[String; 3]>::try_from(free_args(args, 3, "FILE METHOD TARGET")?)
        .map_err(|_| usage("FILE METHOD TARGET"))?;
    let policy = load(&path)?;
    let body = read_body()?;
    let content_type =
        content_type.or_else(|| (!body.is_empty()).then(|| "application/json".to_string()));
    let headers: Vec<(&str, &[u8])> = content_type
        .iter()
        .map(|ct| ("Content-Type", ct.as_bytes()))
        .collect();
    let classified = api::classify(&method, &target);
    let decision = policy.decide(
        &who,
        &Request {
            method: &method,
            target: &classified,
            headers: &headers,
            body: &body,
        },
    );

    let verdict = match (decision.outcome, decision.status()) {
        (Outcome::Allowed, _) => "allowed".to_string(),
        (Outcome::Denied, Some(status)) => format!("denied ({status})"),
        (_, status) => format!("refused ({})", status.unwrap_or(400)),
    };
    println!("decision: {verdict}");
    let chosen = match policy.identity_rule_for(&who) {
        Some(rule) => format!("[[identity]] #{} ({})", rule.index, rule.describe()),
        None => "no [[identity]] matches: default_role".to_string(),
    };
    println!("role: {} (from {chosen})", decision.role);
    if let Ok(request) = &classified {
        let group = group_of(&request.endpoint).map_or("none (only \"all\")", Group::name);
        let version = request
            .version
            .as_deref()
            .map(|v| format!(", API version {v}"))
            .unwrap_or_default();
        println!(
            "endpoint: {:?}, path {}{version}, group {group}{}",
            request.endpoint,
            request.path,
            if request.endpoint.is_attach_or_exec_start() {
                ", becomes a raw stream"
            } else {
                ""
            }
        );
    }
    let inspected = classified
        .as_ref()
        .is_ok_and(|request| policy.needs_body(&who, request));
    println!("body inspected: {}", if inspected { "yes" } else { "no" });
    println!("rule: {}", decision.rule);
    if let Some(field) = &decision.field {
        println!("field: {field}");
    }
    println!("message: {}", decision.message);
    if decision.allowed() {
        if let Ok(request) = &classified {
            let tenancy =
                explain_tenancy(&policy, &who, request, &headers, &body, upstream.as_ref());
            return tenancy
                .map_err(|refusal| (1, format!("policy explain: refused ({})", refusal.status)));
        }
        return Ok(());
    }
    if policy.mode == super::Mode::Audit && decision.outcome == Outcome::Denied {
        println!("mode: audit (the gate would log \"would deny\" and forward)");
    }
    Err((1, format!("policy explain: {verdict}")))
}

/// The tenancy part of an allowed request: the owner, the step, and what would be forwarded.
fn explain_tenancy(
    policy: &Policy,
    who: &CertIdentity,
    request: &ApiRequest,
    headers: &[(&str, &[u8])],
    body: &[u8],
    upstream: Option<&Upstream>,
) -> Result<(), Refusal> {
    let refused = |refusal: Refusal| {
        println!("tenancy: refused ({}): {}", refusal.status, refusal.reason);
        println!("answer: {} {}", refusal.status, refusal.body().trim_end());
        refusal
    };
    let tenant = match policy.tenant_for(who) {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return Ok(()),
        Err(refusal) => return Err(refused(refusal)),
    };
    let owns: Vec<&str> = tenant.owns.iter().map(|k| k.name()).collect();
    println!("owner: {} (owns {})", tenant.owner, owns.join(", "));
    let step = plan(&tenant, request);
    println!("tenancy: {}", describe_step(&step));
    if needs_body(&tenant, request) {
        println!("tenancy reads the body: yes");
    }
    match (upstream, &step) {
        (Some(upstream), _) => {
            print_forward(apply(&tenant, request, headers, body, upstream).map_err(refused)?)
        }
        (None, Step::Resolve(..) | Step::ResolveQuery(..) | Step::Connect(_)) => {
            println!("forward: (not resolved: give --upstream URL)");
            Ok(())
        }
        (None, Step::Label(kind)) => {
            let labelled = label_create(*kind, &tenant.owner, headers, body).map_err(refused)?;
            println!("forward body: {}", String::from_utf8_lossy(&labelled));
            println!("references in the body: not checked (give --upstream URL)");
            Ok(())
        }
        (None, _) => {
            // Filters and refusals never ask dockerd: this endpoint is never connected to.
            let offline = Upstream::Tcp("offline:0".into());
            print_forward(apply(&tenant, request, headers, body, &offline).map_err(refused)?)
        }
    }
}

fn describe_step(step: &Step) -> String {
    match step {
        Step::Forward => "nothing owned is named: forwarded unchanged".into(),
        Step::Label(kind) => format!(
            "create of owned {}: the gate sets the owner label",
            kind.name()
        ),
        Step::Resolve(kind, reference) => {
            format!("resolve {kind:?} {reference:?} and check its owner")
        }
        Step::Filter => "the owner label is merged into filters".into(),
        Step::ResolveQuery(kind, param) => {
            format!("resolve the {kind:?} in the query parameter {param} and check its owner")
        }
        Step::Connect(network) => format!(
            "resolve the network {network:?} and the body's container and check their owner"
        ),
        Step::Refuse(refusal) => format!("refused: {}", refusal.message),
    }
}

fn print_forward(forward: Forward) -> Result<(), Refusal> {
    if let Some(resolved) = &forward.resolved {
        let container = resolved
            .container
            .as_ref()
            .map(|c| format!(" (container {c})"))
            .unwrap_or_default();
        println!(
            "resolved: {:?} {:?} -> {}{container}, owner {}",
            resolved.kind,
            resolved.reference,
            resolved.id,
            resolved.owner.as_deref().unwrap_or("none")
        );
    }
    if let Some(target) = &forward.target {
        println!("forward target: {target}");
    }
    if let Some(body) = &forward.body {
        println!("forward body: {}", String::from_utf8_lossy(body));
    }
    Ok(())
}

/// The identity of a client certificate file (PEM), for `--cert`.
fn identity_from_pem(path: &std::path::Path) -> Result<CertIdentity, Failure> {
    let bytes = std::fs::read(path).map_err(|e| (2, format!("--cert {}: {e}", path.display())))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).map_err(|e| {
        (
            2,
            format!("--cert {}: not a PEM certificate: {e}", path.display()),
        )
    })?;
    CertIdentity::from_der(&pem.contents).ok_or_else(|| {
        (
            2,
            format!("--cert {}: not an X.509 certificate", path.display()),
        )
    })
}

fn read_body() -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(body);
    }
    stdin.lock().read_to_end(&mut body).map_err(|e| {
        (
            2,
            format!("policy explain: reading the body from stdin: {e}"),
        )
    })?;
    Ok(body)
}
