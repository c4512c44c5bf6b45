//! The scan engine: scans the layers of one or more images on all cores, each distinct layer
//! once, then applies the overlay and the analysis per image.
//!
//! Synchronous and free of I/O policy: it reads blobs through a `BlobStore` and returns
//! `ImageReport`s. Registries, output formats and exit codes live elsewhere.

use crate::analyze::{self, Context, Observation};
use crate::detect::{self, Options};
use crate::finding::Location;
use crate::image::{self, BlobStore, Image};
use crate::layer::{self, LayerScan};
use crate::packages::{self, layers::Provenance};
use crate::report::{ImageReport, LayerReport};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Everything that tunes a scan.
#[derive(Clone, Debug)]
pub struct Settings {
    pub options: Options,
    pub context: Context,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Where layer results are cached, if anywhere.
    pub cache: Option<crate::cache::Cache>,
}

/// Why an image could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] image::Error),
    #[error(transparent)]
    Layer(#[from] layer::Error),
    #[error("cannot read `{path}`")]
    Directory {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn threads(settings: &Settings, jobs: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let wanted = if settings.threads == 0 {
        cores
    } else {
        settings.threads
    };
    wanted.clamp(1, jobs.max(1))
}

/// Runs `work` over `jobs` on a pool of scoped threads, returning results in job order.
fn parallel<T: Send + Sync, R: Send>(
    jobs: &[T],
    workers: usize,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(jobs.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(index) else { break };
                    let result = work(job);
                    if let Ok(mut slots) = results.lock() {
                        slots[index] = Some(result);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// Scans images that share a blob store. Layers shared between platforms are scanned once.
pub fn scan_images(
    store: &dyn BlobStore,
    images: &[Image],
    settings: &Settings,
    on_layer: &(dyn Fn(&str, u64) + Sync),
) -> Result<Vec<ImageReport>, Error> {
    let by_digest = scan_layers(store, images, settings, on_layer)?;
    images
        .iter()
        .map(|image| Ok(assemble(image, &by_digest, settings)))
        .collect()
}

/// Scans every distinct layer of `images` (from the cache when it has them), in parallel.
pub fn scan_layers(
    store: &dyn BlobStore,
    images: &[Image],
    settings: &Settings,
    on_layer: &(dyn Fn(&str, u64) + Sync),
) -> Result<HashMap<String, LayerScan>, Error> {
    let mut unique: Vec<(String, Option<u64>)> = Vec::new();
    for layer in images.iter().flat_map(|image| &image.layers) {
        if !unique.iter().any(|(digest, _)| *digest == layer.digest) {
            unique.push((layer.digest.clone(), layer.size));
        }
    }
    let workers = match store.parallelism() {
        Some(remote) if settings.threads == 0 => remote.clamp(1, unique.len().max(1)),
        _ => threads(settings, unique.len()),
    };
    let scanned = parallel(&unique, workers, |(digest, size)| {
        let key = crate::cache::Cache::key(digest, &settings.options);
        if let Some(hit) = settings.cache.as_ref().and_then(|cache| cache.get(&key)) {
            tracing::debug!(layer = %digest, "layer cache hit");
            on_layer(digest, hit.bytes);
            return Ok((digest.clone(), hit));
        }
        let reader = store.open(digest)?;
        let scan = layer::scan(reader, digest, *size, &settings.options)?;
        if let Some(cache) = &settings.cache {
            cache.put(&key, &scan);
        }
        on_layer(digest, scan.bytes);
        Ok::<_, Error>((digest.clone(), scan))
    });
    let mut by_digest: HashMap<String, LayerScan> = HashMap::new();
    for result in scanned {
        let (digest, scan) = result?;
        by_digest.insert(digest, scan);
    }
    Ok(by_digest)
}

fn assemble(
    image: &Image,
    by_digest: &HashMap<String, LayerScan>,
    settings: &Settings,
) -> ImageReport {
    let scans: Vec<&LayerScan> = image
        .layers
        .iter()
        .filter_map(|layer| by_digest.get(&layer.digest))
        .collect();
    let overlay = crate::overlay::Overlay::new(&scans);
    let provenance = Provenance::new(&scans, &overlay);
    let mut observations = Vec::new();
    for (index, (layer, scan)) in image.layers.iter().zip(&scans).enumerate() {
        for (path, detection) in &scan.detections {
            let in_final_image = overlay.visible(index, path);
            let (owner, package_directory) = provenance.lookup(index, path, in_final_image);
            observations.push(Observation {
                package_directory,
                artifact: detection.artifact.clone(),
                location: Location {
                    layer_index: Some(index),
                    layer_digest: Some(layer.digest.clone()),
                    path: Some(path.clone()),
                    archive_path: detection.archive_path.clone(),
                    config_field: None,
                    in_final_image,
                    owner,
                },
            });
        }
    }
    confirm_compiled(&mut observations);
    for (index, path, reason) in provenance.unreadable() {
        observations.push(Observation {
            artifact: detect::Artifact::LimitReached { reason },
            package_directory: None,
            location: Location {
                layer_index: Some(index),
                layer_digest: image.layers.get(index).map(|l| l.digest.clone()),
                path: Some(path),
                in_final_image: true,
                ..Location::default()
            },
        });
    }
    for (field, artifact) in detect::config::scan(&image.config) {
        observations.push(Observation {
            artifact,
            package_directory: None,
            location: Location {
                config_field: Some(field),
                in_final_image: true,
                ..Location::default()
            },
        });
    }
    let mut context = settings.context.clone();
    context.injected_cas = injected_cas(&image.config);
    let (findings, inventory) = analyze::analyze(observations, &context);
    let history = image::layer_history(&image.config);
    let layers = image
        .layers
        .iter()
        .zip(&scans)
        .enumerate()
        .map(|(index, (layer, scan))| LayerReport {
            index,
            digest: layer.digest.clone(),
            size: layer.size,
            created_by: history.get(index).cloned().flatten(),
            files: scan.files,
            bytes: scan.bytes,
        })
        .collect();
    ImageReport {
        manifest_digest: image.manifest_digest.clone(),
        config_digest: Some(image.config_digest.clone()),
        platform: image.platform.as_ref().map(ToString::to_string),
        layers,
        skipped_layers: image
            .skipped_layers
            .iter()
            .map(|(digest, reason)| format!("{digest}: {reason}"))
            .collect(),
        findings,
        inventory,
    }
}

/// The fingerprints of the CAs `ocicert inject` added, from the image config's label.
fn injected_cas(config: &serde_json::Value) -> Vec<String> {
    config
        .pointer("/config/Labels")
        .and_then(|labels| labels.get(crate::truststore::INJECTED_CAS_LABEL))
        .and_then(|v| v.as_str())
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Byte code owned through its source (`Owner::compiled_from`) may only hold what the source
/// holds: a key or certificate the source lacks was not compiled from it, so that byte code
/// counts as modified.
fn confirm_compiled(observations: &mut [Observation]) {
    let fingerprint = |artifact: &detect::Artifact| match artifact {
        detect::Artifact::Key { info, .. } => Some(info.fingerprint.clone()),
        detect::Artifact::Certificate { info, .. } => Some(info.fingerprint.clone()),
        _ => None,
    };
    let in_sources: std::collections::HashSet<(String, String)> = observations
        .iter()
        .filter_map(|o| Some((o.location.path.clone()?, fingerprint(&o.artifact)?)))
        .collect();
    for observation in observations.iter_mut() {
        let Some(print) = fingerprint(&observation.artifact) else {
            continue;
        };
        if let Some(owner) = observation.location.owner.as_mut()
            && let Some(source) = &owner.compiled_from
            && !in_sources.contains(&(source.clone(), print))
        {
            owner.integrity = packages::Integrity::Modified;
        }
    }
}

/// One file of a `dir:` tree: what was found, and what it says about owners.
struct FileResult {
    path: String,
    scanned: layer::FileScan,
    /// A package database's path and text, or a jar's Maven record.
    database: Option<(String, String)>,
}

/// Scans a plain directory tree (`dir:`) as if it were the final filesystem of an image.
/// Symlinks are not followed, so nothing outside `root` is read. Each file goes through the
/// same routine as a layer entry (`layer::scan_one_file`).
pub fn scan_directory(root: &Path, settings: &Settings) -> Result<ImageReport, Error> {
    let io = |path: &Path, source: std::io::Error| Error::Directory {
        path: path.display().to_string(),
        source,
    };
    if !root.is_dir() {
        return Err(io(
            root,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            io(&path, e.into())
        })?;
        if entry.file_type().is_file() {
            files.push(entry.into_path());
        }
    }
    let workers = threads(settings, files.len());
    let results = parallel(&files, workers, |path| -> Result<FileResult, Error> {
        let relative = path.strip_prefix(root).unwrap_or(path);
        let image_path = format!("/{}", relative.to_string_lossy());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut file = fs_err::File::open(path).map_err(|e| io(path, e))?;
        let size = file.metadata().map_err(|e| io(path, e))?.len();
        let mut buffer = Vec::new();
        let scanned = layer::scan_one_file(&name, size, &mut file, &settings.options, &mut buffer)
            .map_err(|e| io(path, e))?;
        let whole = size <= detect::MAX_WHOLE_FILE;
        let database = if whole && packages::is_database_file(&image_path) {
            Some((
                image_path.clone(),
                packages::database_text(&image_path, &buffer),
            ))
        } else if whole && scanned.digests.is_some() {
            packages::maven::record(&image_path, &buffer)
        } else {
            None
        };
        Ok(FileResult {
            path: image_path,
            scanned,
            database,
        })
    });
    let mut found = Vec::new();
    let mut databases = Vec::new();
    for result in results {
        let mut result = result?;
        if let Some(record) = result.database.take() {
            databases.push(record);
        }
        found.push(result);
    }
    let index = packages::Index::build(databases.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    let unreadable: Vec<Observation> = databases
        .iter()
        .filter_map(|(path, text)| {
            Some(Observation {
                artifact: detect::Artifact::LimitReached {
                    reason: packages::unreadable(path, text)?,
                },
                package_directory: None,
                location: Location {
                    path: Some(path.clone()),
                    in_final_image: true,
                    ..Location::default()
                },
            })
        })
        .collect();
    let digests: HashMap<&str, &packages::FileDigests> = found
        .iter()
        .filter_map(|f| Some((f.path.as_str(), f.scanned.digests.as_ref()?)))
        .collect();
    let mut observations = Vec::new();
    for FileResult { path, scanned, .. } in &found {
        if scanned.detections.is_empty() {
            continue;
        }
        let (owner, package_directory) =
            index.lookup(path, digests.get(path.as_str()).copied(), |source| {
                digests.get(source).copied()
            });
        observations.extend(scanned.detections.iter().map(|detection| Observation {
            package_directory: package_directory.clone(),
            artifact: detection.artifact.clone(),
            location: Location {
                path: Some(path.clone()),
                archive_path: detection.archive_path.clone(),
                in_final_image: true,
                owner: owner.clone(),
                ..Location::default()
            },
        }));
    }
    confirm_compiled(&mut observations);
    observations.extend(unreadable);
    let (findings, inventory) = analyze::analyze(observations, &settings.context);
    Ok(ImageReport {
        manifest_digest: None,
        config_digest: None,
        platform: None,
        layers: Vec::new(),
        skipped_layers: Vec::new(),
        findings,
        inventory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Rule;

    /// A `dir:` tree goes through the layer routine: an archive too large to open is reported
    /// as an incomplete scan (it used to be read for PEM text only, without the note).
    #[test]
    fn a_directory_scan_notes_an_archive_too_large_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut big = b"PK\x03\x04".to_vec();
        big.resize(usize::try_from(detect::MAX_WHOLE_FILE).unwrap() + 1024, 0);
        fs_err::write(dir.path().join("huge.jar"), &big).unwrap();
        fs_err::write(dir.path().join("small.txt"), b"nothing here").unwrap();
        let settings = Settings {
            options: Options::default(),
            context: Context {
                now: 0,
                expiry_warn_days: 30,
                ..Context::default()
            },
            threads: 1,
            cache: None,
        };
        let report = scan_directory(dir.path(), &settings).unwrap();
        let incomplete: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.rule == Rule::ScanIncomplete)
            .collect();
        assert_eq!(incomplete.len(), 1, "{:?}", report.findings);
        assert_eq!(incomplete[0].location.path.as_deref(), Some("/huge.jar"));
    }
}
