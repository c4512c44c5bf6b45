//! `ocicert inject IMAGE --ca PEM --to DEST`: adds CAs to every trust store of every platform
//! as one reproducible layer, then writes or pushes the result (only the new blobs move).

use super::Status;
use super::destination::{self, ManifestOut};
use super::source::{self, Opened};
use crate::cli::InjectArgs;
use crate::image::{MemoryStore, reference::Reference};
use crate::inject::apply::{self, Built, Enroll, Injected, Request};
use crate::inject::plan::{self, Ca, Entry};
use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;
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

/// Prints what the injection of one platform does: to `out` with the new layer's files on a
/// dry run, else to stderr (stdout carries the digest).
fn show(injected: &Injected, dry_run: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut report = format!(
        "{}: {}\n",
        injected.platform,
        injected.family.as_deref().unwrap_or_default()
    );
    for action in &injected.actions {
        report.push_str(&format!("  {action}\n"));
    }
    if dry_run {
        report.push_str("  files in the new layer:\n");
        for (path, entry) in &injected.entries {
            let kind = match entry {
                Entry::Directory => "dir ".to_string(),
                Entry::File(bytes) => format!("file {} bytes", bytes.len()),
                Entry::Executable(bytes) => format!("executable {} bytes", bytes.len()),
                Entry::Symlink(target) => format!("link -> {target}"),
            };
            report.push_str(&format!("    {path}  ({kind})\n"));
        }
        out.write_all(report.as_bytes())?;
        return Ok(());
    }
    #[expect(
        clippy::print_stderr,
        reason = "the plan summary is part of inject's user-facing output; stdout carries the digest"
    )]
    {
        eprint!("{report}");
    }
    Ok(())
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
    let request = Request {
        reference: &args.image,
        cas: &cas,
        settings: plan::Settings {
            java_store_password: args.java_store_password.clone(),
            env_override: args.env_override,
        },
        enroll: enrollment(args)?,
        renew: args.enroll.enroll_renew,
        dry_run: args.dry_run,
        cache: cache.clone(),
    };
    let mut injected = Vec::new();
    for image in &opened.images {
        let result = apply::inject(opened.store.as_ref(), image, &request)?;
        show(&result, args.dry_run, out)?;
        injected.push(result);
    }
    if args.dry_run {
        return Ok(Status::Clean);
    }
    let stub = injected.iter().find_map(|i| i.stub.clone());
    let built: Vec<Built> = injected.into_iter().filter_map(|i| i.built).collect();
    let blobs = built.iter().flat_map(|b| b.blobs.iter().cloned()).collect();
    let images = built.into_iter().map(|b| b.image).collect();
    let destination = args
        .to
        .as_deref()
        .ok_or_else(|| anyhow!("--to is required"))?;
    let result = Opened {
        store: Arc::new(MemoryStore {
            blobs,
            inner: opened.store.clone(),
        }),
        images,
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
fn enrollment(args: &InjectArgs) -> anyhow::Result<Option<Enroll>> {
    use ocicert_enroll_config::EnrollConfig;
    let flags = &args.enroll;
    if let Some(path) = &flags.enroll_config {
        let bytes = fs_err::read(path)?;
        let config = EnrollConfig::from_json(&bytes)
            .with_context(|| format!("`{}` is not a valid enrollment config", path.display()))?;
        return Ok(Some(Enroll::Config(Box::new(config))));
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
    let mut config = serde_json::json!({
        "version": ocicert_enroll_config::VERSION,
        "ca": ca,
        "sans": flags.enroll_sans,
        "key_type": flags.enroll_key_type,
        "required": !flags.enroll_optional,
    });
    if let Some(path) = &flags.enroll_tls_ca {
        config["tls_ca_file"] = path.clone().into();
    }
    Ok(Some(Enroll::Flags(config)))
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
