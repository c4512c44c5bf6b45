//! What to write where: from the final filesystem view, the current contents of the trust
//! stores it has, and the CAs to add, decide every file of ocicert's layer and every env change.
//!
//! Pure and deterministic, so the same inputs always give the same layer. Reading the stores
//! from the image and building the tar are done by the caller.

use super::fsview::View;
use super::java;
use crate::truststore::{self, Role};
use crate::x509::CertInfo;
use base64::Engine as _;
use std::collections::{BTreeMap, HashMap};

/// The file with only the injected CAs (for `NODE_EXTRA_CA_CERTS`).
pub const INJECTED_ONLY: &str = "/usr/local/share/ocicert/injected-cas.pem";

const OS_RELEASE: &[&str] = &["/etc/os-release", "/usr/lib/os-release"];

/// A CA to inject.
#[derive(Clone, Debug)]
pub struct Ca {
    pub der: Vec<u8>,
    pub info: CertInfo,
    /// File stem used for anchors: `ocicert-<subject>-<fingerprint prefix>`.
    pub name: String,
    /// OpenSSL subject hash.
    pub hash: String,
}

impl Ca {
    /// Analyses a DER certificate for injection.
    pub fn new(der: Vec<u8>) -> Option<Self> {
        let info = crate::x509::analyze(&der).ok()?;
        let hash = super::subject_hash::subject_hash(&der)?;
        let subject = info
            .subject
            .split(", ")
            .find_map(|part| part.strip_prefix("CN="))
            .unwrap_or("ca")
            .to_ascii_lowercase();
        let slug: String = subject
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let slug = slug.trim_matches('-').chars().take(40).collect::<String>();
        let name = format!("ocicert-{slug}-{}", &info.fingerprint[7..19]);
        Some(Self {
            der,
            info,
            name,
            hash,
        })
    }

    /// The certificate as PEM text.
    pub fn pem(&self) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }
}

/// The distribution family, which decides where source anchors go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Family {
    Debian,
    Alpine,
    Wolfi,
    Rhel,
    Suse,
    Distroless,
    Busybox,
    Scratch,
    Other(String),
}

/// Settings from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    pub java_store_password: String,
    pub env_override: bool,
}

/// One entry of the new layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Directory,
    File(Vec<u8>),
    /// A file with mode 0755.
    Executable(Vec<u8>),
    Symlink(String),
}

/// A change to the config's `Env`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvChange {
    pub name: String,
    pub value: String,
    /// The value the image already had, which was kept (or overridden with `--env-override`).
    pub previous: Option<String>,
    pub applied: bool,
}

/// Everything the injection will do to one image.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub family: Option<Family>,
    /// Layer entries by absolute path.
    pub entries: BTreeMap<String, Entry>,
    /// Human-readable actions, in order.
    pub actions: Vec<String>,
    pub env: Vec<EnvChange>,
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Java store `{path}` cannot be updated")]
    Java {
        path: String,
        #[source]
        source: java::Error,
    },
}

fn is_java_store(path: &str) -> bool {
    truststore::has_role(path, Role::JavaStore)
}

fn is_certifi(path: &str) -> bool {
    truststore::has_role(path, Role::Certifi)
}

/// The resolved files whose current contents the plan needs.
pub fn needed_files(view: &View) -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    let mut push = |path: &str| {
        if let Some(resolved) = view.resolve(path)
            && view.content_of(&resolved).is_some()
            && !paths.contains(&resolved)
        {
            paths.push(resolved);
        }
    };
    OS_RELEASE.iter().for_each(|p| push(p));
    truststore::system_bundles().for_each(&mut push);
    let candidates: Vec<String> = view
        .paths()
        .filter(|p| is_java_store(p) || is_certifi(p))
        .map(str::to_string)
        .collect();
    candidates.iter().for_each(|p| push(p));
    paths
}

fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
}

/// Detects the distribution family from `/etc/os-release` and the paths that exist.
pub fn detect_family(view: &View, contents: &HashMap<String, Vec<u8>>) -> Family {
    let os_release = OS_RELEASE
        .iter()
        .filter_map(|p| view.resolve(p))
        .find_map(|p| contents.get(&p));
    let has_shell = view.exists("/bin/sh");
    if let Some(text) = os_release.map(|b| String::from_utf8_lossy(b).into_owned()) {
        let id = os_release_field(&text, "ID").unwrap_or_default();
        let like = os_release_field(&text, "ID_LIKE").unwrap_or_default();
        let words: Vec<&str> = std::iter::once(id.as_str())
            .chain(like.split_whitespace())
            .collect();
        let any = |names: &[&str]| words.iter().any(|w| names.contains(w));
        return if any(&["wolfi", "chainguard"]) {
            Family::Wolfi
        } else if any(&["alpine"]) {
            Family::Alpine
        } else if any(&["debian", "ubuntu"]) {
            if has_shell {
                Family::Debian
            } else {
                Family::Distroless
            }
        } else if any(&[
            "rhel",
            "fedora",
            "centos",
            "rocky",
            "almalinux",
            "amzn",
            "ol",
        ]) {
            Family::Rhel
        } else if any(&[
            "suse",
            "sles",
            "opensuse",
            "opensuse-leap",
            "opensuse-tumbleweed",
        ]) {
            Family::Suse
        } else {
            Family::Other(id)
        };
    }
    if view.exists("/bin/busybox") {
        Family::Busybox
    } else {
        Family::Scratch
    }
}

/// The DER certificates in a PEM bundle.
fn bundle_ders(bytes: &[u8]) -> Vec<Vec<u8>> {
    crate::detect::pem::blocks(bytes)
        .into_iter()
        .filter(|b| b.label.contains("CERTIFICATE"))
        .filter_map(|b| b.body.ok())
        .collect()
}

/// `existing` plus every CA it lacks, appended; `None` when nothing is missing.
fn merge_bundle(existing: &[u8], cas: &[Ca]) -> Option<Vec<u8>> {
    let present = bundle_ders(existing);
    let missing: Vec<&Ca> = cas
        .iter()
        .filter(|ca| {
            !present.iter().any(|der| {
                crate::x509::certificate_len(der).is_some_and(|n| der[..n] == ca.der[..])
            })
        })
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut out = existing.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    for ca in missing {
        out.extend_from_slice(format!("# ocicert: {}\n", ca.info.subject).as_bytes());
        out.extend_from_slice(ca.pem().as_bytes());
    }
    Some(out)
}

fn env_value<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|entry| entry.strip_prefix(name)?.strip_prefix('='))
}

/// Makes the plan for one image.
pub fn plan(
    view: &View,
    contents: &HashMap<String, Vec<u8>>,
    cas: &[Ca],
    env: &[String],
    settings: &Settings,
) -> Result<Plan, Error> {
    let family = detect_family(view, contents);
    let mut plan = Plan {
        family: Some(family.clone()),
        ..Plan::default()
    };
    let mut written: Vec<String> = Vec::new();

    // System bundles, each resolved target once.
    for bundle in truststore::system_bundles() {
        let Some(target) = view.resolve(bundle) else {
            continue;
        };
        if written.contains(&target) || !view.exists(bundle) {
            continue;
        }
        written.push(target.clone());
        let Some(existing) = contents.get(&target) else {
            continue;
        };
        match merge_bundle(existing, cas) {
            Some(merged) => {
                plan.actions.push(format!(
                    "append {} CA(s) to system bundle {target}{}",
                    cas.len(),
                    if target != *bundle {
                        format!(" (via {bundle})")
                    } else {
                        String::new()
                    }
                ));
                plan.entries.insert(target, Entry::File(merged));
            }
            None => plan
                .actions
                .push(format!("system bundle {target} already trusts every CA")),
        }
    }
    let no_store = written.is_empty();
    if no_store {
        let path = truststore::CREATED_BUNDLE.to_string();
        plan.actions
            .push(format!("create system bundle {path} (the image has none)"));
        plan.entries.insert(
            path,
            Entry::File(merge_bundle(&[], cas).unwrap_or_default()),
        );
    }

    // Only the injected CAs, for runtimes that add to their built-in roots.
    let injected: String = cas.iter().map(Ca::pem).collect();
    plan.entries.insert(
        INJECTED_ONLY.to_string(),
        Entry::File(injected.into_bytes()),
    );
    plan.actions
        .push(format!("write {INJECTED_ONLY} with only the injected CAs"));

    // Source anchors, so update-ca-certificates / update-ca-trust keep the CAs.
    let anchor_dir = match family {
        Family::Debian | Family::Alpine | Family::Wolfi | Family::Distroless => {
            Some(("/usr/local/share/ca-certificates", "crt"))
        }
        Family::Rhel => Some(("/etc/pki/ca-trust/source/anchors", "pem")),
        Family::Suse => Some(("/etc/pki/trust/anchors", "pem")),
        _ => None,
    };
    if let Some((dir, extension)) = anchor_dir {
        for ca in cas {
            let path = format!("{dir}/{}.{extension}", ca.name);
            plan.entries
                .insert(path.clone(), Entry::File(ca.pem().into_bytes()));
            plan.actions.push(format!("add source anchor {path}"));
        }
    }

    // OpenSSL hashed directory, as `openssl rehash` would name the links.
    let hashed_dir = view
        .resolve("/etc/ssl/certs")
        .unwrap_or_else(|| "/etc/ssl/certs".into());
    if view.exists(&hashed_dir)
        || no_store
        || matches!(
            family,
            Family::Debian | Family::Alpine | Family::Wolfi | Family::Distroless
        )
    {
        let already = |ca: &Ca| {
            written
                .iter()
                .filter_map(|t| contents.get(t))
                .any(|b| bundle_ders(b).contains(&ca.der))
        };
        for ca in cas.iter().filter(|ca| !already(ca)) {
            let file = format!("{hashed_dir}/{}.pem", ca.name);
            plan.entries
                .insert(file, Entry::File(ca.pem().into_bytes()));
            let mut index = 0;
            while view.exists(&format!("{hashed_dir}/{}.{index}", ca.hash)) {
                index += 1;
            }
            let link = format!("{hashed_dir}/{}.{index}", ca.hash);
            plan.actions
                .push(format!("add OpenSSL hash link {link} -> {}.pem", ca.name));
            plan.entries
                .insert(link, Entry::Symlink(format!("{}.pem", ca.name)));
        }
    }

    // Java stores and Python certifi bundles.
    let mut seen: Vec<String> = Vec::new();
    for path in view.paths().filter(|p| is_java_store(p) || is_certifi(p)) {
        let Some(target) = view.resolve(path) else {
            continue;
        };
        let Some(existing) = contents.get(&target) else {
            continue;
        };
        if seen.contains(&target) || written.contains(&target) {
            continue;
        }
        seen.push(target.clone());
        if is_certifi(&target) || (is_certifi(path) && !is_java_store(&target)) {
            if let Some(merged) = merge_bundle(existing, cas) {
                plan.actions.push(format!(
                    "append {} CA(s) to Python certifi bundle {target}",
                    cas.len()
                ));
                plan.entries.insert(target, Entry::File(merged));
            }
            continue;
        }
        let trusted: Vec<java::Trusted<'_>> = cas
            .iter()
            .map(|ca| java::Trusted {
                alias: format!("ocicert-{}", &ca.info.fingerprint[7..23]),
                der: &ca.der,
                created_millis: u64::try_from(ca.info.not_before_unix).unwrap_or(0) * 1000,
            })
            .collect();
        match java::add_trusted(existing, &settings.java_store_password, &trusted) {
            Ok(Some(updated)) => {
                plan.actions.push(format!(
                    "add {} trusted entr(ies) to Java store {target}",
                    cas.len()
                ));
                plan.entries.insert(target, Entry::File(updated));
            }
            Ok(None) => plan
                .actions
                .push(format!("Java store {target} already trusts every CA")),
            Err(source) => {
                return Err(Error::Java {
                    path: target,
                    source,
                });
            }
        }
    }

    // Environment.
    let mut wanted = vec![("NODE_EXTRA_CA_CERTS", INJECTED_ONLY.to_string())];
    if no_store {
        wanted.push(("SSL_CERT_FILE", truststore::CREATED_BUNDLE.to_string()));
    }
    for (name, value) in wanted {
        let previous = env_value(env, name).map(str::to_string);
        let applied = previous.is_none() || settings.env_override;
        if previous.as_deref() == Some(value.as_str()) {
            continue;
        }
        plan.actions.push(match (&previous, applied) {
            (None, _) => format!("set env {name}={value}"),
            (Some(old), true) => format!("override env {name}={value} (was {old}; --env-override)"),
            (Some(old), false) => {
                format!("keep env {name}={old} (not overridden; --env-override would set {value})")
            }
        });
        plan.env.push(EnvChange {
            name: name.to_string(),
            value,
            previous,
            applied,
        });
    }

    // Parent directories that the image does not have yet.
    let parents: Vec<String> = plan
        .entries
        .keys()
        .flat_map(|path| {
            let mut dirs = Vec::new();
            let mut current = path.as_str();
            while let Some((parent, _)) = current.rsplit_once('/') {
                if parent.is_empty() {
                    break;
                }
                dirs.push(parent.to_string());
                current = parent;
            }
            dirs
        })
        .collect();
    for dir in parents {
        if !view.exists(&dir) {
            plan.entries.entry(dir).or_insert(Entry::Directory);
        }
    }
    Ok(plan)
}

/// Applies the env changes to a config's `Env` list.
pub fn apply_env(env: &mut Vec<String>, changes: &[EnvChange]) {
    for change in changes.iter().filter(|c| c.applied) {
        env.retain(|entry| {
            entry.split_once('=').map(|(name, _)| name) != Some(change.name.as_str())
        });
        env.push(format!("{}={}", change.name, change.value));
    }
}
