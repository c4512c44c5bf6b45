//! `ocicert copy SRC DST`: copies an image byte for byte to a registry, an OCI layout or a
//! docker-archive (`destination`), signs a pushed copy with `--sign-key`, and prints the digest.

use super::Status;
use super::destination::{manifests, push, write_docker_archive, write_layout};
use super::source;
use crate::cli::CopyArgs;
use crate::image::reference::Reference;
use anyhow::{Context as _, bail};
use std::io::Write;

/// Runs the copy and prints the digest of what the destination now names.
pub fn run(
    args: &CopyArgs,
    runtime: &tokio::runtime::Runtime,
    out: &mut dyn Write,
) -> anyhow::Result<Status> {
    let selection = source::one_or_every_platform(args.platform.as_deref())?;
    let options = source::registry_options(&args.registry, args.src_creds.as_deref())?;
    let reference = source::parse(&args.source)?;
    let verifiers = super::keys::load_verifiers(&args.registry.verify_keys)?;
    source::check_verifiable(&reference, &verifiers)?;
    let opened = source::open(reference, &args.source, &selection, options, runtime)?;
    source::verify(&opened, &verifiers, runtime)?;
    let manifests = manifests(&opened)?;
    let destination = Reference::parse(&args.destination)?;
    let signer = super::keys::signer_for(&destination, &args.signing)?;
    let digest = match destination {
        Reference::Registry { reference } => {
            let (target, client) =
                source::destination(&reference, &args.registry, args.dest_creds.as_deref())?;
            let digest = runtime
                .block_on(push(
                    &opened,
                    &manifests,
                    client.clone(),
                    &target,
                    args.chunk_bytes,
                ))
                .with_context(|| format!("failed to push to `{reference}`"))?;
            if let Some(signer) = &signer {
                runtime.block_on(crate::sign::remote::sign_digest(
                    &client, &target, &digest, signer,
                ))?;
            }
            digest
        }
        Reference::OciDir { path, tag } => write_layout(&opened, &manifests, &path, tag.as_deref())
            .with_context(|| format!("failed to write `{}`", args.destination))?,
        Reference::DockerArchive { path, repo_tag } => {
            write_docker_archive(&opened, &path, repo_tag.as_deref())
                .with_context(|| format!("failed to write `{}`", args.destination))?
        }
        Reference::OciArchive { .. } | Reference::Dir { .. } => bail!(
            "`{}` is not a supported destination: use a registry, `oci:` or `docker-archive:`",
            args.destination
        ),
    };
    writeln!(out, "{digest}")?;
    if let Some(path) = &args.digest_file {
        fs_err::write(path, format!("{digest}\n"))?;
    }
    Ok(Status::Clean)
}
