//! OCI and Docker manifests, indexes and manifest lists, parsed leniently with serde.
//!
//! One struct covers both the OCI and the Docker v2 schema 2 spellings (they share field names);
//! oci-spec is not used because its strict types reject some real-world Docker manifests and we
//! only read a handful of fields. Schema 1 is recognised only to refuse it clearly. Bodies are
//! capped at `MAX_MANIFEST` before parsing.

use serde::Deserialize;

/// The largest manifest or index accepted (registries cap them at 4 MiB too).
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A content descriptor.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<super::platform::Platform>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub urls: Vec<String>,
}

/// An image manifest (OCI or Docker v2 schema 2).
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image index or Docker manifest list.
#[derive(Clone, Debug, Deserialize)]
pub struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest document.
#[derive(Clone, Debug)]
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("manifest is {size} bytes, above the {MAX_MANIFEST} byte limit")]
    TooLarge { size: usize },
    #[error(
        "Docker schema 1 manifests are not supported (deprecated since 2017); re-push the image with a current client"
    )]
    Schema1,
    #[error("manifest is not valid JSON")]
    Json {
        #[source]
        source: serde_json::Error,
    },
    #[error("unsupported manifest media type `{media_type}`")]
    MediaType { media_type: String },
    #[error("layer digest `{digest}` is not a valid sha256 or sha512 digest")]
    Digest { digest: String },
}

/// Parses a manifest or index, deciding by `mediaType` and, when absent, by shape.
pub fn parse(bytes: &[u8]) -> Result<Document, Error> {
    if bytes.len() > MAX_MANIFEST {
        return Err(Error::TooLarge { size: bytes.len() });
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|source| Error::Json { source })?;
    if probe.schema_version == Some(1) {
        return Err(Error::Schema1);
    }
    let media_type = probe.media_type.unwrap_or_default();
    let document = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => Document::Index(json(bytes)?),
        OCI_MANIFEST | DOCKER_MANIFEST => Document::Manifest(json(bytes)?),
        "" if probe.manifests.is_some() => Document::Index(json(bytes)?),
        "" if probe.config.is_some() => Document::Manifest(json(bytes)?),
        "application/vnd.docker.distribution.manifest.v1+json"
        | "application/vnd.docker.distribution.manifest.v1+prettyjws" => {
            return Err(Error::Schema1);
        }
        _ => return Err(Error::MediaType { media_type }),
    };
    if let Document::Manifest(manifest) = &document {
        for layer in manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config))
        {
            if super::digest::Digest::parse(&layer.digest).is_none() {
                return Err(Error::Digest {
                    digest: layer.digest.clone(),
                });
            }
        }
    }
    Ok(document)
}

fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json { source })
}

/// The `mediaType` field of a manifest document, if it has one.
pub fn media_type_of(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<Probe>(bytes)
        .ok()?
        .media_type
        .filter(|m| !m.is_empty())
}

/// Whether a layer's media type says it may not be redistributed or lives elsewhere.
pub fn is_foreign(descriptor: &Descriptor) -> bool {
    descriptor.media_type.contains("foreign") || descriptor.media_type.contains("nondistributable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_schema1_and_oversized_and_garbage() {
        assert!(matches!(
            parse(br#"{"schemaVersion":1,"fsLayers":[]}"#),
            Err(Error::Schema1)
        ));
        assert!(matches!(
            parse(&vec![b' '; MAX_MANIFEST + 1]),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(parse(b"\x00\x01"), Err(Error::Json { .. })));
        let hostile = br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:../../etc/passwd","size":1},"layers":[]}"#;
        assert!(matches!(parse(hostile), Err(Error::Digest { .. })));
    }

    #[test]
    fn tells_index_from_manifest_without_media_type() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(parse(index), Ok(Document::Index(_))));
        let manifest = br#"{"schemaVersion":2,"config":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
        assert!(matches!(parse(manifest), Ok(Document::Manifest(_))));
    }
}
