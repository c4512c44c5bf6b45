//! Injecting into one image (one platform): the files the plan needs read from its layers, the
//! plan, the enrollment stub and the wrapped entrypoint, then the new layer, config and manifest.
//! It does not open sources, write destinations, sign or print: the `inject` command does.

use super::build::{self, Base};
use super::enroll;
use super::fsview::View;
use super::plan::{self, Ca, Entry, Plan};
use crate::image::{self, BlobStore, Image, Layer};
use ocicert_enroll_config::EnrollConfig;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Why an image could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{platform}: only Linux images have trust stores ocicert knows")]
    NotLinux { platform: String },
    #[error("the source has no manifest to edit")]
    NoManifest,
    #[error("{platform}: cannot plan the injection")]
    Plan {
        platform: String,
        #[source]
        source: plan::Error,
    },
    #[error("the --enroll flags do not make a valid enrollment config")]
    EnrollFlags(#[source] ocicert_enroll_config::Error),
    #[error(transparent)]
    Stub(#[from] enroll::Error),
    #[error(transparent)]
    Image(#[from] image::Error),
    #[error(transparent)]
    Scan(#[from] crate::scan::Error),
    #[error(transparent)]
    Layer(#[from] crate::layer::Error),
    #[error("the image's manifest or config is not valid JSON")]
    Json(#[from] serde_json::Error),
    #[error("cannot build the new layer")]
    Build(#[from] std::io::Error),
}

/// How the enrollment stub is configured, when one is added.
pub enum Enroll {
    /// A complete configuration (`--enroll-config`).
    Config(Box<EnrollConfig>),
    /// A configuration made from flags, as JSON; without a `tls_ca_file` the stub trusts the
    /// image's system bundle (as it is after injection).
    Flags(Value),
}

/// What to inject, the same for every platform.
pub struct Request<'a> {
    /// The image as the user named it (recorded as the base).
    pub reference: &'a str,
    pub cas: &'a [Ca],
    pub settings: plan::Settings,
    pub enroll: Option<Enroll>,
    /// Whether the stub renews the certificate in the background (`--enroll-renew`).
    pub renew: bool,
    /// Plan only: no layer, config or manifest is built.
    pub dry_run: bool,
    pub cache: Option<crate::cache::Cache>,
}

/// One platform after injection.
pub struct Injected {
    /// `linux/amd64`, or `image` for a source without platforms.
    pub platform: String,
    /// The distribution family the plan recognised, if any (`Debian`, …).
    pub family: Option<String>,
    /// What the injection does, one line each.
    pub actions: Vec<String>,
    /// The new layer's files.
    pub entries: BTreeMap<String, Entry>,
    /// The stub's version, protocol and config hash, when one was added.
    pub stub: Option<Value>,
    /// The rewritten image and the blobs it adds; `None` on a dry run.
    pub built: Option<Built>,
}

/// A rewritten image.
pub struct Built {
    pub image: Image,
    /// The new blobs, (digest, bytes): the layer and the config.
    pub blobs: Vec<(String, Vec<u8>)>,
}

/// Injects `request` into `image`, whose blobs are in `store`.
pub fn inject(
    store: &dyn BlobStore,
    image: &Image,
    request: &Request<'_>,
) -> Result<Injected, Error> {
    let platform = image
        .platform
        .as_ref()
        .map_or_else(|| "image".to_string(), ToString::to_string);
    if image.platform.as_ref().is_some_and(|p| p.os != "linux") {
        return Err(Error::NotLinux { platform });
    }
    let mut image = image.clone();
    ensure_manifest(store, &mut image)?;
    let (bytes, media_type) = image.manifest.clone().ok_or(Error::NoManifest)?;
    let mut manifest: Value = serde_json::from_slice(&bytes)?;
    let mut config = image.config.clone();
    let mut base = Base {
        name: request.reference.to_string(),
        digest: image
            .manifest_digest
            .clone()
            .unwrap_or_else(|| image.config_digest.clone()),
    };
    if let Some((stripped_config, stripped_manifest, previous)) =
        build::strip_previous(&config, &manifest)
    {
        tracing::info!("{platform}: replacing the layer of an earlier `ocicert inject`");
        config = stripped_config;
        manifest = stripped_manifest;
        image.layers.pop();
        if let Some(previous) = previous {
            base = previous;
        }
    }
    if image.layers.is_empty() && !request.dry_run {
        tracing::warn!(
            "{platform}: the image has no layers; the new layer holds the whole trust store"
        );
    }
    let (view, contents) = read_view(store, &image, request.cache.as_ref())?;
    let env = build::config_env(&config);
    let mut plan =
        plan::plan(&view, &contents, request.cas, &env, &request.settings).map_err(|source| {
            Error::Plan {
                platform: platform.clone(),
                source,
            }
        })?;
    let stub = add_stub(request, &image, &view, &mut plan, &mut config)?;
    let family = plan.family.as_ref().map(|f| format!("{f:?}"));
    let built = if request.dry_run {
        None
    } else {
        let docker = media_type == image::manifest::DOCKER_MANIFEST;
        Some(build_image(
            &image, &plan, &config, &manifest, media_type, docker, request, &base,
        )?)
    };
    Ok(Injected {
        platform,
        family,
        actions: plan.actions,
        entries: plan.entries,
        stub,
        built,
    })
}

/// Synthesises a manifest for sources without one (docker-archive).
fn ensure_manifest(store: &dyn BlobStore, image: &mut Image) -> Result<(), Error> {
    if image.manifest.is_none() {
        let config = image::read_verified(store, &image.config_digest, image::MAX_CONFIG)?;
        let layers: Vec<Value> = image
            .layers
            .iter()
            .map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.digest, "size": l.size.or_else(|| store.size(&l.digest)).unwrap_or(0)}))
            .collect();
        let manifest = json!({"schemaVersion": 2, "mediaType": image::manifest::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": image.config_digest, "size": config.len()}, "layers": layers});
        image.manifest = Some((
            serde_json::to_vec(&manifest)?,
            image::manifest::OCI_MANIFEST.into(),
        ));
    }
    Ok(())
}

/// The image's final filesystem view, and the contents of the files the plan needs (each read
/// from the top-most layer that has it, each layer read at most once).
fn read_view(
    store: &dyn BlobStore,
    image: &Image,
    cache: Option<&crate::cache::Cache>,
) -> Result<(View, HashMap<String, Vec<u8>>), Error> {
    let settings = crate::scan::Settings {
        options: crate::detect::Options::default(),
        context: crate::analyze::Context::default(),
        threads: 0,
        cache: cache.cloned(),
    };
    let scans =
        crate::scan::scan_layers(store, std::slice::from_ref(image), &settings, &|_, _| {})?;
    let ordered: Vec<&crate::layer::LayerScan> = image
        .layers
        .iter()
        .filter_map(|l| scans.get(&l.digest))
        .collect();
    let view = View::build(&ordered);
    let mut by_layer: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut sources: HashMap<String, (usize, String)> = HashMap::new();
    for resolved in plan::needed_files(&view) {
        if let Some((layer, inner)) = view.content_of(&resolved) {
            by_layer.entry(layer).or_default().insert(inner.clone());
            sources.insert(resolved, (layer, inner));
        }
    }
    let mut extracted: HashMap<(usize, String), Vec<u8>> = HashMap::new();
    for (index, wanted) in &by_layer {
        let layer: &Layer = &image.layers[*index];
        let reader = store.open(&layer.digest)?;
        for (path, bytes) in crate::layer::extract(reader, &layer.digest, layer.size, wanted)? {
            extracted.insert((*index, path), bytes);
        }
    }
    let contents = sources
        .into_iter()
        .filter_map(|(resolved, key)| extracted.get(&key).map(|b| (resolved, b.clone())))
        .collect();
    Ok((view, contents))
}

/// Adds the enrollment stub and its config to the plan and wraps the entrypoint, when asked;
/// without a stub, unwraps the stub of an earlier injection. Returns what the attestation says
/// of the stub.
fn add_stub(
    request: &Request<'_>,
    image: &Image,
    view: &View,
    plan: &mut Plan,
    config: &mut Value,
) -> Result<Option<Value>, Error> {
    let original: Vec<Value> = config
        .pointer("/config/Entrypoint")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut entrypoint = enroll::unwrap_entrypoint(&original);
    let mut stub_info = None;
    if let Some(enroll_config) = enrollment(request.enroll.as_ref(), view, plan)? {
        stub_info = Some(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": enroll_config.ca.protocol(),
            "config_sha256": image::digest::sha256(&enroll_config.to_json()),
        }));
        let architecture = image
            .platform
            .as_ref()
            .map_or("amd64", |p| p.architecture.as_str());
        let stub = enroll::stub_for(architecture)?;
        plan.entries
            .insert(enroll::STUB_PATH.into(), Entry::Executable(stub));
        plan.entries.insert(
            enroll::CONFIG_PATH.into(),
            Entry::File(enroll_config.to_json()),
        );
        if !view.exists("/.ocicert") {
            plan.entries.insert("/.ocicert".into(), Entry::Directory);
        }
        entrypoint = enroll::wrap_entrypoint(&entrypoint, request.renew);
        plan.actions.push(format!(
            "enroll with {} at {} on start: Entrypoint becomes {}",
            enroll_config.ca.protocol(),
            enroll_config.ca.url(),
            serde_json::to_string(&entrypoint).unwrap_or_default()
        ));
    }
    if entrypoint != original {
        if !config.get("config").is_some_and(Value::is_object) {
            config["config"] = json!({});
        }
        config["config"]["Entrypoint"] = if entrypoint.is_empty() {
            Value::Null
        } else {
            Value::from(entrypoint)
        };
    }
    Ok(stub_info)
}

/// The enrollment config: as given, or from flags with the image's system bundle (as injected)
/// as the stub's TLS trust when the flags name none.
fn enrollment(
    enroll: Option<&Enroll>,
    view: &View,
    plan: &Plan,
) -> Result<Option<EnrollConfig>, Error> {
    match enroll {
        None => Ok(None),
        Some(Enroll::Config(config)) => Ok(Some(config.as_ref().clone())),
        Some(Enroll::Flags(flags)) => {
            let mut flags = flags.clone();
            if flags.get("tls_ca_file").is_none()
                && let Some(bundle) = crate::truststore::system_bundles()
                    .filter_map(|bundle| view.resolve(bundle))
                    .find(|target| plan.entries.contains_key(target) || view.exists(target))
            {
                flags["tls_ca_file"] = bundle.into();
            }
            let bytes = serde_json::to_vec(&flags)?;
            EnrollConfig::from_json(&bytes)
                .map(Some)
                .map_err(Error::EnrollFlags)
        }
    }
}

/// The new layer, config and manifest, and the image they make.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one image being rebuilt"
)]
fn build_image(
    image: &Image,
    plan: &Plan,
    config: &Value,
    manifest: &Value,
    media_type: String,
    docker: bool,
    request: &Request<'_>,
    base: &Base,
) -> Result<Built, Error> {
    let layer = build::layer(&plan.entries, docker)?;
    let new_config = build::edit_config(config, &layer, plan, request.cas, base);
    let config_bytes = serde_json::to_vec(&new_config)?;
    let new_manifest = build::edit_manifest(manifest, &config_bytes, &layer, base);
    let manifest_bytes = serde_json::to_vec(&new_manifest)?;
    let config_digest = image::digest::sha256(&config_bytes);
    let mut layers = image.layers.clone();
    layers.push(Layer {
        digest: layer.digest.clone(),
        size: Some(layer.compressed.len() as u64),
        media_type: layer.media_type.clone(),
    });
    let rebuilt = Image {
        manifest_digest: Some(image::digest::sha256(&manifest_bytes)),
        platform: image.platform.clone(),
        config_digest: config_digest.clone(),
        config: new_config,
        layers,
        skipped_layers: Vec::new(),
        manifest: Some((manifest_bytes, media_type)),
    };
    Ok(Built {
        image: rebuilt,
        blobs: vec![
            (layer.digest, layer.compressed),
            (config_digest, config_bytes),
        ],
    })
}
