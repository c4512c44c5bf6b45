//! Owners by directory, for package managers that keep no per-file record: npm
//! (`node_modules/[@scope/]name/package.json` owns its directory, apart from nested
//! `node_modules`), Go's module cache (`pkg/mod/<module>@<version>/`) and Cargo's registry
//! sources (`registry/src/<index>/<crate>-<version>/`, and Debian's
//! `/usr/share/cargo/registry/<crate>-<version>/`). Nothing records these files' bytes, so
//! their integrity is always `unrecorded`.

use super::{Ecosystem, Index, Package};

/// A `package.json` at the top of an npm package directory.
pub fn is_database_file(path: &str) -> bool {
    npm_root(path).is_some()
}

/// The package directory a `package.json` describes, if it is at the top of one.
fn npm_root(path: &str) -> Option<&str> {
    let directory = path.strip_suffix("/package.json")?;
    let (parent, _) = directory.rsplit_once('/')?;
    let parent = match parent.rsplit_once('/') {
        Some((grandparent, scope)) if scope.starts_with('@') => grandparent,
        _ => parent,
    };
    parent.ends_with("/node_modules").then_some(directory)
}

/// Reads npm's `package.json` files among `files` into `index` as directory owners.
pub fn read(files: &[(&str, &str)], index: &mut Index) {
    for (path, text) in files {
        let Some(directory) = npm_root(path) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
            continue;
        };
        let field = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let Some(name) = field("name") else {
            continue;
        };
        let package = index.add_package(Package {
            ecosystem: Ecosystem::Npm,
            name,
            version: field("version").unwrap_or_default(),
            origin: field("_resolved"),
        });
        index.own_tree(directory.to_string(), package);
    }
}

/// The Go module or Cargo crate whose source directory holds `path`, from the path alone.
pub fn by_path(path: &str) -> Option<Package> {
    go_module(path).or_else(|| cargo_crate(path))
}

fn go_module(path: &str) -> Option<Package> {
    let (_, below) = path.split_once("/pkg/mod/")?;
    if below.starts_with("cache/") {
        return None;
    }
    let at = below.find('@')?;
    let version_end = below[at..].find('/').map(|end| at + end)?;
    Some(Package {
        ecosystem: Ecosystem::Go,
        name: decode_module(&below[..at]),
        version: below[at + 1..version_end].to_string(),
        origin: Some("Go module cache".into()),
    })
}

/// The module cache writes an upper-case letter as `!` and its lower case.
fn decode_module(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut upper = false;
    for c in encoded.chars() {
        if c == '!' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn cargo_crate(path: &str) -> Option<Package> {
    let directory = if let Some((_, below)) = path.split_once("/registry/src/") {
        // `<index-dir>/<crate>-<version>/…`
        below.split('/').nth(1)?
    } else {
        path.strip_prefix("/usr/share/cargo/registry/")?
            .split('/')
            .next()?
    };
    if !path.contains(&format!("{directory}/")) {
        return None;
    }
    // The version is what follows the first `-` that a digit follows.
    let split = directory
        .char_indices()
        .find(|(at, c)| *c == '-' && directory[at + 1..].starts_with(|d: char| d.is_ascii_digit()))?
        .0;
    Some(Package {
        ecosystem: Ecosystem::Cargo,
        name: directory[..split].to_string(),
        version: directory[split + 1..].to_string(),
        origin: Some("Cargo registry".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Integrity;
    use super::*;

    #[test]
    fn npm_packages_own_their_directory_but_not_nested_packages() {
        let files = [
            (
                "/app/node_modules/@acme/tls/package.json",
                r#"{"name": "@acme/tls", "version": "2.0.1", "_resolved": "https://npm.acme.example/@acme/tls/-/tls-2.0.1.tgz"}"#,
            ),
            (
                "/app/node_modules/@acme/tls/node_modules/left-pad/package.json",
                r#"{"name": "left-pad", "version": "1.3.0"}"#,
            ),
            (
                "/app/node_modules/@acme/tls/lib/package.json",
                r#"{"name": "x"}"#,
            ),
        ];
        assert!(is_database_file(files[0].0) && is_database_file(files[1].0));
        assert!(
            !is_database_file(files[2].0),
            "a package.json below the top"
        );
        let index = Index::build(files);
        let owner = |path| index.owner(path, None).map(|o| (o.name, o.integrity));
        assert_eq!(
            owner("/app/node_modules/@acme/tls/test/key.pem"),
            Some(("@acme/tls".into(), Integrity::Unrecorded))
        );
        assert_eq!(
            owner("/app/node_modules/@acme/tls/node_modules/left-pad/k.pem"),
            Some(("left-pad".into(), Integrity::Unrecorded))
        );
        assert_eq!(owner("/app/src/key.pem"), None);
    }

    #[test]
    fn go_modules_and_cargo_crates_are_named_by_their_directory() {
        let go = by_path("/root/go/pkg/mod/github.com/!burnt!sushi/toml@v1.3.2/testdata/key.pem")
            .unwrap();
        assert_eq!(
            (go.ecosystem, go.name.as_str(), go.version.as_str()),
            (Ecosystem::Go, "github.com/BurntSushi/toml", "v1.3.2")
        );
        assert!(by_path("/root/go/pkg/mod/cache/download/x@v1/key.pem").is_none());
        let cargo = by_path(
            "/root/.cargo/registry/src/index.crates.io-6f17d22bba15001f/rustls-webpki-0.102.8/tests/ee.pem",
        )
        .unwrap();
        assert_eq!(
            (cargo.name.as_str(), cargo.version.as_str()),
            ("rustls-webpki", "0.102.8")
        );
        let debian = by_path("/usr/share/cargo/registry/ring-0.17.8/tests/rsa.pem").unwrap();
        assert_eq!(
            (debian.name.as_str(), debian.version.as_str()),
            ("ring", "0.17.8")
        );
        assert!(by_path("/usr/share/cargo/registry/README").is_none());
    }
}
