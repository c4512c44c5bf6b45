//! `ocicert sign`, `ocicert generate-key-pair`, and the `--verify-key` / `--sign-key` /
//! `--attest` steps that `scan`, `copy` and `inject` share.

use super::Status;
use crate::cli::{GenerateKeyPairArgs, SignArgs};
use crate::registry::referrers;
use crate::registry::signatures::SignedLayer;
use crate::registry::{Client, Target};
use crate::sign::{self, KeySigner, Verifier};
use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The key password: `COSIGN_PASSWORD`, or the first line of `--key-password-file`.
pub fn key_password(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = file {
        let text = fs_err::read_to_string(path)
            .with_context(|| format!("cannot read the key password file `{}`", path.display()))?;
        return Ok(text.lines().next().unwrap_or_default().as_bytes().to_vec());
    }
    match std::env::var("COSIGN_PASSWORD") {
        Ok(password) => Ok(password.into_bytes()),
        Err(_) => {
            bail!("the key password is needed: set COSIGN_PASSWORD or pass --key-password-file")
        }
    }
}

/// Loads a cosign private key.
pub fn load_signer(path: &Path, password_file: Option<&Path>) -> anyhow::Result<KeySigner> {
    let pem = fs_err::read(path)
        .with_context(|| format!("cannot read the signing key `{}`", path.display()))?;
    let password = key_password(password_file)?;
    Ok(KeySigner::load(
        &pem,
        &password,
        &path.display().to_string(),
    )?)
}

/// The `--sign-key` signer, refused up front unless the destination is a registry (signatures
/// live there), so a wrong password fails before anything is pushed.
pub fn signer_for(
    destination: &crate::image::reference::Reference,
    signing: &crate::cli::SigningArgs,
) -> anyhow::Result<Option<KeySigner>> {
    match &signing.sign_key {
        Some(_)
            if !matches!(
                destination,
                crate::image::reference::Reference::Registry { .. }
            ) =>
        {
            bail!("--sign-key needs a registry destination: signatures are stored in the registry")
        }
        Some(key) => Ok(Some(load_signer(
            key,
            signing.key_password_file.as_deref(),
        )?)),
        None => Ok(None),
    }
}

/// Loads the `--verify-key` public keys.
pub fn load_verifiers(paths: &[PathBuf]) -> anyhow::Result<Vec<Verifier>> {
    paths
        .iter()
        .map(|path| {
            let pem = fs_err::read(path).with_context(|| {
                format!("cannot read the verification key `{}`", path.display())
            })?;
            Ok(Verifier::load(&pem, &path.display().to_string())?)
        })
        .collect()
}

/// Checks that `digest` in `target`'s repository carries a cosign signature that one of the
/// keys verifies and that vouches for this very digest.
pub async fn verify(
    client: &Client,
    target: &Target,
    digest: &str,
    verifiers: &[Verifier],
) -> anyhow::Result<()> {
    let image = target.display();
    let layers = client
        .signed_layers(&target.repository, digest, "sig")
        .await
        .with_context(|| format!("cannot read the signatures of `{image}`"))?;
    if layers.is_empty() {
        bail!(
            "`{image}` ({digest}) is not signed: there is no `{}` signature tag",
            crate::registry::signatures::tag_for(digest, "sig")
        );
    }
    let mut other_image = None;
    for layer in layers
        .iter()
        .filter(|l| l.media_type == sign::SIMPLE_SIGNING)
    {
        let Some(signature) = layer
            .annotations
            .get(sign::SIGNATURE_ANNOTATION)
            .and_then(|v| v.as_str())
        else {
            continue;
        };
        let Some(verifier) = verifiers
            .iter()
            .find(|v| v.verifies(&layer.payload, signature))
        else {
            continue;
        };
        match sign::payload_digest(&layer.payload) {
            Some(signed) if signed == digest => {
                tracing::info!("`{image}` is signed by `{}`", verifier.name);
                return Ok(());
            }
            signed => other_image = signed,
        }
    }
    match other_image {
        Some(signed) => {
            bail!("the signature on `{image}` is for another image ({signed}), not for {digest}")
        }
        None => bail!("no signature on `{image}` ({digest}) verifies with the given key(s)"),
    }
}

/// Signs `digest` and appends the signature under its `.sig` tag.
pub async fn sign_digest(
    client: &Client,
    target: &Target,
    digest: &str,
    signer: &KeySigner,
) -> anyhow::Result<()> {
    let reference = format!("{}/{}", target.registry, target.repository);
    let payload = sign::payload(&reference, digest);
    let signature = base64::engine::general_purpose::STANDARD.encode(signer.sign(&payload)?);
    let mut annotations = serde_json::Map::new();
    annotations.insert(sign::SIGNATURE_ANNOTATION.into(), signature.into());
    let layer = SignedLayer {
        media_type: sign::SIMPLE_SIGNING.into(),
        payload,
        annotations,
    };
    client
        .append_signed_layer(&target.repository, digest, "sig", &layer)
        .await
        .with_context(|| format!("cannot push the signature of {digest}"))
}

/// Attaches a DSSE-signed in-toto statement under `digest`'s `.att` tag.
pub async fn attest(
    client: &Client,
    target: &Target,
    digest: &str,
    signer: &KeySigner,
    predicate_type: &str,
    predicate: serde_json::Value,
) -> anyhow::Result<()> {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": format!("{}/{}", target.registry, target.repository), "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    let envelope = sign::dsse_envelope(&statement, signer)?;
    let mut annotations = serde_json::Map::new();
    annotations.insert("predicateType".into(), predicate_type.into());
    let layer = SignedLayer {
        media_type: sign::DSSE.into(),
        payload: envelope,
        annotations,
    };
    client
        .append_signed_layer(&target.repository, digest, "att", &layer)
        .await
        .with_context(|| format!("cannot push the attestation of {digest}"))?;
    // Also an OCI 1.1 referrer where the registry serves the referrers API; the `.att` tag
    // above stays, since that is where cosign and admission controllers look today.
    let artifact = referrers::Artifact {
        artifact_type: sign::DSSE,
        media_type: sign::DSSE,
        blob: &layer.payload,
        annotations: layer.annotations.clone(),
    };
    match client
        .attach_referrer(&target.repository, digest, &artifact)
        .await
        .with_context(|| format!("cannot attach the attestation of {digest} as a referrer"))?
    {
        referrers::Attached::Referrer { digest: referrer } => {
            tracing::info!("attestation attached as OCI 1.1 referrer {referrer}");
        }
        referrers::Attached::Unsupported => {
            tracing::info!(
                "{} has no OCI 1.1 referrers API: the attestation is under the `.att` tag only",
                target.registry
            );
        }
    }
    Ok(())
}

/// `ocicert sign IMAGE --key cosign.key`.
pub fn run(
    args: &SignArgs,
    runtime: &tokio::runtime::Runtime,
    out: &mut dyn Write,
) -> anyhow::Result<Status> {
    let signer = load_signer(&args.key, args.key_password_file.as_deref())?;
    let target = Target::parse(args.image.strip_prefix("docker://").unwrap_or(&args.image))
        .map_err(|reason| {
            anyhow!(
                "`{}` is not a registry image reference: {reason}",
                args.image
            )
        })?;
    let options = super::source::registry_options(&args.registry, None)?;
    let client = super::source::client(&target, options)?;
    let digest = runtime.block_on(async {
        let (_, _, digest) = client
            .manifest(&target.repository, target.manifest_reference())
            .await?;
        sign_digest(&client, &target, &digest, &signer).await?;
        Ok::<_, anyhow::Error>(digest)
    })?;
    writeln!(out, "{digest}")?;
    Ok(Status::Clean)
}

/// `ocicert generate-key-pair`: writes `<prefix>.key` (encrypted) and `<prefix>.pub`.
pub fn generate(args: &GenerateKeyPairArgs, out: &mut dyn Write) -> anyhow::Result<Status> {
    let password = key_password(args.key_password_file.as_deref())?;
    let key = PathBuf::from(format!("{}.key", args.output_key_prefix));
    let public = PathBuf::from(format!("{}.pub", args.output_key_prefix));
    for path in [&key, &public] {
        if path.exists() {
            bail!("`{}` already exists; not overwriting it", path.display());
        }
    }
    let (private_pem, public_pem) = sign::generate(&password)?;
    write_private(&key, private_pem.as_bytes())?;
    fs_err::write(&public, public_pem)?;
    writeln!(
        out,
        "Private key written to {}\nPublic key written to {}",
        key.display(),
        public.display()
    )?;
    Ok(Status::Clean)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    let mut file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    Ok(())
}
