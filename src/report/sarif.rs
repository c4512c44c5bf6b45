//! SARIF 2.1.0 for GitHub code scanning: one run per image, one rule per rule id, results with
//! stable partial fingerprints, pointing at the Dockerfile instruction that created the layer
//! (with `--dockerfile`) or at the path in the image.
//!
//! Plain serde structs for the subset we write (as cargo-deny does), not a SARIF library. It does
//! not upload anything, and it leaves out findings that the policy suppresses: GitHub does not
//! honour SARIF `suppressions` and would open alerts for them. It keeps within GitHub's limits
//! (25,000 results per run, 10 MB gzipped) by dropping the least severe results, with a warning.

use super::dockerfile::{Dockerfile, Instruction};
use super::{ImageReport, Report};
use crate::finding::{Finding, Rule, Severity};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;

/// GitHub rejects runs with more results than this.
pub const MAX_RESULTS: usize = 25_000;
/// GitHub rejects uploads larger than 10 MB gzipped; this leaves a little room.
pub const MAX_GZIPPED_BYTES: usize = 10_000_000;

const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";
/// Key of our entry in `partialFingerprints`; bump the version if the hashed text changes.
pub const FINGERPRINT_KEY: &str = "ocicert/v1";

#[derive(Debug, Serialize)]
pub struct Log {
    #[serde(rename = "$schema")]
    pub schema: &'static str,
    pub version: &'static str,
    pub runs: Vec<Run>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub tool: Tool,
    pub automation_details: AutomationDetails,
    pub results: Vec<SarifResult>,
    pub properties: Value,
}

#[derive(Debug, Serialize)]
pub struct Tool {
    pub driver: Driver,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    pub name: &'static str,
    pub version: &'static str,
    pub semantic_version: &'static str,
    pub information_uri: &'static str,
    pub rules: Vec<ReportingDescriptor>,
}

#[derive(Debug, Serialize)]
pub struct AutomationDetails {
    pub id: String,
}

#[derive(Debug, Serialize)]
pub struct Message {
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct MultiformatMessage {
    pub text: String,
    pub markdown: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportingDescriptor {
    pub id: &'static str,
    pub name: String,
    pub short_description: Message,
    pub full_description: Message,
    pub help: MultiformatMessage,
    pub help_uri: String,
    pub default_configuration: Configuration,
    pub properties: Value,
}

#[derive(Debug, Serialize)]
pub struct Configuration {
    pub level: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SarifResult {
    pub rule_id: &'static str,
    pub rule_index: usize,
    pub level: &'static str,
    pub message: Message,
    pub locations: Vec<Location>,
    pub partial_fingerprints: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_state: Option<&'static str>,
    pub properties: Value,
    #[serde(skip)]
    severity: Severity,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub physical_location: PhysicalLocation,
    pub logical_locations: Vec<LogicalLocation>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhysicalLocation {
    pub artifact_location: ArtifactLocation,
    pub region: Region,
}

#[derive(Debug, Serialize)]
pub struct ArtifactLocation {
    pub uri: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    pub start_line: usize,
    pub end_line: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogicalLocation {
    pub name: String,
    pub fully_qualified_name: String,
    pub kind: &'static str,
}

/// `ca-private-key` → `CaPrivateKey`.
fn pascal_case(id: &str) -> String {
    id.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The description and the "What to do" advice of a rule, taken from `docs/rules.md` so that
/// the documentation and the SARIF help have one source.
pub fn rule_text(rule: Rule) -> (String, String) {
    const DOCS: &str = include_str!("../../docs/rules.md");
    let header = format!("\n## {}\n", rule.id());
    let Some(start) = DOCS.find(&header) else {
        return (rule.summary().to_string(), String::new());
    };
    let section = &DOCS[start + header.len()..];
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut description = Vec::new();
    let mut advice = String::new();
    for paragraph in section.split("\n\n").map(str::trim) {
        if paragraph.is_empty() || paragraph.starts_with("Severity:") {
            continue;
        }
        match paragraph.strip_prefix("What to do:") {
            Some(rest) => advice = rest.trim().replace('\n', " "),
            None => description.push(paragraph.replace('\n', " ")),
        }
    }
    (description.join("\n\n"), advice)
}

/// GitHub's conventional `security-severity` scores.
pub fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "1.0",
    }
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

fn tags(rule: Rule) -> Vec<&'static str> {
    let kind = match rule {
        Rule::CaPrivateKey
        | Rule::IdentityKeyPair
        | Rule::KnownPublicKey
        | Rule::PrivateKey
        | Rule::BuildGeneratedKey
        | Rule::PackageDefaultKey
        | Rule::PackageKey
        | Rule::PrivateKeyEncrypted
        | Rule::KeystorePrivateKey
        | Rule::KeystoreUnknownPassword => "secret",
        Rule::CertExpired
        | Rule::CertExpiring
        | Rule::CertNotYetValid
        | Rule::WeakKey
        | Rule::WeakSignature
        | Rule::SelfSignedLeaf
        | Rule::UnknownTrustAnchor
        | Rule::RemovedTrustAnchor
        | Rule::InjectedTrustAnchor => "certificate",
        Rule::KeystoreUnparseable
        | Rule::PemUnparseable
        | Rule::DerUnparseable
        | Rule::ScanIncomplete => "scan",
    };
    vec!["security", "cryptography", kind]
}

fn rules(report: &Report) -> Vec<ReportingDescriptor> {
    // The effective severity of a rule is the one its findings carry (a policy may override
    // the default); GitHub reads `security-severity` from the rule, not the result.
    let mut effective: BTreeMap<Rule, Severity> = BTreeMap::new();
    for finding in report.findings() {
        let entry = effective.entry(finding.rule).or_insert(finding.severity);
        *entry = (*entry).max(finding.severity);
    }
    Rule::ALL
        .iter()
        .map(|rule| {
            let severity = effective
                .get(rule)
                .copied()
                .unwrap_or_else(|| rule.default_severity());
            let (description, advice) = rule_text(*rule);
            let help_uri = format!(
                "{}/blob/main/docs/rules.md#{}",
                env!("CARGO_PKG_REPOSITORY"),
                rule.id()
            );
            ReportingDescriptor {
                id: rule.id(),
                name: pascal_case(rule.id()),
                short_description: Message {
                    text: rule.summary().to_string(),
                },
                full_description: Message {
                    text: description.clone(),
                },
                help: MultiformatMessage {
                    text: format!("{description}\n\nWhat to do: {advice}"),
                    markdown: format!(
                        "{description}\n\n**What to do:** {advice}\n\nSee [`{}`]({help_uri}).",
                        rule.id()
                    ),
                },
                help_uri,
                default_configuration: Configuration {
                    level: level(severity),
                },
                properties: json!({
                    "security-severity": security_severity(severity),
                    "precision": "high",
                    "tags": tags(*rule),
                }),
            }
        })
        .collect()
}

/// Percent-encodes what is not allowed unescaped in a relative URI path.
fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The reference without its tag or digest, so that alerts carry over between image versions.
fn untagged(reference: &str) -> &str {
    let reference = reference
        .split_once('@')
        .map_or(reference, |(name, _)| name);
    const TRANSPORTS: [&str; 5] = ["oci", "oci-archive", "docker-archive", "dir", "docker"];
    match reference.rsplit_once(':') {
        // In `oci:DIR` the part after the colon is a path, not a tag.
        Some((name, tag)) if !tag.contains('/') && !TRANSPORTS.contains(&name) => name,
        _ => reference,
    }
}

/// `runAutomationDetails.id`: one category per image and platform, stable across tags.
pub fn automation_id(reference: &str, platform: Option<&str>) -> String {
    match platform {
        Some(platform) => format!("ocicert/{}/{platform}/", untagged(reference)),
        None => format!("ocicert/{}/", untagged(reference)),
    }
}

/// `sha256(rule | fingerprint | path)`: the same key or certificate at the same place is the
/// same alert in a rebuilt image. Layer digests and line numbers are deliberately left out.
pub fn partial_fingerprint(finding: &Finding) -> String {
    let text = format!(
        "{}|{}|{}",
        finding.rule.id(),
        finding.fingerprint,
        finding.location.display_path()
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn where_found(finding: &Finding) -> String {
    let location = &finding.location;
    let mut text = format!("`{}`", location.display_path());
    if let Some(index) = location.layer_index {
        text.push_str(&format!(" in layer {index}"));
    } else if location.config_field.is_some() {
        text.push_str(" of the image configuration");
    }
    // Findings in deleted files say so in their message already.
    text
}

fn result(
    finding: &Finding,
    instruction: Option<&Instruction>,
    dockerfile: Option<&Dockerfile>,
) -> SarifResult {
    let location = &finding.location;
    let rule_index = Rule::ALL
        .iter()
        .position(|r| *r == finding.rule)
        .unwrap_or_default();
    let (uri, region) = match (dockerfile, instruction) {
        (Some(dockerfile), Some(instruction)) => (
            uri_path(dockerfile.path.trim_start_matches("./")),
            Region {
                start_line: instruction.line,
                end_line: instruction.end_line,
            },
        ),
        _ => {
            let place = match (&location.path, &location.config_field) {
                (Some(path), _) => path.trim_start_matches('/').to_string(),
                (None, Some(field)) => field.clone(),
                (None, None) => String::from("image"),
            };
            (
                uri_path(&place),
                Region {
                    start_line: 1,
                    end_line: 1,
                },
            )
        }
    };
    let layer = location
        .layer_index
        .map_or_else(|| String::from("config"), |index| format!("layer/{index}"));
    let mut message = format!("{}: {}", finding.message, where_found(finding));
    if let Some(instruction) = instruction.filter(|_| dockerfile.is_some()) {
        if instruction.keyword == "FROM" {
            message.push_str(", from the base image");
        } else {
            message.push_str(&format!(", added by `{}`", instruction.keyword));
        }
    }
    let mut properties = json!({
        "severity": finding.severity.as_str(),
        "fingerprint": finding.fingerprint,
        "inFinalImage": location.in_final_image,
    });
    if let Some(digest) = &location.layer_digest {
        properties["layerDigest"] = json!(digest);
    }
    if let Some(owner) = &location.owner {
        properties["owner"] = json!(owner);
    }
    if let Some(exception) = &finding.expired_exception {
        properties["expiredException"] = json!(exception);
    }
    SarifResult {
        rule_id: finding.rule.id(),
        rule_index,
        level: level(finding.severity),
        message: Message { text: message },
        locations: vec![Location {
            physical_location: PhysicalLocation {
                artifact_location: ArtifactLocation { uri },
                region,
            },
            logical_locations: vec![LogicalLocation {
                name: location.display_path(),
                fully_qualified_name: format!("{layer}{}", location.display_path()),
                kind: "resource",
            }],
        }],
        partial_fingerprints: BTreeMap::from([(FINGERPRINT_KEY, partial_fingerprint(finding))]),
        baseline_state: finding.new.map(|new| if new { "new" } else { "unchanged" }),
        properties,
        severity: finding.severity,
    }
}

fn run(report: &Report, image: &ImageReport, dockerfile: Option<&Dockerfile>) -> Run {
    let history: Vec<Option<String>> = image.layers.iter().map(|l| l.created_by.clone()).collect();
    let mapped = dockerfile
        .map(|d| d.map_layers(&history))
        .unwrap_or_default();
    let mut results: Vec<SarifResult> = image
        .findings
        .iter()
        .filter(|f| f.suppressed.is_none())
        .map(|finding| {
            let instruction = match finding.location.layer_index {
                Some(index) => mapped.get(index).copied().flatten(),
                // The config is assembled by the final stage; point at its `FROM`.
                None => dockerfile.and_then(Dockerfile::final_from),
            };
            result(finding, instruction, dockerfile)
        })
        .collect();
    // Most severe first, so that truncation drops the least severe.
    results.sort_by_key(|result| std::cmp::Reverse(result.severity));
    let mut properties = json!({
        "reference": report.reference,
        "suppressed": image.findings.iter().filter(|f| f.suppressed.is_some()).count(),
    });
    if let Some(platform) = &image.platform {
        properties["platform"] = json!(platform);
    }
    if let Some(digest) = &image.manifest_digest {
        properties["manifestDigest"] = json!(digest);
    }
    Run {
        tool: Tool {
            driver: Driver {
                name: "ocicert",
                version: env!("CARGO_PKG_VERSION"),
                semantic_version: env!("CARGO_PKG_VERSION"),
                information_uri: env!("CARGO_PKG_REPOSITORY"),
                rules: rules(report),
            },
        },
        automation_details: AutomationDetails {
            id: automation_id(&report.reference, image.platform.as_deref()),
        },
        results,
        properties,
    }
}

/// Builds the SARIF log for a report.
pub fn log(report: &Report, dockerfile: Option<&Dockerfile>) -> Log {
    Log {
        schema: SCHEMA,
        version: "2.1.0",
        runs: report
            .images
            .iter()
            .map(|image| run(report, image, dockerfile))
            .collect(),
    }
}

fn gzipped_len(log: &Log) -> std::io::Result<usize> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    serde_json::to_writer(&mut encoder, log)?;
    Ok(encoder.finish()?.len())
}

/// Drops the least severe results until every run has at most `max_results` and the gzipped
/// log is at most `max_gzipped` bytes. Returns how many results were dropped per run.
pub fn fit(log: &mut Log, max_results: usize, max_gzipped: usize) -> std::io::Result<Vec<usize>> {
    let mut dropped = vec![0; log.runs.len()];
    for (run, dropped) in log.runs.iter_mut().zip(&mut dropped) {
        if run.results.len() > max_results {
            *dropped += run.results.len() - max_results;
            run.results.truncate(max_results);
        }
    }
    while gzipped_len(log)? > max_gzipped {
        let Some((index, run)) = log
            .runs
            .iter_mut()
            .enumerate()
            .max_by_key(|(_, run)| run.results.len())
            .filter(|(_, run)| !run.results.is_empty())
        else {
            break;
        };
        let drop = run.results.len().div_ceil(10);
        run.results.truncate(run.results.len() - drop);
        dropped[index] += drop;
    }
    for (run, dropped) in log.runs.iter_mut().zip(&dropped) {
        if *dropped > 0 {
            run.properties["omittedResults"] = json!(dropped);
            tracing::warn!(
                run = run.automation_details.id,
                omitted = dropped,
                "SARIF: left out the {dropped} least severe results to stay within GitHub's limits"
            );
        }
    }
    Ok(dropped)
}

/// Writes the report as SARIF 2.1.0.
pub fn write(
    report: &Report,
    dockerfile: Option<&Dockerfile>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut log = log(report, dockerfile);
    fit(&mut log, MAX_RESULTS, MAX_GZIPPED_BYTES)?;
    serde_json::to_writer_pretty(&mut *out, &log)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::Inventory;
    use crate::finding::Location as FindingLocation;
    use crate::report::{ImageReport, LayerReport};

    fn finding(index: usize, rule: Rule) -> Finding {
        Finding::new(
            rule,
            format!("finding {index}"),
            FindingLocation {
                layer_index: Some(0),
                layer_digest: Some("sha256:00".into()),
                path: Some(format!("/keys/{index}.pem")),
                in_final_image: true,
                ..FindingLocation::default()
            },
            format!("sha256:{index:064x}"),
        )
    }

    fn report(findings: Vec<Finding>) -> Report {
        Report::new(
            "oci:images/app:v1",
            0,
            vec![ImageReport {
                manifest_digest: None,
                config_digest: None,
                platform: Some("linux/amd64".into()),
                layers: vec![LayerReport {
                    index: 0,
                    digest: "sha256:00".into(),
                    size: None,
                    created_by: Some("COPY keys/ /keys/ # buildkit".into()),
                    files: 0,
                    bytes: 0,
                }],
                skipped_layers: Vec::new(),
                findings,
                inventory: Inventory::default(),
            }],
        )
    }

    #[test]
    fn every_rule_has_a_description_and_advice_in_docs() {
        for rule in Rule::ALL {
            let (description, advice) = rule_text(*rule);
            assert!(description.len() > 20, "{rule}: {description}");
            assert!(!advice.is_empty(), "{rule} has no `What to do:`");
            assert!(!description.contains("What to do"), "{rule}");
        }
    }

    #[test]
    fn caps_results_per_run_dropping_the_least_severe() {
        let mut findings: Vec<Finding> = (0..MAX_RESULTS + 10)
            .map(|i| finding(i, Rule::PemUnparseable))
            .collect();
        findings.push(finding(1, Rule::CaPrivateKey));
        let mut log = log(&report(findings), None);
        let dropped = fit(&mut log, MAX_RESULTS, MAX_GZIPPED_BYTES).unwrap();
        assert_eq!(dropped, [11]);
        assert_eq!(log.runs[0].results.len(), MAX_RESULTS);
        assert_eq!(log.runs[0].results[0].rule_id, "ca-private-key");
        assert_eq!(log.runs[0].properties["omittedResults"], 11);
    }

    #[test]
    fn shrinks_to_the_gzipped_size_limit() {
        let findings: Vec<Finding> = (0..2000).map(|i| finding(i, Rule::PrivateKey)).collect();
        let mut log = log(&report(findings), None);
        let limit = gzipped_len(&log).unwrap() / 2;
        fit(&mut log, MAX_RESULTS, limit).unwrap();
        assert!(gzipped_len(&log).unwrap() <= limit);
        assert!(!log.runs[0].results.is_empty());
    }

    #[test]
    fn fingerprints_ignore_layers_and_categories_ignore_tags() {
        let a = finding(1, Rule::PrivateKey);
        let mut b = a.clone();
        b.location.layer_index = Some(7);
        b.location.layer_digest = Some("sha256:ff".into());
        assert_eq!(partial_fingerprint(&a), partial_fingerprint(&b));
        assert_ne!(
            partial_fingerprint(&a),
            partial_fingerprint(&finding(1, Rule::PrivateKeyEncrypted))
        );
        assert_eq!(
            automation_id("ghcr.io/acme/app:1.2.3", Some("linux/amd64")),
            "ocicert/ghcr.io/acme/app/linux/amd64/"
        );
        assert_eq!(
            automation_id("localhost:5000/app@sha256:abc", None),
            "ocicert/localhost:5000/app/"
        );
        assert_eq!(
            automation_id("oci:images/app:v1", None),
            "ocicert/oci:images/app/"
        );
        assert_eq!(
            automation_id("oci:images/app", None),
            "ocicert/oci:images/app/"
        );
        assert_eq!(automation_id("oci:app", None), "ocicert/oci:app/");
        assert_eq!(automation_id("alpine:3.20", None), "ocicert/alpine/");
        assert_eq!(
            automation_id("docker-archive:app.tar:example/app:v1", None),
            "ocicert/docker-archive:app.tar:example/app/"
        );
        assert_eq!(uri_path("opt/my key.pem"), "opt/my%20key.pem");
    }

    #[test]
    fn suppressed_findings_are_left_out_and_baseline_state_is_set() {
        let mut suppressed = finding(1, Rule::PrivateKey);
        suppressed.suppressed = Some(crate::finding::Exception {
            reason: "fixture".into(),
            expires: None,
            source: "ocicert.toml:3".into(),
        });
        let mut known = finding(2, Rule::PrivateKey);
        known.new = Some(false);
        let log = log(&report(vec![suppressed, known]), None);
        assert_eq!(log.runs[0].results.len(), 1);
        assert_eq!(log.runs[0].results[0].baseline_state, Some("unchanged"));
        assert_eq!(log.runs[0].properties["suppressed"], 1);
    }

    #[test]
    fn points_at_the_dockerfile_instruction() {
        let dockerfile =
            Dockerfile::parse("./build/Dockerfile", "FROM scratch\nCOPY keys/ /keys/\n");
        let log = log(
            &report(vec![finding(1, Rule::PrivateKey)]),
            Some(&dockerfile),
        );
        let location = &log.runs[0].results[0].locations[0].physical_location;
        assert_eq!(location.artifact_location.uri, "build/Dockerfile");
        assert_eq!(location.region.start_line, 2);
    }
}
