//! Writing a `docker load`-able archive.

use super::super::source::Opened;
use crate::image::{self, digest::VerifyingReader};
use anyhow::bail;
use serde_json::json;
use std::io::{Read, Write};
use std::path::Path;

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
    let diff_ids = image::diff_ids(&image.config);
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
