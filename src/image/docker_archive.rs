//! `docker save` tarballs (`docker-archive:FILE[:REPO:TAG]`), both the classic layout
//! (`<id>/layer.tar`) and the OCI-style one written by Docker 25+ (`blobs/sha256/…`).
//!
//! No maintained crate reads this format (see `notes/crates.md`), and it is one `manifest.json`
//! on top of the tar store we already have. Classic layers are verified against the config's
//! `rootfs.diff_ids`, since `layer.tar` is the uncompressed layer; OCI-style blobs by file name.

use super::layout::TarStore;
use super::{BlobStore, Error, Image, Layer, MAX_CONFIG};
use std::io::Read;
use std::path::Path;

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// Docker's normalisation of a `repo:tag`: `app:v1` is `docker.io/library/app:v1`.
fn normalize(reference: &str) -> String {
    let (first, _) = reference.split_once('/').unwrap_or(("", reference));
    if !reference.contains('/') {
        format!("docker.io/library/{reference}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        reference.to_string()
    } else {
        format!("docker.io/{reference}")
    }
}

/// The tar store plus a map from digests to the archive's file names.
pub struct Store {
    tar: TarStore,
    names: std::collections::HashMap<String, String>,
}

impl BlobStore for Store {
    fn size(&self, digest: &str) -> Option<u64> {
        self.names
            .get(digest)
            .and_then(|name| self.tar.size_of(name))
    }

    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, Error> {
        let name = self.names.get(digest).ok_or_else(|| Error::MissingBlob {
            digest: digest.to_string(),
        })?;
        self.tar.open_name(name)
    }
}

/// Opens a docker-archive and returns its single selected image.
pub fn open(
    path: &Path,
    repo_tag: Option<&str>,
) -> Result<(Box<dyn BlobStore>, Vec<Image>), Error> {
    let invalid = |reason: String| Error::Invalid {
        path: path.to_path_buf(),
        what: "docker-archive",
        reason,
    };
    let tar = TarStore::index(path)?;
    let read = |name: &str, limit: u64| -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        tar.open_name(name)
            .map_err(|_| invalid(format!("it has no `{name}`")))?
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if bytes.len() as u64 > limit {
            return Err(invalid(format!("`{name}` is larger than {limit} bytes")));
        }
        Ok(bytes)
    };
    let manifest: Vec<Entry> = serde_json::from_slice(&read("manifest.json", 4 * 1024 * 1024)?)
        .map_err(|e| invalid(format!("manifest.json: {e}")))?;
    let tags = || {
        manifest
            .iter()
            .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let entry = match repo_tag {
        Some(wanted) => manifest
            .iter()
            .find(|e| {
                e.repo_tags
                    .iter()
                    .flatten()
                    .any(|t| normalize(t) == normalize(wanted))
            })
            .ok_or_else(|| Error::NoTag {
                tag: wanted.to_string(),
                available: tags(),
            })?,
        None if manifest.len() == 1 => &manifest[0],
        None => return Err(Error::Ambiguous { available: tags() }),
    };
    let config_bytes = read(&entry.config, MAX_CONFIG)?;
    let config_digest = super::digest::sha256(&config_bytes);
    let named = entry
        .config
        .strip_prefix("blobs/sha256/")
        .or_else(|| entry.config.strip_suffix(".json"))
        .filter(|hex| hex.len() == 64);
    if let Some(hex) = named.filter(|hex| config_digest != format!("sha256:{hex}")) {
        return Err(Error::DigestMismatch {
            digest: format!("sha256:{hex}"),
            actual: config_digest,
        });
    }
    let config: serde_json::Value =
        serde_json::from_slice(&config_bytes).map_err(|source| Error::Config {
            digest: config_digest.clone(),
            source,
        })?;
    let diff_ids = super::diff_ids(&config);
    let mut names = std::collections::HashMap::new();
    names.insert(config_digest.clone(), entry.config.clone());
    let mut layers = Vec::new();
    for (index, name) in entry.layers.iter().enumerate() {
        let hex_name = name
            .strip_suffix(".tar")
            .or_else(|| name.strip_suffix("/layer.tar"));
        let digest = match name
            .strip_prefix("blobs/sha256/")
            .or(hex_name.filter(|hex| hex.len() == 64))
        {
            Some(hex) => format!("sha256:{hex}"),
            None => diff_ids
                .get(index)
                .cloned()
                .ok_or_else(|| invalid(format!("layer `{name}` has no diff_id in the config")))?,
        };
        if super::digest::Digest::parse(&digest).is_none() {
            return Err(invalid(format!(
                "layer `{name}` has an invalid digest `{digest}`"
            )));
        }
        names.insert(digest.clone(), name.clone());
        layers.push(Layer {
            digest,
            size: None,
            media_type: String::new(),
        });
    }
    let image = Image {
        manifest_digest: None,
        platform: super::platform_of(&config),
        config_digest,
        config,
        layers,
        skipped_layers: Vec::new(),
        manifest: None,
    };
    Ok((Box::new(Store { tar, names }), vec![image]))
}
