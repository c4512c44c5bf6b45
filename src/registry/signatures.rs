//! Cosign signature and attestation manifests in a registry: the `sha256-<hex>.sig` and
//! `.att` tags, each an OCI manifest whose layers are signed payloads. Reading returns every
//! layer; writing appends a layer and keeps the ones already there.

use super::{Client, Error};
use crate::image::digest::sha256;
use serde_json::{Value, json};

/// One layer of a signature or attestation manifest.
#[derive(Clone, Debug)]
pub struct SignedLayer {
    pub media_type: String,
    pub payload: Vec<u8>,
    pub annotations: serde_json::Map<String, Value>,
}

/// The tag cosign uses for `digest`'s signatures (`suffix` = `sig`) or attestations (`att`).
pub fn tag_for(digest: &str, suffix: &str) -> String {
    format!("{}.{suffix}", digest.replace(':', "-"))
}

impl Client {
    /// The layers (with payloads) under `digest`'s `.sig`/`.att` tag; empty when there is none.
    pub async fn signed_layers(
        &self,
        repository: &str,
        digest: &str,
        suffix: &str,
    ) -> Result<Vec<SignedLayer>, Error> {
        let manifest = match self.manifest(repository, &tag_for(digest, suffix)).await {
            Ok((bytes, _, _)) => bytes,
            Err(Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let manifest: Value = serde_json::from_slice(&manifest).unwrap_or_default();
        let mut layers = Vec::new();
        for layer in manifest
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let Some(layer_digest) = layer.get("digest").and_then(Value::as_str) else {
                continue;
            };
            let response = self.blob(repository, layer_digest).await?;
            let payload = response.bytes().await.map_err(|source| Error::Transport {
                registry: self.host.clone(),
                source,
            })?;
            if sha256(&payload) != layer_digest {
                continue;
            }
            layers.push(SignedLayer {
                media_type: layer
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                payload: payload.to_vec(),
                annotations: layer
                    .get("annotations")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            });
        }
        Ok(layers)
    }

    /// Uploads a small blob unless the registry already has it; returns its digest.
    pub(super) async fn put_small_blob(
        &self,
        repository: &str,
        bytes: &[u8],
    ) -> Result<String, Error> {
        let digest = sha256(bytes);
        if !self.blob_exists(repository, &digest).await? {
            let chunk: Result<bytes::Bytes, std::io::Error> =
                Ok(bytes::Bytes::copy_from_slice(bytes));
            self.upload(
                repository,
                &digest,
                Some(bytes.len() as u64),
                Box::pin(futures_util::stream::iter([chunk])),
                u64::MAX,
            )
            .await?;
        }
        Ok(digest)
    }

    /// Appends a signed layer under `digest`'s `.sig`/`.att` tag, keeping existing layers.
    pub async fn append_signed_layer(
        &self,
        repository: &str,
        digest: &str,
        suffix: &str,
        layer: &SignedLayer,
    ) -> Result<(), Error> {
        let tag = tag_for(digest, suffix);
        let mut layers: Vec<Value> = match self.manifest(repository, &tag).await {
            Ok((bytes, _, _)) => serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|m| m.get("layers").and_then(Value::as_array).cloned())
                .unwrap_or_default(),
            Err(Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let payload_digest = self.put_small_blob(repository, &layer.payload).await?;
        let descriptor = json!({"mediaType": layer.media_type, "size": layer.payload.len(), "digest": payload_digest, "annotations": layer.annotations});
        if layers.contains(&descriptor) {
            return Ok(());
        }
        layers.push(descriptor);
        let diff_ids: Vec<&Value> = layers.iter().filter_map(|l| l.get("digest")).collect();
        let config = serde_json::to_vec(&json!({"architecture": "", "created": "0001-01-01T00:00:00Z", "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}})).unwrap_or_default();
        let config_digest = self.put_small_blob(repository, &config).await?;
        let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": crate::image::manifest::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
            "layers": layers})).unwrap_or_default();
        self.put_manifest(
            repository,
            &tag,
            crate::image::manifest::OCI_MANIFEST,
            &manifest,
        )
        .await?;
        Ok(())
    }
}
