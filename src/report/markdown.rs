//! A short GitHub-flavoured Markdown summary, meant for `$GITHUB_STEP_SUMMARY`: counts by
//! severity, the top findings, and the certificates that expire soonest.
//!
//! It is a digest, not the whole report: the JSON or SARIF output carries everything. No key
//! material, no fingerprints beyond what a reader needs.

use super::Report;
use crate::finding::Severity;
use std::io::Write;

/// How many findings the summary lists.
const TOP_FINDINGS: usize = 10;
/// How many certificates the expiry table lists.
const EXPIRING: usize = 5;

/// Makes text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Writes the Markdown summary.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "## ocicert: `{}`\n", cell(&report.reference))?;
    let counted = |severity: &Severity| report.summary.findings.get(severity).copied().unwrap_or(0);
    let total: usize = Severity::ALL_DESCENDING.iter().map(counted).sum();
    writeln!(out, "| severity | findings |")?;
    writeln!(out, "|---|---:|")?;
    for severity in Severity::ALL_DESCENDING {
        writeln!(out, "| {severity} | {} |", counted(&severity))?;
    }
    writeln!(out, "| **total** | **{total}** |\n")?;

    let mut notes = Vec::new();
    if report.summary.suppressed > 0 {
        notes.push(format!(
            "{} suppressed by policy exceptions",
            report.summary.suppressed
        ));
    }
    if let Some(new) = report.summary.new {
        notes.push(format!(
            "{new} new since the baseline, {} already in it",
            total - new
        ));
    }
    let expired = report
        .findings()
        .filter(|f| f.expired_exception.is_some())
        .count();
    if expired > 0 {
        notes.push(format!(
            "{expired} no longer covered by an expired exception"
        ));
    }
    if !notes.is_empty() {
        writeln!(out, "Findings: {}.\n", notes.join("; "))?;
    }

    let mut findings: Vec<(&Option<String>, &crate::finding::Finding)> = report
        .images
        .iter()
        .flat_map(|image| image.findings.iter().map(move |f| (&image.platform, f)))
        .filter(|(_, f)| f.suppressed.is_none())
        .collect();
    findings.sort_by_key(|(_, finding)| std::cmp::Reverse(finding.severity));
    if !findings.is_empty() {
        let several_platforms = report.images.len() > 1;
        writeln!(out, "### Top findings\n")?;
        writeln!(out, "| severity | rule | where | message |")?;
        writeln!(out, "|---|---|---|---|")?;
        for (platform, finding) in findings.iter().take(TOP_FINDINGS) {
            let mut place = format!("`{}`", cell(&finding.location.display_path()));
            if let Some(index) = finding.location.layer_index {
                place.push_str(&format!(" (layer {index})"));
            }
            if !finding.location.in_final_image {
                place.push_str(" history only");
            }
            if let Some(owner) = &finding.location.owner {
                place.push_str(&format!(", owner `{}`", cell(&owner.to_string())));
            }
            if let (true, Some(platform)) = (several_platforms, platform) {
                place.push_str(&format!(" [{platform}]"));
            }
            let mut severity = finding.severity.to_string();
            if finding.new == Some(true) {
                severity.push_str(" (new)");
            }
            writeln!(
                out,
                "| {severity} | `{}` | {place} | {} |",
                finding.rule,
                cell(&finding.message)
            )?;
        }
        if findings.len() > TOP_FINDINGS {
            writeln!(
                out,
                "\n…and {} more in the full report.",
                findings.len() - TOP_FINDINGS
            )?;
        }
        writeln!(out)?;
    }

    let mut certificates: Vec<&crate::analyze::CertificateEntry> = Vec::new();
    for certificate in report.images.iter().flat_map(|i| &i.inventory.certificates) {
        if !certificate.trust_anchor
            && !certificates
                .iter()
                .any(|c| c.info.fingerprint == certificate.info.fingerprint)
        {
            certificates.push(certificate);
        }
    }
    certificates.sort_by_key(|c| c.info.not_after_unix);
    if !certificates.is_empty() {
        writeln!(out, "### Certificates expiring soonest\n")?;
        writeln!(out, "| expires | days left | subject | path |")?;
        writeln!(out, "|---|---:|---|---|")?;
        for certificate in certificates.iter().take(EXPIRING) {
            let path = certificate
                .locations
                .first()
                .map(|l| format!("`{}`", cell(&l.display_path())))
                .unwrap_or_default();
            writeln!(
                out,
                "| {} | {} | {} | {path} |",
                certificate
                    .info
                    .not_after
                    .split('T')
                    .next()
                    .unwrap_or_default(),
                certificate.days_left,
                cell(&certificate.info.subject)
            )?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "{} certificates and {} private keys inventoried; judged as of {}.",
        report.summary.certificates, report.summary.keys, report.now
    )
}
