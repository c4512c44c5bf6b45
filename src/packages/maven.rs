//! Maven artifacts: a jar (war, ear) with exactly one `META-INF/maven/<group>/<artifact>/
//! pom.properties` is that artifact, and a key inside it is the artifact's. A layer keeps the
//! properties of jars that have detections (`record`), under the jar's path plus
//! `!/pom.properties`. Nothing records a jar's bytes in an image, so integrity is
//! `unrecorded`. A fat jar's nested jars are not attributed one by one.

use super::{Ecosystem, Index, Package};
use std::io::Read;

const SUFFIX: &str = "!/pom.properties";

/// The largest `pom.properties` read.
const MAX_PROPERTIES: u64 = 64 * 1024;

/// For a jar with detections: the record a layer keeps (its path and `pom.properties`).
pub fn record(path: &str, bytes: &[u8]) -> Option<(String, String)> {
    let lower = path.to_ascii_lowercase();
    if ![".jar", ".war", ".ear"].iter().any(|e| lower.ends_with(e)) {
        return None;
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).ok()?;
    let names: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| n.starts_with("META-INF/maven/") && n.ends_with("/pom.properties"))
        .map(|n| n.into_owned())
        .collect();
    let [name] = names.as_slice() else {
        return None;
    };
    let mut text = String::new();
    archive
        .by_name(name)
        .ok()?
        .take(MAX_PROPERTIES)
        .read_to_string(&mut text)
        .ok()?;
    Some((format!("{path}{SUFFIX}"), text))
}

/// Reads the jar records among `files` into `index`.
pub fn read(files: &[(&str, &str)], index: &mut Index) {
    for (path, text) in files {
        let Some(jar) = path.strip_suffix(SUFFIX) else {
            continue;
        };
        let property = |key: &str| {
            text.lines().find_map(|line| {
                let (k, v) = line.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        let (Some(group), Some(artifact)) = (property("groupId"), property("artifactId")) else {
            continue;
        };
        let package = index.add_package(Package {
            ecosystem: Ecosystem::Maven,
            name: format!("{group}:{artifact}"),
            version: property("version").unwrap_or_default(),
            origin: None,
        });
        index.own(jar.to_string(), package, None);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Integrity;
    use super::*;
    use std::io::Write as _;

    fn jar(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, text) in entries {
            writer
                .start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(text.as_bytes()).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn a_jar_is_its_artifact() {
        let bytes = jar(&[
            (
                "META-INF/maven/org.acme/tls-test/pom.properties",
                "#Generated\nversion=2.1.0\ngroupId=org.acme\nartifactId=tls-test\n",
            ),
            ("test.key", "-----BEGIN PRIVATE KEY-----\n"),
        ]);
        let (path, text) = record("/app/lib/tls-test-2.1.0.jar", &bytes).unwrap();
        let index = Index::build([(path.as_str(), text.as_str())]);
        let owner = index.owner("/app/lib/tls-test-2.1.0.jar", None).unwrap();
        assert_eq!(
            (owner.ecosystem, owner.name.as_str(), owner.version.as_str()),
            (Ecosystem::Maven, "org.acme:tls-test", "2.1.0")
        );
        assert_eq!(owner.integrity, Integrity::Unrecorded);
        assert!(record("/app/lib/x.zip", &bytes).is_none(), "only jars");
        let two = jar(&[
            (
                "META-INF/maven/a/a/pom.properties",
                "groupId=a\nartifactId=a\n",
            ),
            (
                "META-INF/maven/b/b/pom.properties",
                "groupId=b\nartifactId=b\n",
            ),
        ]);
        assert!(
            record("/app/shaded.jar", &two).is_none(),
            "a shaded jar is no one artifact"
        );
        assert!(record("/app/broken.jar", b"PK not a zip").is_none());
    }
}
