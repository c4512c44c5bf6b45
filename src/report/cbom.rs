//! CycloneDX 1.6 cryptography bill of materials (CBOM): every certificate and private key as a
//! `cryptographic-asset` component, with the algorithms and public keys they refer to, and
//! where each was found.
//!
//! The structs are written by hand because the `cyclonedx-bom` crate stops at CycloneDX 1.5,
//! which has no `cryptoProperties`; only the fields we fill are modelled. This is an inventory,
//! not a vulnerability report: findings appear only as `ocicert:finding` properties. It never
//! carries key material (`relatedCryptoMaterialProperties.value` is never written).

use super::Report;
use crate::analyze::{CertificateEntry, KeyEntry};
use crate::finding::Location;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    pub bom_format: &'static str,
    pub spec_version: &'static str,
    pub serial_number: String,
    pub version: u32,
    pub metadata: Metadata,
    pub components: Vec<Component>,
}

#[derive(Debug, Serialize)]
pub struct Metadata {
    pub timestamp: String,
    pub tools: Tools,
    pub component: Component,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
}

#[derive(Debug, Serialize)]
pub struct Tools {
    pub components: Vec<Component>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crypto_properties: Option<CryptoProperties>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CryptoProperties {
    pub asset_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm_properties: Option<AlgorithmProperties>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_properties: Option<CertificateProperties>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related_crypto_material_properties: Option<RelatedCryptoMaterialProperties>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oid: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlgorithmProperties {
    pub primitive: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter_set_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
    pub crypto_functions: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateProperties {
    pub subject_name: String,
    pub issuer_name: String,
    pub not_valid_before: String,
    pub not_valid_after: String,
    pub signature_algorithm_ref: String,
    pub subject_public_key_ref: String,
    pub certificate_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_extension: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelatedCryptoMaterialProperties {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secured_by: Option<SecuredBy>,
}

#[derive(Debug, Serialize)]
pub struct SecuredBy {
    pub mechanism: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Evidence {
    pub occurrences: Vec<Occurrence>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Occurrence {
    pub location: String,
    pub additional_context: String,
}

#[derive(Debug, Serialize)]
pub struct Property {
    pub name: String,
    pub value: String,
}

fn property(name: &str, value: impl std::fmt::Display) -> Property {
    Property {
        name: format!("ocicert:{name}"),
        value: value.to_string(),
    }
}

/// OIDs of common signature algorithms, by x509-parser short name.
fn signature_oid(name: &str) -> Option<&'static str> {
    Some(match name {
        "md5WithRSAEncryption" => "1.2.840.113549.1.1.4",
        "sha1WithRSAEncryption" => "1.2.840.113549.1.1.5",
        "sha256WithRSAEncryption" => "1.2.840.113549.1.1.11",
        "sha384WithRSAEncryption" => "1.2.840.113549.1.1.12",
        "sha512WithRSAEncryption" => "1.2.840.113549.1.1.13",
        "rsassa-pss" | "RSASSA-PSS" => "1.2.840.113549.1.1.10",
        "ecdsa-with-SHA1" => "1.2.840.10045.4.1",
        "ecdsa-with-SHA256" => "1.2.840.10045.4.3.2",
        "ecdsa-with-SHA384" => "1.2.840.10045.4.3.3",
        "ecdsa-with-SHA512" => "1.2.840.10045.4.3.4",
        "ed25519" | "ED25519" => "1.3.101.112",
        "ed448" | "ED448" => "1.3.101.113",
        _ => return None,
    })
}

/// The (bom-ref, component) of a public-key algorithm: `rsa` 2048, `ec` P-256, `ed25519`.
fn key_algorithm(algorithm: &str, bits: Option<u32>, curve: Option<&str>) -> (String, Component) {
    let lower = algorithm.to_ascii_lowercase();
    let (primitive, functions) = if lower.contains("x25519") || lower.contains("x448") {
        ("key-agree", vec!["keygen"])
    } else if lower == "rsa" || lower.contains("ssh-rsa") {
        ("pke", vec!["encrypt", "decrypt", "sign", "verify"])
    } else if lower == "unknown" || lower == "pgp" {
        ("unknown", vec!["unknown"])
    } else {
        ("signature", vec!["sign", "verify"])
    };
    let mut name = algorithm.to_ascii_uppercase();
    if let Some(curve) = curve {
        name.push_str(&format!("-{curve}"));
    } else if let Some(bits) = bits {
        name.push_str(&format!("-{bits}"));
    }
    let reference = format!("crypto/algorithm/{}", name.to_ascii_lowercase());
    let component = Component {
        kind: "cryptographic-asset",
        bom_ref: Some(reference.clone()),
        name,
        crypto_properties: Some(CryptoProperties {
            asset_type: "algorithm",
            algorithm_properties: Some(AlgorithmProperties {
                primitive,
                parameter_set_identifier: bits.map(|b| b.to_string()),
                curve: curve.map(str::to_string),
                crypto_functions: functions,
            }),
            certificate_properties: None,
            related_crypto_material_properties: None,
            oid: None,
        }),
        ..Component::default()
    };
    (reference, component)
}

fn signature_algorithm(name: &str) -> (String, Component) {
    let reference = format!("crypto/algorithm/{}", name.to_ascii_lowercase());
    let component = Component {
        kind: "cryptographic-asset",
        bom_ref: Some(reference.clone()),
        name: name.to_string(),
        crypto_properties: Some(CryptoProperties {
            asset_type: "algorithm",
            algorithm_properties: Some(AlgorithmProperties {
                primitive: "signature",
                parameter_set_identifier: None,
                curve: None,
                crypto_functions: vec!["sign", "verify"],
            }),
            certificate_properties: None,
            related_crypto_material_properties: None,
            oid: signature_oid(name),
        }),
        ..Component::default()
    };
    (reference, component)
}

fn occurrence(location: &Location, platform: Option<&str>) -> Occurrence {
    let mut context = Vec::new();
    if let Some(platform) = platform {
        context.push(platform.to_string());
    }
    match (location.layer_index, &location.layer_digest) {
        (Some(index), Some(digest)) => context.push(format!("layer {index} {digest}")),
        (Some(index), None) => context.push(format!("layer {index}")),
        _ if location.config_field.is_some() => context.push("image configuration".into()),
        _ => {}
    }
    context.push(if location.in_final_image {
        "in the final image".into()
    } else {
        "deleted in a later layer, still in the image history".into()
    });
    if let Some(owner) = &location.owner {
        context.push(format!("owned by {owner}"));
    }
    Occurrence {
        location: location.display_path(),
        additional_context: context.join("; "),
    }
}

/// One `ocicert:owner` property per distinct package the asset's files belong to.
fn owners(locations: &[Location]) -> Vec<Property> {
    let owners: std::collections::BTreeSet<String> = locations
        .iter()
        .filter_map(|l| l.owner.as_ref().map(ToString::to_string))
        .collect();
    owners.into_iter().map(|o| property("owner", o)).collect()
}

fn hex_of(fingerprint: &str) -> &str {
    fingerprint
        .split_once(':')
        .map_or(fingerprint, |(_, hex)| hex)
}

/// Collects components by bom-ref, merging occurrences of the same asset across platforms.
#[derive(Default)]
struct Components {
    by_ref: BTreeMap<String, Component>,
}

impl Components {
    fn add(&mut self, component: Component) {
        let Some(reference) = component.bom_ref.clone() else {
            return;
        };
        match self.by_ref.get_mut(&reference) {
            Some(existing) => {
                if let (Some(theirs), Some(ours)) = (component.evidence, &mut existing.evidence) {
                    for occurrence in theirs.occurrences {
                        if !ours.occurrences.contains(&occurrence) {
                            ours.occurrences.push(occurrence);
                        }
                    }
                }
            }
            None => {
                self.by_ref.insert(reference, component);
            }
        }
    }
}

fn certificate(
    entry: &CertificateEntry,
    platform: Option<&str>,
    rules: &[String],
    out: &mut Components,
) {
    let info = &entry.info;
    let (signature_ref, signature) = signature_algorithm(&info.signature_algorithm);
    out.add(signature);
    let (key_algorithm_ref, algorithm) =
        key_algorithm(&info.key_algorithm, info.key_bits, info.curve.as_deref());
    out.add(algorithm);
    let public_key_ref = format!("crypto/public-key/{}", info.spki_sha256);
    out.add(Component {
        kind: "cryptographic-asset",
        bom_ref: Some(public_key_ref.clone()),
        name: format!("public key of {}", info.subject),
        crypto_properties: Some(CryptoProperties {
            asset_type: "related-crypto-material",
            algorithm_properties: None,
            certificate_properties: None,
            related_crypto_material_properties: Some(RelatedCryptoMaterialProperties {
                kind: "public-key",
                id: format!("sha256:{}", info.spki_sha256),
                algorithm_ref: Some(key_algorithm_ref),
                size: info.key_bits,
                format: Some("SubjectPublicKeyInfo".into()),
                secured_by: None,
            }),
            oid: None,
        }),
        ..Component::default()
    });
    let extension = entry
        .locations
        .iter()
        .filter_map(|l| l.path.as_deref())
        .filter_map(|path| path.rsplit('/').next()?.rsplit_once('.'))
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .find(|extension| (2..=5).contains(&extension.len()));
    let mut properties = vec![
        property("fingerprint", &info.fingerprint),
        property("serial", &info.serial),
        property("status", serde_plain(&entry.status)),
        property("days-left", entry.days_left),
        property("ca", info.is_ca),
        property("trust-anchor", entry.trust_anchor),
        property("in-mozilla-roots", entry.in_mozilla_roots),
        property("private-key-in-image", entry.private_key_in_image),
    ];
    properties.extend(owners(&entry.locations));
    properties.extend(rules.iter().map(|rule| property("finding", rule)));
    out.add(Component {
        kind: "cryptographic-asset",
        bom_ref: Some(format!("crypto/certificate/{}", hex_of(&info.fingerprint))),
        name: info.subject.clone(),
        crypto_properties: Some(CryptoProperties {
            asset_type: "certificate",
            algorithm_properties: None,
            certificate_properties: Some(CertificateProperties {
                subject_name: info.subject.clone(),
                issuer_name: info.issuer.clone(),
                not_valid_before: info.not_before.clone(),
                not_valid_after: info.not_after.clone(),
                signature_algorithm_ref: signature_ref,
                subject_public_key_ref: public_key_ref,
                certificate_format: "X.509",
                certificate_extension: extension,
            }),
            related_crypto_material_properties: None,
            oid: None,
        }),
        evidence: Some(Evidence {
            occurrences: entry
                .locations
                .iter()
                .map(|l| occurrence(l, platform))
                .collect(),
        }),
        properties,
        ..Component::default()
    });
}

fn key(entry: &KeyEntry, platform: Option<&str>, rules: &[String], out: &mut Components) {
    let info = &entry.info;
    let (algorithm_ref, algorithm) =
        key_algorithm(&info.algorithm, info.bits, info.curve.as_deref());
    let known_algorithm = info.algorithm != "unknown";
    if known_algorithm {
        out.add(algorithm);
    }
    let mut name = String::new();
    if known_algorithm {
        name.push_str(&info.algorithm.to_ascii_uppercase());
        name.push(' ');
    }
    name.push_str("private key");
    let mut properties = vec![property("fingerprint", &info.fingerprint)];
    properties.extend(owners(&entry.locations));
    if let Some(certificate) = &entry.certificate {
        properties.push(property(
            "certificate",
            format!("crypto/certificate/{}", hex_of(certificate)),
        ));
    }
    if let Some(keystore) = entry.keystore {
        properties.push(property("keystore", keystore.as_str()));
    }
    properties.extend(rules.iter().map(|rule| property("finding", rule)));
    out.add(Component {
        kind: "cryptographic-asset",
        bom_ref: Some(format!("crypto/private-key/{}", hex_of(&info.fingerprint))),
        name,
        crypto_properties: Some(CryptoProperties {
            asset_type: "related-crypto-material",
            algorithm_properties: None,
            certificate_properties: None,
            related_crypto_material_properties: Some(RelatedCryptoMaterialProperties {
                kind: "private-key",
                // The SPKI hash when known: the same id as the matching public key's.
                id: info.fingerprint.clone(),
                algorithm_ref: known_algorithm.then_some(algorithm_ref),
                size: info.bits,
                format: Some(info.format.as_str().to_string()),
                secured_by: info.encrypted.then_some(SecuredBy {
                    mechanism: "passphrase",
                }),
            }),
            oid: None,
        }),
        evidence: Some(Evidence {
            occurrences: entry
                .locations
                .iter()
                .map(|l| occurrence(l, platform))
                .collect(),
        }),
        properties,
        ..Component::default()
    });
}

/// A unit enum's serde name (`not-yet-valid`).
fn serde_plain<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Builds the CycloneDX 1.6 document.
pub fn bom(report: &Report) -> Bom {
    let mut components = Components::default();
    let several = report.images.len() > 1;
    for image in &report.images {
        let platform = image.platform.as_deref().filter(|_| several);
        let rules_of = |fingerprint: &str| -> Vec<String> {
            let mut rules: Vec<String> = image
                .findings
                .iter()
                .filter(|f| f.fingerprint == fingerprint && f.suppressed.is_none())
                .map(|f| f.rule.id().to_string())
                .collect();
            rules.sort();
            rules.dedup();
            rules
        };
        for entry in &image.inventory.certificates {
            certificate(
                entry,
                platform,
                &rules_of(&entry.info.fingerprint),
                &mut components,
            );
        }
        for entry in &image.inventory.keys {
            key(
                entry,
                platform,
                &rules_of(&entry.info.fingerprint),
                &mut components,
            );
        }
    }
    let mut image_properties = Vec::new();
    for image in &report.images {
        if let Some(platform) = &image.platform {
            image_properties.push(property("platform", platform));
        }
        if let Some(digest) = &image.manifest_digest {
            image_properties.push(property("manifest-digest", digest));
        }
    }
    let version = match report.images.as_slice() {
        [image] => image.manifest_digest.clone(),
        _ => None,
    };
    let mut bom = Bom {
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: String::new(),
        version: 1,
        metadata: Metadata {
            timestamp: report.now.clone(),
            tools: Tools {
                components: vec![Component {
                    kind: "application",
                    name: report.tool.name.clone(),
                    version: Some(report.tool.version.clone()),
                    ..Component::default()
                }],
            },
            component: Component {
                kind: "container",
                bom_ref: Some("image".into()),
                name: report.reference.clone(),
                version,
                ..Component::default()
            },
            properties: image_properties,
        },
        components: components.by_ref.into_values().collect(),
    };
    bom.serial_number = serial_number(&bom);
    bom
}

/// A `urn:uuid:` derived from the document's content: the same scan gives the same serial
/// number (snapshots stay stable), and the judged-at time (`--now`, the current time by
/// default) makes each run's differ. The SHA-256 is shaped as an RFC 4122 version-5 UUID.
fn serial_number(bom: &Bom) -> String {
    let bytes = serde_json::to_vec(bom).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x50;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let hex = hex::encode(uuid);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Writes the report as a CycloneDX 1.6 CBOM.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &bom(report))?;
    writeln!(out)
}
