//! The one per-file routine for layer entries and `dir:` trees: a file read whole through
//! every detector, or, past `detect::MAX_WHOLE_FILE`, streamed for PEM blocks only, with its
//! checksums when it has detections. It does not walk tars or directories (its callers do).

use crate::detect::{self, Artifact, Detection, Options};
use crate::packages::{self, FileDigests};
use std::io::Read;

/// What one file held: its detections, and its checksums when it has any.
#[derive(Debug, Default)]
pub struct FileScan {
    pub detections: Vec<Detection>,
    /// Only for a file with detections (hashing every file would cost a scan's time).
    pub digests: Option<FileDigests>,
}

/// Scans one file of `size` bytes from `reader`: read whole (up to `detect::MAX_WHOLE_FILE`)
/// through every detector, or, when larger, streamed for PEM blocks with a note when it is an
/// archive and no unparseable-PEM noise from programs. The one per-file routine for layer
/// entries and `dir:` trees; `buffer` is reused between files and holds a whole file's bytes
/// afterwards.
pub fn scan_one_file(
    name: &str,
    size: u64,
    reader: &mut impl Read,
    options: &Options,
    buffer: &mut Vec<u8>,
) -> std::io::Result<FileScan> {
    crate::keys::reset_work_budget();
    if size <= detect::MAX_WHOLE_FILE {
        buffer.clear();
        reader.take(detect::MAX_WHOLE_FILE).read_to_end(buffer)?;
        let detections = detect::scan_file(name, buffer, options);
        let digests = (!detections.is_empty()).then(|| FileDigests::of(buffer));
        Ok(FileScan {
            detections,
            digests,
        })
    } else {
        // Hashed while streaming: whether it has detections is known only at the end.
        let mut hashing = Hashing {
            inner: reader,
            hasher: packages::Hasher::default(),
        };
        let detections = scan_large(&mut hashing)?;
        std::io::copy(&mut hashing, &mut std::io::sink())?;
        let digests = (!detections.is_empty()).then(|| hashing.hasher.finish());
        Ok(FileScan {
            detections,
            digests,
        })
    }
}

/// A reader that hashes what passes through it.
struct Hashing<'r, R> {
    inner: &'r mut R,
    hasher: packages::Hasher,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

/// Streams a file too large to buffer: PEM blocks only, and a note when it is an archive.
fn scan_large(reader: &mut impl Read) -> std::io::Result<Vec<Detection>> {
    let mut head = Vec::with_capacity(512);
    reader.take(512).read_to_end(&mut head)?;
    let mut found = Vec::new();
    if detect::archive::is_archive(&head, "") {
        found.push(Detection {
            artifact: Artifact::LimitReached {
                reason: format!(
                    "archive larger than {} MiB was not opened; only PEM text in it was scanned",
                    detect::MAX_WHOLE_FILE / (1024 * 1024)
                ),
            },
            archive_path: None,
        });
    }
    let program = detect::is_program(&head);
    let stream = std::io::Cursor::new(head).chain(reader);
    let limit = detect::MAX_DETECTIONS_PER_FILE;
    let dropped = detect::pem::blocks_in_stream(stream, limit, |block| {
        for artifact in detect::interpret_pem_all(&block) {
            found.push(Detection {
                artifact: if program {
                    detect::inert(artifact)
                } else {
                    artifact
                },
                archive_path: None,
            });
        }
    })?;
    if dropped > 0 {
        found.push(Detection {
            artifact: Artifact::LimitReached {
                reason: format!(
                    "{dropped} more PEM blocks in this file were not read (at most {} per file)",
                    detect::MAX_DETECTIONS_PER_FILE
                ),
            },
            archive_path: None,
        });
    }
    Ok(found)
}
