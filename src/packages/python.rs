//! Python's installed-package records: `*.dist-info/RECORD` (every file with its SHA-256, as
//! pip and other installers write it, PEP 376/627), `*.dist-info/direct_url.json` (present when
//! the package came from a URL or a local file rather than an index, PEP 610) and the older
//! `*.egg-info/installed-files.txt` (files without checksums).
//!
//! Written by hand: RECORD is three CSV columns; the `csv` crate would add a dependency for the
//! quoting of paths with commas, which is handled here.

use super::{Ecosystem, Index, Package, Recorded};
use crate::layer::normalize;
use base64::Engine as _;
use std::collections::HashMap;

/// The origin of a distribution installed from a package index.
pub const FROM_INDEX: &str = "package index";

pub fn is_database_file(path: &str) -> bool {
    let Some((directory, file)) = path.rsplit_once('/') else {
        return false;
    };
    (directory.ends_with(".dist-info") && (file == "RECORD" || file == "direct_url.json"))
        || (directory.ends_with(".egg-info") && file == "installed-files.txt")
}

/// `name-version` of a `.dist-info` or `.egg-info` directory name.
fn name_and_version(directory: &str) -> Option<(String, String)> {
    let stem = directory
        .strip_suffix(".dist-info")
        .or_else(|| directory.strip_suffix(".egg-info"))?;
    let (name, rest) = stem.split_once('-')?;
    // An egg-info name may end in `-py3.11`.
    let version = rest.split("-py").next().unwrap_or(rest);
    Some((name.to_string(), version.to_string()))
}

/// Reads the Python records among `files` into `index`.
pub fn read<'a>(files: &[(&'a str, &'a str)], index: &mut Index) {
    let direct: HashMap<&str, &str> = files
        .iter()
        .filter_map(|(path, text)| Some((path.strip_suffix("/direct_url.json")?, *text)))
        .collect();
    let mut records: Vec<&(&str, &str)> = files
        .iter()
        .filter(|(path, _)| path.ends_with("/RECORD") || path.ends_with("/installed-files.txt"))
        .collect();
    records.sort_unstable();
    for (path, text) in records {
        let Some((info_dir, file)) = path.rsplit_once('/') else {
            continue;
        };
        let Some((site, directory)) = info_dir.rsplit_once('/') else {
            continue;
        };
        let Some((name, version)) = name_and_version(directory) else {
            continue;
        };
        let origin = match direct.get(info_dir) {
            Some(json) => format!("direct URL {}", direct_url(json)),
            None => FROM_INDEX.to_string(),
        };
        let package = index.add_package(Package {
            ecosystem: Ecosystem::Pypi,
            name,
            version,
            origin: Some(origin),
        });
        if file == "RECORD" {
            for line in text.lines() {
                let Some((relative, hash)) = record_line(line) else {
                    continue;
                };
                let path = normalize(&format!("{site}/{relative}"));
                index.own(path, package, hash);
            }
        } else {
            for relative in text.lines().filter(|l| !l.trim().is_empty()) {
                index.own(normalize(&format!("{info_dir}/{relative}")), package, None);
            }
        }
    }
}

/// `direct_url.json`'s `url`, or a note that it has none.
fn direct_url(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("url")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "(no url recorded)".into())
}

/// One RECORD row: the path and its SHA-256 (hex), if it has one.
fn record_line(line: &str) -> Option<(String, Option<Recorded>)> {
    let (path, rest) = if let Some(quoted) = line.strip_prefix('"') {
        // A quoted path: `""` is a quote inside it.
        let mut path = String::new();
        let mut chars = quoted.char_indices().peekable();
        let mut end = None;
        while let Some((at, c)) = chars.next() {
            if c == '"' {
                if chars.peek().is_some_and(|(_, next)| *next == '"') {
                    path.push('"');
                    chars.next();
                } else {
                    end = Some(at + 1);
                    break;
                }
            } else {
                path.push(c);
            }
        }
        (path, quoted.get(end?..)?.strip_prefix(',')?)
    } else {
        let (path, rest) = line.split_once(',')?;
        (path.to_string(), rest)
    };
    if path.is_empty() {
        return None;
    }
    let hash = rest
        .split(',')
        .next()
        .and_then(|h| h.strip_prefix("sha256="))
        .and_then(|b64| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64)
                .ok()
        })
        .map(|bytes| Recorded::Sha256(hex::encode(bytes)));
    Some((path, hash))
}

#[cfg(test)]
mod tests {
    use super::super::{FileDigests, Integrity};
    use super::*;

    const SITE: &str = "/opt/venv/lib/python3.11/site-packages";

    #[test]
    fn record_hashes_verify_files_and_direct_urls_are_origins() {
        let key = b"-----BEGIN PRIVATE KEY-----\n";
        let sha = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Digest::finalize(
            <sha2::Sha256 as sha2::Digest>::new_with_prefix(key),
        ));
        let record = format!(
            "twisted/test/server.pem,sha256={sha},5360\n\"odd,name.pem\",sha256={sha},1\n\
             twisted/__pycache__/x.cpython-311.pyc,,\n../../../bin/twistd,sha256={sha},9\n"
        );
        let record_path = format!("{SITE}/Twisted-26.10.0.dist-info/RECORD");
        let local_record = format!("{SITE}/acme_agent-0.1.dist-info/RECORD");
        let local_direct = format!("{SITE}/acme_agent-0.1.dist-info/direct_url.json");
        let files = [
            (record_path.as_str(), record.as_str()),
            (local_record.as_str(), "acme_agent/agent.key,,\n"),
            (
                local_direct.as_str(),
                r#"{"url": "file:///build/acme_agent-0.1-py3-none-any.whl", "archive_info": {}}"#,
            ),
        ];
        assert!(files.iter().all(|(path, _)| is_database_file(path)));
        let mut index = Index::default();
        read(&files, &mut index);
        let digests = FileDigests::of(key);
        let owner = |path: &str| index.owner(path, Some(&digests)).unwrap();
        let server = owner(&format!("{SITE}/twisted/test/server.pem"));
        assert_eq!(
            (
                server.ecosystem,
                server.name.as_str(),
                server.version.as_str()
            ),
            (Ecosystem::Pypi, "Twisted", "26.10.0")
        );
        assert_eq!(server.integrity, Integrity::Verified);
        assert_eq!(server.origin.as_deref(), Some(FROM_INDEX));
        assert_eq!(
            owner(&format!("{SITE}/odd,name.pem")).integrity,
            Integrity::Verified
        );
        assert_eq!(owner("/opt/venv/bin/twistd").name, "Twisted");
        let agent = owner(&format!("{SITE}/acme_agent/agent.key"));
        assert_eq!(
            agent.origin.as_deref(),
            Some("direct URL file:///build/acme_agent-0.1-py3-none-any.whl")
        );
        assert_eq!(agent.integrity, Integrity::Unrecorded);
    }

    #[test]
    fn egg_info_lists_files_relative_to_itself() {
        let path = "/usr/lib/python3/dist-packages/foo-1.2-py3.11.egg-info/installed-files.txt";
        let mut index = Index::default();
        read(&[(path, "../foo/key.pem\nPKG-INFO\n")], &mut index);
        let owner = index
            .owner("/usr/lib/python3/dist-packages/foo/key.pem", None)
            .unwrap();
        assert_eq!(
            (owner.name.as_str(), owner.version.as_str()),
            ("foo", "1.2")
        );
    }
}
