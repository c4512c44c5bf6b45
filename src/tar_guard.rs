//! A reader between a tar stream and the tar crate that keeps the members the tar crate reads
//! whole into memory (GNU long names and long link names, PAX extended headers) within a bound:
//! an oversized one is handed on as a regular file named `OVERSIZED_PREFIX…`, which the tar crate
//! streams like any file and the caller reports and skips, with the entry it belongs to.
//! Everything else passes byte for byte.
//! It does not validate the archive (the tar crate does), and keeps no more than one header and
//! one PAX header within the bound in memory.
//!
//! Hand-written because tar 0.4 reads a long name or PAX header of any size into one `Vec`
//! (`EntryFields::read_all`) and has no limit to set; raw mode would give up its PAX, long-name
//! and sparse handling altogether.

use std::io::Read;

/// The longest GNU long name or link name read: Linux's `PATH_MAX` plus the NUL.
pub const MAX_LONG_NAME: u64 = 4097;
/// The largest PAX extended header read (paths, link targets, extended attributes).
pub const MAX_PAX_HEADER: u64 = 1 << 20;
/// How an oversized member is renamed: `OVERSIZED_PREFIX<kind>-<size>`, kind `L`, `K` or `x`.
pub const OVERSIZED_PREFIX: &str = "././@ocicert-oversized-";

const BLOCK: usize = 512;

/// Where and what an oversized member was, from the name it was given: the name GNU tar shows
/// for such a member (`@LongLink`, `@PaxHeader`), and what was left unread. The caller skips
/// the entry after it too: its real name is the one that was not read.
pub fn oversized(path: &str) -> Option<(&'static str, String)> {
    let rest = path.strip_prefix(OVERSIZED_PREFIX)?;
    let (kind, size) = rest.split_once('-')?;
    let (place, reason) = match kind {
        "L" => (
            "/@LongLink",
            format!(
                "a GNU long name of {size} bytes, over Linux's 4096-byte PATH_MAX, was not read, \
                 and the entry it names was not scanned"
            ),
        ),
        "K" => (
            "/@LongLink",
            format!(
                "a GNU long link name of {size} bytes, over Linux's 4096-byte PATH_MAX, was not \
                 read, and the entry it belongs to was not scanned"
            ),
        ),
        _ => (
            "/@PaxHeader",
            format!(
                "a PAX extended header of {size} bytes (over the {} KiB limit) was not read, and \
                 the entry it describes was not scanned",
                MAX_PAX_HEADER >> 10
            ),
        ),
    };
    Some((place, reason))
}

/// See the module documentation.
pub struct Guard<R> {
    inner: R,
    block: [u8; BLOCK],
    /// Bytes of `block` filled, and handed out.
    filled: usize,
    served: usize,
    /// Bytes of member data (padding included) still to pass through.
    data_left: u64,
    /// Old GNU sparse extension blocks follow; then `sparse_data` bytes of data.
    sparse_extended: bool,
    sparse_data: u64,
    /// A PAX header being read (within the bound) for its `size`, and its unpadded length.
    pax: Option<(Vec<u8>, usize)>,
    /// The `size` a PAX header set for the next member.
    pax_size: Option<u64>,
}

impl<R: Read> Guard<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            block: [0; BLOCK],
            filled: 0,
            served: 0,
            data_left: 0,
            sparse_extended: false,
            sparse_data: 0,
            pax: None,
            pax_size: None,
        }
    }

    /// Reads the next header block, then looks at it (and perhaps rewrites it).
    fn next_block(&mut self) -> std::io::Result<()> {
        self.filled = 0;
        self.served = 0;
        while self.filled < BLOCK {
            match self.inner.read(&mut self.block[self.filled..]) {
                Ok(0) => break,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.filled == BLOCK {
            self.inspect();
        }
        Ok(())
    }

    fn inspect(&mut self) {
        if self.sparse_extended {
            // One more block of sparse map; byte 504 says whether another follows.
            if self.block[504] == 0 {
                self.sparse_extended = false;
                self.data_left = padded(self.sparse_data);
            }
            return;
        }
        if self.block.iter().all(|b| *b == 0) {
            return;
        }
        let kind = self.block[156];
        let mut size = header_size(&self.block[124..136]);
        let extension = matches!(kind, b'L' | b'K' | b'x' | b'g');
        if !extension && let Some(pax) = self.pax_size.take() {
            size = pax;
        }
        let limit = match kind {
            b'L' | b'K' => Some(MAX_LONG_NAME),
            b'x' => Some(MAX_PAX_HEADER),
            _ => None,
        };
        if limit.is_some_and(|limit| size > limit) {
            self.rename(kind, size);
        } else if kind == b'x' {
            let len = usize::try_from(size).unwrap_or(0);
            self.pax = Some((Vec::with_capacity(len), len));
        }
        if kind == b'S' && self.block[482] != 0 {
            self.sparse_extended = true;
            self.sparse_data = size;
            return;
        }
        self.data_left = padded(size);
    }

    /// Turns the header into a regular file's named `OVERSIZED_PREFIX<kind>-<size>`.
    fn rename(&mut self, kind: u8, size: u64) {
        let name = format!("{OVERSIZED_PREFIX}{}-{size}", kind as char);
        self.block[..100].fill(0);
        self.block[..name.len()].copy_from_slice(name.as_bytes());
        if &self.block[257..263] == b"ustar\0" {
            // A POSIX header's prefix field would be joined to the name.
            self.block[345..500].fill(0);
        }
        self.block[156] = b'0';
        self.block[148..156].fill(b' ');
        let sum: u32 = self.block.iter().map(|b| u32::from(*b)).sum();
        let checksum = format!("{sum:06o}\0 ");
        self.block[148..156].copy_from_slice(checksum.as_bytes());
    }

    /// Keeps the bytes of a PAX header within the bound; at its end, notes its `size`.
    fn record_pax(&mut self, bytes: &[u8]) {
        let Some((data, len)) = &mut self.pax else {
            return;
        };
        let room = len.saturating_sub(data.len());
        data.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if data.len() >= *len {
            self.pax_size = pax_size(data);
            self.pax = None;
        }
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.served == self.filled && self.data_left == 0 {
            self.next_block()?;
        }
        if self.served < self.filled {
            let n = buf.len().min(self.filled - self.served);
            buf[..n].copy_from_slice(&self.block[self.served..self.served + n]);
            self.served += n;
            return Ok(n);
        }
        if self.data_left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.data_left -= n as u64;
        if self.pax.is_some() {
            self.record_pax(&buf[..n]);
        }
        Ok(n)
    }
}

/// Only what the tar crate's `entries_with_seek` does: skipping forward over the rest of a
/// member's data, which keeps the guard's place.
impl<R: Read + std::io::Seek> std::io::Seek for Guard<R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        match pos {
            std::io::SeekFrom::Current(n)
                if self.served == self.filled
                    && self.pax.is_none()
                    && u64::try_from(n).is_ok_and(|n| n <= self.data_left) =>
            {
                self.data_left -= n.unsigned_abs();
                self.inner.seek(pos)
            }
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "a tar stream is only skipped forward over member data",
            )),
        }
    }
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64).saturating_mul(BLOCK as u64)
}

/// A header's size field: octal text, or base-256 when its first byte has the high bit set.
fn header_size(field: &[u8]) -> u64 {
    if field[0] & 0x80 != 0 {
        return field[1..].iter().fold(u64::from(field[0] & 0x7f), |n, b| {
            n.saturating_mul(256).saturating_add(u64::from(*b))
        });
    }
    field
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(*b))
        .fold(0u64, |n, b| {
            n.saturating_mul(8).saturating_add(u64::from(b - b'0'))
        })
}

/// The `size` record of PAX header data (`"<len> size=<n>\n"` records).
fn pax_size(data: &[u8]) -> Option<u64> {
    data.split(|b| *b == b'\n')
        .filter_map(|record| {
            let (_, rest) = record.split_at(record.iter().position(|b| *b == b' ')? + 1);
            rest.strip_prefix(b"size=")
        })
        .next_back()
        .and_then(|value| std::str::from_utf8(value).ok()?.parse().ok())
}

#[cfg(test)]
mod tests;
