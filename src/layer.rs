//! Walking one layer blob: verify its digest while streaming, decompress (gzip, zstd or none),
//! read tar entries (PAX and GNU long names via the tar crate), record whiteouts, and run the
//! detectors over each regular file.
//!
//! Nothing is written to disk and links are never followed: a symlink is a path change, not
//! content, and a hardlink re-reports what its target held in the same layer. Files up to
//! `detect::MAX_WHOLE_FILE` are buffered for the structural detectors; larger ones are streamed
//! through the PEM scanner only, so memory stays bounded whatever the layer holds. Whether a
//! file survives into the final image is decided later, across layers, by `overlay`.

use crate::detect::{self, Artifact, Detection, Options};
use crate::image::digest::{Digest, VerifyingReader};
use crate::packages::{self, FileDigests};
use flate2::bufread::MultiGzDecoder;
use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

mod file;
pub use file::{FileScan, scan_one_file};

/// How a path changed in a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    /// A directory was created or updated.
    Directory,
    /// A file, link or device was written (replacing whatever was there).
    Entry,
    /// `.wh.NAME`: the path was deleted.
    Whiteout,
    /// `.wh..wh..opq`: everything below the directory from lower layers is hidden.
    Opaque,
}

/// What one layer contains, as far as the scan cares.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LayerScan {
    /// Every path the layer touches, in tar order.
    pub changes: Vec<(String, Change)>,
    /// Detections with the absolute path of the file they came from.
    pub detections: Vec<(String, Detection)>,
    /// Regular files read.
    pub files: u64,
    /// Uncompressed bytes of file content read.
    pub bytes: u64,
    /// Symbolic and hard links, with their targets as written in the tar.
    #[serde(default)]
    pub links: Vec<Link>,
    /// Package database files (`packages::is_database_file`) with their text, for owners.
    #[serde(default)]
    pub package_files: Vec<(String, String)>,
    /// Checksums of the files that have detections, to compare with the package records.
    #[serde(default)]
    pub digests: Vec<(String, FileDigests)>,
}

/// A link entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    /// Absolute path of the link.
    pub path: String,
    /// Target as written: relative to the link's directory, or absolute within the image.
    /// Hard-link targets are normalised absolute paths.
    pub target: String,
    /// A hard link (same content) rather than a symlink.
    pub hard: bool,
}

/// A layer that could not be scanned. Every variant names the layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "layer `{layer}` does not decompress (truncated or corrupt {compression} stream){}",
        at(path)
    )]
    Decompress {
        layer: String,
        compression: &'static str,
        path: Option<String>,
        #[source]
        source: std::io::Error,
    },
    #[error("layer `{layer}` is not a valid tar archive{}", at(path))]
    Tar {
        layer: String,
        path: Option<String>,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read layer `{layer}`")]
    Read {
        layer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("layer `{layer}` does not match its digest: the content hashes to `{actual}`")]
    DigestMismatch { layer: String, actual: String },
    #[error("layer `{layer}` is {actual} bytes, but the manifest says {expected}")]
    SizeMismatch {
        layer: String,
        expected: u64,
        actual: u64,
    },
    #[error("layer `{layer}` has an unsupported digest")]
    BadDigest { layer: String },
    #[error("layer `{layer}` was not scanned within the time budget{}", at(path))]
    OutOfTime { layer: String, path: Option<String> },
    #[error(
        "layer `{layer}` was not scanned within the memory budget ({} MiB of process memory){}",
        limit >> 20,
        at(path)
    )]
    OutOfMemory {
        layer: String,
        path: Option<String>,
        limit: u64,
    },
}

fn at(path: &Option<String>) -> String {
    path.as_ref()
        .map(|p| format!(" at `{p}`"))
        .unwrap_or_default()
}

/// Reads through a decompressor (or the blob source) and remembers whether a failure came from it.
struct Watched<R> {
    inner: R,
    failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed.set(true))
    }
}

/// Normalises a tar path to an absolute image path, resolving `.` and `..` lexically without
/// ever leaving `/`.
pub fn normalize(raw: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Scans one layer. `layer` names it in errors; `expected` is its digest when known.
pub fn scan(
    raw: impl Read,
    layer: &str,
    expected_size: Option<u64>,
    options: &Options,
) -> Result<LayerScan, Error> {
    let mut result = LayerScan::default();
    let scanned = with_tar(raw, layer, expected_size, |decoder, last_path| {
        walk(decoder, options, &mut result, last_path)
    });
    match scanned {
        Err(Error::Tar {
            layer,
            path,
            source,
        })
        | Err(Error::Decompress {
            layer,
            path,
            source,
            ..
        }) if out_of_budget(&source) => Err(budget_error(&source, layer, path, options)),
        other => other.map(|()| result),
    }
}

/// Whether a walk's read error is a budget that ran out (wrapped in the reader's error).
fn out_of_budget(source: &std::io::Error) -> bool {
    source
        .get_ref()
        .is_some_and(|e| e.is::<OutOfTime>() || e.is::<OutOfMemory>())
}

fn budget_error(
    source: &std::io::Error,
    layer: String,
    path: Option<String>,
    options: &Options,
) -> Error {
    if source.get_ref().is_some_and(|e| e.is::<OutOfTime>()) {
        Error::OutOfTime { layer, path }
    } else {
        Error::OutOfMemory {
            layer,
            path,
            limit: options.memory_limit.unwrap_or_default(),
        }
    }
}

/// Reads the regular files named in `wanted` (absolute image paths) out of one layer,
/// verifying the layer's digest like `scan`. Files larger than `MAX_WHOLE_FILE` are skipped.
pub fn extract(
    raw: impl Read,
    layer: &str,
    expected_size: Option<u64>,
    wanted: &std::collections::HashSet<String>,
) -> Result<std::collections::HashMap<String, Vec<u8>>, Error> {
    let mut found = std::collections::HashMap::new();
    with_tar(raw, layer, expected_size, |decoder, last_path| {
        let mut archive = tar::Archive::new(crate::tar_guard::Guard::new(decoder));
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = normalize(&entry.path()?.to_string_lossy());
            *last_path = Some(path.clone());
            let kind = entry.header().entry_type();
            if wanted.contains(&path)
                && (kind.is_file() || kind == tar::EntryType::Continuous)
                && entry.size() <= detect::MAX_WHOLE_FILE
            {
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(detect::MAX_WHOLE_FILE)
                    .read_to_end(&mut bytes)?;
                found.insert(path, bytes);
            }
        }
        Ok(())
    })?;
    Ok(found)
}

/// Opens a layer blob as a tar stream (gzip, zstd or plain), runs `body` over it, then checks
/// the blob's size and digest. Errors name the layer and the last path read.
fn with_tar(
    raw: impl Read,
    layer: &str,
    expected_size: Option<u64>,
    body: impl FnOnce(&mut dyn Read, &mut Option<String>) -> std::io::Result<()>,
) -> Result<(), Error> {
    let digest = Digest::parse(layer).ok_or_else(|| Error::BadDigest {
        layer: layer.to_string(),
    })?;
    let limit = expected_size.map_or(u64::MAX, |size| size.saturating_add(1));
    // A failing source (a registry timing out mid-layer) is a read error, not a corrupt stream.
    let source_failed = Rc::new(Cell::new(false));
    let raw = Watched {
        inner: raw,
        failed: source_failed.clone(),
    };
    let verifying = VerifyingReader::new(raw.take(limit), digest.algorithm);
    let mut buffered = BufReader::with_capacity(256 * 1024, verifying);
    let head = buffered.fill_buf().map_err(|source| Error::Read {
        layer: layer.to_string(),
        source,
    })?;
    let failed = Rc::new(Cell::new(false));
    let (compression, mut decoder): (&'static str, Box<dyn Read + '_>) =
        if head.starts_with(&[0x1f, 0x8b]) {
            (
                "gzip",
                Box::new(Watched {
                    inner: MultiGzDecoder::new(&mut buffered),
                    failed: failed.clone(),
                }),
            )
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            let decoder =
                zstd::stream::read::Decoder::with_buffer(&mut buffered).map_err(|source| {
                    Error::Read {
                        layer: layer.to_string(),
                        source,
                    }
                })?;
            (
                "zstd",
                Box::new(Watched {
                    inner: decoder,
                    failed: failed.clone(),
                }),
            )
        } else {
            ("uncompressed", Box::new(&mut buffered))
        };
    let mut last_path: Option<String> = None;
    let outcome = body(&mut decoder, &mut last_path);
    drop(decoder);
    if let Err(source) = outcome {
        let layer = layer.to_string();
        return Err(if source_failed.get() {
            Error::Read { layer, source }
        } else if failed.get() {
            Error::Decompress {
                layer,
                compression,
                path: last_path,
                source,
            }
        } else {
            Error::Tar {
                layer,
                path: last_path,
                source,
            }
        });
    }
    let (actual, bytes) = buffered
        .into_inner()
        .finish()
        .map_err(|source| Error::Read {
            layer: layer.to_string(),
            source,
        })?;
    if let Some(expected) = expected_size.filter(|expected| *expected != bytes) {
        return Err(Error::SizeMismatch {
            layer: layer.to_string(),
            expected,
            actual: bytes,
        });
    }
    if actual != layer {
        return Err(Error::DigestMismatch {
            layer: layer.to_string(),
            actual,
        });
    }
    Ok(())
}

fn walk(
    decoder: impl Read,
    options: &Options,
    result: &mut LayerScan,
    last_path: &mut Option<String>,
) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(crate::tar_guard::Guard::new(decoder));
    let mut buffer = Vec::new();
    let mut hardlinks: Vec<(String, String)> = Vec::new();
    // After an oversized long name or PAX header, the entry it belongs to, whose real name is
    // unknown, is skipped.
    let mut skip_next = false;
    for entry in archive.entries()? {
        let mut entry = entry?;
        check_time(options)?;
        if std::mem::take(&mut skip_next) {
            continue;
        }
        let raw_path = entry.path()?.to_string_lossy().into_owned();
        if let Some((place, reason)) = crate::tar_guard::oversized(&raw_path) {
            // Streamed past, never held (the tar crate would read it whole).
            skip_next = true;
            result.detections.push((
                place.to_string(),
                Detection {
                    artifact: Artifact::LimitReached { reason },
                    archive_path: None,
                },
            ));
            continue;
        }
        let path = normalize(&raw_path);
        if let Some(reason) = too_long(&path) {
            // No Linux process can open it; and the overlay's ancestor walk is quadratic in
            // its depth. Reported under a shortened name, and not scanned.
            let shown: String = path.chars().take(200).collect();
            result.detections.push((
                format!("{shown}…"),
                Detection {
                    artifact: Artifact::LimitReached { reason },
                    archive_path: None,
                },
            ));
            continue;
        }
        *last_path = Some(path.clone());
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", &path));
        if name == ".wh..wh..opq" {
            result.changes.push((normalize(parent), Change::Opaque));
            continue;
        }
        if let Some(deleted) = name.strip_prefix(".wh.") {
            result
                .changes
                .push((normalize(&format!("{parent}/{deleted}")), Change::Whiteout));
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            result.changes.push((path, Change::Directory));
            continue;
        }
        result.changes.push((path.clone(), Change::Entry));
        if kind.is_symlink() {
            if let Some(target) = entry.link_name()? {
                result.links.push(Link {
                    path,
                    target: target.to_string_lossy().into_owned(),
                    hard: false,
                });
            }
            continue;
        }
        if kind.is_hard_link() {
            if let Some(target) = entry.link_name()? {
                let target = normalize(&target.to_string_lossy());
                result.links.push(Link {
                    path: path.clone(),
                    target: target.clone(),
                    hard: true,
                });
                hardlinks.push((path, target));
            }
            continue;
        }
        if !(kind.is_file() || kind.is_gnu_sparse() || kind == tar::EntryType::Continuous) {
            continue;
        }
        let size = entry.size();
        if size == 0 {
            continue;
        }
        if kind.is_gnu_sparse() && size > MAX_SPARSE_SIZE {
            // The tar reader expands holes into zeros: a few stored bytes can declare a
            // terabyte. Such an entry is reported, not read.
            result.detections.push((
                path.clone(),
                Detection {
                    artifact: Artifact::LimitReached {
                        reason: format!(
                            "a sparse file of {size} bytes (over {} MiB with its holes) was not scanned",
                            MAX_SPARSE_SIZE / (1024 * 1024)
                        ),
                    },
                    archive_path: None,
                },
            ));
            continue;
        }
        result.files += 1;
        result.bytes += size;
        let mut timed = Timed {
            inner: &mut entry,
            options,
        };
        let found = scan_one_file(name, size, &mut timed, options, &mut buffer)?;
        if size <= detect::MAX_WHOLE_FILE && packages::is_database_file(&path) {
            let text = packages::database_text(&path, &buffer);
            result.package_files.push((path.clone(), text));
        }
        if let Some(digests) = found.digests {
            result.digests.push((path.clone(), digests));
            // A jar with a finding: the Maven artifact it is, if it says.
            if size <= detect::MAX_WHOLE_FILE
                && let Some(record) = packages::maven::record(&path, &buffer)
            {
                result.package_files.push(record);
            }
        }
        result
            .detections
            .extend(found.detections.into_iter().map(|d| (path.clone(), d)));
    }
    link_detections(result, &hardlinks);
    Ok(())
}

/// The largest sparse entry (holes included) that is read.
const MAX_SPARSE_SIZE: u64 = 64 * 1024 * 1024;

/// Linux's limits on a path (`PATH_MAX`) and on one of its names (`NAME_MAX`).
const PATH_MAX: usize = 4096;
const NAME_MAX: usize = 255;

/// Why a path is longer than Linux accepts, if it is.
fn too_long(path: &str) -> Option<String> {
    if path.len() > PATH_MAX {
        return Some(format!(
            "a path of {} bytes, over Linux's {PATH_MAX}-byte PATH_MAX, was not scanned",
            path.len()
        ));
    }
    path.split('/')
        .find(|name| name.len() > NAME_MAX)
        .map(|name| {
            format!(
                "a file name of {} bytes, over Linux's {NAME_MAX}-byte NAME_MAX, was not scanned",
                name.len()
            )
        })
}

/// The most hard links to one file whose detections are reported again under the link's path.
pub const MAX_LINKS_PER_FILE: usize = 100;

/// A hard link re-reports what its target held, found through one index (a layer of 320,000
/// links to one file used to search every detection per link), for at most
/// `MAX_LINKS_PER_FILE` links per target; the rest are one `LimitReached` with their count.
fn link_detections(result: &mut LayerScan, hardlinks: &[(String, String)]) {
    let mut by_path: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
    for (index, (path, _)) in result.detections.iter().enumerate() {
        by_path.entry(path.as_str()).or_default().push(index);
    }
    let digests: std::collections::HashMap<&str, &FileDigests> = result
        .digests
        .iter()
        .map(|(path, digests)| (path.as_str(), digests))
        .collect();
    let mut links_per_target: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::new();
    let (mut copies, mut linked_digests, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (link, target) in hardlinks {
        let Some(indices) = by_path.get(target.as_str()) else {
            continue;
        };
        let links = links_per_target.entry(target.as_str()).or_default();
        *links += 1;
        if *links > MAX_LINKS_PER_FILE {
            skipped.push(link.clone());
            continue;
        }
        copies.extend(
            indices
                .iter()
                .map(|index| (link.clone(), result.detections[*index].1.clone())),
        );
        if let Some(digests) = digests.get(target.as_str()) {
            linked_digests.push((link.clone(), (*digests).clone()));
        }
    }
    result.detections.extend(copies);
    result.digests.extend(linked_digests);
    if let Some(first) = skipped.first() {
        result.detections.push((
            first.clone(),
            Detection {
                artifact: Artifact::LimitReached {
                    reason: format!(
                        "{} more hard links to files with detections were not reported (at most {MAX_LINKS_PER_FILE} per file)",
                        skipped.len()
                    ),
                },
                archive_path: None,
            },
        ));
    }
}

/// The error a scan past its deadline stops with (inside an `io::Error`).
#[derive(Debug, thiserror::Error)]
#[error("the time budget ran out")]
struct OutOfTime;

/// The error a scan past its memory budget stops with (inside an `io::Error`).
#[derive(Debug, thiserror::Error)]
#[error("the memory budget ran out")]
struct OutOfMemory;

/// Stops the scan past its deadline or its memory budget.
fn check_time(options: &Options) -> std::io::Result<()> {
    if let Some(deadline) = options.deadline
        && std::time::Instant::now() > deadline
    {
        return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, OutOfTime));
    }
    if let Some(limit) = options.memory_limit
        && crate::memory::resident_bytes().is_some_and(|bytes| bytes > limit)
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            OutOfMemory,
        ));
    }
    Ok(())
}

/// A file's reader that stops when the scan's deadline passes, so that no one entry (a sparse
/// file declaring a terabyte of holes) can run past it.
struct Timed<'r, R> {
    inner: &'r mut R,
    options: &'r Options,
}

impl<R: Read> Read for Timed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        check_time(self.options)?;
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_failing_mid_layer_is_a_read_error_not_corruption() {
        use std::io::Write as _;
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(300_000);
        header.set_mode(0o644);
        tar.append_data(&mut header, "big.bin", &[7u8; 300_000][..])
            .unwrap();
        let plain = tar.into_inner().unwrap();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        encoder.write_all(&plain).unwrap();
        for stored in [encoder.finish().unwrap(), plain] {
            let digest = crate::image::digest::sha256(&stored);
            let half = stored[..stored.len() / 2].to_vec();
            let failing = std::io::Cursor::new(half).chain(FailingReader);
            let error = scan(failing, &digest, None, &Options::default()).unwrap_err();
            assert!(matches!(error, Error::Read { .. }), "{error:?}");
            assert!(error.to_string().contains(&digest), "{error}");
        }
    }

    struct FailingReader;

    impl Read for FailingReader {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "stalled"))
        }
    }

    #[test]
    fn normalize_never_escapes_the_root() {
        assert_eq!(normalize("./etc/ssl/../ssl/x.pem"), "/etc/ssl/x.pem");
        assert_eq!(normalize("../../../etc/passwd"), "/etc/passwd");
        assert_eq!(normalize("/abs//path/"), "/abs/path");
        assert_eq!(normalize("."), "/");
    }
}
