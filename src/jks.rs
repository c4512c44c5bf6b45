//! The JKS and JCEKS keystore format (magic `FEEDFEED` and `CECECECE`): the entry list, the
//! keyed SHA-1 integrity digest, and appending trusted-certificate entries with every existing
//! entry kept byte for byte. Detection lists stores with it (`detect::jks`) and injection adds
//! CAs with it (`inject::java`); neither decrypts keys.
//!
//! Hand-written on purpose: the only crate for the format (`jks`) is a one-person project that
//! re-serialises the whole store, and the format needs about a hundred lines.

use sha1::{Digest as _, Sha1};

const JKS_MAGIC: [u8; 4] = [0xfe, 0xed, 0xfe, 0xed];
const JCEKS_MAGIC: [u8; 4] = [0xce, 0xce, 0xce, 0xce];
/// More entries than any real store has; a count above it is a hostile or broken header.
const MAX_ENTRIES: u32 = 100_000;
/// The integrity digest at the end of the store.
pub const DIGEST_LEN: usize = 20;

/// Which of the two formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jks,
    Jceks,
}

/// The kind of keystore `data` starts like, if any.
pub fn kind(data: &[u8]) -> Option<Kind> {
    match data.get(..4)? {
        m if m == JKS_MAGIC => Some(Kind::Jks),
        m if m == JCEKS_MAGIC => Some(Kind::Jceks),
        _ => None,
    }
}

/// One entry of a store.
#[derive(Debug)]
pub enum Entry<'a> {
    /// A private key (encrypted with its own password) and its certificate chain (DER).
    PrivateKey {
        alias: String,
        protected: &'a [u8],
        chain: Vec<&'a [u8]>,
    },
    /// A trusted certificate (DER).
    Trusted { alias: String, der: &'a [u8] },
    /// A JCEKS secret key: a Java-serialised object with no length prefix, so nothing after it
    /// can be located. It is always the last entry listed.
    Secret { alias: String },
}

/// A parsed store.
#[derive(Debug)]
pub struct Store<'a> {
    pub kind: Kind,
    pub version: u32,
    /// The entry count the header declares.
    pub count: u32,
    pub entries: Vec<Entry<'a>>,
    /// Where the entries start and where the last listed one ends.
    pub entries_start: usize,
    pub entries_end: usize,
    /// Why listing stopped before `count` entries (a truncated or corrupt store): `entries`
    /// holds those before the damage.
    pub damaged: Option<ParseError>,
}

/// Why the bytes are not a store this module can read.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

struct Cursor<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], ParseError> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| ParseError(format!("truncated at byte {}", self.position)))?;
        let slice = &self.data[self.position..end];
        self.position = end;
        Ok(slice)
    }
    fn u32(&mut self) -> Result<u32, ParseError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn utf(&mut self) -> Result<&'a [u8], ParseError> {
        let b = self.take(2)?;
        self.take(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn alias(&mut self) -> Result<String, ParseError> {
        Ok(String::from_utf8_lossy(self.utf()?).into_owned())
    }
    fn blob(&mut self) -> Result<&'a [u8], ParseError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

/// Lists the entries of `data` (a whole store: the digest after the entries is not checked).
/// A bad header is an error; damage further on ends the list (`Store::damaged`).
pub fn parse(data: &[u8]) -> Result<Store<'_>, ParseError> {
    let kind = kind(data).ok_or_else(|| ParseError("not a JKS or JCEKS keystore".into()))?;
    let mut cursor = Cursor { data, position: 4 };
    let version = cursor.u32()?;
    if version != 1 && version != 2 {
        return Err(ParseError(format!("unsupported version {version}")));
    }
    let count = cursor.u32()?;
    if count > MAX_ENTRIES {
        return Err(ParseError(format!("claims {count} entries")));
    }
    let entries_start = cursor.position;
    let mut entries = Vec::new();
    let damaged = list(&mut cursor, version, count, &mut entries).err();
    Ok(Store {
        kind,
        version,
        count,
        entries,
        entries_start,
        entries_end: cursor.position,
        damaged,
    })
}

fn list<'a>(
    cursor: &mut Cursor<'a>,
    version: u32,
    count: u32,
    entries: &mut Vec<Entry<'a>>,
) -> Result<(), ParseError> {
    for _ in 0..count {
        let tag = cursor.u32()?;
        let alias = cursor.alias()?;
        cursor.take(8)?; // creation time
        match tag {
            1 => {
                let protected = cursor.blob()?;
                let chain_len = cursor.u32()?;
                let mut chain = Vec::new();
                for _ in 0..chain_len.min(MAX_ENTRIES) {
                    if version == 2 {
                        cursor.utf()?;
                    }
                    chain.push(cursor.blob()?);
                }
                entries.push(Entry::PrivateKey {
                    alias,
                    protected,
                    chain,
                });
            }
            2 => {
                if version == 2 {
                    cursor.utf()?;
                }
                let der = cursor.blob()?;
                entries.push(Entry::Trusted { alias, der });
            }
            3 => {
                entries.push(Entry::Secret { alias });
                break;
            }
            other => return Err(ParseError(format!("unknown entry tag {other}"))),
        }
    }
    Ok(())
}

/// The keyed SHA-1 digest that ends a store: over the UTF-16BE password, the words "Mighty
/// Aphrodite" and everything before the digest.
pub fn integrity(password: &str, body: &[u8]) -> [u8; DIGEST_LEN] {
    let mut hasher = Sha1::new();
    for unit in password.encode_utf16() {
        hasher.update(unit.to_be_bytes());
    }
    hasher.update(b"Mighty Aphrodite");
    hasher.update(body);
    hasher.finalize().into()
}

/// A trusted-certificate entry to append.
pub struct NewTrusted<'a> {
    pub alias: &'a str,
    pub der: &'a [u8],
    /// The entry's creation date, in milliseconds since the epoch.
    pub created_millis: u64,
}

/// The store `body` (without its digest, already parsed as `store`) with `new` appended, and a
/// digest made with `password`.
pub fn append_trusted(
    body: &[u8],
    store: &Store<'_>,
    password: &str,
    new: &[NewTrusted<'_>],
) -> Vec<u8> {
    let added = u32::try_from(new.len()).unwrap_or(u32::MAX);
    let mut out =
        Vec::with_capacity(body.len() + new.iter().map(|c| c.der.len() + 64).sum::<usize>());
    out.extend_from_slice(&body[..4]);
    out.extend_from_slice(&store.version.to_be_bytes());
    out.extend_from_slice(&store.count.saturating_add(added).to_be_bytes());
    out.extend_from_slice(&body[store.entries_start..]);
    for cert in new {
        let alias = cert.alias.as_bytes();
        out.extend_from_slice(&2u32.to_be_bytes());
        out.extend_from_slice(&u16::try_from(alias.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&alias[..alias.len().min(usize::from(u16::MAX))]);
        out.extend_from_slice(&cert.created_millis.to_be_bytes());
        if store.version == 2 {
            out.extend_from_slice(&5u16.to_be_bytes());
            out.extend_from_slice(b"X.509");
        }
        out.extend_from_slice(
            &u32::try_from(cert.der.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(cert.der);
    }
    let digest = integrity(password, &out);
    out.extend_from_slice(&digest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truststore() -> Vec<u8> {
        crate::test_fixtures::fixture("certs/truststore.jks")
    }

    #[test]
    fn lists_entries_and_verifies_the_digest() {
        let data = truststore();
        let store = parse(&data).unwrap();
        assert_eq!(store.kind, Kind::Jks);
        assert_eq!(store.entries.len(), store.count as usize);
        assert!(store.damaged.is_none());
        assert_eq!(store.entries_end, data.len() - DIGEST_LEN);
        let (body, digest) = data.split_at(data.len() - DIGEST_LEN);
        assert_eq!(integrity("changeit", body), digest);
        assert_ne!(integrity("wrong", body), digest);
    }

    #[test]
    fn appending_keeps_every_entry_and_a_valid_digest() {
        let data = truststore();
        let body = &data[..data.len() - DIGEST_LEN];
        let store = parse(body).unwrap();
        let der = b"0\x03\x02\x01\x00";
        let out = append_trusted(
            body,
            &store,
            "changeit",
            &[NewTrusted {
                alias: "new",
                der,
                created_millis: 0,
            }],
        );
        let again = parse(&out).unwrap();
        assert_eq!(again.count, store.count + 1);
        assert!(
            matches!(again.entries.last(), Some(Entry::Trusted { alias, der: d }) if alias == "new" && *d == der)
        );
        let (new_body, digest) = out.split_at(out.len() - DIGEST_LEN);
        assert_eq!(integrity("changeit", new_body), digest);
        assert_eq!(
            &new_body[store.entries_start..body.len()],
            &body[store.entries_start..]
        );
    }

    #[test]
    fn damage_and_hostile_headers_are_reported_not_panics() {
        let data = truststore();
        let store = parse(&data[..data.len() / 2]).unwrap();
        assert!(store.damaged.is_some());
        assert!(store.entries.len() < store.count as usize);
        let mut hostile = data[..12].to_vec();
        hostile[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse(&hostile).unwrap_err().to_string().contains("claims"));
        assert!(parse(b"\xfe\xed\xfe\xed\x00\x00\x00\x07").is_err());
        assert!(parse(b"garbage").is_err());
    }
}
