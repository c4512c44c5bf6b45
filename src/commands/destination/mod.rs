//! Writing an opened image to a destination, byte for byte (manifests are never
//! re-serialised): the manifests to write (here), a registry push (`push`), an OCI layout or
//! oci-archive (`layout`), a docker-archive (`docker`). Shared by `copy` and `inject`; choosing
//! the destination and signing are the commands'.

mod docker;
mod layout;
mod push;

pub(crate) use docker::write_docker_archive;
pub(crate) use layout::{write_layout, write_tar_of};
pub(crate) use push::push;

use super::source::Opened;
use crate::image::{self, BlobStore, Image, manifest, platform::Platform};
use anyhow::anyhow;
use serde_json::json;

/// A manifest to write: bytes, media type, digest, and the platform for an index entry.
pub(crate) struct ManifestOut {
    pub(crate) bytes: Vec<u8>,
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) platform: Option<Platform>,
}

/// The manifests to write, in source order; the last one is what the tag names.
pub(crate) fn manifests(opened: &Opened) -> anyhow::Result<Vec<ManifestOut>> {
    let mut out = Vec::new();
    for image in &opened.images {
        let (bytes, media_type) = match &image.manifest {
            Some((bytes, media_type)) => (bytes.clone(), media_type.clone()),
            None => synthesize(opened.store.as_ref(), image)?,
        };
        out.push(ManifestOut {
            digest: image::digest::sha256(&bytes),
            bytes,
            media_type,
            platform: image.platform.clone(),
        });
    }
    if out.len() > 1 {
        let index = match (&opened.top, &opened.digest) {
            // The source's own index, unchanged, when every platform of it is copied.
            (Some((bytes, media_type)), Some(digest))
                if index_children(bytes)
                    == out.iter().map(|m| m.digest.clone()).collect::<Vec<_>>() =>
            {
                ManifestOut {
                    bytes: bytes.clone(),
                    media_type: media_type.clone(),
                    digest: digest.clone(),
                    platform: None,
                }
            }
            _ => {
                let entries: Vec<_> = out
                    .iter()
                    .map(|m| json!({"mediaType": m.media_type, "digest": m.digest, "size": m.bytes.len(), "platform": m.platform}))
                    .collect();
                let bytes = serde_json::to_vec(
                    &json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": entries}),
                )?;
                ManifestOut {
                    digest: image::digest::sha256(&bytes),
                    bytes,
                    media_type: manifest::OCI_INDEX.into(),
                    platform: None,
                }
            }
        };
        out.push(index);
    }
    Ok(out)
}

fn index_children(bytes: &[u8]) -> Vec<String> {
    match manifest::parse(bytes) {
        Ok(manifest::Document::Index(index)) => {
            index.manifests.into_iter().map(|d| d.digest).collect()
        }
        _ => Vec::new(),
    }
}

/// An OCI manifest for a source that has none (docker-archive): uncompressed tar layers.
fn synthesize(store: &dyn BlobStore, image: &Image) -> anyhow::Result<(Vec<u8>, String)> {
    let config = image::read_verified(store, &image.config_digest, image::MAX_CONFIG)?;
    let layers: Vec<_> = image
        .layers
        .iter()
        .map(|layer| {
            let size = layer.size.or_else(|| store.size(&layer.digest)).ok_or_else(|| anyhow!("size of layer `{}` is unknown", layer.digest))?;
            Ok(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.digest, "size": size}))
        })
        .collect::<anyhow::Result<_>>()?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": image.config_digest, "size": config.len()},
        "layers": layers,
    });
    Ok((
        serde_json::to_vec(&manifest)?,
        manifest::OCI_MANIFEST.into(),
    ))
}

/// Every blob of the copied images, once: (digest, size if known).
pub(super) fn blobs(opened: &Opened) -> Vec<(String, Option<u64>)> {
    let mut list: Vec<(String, Option<u64>)> = Vec::new();
    for image in &opened.images {
        let config = (
            image.config_digest.clone(),
            opened.store.size(&image.config_digest),
        );
        for (digest, size) in
            std::iter::once(config).chain(image.layers.iter().map(|l| (l.digest.clone(), l.size)))
        {
            if !list.iter().any(|(d, _)| *d == digest) {
                list.push((digest, size));
            }
        }
    }
    list
}
