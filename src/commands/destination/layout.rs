//! Writing an OCI layout (blobs verified against their digests, existing ones kept), and the
//! oci-archive tar of one.

use super::super::source::Opened;
use super::{ManifestOut, blobs};
use crate::image::{self, digest::VerifyingReader, manifest};
use anyhow::{anyhow, bail};
use serde_json::json;
use std::io::Write;
use std::path::Path;

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

/// Tars a directory (an OCI layout) into `destination`, entries sorted, times zeroed.
pub(crate) fn write_tar_of(
    dir: &std::path::Path,
    destination: &std::path::Path,
) -> anyhow::Result<()> {
    let temporary = destination.with_extension("partial");
    let file = fs_err::File::create(&temporary)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let entries = walkdir::WalkDir::new(dir)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let mut paths: Vec<_> = entries
        .into_iter()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    paths.sort();
    for path in paths {
        let name = path.strip_prefix(dir)?.to_string_lossy().into_owned();
        let file = fs_err::File::open(&path)?;
        let mut header = tar::Header::new_ustar();
        header.set_size(file.metadata()?.len());
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, file)?;
    }
    builder.into_inner()?.flush()?;
    fs_err::rename(&temporary, destination)?;
    Ok(())
}
