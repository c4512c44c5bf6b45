//! Files only the owner reads: directories 0700, files 0600. The service's database and the
//! layer cache hold every report, which the read token is meant to guard; other local users
//! must not read them off the disk. It does not decide where files go.

use fs_err::os::unix::fs::OpenOptionsExt as _;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// Creates `dir` (and its parents) and makes it 0700, also when it existed already.
pub fn dir(dir: &Path) -> std::io::Result<()> {
    fs_err::create_dir_all(dir)?;
    fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Makes an existing file 0600.
pub fn file(path: &Path) -> std::io::Result<()> {
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Opens `path` for writing (created 0600 when new), without truncating it.
pub fn open(path: &Path) -> std::io::Result<std::fs::File> {
    let file = fs_err::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let file = file.into_file();
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Writes a new file `path` (0600) with `bytes`; it must not exist.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs_err::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs_err::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_are_the_owners_only() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        fs_err::create_dir(&data).unwrap();
        fs_err::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700, "an existing directory is tightened");
        open(&data.join("a")).unwrap();
        write_new(&data.join("b"), b"x").unwrap();
        assert_eq!(
            (mode(&data.join("a")), mode(&data.join("b"))),
            (0o600, 0o600)
        );
        assert!(
            write_new(&data.join("b"), b"y").is_err(),
            "never over an existing file"
        );
    }
}
