//! `ocicert inject IMAGE --ca PEM --to DEST`: adds CAs to every trust store of every platform
//! as one reproducible layer, then writes or pushes the result (only the new blobs move).

use super::Status;
use super::destination::{self, ManifestOut};
use super::source::{self, Opened};
use crate::cli::InjectArgs;
use crate::image::{self, BlobStore, Image, Layer, MemoryStore, reference::Reference};
use crate::inject::build::{self, Base};
use crate::inject::fsview::View;
use crate::inject::plan::{self, Ca};
use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;

/// Reads and checks the `--ca` files.
pub fn load_cas(paths: &[std::path::PathBuf], allow_non_ca: bool) -> anyhow::Result<Vec<Ca>> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut cas: Vec<Ca> = Vec::new();
    for path in paths {
        let bytes = fs_err::read(path)
            .with_context(|| format!("cannot read CA file `{}`", path.display()))?;
        let blocks: Vec<_> = crate::detect::pem::blocks(&bytes)
            .into_iter()
            .filter(|b| b.label == "CERTIFICATE" || b.label == "TRUSTED CERTIFICATE")
            .collect();
        if blocks.is_empty() {
            bail!(
                "`{}` holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----`)",
                path.display()
            );
        }
        for block in blocks {
            let der = block.body.map_err(|reason| {
                anyhow!(
                    "`{}`: a certificate does not decode: {reason}",
                    path.display()
                )
            })?;
            let der = der[..crate::x509::certificate_len(&der).unwrap_or(der.len())].to_vec();
            let ca = Ca::new(der).ok_or_else(|| {
                anyhow!(
                    "`{}`: a certificate does not parse as X.509",
                    path.display()
                )
            })?;
            if !ca.info.is_ca && !allow_non_ca {
                bail!(
                    "`{}`: `{}` is not a CA certificate (basicConstraints CA:TRUE is missing); pass --allow-non-ca to trust it anyway",
                    path.display(),
                    ca.info.subject
                );
            }
            if ca.info.not_after_unix < now {
                tracing::warn!("`{}` expired on {}", ca.info.subject, ca.info.not_after);
            } else if ca.info.not_after_unix - now < 30 * 86_400 {
                tracing::warn!(
                    "`{}` expires soon, on {}",
                    ca.info.subject,
                    ca.info.not_after
                );
            }
            if !cas.iter().any(|c| c.der == ca.der) {
                cas.push(ca);
            }
        }
    }
    Ok(cas)
}

/// One platform after injection.
struct Injected {
    image: Image,
    new_blobs: Vec<(String, Vec<u8>)>,
    /// The enrollment stub's version and config hash, when one was added.
    stub: Option<Value>,
}

fn manifest_json(image: &Image) -> anyhow::Result<(Value, String)> {
    let (bytes, media_type) = image
        .manifest
        .clone()
        .ok_or_else(|| anyhow!("the source has no manifest to edit"))?;
    Ok((serde_json::from_slice(&bytes)?, media_type))
}

/// Synthesises a manifest for sources without one (docker-archive).
fn ensure_manifest(store: &dyn BlobStore, image: &mut Image) -> anyhow::Result<()> {
    if image.manifest.is_none() {
        let config = image::read_verified(store, &image.config_digest, image::MAX_CONFIG)?;
        let layers: Vec<Value> = image
            .layers
            .iter()
            .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.digest, "size": l.size.or_else(|| store.size(&l.digest)).unwrap_or(0)}))
            .collect();
        let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": image::manifest::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": image.config_digest, "size": config.len()}, "layers": layers});
        image.manifest = Some((
            serde_json::to_vec(&manifest)?,
            image::manifest::OCI_MANIFEST.into(),
        ));
    }
    Ok(())
}

fn inject_one(
    opened: &Opened,
    image: &Image,
    reference: &str,
    cas: &[Ca],
    args: &InjectArgs,
    cache: Option<&crate::cache::Cache>,
    out: &mut dyn Write,
) -> anyhow::Result<Option<Injected>> {
    let platform = image
        .platform
        .as_ref()
        .map_or_else(|| "image".to_string(), ToString::to_string);
    if image.platform.as_ref().is_some_and(|p| p.os != "linux") {
        bail!("{platform}: only Linux images have trust stores ocicert knows");
    }
    let mut image = image.clone();
    ensure_manifest(opened.store.as_ref(), &mut image)?;
    let (mut manifest, media_type) = manifest_json(&image)?;
    let mut config = image.config.clone();
    let mut base = Base {
        name: reference.to_string(),
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
    if image.layers.is_empty() && !args.dry_run {
        tracing::warn!(
            "{platform}: the image has no layers; the new layer holds the whole trust store"
        );
    }
    let settings = crate::scan::Settings {
        options: crate::detect::Options::default(),
        context: crate::analyze::Context {
            now: 0,
            expiry_warn_days: 0,
        },
        threads: 0,
        cache: cache.cloned(),
    };
    let scans = crate::scan::scan_layers(
        opened.store.as_ref(),
        std::slice::from_ref(&image),
        &settings,
        &|_, _| {},
    )?;
    let ordered: Vec<&crate::layer::LayerScan> = image
        .layers
        .iter()
        .filter_map(|l| scans.get(&l.digest))
        .collect();
    let view = View::build(&ordered);
    // Read each needed file from the top-most layer that has it, each layer at most once.
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
        let reader = opened.store.open(&layer.digest)?;
        for (path, bytes) in crate::layer::extract(reader, &layer.digest, layer.size, wanted)? {
            extracted.insert((*index, path), bytes);
        }
    }
    let contents: HashMap<String, Vec<u8>> = sources
        .into_iter()
        .filter_map(|(resolved, key)| extracted.get(&key).map(|b| (resolved, b.clone())))
        .collect();
    let env: Vec<String> = config
        .pointer("/config/Env")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let settings = plan::Settings {
        java_store_password: args.java_store_password.clone(),
        env_override: args.env_override,
    };
    let mut plan = plan::plan(&view, &contents, cas, &env, &settings)
        .with_context(|| format!("{platform}: cannot plan the injection"))?;
    // The entrypoint without any stub of an earlier injection, then with this one's, if any.
    let original: Vec<Value> = config
        .pointer("/config/Entrypoint")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut entrypoint = crate::inject::enroll::unwrap_entrypoint(&original);
    let mut stub_info = None;
    if let Some(enroll) = enrollment(args, &view, &plan)? {
        stub_info = Some(serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": enroll.ca.protocol(),
            "config_sha256": image::digest::sha256(&enroll.to_json()),
        }));
        let architecture = image
            .platform
            .as_ref()
            .map_or("amd64", |p| p.architecture.as_str());
        let stub = crate::inject::enroll::stub_for(architecture)?;
        plan.entries.insert(
            crate::inject::enroll::STUB_PATH.into(),
            plan::Entry::Executable(stub),
        );
        plan.entries.insert(
            crate::inject::enroll::CONFIG_PATH.into(),
            plan::Entry::File(enroll.to_json()),
        );
        if !view.exists("/.ocicert") {
            plan.entries
                .insert("/.ocicert".into(), plan::Entry::Directory);
        }
        entrypoint = crate::inject::enroll::wrap_entrypoint(&entrypoint, args.enroll.enroll_renew);
        plan.actions.push(format!(
            "enroll with {} at {} on start: Entrypoint becomes {}",
            enroll.ca.protocol(),
            enroll.ca.url(),
            serde_json::to_string(&entrypoint).unwrap_or_default()
        ));
    }
    if entrypoint != original {
        if !config.get("config").is_some_and(Value::is_object) {
            config["config"] = serde_json::json!({});
        }
        config["config"]["Entrypoint"] = if entrypoint.is_empty() {
            Value::Null
        } else {
            Value::from(entrypoint)
        };
    }
    let family = plan
        .family
        .as_ref()
        .map_or_else(String::new, |f| format!("{f:?}"));
    let mut report = format!("{platform}: {family}\n");
    for action in &plan.actions {
        report.push_str(&format!("  {action}\n"));
    }
    if args.dry_run {
        report.push_str("  files in the new layer:\n");
        for (path, entry) in &plan.entries {
            let kind = match entry {
                plan::Entry::Directory => "dir ".to_string(),
                plan::Entry::File(bytes) => format!("file {} bytes", bytes.len()),
                plan::Entry::Executable(bytes) => format!("executable {} bytes", bytes.len()),
                plan::Entry::Symlink(target) => format!("link -> {target}"),
            };
            report.push_str(&format!("    {path}  ({kind})\n"));
        }
        out.write_all(report.as_bytes())?;
        return Ok(None);
    }
    #[expect(
        clippy::print_stderr,
        reason = "the plan summary is part of inject's user-facing output; stdout carries the digest"
    )]
    {
        eprint!("{report}");
    }
    let docker = media_type == image::manifest::DOCKER_MANIFEST;
    let layer = build::layer(&plan.entries, docker)?;
    let new_config = build::edit_config(&config, &layer, &plan, cas, &base);
    let config_bytes = serde_json::to_vec(&new_config)?;
    let new_manifest = build::edit_manifest(&manifest, &config_bytes, &layer, &base);
    let manifest_bytes = serde_json::to_vec(&new_manifest)?;
    let config_digest = image::digest::sha256(&config_bytes);
    let mut layers = image.layers.clone();
    layers.push(Layer {
        digest: layer.digest.clone(),
        size: Some(layer.compressed.len() as u64),
        media_type: layer.media_type.clone(),
    });
    Ok(Some(Injected {
        image: Image {
            manifest_digest: Some(image::digest::sha256(&manifest_bytes)),
            platform: image.platform.clone(),
            config_digest: config_digest.clone(),
            config: new_config,
            layers,
            skipped_layers: Vec::new(),
            manifest: Some((manifest_bytes, media_type)),
        },
        new_blobs: vec![
            (layer.digest, layer.compressed),
            (config_digest, config_bytes),
        ],
        stub: stub_info,
    }))
}

/// Runs the injection.
pub fn run(
    args: &InjectArgs,
    runtime: &tokio::runtime::Runtime,
    out: &mut dyn Write,
) -> anyhow::Result<Status> {
    let cas = load_cas(&args.cas, args.allow_non_ca)?;
    let selection = source::one_or_every_platform(args.platform.as_deref())?;
    let options = source::registry_options(&args.registry, args.src_creds.as_deref())?;
    let reference = source::parse(&args.image)?;
    let verifiers = super::keys::load_verifiers(&args.registry.verify_keys)?;
    source::check_verifiable(&reference, &verifiers)?;
    let opened = source::open(reference, &args.image, &selection, options, runtime)?;
    source::verify(&opened, &verifiers, runtime)?;
    if opened.images.is_empty() {
        bail!("`{}` holds no image", args.image);
    }
    let cache = crate::cache::Cache::choose(args.cache.no_cache, args.cache.cache_dir.as_deref());
    let mut injected = Vec::new();
    for image in &opened.images {
        if let Some(result) =
            inject_one(&opened, image, &args.image, &cas, args, cache.as_ref(), out)?
        {
            injected.push(result);
        }
    }
    if args.dry_run {
        return Ok(Status::Clean);
    }
    let stub = injected.iter().find_map(|i| i.stub.clone());
    let destination = args
        .to
        .as_deref()
        .ok_or_else(|| anyhow!("--to is required"))?;
    let blobs = injected
        .iter()
        .flat_map(|i| i.new_blobs.iter().cloned())
        .collect();
    let result = Opened {
        store: Arc::new(MemoryStore {
            blobs,
            inner: opened.store.clone(),
        }),
        images: injected.into_iter().map(|i| i.image).collect(),
        top: None,
        digest: None,
        remote: opened.remote.clone(),
    };
    let manifests: Vec<ManifestOut> = destination::manifests(&result)?;
    let parsed_destination = Reference::parse(destination)?;
    let signer = super::keys::signer_for(&parsed_destination, &args.signing)?;
    let digest = match parsed_destination {
        Reference::Registry { reference } => {
            let (target, client) =
                source::destination(&reference, &args.registry, args.dest_creds.as_deref())?;
            let digest = runtime
                .block_on(destination::push(
                    &result,
                    &manifests,
                    client.clone(),
                    &target,
                    64 * 1024 * 1024,
                ))
                .with_context(|| format!("failed to push to `{reference}`"))?;
            if let Some(signer) = &signer {
                runtime.block_on(crate::sign::remote::sign_digest(
                    &client, &target, &digest, signer,
                ))?;
                if args.attest {
                    let predicate =
                        attestation(&result, &args.image, &cas, stub.as_ref(), cache.as_ref())?;
                    runtime.block_on(crate::sign::remote::attest(
                        &client,
                        &target,
                        &digest,
                        signer,
                        ATTESTATION_TYPE,
                        predicate,
                    ))?;
                }
            }
            digest
        }
        Reference::OciDir { path, tag } => {
            destination::write_layout(&result, &manifests, &path, tag.as_deref())
                .with_context(|| format!("failed to write `{destination}`"))?
        }
        Reference::OciArchive { path, tag } => {
            let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
            let digest =
                destination::write_layout(&result, &manifests, scratch.path(), tag.as_deref())?;
            write_tar_of(scratch.path(), &path)
                .with_context(|| format!("failed to write `{destination}`"))?;
            digest
        }
        Reference::DockerArchive { path, repo_tag } => {
            destination::write_docker_archive(&result, &path, repo_tag.as_deref())
                .with_context(|| format!("failed to write `{destination}`"))?
        }
        Reference::Dir { .. } => bail!("`{destination}` is not a supported destination"),
    };
    writeln!(out, "{digest}")?;
    if let Some(path) = &args.digest_file {
        fs_err::write(path, format!("{digest}\n"))?;
    }
    Ok(Status::Clean)
}

/// The enrollment config from `--enroll-config` or the `--enroll*` flags, if any.
fn enrollment(
    args: &InjectArgs,
    view: &View,
    plan: &plan::Plan,
) -> anyhow::Result<Option<ocicert_enroll_config::EnrollConfig>> {
    use ocicert_enroll_config::EnrollConfig;
    let flags = &args.enroll;
    if let Some(path) = &flags.enroll_config {
        let bytes = fs_err::read(path)?;
        return Ok(Some(EnrollConfig::from_json(&bytes).with_context(
            || format!("`{}` is not a valid enrollment config", path.display()),
        )?));
    }
    let Some(protocol) = flags.enroll else {
        return Ok(None);
    };
    let url = flags.enroll_url.clone().unwrap_or_default();
    let ca = match protocol {
        crate::cli::EnrollProtocol::Acme => serde_json::json!({"protocol": "acme", "url": url}),
        crate::cli::EnrollProtocol::Est => serde_json::json!({"protocol": "est", "url": url}),
        crate::cli::EnrollProtocol::Vault => {
            let role = flags
                .enroll_vault_role
                .clone()
                .ok_or_else(|| anyhow!("--enroll vault needs --enroll-vault-role"))?;
            let mut vault =
                serde_json::to_value(ocicert_enroll_config::VaultOptions::new(&url, &role))?;
            vault["protocol"] = "vault".into();
            if let Some(mount) = &flags.enroll_vault_mount {
                vault["mount"] = mount.clone().into();
            }
            vault
        }
    };
    let tls_ca = flags.enroll_tls_ca.clone().or_else(|| {
        plan::SYSTEM_BUNDLES
            .iter()
            .filter_map(|bundle| view.resolve(bundle))
            .find(|target| plan.entries.contains_key(target) || view.exists(target))
    });
    let mut config = serde_json::json!({
        "version": ocicert_enroll_config::VERSION,
        "ca": ca,
        "sans": flags.enroll_sans,
        "key_type": flags.enroll_key_type,
        "required": !flags.enroll_optional,
    });
    if let Some(path) = tls_ca {
        config["tls_ca_file"] = path.into();
    }
    let bytes = serde_json::to_vec(&config)?;
    Ok(Some(EnrollConfig::from_json(&bytes).context(
        "the --enroll flags do not make a valid enrollment config",
    )?))
}

/// The predicate type of ocicert's injection attestation.
pub const ATTESTATION_TYPE: &str = "https://ocicert.dev/attestation/inject/v1";

/// What the attestation says: the base, the injected CAs, the enrollment stub (none yet), and
/// the scan summary of the result.
fn attestation(
    result: &Opened,
    reference: &str,
    cas: &[Ca],
    stub: Option<&Value>,
    cache: Option<&crate::cache::Cache>,
) -> anyhow::Result<Value> {
    let settings = crate::scan::Settings {
        options: crate::detect::Options::default(),
        context: crate::analyze::Context {
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
            expiry_warn_days: 30,
        },
        threads: 0,
        cache: cache.cloned(),
    };
    let reports =
        crate::scan::scan_images(result.store.as_ref(), &result.images, &settings, &|_, _| {})?;
    let report = crate::report::Report::new(reference, settings.context.now, reports);
    let bases: Vec<Value> = result
        .images
        .iter()
        .map(|image| {
            serde_json::json!({
                "platform": image.platform.as_ref().map(ToString::to_string),
                "name": image.config.pointer("/config/Labels/org.opencontainers.image.base.name"),
                "digest": image.config.pointer("/config/Labels/org.opencontainers.image.base.digest"),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "base": bases,
        "cas": cas.iter().map(|ca| serde_json::json!({"subject": ca.info.subject, "fingerprint": ca.info.fingerprint})).collect::<Vec<_>>(),
        "stub": stub,
        "scan": report.summary,
    }))
}

/// Tars a directory (an OCI layout) into `destination`, entries sorted, times zeroed.
fn write_tar_of(dir: &std::path::Path, destination: &std::path::Path) -> anyhow::Result<()> {
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
