//! OpenPGP secret keys (`PGP PRIVATE KEY BLOCK`): algorithm, size and whether the secret
//! material is passphrase-protected.
//!
//! Hand-written on purpose: the Rust OpenPGP crates (sequoia, rpgp) are large and pull crypto
//! back-ends we do not need; the first packet's public part and one S2K octet are all we read
//! (RFC 4880 §5.5.3, RFC 9580 §5.5.3). It does not verify or decrypt anything.

use crate::keys::{Error, KeyFormat, KeyInfo};

fn error(reason: &str) -> Error {
    Error {
        format: KeyFormat::Pgp,
        reason: reason.to_string(),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Error> {
        if len > self.0.len() {
            return Err(error("truncated packet"));
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(head)
    }
    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    /// A multiprecision integer: returns its bit count.
    fn mpi(&mut self) -> Result<u32, Error> {
        let head = self.take(2)?;
        let bits = u16::from_be_bytes([head[0], head[1]]) as usize;
        self.take(bits.div_ceil(8))?;
        Ok(bits as u32)
    }
    fn oid(&mut self) -> Result<&'a [u8], Error> {
        let len = self.byte()? as usize;
        self.take(len)
    }
}

/// Returns the tag and body of the first packet.
fn first_packet(data: &[u8]) -> Result<(u8, &[u8]), Error> {
    let header = *data.first().ok_or_else(|| error("empty"))?;
    if header & 0x80 == 0 {
        return Err(error("not an OpenPGP packet"));
    }
    let (tag, len, start) = if header & 0x40 != 0 {
        let tag = header & 0x3f;
        let first = *data.get(1).ok_or_else(|| error("truncated header"))? as usize;
        match first {
            0..=191 => (tag, first, 2),
            192..=223 => {
                let second = *data.get(2).ok_or_else(|| error("truncated header"))? as usize;
                (tag, ((first - 192) << 8) + second + 192, 3)
            }
            255 => {
                let bytes = data.get(2..6).ok_or_else(|| error("truncated header"))?;
                (
                    tag,
                    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
                    6,
                )
            }
            _ => return Err(error("partial body lengths are not used for keys")),
        }
    } else {
        let tag = (header >> 2) & 0x0f;
        let size = match header & 0x03 {
            0 => 1,
            1 => 2,
            2 => 4,
            _ => return Err(error("indeterminate length")),
        };
        let bytes = data
            .get(1..1 + size)
            .ok_or_else(|| error("truncated header"))?;
        (
            tag,
            bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize),
            1 + size,
        )
    };
    let body = data
        .get(start..start.saturating_add(len))
        .ok_or_else(|| error("packet longer than the data"))?;
    Ok((tag, body))
}

/// Analyses the decoded armor of a `PGP PRIVATE KEY BLOCK`.
pub fn analyze(data: &[u8]) -> Result<KeyInfo, Error> {
    let (tag, body) = first_packet(data)?;
    if tag != 5 {
        return Err(error("the first packet is not a secret key"));
    }
    let mut reader = Reader(body);
    let version = reader.byte()?;
    reader.take(4)?; // creation time
    let algorithm = reader.byte()?;
    if version == 5 || version == 6 {
        reader.take(4)?; // public key material length
    } else if version != 4 {
        return Err(error("unsupported key version"));
    }
    let (name, bits) = match algorithm {
        1..=3 => {
            let bits = reader.mpi()?;
            reader.mpi()?;
            ("rsa", Some(bits))
        }
        17 => {
            let bits = reader.mpi()?;
            (0..3).try_for_each(|_| reader.mpi().map(|_| ()))?;
            ("dsa", Some(bits))
        }
        16 => {
            let bits = reader.mpi()?;
            (0..2).try_for_each(|_| reader.mpi().map(|_| ()))?;
            ("elgamal", Some(bits))
        }
        19 | 22 => {
            reader.oid()?;
            reader.mpi()?;
            (if algorithm == 19 { "ecdsa" } else { "eddsa" }, None)
        }
        18 => {
            reader.oid()?;
            reader.mpi()?;
            reader.oid()?; // KDF parameters: length-prefixed like an OID
            ("ecdh", None)
        }
        25 => {
            reader.take(32)?;
            ("x25519", Some(255))
        }
        27 => {
            reader.take(32)?;
            ("ed25519", Some(256))
        }
        _ => ("unknown", None),
    };
    let public_part = &body[..body.len() - reader.0.len()];
    let encrypted = if name == "unknown" {
        true
    } else {
        reader.byte()? != 0
    };
    let mut info = crate::keys::with_spki(
        KeyFormat::Pgp,
        &format!("pgp-{name}"),
        bits,
        None,
        None,
        public_part,
    );
    info.encrypted = encrypted;
    Ok(info)
}

/// Read through the PEM detector (`PGP PRIVATE KEY BLOCK` armour).
pub const EXAMPLES: super::Examples = super::Examples {
    module: "pgp",
    positive: &[("keys/pgp-private.asc", &["key:OpenPGP:pgp-eddsa"])],
    negative: &[("negative/pgp-public.asc", &[])],
};
