//! PEM blocks anywhere in any bytes: text files, config values, strings compiled into binaries.
//!
//! Markers are found with memchr's SIMD `memmem`, so binaries without markers cost one pass.
//! The `pem` crate is not used because it needs the whole input to be PEM text and stops at the
//! first malformed block; a scanner must find blocks inside arbitrary bytes and report each bad
//! block on its own. This module splits blocks and decodes base64; `interpret` (in `mod.rs`)
//! decides what each label means.

use base64::Engine as _;
use memchr::memmem;
use std::io::Read;

const BEGIN: &[u8] = b"-----BEGIN ";
const DASHES: &[u8] = b"-----";
/// A label longer than this is not a PEM label but prose that happens to contain dashes.
const MAX_LABEL: usize = 64;
/// The largest PEM block accepted. Real blocks are a few KiB (an RSA-16384 key is about 12 KiB);
/// anything larger is reported as unparseable instead of being buffered without bound.
pub const MAX_BLOCK: usize = 1024 * 1024;

/// One `-----BEGIN LABEL-----` … `-----END LABEL-----` block.
#[derive(Debug)]
pub struct Block {
    /// The label, for example `CERTIFICATE`.
    pub label: String,
    /// RFC 1421 headers such as `Proc-Type` and `DEK-Info`.
    pub headers: Vec<(String, String)>,
    /// Decoded body, or why it does not decode.
    pub body: Result<Vec<u8>, String>,
    /// Byte offset of the BEGIN marker in the scanned input.
    pub offset: u64,
}

enum Step {
    /// A complete (or definitely broken) block; scanning resumes at `next`.
    Found(Block, usize),
    /// Not a PEM label; resume just after the marker.
    Skip(usize),
    /// The block may continue past the end of the buffer.
    NeedMore,
}

fn parse_at(buf: &[u8], start: usize, at_eof: bool, base_offset: u64) -> Step {
    let label_start = start + BEGIN.len();
    let window = &buf[label_start..buf.len().min(label_start + MAX_LABEL + DASHES.len())];
    let Some(label_len) = memmem::find(window, DASHES) else {
        return if !at_eof && window.len() < MAX_LABEL + DASHES.len() {
            Step::NeedMore
        } else {
            Step::Skip(label_start)
        };
    };
    let label = &window[..label_len];
    if label.is_empty()
        || !label
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ' || *b == b'#')
    {
        return Step::Skip(label_start);
    }
    let body_start = label_start + label_len + DASHES.len();
    let mut end_marker = b"-----END ".to_vec();
    end_marker.extend_from_slice(label);
    end_marker.extend_from_slice(DASHES);
    let limit = buf.len().min(start + MAX_BLOCK);
    let label = String::from_utf8_lossy(label).into_owned();
    match memmem::find(&buf[body_start..limit], &end_marker) {
        Some(found) => {
            let body = &buf[body_start..body_start + found];
            let (headers, body) = decode(body);
            Step::Found(
                Block {
                    label,
                    headers,
                    body,
                    offset: base_offset + start as u64,
                },
                body_start + found + end_marker.len(),
            )
        }
        None if buf.len() - start >= MAX_BLOCK => Step::Found(
            Block {
                label,
                headers: Vec::new(),
                body: Err(format!("no END line within {} KiB", MAX_BLOCK / 1024)),
                offset: base_offset + start as u64,
            },
            body_start,
        ),
        None if at_eof => Step::Found(
            Block {
                label,
                headers: Vec::new(),
                body: Err("the input ends before the END line".to_string()),
                offset: base_offset + start as u64,
            },
            body_start,
        ),
        None => Step::NeedMore,
    }
}

/// Splits RFC 1421 headers from the base64 body and decodes it.
type Headers = Vec<(String, String)>;

fn decode(body: &[u8]) -> (Headers, Result<Vec<u8>, String>) {
    let text = String::from_utf8_lossy(body);
    let mut headers = Vec::new();
    let mut base64 = String::with_capacity(text.len());
    let mut in_headers = true;
    for line in text.lines() {
        let line = line.trim();
        if in_headers && line.is_empty() && headers.is_empty() && base64.is_empty() {
            continue;
        }
        if in_headers {
            if let Some((name, value)) =
                line.split_once(':').filter(|(name, _)| !name.contains(' '))
            {
                headers.push((name.trim().to_string(), value.trim().to_string()));
                continue;
            }
            if line.is_empty() && !headers.is_empty() {
                in_headers = false;
                continue;
            }
            in_headers = false;
        }
        // PGP armor ends with a CRC line `=XXXX`; it is not part of the data.
        if line.starts_with('=') && line.len() == 5 {
            continue;
        }
        base64.push_str(line);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(base64.as_bytes())
        .map_err(|e| format!("invalid base64: {e}"));
    let decoded = match decoded {
        Ok(bytes) if bytes.is_empty() => Err("empty body".to_string()),
        other => other,
    };
    (headers, decoded)
}

fn scan_buffer(buf: &[u8], at_eof: bool, base_offset: u64, blocks: &mut Vec<Block>) -> usize {
    let finder = memmem::Finder::new(BEGIN);
    let mut position = 0;
    while let Some(found) = finder.find(&buf[position..]) {
        if blocks.len() >= super::MAX_DETECTIONS_PER_FILE {
            // The caller reports the rest as a count; holding them would cost gigabytes.
            return buf.len();
        }
        let start = position + found;
        match parse_at(buf, start, at_eof, base_offset) {
            Step::Found(block, next) => {
                blocks.push(block);
                position = next;
            }
            Step::Skip(next) => position = next,
            Step::NeedMore => return start,
        }
    }
    // Keep a tail that could hold the start of a marker split across reads.
    buf.len().saturating_sub(BEGIN.len() - 1).max(position)
}

/// Every PEM block in `input`.
pub fn blocks(input: &[u8]) -> Vec<Block> {
    let mut found = Vec::new();
    scan_buffer(input, true, 0, &mut found);
    found
}

/// The PEM blocks of a stream, holding at most about `MAX_BLOCK` plus one read in memory: the
/// first `max_blocks` go to `on_block`; after them the stream is only searched for markers,
/// whose number is returned (millions of tiny blocks cost a count, not a parse each).
pub fn blocks_in_stream(
    mut reader: impl Read,
    max_blocks: usize,
    mut on_block: impl FnMut(Block),
) -> std::io::Result<u64> {
    let mut delivered = 0usize;
    let mut beyond = 0u64;
    const READ: usize = 256 * 1024;
    let mut buf: Vec<u8> = Vec::with_capacity(READ * 2);
    let mut base_offset = 0u64;
    loop {
        let filled = buf.len();
        buf.resize(filled + READ, 0);
        let read = loop {
            match reader.read(&mut buf[filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        buf.truncate(filled + read);
        let at_eof = read == 0;
        if delivered >= max_blocks {
            beyond += memmem::find_iter(&buf, BEGIN).count() as u64;
            if at_eof {
                return Ok(beyond);
            }
            // A marker split across reads is counted once its second half arrives.
            let keep_from = buf.len().saturating_sub(BEGIN.len() - 1);
            buf.drain(..keep_from);
            continue;
        }
        let mut found = Vec::new();
        let keep_from = scan_buffer(&buf, at_eof, base_offset, &mut found);
        for block in found {
            if delivered < max_blocks {
                delivered += 1;
                on_block(block);
            } else {
                beyond += 1;
            }
        }
        if at_eof {
            return Ok(beyond);
        }
        buf.drain(..keep_from);
        base_offset += keep_from as u64;
    }
}

/// PEM blocks of every label `interpret_pem` knows: certificates, requests, and private keys
/// (PKCS#1, PKCS#8, SEC1, DSA, legacy-encrypted, OpenSSH, OpenPGP). In a compiled program, PEM
/// markers without a valid body are string constants, not broken keys, and are left out.
pub const DETECTOR: super::Detector = super::Detector {
    name: "pem",
    detect: |input| {
        let program = super::is_program(input.data);
        let found = blocks(input.data);
        let mut out: Vec<super::Artifact> = found
            .iter()
            .flat_map(super::interpret_pem_all)
            .map(|artifact| {
                if program {
                    super::inert(artifact)
                } else {
                    artifact
                }
            })
            .collect();
        if found.len() >= super::MAX_DETECTIONS_PER_FILE {
            let markers = memmem::find_iter(input.data, BEGIN).count();
            if markers > found.len() {
                out.push(super::Artifact::LimitReached {
                    reason: format!(
                        "{} more PEM blocks in this file were not read (at most {} per file)",
                        markers - found.len(),
                        found.len()
                    ),
                });
            }
        }
        out
    },
    examples: &[EXAMPLES, super::openssh::EXAMPLES, super::pgp::EXAMPLES],
};

pub const EXAMPLES: super::Examples = super::Examples {
    module: "pem",
    positive: &[
        ("certs/leaf.pem", &["cert:Pem:CN=app.example.test"]),
        (
            "certs/leaf-chain.pem",
            &[
                "cert:Pem:CN=app.example.test",
                "cert:Pem:CN=ocicert Test Intermediate",
            ],
        ),
        (
            "certs/trusted-cert.pem",
            &["cert:TrustedPem:CN=ocicert Test Root CA, O=ocicert tests"],
        ),
        ("certs/csr.pem", &["csr:CN=csr.example.test"]),
        ("keys/rsa-pkcs1.pem", &["key:PKCS#1:rsa"]),
        ("keys/rsa-pkcs8.pem", &["key:PKCS#8:rsa"]),
        ("keys/ec-sec1.pem", &["key:SEC1:ec"]),
        ("keys/dsa.pem", &["key:OpenSSL DSA:dsa"]),
        (
            "keys/encrypted-pkcs8.pem",
            &["key:encrypted PKCS#8:unknown:encrypted:PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC"],
        ),
        (
            "keys/pkcs8-schemes/pbes2-aes256-sha256.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/pbes2-aes128-sha1.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PBES2 PBKDF2-HMAC-SHA1 AES-128-CBC:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/pbes2-des3.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PBES2 PBKDF2-HMAC-SHA256 DES-EDE3-CBC:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/pbes2-des.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PBES2 PBKDF2-HMAC-SHA256 DES-CBC:weak:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/pbes2-scrypt.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PBES2 scrypt AES-256-CBC:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/pbes2-des3-secret.pem",
            &["key:encrypted PKCS#8:unknown:encrypted:PBES2 PBKDF2-HMAC-SHA256 DES-EDE3-CBC"],
        ),
        (
            "keys/pkcs8-schemes/v1-pbe-md5-des.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PBES1 MD5-DES:weak:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/v1-pbe-sha1-des.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PBES1 SHA1-DES:weak:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/v1-pbe-md5-rc2-64.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PBES1 MD5-RC2:weak:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/v1-pbe-sha1-rc2-64.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PBES1 SHA1-RC2:weak:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/v1-pbe-sha1-3des.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PKCS#12 PBE SHA1-3DES:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/v1-pbe-sha1-2des.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PKCS#12 PBE SHA1-2DES:weak:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/v1-pbe-sha1-rc2-128.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PKCS#12 PBE SHA1-RC2-128:weak:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/v1-pbe-sha1-rc2-40.pem",
            &[
                "key:encrypted PKCS#8:rsa:encrypted:PKCS#12 PBE SHA1-RC2-40:weak:opened-with-well-known default",
            ],
        ),
        (
            "keys/pkcs8-schemes/v1-pbe-sha1-rc4-128.pem",
            &["key:encrypted PKCS#8:unknown:encrypted:PKCS#12 PBE SHA1-RC4-128:weak"],
        ),
        (
            "keys/pkcs8-schemes/v1-pbe-sha1-rc4-40.pem",
            &["key:encrypted PKCS#8:unknown:encrypted:PKCS#12 PBE SHA1-RC4-40:weak"],
        ),
        (
            "keys/pkcs8-schemes/unknown-scheme.pem",
            &["key:encrypted PKCS#8:unknown:encrypted:an unknown scheme (1.3.6.1.4.1.831.1695)"],
        ),
        (
            "keys/legacy-encrypted.pem",
            &["key:legacy encrypted PEM:rsa:encrypted"],
        ),
        ("elf/embedded-key.bin", &["key:SEC1:ec"]),
        ("certs/revoked-crl.pem", &["crl"]),
    ],
    negative: &[
        ("negative/docs-mention.md", &[]),
        ("negative/public-key.pem", &[]),
        ("negative/fake-pem.txt", &["unparseable:Pem"]),
        // PEM markers as string constants and examples: inventory only.
        (
            "negative/pem-strings.elf",
            &[
                "inert:PEM CERTIFICATE",
                "inert:PEM RSA PRIVATE KEY",
                "inert:PEM PRIVATE KEY",
            ],
        ),
        (
            "negative/pem-in-source.py",
            &["inert:PEM CERTIFICATE", "inert:PEM CERTIFICATE"],
        ),
        (
            "negative/readme-pem.md",
            &["inert:PEM CERTIFICATE", "inert:PEM PRIVATE KEY"],
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_LIKE: &str = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";

    #[test]
    fn finds_blocks_inside_binary_noise() {
        let mut input = vec![0u8, 1, 2, 255];
        input.extend_from_slice(CERT_LIKE.as_bytes());
        input.extend_from_slice(b"\x00-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAEC\n-----END RSA PRIVATE KEY-----");
        let found = blocks(&input);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].label, "CERTIFICATE");
        assert_eq!(found[0].offset, 4);
        assert_eq!(found[0].body.as_deref().ok(), Some(&[0u8, 1, 2][..]));
        assert_eq!(
            found[1].headers[0],
            ("Proc-Type".into(), "4,ENCRYPTED".into())
        );
    }

    #[test]
    fn prose_mentioning_markers_is_not_a_block() {
        assert!(blocks(b"use -----BEGIN to start and BEGIN PRIVATE KEY ----- end").is_empty());
        assert!(blocks(b"-----BEGIN lowercase-----\nAA\n-----END lowercase-----").is_empty());
    }

    #[test]
    fn unterminated_and_bad_base64_blocks_are_reported_not_dropped() {
        let found = blocks(b"-----BEGIN PRIVATE KEY-----\nAAAA");
        assert_eq!(found.len(), 1);
        assert!(found[0].body.is_err());
        let found = blocks(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----");
        assert!(found[0].body.as_ref().is_err_and(|e| e.contains("base64")));
    }

    #[test]
    fn streaming_finds_blocks_split_across_reads_and_bounds_huge_ones() {
        let mut input = vec![b'x'; 256 * 1024 - 7];
        input.extend_from_slice(CERT_LIKE.as_bytes());
        input.extend_from_slice(b"-----BEGIN PRIVATE KEY-----\n");
        input.extend(std::iter::repeat_n(b'A', 3 * MAX_BLOCK));
        input.extend_from_slice(b"\n-----END PRIVATE KEY-----\n");
        input.extend_from_slice(CERT_LIKE.as_bytes());
        let mut found = Vec::new();
        blocks_in_stream(&input[..], usize::MAX, |b| found.push(b)).expect("in-memory read");
        let summary: Vec<_> = found
            .iter()
            .map(|b| (b.label.as_str(), b.body.is_ok()))
            .collect();
        assert_eq!(
            summary,
            [
                ("CERTIFICATE", true),
                ("PRIVATE KEY", false),
                ("CERTIFICATE", true)
            ]
        );
        assert_eq!(found[0].offset, 256 * 1024 - 7);
    }
}
