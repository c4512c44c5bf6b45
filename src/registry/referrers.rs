//! OCI 1.1 referrers: detect whether a registry serves the referrers API, attach an artifact to
//! an image through the manifest `subject` field, and list an image's referrers.
//!
//! Deliberately not here: the spec's fallback "referrers tag schema" (a `sha256-<hex>` index tag
//! kept by the client). Where the API is missing, the cosign `.sig`/`.att` tags
//! (`signatures`) already carry the signature and attestation, and they are what cosign,
//! Kyverno and policy-controller read, so a second tag-based scheme would add nothing.

use super::transport::CapError;
use super::{Client, Error, Scope};
use crate::image::digest::sha256;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

/// The OCI 1.1 empty config blob (`{}`) that artifact manifests point at.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_JSON: &[u8] = b"{}";

/// The most referrers (index bytes) read for one image.
const MAX_REFERRERS_INDEX: usize = 4 * 1024 * 1024;

/// One artifact to attach: its type, its single blob and that blob's annotations.
#[derive(Clone, Debug)]
pub struct Artifact<'a> {
    pub artifact_type: &'a str,
    pub media_type: &'a str,
    pub blob: &'a [u8],
    pub annotations: serde_json::Map<String, Value>,
}

/// How an artifact was attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attached {
    /// Pushed with `subject`, and the registry confirmed it (`OCI-Subject` header).
    Referrer { digest: String },
    /// The registry has no referrers API (its referrers endpoint is not there).
    Unsupported,
}

impl Client {
    /// The referrers of `digest` (descriptors of the registry's referrers index), filtered to
    /// `artifact_type` when given. `Ok(None)` when the registry has no referrers API.
    pub async fn referrers(
        &self,
        repository: &str,
        digest: &str,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Value>>, Error> {
        let path = match artifact_type {
            Some(t) => format!(
                "{repository}/referrers/{digest}?artifactType={}",
                query_escape(t)
            ),
            None => format!("{repository}/referrers/{digest}"),
        };
        let accept = [(
            header::ACCEPT,
            crate::image::manifest::OCI_INDEX.to_string(),
        )];
        let response = self
            .send(Method::GET, &path, &Scope::pull(repository), &accept, None)
            .await?;
        if response.status() != StatusCode::OK {
            // 404 (distribution 2.x: "page not found" or NAME_UNKNOWN), 405, 400: no API.
            return Ok(None);
        }
        let what = format!("the referrers of `{repository}@{digest}`");
        let bytes = self
            .read_small(response, MAX_REFERRERS_INDEX, &what)
            .await
            .map_err(|e| match e {
                CapError::TooLarge => Error::ManifestTooLarge {
                    registry: self.host.clone(),
                    reference: what.clone(),
                },
                CapError::Read(source) => self.transport(source),
                CapError::Timeout(timeout) => timeout,
            })?;
        let Ok(index) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(None);
        };
        if index.get("mediaType").and_then(Value::as_str) != Some(crate::image::manifest::OCI_INDEX)
        {
            // A 200 that is not an image index is some other page, not the referrers API.
            return Ok(None);
        }
        let mut descriptors: Vec<Value> = index
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(wanted) = artifact_type {
            // Registries may ignore the filter (they then omit `OCI-Filters-Applied`).
            descriptors.retain(|d| d.get("artifactType").and_then(Value::as_str) == Some(wanted));
        }
        Ok(Some(descriptors))
    }

    /// Attaches `artifact` to the image `subject` (a manifest digest in `repository`) as an OCI
    /// 1.1 referrer, when the registry serves the referrers API.
    pub async fn attach_referrer(
        &self,
        repository: &str,
        subject: &str,
        artifact: &Artifact<'_>,
    ) -> Result<Attached, Error> {
        let Some(existing) = self
            .referrers(repository, subject, Some(artifact.artifact_type))
            .await?
        else {
            return Ok(Attached::Unsupported);
        };
        let (subject_bytes, subject_type, _) = self.manifest(repository, subject).await?;
        let blob_digest = self.put_small_blob(repository, artifact.blob).await?;
        let empty_digest = self.put_small_blob(repository, EMPTY_JSON).await?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": crate::image::manifest::OCI_MANIFEST,
            "artifactType": artifact.artifact_type,
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": empty_digest, "size": EMPTY_JSON.len()},
            "layers": [{
                "mediaType": artifact.media_type,
                "digest": blob_digest,
                "size": artifact.blob.len(),
                "annotations": artifact.annotations,
            }],
            "subject": {"mediaType": subject_type, "digest": subject, "size": subject_bytes.len()},
        }))
        .unwrap_or_default();
        let digest = sha256(&manifest);
        if existing
            .iter()
            .any(|d| d.get("digest").and_then(Value::as_str) == Some(digest.as_str()))
        {
            return Ok(Attached::Referrer { digest });
        }
        let acknowledged = self
            .put_manifest_acknowledging_subject(repository, &digest, &manifest)
            .await?;
        Ok(if acknowledged.as_deref() == Some(subject) {
            Attached::Referrer { digest }
        } else {
            Attached::Unsupported
        })
    }

    /// PUTs an artifact manifest by digest; returns the registry's `OCI-Subject` header.
    async fn put_manifest_acknowledging_subject(
        &self,
        repository: &str,
        digest: &str,
        manifest: &[u8],
    ) -> Result<Option<String>, Error> {
        let body = bytes::Bytes::copy_from_slice(manifest);
        let factory = || Ok(reqwest::Body::from(body.clone()));
        let headers = [(
            header::CONTENT_TYPE,
            crate::image::manifest::OCI_MANIFEST.to_string(),
        )];
        let response = self
            .send(
                Method::PUT,
                &format!("{repository}/manifests/{digest}"),
                &Scope::push(repository, None),
                &headers,
                Some(&factory),
            )
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(self
                .fail(response, &format!("manifest `{repository}@{digest}`"))
                .await);
        }
        Ok(response
            .headers()
            .get("OCI-Subject")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string))
    }
}

/// Percent-encodes a query value: media types carry `+`, which a query decodes as a space.
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn media_types_survive_the_query_string() {
        assert_eq!(
            super::query_escape("application/vnd.dsse.envelope.v1+json"),
            "application/vnd.dsse.envelope.v1%2Bjson"
        );
    }
}
