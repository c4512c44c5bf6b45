//! One row per rule: files that, scanned and analysed together, produce a finding of that rule.
//! A rule without a row fails the test, so every rule id a user can see is shown to be
//! reachable. (Test-only; each detector's own examples are in `detect::examples`.)

use crate::analyze::{Context, Observation, analyze};
use crate::detect::{Artifact, Options, scan_file};
use crate::finding::{Location, Rule};
use crate::packages::{Ecosystem, Integrity, Owner};
use crate::test_fixtures::fixture;

/// 2026-06-01T00:00:00Z, the clock the fixtures were made for.
const NOW: i64 = 1_780_272_000;

/// Where a file is in the image, and what it holds.
enum Content {
    Fixture(&'static str),
    Bytes(&'static [u8]),
    /// Fixtures concatenated into one file (a bundle).
    Bundle(&'static [&'static str]),
}

/// (the rule, the files in the image: path and content)
const ROWS: &[(Rule, &[(&str, Content)])] = {
    use Content::{Bundle, Bytes, Fixture};
    &[
        (
            Rule::CaPrivateKey,
            &[
                ("/srv/ca.pem", Fixture("certs/root-ca.pem")),
                ("/srv/ca.key", Fixture("keys/root-ca.key")),
            ],
        ),
        (
            Rule::IdentityKeyPair,
            &[
                ("/srv/tls.crt", Fixture("certs/leaf.pem")),
                ("/srv/tls.key", Fixture("keys/leaf.key")),
            ],
        ),
        (
            Rule::PrivateKey,
            &[("/root/key.pem", Fixture("keys/rsa-pkcs8.pem"))],
        ),
        (
            Rule::BuildGeneratedKey,
            &[("/etc/ssh/ssh_host_ed25519_key", Fixture("keys/ed25519.pem"))],
        ),
        (
            // With the owner a verified Debian package (set below).
            Rule::PackageKey,
            &[(
                "/usr/lib/x86_64-linux-gnu/libgnutls.so.30",
                Fixture("keys/rsa-pkcs8.pem"),
            )],
        ),
        (
            // Owned by a verified Debian package (set below), outside tests and code.
            Rule::PackageDefaultKey,
            &[(
                "/usr/share/jetty9/etc/server.key",
                Fixture("keys/rsa-pkcs8.pem"),
            )],
        ),
        (
            // The first file's owner is a verified Debian package (set below); the copy has none.
            Rule::KnownPublicKey,
            &[
                (
                    "/usr/lib/x86_64-linux-gnu/libgnutls.so.30",
                    Fixture("keys/rsa-pkcs8.pem"),
                ),
                ("/app/tls.key", Fixture("keys/rsa-pkcs8.pem")),
            ],
        ),
        (
            Rule::PrivateKeyEncrypted,
            &[("/root/key.pem", Fixture("keys/encrypted-pkcs8.pem"))],
        ),
        (
            Rule::KeystorePrivateKey,
            &[("/app/keystore.p12", Fixture("certs/bundle.p12"))],
        ),
        (
            Rule::KeystoreUnknownPassword,
            &[("/app/secret.p12", Fixture("certs/bundle-secret.p12"))],
        ),
        (
            Rule::KeystoreUnparseable,
            &[("/app/broken.p12", Bytes(b"this is not a keystore"))],
        ),
        (
            Rule::CertExpired,
            &[("/srv/old.pem", Fixture("certs/expired.pem"))],
        ),
        (
            Rule::CertExpiring,
            &[("/srv/soon.pem", Fixture("certs/expiring.pem"))],
        ),
        (
            Rule::CertNotYetValid,
            &[("/srv/future.pem", Fixture("certs/not-yet-valid.pem"))],
        ),
        (
            Rule::WeakKey,
            &[("/srv/weak.pem", Fixture("certs/rsa1024-weak.pem"))],
        ),
        (
            Rule::WeakSignature,
            &[("/srv/sha1.pem", Fixture("certs/sha1-signed.pem"))],
        ),
        (
            Rule::SelfSignedLeaf,
            &[("/srv/self.pem", Fixture("certs/self-signed-leaf.pem"))],
        ),
        (
            Rule::UnknownTrustAnchor,
            &[(
                "/etc/ssl/certs/ca-certificates.crt",
                Bundle(&["certs/root-ca.pem"]),
            )],
        ),
        (
            Rule::RemovedTrustAnchor,
            &[(
                "/etc/ssl/certs/ca-certificates.crt",
                Bundle(&["public/removed-root-baltimore.pem"]),
            )],
        ),
        (
            // The image's label names this root as injected (set below).
            Rule::InjectedTrustAnchor,
            &[(
                "/etc/ssl/certs/ca-certificates.crt",
                Bundle(&["certs/root-ca.pem"]),
            )],
        ),
        (
            Rule::PemUnparseable,
            &[(
                "/srv/broken.pem",
                Bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            )],
        ),
        (
            Rule::DerUnparseable,
            &[(
                "/srv/broken.der",
                Bytes(b"\x30\x82\x05\x00\x30\x82\x04\xff\x02\x01"),
            )],
        ),
        (
            // A file too large to open whole is noted; the note is what the analysis reports.
            Rule::ScanIncomplete,
            &[("/srv/huge.jar", Bytes(b""))],
        ),
    ]
};

fn observations(rule: Rule, files: &[(&str, Content)]) -> Vec<Observation> {
    let mut out = Vec::new();
    for (index, (path, content)) in files.iter().enumerate() {
        let bytes = match content {
            Content::Fixture(name) => fixture(name),
            Content::Bytes(bytes) => bytes.to_vec(),
            Content::Bundle(names) => names.iter().flat_map(|n| fixture(n)).collect(),
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        let mut detections: Vec<Artifact> = scan_file(name, &bytes, &Options::default())
            .into_iter()
            .map(|d| d.artifact)
            .collect();
        if rule == Rule::ScanIncomplete {
            detections.push(Artifact::LimitReached {
                reason: "archive larger than 32 MiB was not opened".into(),
            });
        }
        let owned = matches!(rule, Rule::PackageKey | Rule::PackageDefaultKey)
            || (rule == Rule::KnownPublicKey && index == 0);
        let owner = owned.then(|| Owner {
            ecosystem: Ecosystem::Dpkg,
            name: "libgnutls30".into(),
            version: "3.7.9-2+deb12u3".into(),
            origin: Some(
                "Debian GnuTLS Maintainers <pkg-gnutls-maint@lists.alioth.debian.org>".into(),
            ),
            integrity: Integrity::Verified,
            compiled_from: None,
        });
        out.extend(detections.into_iter().map(|artifact| Observation {
            artifact,
            package_directory: None,
            location: Location {
                path: Some((*path).to_string()),
                in_final_image: true,
                owner: owner.clone(),
                ..Location::default()
            },
        }));
    }
    out
}

#[test]
fn every_rule_has_a_row_that_produces_it() {
    let context = Context {
        now: NOW,
        expiry_warn_days: 30,
        ..Context::default()
    };
    for rule in Rule::ALL {
        let (_, files) = ROWS
            .iter()
            .find(|(r, _)| r == rule)
            .unwrap_or_else(|| panic!("rule `{}` has no row in ROWS", rule.id()));
        let observations = observations(*rule, files);
        let mut context = context.clone();
        if *rule == Rule::InjectedTrustAnchor {
            context.injected_cas = observations
                .iter()
                .filter_map(|o| match &o.artifact {
                    Artifact::Certificate { info, .. } => Some(info.fingerprint.clone()),
                    _ => None,
                })
                .collect();
        }
        let (findings, _) = analyze(observations, &context);
        assert!(
            findings.iter().any(|f| f.rule == *rule),
            "`{}` was not produced; got {:?}",
            rule.id(),
            findings.iter().map(|f| f.rule.id()).collect::<Vec<_>>()
        );
    }
}
