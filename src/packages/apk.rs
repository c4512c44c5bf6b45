//! apk's database, `lib/apk/db/installed` (Alpine, Wolfi): one paragraph per package with
//! `P:` name, `V:` version, `m:` maintainer, `o:` origin package, then `F:` directories, each
//! followed by its `R:` files and their `Z:` checksums (`Q1` and the base64 SHA-1 of the file).
//!
//! Written by hand from the format documented in apk-tools' wiki ("Apk spec"): no crate reads
//! the installed database.

use super::{Ecosystem, Index, Package, Recorded};
use base64::Engine as _;

const DATABASE: &str = "/lib/apk/db/installed";

pub fn is_database_file(path: &str) -> bool {
    path == DATABASE
}

/// Reads apk's installed database among `files` into `index`.
pub fn read(files: &[(&str, &str)], index: &mut Index) {
    let Some((_, text)) = files.iter().find(|(path, _)| *path == DATABASE) else {
        return;
    };
    for paragraph in text.split("\n\n") {
        read_package(paragraph, index);
    }
}

fn read_package(paragraph: &str, index: &mut Index) {
    let field = |key: &str| {
        paragraph
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .map(str::to_string)
    };
    let Some(name) = field("P:") else {
        return;
    };
    let package = index.add_package(Package {
        ecosystem: Ecosystem::Apk,
        name,
        version: field("V:").unwrap_or_default(),
        origin: field("m:").or_else(|| field("o:")),
    });
    let mut directory = String::new();
    let mut file: Option<String> = None;
    let flush = |file: &mut Option<String>, sum: Option<Recorded>, index: &mut Index| {
        if let Some(path) = file.take() {
            index.own(path, package, sum);
        }
    };
    for line in paragraph.lines() {
        if let Some(dir) = line.strip_prefix("F:") {
            flush(&mut file, None, index);
            directory = dir.trim_matches('/').to_string();
        } else if let Some(name) = line.strip_prefix("R:") {
            flush(&mut file, None, index);
            file = Some(if directory.is_empty() {
                format!("/{name}")
            } else {
                format!("/{directory}/{name}")
            });
        } else if let Some(sum) = line.strip_prefix("Z:") {
            let sha1 = sum
                .strip_prefix("Q1")
                .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                .map(|bytes| Recorded::Sha1(hex::encode(bytes)));
            flush(&mut file, sha1, index);
        }
    }
    flush(&mut file, None, index);
}

#[cfg(test)]
mod tests {
    use super::super::{FileDigests, Integrity, is_public};
    use super::*;

    /// A database as apk writes it (the fixture is written to the documented format: apk does
    /// not install on Debian).
    #[test]
    fn files_are_owned_with_their_sha1_and_alpine_maintainers_are_public() {
        let key = b"-----BEGIN PRIVATE KEY-----\n";
        let digests = FileDigests::of(key);
        let sha1 =
            base64::engine::general_purpose::STANDARD.encode(hex::decode(&digests.sha1).unwrap());
        let db = format!(
            "C:Q1aaaa=\nP:openssl-dbg\nV:3.1.4-r1\nA:x86_64\nm:Natanael Copa <ncopa@alpinelinux.org>\n\
             o:openssl\nF:usr/share/openssl\nR:test.key\na:0:0:644\nZ:Q1{sha1}\nR:other.pem\n\
             Z:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nP:acme\nV:1\nm:Ops <ops@acme.example>\nF:etc\nR:acme.key\n"
        );
        let files = [(DATABASE, db.as_str())];
        let index = Index::build(files);
        let owner = |path| index.owner(path, Some(&digests)).unwrap();
        let test_key = owner("/usr/share/openssl/test.key");
        assert_eq!(
            (
                test_key.ecosystem,
                test_key.name.as_str(),
                test_key.integrity
            ),
            (Ecosystem::Apk, "openssl-dbg", Integrity::Verified)
        );
        assert!(is_public(&test_key, &[]));
        assert_eq!(
            owner("/usr/share/openssl/other.pem").integrity,
            Integrity::Modified
        );
        let acme = owner("/etc/acme.key");
        assert_eq!(acme.integrity, Integrity::Unrecorded);
        assert!(!is_public(&acme, &[]));
    }
}
