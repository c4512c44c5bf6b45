//! rpm's database: `rpmdb.sqlite` (the SQLite backend of rpm ≥ 4.16, in `/var/lib/rpm/` or
//! `/usr/lib/sysimage/rpm/`), one header blob per installed package in table `Packages`.
//!
//! A layer turns the database into a short text summary as soon as it reads it (`summarize`:
//! a `P` line per package, an `F` line per file with its digest), so that layer results stay
//! text and the SQLite file is opened once. The header blob is read by hand, after rpm's file
//! format documentation (`docs/manual/format_header.md`): the `rpm` crates on crates.io read
//! package files, not the installed database's headers. Older Berkeley DB `Packages` files
//! are not read: their packages have no owner.

use super::{Ecosystem, Index, Package, Recorded};
use rusqlite::{Connection, MAIN_DB, OpenFlags};

/// Where rpm keeps its SQLite database.
const DATABASES: [&str; 2] = [
    "/var/lib/rpm/rpmdb.sqlite",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
];

/// At most this many packages are read (a full distribution has a few thousand).
const MAX_PACKAGES: usize = 100_000;

/// rpm's Berkeley DB database (rpm < 4.16), which is not read: it only gets a note.
const BERKELEY_DB: &str = "/var/lib/rpm/Packages";

pub fn is_database_file(path: &str) -> bool {
    DATABASES.contains(&path) || path == BERKELEY_DB
}

/// The summary text of a database file's bytes; a `!` line says why it could not be read.
pub fn summarize(path: &str, bytes: &[u8]) -> String {
    if path == BERKELEY_DB {
        return "! rpm database not readable: a Berkeley DB database (rpm < 4.16) is not read, so \
                its packages own no files\n"
            .into();
    }
    match packages(bytes) {
        Ok(text) => text,
        Err(error) => format!("! rpm database not readable: {error}\n"),
    }
}

fn packages(bytes: &[u8]) -> Result<String, rusqlite::Error> {
    let mut copy = bytes.to_vec();
    // rpm runs SQLite in WAL mode; an in-memory copy opens only in rollback mode, which is the
    // same file but for these two header bytes (SQLite file format, "File format version
    // numbers").
    if copy.len() > 19 && copy[18] == 2 && copy[19] == 2 {
        copy[18] = 1;
        copy[19] = 1;
    }
    let mut connection = Connection::open_with_flags(
        ":memory:",
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.deserialize_read_exact(MAIN_DB, &copy[..], copy.len(), true)?;
    let mut statement = connection.prepare("SELECT blob FROM Packages ORDER BY hnum")?;
    let mut rows = statement.query([])?;
    let mut out = String::new();
    let mut count = 0;
    while let Some(row) = rows.next()? {
        let blob: Vec<u8> = row.get(0)?;
        if let Some(header) = Header::parse(&blob) {
            header.write(&mut out);
        }
        count += 1;
        if count >= MAX_PACKAGES {
            break;
        }
    }
    Ok(out)
}

/// The tags read from a header (rpmtag.h).
const NAME: i32 = 1000;
const VERSION: i32 = 1001;
const RELEASE: i32 = 1002;
const VENDOR: i32 = 1011;
const FILEDIGESTS: i32 = 1035;
const DIRINDEXES: i32 = 1116;
const BASENAMES: i32 = 1117;
const DIRNAMES: i32 = 1118;
const FILEDIGESTALGO: i32 = 5011;

/// One package header: index entries over a data store.
struct Header<'a> {
    entries: Vec<(i32, u32, usize, usize)>,
    data: &'a [u8],
}

impl<'a> Header<'a> {
    fn parse(blob: &'a [u8]) -> Option<Self> {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(blob.get(at..at + 4)?.try_into().ok()?))
        };
        let count = usize::try_from(word(0)?).ok()?;
        let size = usize::try_from(word(4)?).ok()?;
        let start = 8usize.checked_add(count.checked_mul(16)?)?;
        let data = blob.get(start..start.checked_add(size)?)?;
        let mut entries = Vec::with_capacity(count.min(4096));
        for index in 0..count {
            let at = 8 + index * 16;
            let tag = i32::from_be_bytes(word(at)?.to_be_bytes());
            let kind = word(at + 4)?;
            let offset = usize::try_from(word(at + 8)?).ok()?;
            let items = usize::try_from(word(at + 12)?).ok()?;
            entries.push((tag, kind, offset, items));
        }
        Some(Self { entries, data })
    }

    fn entry(&self, tag: i32) -> Option<(u32, usize, usize)> {
        self.entries
            .iter()
            .find(|(t, ..)| *t == tag)
            .map(|(_, kind, offset, items)| (*kind, *offset, *items))
    }

    /// A STRING (6), I18NSTRING (9, first value) or STRING_ARRAY (8).
    fn strings(&self, tag: i32) -> Vec<&'a str> {
        let Some((kind, offset, items)) = self.entry(tag) else {
            return Vec::new();
        };
        if ![6, 8, 9].contains(&kind) {
            return Vec::new();
        }
        let items = if kind == 8 { items } else { 1 };
        let mut out = Vec::with_capacity(items.min(65_536));
        let mut rest = self.data.get(offset..).unwrap_or_default();
        for _ in 0..items {
            let Some(end) = rest.iter().position(|b| *b == 0) else {
                break;
            };
            out.push(std::str::from_utf8(&rest[..end]).unwrap_or_default());
            rest = &rest[end + 1..];
        }
        out
    }

    fn string(&self, tag: i32) -> Option<&'a str> {
        self.strings(tag).into_iter().next()
    }

    /// An INT32 (4) array.
    fn ints(&self, tag: i32) -> Vec<u32> {
        let Some((4, offset, items)) = self.entry(tag) else {
            return Vec::new();
        };
        (0..items)
            .map_while(|i| {
                let at = offset.checked_add(i.checked_mul(4)?)?;
                Some(u32::from_be_bytes(
                    self.data.get(at..at + 4)?.try_into().ok()?,
                ))
            })
            .collect()
    }

    /// `P\tname\tversion-release\tvendor`, then `F\tpath\tdigest` per file.
    fn write(&self, out: &mut String) {
        let Some(name) = self.string(NAME) else {
            return;
        };
        let version = match (self.string(VERSION), self.string(RELEASE)) {
            (Some(version), Some(release)) => format!("{version}-{release}"),
            (version, _) => version.unwrap_or_default().to_string(),
        };
        let vendor = self.string(VENDOR).unwrap_or_default();
        out.push_str(&format!("P\t{name}\t{version}\t{vendor}\n"));
        // PGPHASHALGO numbers: 1 MD5 (rpm's default without the tag), 2 SHA-1, 8 SHA-256.
        let algorithm = match self.ints(FILEDIGESTALGO).first().copied().unwrap_or(1) {
            1 => "md5",
            2 => "sha1",
            8 => "sha256",
            _ => "",
        };
        let directories = self.strings(DIRNAMES);
        let digests = self.strings(FILEDIGESTS);
        for (index, (base, directory)) in self
            .strings(BASENAMES)
            .into_iter()
            .zip(self.ints(DIRINDEXES))
            .enumerate()
        {
            let Some(directory) = usize::try_from(directory)
                .ok()
                .and_then(|d| directories.get(d))
            else {
                continue;
            };
            let digest = digests.get(index).copied().unwrap_or_default();
            let recorded = if digest.is_empty() || algorithm.is_empty() {
                String::new()
            } else {
                format!("{algorithm}:{digest}")
            };
            out.push_str(&format!("F\t{directory}{base}\t{recorded}\n"));
        }
    }
}

/// Reads the summaries of rpm databases among `files` into `index`.
pub fn read(files: &[(&str, &str)], index: &mut Index) {
    for (_, text) in files.iter().filter(|(path, _)| is_database_file(path)) {
        let mut package = None;
        for line in text.lines() {
            let mut fields = line.split('\t');
            match fields.next() {
                Some("P") => {
                    let (name, version, vendor) = (fields.next(), fields.next(), fields.next());
                    package = name.map(|name| {
                        index.add_package(Package {
                            ecosystem: Ecosystem::Rpm,
                            name: name.to_string(),
                            version: version.unwrap_or_default().to_string(),
                            origin: vendor.filter(|v| !v.is_empty()).map(str::to_string),
                        })
                    });
                }
                Some("F") => {
                    let (Some(number), Some(path)) = (package, fields.next()) else {
                        continue;
                    };
                    let recorded = fields.next().and_then(|d| match d.split_once(':') {
                        Some(("md5", hex)) => Some(Recorded::Md5(hex.to_string())),
                        Some(("sha1", hex)) => Some(Recorded::Sha1(hex.to_string())),
                        Some(("sha256", hex)) => Some(Recorded::Sha256(hex.to_string())),
                        _ => None,
                    });
                    index.own(path.to_string(), number, recorded);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_readable_and_says_so() {
        let text = summarize(DATABASES[0], b"not a database at all");
        assert!(text.starts_with("! rpm database not readable"), "{text}");
        assert!(Header::parse(&[0, 0, 0, 9, 255, 255, 255, 255]).is_none());
        let mut index = Index::default();
        read(&[(DATABASES[0], text.as_str())], &mut index);
        assert!(index.is_empty());
        let berkeley = summarize(BERKELEY_DB, b"\0\x06\x15\x61");
        assert!(berkeley.contains("Berkeley DB"), "{berkeley}");
        assert_eq!(
            super::super::unreadable(BERKELEY_DB, &berkeley).as_deref(),
            Some(
                "rpm database not readable: a Berkeley DB database (rpm < 4.16) is not read, so its packages own no files"
            )
        );
    }

    #[test]
    fn a_header_gives_its_package_and_files_with_digests() {
        // Built by hand after format_header.md: NAME, VERSION, RELEASE, VENDOR, DIRINDEXES,
        // BASENAMES, DIRNAMES, FILEDIGESTS, FILEDIGESTALGO.
        let mut data = Vec::new();
        let mut entries = Vec::new();
        let mut put = |tag: i32, kind: u32, items: u32, bytes: &[u8], data: &mut Vec<u8>| {
            if kind == 4 {
                while !data.len().is_multiple_of(4) {
                    data.push(0);
                }
            }
            entries.push((tag, kind, data.len() as u32, items));
            data.extend_from_slice(bytes);
        };
        put(NAME, 6, 1, b"acme-agent\0", &mut data);
        put(VERSION, 6, 1, b"1.0\0", &mut data);
        put(RELEASE, 6, 1, b"1\0", &mut data);
        put(VENDOR, 6, 1, b"ACME Corp\0", &mut data);
        put(DIRINDEXES, 4, 1, &0u32.to_be_bytes(), &mut data);
        put(BASENAMES, 8, 1, b"agent.key\0", &mut data);
        put(DIRNAMES, 8, 1, b"/opt/acme/\0", &mut data);
        put(FILEDIGESTS, 8, 1, b"abcd\0", &mut data);
        put(FILEDIGESTALGO, 4, 1, &8u32.to_be_bytes(), &mut data);
        let mut blob = Vec::new();
        blob.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
        for (tag, kind, offset, items) in entries {
            for word in [tag as u32, kind, offset, items] {
                blob.extend_from_slice(&word.to_be_bytes());
            }
        }
        blob.extend_from_slice(&data);
        let mut text = String::new();
        Header::parse(&blob).unwrap().write(&mut text);
        assert_eq!(
            text,
            "P\tacme-agent\t1.0-1\tACME Corp\nF\t/opt/acme/agent.key\tsha256:abcd\n"
        );
        // Every truncation is refused or read short, never a panic.
        for cut in 0..blob.len() {
            if let Some(header) = Header::parse(&blob[..cut]) {
                header.write(&mut String::new());
            }
        }
    }
}
