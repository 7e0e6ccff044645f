//! Files written whole or not at all: the registry, the caches (compiled components, the
//! code-mode engine's snapshot, OCI blobs, protocol eras). A reader (another process, another
//! thread, the same file after a crash) sees the old content or the new, never a part.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename,
/// creating the directory if needed. An existing file keeps its permissions and, where we may
/// set them, its owner and group (a `chmod 600` registry stays 0600); the temporary file is
/// created with them, so not even it is readable by more than the file was. A symbolic link
/// stays one: its target is what is written (dotfiles kept in a repository of their own).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    static UNIQUE: AtomicU64 = AtomicU64::new(0);
    let path = &link_target(path);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and per write: two threads writing one file never share a temporary.
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    ));
    let existing = std::fs::metadata(path).ok();
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        if let Some(existing) = &existing {
            options.mode(existing.permissions().mode() & 0o777);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        if let Some(existing) = &existing {
            keep_mode_and_owner(&file, existing)?;
        }
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Where a symbolic link at `path` points (followed to the end), or `path` itself.
fn link_target(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    // A loop of links ends here too: the rename then replaces the last link read.
    for _ in 0..40 {
        match std::fs::read_link(&path) {
            Ok(target) => {
                path = match path.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                }
            }
            Err(_) => break,
        }
    }
    path
}

fn keep_mode_and_owner(file: &std::fs::File, existing: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    file.set_permissions(existing.permissions())?;
    let ours = file.metadata()?;
    if (ours.uid(), ours.gid()) != (existing.uid(), existing.gid()) {
        // Only root may give a file away; anyone else keeps the file as theirs.
        let _ = std::os::unix::fs::fchown(file, Some(existing.uid()), Some(existing.gid()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::write_atomic;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_rewrite_keeps_the_files_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        write_atomic(&path, b"one").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["config.json"]);
    }

    #[test]
    fn a_symbolic_link_stays_one_and_its_target_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles/config.json");
        write_atomic(&real, b"one").unwrap();
        let link = dir.path().join("config.json");
        std::os::unix::fs::symlink("dotfiles/config.json", &link).unwrap();
        write_atomic(&link, b"two").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"two");
    }
}
