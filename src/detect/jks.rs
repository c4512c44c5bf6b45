//! Java keystores: JKS (magic `FEEDFEED`) and JCEKS (magic `CECECECE`).
//!
//! Hand-written on purpose: the only crate for the format (`jks`) is a one-person project, and a
//! listing needs about a hundred lines. It lists trusted-certificate entries (parsed) and
//! private-key entries, whose certificate chain tells the key's algorithm and SPKI. It does not
//! decrypt keys nor check the store's integrity digest: an entry list needs no password.

use super::{Artifact, CertEncoding, KeystoreKind, KeystorePassword, UnparseableKind};
use crate::keys::{KeyFormat, KeyInfo};

const JKS_MAGIC: u32 = 0xFEED_FEED;
const JCEKS_MAGIC: u32 = 0xCECE_CECE;
const MAX_ENTRIES: u32 = 100_000;

struct Cursor<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| format!("truncated at byte {}", self.position))?;
        let slice = &self.data[self.position..end];
        self.position = end;
        Ok(slice)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn utf(&mut self) -> Result<String, String> {
        let len = self.u16()? as usize;
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }
    fn blob(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

/// Lists a Java keystore, or `None` when the bytes do not start with a keystore magic.
pub fn detect(data: &[u8]) -> Option<Vec<Artifact>> {
    let magic = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
    let kind = match magic {
        JKS_MAGIC => KeystoreKind::Jks,
        JCEKS_MAGIC => KeystoreKind::Jceks,
        _ => return None,
    };
    let mut out = Vec::new();
    match list(data, kind, &mut out) {
        Ok(entries) => out.insert(
            0,
            Artifact::Keystore {
                kind,
                password: KeystorePassword::NotNeeded,
                entries,
            },
        ),
        Err(reason) => out.push(Artifact::Unparseable {
            what: format!("{} keystore", kind.as_str()),
            reason,
            kind: UnparseableKind::Keystore,
        }),
    }
    Some(out)
}

fn list(data: &[u8], kind: KeystoreKind, out: &mut Vec<Artifact>) -> Result<usize, String> {
    let mut cursor = Cursor { data, position: 4 };
    let version = cursor.u32()?;
    if version != 1 && version != 2 {
        return Err(format!("unsupported version {version}"));
    }
    let count = cursor.u32()?;
    if count > MAX_ENTRIES {
        return Err(format!("claims {count} entries"));
    }
    for index in 0..count {
        let tag = cursor.u32()?;
        let _alias = cursor.utf()?;
        cursor.take(8)?; // creation time
        match tag {
            1 => {
                let protected = cursor.blob()?;
                let chain_len = cursor.u32()?;
                let mut first = None;
                for _ in 0..chain_len.min(MAX_ENTRIES) {
                    if version == 2 {
                        cursor.utf()?;
                    }
                    let der = cursor.blob()?;
                    if let Ok(info) = crate::x509::analyze(der) {
                        if first.is_none() {
                            first = Some(info.clone());
                        }
                        out.push(Artifact::Certificate {
                            info: Box::new(info),
                            encoding: CertEncoding::JavaKeystore,
                        });
                    }
                }
                out.push(Artifact::Key {
                    info: key_from_chain(first.as_ref(), protected),
                    keystore: Some(kind),
                });
            }
            2 => {
                if version == 2 {
                    cursor.utf()?;
                }
                let der = cursor.blob()?;
                match crate::x509::analyze(der) {
                    Ok(info) => out.push(Artifact::Certificate {
                        info: Box::new(info),
                        encoding: CertEncoding::JavaKeystore,
                    }),
                    Err(e) => out.push(Artifact::Unparseable {
                        what: "keystore certificate entry".into(),
                        reason: e.to_string(),
                        kind: UnparseableKind::Keystore,
                    }),
                }
            }
            // JCEKS secret-key entries are Java-serialised objects with no length prefix, so
            // nothing after one can be located; report what was listed so far.
            3 => return Ok(index as usize + 1),
            other => return Err(format!("unknown entry tag {other}")),
        }
    }
    Ok(count as usize)
}

/// A keystore key is encrypted with the entry password; its public facts come from the first
/// certificate of its chain.
fn key_from_chain(first: Option<&crate::x509::CertInfo>, protected: &[u8]) -> KeyInfo {
    let mut info = crate::keys::encrypted(KeyFormat::JavaKeystore, "unknown", protected);
    if let Some(cert) = first {
        info.algorithm = cert.key_algorithm.clone();
        info.bits = cert.key_bits;
        info.curve = cert.curve.clone();
        info.spki_sha256 = Some(cert.spki_sha256.clone());
        info.fingerprint = format!("sha256:{}", cert.spki_sha256);
    }
    info
}
