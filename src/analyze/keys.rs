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

/// Where a key is published: a verified file of a public package that holds it.
#[derive(Clone, Debug)]
pub(super) struct Published {
    pub owner: Owner,
    pub path: String,
}

/// The rule and message for a key that a public package publishes, found where that package
/// did not put it (no owner, another package, a changed file, the image configuration).
fn published_elsewhere(
    key: &str,
    published: &Published,
    certificate: Option<&(String, String, bool)>,
    note: &str,
) -> String {
    let owner = &published.owner;
    let pair = certificate
        .map(|(_, subject, _)| {
            format!("; its certificate `{subject}` is in the image too, a ready-made identity")
        })
        .unwrap_or_default();
    format!(
        "{key}private key is published in {} package {} {} ({}): anyone can impersonate whatever \
         uses it{pair}{note}",
        owner.ecosystem.as_str(),
        owner.name,
        owner.version,
        published.path
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
            let message = format!(
                "{key}private key ships unchanged in {} package {} {}: public test material, not a secret of this image{}",
                owner.ecosystem.as_str(),
                owner.name,
                owner.version,
                history_note(location)
            );
            out.push(finding(
                Rule::PackageKey,
                message,
                location,
                &info.fingerprint,
            ));
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
                "passphrase-protected {key}private key ({}){note}",
                info.format.as_str()
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
