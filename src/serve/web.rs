//! The web pages: server-rendered HTML with no JavaScript — the images scanned, findings by
//! severity, certificates by expiry with search and pagination, and a page per image.
//!
//! Every value from the store or a report goes through `escape`, so names chosen by whoever
//! pushed an image cannot inject markup. This module only renders; queries live in the store.

use super::{App, AppError, ListQuery, now_ms};
use crate::report::Report;
use crate::store::{CertificateQuery, ImageQuery, InventoryEntry};
use axum::extract::{Path, Query, State};
use axum::response::Html;
use std::fmt::Write as _;
use std::sync::Arc;

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string value.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}\
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}\
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}\
code{font-size:.85rem}.critical{color:#fff;background:#a00}.high{background:#f5a3a3}\
.medium{background:#fbd78b}.low{background:#e5f0c8}.info{background:#e8e8e8}\
.sev{padding:0 .3rem;border-radius:3px}.expired{color:#a00;font-weight:bold}\
.expiring{color:#b60}nav a{margin-right:1rem}.pages a{margin-right:1rem}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · ocicert</title>\
         <style>{STYLE}</style></head><body><nav><a href=\"/\">Images</a>\
         <a href=\"/certificates\">Certificates</a><a href=\"/metrics\">Metrics</a></nav>\
         <h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(title)
    ))
}

fn severity(text: Option<&str>) -> String {
    match text {
        Some(s) => format!("<span class=\"sev {0}\">{0}</span>", escape(s)),
        None => "none".into(),
    }
}

fn search_form(action: &str, q: &str, placeholder: &str) -> String {
    format!(
        "<form method=\"get\" action=\"{action}\"><input id=\"q\" type=\"search\" name=\"q\" \
         value=\"{}\" placeholder=\"{}\" size=\"50\"> <button type=\"submit\">Search</button></form>",
        escape(q),
        escape(placeholder)
    )
}

fn pagination(path: &str, query: &ListQuery, shown: usize, limit: u32) -> String {
    let page = query.page.unwrap_or(1).max(1);
    let link = |page: u32, label: &str| {
        format!(
            "<a href=\"{path}?q={}&amp;page={page}\">{label}</a>",
            encode(&query.q)
        )
    };
    let mut out = String::from("<p class=\"pages\">");
    if page > 1 {
        out.push_str(&link(page - 1, "← previous"));
    }
    let _ = write!(out, "page {page}");
    if shown as u32 >= limit {
        out.push(' ');
        out.push_str(&link(page + 1, "next →"));
    }
    out.push_str("</p>");
    out
}

fn expiry(not_after: &str, not_after_unix: i64) -> String {
    let days = (not_after_unix - now_ms() / 1000).div_euclid(86_400);
    let (class, note) = if days < 0 {
        ("expired", format!("expired {} days ago", -days))
    } else if days <= 30 {
        ("expiring", format!("in {days} days"))
    } else {
        ("", format!("in {days} days"))
    };
    format!(
        "<span class=\"{class}\">{} ({note})</span>",
        escape(not_after)
    )
}

fn certificate_rows(entries: &[InventoryEntry]) -> String {
    let mut out = String::from(
        "<table id=\"certificates\"><tr><th>Expires</th><th>Subject</th><th>Issuer</th>\
         <th>Fingerprint</th><th>Images and paths</th></tr>",
    );
    for entry in entries {
        let c = &entry.certificate;
        let mut images = String::new();
        for image in &entry.images {
            let _ = write!(
                images,
                "<div><a href=\"/images/{}\">{}/{}</a> <code>{}</code></div>",
                encode(&image.digest),
                escape(&image.registry),
                escape(&image.repository),
                escape(&image.paths.join(", "))
            );
        }
        let _ = write!(
            out,
            "<tr class=\"certificate\"><td>{}</td><td>{}{}</td><td>{}</td><td><code>{}</code></td><td>{images}</td></tr>",
            expiry(&c.not_after, c.not_after_unix),
            escape(&c.subject),
            if c.is_ca { " <em>(CA)</em>" } else { "" },
            escape(&c.issuer),
            escape(&c.fingerprint),
        );
    }
    out.push_str("</table>");
    out
}

/// `/`: severity totals, the images (searchable, paginated) and the next certificates to expire.
pub(super) async fn index(
    State(state): State<Arc<App>>,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, AppError> {
    let (limit, offset) = query.window(50);
    let images = state
        .store
        .images(&ImageQuery {
            text: query.q.clone(),
            limit,
            offset,
        })
        .await?;
    let counts = state.store.severity_counts().await?;
    let mut body = search_form(
        "/",
        &query.q,
        "repository, tag, digest, certificate subject or fingerprint, rule, path",
    );
    body.push_str("<h2>Findings by severity</h2><p id=\"severities\">");
    for level in crate::finding::Severity::ALL_DESCENDING {
        let count = counts
            .iter()
            .find(|(s, _)| s == level.as_str())
            .map_or(0, |(_, n)| *n);
        let _ = write!(
            body,
            "<a href=\"/api/findings?severity={0}\">{1}</a> {count} &nbsp; ",
            level.as_str(),
            severity(Some(level.as_str()))
        );
    }
    body.push_str(
        "</p><h2>Images</h2><table id=\"images\"><tr><th>Image</th><th>Tag</th><th>Digest</th>\
                   <th>State</th><th>Highest</th><th>Findings</th><th>Certificates</th></tr>",
    );
    for image in &images {
        let _ = write!(
            body,
            "<tr class=\"image\"><td><a class=\"detail\" href=\"/images/{}\">{}/{}</a></td><td>{}</td>\
             <td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            encode(&image.digest),
            escape(&image.registry),
            escape(&image.repository),
            escape(image.tag.as_deref().unwrap_or("")),
            escape(&image.digest.chars().take(19).collect::<String>()),
            image.state.as_str(),
            severity(image.highest_severity.as_deref()),
            image.findings.map(|n| n.to_string()).unwrap_or_default(),
            image
                .certificates
                .map(|n| n.to_string())
                .unwrap_or_default(),
        );
    }
    body.push_str("</table>");
    if images.is_empty() {
        body.push_str("<p id=\"empty\">No image matches.</p>");
    }
    body.push_str(&pagination("/", &query, images.len(), limit));
    if query.q.is_empty() && query.page.unwrap_or(1) <= 1 {
        let certificates = state
            .store
            .certificates(&CertificateQuery {
                text: String::new(),
                expiring_before: None,
                limit: 10,
                offset: 0,
            })
            .await?;
        body.push_str("<h2>Certificates by expiry</h2>");
        body.push_str(&certificate_rows(&certificates));
        body.push_str("<p><a href=\"/certificates\">All certificates →</a></p>");
    }
    Ok(page("Scanned images", &body))
}

/// `/certificates`: the cross-image inventory, soonest expiry first, searchable, paginated.
pub(super) async fn certificates(
    State(state): State<Arc<App>>,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, AppError> {
    let (limit, offset) = query.window(100);
    let entries = state
        .store
        .certificates(&CertificateQuery {
            text: query.q.clone(),
            expiring_before: query.expiring_before()?,
            limit,
            offset,
        })
        .await?;
    let mut body = search_form(
        "/certificates",
        &query.q,
        "subject, issuer, fingerprint or repository",
    );
    body.push_str(&certificate_rows(&entries));
    body.push_str(&pagination("/certificates", &query, entries.len(), limit));
    Ok(page("Certificates", &body))
}

/// `/images/<digest>`: one image's findings, certificates, keys and layers.
pub(super) async fn image(
    State(state): State<Arc<App>>,
    Path(digest): Path<String>,
) -> Result<Html<String>, AppError> {
    let Some((job, report)) = state.store.report(&digest).await? else {
        return Err(AppError::NotFound);
    };
    let title = format!("{}/{}", job.registry, job.repository);
    let mut body = format!(
        "<p>Digest <code id=\"digest\">{}</code>{} · <a href=\"/api/images/{}\">JSON report</a></p>",
        escape(&job.digest),
        job.tag
            .as_deref()
            .map(|t| format!(" · tag <code>{}</code>", escape(t)))
            .unwrap_or_default(),
        encode(&job.digest)
    );
    let Some(report) = report else {
        let _ = write!(
            body,
            "<p id=\"state\">Scan {} (attempt {}){}</p>",
            job.state.as_str(),
            job.attempts,
            job.last_error
                .as_deref()
                .map(|e| format!(": {}", escape(e)))
                .unwrap_or_default()
        );
        return Ok(page(&title, &body));
    };
    let report: Report = serde_json::from_str(&report)
        .map_err(|e| AppError::BadGateway(format!("the stored report does not parse: {e}")))?;
    let _ = write!(
        body,
        "<p>Highest severity {} · {} certificates · {} keys · scanned as of {}</p>",
        severity(report.summary.highest_severity.map(|s| s.as_str())),
        report.summary.certificates,
        report.summary.keys,
        escape(&report.now)
    );
    body.push_str(
        "<h2>Findings</h2><table id=\"findings\"><tr><th>Severity</th><th>Rule</th>\
                   <th>Message</th><th>Where</th></tr>",
    );
    let mut findings: Vec<_> = report.findings().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for finding in findings {
        let _ = write!(
            body,
            "<tr class=\"finding\"><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code>{}{}</td></tr>",
            severity(Some(finding.severity.as_str())),
            finding.rule.id(),
            escape(&finding.message),
            escape(&finding.location.display_path()),
            if finding.location.in_final_image {
                ""
            } else {
                " (deleted in a later layer)"
            },
            finding
                .location
                .owner
                .as_ref()
                .map(|owner| format!(
                    "<br><span class=\"owner\">owner {}</span>",
                    escape(&owner.to_string())
                ))
                .unwrap_or_default()
        );
    }
    body.push_str(
        "</table><h2>Certificates</h2><table><tr><th>Expires</th><th>Subject</th>\
                   <th>Issuer</th><th>Where</th></tr>",
    );
    for image in &report.images {
        for c in &image.inventory.certificates {
            let paths: Vec<String> = c.locations.iter().map(|l| l.display_path()).collect();
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                expiry(&c.info.not_after, c.info.not_after_unix),
                escape(&c.info.subject),
                escape(&c.info.issuer),
                escape(&paths.join(", "))
            );
        }
    }
    body.push_str("</table><h2>Private keys</h2><table><tr><th>Key</th><th>Fingerprint</th><th>Where</th></tr>");
    for image in &report.images {
        for key in &image.inventory.keys {
            let paths: Vec<String> = key.locations.iter().map(|l| l.display_path()).collect();
            let _ = write!(
                body,
                "<tr><td>{} {}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                escape(&key.info.algorithm),
                key.info.bits.map(|b| b.to_string()).unwrap_or_default(),
                escape(&key.info.fingerprint),
                escape(&paths.join(", "))
            );
        }
    }
    body.push_str(
        "</table><h2>Layers</h2><table><tr><th>#</th><th>Digest</th><th>Created by</th></tr>",
    );
    for image in &report.images {
        for layer in &image.layers {
            let _ = write!(
                body,
                "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                layer.index,
                escape(&layer.digest),
                escape(layer.created_by.as_deref().unwrap_or(""))
            );
        }
    }
    body.push_str("</table>");
    Ok(page(&title, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_encodes_queries() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(encode("CN=a b&c"), "CN%3Da%20b%26c");
        assert_eq!(encode("sha256:ab"), "sha256:ab");
    }
}
