//! Writing an opened image to a destination, byte for byte (manifests are never
//! re-serialised): the manifests to write, a registry push, an OCI layout, a docker-archive.
//! Shared by `copy` and `inject`; choosing the destination and signing are the commands'.
//!
//! Registry pushes check each blob with `HEAD`, try a cross-repository mount on the same
//! registry, then upload; manifests go last so a tag never points at missing blobs. An index
//! is re-assembled when the copied platforms are not exactly the source's index.

use super::source::Opened;
use crate::image::{self, BlobStore, Image, digest::VerifyingReader, manifest, platform::Platform};
use crate::registry::{self, Target, push::ByteStream};
use anyhow::{Context as _, anyhow, bail};
use futures_util::StreamExt as _;
use serde_json::json;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

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
fn blobs(opened: &Opened) -> Vec<(String, Option<u64>)> {
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

/// Streams a blob of the source, whatever kind of store it is.
async fn blob_stream(opened: &Opened, digest: &str) -> anyhow::Result<ByteStream> {
    if let Some(bytes) = opened.store.in_memory(digest) {
        let chunk: Result<bytes::Bytes, std::io::Error> = Ok(bytes::Bytes::from(bytes));
        return Ok(Box::pin(futures_util::stream::iter([chunk])));
    }
    if let Some((client, target)) = &opened.remote {
        return Ok(Box::pin(
            client.blob_stream(&target.repository, digest).await?,
        ));
    }
    let store = opened.store.clone();
    let digest = digest.to_string();
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = match store.open(&digest) {
            Ok(reader) => reader,
            Err(e) => {
                let _ = sender.blocking_send(Err(std::io::Error::other(e)));
                return;
            }
        };
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => {
                    if sender
                        .blocking_send(Ok(bytes::Bytes::copy_from_slice(&buffer[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = sender.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Ok(Box::pin(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    )))
}

pub(crate) async fn push(
    opened: &Opened,
    manifests: &[ManifestOut],
    client: Arc<registry::Client>,
    target: &Target,
    chunk: u64,
) -> anyhow::Result<String> {
    let repository = &target.repository;
    let mount_from = opened
        .remote
        .as_ref()
        .filter(|(source, _)| source.host() == client.host())
        .map(|(_, source)| source.repository.clone());
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(blobs(opened))
        .map(|(digest, size)| {
            let client = client.clone();
            let mount_from = mount_from.clone();
            async move {
                if client.blob_exists(repository, &digest).await? {
                    tracing::debug!(blob = %digest, "already present");
                    return Ok(());
                }
                let from = mount_from
                    .as_deref()
                    .filter(|from| *from != repository.as_str());
                if let Some(from) = from
                    && client.mount(repository, &digest, from).await?
                {
                    tracing::debug!(blob = %digest, from, "mounted");
                    return Ok(());
                }
                let size = match size {
                    Some(size) => Some(size),
                    None => opened.store.size(&digest),
                };
                let stream = blob_stream(opened, &digest).await?;
                client
                    .upload(repository, &digest, size, stream, chunk)
                    .await
                    .with_context(|| format!("failed to upload `{digest}`"))
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let (last, children) = manifests
        .split_last()
        .ok_or_else(|| anyhow!("the source has no image"))?;
    for child in children {
        client
            .put_manifest(repository, &child.digest, &child.media_type, &child.bytes)
            .await?;
    }
    let reference = target
        .tag
        .clone()
        .or_else(|| target.digest.clone())
        .unwrap_or_else(|| last.digest.clone());
    client
        .put_manifest(repository, &reference, &last.media_type, &last.bytes)
        .await?;
    Ok(last.digest.clone())
}

/// Writes blobs into an OCI layout, verifying each digest; existing blobs are kept.
pub(crate) fn write_layout(
    opened: &Opened,
    manifests: &[ManifestOut],
    dir: &Path,
    tag: Option<&str>,
) -> anyhow::Result<String> {
    let blobs_dir = dir.join("blobs/sha256");
    fs_err::create_dir_all(&blobs_dir)?;
    fs_err::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for (digest, _) in blobs(opened) {
        let parsed = image::digest::Digest::parse(&digest)
            .ok_or_else(|| anyhow!("invalid digest `{digest}`"))?;
        let path = dir
            .join("blobs")
            .join(digest.split(':').next().unwrap_or("sha256"))
            .join(&parsed.hex);
        if path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let temporary = path.with_extension("partial");
        let mut verifying = VerifyingReader::new(opened.store.open(&digest)?, parsed.algorithm);
        std::io::copy(&mut verifying, &mut fs_err::File::create(&temporary)?)?;
        let (actual, _) = verifying.finish()?;
        if actual != digest {
            let _ = fs_err::remove_file(&temporary);
            bail!("blob `{digest}` hashes to `{actual}`");
        }
        fs_err::rename(&temporary, &path)?;
    }
    for manifest in manifests {
        fs_err::write(blobs_dir.join(&manifest.digest[7..]), &manifest.bytes)?;
    }
    let last = manifests
        .last()
        .ok_or_else(|| anyhow!("the source has no image"))?;
    let index_path = dir.join("index.json");
    let mut entries: Vec<serde_json::Value> = match fs_err::read(&index_path) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let name = tag.unwrap_or("latest");
    entries.retain(|e| {
        e.pointer("/annotations/org.opencontainers.image.ref.name")
            .and_then(|v| v.as_str())
            != Some(name)
    });
    entries.push(
        json!({"mediaType": last.media_type, "digest": last.digest, "size": last.bytes.len(),
                        "annotations": {"org.opencontainers.image.ref.name": name}}),
    );
    let index = json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": entries});
    fs_err::write(&index_path, serde_json::to_vec_pretty(&index)?)?;
    Ok(last.digest.clone())
}

/// Writes a `docker load`-able archive: config, uncompressed layers named by diff_id, and
/// `manifest.json`. Each layer is decompressed to a temporary file first, because a tar
/// header needs the size before the data.
pub(crate) fn write_docker_archive(
    opened: &Opened,
    path: &Path,
    repo_tag: Option<&str>,
) -> anyhow::Result<String> {
    let [image] = opened.images.as_slice() else {
        bail!("a docker-archive holds one platform: pass --platform");
    };
    let config_bytes = image::read_verified(
        opened.store.as_ref(),
        &image.config_digest,
        image::MAX_CONFIG,
    )?;
    let diff_ids: Vec<String> = image
        .config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != image.layers.len() {
        bail!(
            "the config lists {} diff_ids for {} layers",
            diff_ids.len(),
            image.layers.len()
        );
    }
    let scratch = tempfile::Builder::new().prefix(".ocicert-").tempdir_in(
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )?;
    let file = fs_err::File::create(path)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let config_name = format!("{}.json", &image.config_digest[7..]);
    append(
        &mut builder,
        &config_name,
        &mut &config_bytes[..],
        config_bytes.len() as u64,
    )?;
    let mut layer_names = Vec::new();
    for (layer, diff_id) in image.layers.iter().zip(&diff_ids) {
        let temporary = scratch.path().join("layer.tar");
        let raw = std::io::BufReader::new(opened.store.open(&layer.digest)?);
        let mut decoded = decompress(raw)?;
        let mut verifying = VerifyingReader::new(&mut decoded, image::digest::Algorithm::Sha256);
        let size = std::io::copy(&mut verifying, &mut fs_err::File::create(&temporary)?)?;
        let (actual, _) = verifying.finish()?;
        if actual != *diff_id {
            bail!(
                "layer `{}` decompresses to `{actual}`, not to its diff_id `{diff_id}`",
                layer.digest
            );
        }
        let name = format!("{}.tar", &diff_id[7..]);
        append(
            &mut builder,
            &name,
            &mut fs_err::File::open(&temporary)?,
            size,
        )?;
        layer_names.push(name);
    }
    let tags: Vec<String> = repo_tag.map(str::to_string).into_iter().collect();
    let manifest = serde_json::to_vec(
        &json!([{"Config": config_name, "RepoTags": tags, "Layers": layer_names}]),
    )?;
    append(
        &mut builder,
        "manifest.json",
        &mut &manifest[..],
        manifest.len() as u64,
    )?;
    builder.into_inner()?.flush()?;
    Ok(image.config_digest.clone())
}

fn decompress<'a>(
    mut raw: impl std::io::BufRead + Send + 'a,
) -> anyhow::Result<Box<dyn Read + Send + 'a>> {
    let head = raw.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(raw))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(raw)?)
    } else {
        Box::new(raw)
    })
}

fn append(
    builder: &mut tar::Builder<impl Write>,
    name: &str,
    data: &mut dyn Read,
    size: u64,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, data)?;
    Ok(())
}
