//! Loading the keys that `--sign-key`, `--verify-key` and `sign` name: cosign key files, their
//! password (`COSIGN_PASSWORD` or `--key-password-file`), shared by the commands. The keys
//! themselves and what is done with them are the library's `sign`.

use crate::sign::{KeySigner, Verifier};
use anyhow::{Context as _, bail};
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
