//! Pulling: manifests (size-capped while read, digest-checked) and blobs (streamed, with a
//! minimum rate).

use super::excerpt::error_message;
use super::transport::CapError;
use super::*;

impl Client {
    /// Fetches a manifest or index by tag or digest: `(bytes, media type, digest)`.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String, String), Error> {
        let response = self
            .manifest_request(Method::GET, repository, reference)
            .await?;
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let too_large = || Error::ManifestTooLarge {
            registry: self.host.clone(),
            reference: format!("{repository}:{reference}"),
        };
        if response
            .content_length()
            .is_some_and(|len| len > MAX_MANIFEST as u64)
        {
            return Err(too_large());
        }
        let what = format!("manifest `{repository}:{reference}`");
        let bytes = self
            .read_small(response, MAX_MANIFEST, &what)
            .await
            .map_err(|e| match e {
                CapError::TooLarge => too_large(),
                CapError::Read(source) if source.is_timeout() => self.timeout(&what),
                CapError::Read(source) => self.transport(source),
                CapError::Timeout(timeout) => timeout,
            })?;
        // An HTML page (a proxy's or captive portal's) is not a manifest: say so, with a short
        // excerpt, rather than reporting a JSON syntax error.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::NotAManifest {
                registry: self.host.clone(),
                reference: format!("{repository}:{reference}"),
                content_type: if media_type.is_empty() {
                    "no content type".into()
                } else {
                    media_type
                },
                excerpt: error_message(&bytes),
            });
        }
        let mismatch = |actual: String| Error::DigestMismatch {
            registry: self.host.clone(),
            reference: reference.to_string(),
            actual,
        };
        let digest = match crate::image::digest::Digest::parse(reference) {
            Some(expected) => {
                let actual = match expected.algorithm {
                    crate::image::digest::Algorithm::Sha256 => crate::image::digest::sha256(&bytes),
                    crate::image::digest::Algorithm::Sha512 => sha512(&bytes),
                };
                if actual != reference {
                    return Err(mismatch(actual));
                }
                actual
            }
            None => {
                let actual = crate::image::digest::sha256(&bytes);
                if header_digest
                    .as_deref()
                    .is_some_and(|d| d.starts_with("sha256:") && d != actual)
                {
                    return Err(mismatch(actual));
                }
                actual
            }
        };
        Ok((bytes, media_type, digest))
    }

    /// The digest a tag points at, from a `HEAD` request (Docker Hub does not count `HEAD`
    /// against its pull rate limit). Falls back to fetching the manifest when the registry
    /// sends no `Docker-Content-Digest`.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<String, Error> {
        let response = self
            .manifest_request(Method::HEAD, repository, reference)
            .await?;
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| crate::image::digest::Digest::parse(d).is_some())
            .map(str::to_string);
        match digest {
            Some(digest) => Ok(digest),
            None => Ok(self.manifest(repository, reference).await?.2),
        }
    }

    /// A successful `GET` or `HEAD` of a manifest; any other answer is the registry's error.
    async fn manifest_request(
        &self,
        method: Method,
        repository: &str,
        reference: &str,
    ) -> Result<reqwest::Response, Error> {
        let accept = [(header::ACCEPT, MANIFEST_ACCEPT.to_string())];
        let response = self
            .send(
                method,
                &format!("{repository}/manifests/{reference}"),
                &Scope::pull(repository),
                &accept,
                None,
            )
            .await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self
                .fail(response, &format!("manifest `{repository}:{reference}`"))
                .await)
        }
    }

    /// Opens a blob for streaming. Redirects to blob storage are followed without credentials.
    pub async fn blob(&self, repository: &str, digest: &str) -> Result<reqwest::Response, Error> {
        let response = self
            .send(
                Method::GET,
                &format!("{repository}/blobs/{digest}"),
                &Scope::pull(repository),
                &[],
                None,
            )
            .await?;
        if !response.status().is_success() {
            return Err(self
                .fail(response, &format!("blob `{digest}` in `{repository}`"))
                .await);
        }
        Ok(response)
    }

    /// Streams blob `digest` of `repository`; a registry that stalls or trickles below
    /// `body::MIN_BYTES_PER_WINDOW` per `--timeout` window ends it with `Error::Stalled`.
    pub async fn blob_stream(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<
        impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
        Error,
    > {
        let response = self.blob(repository, digest).await?;
        Ok(body::guarded(
            response,
            self.options.read_timeout,
            &self.host,
            format!("blob `{digest}`"),
        ))
    }
}

pub(super) fn sha512(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes)))
}
