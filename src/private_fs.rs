//! Files and directories only this user may read: the database, the control token, the
//! daemon's files and the logs (which may quote message payloads). Directories this
//! process creates get mode 0700 and files 0600, whatever the umask; directories that
//! already exist keep the mode their owner gave them (a data directory may be `.`).

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// `create_dir_all`, with mode 0700 for every directory it creates.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Options that create a missing file with mode 0600.
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Takes group and other access away from an existing file (for files that are ours
/// alone, like the database). Works by path (stat and chmod) and never opens the file:
/// closing any descriptor of a file drops every POSIX lock this process holds on it, and
/// SQLite's locks on the database are such locks.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn new_directories_and_files_are_private_and_loose_files_are_tightened() {
        let base = tempfile::tempdir().expect("tmp");
        let dir = base.path().join("a/b");
        create_dir_all(&dir).expect("mkdir");
        assert_eq!(mode(&base.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("x.db");
        std::fs::write(&db, b"").expect("write");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        restrict_file(&db).expect("tighten");
        assert_eq!(mode(&db), 0o600);
        let fresh = dir.join("y.log");
        options()
            .write(true)
            .create_new(true)
            .open(&fresh)
            .expect("create");
        assert_eq!(mode(&fresh), 0o600);
    }
}
