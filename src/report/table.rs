//! The default human-readable report: findings grouped by severity, each with its layer and
//! path, then a one-line inventory summary. Repeats are one entry: the same rule in one file,
//! in one trust store, or in the verified files of one package (`--show-all` lists each).
//! Readable without colour; no key material.

use super::{ImageReport, Report};
use crate::finding::{Finding, Severity};
use crate::packages::Integrity;
use std::collections::BTreeMap;
use std::io::Write;

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    &hex[..hex.len().min(12)]
}

/// Writes the table report; `show_all` lists every finding instead of grouping repeats.
pub fn write(report: &Report, show_all: bool, out: &mut dyn Write) -> std::io::Result<()> {
    for image in &report.images {
        write_image(report, image, show_all, out)?;
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

fn write_image(
    report: &Report,
    image: &ImageReport,
    show_all: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
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
        if show_all {
            for finding in group {
                write_entry(&[finding], out)?;
            }
        } else {
            for entry in grouped(&group) {
                write_entry(&entry, out)?;
            }
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

/// What makes findings one table entry: the rule, the place (a trust store, a package's
/// verified files, else the file), the layer, and the marks a reader must not miss.
fn group_key(finding: &Finding) -> (String, String, Option<usize>, bool, bool, Option<String>) {
    let location = &finding.location;
    let path = location.path.clone().unwrap_or_default();
    let place = if let Some(store) = crate::truststore::store_of(&path) {
        let directory = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("store {store} {directory}")
    } else if let Some(owner) = location
        .owner
        .as_ref()
        .filter(|o| o.integrity == Integrity::Verified)
    {
        format!("package {}:{}", owner.ecosystem.as_str(), owner.name)
    } else {
        format!("file {}", location.display_path())
    };
    (
        finding.rule.id().to_string(),
        place,
        location.layer_index,
        location.in_final_image,
        finding.new == Some(true),
        finding.expired_exception.as_ref().map(|e| e.source.clone()),
    )
}

/// The findings of one severity as table entries, in the order of their first finding.
fn grouped<'a>(findings: &[&'a Finding]) -> Vec<Vec<&'a Finding>> {
    let mut order: Vec<Vec<&Finding>> = Vec::new();
    let mut index: BTreeMap<_, usize> = BTreeMap::new();
    for finding in findings {
        let key = group_key(finding);
        match index.get(&key) {
            Some(at) => order[*at].push(*finding),
            None => {
                index.insert(key, order.len());
                order.push(vec![*finding]);
            }
        }
    }
    order
}

/// One entry: the first finding's message and place, and how many more it stands for.
fn write_entry(entry: &[&Finding], out: &mut dyn Write) -> std::io::Result<()> {
    let first = entry[0];
    let mut marks = String::new();
    if first.new == Some(true) {
        marks.push_str(" [new]");
    }
    if let Some(exception) = &first.expired_exception {
        marks.push_str(&format!(" [exception {} expired]", exception.source));
    }
    let mut more = match first.occurrences {
        1 => String::new(),
        n => format!(" ×{n}"),
    };
    if entry.len() > 1 {
        more.push_str(&format!(" (and {} more like it)", entry.len() - 1));
    }
    writeln!(
        out,
        "  {:<26} {}{more}{marks}",
        first.rule.id(),
        first.message
    )?;
    let location = &first.location;
    let mut place = format!("    at {}", location.display_path());
    let files = entry
        .iter()
        .map(|f| f.location.display_path())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    match files {
        0 | 1 => {}
        2 => place.push_str(" and 1 other file"),
        n => place.push_str(&format!(" and {} other files", n - 1)),
    }
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
    if entry.len() == 1 {
        writeln!(out, "    fingerprint {}", first.fingerprint)?;
    }
    Ok(())
}
