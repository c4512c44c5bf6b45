//! OCI image layouts (`oci:DIR[:TAG]`) and tars of them (`oci-archive:FILE[:TAG]`).
//!
//! A tar is indexed once by seeking over entry headers, then each blob is read in place: nothing
//! is extracted to disk and no blob is loaded whole. Blob paths are built only from validated
//! digests, so a hostile `index.json` cannot name a file outside the layout.

use super::manifest::{self, Descriptor};
use super::{BlobStore, Error, Image, Selection, digest::Digest};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Blobs in an OCI layout directory.
pub struct DirStore {
    root: PathBuf,
}

impl BlobStore for DirStore {
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, Error> {
        let parsed = Digest::parse(digest).ok_or_else(|| Error::MissingBlob {
            digest: digest.to_string(),
        })?;
        let algorithm = digest.split(':').next().unwrap_or("sha256");
        let path = self.root.join("blobs").join(algorithm).join(&parsed.hex);
        if path.symlink_metadata().is_ok() {
            regular_file_inside(&self.root, &path)?;
        }
        match fs_err::File::open(&path) {
            Ok(file) => Ok(Box::new(std::io::BufReader::with_capacity(
                256 * 1024,
                file,
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::MissingBlob {
                digest: digest.to_string(),
            }),
            Err(source) => Err(Error::Io { path, source }),
        }
    }
}

/// Refuses what a layout's file must not be: anything but a regular file (a FIFO would block
/// the read for ever, a device never ends), or a link that leads outside the layout.
fn regular_file_inside(root: &Path, path: &Path) -> Result<(), Error> {
    let refuse = |reason: &str| Error::Invalid {
        path: path.to_path_buf(),
        what: "OCI layout file",
        reason: reason.to_string(),
    };
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let target = fs_err::canonicalize(path).map_err(io)?;
    let root = fs_err::canonicalize(root).map_err(io)?;
    if !target.starts_with(&root) {
        return Err(refuse("it is a link to a file outside the layout"));
    }
    if !fs_err::metadata(&target).map_err(io)?.is_file() {
        return Err(refuse(
            "it is not a regular file (a FIFO, a device or a directory)",
        ));
    }
    Ok(())
}

/// Files inside a tar archive, read in place.
pub struct TarStore {
    path: PathBuf,
    entries: HashMap<String, (u64, u64)>,
}

impl TarStore {
    /// Indexes the regular files of a tar by normalised name.
    pub fn index(path: &Path) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let invalid = |reason: String| Error::Invalid {
            path: path.to_path_buf(),
            what: "tar archive",
            reason,
        };
        let file = fs_err::File::open(path).map_err(io)?;
        // Through the guard: a member's long name is never held whole.
        let mut archive =
            tar::Archive::new(crate::tar_guard::Guard::new(std::io::BufReader::new(file)));
        let mut entries = HashMap::new();
        for entry in archive
            .entries_with_seek()
            .map_err(|e| invalid(e.to_string()))?
        {
            let entry = entry.map_err(|e| invalid(e.to_string()))?;
            if !matches!(
                entry.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous
            ) {
                continue;
            }
            let name = entry.path().map_err(|e| invalid(e.to_string()))?;
            if let Some((_, reason)) = crate::tar_guard::oversized(&name.to_string_lossy()) {
                return Err(invalid(reason));
            }
            let name = name.to_string_lossy().trim_start_matches("./").to_string();
            entries.insert(name, (entry.raw_file_position(), entry.size()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Opens a file of the archive by name.
    pub fn open_name(&self, name: &str) -> Result<Box<dyn Read + Send + '_>, Error> {
        let (offset, size) = *self.entries.get(name).ok_or_else(|| Error::MissingBlob {
            digest: name.to_string(),
        })?;
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = fs_err::File::open(&self.path).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        Ok(Box::new(std::io::BufReader::with_capacity(
            256 * 1024,
            file.take(size),
        )))
    }

    /// The size of a file of the archive.
    pub fn size_of(&self, name: &str) -> Option<u64> {
        self.entries.get(name).map(|(_, size)| *size)
    }

    /// Whether the archive holds a file of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }
}

impl BlobStore for TarStore {
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, Error> {
        let parsed = Digest::parse(digest).ok_or_else(|| Error::MissingBlob {
            digest: digest.to_string(),
        })?;
        let algorithm = digest.split(':').next().unwrap_or("sha256");
        self.open_name(&format!("blobs/{algorithm}/{}", parsed.hex))
            .map_err(|_| Error::MissingBlob {
                digest: digest.to_string(),
            })
    }
}

#[derive(serde::Deserialize)]
struct IndexJson {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// A layout's blobs, its selected images, and the digest of the `index.json` entry the tag
/// picked (`None` when `index.json` itself lists the platforms).
pub type Opened = (Box<dyn BlobStore>, Vec<Image>, Option<String>);

/// Opens an OCI layout (directory or archive) and resolves the selected images.
pub fn open(
    path: &Path,
    tag: Option<&str>,
    archive: bool,
    selection: &Selection,
) -> Result<Opened, Error> {
    let invalid = |reason: String| Error::Invalid {
        path: path.to_path_buf(),
        what: if archive { "OCI archive" } else { "OCI layout" },
        reason,
    };
    let (store, index_bytes): (Box<dyn BlobStore>, Vec<u8>) = if archive {
        let store = TarStore::index(path)?;
        if !store.contains("index.json") {
            return Err(invalid("it has no index.json".into()));
        }
        let mut bytes = Vec::new();
        store
            .open_name("index.json")?
            .take(manifest::MAX_MANIFEST as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        (Box::new(store), bytes)
    } else {
        let index_path = path.join("index.json");
        if index_path.symlink_metadata().is_ok() {
            regular_file_inside(path, &index_path)?;
        }
        // Read no more than the limit: `index.json` may be a link to something endless.
        let mut bytes = Vec::new();
        fs_err::File::open(&index_path)
            .and_then(|file| {
                file.take(manifest::MAX_MANIFEST as u64 + 1)
                    .read_to_end(&mut bytes)
            })
            .map_err(|source| Error::Io {
                path: index_path,
                source,
            })?;
        (
            Box::new(DirStore {
                root: path.to_path_buf(),
            }),
            bytes,
        )
    };
    if index_bytes.len() > manifest::MAX_MANIFEST {
        return Err(invalid("index.json is larger than 4 MiB".into()));
    }
    let index: IndexJson =
        serde_json::from_slice(&index_bytes).map_err(|e| invalid(format!("index.json: {e}")))?;
    let top = pick(&index.manifests, tag)?;
    let digest = top.as_ref().map(|descriptor| descriptor.digest.clone());
    let images = match top {
        Some(descriptor) => super::resolve(store.as_ref(), &descriptor, selection)?,
        // index.json lists platform manifests directly: treat it as the image index.
        None => {
            let platforms: Vec<Descriptor> = index.manifests.clone();
            resolve_inline(store.as_ref(), &platforms, selection)?
        }
    };
    Ok((store, images, digest))
}

/// Picks the entry of `index.json` to use; `None` means "all entries form one image index".
fn pick(manifests: &[Descriptor], tag: Option<&str>) -> Result<Option<Descriptor>, Error> {
    let names = || {
        let list: Vec<&str> = manifests
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
            .collect();
        if list.is_empty() {
            "(no tags)".to_string()
        } else {
            list.join(", ")
        }
    };
    if let Some(tag) = tag {
        return manifests
            .iter()
            .find(|d| d.annotations.get(REF_NAME).is_some_and(|name| name == tag))
            .cloned()
            .map(Some)
            .ok_or_else(|| Error::NoTag {
                tag: tag.to_string(),
                available: names(),
            });
    }
    match manifests {
        [] => Err(Error::Ambiguous {
            available: "nothing".into(),
        }),
        [only] => Ok(Some(only.clone())),
        many if many.iter().all(|d| d.platform.is_some()) => Ok(None),
        _ => Err(Error::Ambiguous { available: names() }),
    }
}

fn resolve_inline(
    store: &dyn BlobStore,
    manifests: &[Descriptor],
    selection: &Selection,
) -> Result<Vec<Image>, Error> {
    let mut images = Vec::new();
    let requested = selection
        .platform
        .clone()
        .unwrap_or_else(super::platform::Platform::host);
    let mut seen = std::collections::HashSet::new();
    for descriptor in manifests {
        // The same bounds as an index: each distinct manifest once, at most `MAX_MANIFESTS`.
        if !seen.insert(descriptor.digest.as_str()) {
            continue;
        }
        if seen.len() > super::MAX_MANIFESTS {
            return Err(Error::TooManyManifests);
        }
        let platform = descriptor.platform.clone();
        if selection.all_platforms || platform.as_ref().is_some_and(|p| requested.matches(p)) {
            images.extend(super::resolve(
                store,
                descriptor,
                &Selection {
                    platform: platform.clone(),
                    all_platforms: false,
                },
            )?);
            if !selection.all_platforms {
                break;
            }
        }
    }
    if images.is_empty() {
        return Err(Error::NoPlatform {
            requested: requested.to_string(),
            available: manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(images)
}
