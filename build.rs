//! Puts the git commit the binary is built from into `DOCKGATE_COMMIT`, for `--version`.
//!
//! Order: `DOCKGATE_COMMIT` from the environment (a release tarball has no `.git`; `make dist`
//! and packagers set it), then `git rev-parse` in the source tree, then `unknown`. A build
//! never fails for want of git.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DOCKGATE_COMMIT");
    let commit = std::env::var("DOCKGATE_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DOCKGATE_COMMIT={}", commit.trim());
}

/// The short commit hash of HEAD; also asks cargo to run this again when HEAD moves. (No
/// `-dirty` mark: it would need a rerun on every source change.)
fn git_commit() -> Option<String> {
    let hash = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD names a branch whose ref file (or packed-refs) changes with each commit; in a worktree
    // these live in different git directories, so ask git for each path.
    for path in ["HEAD", "packed-refs"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(file) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    Some(hash)
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}
