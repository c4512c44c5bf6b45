//! Images on disk: references, blob stores, and resolving a reference to per-platform images
//! (manifest, config, ordered layers).
//!
//! Everything here is synchronous file I/O over `oci:`, `oci-archive:`, `docker-archive:` and
//! `dir:` sources; registries come through `registry` later and reuse `resolve`. Manifests and
//! configs are verified against their digests when read. Layer bytes are not read here: `open`
//! hands out raw blob readers and `layer` verifies them while streaming.

pub mod digest;
pub mod docker_archive;
pub mod layout;
pub mod manifest;
pub mod platform;
pub mod reference;

use manifest::{Descriptor, Document};
use platform::Platform;
use std::io::Read;
use std::path::PathBuf;

/// The largest image config accepted.
pub const MAX_CONFIG: u64 = 16 * 1024 * 1024;

/// The most distinct manifests one reference may lead to through its indexes: far above the
/// few dozen of a real multi-platform image (with attestations), far below what exhausts memory.
pub const MAX_MANIFESTS: usize = 1_000;

/// The most layers one image may have: overlay filesystems stop at 128 today, and a thousand
/// leaves room.
pub const MAX_LAYERS: usize = 1_000;

/// Random access to the blobs of one image source.
pub trait BlobStore: Send + Sync {
    /// Opens the raw bytes of a blob. The caller verifies the digest.
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, Error>;

    /// Reads a manifest or index by digest, verified and capped at 4 MiB.
    fn manifest(&self, digest: &str) -> Result<Vec<u8>, Error> {
        read_verified(self, digest, manifest::MAX_MANIFEST as u64)
    }

    /// The size of a blob when the store knows it without reading it.
    fn size(&self, _digest: &str) -> Option<u64> {
        None
    }

    /// The bytes of a blob the store holds in memory (new blobs not yet pushed anywhere).
    fn in_memory(&self, _digest: &str) -> Option<Vec<u8>> {
        None
    }

    /// How many blobs to stream at once, when it differs from one per core (remote stores
    /// wait on the network, so they profit from more).
    fn parallelism(&self) -> Option<usize> {
        None
    }
}

/// New blobs held in memory in front of another store.
pub struct MemoryStore {
    pub blobs: std::collections::HashMap<String, Vec<u8>>,
    pub inner: std::sync::Arc<dyn BlobStore>,
}

impl BlobStore for MemoryStore {
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, Error> {
        match self.blobs.get(digest) {
            Some(bytes) => Ok(Box::new(std::io::Cursor::new(bytes.as_slice()))),
            None => self.inner.open(digest),
        }
    }
    fn manifest(&self, digest: &str) -> Result<Vec<u8>, Error> {
        match self.blobs.get(digest) {
            Some(bytes) => Ok(bytes.clone()),
            None => self.inner.manifest(digest),
        }
    }
    fn size(&self, digest: &str) -> Option<u64> {
        self.blobs
            .get(digest)
            .map(|b| b.len() as u64)
            .or_else(|| self.inner.size(digest))
    }
    fn in_memory(&self, digest: &str) -> Option<Vec<u8>> {
        self.blobs.get(digest).cloned()
    }
    fn parallelism(&self) -> Option<usize> {
        self.inner.parallelism()
    }
}

/// One layer of a resolved image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Digest the bytes must hash to.
    pub digest: String,
    /// Size from the manifest, when known.
    pub size: Option<u64>,
    /// Media type from the manifest (empty for docker-archive).
    pub media_type: String,
}

/// A single-platform image, ready to scan.
#[derive(Clone, Debug)]
pub struct Image {
    /// Digest of the manifest, when the source has one.
    pub manifest_digest: Option<String>,
    /// The platform this manifest is for.
    pub platform: Option<Platform>,
    /// Digest of the config blob.
    pub config_digest: String,
    /// The config, as JSON (kept untyped so unknown fields survive).
    pub config: serde_json::Value,
    /// Layers, base first.
    pub layers: Vec<Layer>,
    /// Layers that were skipped, with the reason (foreign or non-distributable).
    pub skipped_layers: Vec<(String, String)>,
    /// The manifest exactly as stored, and its media type (absent for docker-archive).
    pub manifest: Option<(Vec<u8>, String)>,
}

/// Which platforms of a multi-platform image to take.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// A requested platform; `None` means the host's.
    pub platform: Option<Platform>,
    /// Take every platform instead.
    pub all_platforms: bool,
}

/// Something that could not be opened or resolved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a valid {what}: {reason}")]
    Invalid {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("blob `{digest}` is not in the image")]
    MissingBlob { digest: String },
    #[error("cannot read blob `{digest}`")]
    Blob {
        digest: String,
        #[source]
        source: std::io::Error,
    },
    #[error("blob `{digest}` does not match its digest (it hashes to `{actual}`)")]
    DigestMismatch { digest: String, actual: String },
    #[error("blob `{digest}` is larger than the {limit} byte limit for its kind")]
    TooLarge { digest: String, limit: u64 },
    #[error("manifest `{digest}` is refused")]
    Manifest {
        digest: String,
        #[source]
        source: manifest::Error,
    },
    #[error("image config `{digest}` is not valid JSON")]
    Config {
        digest: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no image for platform `{requested}`; the image has: {available}")]
    NoPlatform {
        requested: String,
        available: String,
    },
    #[error("no image tagged `{tag}`; available: {available}")]
    NoTag { tag: String, available: String },
    #[error("the source holds several images ({available}); name one")]
    Ambiguous { available: String },
    #[error("image indexes nest deeper than 4 levels")]
    TooDeep,
    #[error("the image index lists more than {MAX_MANIFESTS} distinct manifests")]
    TooManyManifests,
    #[error("manifest `{digest}` lists {count} layers, more than {MAX_LAYERS}")]
    TooManyLayers { digest: String, count: usize },
    #[error("`{reference}` is not an image reference: {reason}")]
    Reference { reference: String, reason: String },
}

/// Reads a whole blob up to `limit` bytes and checks its digest.
pub fn read_verified<S: BlobStore + ?Sized>(
    store: &S,
    digest: &str,
    limit: u64,
) -> Result<Vec<u8>, Error> {
    let parsed = digest::Digest::parse(digest).ok_or_else(|| Error::MissingBlob {
        digest: digest.to_string(),
    })?;
    let reader = store.open(digest)?;
    let mut verifying = digest::VerifyingReader::new(reader.take(limit + 1), parsed.algorithm);
    let mut bytes = Vec::new();
    verifying
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Blob {
            digest: digest.to_string(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            digest: digest.to_string(),
            limit,
        });
    }
    let (actual, _) = verifying.finish().map_err(|source| Error::Blob {
        digest: digest.to_string(),
        source,
    })?;
    if actual != digest {
        return Err(Error::DigestMismatch {
            digest: digest.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

fn is_attestation(descriptor: &Descriptor) -> bool {
    descriptor
        .annotations
        .get("vnd.docker.reference.type")
        .is_some_and(|t| t == "attestation-manifest")
        || descriptor
            .platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

/// Resolves a manifest or index descriptor to the selected single-platform images.
pub fn resolve(
    store: &dyn BlobStore,
    top: &Descriptor,
    selection: &Selection,
) -> Result<Vec<Image>, Error> {
    let mut found = Vec::new();
    let mut visited = std::collections::HashSet::new();
    collect(store, top, None, 0, &mut visited, &mut found)?;
    let single_without_platform = found.len() <= 1 && !found.iter().any(|(_, p)| p.is_some());
    if single_without_platform || selection.all_platforms {
        return found
            .into_iter()
            .map(|(descriptor, platform)| load(store, &descriptor, platform))
            .collect();
    }
    let requested = selection.platform.clone().unwrap_or_else(Platform::host);
    let chosen = found
        .iter()
        .find(|(_, platform)| platform.as_ref().is_some_and(|p| requested.matches(p)));
    match chosen {
        Some((descriptor, platform)) => Ok(vec![load(store, descriptor, platform.clone())?]),
        None => Err(Error::NoPlatform {
            requested: requested.to_string(),
            available: found
                .iter()
                .map(|(_, p)| {
                    p.as_ref()
                        .map_or_else(|| "unknown".to_string(), ToString::to_string)
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn collect(
    store: &dyn BlobStore,
    descriptor: &Descriptor,
    platform: Option<Platform>,
    depth: u32,
    visited: &mut std::collections::HashSet<String>,
    found: &mut Vec<(Descriptor, Option<Platform>)>,
) -> Result<(), Error> {
    if depth > 4 {
        return Err(Error::TooDeep);
    }
    // One entry per distinct manifest: the same one listed 20,000 times is read once.
    if !visited.insert(descriptor.digest.clone()) {
        return Ok(());
    }
    if visited.len() > MAX_MANIFESTS {
        return Err(Error::TooManyManifests);
    }
    let bytes = store.manifest(&descriptor.digest)?;
    let document = manifest::parse(&bytes).map_err(|source| Error::Manifest {
        digest: descriptor.digest.clone(),
        source,
    })?;
    match document {
        Document::Manifest(_) => found.push((descriptor.clone(), platform)),
        Document::Index(index) => {
            for child in index.manifests.iter().filter(|d| !is_attestation(d)) {
                collect(
                    store,
                    child,
                    child.platform.clone(),
                    depth + 1,
                    visited,
                    found,
                )?;
            }
        }
    }
    Ok(())
}

fn load(
    store: &dyn BlobStore,
    descriptor: &Descriptor,
    platform: Option<Platform>,
) -> Result<Image, Error> {
    let bytes = store.manifest(&descriptor.digest)?;
    let Document::Manifest(parsed) = manifest::parse(&bytes).map_err(|source| Error::Manifest {
        digest: descriptor.digest.clone(),
        source,
    })?
    else {
        return Err(Error::TooDeep);
    };
    let config_bytes = read_verified(store, &parsed.config.digest, MAX_CONFIG)?;
    let config = serde_json::from_slice(&config_bytes).map_err(|source| Error::Config {
        digest: parsed.config.digest.clone(),
        source,
    })?;
    if parsed.layers.len() > MAX_LAYERS {
        return Err(Error::TooManyLayers {
            digest: descriptor.digest.clone(),
            count: parsed.layers.len(),
        });
    }
    let (foreign, layers): (Vec<_>, Vec<_>) =
        parsed.layers.into_iter().partition(manifest::is_foreign);
    let media_type =
        manifest::media_type_of(&bytes).unwrap_or_else(|| descriptor.media_type.clone());
    Ok(Image {
        manifest: Some((bytes, media_type)),
        manifest_digest: Some(descriptor.digest.clone()),
        platform: platform.or_else(|| platform_of(&config)),
        config_digest: parsed.config.digest,
        config,
        layers: layers
            .into_iter()
            .map(|d| Layer {
                digest: d.digest,
                size: Some(d.size),
                media_type: d.media_type,
            })
            .collect(),
        skipped_layers: foreign
            .into_iter()
            .map(|d| {
                (
                    d.digest,
                    format!("{} layer is not distributed with the image", d.media_type),
                )
            })
            .collect(),
    })
}

/// The platform recorded in an image config.
pub fn platform_of(config: &serde_json::Value) -> Option<Platform> {
    Some(Platform {
        os: config.get("os")?.as_str()?.to_string(),
        architecture: config.get("architecture")?.as_str()?.to_string(),
        variant: config
            .get("variant")
            .and_then(|v| v.as_str())
            .map(str::to_string),
    })
}

/// The config's `rootfs.diff_ids` (uncompressed layer digests), in layer order; empty when
/// absent. Callers compare its length with the manifest's layers.
pub fn diff_ids(config: &serde_json::Value) -> Vec<String> {
    config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `created_by` of each non-empty history entry, in layer order.
pub fn layer_history(config: &serde_json::Value) -> Vec<Option<String>> {
    config
        .get("history")
        .and_then(|h| h.as_array())
        .map(|entries| {
            entries
                .iter()
                .filter(|e| {
                    !e.get("empty_layer")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false)
                })
                .map(|e| {
                    e.get("created_by")
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}
