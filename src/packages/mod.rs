//! Who owns a file: the package databases an image carries, read into an index from path to
//! package with the checksum the package manager recorded, so that a finding can say whose
//! key it is and whether the bytes are still the package's.
//!
//! Pure: it reads the database files' bytes handed to it (a layer keeps them while it streams,
//! see `layer`) and never the filesystem or the network. It does not decide what an owner means
//! for a finding's rule: that is `analyze`. Today it reads dpkg (`status`, `status.d/`,
//! `info/*.list`, `info/*.md5sums`).

pub mod dpkg;
pub mod layers;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// Whether a layer should keep `path` (an absolute image path) for the package index.
pub fn is_database_file(path: &str) -> bool {
    dpkg::is_database_file(path)
}

/// The package manager or registry a package came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    Dpkg,
    Apk,
    Rpm,
    Pypi,
    Npm,
    Maven,
    Go,
    Cargo,
}

impl Ecosystem {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dpkg => "dpkg",
            Self::Apk => "apk",
            Self::Rpm => "rpm",
            Self::Pypi => "pypi",
            Self::Npm => "npm",
            Self::Maven => "maven",
            Self::Go => "go",
            Self::Cargo => "cargo",
        }
    }
}

/// Whether a file's bytes are the ones its package manager recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Integrity {
    /// The bytes match the recorded checksum.
    Verified,
    /// The bytes differ from the recorded checksum: changed after installation.
    Modified,
    /// The package manager records no checksum for this file.
    Unrecorded,
}

impl Integrity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Modified => "modified",
            Self::Unrecorded => "unrecorded",
        }
    }
}

/// The package a file belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Owner {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    /// Who published it: dpkg's `Origin`, else its `Maintainer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    pub integrity: Integrity,
}

impl fmt::Display for Owner {
    /// `dpkg:libgnutls30 3.7.9-2+deb12u3 (verified)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} {} ({})",
            self.ecosystem.as_str(),
            self.name,
            self.version,
            self.integrity.as_str()
        )
    }
}

/// Checksums of a file a detector found something in, for comparing with the package record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigests {
    /// Lowercase hex.
    pub md5: String,
    /// Lowercase hex.
    pub sha256: String,
}

impl FileDigests {
    pub fn of(bytes: &[u8]) -> Self {
        let mut hasher = Hasher::default();
        hasher.update(bytes);
        hasher.finish()
    }
}

/// Computes `FileDigests` over a stream.
#[derive(Default)]
pub struct Hasher {
    md5: md5::Md5,
    sha256: sha2::Sha256,
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        md5::Digest::update(&mut self.md5, bytes);
        sha2::Digest::update(&mut self.sha256, bytes);
    }

    pub fn finish(self) -> FileDigests {
        FileDigests {
            md5: hex::encode(md5::Digest::finalize(self.md5)),
            sha256: hex::encode(sha2::Digest::finalize(self.sha256)),
        }
    }
}

/// A checksum a package manager recorded for one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    Md5(String),
    Sha256(String),
}

/// An installed package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    pub origin: Option<String>,
}

/// Every owned path of one filesystem state, with its package and recorded checksum.
#[derive(Debug, Default)]
pub struct Index {
    packages: Vec<Package>,
    files: HashMap<String, (usize, Option<Recorded>)>,
}

impl Index {
    /// Reads the database files of one filesystem state (each path with its content).
    pub fn build<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut index = Self::default();
        dpkg::read(files, &mut index);
        index
    }

    /// Adds a package and returns its number for `own`.
    pub(crate) fn add_package(&mut self, package: Package) -> usize {
        self.packages.push(package);
        self.packages.len() - 1
    }

    /// Records that `package` owns `path`; a recorded checksum replaces none.
    pub(crate) fn own(&mut self, path: String, package: usize, recorded: Option<Recorded>) {
        let slot = self.files.entry(path).or_insert((package, None));
        if slot.0 == package && recorded.is_some() {
            slot.1 = recorded;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// The owner of `path`, judged against the file's digests when known. A path under
    /// merged `/usr` is also looked up under its old name (`/usr/lib/x` as `/lib/x`), as dpkg
    /// may list either.
    pub fn owner(&self, path: &str, digests: Option<&FileDigests>) -> Option<Owner> {
        let (package, recorded) = aliases(path).find_map(|p| self.files.get(&p))?;
        let package = &self.packages[*package];
        let integrity = match (recorded, digests) {
            (None, _) | (Some(_), None) => Integrity::Unrecorded,
            (Some(Recorded::Md5(want)), Some(have)) => same(want, &have.md5),
            (Some(Recorded::Sha256(want)), Some(have)) => same(want, &have.sha256),
        };
        Some(Owner {
            ecosystem: package.ecosystem,
            name: package.name.clone(),
            version: package.version.clone(),
            origin: package.origin.clone(),
            integrity,
        })
    }
}

fn same(want: &str, have: &str) -> Integrity {
    if want.eq_ignore_ascii_case(have) {
        Integrity::Verified
    } else {
        Integrity::Modified
    }
}

/// `path`, then its names from before merged `/usr` (`/usr/lib/x` ↔ `/lib/x`).
fn aliases(path: &str) -> impl Iterator<Item = String> + '_ {
    const MERGED: [&str; 6] = ["/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/"];
    let other = MERGED.iter().find_map(|dir| {
        if let Some(rest) = path.strip_prefix(&format!("/usr{dir}")) {
            Some(format!("{dir}{rest}"))
        } else {
            path.strip_prefix(dir)
                .map(|rest| format!("/usr{dir}{rest}"))
        }
    });
    std::iter::once(path.to_string()).chain(other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_usr_paths_are_found_under_either_name() {
        let mut index = Index::default();
        let package = index.add_package(Package {
            ecosystem: Ecosystem::Dpkg,
            name: "libc6".into(),
            version: "2.36-9".into(),
            origin: None,
        });
        index.own("/lib/x86_64-linux-gnu/libc.so.6".into(), package, None);
        let owner = index.owner("/usr/lib/x86_64-linux-gnu/libc.so.6", None);
        assert_eq!(owner.map(|o| o.name), Some("libc6".to_string()));
        assert!(index.owner("/usr/local/lib/libc.so.6", None).is_none());
    }

    #[test]
    fn digests_decide_verified_or_modified() {
        let mut index = Index::default();
        let package = index.add_package(Package {
            ecosystem: Ecosystem::Dpkg,
            name: "p".into(),
            version: "1".into(),
            origin: None,
        });
        let digests = FileDigests::of(b"hello\n");
        assert_eq!(digests.md5, "b1946ac92492d2347c6235b4d2611184");
        index.own(
            "/a".into(),
            package,
            Some(Recorded::Md5(digests.md5.clone())),
        );
        index.own("/b".into(), package, Some(Recorded::Md5("00".repeat(16))));
        index.own("/c".into(), package, None);
        let integrity = |path| index.owner(path, Some(&digests)).unwrap().integrity;
        assert_eq!(integrity("/a"), Integrity::Verified);
        assert_eq!(integrity("/b"), Integrity::Modified);
        assert_eq!(integrity("/c"), Integrity::Unrecorded);
    }
}
