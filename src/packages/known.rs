//! The curated list of private keys that public packages publish (`src/known-public-keys.txt`,
//! written by `scripts/gen-known-keys.sh` from the packages themselves): fingerprints only, each
//! with the package, version and path it came from. It complements the keys an image's own
//! verified package files publish; it does not say who owns a file.

use std::collections::HashMap;
use std::sync::OnceLock;

const LIST: &str = include_str!("../known-public-keys.txt");

/// Where a listed key is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    pub ecosystem: &'static str,
    pub name: &'static str,
    pub version: &'static str,
    pub path: &'static str,
}

fn table() -> &'static HashMap<&'static str, Known> {
    static TABLE: OnceLock<HashMap<&'static str, Known>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for line in LIST
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let mut fields = line.splitn(5, ' ');
            if let (Some(fingerprint), Some(ecosystem), Some(name), Some(version), Some(path)) = (
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
            ) {
                table.entry(fingerprint).or_insert(Known {
                    ecosystem,
                    name,
                    version,
                    path,
                });
            }
        }
        table
    })
}

/// The package that publishes the key with this fingerprint (`sha256:…`), if it is listed.
pub fn lookup(fingerprint: &str) -> Option<Known> {
    table().get(fingerprint).copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_list_parses_and_names_a_package_for_each_key() {
        let lines = super::LIST
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        assert!(lines >= 10, "{lines}");
        assert_eq!(super::table().len(), lines, "one line per fingerprint");
        for known in super::table().values() {
            assert!(
                !known.name.is_empty() && known.path.starts_with('/'),
                "{known:?}"
            );
        }
        // Tornado's test key, whoever installed it.
        let tornado = super::table()
            .values()
            .find(|k| k.path.ends_with("tornado/test/test.key"))
            .expect("tornado's test key is listed");
        assert!(tornado.name.contains("tornado"));
        assert_eq!(super::lookup("sha256:not-a-key"), None);
    }
}
