//! Key findings: which rule a private key raises, from what it is paired with and who owns the
//! file it is in. It does not find or pair keys: the parent does.

use super::{Context, finding, history_note};
use crate::detect::KeystoreKind;
use crate::finding::{Finding, Location, Rule};
use crate::keys::KeyInfo;
use crate::packages::{
    self, Integrity, Owner,
    generated::{self, Generated},
};

fn describe_key(info: &KeyInfo) -> String {
    if info.algorithm == "unknown" {
        return String::new();
    }
    let mut text = info.algorithm.to_uppercase();
    if let Some(curve) = &info.curve {
        text.push_str(&format!(" {curve}"));
    } else if let Some(bits) = info.bits {
        text.push_str(&format!(" {bits}-bit"));
    }
    text.push(' ');
    text
}

/// `, PBES1 MD5-DES: weak encryption; it opens with a well-known default passphrase`
fn encryption_note(info: &KeyInfo) -> String {
    let Some(encryption) = &info.encryption else {
        return String::new();
    };
    let mut text = format!(", {}", encryption.scheme);
    if encryption.weak {
        text.push_str(": weak encryption, barely better than none");
    }
    if let Some(kind) = &encryption.opened_with {
        text.push_str(&format!(
            "; it opens with {} passphrase, so it is as exposed as an unencrypted key",
            if kind == "empty" {
                "the empty".to_string()
            } else {
                format!("a {kind}")
            }
        ));
    }
    text
}

/// What a key's owner says about it.
#[derive(Clone)]
pub(super) enum Ownership {
    /// Unchanged in a public package: every copy of the package holds it.
    Public(Owner),
    /// Written by a package's installer while the image was built.
    Generated(&'static Generated),
    /// The rule stands; this says why the owner does not make it public.
    Note(String),
}

impl Ownership {
    pub(super) fn of(
        location: &Location,
        package_directory: Option<&str>,
        context: &Context,
    ) -> Self {
        let path = location.path.as_deref().unwrap_or_default();
        let Some(owner) = &location.owner else {
            if let Some(generated) = generated::generator(path) {
                return Self::Generated(generated);
            }
            return Self::Note(match package_directory {
                Some(package) => format!(
                    "; it is in the directory of package {package} but in no package's file list"
                ),
                None => String::new(),
            });
        };
        let package = format!(
            "{} package {} {}",
            owner.ecosystem.as_str(),
            owner.name,
            owner.version
        );
        Self::Note(match owner.integrity {
            Integrity::Modified => format!(
                "; the file differs from what {package} installed: changed after installation"
            ),
            Integrity::Unrecorded => format!(
                "; {package} records no checksum for it, so it cannot be shown to be the package's"
            ),
            Integrity::Verified if packages::is_public(owner, &context.public_origins) => {
                return Self::Public(owner.clone());
            }
            Integrity::Verified => format!(
                "; {package} comes from {}, not a public distribution: a private package may carry a production key",
                owner.origin.as_deref().unwrap_or("an unknown origin")
            ),
        })
    }
}

/// Path components that make a package's file test or reference material.
const TEST_DIRECTORIES: &[&str] = &[
    "test", "tests", "testdata", "testing", "fixtures", "fixture", "examples", "example",
    "samples", "sample", "doc", "docs",
];

/// File name endings of code and libraries, which embed a key rather than serve it.
const CODE_SUFFIXES: &[&str] = &[
    ".so", ".a", ".dll", ".dylib", ".node", ".wasm", ".exe", ".jar", ".class", ".py", ".pyc",
    ".pyo", ".js", ".mjs", ".cjs", ".ts", ".rb", ".go", ".java", ".c", ".h", ".rs", ".pl", ".pm",
    ".php", ".lua",
];

/// Whether a package's key at `location` is test or reference material (under a test or
/// documentation directory, in a test's own file) or embedded in code (a library, a program, a
/// source file, an archive): `package-key`. Anything else is a key file the package installs as
/// such, which a server may load by default: `package-default-key`.
pub(super) fn is_test_or_code(location: &Location) -> bool {
    if location.archive_path.is_some() {
        return true;
    }
    let path = location.path.as_deref().unwrap_or_default();
    let (directories, name) = path.rsplit_once('/').unwrap_or(("", path));
    let lower = name.to_ascii_lowercase();
    directories.split('/').any(|component| {
        let component = component.to_ascii_lowercase();
        TEST_DIRECTORIES.contains(&component.as_str())
            || matches!(
                component.as_str(),
                "bin" | "sbin" | "libexec" | "__pycache__"
            )
    }) || lower.starts_with("test_")
        || lower.contains("_test.")
        || lower.contains(".so.")
        || CODE_SUFFIXES.iter().any(|suffix| lower.ends_with(suffix))
}

/// Where a key is published: a verified file of a public package in the image, or the curated
/// list (`packages::known`).
#[derive(Clone, Debug)]
pub(super) struct Published {
    /// `pypi package tornado 6.4.2`
    pub package: String,
    pub path: String,
}

impl Published {
    pub(super) fn in_image(owner: &Owner, path: String) -> Self {
        Self {
            package: format!(
                "{} package {} {}",
                owner.ecosystem.as_str(),
                owner.name,
                owner.version
            ),
            path,
        }
    }

    pub(super) fn listed(fingerprint: &str) -> Option<Self> {
        let known = packages::known::lookup(fingerprint)?;
        Some(Self {
            package: format!(
                "{} package {} {}",
                known.ecosystem, known.name, known.version
            ),
            path: known.path.to_string(),
        })
    }
}

/// The message for a key that a public package publishes, found where that package did not
/// put it (no owner, another package, a changed file, the image configuration).
fn published_elsewhere(
    key: &str,
    published: &Published,
    certificate: Option<&(String, String, bool)>,
    note: &str,
) -> String {
    let pair = certificate
        .map(|(_, subject, _)| {
            format!("; its certificate `{subject}` is in the image too, a ready-made identity")
        })
        .unwrap_or_default();
    format!(
        "{key}private key is published in {} ({}): anyone can impersonate whatever uses it{pair}{note}",
        published.package, published.path
    )
}

pub(super) fn key_findings(
    info: &KeyInfo,
    keystore: Option<KeystoreKind>,
    certificate: Option<&(String, String, bool)>,
    location: &Location,
    (ownership, published): (&Ownership, Option<&Published>),
    out: &mut Vec<Finding>,
) {
    let key = describe_key(info);
    if let (Ownership::Note(why), Some(published)) = (ownership, published) {
        let note = format!("{why}{}", history_note(location));
        let message = published_elsewhere(&key, published, certificate, &note);
        out.push(finding(
            Rule::KnownPublicKey,
            message,
            location,
            &info.fingerprint,
        ));
        return;
    }
    match ownership {
        Ownership::Public(owner) => {
            let package = format!(
                "{} package {} {}",
                owner.ecosystem.as_str(),
                owner.name,
                owner.version
            );
            let (rule, message) = if is_test_or_code(location) {
                (
                    Rule::PackageKey,
                    format!(
                        "{key}private key ships unchanged in {package}: public test material, not a secret of this image{}",
                        history_note(location)
                    ),
                )
            } else {
                (
                    Rule::PackageDefaultKey,
                    format!(
                        "{key}private key ships unchanged in {package} where a server may load it by default: it is public, so make sure no service uses it{}",
                        history_note(location)
                    ),
                )
            };
            out.push(finding(rule, message, location, &info.fingerprint));
            return;
        }
        Ownership::Generated(generated) => {
            let message = format!(
                "{key}private key at the path where {}'s install script generates it while the image is built: every container started from this image shares it; {}, or use `ocicert inject --enroll`{}",
                generated.package,
                generated.fix,
                history_note(location)
            );
            out.push(finding(
                Rule::BuildGeneratedKey,
                message,
                location,
                &info.fingerprint,
            ));
            return;
        }
        Ownership::Note(_) => {}
    }
    let note = match ownership {
        Ownership::Note(why) => format!("{why}{}", history_note(location)),
        _ => history_note(location).to_string(),
    };
    let (rule, message) = match (keystore, certificate) {
        (Some(kind), Some((_, subject, _))) => (
            Rule::KeystorePrivateKey,
            format!(
                "{} keystore holds the {key}private key of `{subject}`{note}",
                kind.as_str()
            ),
        ),
        (Some(kind), None) => (
            Rule::KeystorePrivateKey,
            format!("{} keystore holds a {key}private key{note}", kind.as_str()),
        ),
        (None, Some((_, subject, true))) => (
            Rule::CaPrivateKey,
            format!("{key}private key of CA `{subject}` ships in the image{note}"),
        ),
        (None, Some((_, subject, false))) if !info.encrypted => (
            Rule::IdentityKeyPair,
            format!("{key}private key ships with its certificate `{subject}`{note}"),
        ),
        (None, _) if info.encrypted => (
            Rule::PrivateKeyEncrypted,
            format!(
                "passphrase-protected {key}private key ({}{}){note}",
                info.format.as_str(),
                encryption_note(info)
            ),
        ),
        (None, _) => (
            Rule::PrivateKey,
            format!(
                "unencrypted {key}private key ({}){note}",
                info.format.as_str()
            ),
        ),
    };
    out.push(finding(rule, message, location, &info.fingerprint));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_tests_documentation_and_code_are_test_material_others_are_defaults() {
        let at = |path: &str, archive: Option<&str>| Location {
            path: Some(path.into()),
            archive_path: archive.map(str::to_string),
            ..Location::default()
        };
        for path in [
            "/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3",
            "/usr/lib/python3/dist-packages/twisted/test/server.pem",
            "/usr/lib/python3/dist-packages/twisted/conch/test/__pycache__/keydata.cpython-311.pyc",
            "/usr/share/doc/openssl/demos/server.key",
            "/usr/lib/go-1.19/src/crypto/tls/testdata/example-key.pem",
            "/usr/lib/node_modules/x/lib/tls.js",
            "/usr/bin/some-daemon",
            "/opt/venv/lib/python3.11/site-packages/pkg/test_ssl.py",
        ] {
            assert!(is_test_or_code(&at(path, None)), "{path}");
        }
        assert!(is_test_or_code(&at(
            "/usr/share/java/x.jar",
            Some("keys/server.key")
        )));
        for path in [
            "/usr/share/jetty9/modules/ssl/keystore",
            "/usr/share/nodejs/rai/cert/server.key",
            "/etc/someserver/ssl/default.pem",
        ] {
            assert!(!is_test_or_code(&at(path, None)), "{path}");
        }
    }
}
