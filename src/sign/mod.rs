//! Cosign-compatible signatures: keys in cosign's encrypted PEM format, the simple-signing
//! payload, ECDSA P-256 signatures, and DSSE-wrapped in-toto attestations, using the sigstore
//! crate for the key format and the cryptography.
//!
//! Key-based only. Keyless signing (Fulcio certificates, Rekor entries) needs network access to
//! Sigstore's services and is not offered; a `Signer` for it would slot in next to `KeySigner`.
//! Pushing and fetching signature manifests lives in `registry::signatures`; verifying and
//! signing registry images with them in `remote`.

pub mod remote;

use base64::Engine as _;
use sigstore::crypto::signing_key::{SigStoreKeyPair, SigStoreSigner};
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};

/// Media type of a cosign simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation that carries the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Media type of a DSSE envelope layer (cosign attestations).
pub const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
const SCHEME: SigningScheme = SigningScheme::ECDSA_P256_SHA256_ASN1;

/// What can go wrong with keys and signatures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot decrypt the private key `{path}`: wrong password, or not a cosign key")]
    Decrypt { path: String },
    #[error("`{path}` is not a PEM public key")]
    PublicKey { path: String },
    #[error("signing failed: {reason}")]
    Sign { reason: String },
    #[error("cannot generate a key pair: {reason}")]
    Generate { reason: String },
}

/// A loaded private key.
pub struct KeySigner {
    signer: SigStoreSigner,
}

impl KeySigner {
    /// Loads a cosign private key (`ENCRYPTED SIGSTORE PRIVATE KEY` or the older `ENCRYPTED
    /// COSIGN PRIVATE KEY`: scrypt + NaCl secretbox).
    pub fn load(pem: &[u8], password: &[u8], path: &str) -> Result<Self, Error> {
        let decrypt = || Error::Decrypt {
            path: path.to_string(),
        };
        let pair = SigStoreKeyPair::from_encrypted_pem(pem, password).map_err(|_| decrypt())?;
        let signer = pair.to_sigstore_signer(&SCHEME).map_err(|_| decrypt())?;
        Ok(Self { signer })
    }

    /// Signs bytes: an ASN.1 DER ECDSA signature over SHA-256.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.signer.sign(message).map_err(|e| Error::Sign {
            reason: e.to_string(),
        })
    }

    /// The public key, PEM.
    pub fn public_pem(&self) -> Result<String, Error> {
        self.signer
            .to_sigstore_keypair()
            .and_then(|pair| pair.public_key_to_pem())
            .map_err(|e| Error::Sign {
                reason: e.to_string(),
            })
    }
}

/// Generates a key pair in cosign's format: (encrypted private PEM, public PEM).
pub fn generate(password: &[u8]) -> Result<(String, String), Error> {
    let error = |e: sigstore::errors::SigstoreError| Error::Generate {
        reason: e.to_string(),
    };
    let signer = SCHEME.create_signer().map_err(error)?;
    let pair = signer.to_sigstore_keypair().map_err(error)?;
    let private = pair.private_key_to_encrypted_pem(password).map_err(error)?;
    let public = pair.public_key_to_pem().map_err(error)?;
    Ok((private.to_string(), public))
}

/// A public key to verify with.
pub struct Verifier {
    key: CosignVerificationKey,
    pub name: String,
}

impl Verifier {
    /// Loads a PEM public key (cosign's `cosign.pub`).
    pub fn load(pem: &[u8], name: &str) -> Result<Self, Error> {
        let key = CosignVerificationKey::from_pem(pem, &SCHEME).map_err(|_| Error::PublicKey {
            path: name.to_string(),
        })?;
        Ok(Self {
            key,
            name: name.to_string(),
        })
    }

    /// Whether `signature_base64` is this key's signature over `message`.
    pub fn verifies(&self, message: &[u8], signature_base64: &str) -> bool {
        self.key
            .verify_signature(
                Signature::Base64Encoded(signature_base64.as_bytes()),
                message,
            )
            .is_ok()
    }
}

/// The simple-signing payload cosign signs for `reference@digest`.
pub fn payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    let value = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// The digest a simple-signing payload vouches for.
pub fn payload_digest(payload: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    value
        .pointer("/critical/image/docker-manifest-digest")?
        .as_str()
        .map(str::to_string)
}

/// DSSE pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope around an in-toto statement, signed with `signer`.
pub fn dsse_envelope(statement: &serde_json::Value, signer: &KeySigner) -> Result<Vec<u8>, Error> {
    let payload_type = "application/vnd.in-toto+json";
    let payload = serde_json::to_vec(statement).map_err(|e| Error::Sign {
        reason: e.to_string(),
    })?;
    let signature = signer.sign(&pae(payload_type, &payload))?;
    let engine = base64::engine::general_purpose::STANDARD;
    let envelope = serde_json::json!({
        "payloadType": payload_type,
        "payload": engine.encode(&payload),
        "signatures": [{"keyid": "", "sig": engine.encode(signature)}],
    });
    serde_json::to_vec(&envelope).map_err(|e| Error::Sign {
        reason: e.to_string(),
    })
}

/// Verifies a DSSE envelope with `verifier`; returns the statement on success.
pub fn verify_dsse(envelope: &[u8], verifier: &Verifier) -> Option<serde_json::Value> {
    let engine = base64::engine::general_purpose::STANDARD;
    let value: serde_json::Value = serde_json::from_slice(envelope).ok()?;
    let payload_type = value.get("payloadType")?.as_str()?;
    let payload = engine.decode(value.get("payload")?.as_str()?).ok()?;
    let message = pae(payload_type, &payload);
    let ok = value
        .get("signatures")?
        .as_array()?
        .iter()
        .filter_map(|s| s.get("sig")?.as_str())
        .any(|sig| verifier.verifies(&message, sig));
    if ok {
        serde_json::from_slice(&payload).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_and_verify() {
        let (private, public) = generate(b"pw").unwrap();
        assert!(private.contains("ENCRYPTED SIGSTORE PRIVATE KEY"));
        assert!(matches!(
            KeySigner::load(private.as_bytes(), b"wrong", "k"),
            Err(Error::Decrypt { .. })
        ));
        let signer = KeySigner::load(private.as_bytes(), b"pw", "k").unwrap();
        let verifier = Verifier::load(public.as_bytes(), "pub").unwrap();
        let message = payload("registry.test/app", "sha256:00");
        let signature =
            base64::engine::general_purpose::STANDARD.encode(signer.sign(&message).unwrap());
        assert!(verifier.verifies(&message, &signature));
        assert!(!verifier.verifies(b"tampered", &signature));
        assert_eq!(payload_digest(&message).as_deref(), Some("sha256:00"));
        let envelope = dsse_envelope(
            &serde_json::json!({"_type": "https://in-toto.io/Statement/v1"}),
            &signer,
        )
        .unwrap();
        assert!(verify_dsse(&envelope, &verifier).is_some());
        let other = Verifier::load(generate(b"x").unwrap().1.as_bytes(), "other").unwrap();
        assert!(verify_dsse(&envelope, &other).is_none());
    }
}
