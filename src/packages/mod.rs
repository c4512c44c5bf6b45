//! Who owns a file: the package databases an image carries, read into an index from path to
//! package with the checksum the package manager recorded, so that a finding can say whose
//! key it is and whether the bytes are still the package's.
//!
//! Pure: it reads the database files' bytes handed to it (a layer keeps them while it streams,
//! see `layer`) and never the filesystem or the network. It does not decide what an owner means
//! for a finding's rule: that is `analyze`. It reads dpkg (`status`, `status.d/`,
//! `info/*.list`, `info/*.md5sums`), apk's `installed`, rpm's `rpmdb.sqlite`, jars'
//! `pom.properties`, Python's `dist-info`/`egg-info` records, and npm, Go and
//! Cargo package directories (`trees`).

pub mod apk;
pub mod dpkg;
pub mod generated;
pub mod known;
pub mod layers;
pub mod maven;
pub mod python;
pub mod rpm;
pub mod trees;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// Whether a layer should keep `path` (an absolute image path) for the package index.
pub fn is_database_file(path: &str) -> bool {
    dpkg::is_database_file(path)
        || apk::is_database_file(path)
        || rpm::is_database_file(path)
        || python::is_database_file(path)
        || trees::is_database_file(path)
}

/// What a layer keeps of a database file: its text, or for rpm's SQLite database a text
/// summary of it.
pub fn database_text(path: &str, bytes: &[u8]) -> String {
    if rpm::is_database_file(path) {
        rpm::summarize(path, bytes)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// Why a database file as a layer kept it could not be read (its `!` line), if it could not:
/// the scan reports it, so that missing owners are not taken for unowned files.
pub fn unreadable(path: &str, text: &str) -> Option<String> {
    if !rpm::is_database_file(path) {
        return None;
    }
    text.lines()
        .find_map(|line| line.strip_prefix("! "))
        .map(str::to_string)
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
    /// For Python byte code the package's install script compiled: the package's source file
    /// it was compiled from, whose integrity this is. (Its keys are checked to be the
    /// source's.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiled_from: Option<String>,
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
    /// Lowercase hex (apk records SHA-1).
    #[serde(default)]
    pub sha1: String,
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
    sha1: sha1::Sha1,
    sha256: sha2::Sha256,
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        md5::Digest::update(&mut self.md5, bytes);
        sha1::Digest::update(&mut self.sha1, bytes);
        sha2::Digest::update(&mut self.sha256, bytes);
    }

    pub fn finish(self) -> FileDigests {
        FileDigests {
            md5: hex::encode(md5::Digest::finalize(self.md5)),
            sha1: hex::encode(sha1::Digest::finalize(self.sha1)),
            sha256: hex::encode(sha2::Digest::finalize(self.sha256)),
        }
    }
}

/// A checksum a package manager recorded for one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    Md5(String),
    Sha1(String),
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

impl Package {
    /// `name version`
    pub fn describe(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

/// Every owned path of one filesystem state, with its package and recorded checksum.
#[derive(Debug, Default)]
pub struct Index {
    packages: Vec<Package>,
    files: HashMap<String, (usize, Option<Recorded>)>,
    /// Every ancestor directory of an owned path: the one package whose files are below it,
    /// or `None` when several packages share it (`/usr/lib`).
    directories: HashMap<String, Option<usize>>,
    /// Directories a package owns whole (npm), apart from nested `node_modules`.
    trees: HashMap<String, usize>,
}

impl Index {
    /// Reads the database files of one filesystem state (each path with its content).
    /// The system's package manager goes first: a file it lists stays its, whatever a
    /// language's records say.
    pub fn build<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let files: Vec<(&str, &str)> = files.into_iter().collect();
        let mut index = Self::default();
        dpkg::read(files.iter().copied(), &mut index);
        apk::read(&files, &mut index);
        rpm::read(&files, &mut index);
        python::read(&files, &mut index);
        trees::read(&files, &mut index);
        maven::read(&files, &mut index);
        index
    }

    /// Records that `package` owns everything below `directory`.
    pub(crate) fn own_tree(&mut self, directory: String, package: usize) {
        self.trees.entry(directory).or_insert(package);
    }

    /// The package owning a directory above `path`, up to the nearest `node_modules`.
    fn tree_owner(&self, path: &str) -> Option<&Package> {
        let mut directory = path;
        while let Some((parent, name)) = directory.rsplit_once('/') {
            if name == "node_modules" || parent.is_empty() {
                return None;
            }
            if let Some(package) = self.trees.get(parent) {
                return Some(&self.packages[*package]);
            }
            directory = parent;
        }
        None
    }

    /// Adds a package and returns its number for `own`.
    pub(crate) fn add_package(&mut self, package: Package) -> usize {
        self.packages.push(package);
        self.packages.len() - 1
    }

    /// Records that `package` owns `path`; a recorded checksum replaces none.
    pub(crate) fn own(&mut self, path: String, package: usize, recorded: Option<Recorded>) {
        let mut directory = path.as_str();
        while let Some((parent, _)) = directory.rsplit_once('/') {
            if parent.is_empty() {
                break;
            }
            match self.directories.get_mut(parent) {
                Some(Some(owner)) if *owner != package => {
                    self.directories.insert(parent.to_string(), None);
                }
                Some(_) => {}
                None => {
                    self.directories.insert(parent.to_string(), Some(package));
                }
            }
            directory = parent;
        }
        let slot = self.files.entry(path).or_insert((package, None));
        if slot.0 == package && recorded.is_some() {
            slot.1 = recorded;
        }
    }

    /// `owner`, except for Python byte code whose bytes nobody recorded: that is judged by the
    /// source it was compiled from (`Owner::compiled_from`), with that source's digests.
    pub fn owner_or_source<'d>(
        &self,
        path: &str,
        digests: Option<&FileDigests>,
        source_digests: impl Fn(&str) -> Option<&'d FileDigests>,
    ) -> Option<Owner> {
        let own = self.owner(path, digests);
        if own
            .as_ref()
            .is_some_and(|o| o.integrity != Integrity::Unrecorded)
        {
            return own;
        }
        let from_source = compiled_source(path).and_then(|source| {
            let mut owner = self.owner(&source, source_digests(&source))?;
            owner.compiled_from = Some(source);
            Some(owner)
        });
        from_source.or(own)
    }

    /// What a finding at `path` says of ownership: its owner (`owner_or_source`), or, when it
    /// has none, the package (`name version`) whose own directory holds it.
    pub fn lookup<'d>(
        &self,
        path: &str,
        digests: Option<&FileDigests>,
        source_digests: impl Fn(&str) -> Option<&'d FileDigests>,
    ) -> (Option<Owner>, Option<String>) {
        match self.owner_or_source(path, digests, source_digests) {
            Some(owner) => (Some(owner), None),
            None => (None, self.directory_package(path).map(Package::describe)),
        }
    }

    /// The package whose own directory holds `path` (a directory no other package has files
    /// in), for a file that is in no package's list: `/usr/lib/ssl/misc/x.pem` is in
    /// openssl's directory, `/usr/lib/x.pem` in no single package's.
    pub fn directory_package(&self, path: &str) -> Option<&Package> {
        let mut directory = path;
        while let Some((parent, _)) = directory.rsplit_once('/') {
            if parent.is_empty() {
                return None;
            }
            if let Some(owner) = self.directories.get(parent) {
                return owner.map(|number| &self.packages[number]);
            }
            directory = parent;
        }
        None
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// The owner of `path`, judged against the file's digests when known. A path under
    /// merged `/usr` is also looked up under its old name (`/usr/lib/x` as `/lib/x`), as dpkg
    /// may list either.
    pub fn owner(&self, path: &str, digests: Option<&FileDigests>) -> Option<Owner> {
        let Some((package, recorded)) = aliases(path).find_map(|p| self.files.get(&p)) else {
            let package = match self.tree_owner(path) {
                Some(package) => package.clone(),
                None => trees::by_path(path)?,
            };
            return Some(Owner {
                ecosystem: package.ecosystem,
                name: package.name,
                version: package.version,
                origin: package.origin,
                integrity: Integrity::Unrecorded,
                compiled_from: None,
            });
        };
        let package = &self.packages[*package];
        let integrity = match (recorded, digests) {
            (None, _) | (Some(_), None) => Integrity::Unrecorded,
            (Some(Recorded::Md5(want)), Some(have)) => same(want, &have.md5),
            (Some(Recorded::Sha1(want)), Some(have)) => same(want, &have.sha1),
            (Some(Recorded::Sha256(want)), Some(have)) => same(want, &have.sha256),
        };
        Some(Owner {
            ecosystem: package.ecosystem,
            name: package.name.clone(),
            version: package.version.clone(),
            origin: package.origin.clone(),
            integrity,
            compiled_from: None,
        })
    }
}

/// Email domains of the distributions whose packages are public: every copy of such a package
/// holds the same bytes, so a key in it is no secret of one image.
const PUBLIC_DOMAINS: [&str; 10] = [
    "debian.org",
    "debian.net",
    "ubuntu.com",
    "canonical.com",
    "launchpad.net",
    "alioth.debian.org",
    "alpinelinux.org",
    "wolfi.dev",
    "chainguard.dev",
    "fedoraproject.org",
];

/// rpm `Vendor`s of the public distributions.
const PUBLIC_VENDORS: [&str; 6] = [
    "Red Hat, Inc.",
    "Fedora Project",
    "CentOS",
    "Rocky Enterprise Software Foundation",
    "AlmaLinux",
    "SUSE LLC <https://www.suse.com/>",
];

/// Whether `owner` comes from a public distribution or registry: a dpkg package whose `Origin`
/// is Debian or Ubuntu or whose maintainer writes from one of their domains, or whose origin
/// matches one of `extra` (the policy's `public_origins`: an origin as written, or an email
/// domain and its subdomains).
pub fn is_public(owner: &Owner, extra: &[String]) -> bool {
    let Some(origin) = owner.origin.as_deref() else {
        return false;
    };
    let domain = origin
        .rsplit_once('@')
        .map(|(_, rest)| rest.trim_end_matches('>').trim().to_ascii_lowercase());
    let under = |wanted: &str| {
        domain.as_deref().is_some_and(|domain| {
            domain == wanted
                || domain
                    .strip_suffix(wanted)
                    .is_some_and(|head| head.ends_with('.'))
        })
    };
    let listed = extra
        .iter()
        .any(|entry| entry.eq_ignore_ascii_case(origin) || under(&entry.to_ascii_lowercase()));
    listed
        || match owner.ecosystem {
            Ecosystem::Dpkg | Ecosystem::Apk => {
                ["Debian", "Ubuntu"].contains(&origin) || PUBLIC_DOMAINS.iter().any(|d| under(d))
            }
            Ecosystem::Rpm => {
                PUBLIC_VENDORS.contains(&origin) || PUBLIC_DOMAINS.iter().any(|d| under(d))
            }
            // Installed from an index (pip records a URL or a local file in direct_url.json).
            Ecosystem::Pypi => origin == python::FROM_INDEX,
            _ => false,
        }
}

fn same(want: &str, have: &str) -> Integrity {
    if want.eq_ignore_ascii_case(have) {
        Integrity::Verified
    } else {
        Integrity::Modified
    }
}

/// The source of CPython byte code: `d/__pycache__/m.cpython-311.pyc` (or `.opt-1.pyc`) is
/// compiled from `d/m.py`, and so is Python 2's (or `compileall -b`'s) `d/m.pyc` beside it.
/// Byte code written at install is in no package's file list (Debian's `.list` files and most
/// wheels' RECORD leave it out), so it takes its source's owner.
pub fn compiled_source(path: &str) -> Option<String> {
    let Some((directory, file)) = path.rsplit_once("/__pycache__/") else {
        let (directory, file) = path.rsplit_once('/')?;
        let module = file
            .strip_suffix(".pyc")
            .or_else(|| file.strip_suffix(".pyo"))
            .filter(|m| !m.is_empty())?;
        return Some(format!("{directory}/{module}.py"));
    };
    let stem = file.strip_suffix(".pyc")?;
    let module = stem.split('.').next().filter(|m| !m.is_empty())?;
    (stem.len() > module.len()).then(|| format!("{directory}/{module}.py"))
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
    fn public_origins_are_distributions_or_what_the_policy_adds() {
        let owner = |origin: &str| Owner {
            ecosystem: Ecosystem::Dpkg,
            name: "p".into(),
            version: "1".into(),
            origin: Some(origin.into()),
            integrity: Integrity::Verified,
            compiled_from: None,
        };
        let gnutls = owner("Debian GnuTLS Maintainers <pkg-gnutls-maint@lists.alioth.debian.org>");
        assert!(is_public(&gnutls, &[]));
        assert!(is_public(
            &owner("Debian Python Team <team+python@tracker.debian.org>"),
            &[]
        ));
        let ours = owner("ACME Platform <platform@acme.example>");
        assert!(!is_public(&ours, &[]));
        assert!(!is_public(&owner("Mallory <m@evil-debian.org>"), &[]));
        assert!(is_public(&ours, &["acme.example".to_string()]));
        assert!(is_public(
            &ours,
            &["ACME Platform <platform@acme.example>".to_string()]
        ));
        assert!(
            !is_public(&ours, &["me.example".to_string()]),
            "whole labels only"
        );
    }

    #[test]
    fn a_directory_belongs_to_a_package_only_when_no_other_shares_it() {
        let mut index = Index::default();
        let mut add = |name: &str| {
            index.add_package(Package {
                ecosystem: Ecosystem::Dpkg,
                name: name.into(),
                version: "1".into(),
                origin: None,
            })
        };
        let (openssl, libc) = (add("openssl"), add("libc6"));
        index.own("/usr/lib/ssl/misc/CA.pl".into(), openssl, None);
        index.own("/usr/lib/libc.so".into(), libc, None);
        let name = |path| index.directory_package(path).map(|p| p.name.clone());
        assert_eq!(name("/usr/lib/ssl/misc/extra.pem"), Some("openssl".into()));
        assert_eq!(name("/usr/lib/planted.pem"), None, "/usr/lib is shared");
        assert_eq!(name("/app/key.pem"), None);
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
