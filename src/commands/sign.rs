//! `ocicert sign` and `ocicert generate-key-pair`. The key loading that `scan`, `copy` and
//! `inject` share is in `keys`; the registry side of signing is the library's `sign::remote`.

use super::Status;
use super::keys::{key_password, load_signer};
use crate::cli::{GenerateKeyPairArgs, SignArgs};
use crate::registry::Target;
use crate::sign::{self, remote};
use anyhow::{anyhow, bail};
use std::io::Write;
use std::path::{Path, PathBuf};

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
        remote::sign_digest(&client, &target, &digest, &signer).await?;
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
