//! Signatures on registry images: verifying an image's cosign `.sig` signatures against keys,
//! signing a pushed digest, and attaching a DSSE attestation (under the `.att` tag and as an OCI
//! 1.1 referrer). It does not load keys from files or decide which images need a signature:
//! commands do.

use super::{DSSE, KeySigner, SIGNATURE_ANNOTATION, SIMPLE_SIGNING, Verifier};
use crate::registry::referrers::{Artifact, Attached};
use crate::registry::signatures::{SignedLayer, tag_for};
use crate::registry::{self, Client, Target};
use base64::Engine as _;

/// Why an image's signatures could not be verified, or a signature not be pushed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot read the signatures of `{image}`")]
    Read {
        image: String,
        #[source]
        source: registry::Error,
    },
    #[error("`{image}` ({digest}) is not signed: there is no `{tag}` signature tag")]
    Unsigned {
        image: String,
        digest: String,
        tag: String,
    },
    #[error("the signature on `{image}` is for another image ({signed}), not for {digest}")]
    OtherImage {
        image: String,
        signed: String,
        digest: String,
    },
    #[error("no signature on `{image}` ({digest}) verifies with the given key(s)")]
    NoneVerifies { image: String, digest: String },
    #[error("cannot push the {what} of {digest}")]
    Push {
        what: &'static str,
        digest: String,
        #[source]
        source: registry::Error,
    },
    #[error("cannot attach the attestation of {digest} as a referrer")]
    Referrer {
        digest: String,
        #[source]
        source: registry::Error,
    },
    #[error(transparent)]
    Key(#[from] super::Error),
}

/// Checks that `digest` in `target`'s repository carries a cosign signature that one of the
/// keys verifies and that vouches for this very digest.
pub async fn verify(
    client: &Client,
    target: &Target,
    digest: &str,
    verifiers: &[Verifier],
) -> Result<(), RemoteError> {
    let image = target.display();
    let layers = client
        .signed_layers(&target.repository, digest, "sig")
        .await
        .map_err(|source| RemoteError::Read {
            image: image.clone(),
            source,
        })?;
    if layers.is_empty() {
        return Err(RemoteError::Unsigned {
            image,
            digest: digest.into(),
            tag: tag_for(digest, "sig"),
        });
    }
    let mut other_image = None;
    for layer in layers.iter().filter(|l| l.media_type == SIMPLE_SIGNING) {
        let Some(signature) = layer
            .annotations
            .get(SIGNATURE_ANNOTATION)
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
        match super::payload_digest(&layer.payload) {
            Some(signed) if signed == digest => {
                tracing::info!("`{image}` is signed by `{}`", verifier.name);
                return Ok(());
            }
            signed => other_image = signed,
        }
    }
    Err(match other_image {
        Some(signed) => RemoteError::OtherImage {
            image,
            signed,
            digest: digest.into(),
        },
        None => RemoteError::NoneVerifies {
            image,
            digest: digest.into(),
        },
    })
}

/// Signs `digest` and appends the signature under its `.sig` tag.
pub async fn sign_digest(
    client: &Client,
    target: &Target,
    digest: &str,
    signer: &KeySigner,
) -> Result<(), RemoteError> {
    let reference = format!("{}/{}", target.registry, target.repository);
    let payload = super::payload(&reference, digest);
    let signature = base64::engine::general_purpose::STANDARD.encode(signer.sign(&payload)?);
    let mut annotations = serde_json::Map::new();
    annotations.insert(SIGNATURE_ANNOTATION.into(), signature.into());
    let layer = SignedLayer {
        media_type: SIMPLE_SIGNING.into(),
        payload,
        annotations,
    };
    client
        .append_signed_layer(&target.repository, digest, "sig", &layer)
        .await
        .map_err(|source| RemoteError::Push {
            what: "signature",
            digest: digest.into(),
            source,
        })
}

/// Attaches a DSSE-signed in-toto statement under `digest`'s `.att` tag, and as an OCI 1.1
/// referrer where the registry serves the referrers API.
pub async fn attest(
    client: &Client,
    target: &Target,
    digest: &str,
    signer: &KeySigner,
    predicate_type: &str,
    predicate: serde_json::Value,
) -> Result<(), RemoteError> {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": format!("{}/{}", target.registry, target.repository), "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    let envelope = super::dsse_envelope(&statement, signer)?;
    let mut annotations = serde_json::Map::new();
    annotations.insert("predicateType".into(), predicate_type.into());
    let layer = SignedLayer {
        media_type: DSSE.into(),
        payload: envelope,
        annotations,
    };
    client
        .append_signed_layer(&target.repository, digest, "att", &layer)
        .await
        .map_err(|source| RemoteError::Push {
            what: "attestation",
            digest: digest.into(),
            source,
        })?;
    // The `.att` tag above stays, since that is where cosign and admission controllers look.
    let artifact = Artifact {
        artifact_type: DSSE,
        media_type: DSSE,
        blob: &layer.payload,
        annotations: layer.annotations.clone(),
    };
    match client
        .attach_referrer(&target.repository, digest, &artifact)
        .await
        .map_err(|source| RemoteError::Referrer {
            digest: digest.into(),
            source,
        })? {
        Attached::Referrer { digest: referrer } => {
            tracing::info!("attestation attached as OCI 1.1 referrer {referrer}");
        }
        Attached::Unsupported => {
            tracing::info!(
                "{} has no OCI 1.1 referrers API: the attestation is under the `.att` tag only",
                target.registry
            );
        }
    }
    Ok(())
}
