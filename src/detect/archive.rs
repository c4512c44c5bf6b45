//! Nested archives inside files: zip/jar/war/ear/whl, tar, and gzip (tar.gz/tgz or a plain .gz).
//!
//! Entries are inflated into memory one at a time, so every limit in `Options` applies: nesting
//! depth, bytes per entry, total bytes per top-level file, and the inflation ratio. Hitting a
//! limit yields a `LimitReached` artifact (reported as `scan-incomplete`) instead of an error, so
//! a zip bomb costs a bounded amount of work and the rest of the image is still scanned.

use super::{Artifact, Detection, Options};
use flate2::read::MultiGzDecoder;
use std::io::{Cursor, Read};

/// Tracks the inflated bytes spent on one top-level file.
#[derive(Debug)]
pub struct Budget {
    remaining: u64,
}

impl Budget {
    /// A fresh budget from the options.
    pub fn new(options: &Options) -> Self {
        Self {
            remaining: options.max_total_inflated,
        }
    }
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const GZIP_MAGIC: &[u8] = b"\x1f\x8b";
const RATIO_CHECK_ABOVE: u64 = 1024 * 1024;

fn is_tar(data: &[u8]) -> bool {
    data.get(257..262) == Some(b"ustar")
}

/// Whether the bytes are an archive this module can open.
pub fn is_archive(data: &[u8], _lower_name: &str) -> bool {
    data.starts_with(ZIP_MAGIC) || data.starts_with(GZIP_MAGIC) || is_tar(data)
}

fn join(archive_path: Option<&str>, name: &str) -> String {
    match archive_path {
        Some(outer) => format!("{outer}!/{name}"),
        None => name.to_string(),
    }
}

fn limit(out: &mut Vec<Detection>, archive_path: Option<&str>, reason: String) {
    out.push(Detection {
        artifact: Artifact::LimitReached { reason },
        archive_path: archive_path.map(str::to_string),
    });
}

/// Reads at most the entry limit and the remaining budget; `Err` says which limit was hit.
fn read_bounded(
    reader: impl Read,
    declared: Option<u64>,
    compressed: u64,
    options: &Options,
    budget: &mut Budget,
) -> Result<Vec<u8>, String> {
    if let Some(size) = declared {
        if size > options.max_entry_bytes {
            return Err(format!(
                "entry of {size} bytes is larger than the {} byte entry limit",
                options.max_entry_bytes
            ));
        }
        if size > RATIO_CHECK_ABOVE && size / compressed.max(1) > options.max_ratio {
            return Err(format!(
                "entry inflates {}:1, above the {}:1 ratio limit (possible archive bomb)",
                size / compressed.max(1),
                options.max_ratio
            ));
        }
    }
    let cap = options.max_entry_bytes.min(budget.remaining);
    let mut data = Vec::new();
    let read = reader.take(cap + 1).read_to_end(&mut data);
    // Every byte inflated is charged, also for an entry that then fails (a wrong CRC at its
    // end): two thousand failing 64 MiB entries must not cost more than the budget.
    budget.remaining = budget.remaining.saturating_sub(data.len() as u64);
    read.map_err(|e| format!("entry does not decompress: {e}"))?;
    if data.len() as u64 > cap {
        return Err(if cap < options.max_entry_bytes {
            format!(
                "the {} byte budget for archives inside one file is spent",
                options.max_total_inflated
            )
        } else {
            format!(
                "entry inflates past the {} byte entry limit",
                options.max_entry_bytes
            )
        });
    }
    if data.len() as u64 > RATIO_CHECK_ABOVE
        && data.len() as u64 / compressed.max(1) > options.max_ratio
    {
        return Err(format!(
            "entry inflates above the {}:1 ratio limit (possible archive bomb)",
            options.max_ratio
        ));
    }
    Ok(data)
}

/// Scans the entries of an archive, recursing through `super::scan_nested`.
pub fn scan(
    name: &str,
    data: &[u8],
    options: &Options,
    depth: u32,
    archive_path: Option<&str>,
    budget: &mut Budget,
    out: &mut Vec<Detection>,
) {
    if depth >= options.max_archive_depth {
        limit(
            out,
            archive_path,
            format!(
                "archive nested deeper than {} levels was not opened (raise --max-archive-depth)",
                options.max_archive_depth
            ),
        );
        return;
    }
    if data.starts_with(ZIP_MAGIC) {
        scan_zip(data, options, depth, archive_path, budget, out);
    } else if data.starts_with(GZIP_MAGIC) {
        let inner_name = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".tgz"))
            .unwrap_or(name);
        match read_bounded(
            MultiGzDecoder::new(data),
            None,
            data.len() as u64,
            options,
            budget,
        ) {
            Ok(inflated) if is_tar(&inflated) => {
                scan_tar(&inflated, options, depth, archive_path, budget, out);
            }
            Ok(inflated) => {
                let path = join(
                    archive_path,
                    inner_name.rsplit('/').next().unwrap_or(inner_name),
                );
                super::scan_nested(
                    inner_name,
                    &inflated,
                    options,
                    depth + 1,
                    Some(&path),
                    budget,
                    out,
                );
            }
            Err(reason) => limit(out, archive_path, reason),
        }
    } else if is_tar(data) {
        scan_tar(data, options, depth, archive_path, budget, out);
    }
}

/// The mutable state of one nested walk.
struct Walk<'a> {
    options: &'a Options,
    budget: &'a mut Budget,
    out: &'a mut Vec<Detection>,
}

/// Inflates one archive entry within the limits and scans it one level deeper.
fn scan_entry(
    walk: &mut Walk<'_>,
    reader: impl Read,
    name: &str,
    (size, compressed): (u64, u64),
    depth: u32,
    archive_path: Option<&str>,
) {
    let path = join(archive_path, name);
    match read_bounded(reader, Some(size), compressed, walk.options, walk.budget) {
        Ok(bytes) => super::scan_nested(
            name,
            &bytes,
            walk.options,
            depth + 1,
            Some(&path),
            walk.budget,
            walk.out,
        ),
        Err(reason) => limit(walk.out, Some(&path), reason),
    }
}

fn scan_zip(
    data: &[u8],
    options: &Options,
    depth: u32,
    archive_path: Option<&str>,
    budget: &mut Budget,
    out: &mut Vec<Detection>,
) {
    let mut zip = match zip::ZipArchive::new(Cursor::new(data)) {
        Ok(zip) => zip,
        Err(e) => return limit(out, archive_path, format!("zip archive does not open: {e}")),
    };
    for index in 0..zip.len() {
        let mut entry = match zip.by_index(index) {
            Ok(entry) => entry,
            Err(e) => {
                limit(
                    out,
                    archive_path,
                    format!("zip entry {index} does not open: {e}"),
                );
                continue;
            }
        };
        if !entry.is_file() {
            continue;
        }
        let entry_name = entry
            .name()
            .map_or_else(|_| format!("entry-{index}"), |name| name.into_owned());
        let (size, compressed) = (entry.size(), entry.compressed_size());
        let mut walk = Walk {
            options,
            budget,
            out,
        };
        scan_entry(
            &mut walk,
            &mut entry,
            &entry_name,
            (size, compressed),
            depth,
            archive_path,
        );
    }
}

fn scan_tar(
    data: &[u8],
    options: &Options,
    depth: u32,
    archive_path: Option<&str>,
    budget: &mut Budget,
    out: &mut Vec<Detection>,
) {
    let mut archive = tar::Archive::new(data);
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(e) => return limit(out, archive_path, format!("tar archive does not open: {e}")),
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => return limit(out, archive_path, format!("tar archive is corrupt: {e}")),
        };
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let entry_name = match entry.path() {
            Ok(path) => path.to_string_lossy().trim_start_matches("./").to_string(),
            Err(_) => continue,
        };
        let size = entry.size();
        let mut walk = Walk {
            options,
            budget,
            out,
        };
        scan_entry(
            &mut walk,
            &mut entry,
            &entry_name,
            (size, size),
            depth,
            archive_path,
        );
    }
}

/// Archives are containers, not a `Detector`: their entries run through the table again.
pub const EXAMPLES: super::Examples = super::Examples {
    module: "archive",
    positive: &[
        (
            "archives/app.jar",
            &["key:PKCS#8:rsa", "cert:Pem:CN=app.example.test"],
        ),
        (
            "archives/nested.war",
            &["key:PKCS#8:rsa", "cert:Pem:CN=app.example.test"],
        ),
        ("archives/deep.zip", &["limit"]),
        ("archives/bomb.zip", &["limit"]),
    ],
    negative: &[("negative/no-secrets.jar", &[])],
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// Entries that inflate and then fail their CRC are charged to the budget like any other:
    /// the later ones meet a spent budget instead of being inflated again and again.
    #[test]
    fn entries_that_fail_their_checksum_still_spend_the_budget() {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for index in 0..30 {
            writer.start_file(format!("e{index}.bin"), options).unwrap();
            writer.write_all(&vec![0u8; 1024 * 1024]).unwrap();
        }
        let mut bytes = writer.finish().unwrap().into_inner();
        // Every recorded CRC-32 (local headers at +14, central directory at +16) made wrong.
        let positions: Vec<(usize, usize)> = bytes
            .windows(4)
            .enumerate()
            .filter_map(|(at, w)| match w {
                b"PK\x03\x04" => Some((at, 14)),
                b"PK\x01\x02" => Some((at, 16)),
                _ => None,
            })
            .collect();
        for (at, offset) in positions {
            bytes[at + offset] ^= 0xff;
        }
        let options = Options {
            max_total_inflated: 8 * 1024 * 1024,
            ..Options::default()
        };
        let found = crate::detect::scan_file("bad.zip", &bytes, &options);
        let reasons: Vec<String> = found
            .iter()
            .filter_map(|d| match &d.artifact {
                Artifact::LimitReached { reason } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        assert!(reasons.iter().any(|r| r.contains("budget")), "{reasons:?}");
        let failed = reasons.iter().filter(|r| r.contains("decompress")).count();
        assert!(
            failed <= 9,
            "inflated {failed} failing entries within an 8 MiB budget"
        );
    }
}
