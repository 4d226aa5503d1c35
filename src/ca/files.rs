//! How `dockgate ca` touches the disk. Files holding a private key are *created* with mode
//! 0600 (never written first and chmod-ed after, which would leave a window where the key is
//! readable). Files a running gate or another tool reads while we change them (the CRL, the
//! database, a renewed server certificate) are replaced atomically: a temporary file in the same
//! directory, flushed, then renamed over the old one, so a reader sees the old or the new file,
//! never half of one. A lock file keeps two `dockgate ca` runs (a cron `ca crl` and a manual
//! `ca revoke`) from overwriting each other's database changes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Who may read a file we write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Only the owner (0600): anything with a private key or a password-protected key.
    OwnerOnly,
    /// Everyone (0644): certificates, the CRL, the database.
    Public,
}

impl Access {
    #[cfg(unix)]
    fn mode(self) -> u32 {
        match self {
            Access::OwnerOnly => 0o600,
            Access::Public => 0o644,
        }
    }
}

/// Opens `path` for writing, failing if it exists, with the permissions of `access` from the
/// moment it exists.
fn create_exclusive(path: &Path, access: Access) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(access.mode());
    }
    #[cfg(not(unix))]
    let _ = access;
    options.open(path)
}

/// Writes a new file; an existing file at `path` is an error and is left alone.
pub fn create_new(path: &Path, bytes: &[u8], access: Access) -> Result<(), String> {
    let mut file = create_exclusive(path, access).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => format!("{} already exists", path.display()),
        _ => format!("cannot create {}: {e}", path.display()),
    })?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    written.map_err(|e| {
        let _ = std::fs::remove_file(path);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Replaces `path` (or creates it) with `bytes` through a temporary file and a rename.
pub fn replace_atomically(path: &Path, bytes: &[u8], access: Access) -> Result<(), String> {
    let temp = temp_path(path);
    let _ = std::fs::remove_file(&temp); // left over by a run that was killed
    let result = create_exclusive(&temp, access)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    sync_parent(path);
    Ok(())
}

/// `DIR/.NAME.tmp`: in the same directory, so the rename stays on one file system.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Makes the rename itself durable (best effort; not possible on Windows).
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Creates a directory readable by its owner only (0700), failing if it exists.
pub fn create_private_dir(path: &Path) -> Result<(), String> {
    private_dir_builder()
        .create(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => format!("{} already exists", path.display()),
            _ => format!("cannot create {}: {e}", path.display()),
        })
}

/// Creates a directory (0700) and its missing parents; an existing one is fine.
pub fn create_private_dir_all(path: &Path) -> Result<(), String> {
    private_dir_builder()
        .recursive(true)
        .create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

#[cfg(unix)]
fn private_dir_builder() -> std::fs::DirBuilder {
    use std::os::unix::fs::DirBuilderExt;
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o700);
    builder
}

/// Windows has no modes: the directory inherits its parent's ACL.
#[cfg(not(unix))]
fn private_dir_builder() -> std::fs::DirBuilder {
    std::fs::DirBuilder::new()
}

/// Reads a text file, naming it in the error.
pub fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Held while a command changes a CA directory; removing `DIR/ca.lock` on drop.
pub struct DirLock {
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir`, or says who holds it. The lock is a file created exclusively
    /// (portable, no unsafe code); a run killed with SIGKILL leaves it behind, and the message
    /// says to remove it then.
    pub fn acquire(dir: &Path) -> Result<DirLock, String> {
        let path = dir.join("ca.lock");
        let pid = std::process::id().to_string();
        match create_exclusive(&path, Access::Public) {
            Ok(mut file) => {
                let _ = file.write_all(pid.as_bytes());
                Ok(DirLock { path })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                Err(format!(
                    "{} exists: another dockgate ca (pid {}) is changing this CA; if none is running, remove the file",
                    path.display(),
                    holder.trim()
                ))
            }
            Err(e) => Err(format!("cannot create {}: {e}", path.display())),
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("dockgate-ca-files-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    #[cfg(unix)]
    fn secrets_are_created_owner_only_and_never_overwritten() {
        let dir = scratch("secret");
        let key = dir.join("key.pem");
        create_new(&key, b"secret", Access::OwnerOnly).unwrap();
        assert_eq!(mode(&key), 0o600);
        let again = create_new(&key, b"other", Access::OwnerOnly).unwrap_err();
        assert!(again.contains("already exists"), "{again}");
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
    }

    #[test]
    #[cfg(unix)]
    fn atomic_replace_keeps_the_mode_and_leaves_no_temporary_file() {
        let dir = scratch("atomic");
        let key = dir.join("server-key.pem");
        replace_atomically(&key, b"one", Access::OwnerOnly).unwrap();
        replace_atomically(&key, b"two", Access::OwnerOnly).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"two");
        assert_eq!(mode(&key), 0o600);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["server-key.pem"]);
    }

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let dir = scratch("lock");
        let held = DirLock::acquire(&dir).unwrap();
        let refused = DirLock::acquire(&dir).err().unwrap();
        assert!(refused.contains("another dockgate ca"), "{refused}");
        drop(held);
        DirLock::acquire(&dir).unwrap();
    }
}
