//! Opening any image reference (registry or local) for a command: the one place that chooses
//! the blob store and resolves platforms, and checking its `--verify-key` signatures; shared by
//! `scan`, `copy`, `inject`, `sign` and `serve`.

use crate::cli::RegistryArgs;
use crate::image::{self, BlobStore, Image, Selection, manifest, reference::Reference};
use crate::registry::{self, Target, auth::Credentials};
use crate::sign::{Verifier, remote};
use anyhow::{Context as _, bail};
use std::sync::Arc;

/// An opened image source.
pub struct Opened {
    pub store: Arc<dyn BlobStore>,
    pub images: Vec<Image>,
    /// The registry manifest or index the reference named, as stored: (bytes, media type). Its
    /// digest is `digest`.
    pub top: Option<(Vec<u8>, String)>,
    /// The digest the reference resolved to, the one to pin: the registry's index or manifest,
    /// or the `index.json` entry of an OCI layout. `None` for Docker archives (they hold no
    /// manifest digest) and for layouts whose `index.json` lists the platforms itself.
    pub digest: Option<String>,
    /// The registry client and target, for registry sources.
    pub remote: Option<(Arc<registry::Client>, Target)>,
}

/// `--platform` for commands that rewrite or copy images: one platform when given, else every
/// platform (the index is kept whole).
pub fn one_or_every_platform(platform: Option<&str>) -> anyhow::Result<Selection> {
    let platform = match platform {
        Some(text) => Some(image::platform::Platform::parse(text).ok_or_else(|| {
            anyhow::anyhow!("`--platform {text}` is not of the form os/arch[/variant]")
        })?),
        None => None,
    };
    Ok(Selection {
        all_platforms: platform.is_none(),
        platform,
    })
}

/// Registry options from the command line and the environment.
pub fn registry_options(
    args: &RegistryArgs,
    creds: Option<&str>,
) -> anyhow::Result<registry::Options> {
    let credentials = match creds.or(args.creds.as_deref()) {
        Some(text) => Some(Credentials::parse(text).context("`--creds` must be `user:pass`")?),
        None => match (
            std::env::var("OCICERT_USERNAME"),
            std::env::var("OCICERT_PASSWORD"),
        ) {
            (Ok(username), Ok(password)) => Some(Credentials { username, password }),
            _ => None,
        },
    };
    let defaults = registry::Options::default();
    let timeout = std::time::Duration::from_secs(args.timeout);
    Ok(registry::Options {
        insecure: args.insecure,
        ca_files: args.ca_files.clone(),
        credentials,
        connect_timeout: defaults.connect_timeout.min(timeout),
        read_timeout: timeout,
        ..defaults
    })
}

/// A client for `target`'s registry.
pub fn client(
    target: &Target,
    options: registry::Options,
) -> anyhow::Result<Arc<registry::Client>> {
    Ok(Arc::new(
        registry::Client::new(&target.api_host, options)
            .with_context(|| format!("cannot set up a client for `{}`", target.registry))?,
    ))
}

/// The target and client for a registry destination.
pub fn destination(
    reference: &str,
    args: &RegistryArgs,
    creds: Option<&str>,
) -> anyhow::Result<(Target, Arc<registry::Client>)> {
    let target = Target::parse(reference).map_err(|reason| {
        anyhow::anyhow!("`{reference}` is not a valid image reference: {reason}")
    })?;
    let client = client(&target, registry_options(args, creds)?)?;
    Ok((target, client))
}

/// Parses an image reference as the user wrote it.
pub fn parse(text: &str) -> anyhow::Result<Reference> {
    Reference::parse(text).with_context(|| format!("failed to open `{text}`"))
}

/// Opens `reference` (not `dir:`; `text` is how the user wrote it, for messages) and resolves
/// the selected platforms. It checks no signature: that is `verify`, after it.
pub fn open(
    reference: Reference,
    text: &str,
    selection: &Selection,
    options: registry::Options,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Opened> {
    let failed = || format!("failed to open `{text}`");
    match reference {
        Reference::Dir { .. } => bail!("`{text}` is a directory, not an image"),
        Reference::OciDir { path, tag } | Reference::OciArchive { path, tag } => {
            let archive = text.starts_with("oci-archive:");
            let (store, images, digest) =
                image::layout::open(&path, tag.as_deref(), archive, selection)
                    .with_context(failed)?;
            Ok(Opened {
                store: Arc::from(store),
                images,
                top: None,
                digest,
                remote: None,
            })
        }
        Reference::DockerArchive { path, repo_tag } => {
            let (store, images) =
                image::docker_archive::open(&path, repo_tag.as_deref()).with_context(failed)?;
            Ok(Opened {
                store: Arc::from(store),
                images,
                top: None,
                digest: None,
                remote: None,
            })
        }
        Reference::Registry { reference } => {
            let target = Target::parse(&reference).map_err(|reason| {
                anyhow::anyhow!("`{reference}` is not a valid image reference: {reason}")
            })?;
            let client = client(&target, options)?;
            open_registry(text, target, client, selection, runtime.handle())
        }
    }
}

/// Refuses `--verify-key` for anything but a registry image, before it is opened: cosign
/// signatures live in the registry, next to the image.
pub fn check_verifiable(reference: &Reference, verifiers: &[Verifier]) -> anyhow::Result<()> {
    if !verifiers.is_empty() && !matches!(reference, Reference::Registry { .. }) {
        bail!(
            "--verify-key needs a registry image: cosign signatures live in the registry, next to the image"
        );
    }
    Ok(())
}

/// Checks the opened image's cosign signatures against `verifiers` (none: nothing to check).
pub fn verify(
    opened: &Opened,
    verifiers: &[Verifier],
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    if verifiers.is_empty() {
        return Ok(());
    }
    let (Some((client, target)), Some(digest)) = (&opened.remote, &opened.digest) else {
        bail!(
            "--verify-key needs a registry image: cosign signatures live in the registry, next to the image"
        );
    };
    runtime.block_on(remote::verify(client, target, digest, verifiers))?;
    Ok(())
}

/// Opens a registry image with `client` and resolves the selected platforms; `handle` runs the
/// HTTP requests (call it outside async code, for example in `spawn_blocking`).
pub fn open_registry(
    text: &str,
    target: Target,
    client: Arc<registry::Client>,
    selection: &Selection,
    handle: &tokio::runtime::Handle,
) -> anyhow::Result<Opened> {
    let failed = || format!("failed to open `{text}`");
    let (bytes, media_type, digest) = handle
        .block_on(client.manifest(&target.repository, target.manifest_reference()))
        .with_context(failed)?;
    let store = Arc::new(registry::store::Store::new(
        client.clone(),
        &target,
        handle.clone(),
    ));
    store.remember(&digest, bytes.clone());
    let descriptor = manifest::Descriptor {
        media_type: manifest::media_type_of(&bytes).unwrap_or_else(|| media_type.clone()),
        digest: digest.clone(),
        size: bytes.len() as u64,
        platform: None,
        annotations: Default::default(),
        urls: Vec::new(),
    };
    let images = image::resolve(store.as_ref(), &descriptor, selection).with_context(failed)?;
    Ok(Opened {
        store,
        images,
        top: Some((bytes, descriptor.media_type)),
        digest: Some(digest),
        remote: Some((client, target)),
    })
}
