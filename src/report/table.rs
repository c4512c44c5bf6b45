//! The default human-readable report: findings grouped by severity, each with its layer and
//! path, then a one-line inventory summary. Readable without colour; no key material.

use super::{ImageReport, Report};
use crate::finding::Severity;
use std::io::Write;

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    &hex[..hex.len().min(12)]
}

/// Writes the table report.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    for image in &report.images {
        write_image(report, image, out)?;
    }
    let counts: Vec<String> = Severity::ALL_DESCENDING
        .iter()
        .map(|s| {
            format!(
                "{} {s}",
                report.summary.findings.get(s).copied().unwrap_or(0)
            )
        })
        .collect();
    writeln!(
        out,
        "Total: {} ({} certificates, {} private keys)",
        counts.join(", "),
        report.summary.certificates,
        report.summary.keys
    )
}

fn write_image(report: &Report, image: &ImageReport, out: &mut dyn Write) -> std::io::Result<()> {
    let mut title = report.reference.clone();
    if let Some(platform) = &image.platform {
        title.push_str(&format!(" [{platform}]"));
    }
    if let Some(digest) = &image.manifest_digest {
        title.push_str(&format!(" {digest}"));
    }
    writeln!(out, "{title}")?;
    writeln!(out, "{}", "=".repeat(title.len().min(100)))?;
    for skipped in &image.skipped_layers {
        writeln!(out, "note: skipped layer {skipped}")?;
    }
    let suppressed = image
        .findings
        .iter()
        .filter(|f| f.suppressed.is_some())
        .count();
    if image.findings.len() == suppressed {
        writeln!(out, "No findings.")?;
    }
    if suppressed > 0 {
        writeln!(
            out,
            "note: {suppressed} finding{} suppressed by policy exceptions (listed in the JSON report)",
            if suppressed == 1 { "" } else { "s" }
        )?;
    }
    for severity in Severity::ALL_DESCENDING {
        let group: Vec<_> = image
            .findings
            .iter()
            .filter(|f| f.severity == severity && f.suppressed.is_none())
            .collect();
        if group.is_empty() {
            continue;
        }
        writeln!(
            out,
            "\n{} ({})",
            severity.as_str().to_uppercase(),
            group.len()
        )?;
        for finding in group {
            let mut marks = String::new();
            if finding.new == Some(true) {
                marks.push_str(" [new]");
            }
            if let Some(exception) = &finding.expired_exception {
                marks.push_str(&format!(" [exception {} expired]", exception.source));
            }
            writeln!(
                out,
                "  {:<26} {}{marks}",
                finding.rule.id(),
                finding.message
            )?;
            let location = &finding.location;
            let mut place = format!("    at {}", location.display_path());
            if let (Some(index), Some(digest)) = (location.layer_index, &location.layer_digest) {
                place.push_str(&format!("  (layer {index} {})", short(digest)));
            }
            if !location.in_final_image {
                place.push_str("  [history only]");
            }
            writeln!(out, "{place}")?;
            if let Some(owner) = &location.owner {
                writeln!(out, "    owner: {owner}")?;
            }
            writeln!(out, "    fingerprint {}", finding.fingerprint)?;
        }
    }
    let inventory = &image.inventory;
    let anchors = inventory
        .certificates
        .iter()
        .filter(|c| c.trust_anchor)
        .count();
    writeln!(
        out,
        "\nInventory: {} certificates ({} trust anchors, {} other), {} private keys, {} keystores",
        inventory.certificates.len(),
        anchors,
        inventory.certificates.len() - anchors,
        inventory.keys.len(),
        inventory.keystores.len()
    )?;
    let mut expiring: Vec<_> = inventory
        .certificates
        .iter()
        .filter(|c| !c.trust_anchor)
        .collect();
    expiring.sort_by_key(|c| c.info.not_after_unix);
    for cert in expiring.iter().take(5) {
        writeln!(
            out,
            "  {}  {:>6} days  {}",
            cert.info.not_after, cert.days_left, cert.info.subject
        )?;
    }
    writeln!(out)
}
