//! `ocicert inject IMAGE --ca PEM --to DEST`: adds CAs to every trust store of every platform
//! as one reproducible layer, then writes or pushes the result (only the new blobs move).

use super::Status;
use super::destination::{self, ManifestOut};
use super::source::{self, Opened};
use crate::cli::InjectArgs;
use crate::image::{MemoryStore, reference::Reference};
use crate::inject::apply::{self, Built, Enroll, Injected, Request};
use crate::inject::attestation;
use crate::inject::plan::{self, Ca, Entry};
use anyhow::{Context as _, anyhow, bail};
use std::io::Write;
use std::sync::Arc;

/// Reads and checks the `--ca` files; warns about CAs that expired or expire soon.
pub fn load_cas(paths: &[std::path::PathBuf], allow_non_ca: bool) -> anyhow::Result<Vec<Ca>> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (cas, warnings) = crate::inject::cas::load(paths, allow_non_ca, now)?;
    for warning in warnings {
        tracing::warn!("{warning}");
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
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    let predicate = attestation::predicate(
                        result.store.as_ref(),
                        &result.images,
                        &args.image,
                        &cas,
                        stub.as_ref(),
                        cache.as_ref(),
                        now,
                    )?;
                    runtime.block_on(crate::sign::remote::attest(
                        &client,
                        &target,
                        &digest,
                        signer,
                        attestation::PREDICATE_TYPE,
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
            destination::write_tar_of(scratch.path(), &path)
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
