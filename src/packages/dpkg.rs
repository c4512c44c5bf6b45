//! dpkg's database: `var/lib/dpkg/status` (or distroless images' `status.d/<package>`) for the
//! installed packages, `info/<package>.list` for their files and `info/<package>.md5sums` (or
//! `status.d/<package>.md5sums`) for the checksums Debian's build recorded.
//!
//! Written by hand: the `debian-control`/`deb822` crates parse a whole control file into owned
//! maps with more than we need, and the format is a few fields of RFC 822 paragraphs.

use super::{Ecosystem, Index, Package, Recorded};
use std::collections::HashMap;

const ROOT: &str = "/var/lib/dpkg/";

/// `status`, `status.d/*` and `info/*.list` / `info/*.md5sums`.
pub fn is_database_file(path: &str) -> bool {
    let Some(rest) = path.strip_prefix(ROOT) else {
        return false;
    };
    rest == "status"
        || rest
            .strip_prefix("status.d/")
            .is_some_and(|name| !name.contains('/'))
        || rest.strip_prefix("info/").is_some_and(|name| {
            !name.contains('/') && (name.ends_with(".list") || name.ends_with(".md5sums"))
        })
}

/// The package a database file name is about: `libssl3:amd64.md5sums` → `libssl3`.
fn package_of(file_name: &str, suffix: &str) -> Option<String> {
    let stem = file_name.strip_suffix(suffix)?;
    Some(stem.split(':').next().unwrap_or(stem).to_string())
}

/// Reads the dpkg files among `files` into `index`.
pub fn read<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>, index: &mut Index) {
    let mut paragraphs = Vec::new();
    let mut lists = Vec::new();
    let mut sums = Vec::new();
    for (path, text) in files {
        let Some(rest) = path.strip_prefix(ROOT) else {
            continue;
        };
        if rest == "status" {
            paragraphs.extend(text.split("\n\n"));
        } else if let Some(name) = rest.strip_prefix("status.d/") {
            if let Some(package) = package_of(name, ".md5sums") {
                sums.push((package, text));
            } else {
                paragraphs.extend(text.split("\n\n"));
            }
        } else if let Some(name) = rest.strip_prefix("info/") {
            if let Some(package) = package_of(name, ".list") {
                lists.push((package, text));
            } else if let Some(package) = package_of(name, ".md5sums") {
                sums.push((package, text));
            }
        }
    }
    let mut installed: HashMap<String, usize> = HashMap::new();
    for paragraph in paragraphs {
        if let Some(package) = installed_package(paragraph) {
            let name = package.name.clone();
            let number = index.add_package(package);
            installed.entry(name).or_insert(number);
        }
    }
    // Lists first, so that a path two packages list stays with the first, then the checksums.
    lists.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (package, text) in lists {
        let Some(&number) = installed.get(&package) else {
            continue;
        };
        for line in text.lines().filter(|l| l.starts_with('/') && *l != "/.") {
            index.own(line.to_string(), number, None);
        }
    }
    for (package, text) in sums {
        let Some(&number) = installed.get(&package) else {
            continue;
        };
        for line in text.lines() {
            if let Some((sum, path)) = line.split_once("  ")
                && sum.len() == 32
                && sum.bytes().all(|b| b.is_ascii_hexdigit())
            {
                let path = format!("/{}", path.trim_start_matches('/'));
                index.own(path, number, Some(Recorded::Md5(sum.to_ascii_lowercase())));
            }
        }
    }
}

/// A status paragraph of an installed package (`Status: install ok installed`; distroless
/// `status.d` entries may have no `Status`).
fn installed_package(paragraph: &str) -> Option<Package> {
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for line in paragraph.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.insert(name, value.trim());
        }
    }
    let installed = fields
        .get("Status")
        .is_none_or(|status| status.ends_with(" installed"));
    if !installed {
        return None;
    }
    Some(Package {
        ecosystem: Ecosystem::Dpkg,
        name: (*fields.get("Package")?).to_string(),
        version: fields
            .get("Version")
            .copied()
            .unwrap_or_default()
            .to_string(),
        origin: fields
            .get("Origin")
            .or_else(|| fields.get("Maintainer"))
            .map(|s| (*s).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{FileDigests, Integrity};
    use super::*;

    const STATUS: &str = "Package: libgnutls30\nStatus: install ok installed\nPriority: optional\n\
Maintainer: Debian GnuTLS Maintainers <pkg-gnutls-maint@lists.alioth.debian.org>\n\
Architecture: amd64\nMulti-Arch: same\nVersion: 3.7.9-2+deb12u3\nDescription: GNU TLS library\n \
shared library\n\nPackage: removed\nStatus: deinstall ok config-files\nVersion: 1\n";

    #[test]
    fn installed_packages_own_their_listed_files_with_md5sums() {
        let key = b"-----BEGIN PRIVATE KEY-----\n";
        let sum = FileDigests::of(key).md5;
        let md5sums = format!("{sum}  usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3\n");
        let list = "/.\n/usr\n/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3\n/usr/share/doc/libgnutls30/copyright\n";
        let files = [
            ("/var/lib/dpkg/status", STATUS),
            ("/var/lib/dpkg/info/libgnutls30:amd64.list", list),
            (
                "/var/lib/dpkg/info/libgnutls30:amd64.md5sums",
                md5sums.as_str(),
            ),
            ("/var/lib/dpkg/info/removed.list", "/etc/removed.key\n"),
        ];
        assert!(files.iter().all(|(path, _)| is_database_file(path)));
        let index = Index::build(files);
        let owner = index
            .owner(
                "/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3",
                Some(&FileDigests::of(key)),
            )
            .unwrap();
        assert_eq!(
            owner.to_string(),
            "dpkg:libgnutls30 3.7.9-2+deb12u3 (verified)"
        );
        assert_eq!(
            owner.origin.as_deref(),
            Some("Debian GnuTLS Maintainers <pkg-gnutls-maint@lists.alioth.debian.org>")
        );
        let copyright = index.owner("/usr/share/doc/libgnutls30/copyright", None);
        assert_eq!(copyright.unwrap().integrity, Integrity::Unrecorded);
        assert!(
            index.owner("/etc/removed.key", None).is_none(),
            "a removed package owns nothing"
        );
        assert!(index.owner("/app/key.pem", None).is_none());
    }

    #[test]
    fn distroless_status_d_entries_are_read() {
        let files = [
            (
                "/var/lib/dpkg/status.d/openssl",
                "Package: openssl\nVersion: 3.0.15-1~deb12u1\nMaintainer: Debian OpenSSL Team <x@alioth-lists.debian.net>\n",
            ),
            (
                "/var/lib/dpkg/status.d/openssl.md5sums",
                "0123456789abcdef0123456789abcdef  usr/lib/ssl/misc/CA.pl\n",
            ),
        ];
        let index = Index::build(files);
        let owner = index
            .owner("/usr/lib/ssl/misc/CA.pl", Some(&FileDigests::of(b"x")))
            .unwrap();
        assert_eq!(
            (owner.name.as_str(), owner.integrity),
            ("openssl", Integrity::Modified)
        );
    }

    #[test]
    fn only_dpkg_database_paths_are_kept() {
        for path in [
            "/var/lib/dpkg/status-old",
            "/var/lib/dpkg/info/x.postinst",
            "/var/lib/dpkg/info/sub/x.list",
            "/etc/status",
        ] {
            assert!(!is_database_file(path), "{path}");
        }
    }
}
