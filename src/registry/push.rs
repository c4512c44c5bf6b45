//! Pushing to a registry: blob existence checks, cross-repository mounts, streamed uploads
//! (monolithic, or chunked for big blobs) and byte-exact manifest pushes.
//!
//! Callers push blobs first and manifests last, so a tag never points at missing blobs; that
//! ordering lives in the copy orchestration, not here.

use super::{Client, Error, Scope};
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use reqwest::{Method, StatusCode, header};
use std::sync::Mutex;

/// A stream of blob bytes to upload.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

impl Client {
    /// Whether the repository already has the blob (`HEAD`).
    pub async fn blob_exists(&self, repository: &str, digest: &str) -> Result<bool, Error> {
        let scope = Scope::push(repository, None);
        let response = self
            .send(
                Method::HEAD,
                &format!("{repository}/blobs/{digest}"),
                &scope,
                &[],
                None,
            )
            .await?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.fail(response, &format!("blob `{digest}`")).await),
        }
    }

    /// Tries a cross-repository mount. `false` means the registry opened an upload instead
    /// (202), which is cancelled; the caller then uploads.
    pub async fn mount(&self, repository: &str, digest: &str, from: &str) -> Result<bool, Error> {
        let scope = Scope::push(repository, Some(from));
        let path = format!("{repository}/blobs/uploads/?mount={digest}&from={from}");
        let response = self.send(Method::POST, &path, &scope, &[], None).await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Some(location) = self.location(&response).await {
                    let _ = self
                        .send(Method::DELETE, &location, &scope, &[], None)
                        .await;
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    async fn location(&self, response: &reqwest::Response) -> Option<String> {
        let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
        if location.starts_with("http://") || location.starts_with("https://") {
            return Some(location.to_string());
        }
        let base = self.base().await.ok()?;
        Some(format!(
            "{base}{}",
            if location.starts_with('/') {
                location.to_string()
            } else {
                format!("/{location}")
            }
        ))
    }

    async fn start_upload(&self, repository: &str, scope: &Scope) -> Result<String, Error> {
        let response = self
            .send(
                Method::POST,
                &format!("{repository}/blobs/uploads/"),
                scope,
                &[],
                None,
            )
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.fail(response, "the start of an upload").await);
        }
        match self.location(&response).await {
            Some(location) => Ok(location),
            None => Err(Error::Status {
                registry: self.host.clone(),
                what: "the start of an upload".into(),
                status: 202,
                message: "no Location header".into(),
            }),
        }
    }

    /// Uploads a blob from a stream. Blobs larger than `chunk_size` go up in chunks of that size
    /// (held in memory one at a time); smaller ones in one streamed `PUT`.
    pub async fn upload(
        &self,
        repository: &str,
        digest: &str,
        size: Option<u64>,
        mut stream: ByteStream,
        chunk_size: u64,
    ) -> Result<(), Error> {
        let scope = Scope::push(repository, None);
        let location = self.start_upload(repository, &scope).await?;
        let separator = |url: &str| if url.contains('?') { '&' } else { '?' };
        if size.is_some_and(|size| size <= chunk_size) {
            let body = Mutex::new(Some(reqwest::Body::wrap_stream(stream)));
            let factory = || {
                body.lock()
                    .ok()
                    .and_then(|mut b| b.take())
                    .ok_or_else(|| std::io::Error::other("an upload body cannot be sent twice"))
            };
            let url = format!("{location}{}digest={digest}", separator(&location));
            let mut headers = vec![(header::CONTENT_TYPE, "application/octet-stream".to_string())];
            if let Some(size) = size {
                headers.push((header::CONTENT_LENGTH, size.to_string()));
            }
            let response = self
                .send(Method::PUT, &url, &scope, &headers, Some(&factory))
                .await?;
            if response.status() != StatusCode::CREATED {
                return Err(self
                    .fail(response, &format!("the upload of `{digest}`"))
                    .await);
            }
            return Ok(());
        }
        let mut location = location;
        let mut offset = 0u64;
        let mut pending: Vec<u8> = Vec::new();
        let mut exhausted = false;
        loop {
            while !exhausted && (pending.len() as u64) < chunk_size {
                match stream.next().await {
                    Some(chunk) => {
                        pending.extend_from_slice(&chunk.map_err(|source| Error::LocalRead {
                            registry: self.host.clone(),
                            what: format!("`{digest}`"),
                            source,
                        })?)
                    }
                    None => exhausted = true,
                }
            }
            if pending.is_empty() {
                break;
            }
            let take = pending.len().min(chunk_size as usize);
            let chunk = Bytes::from(pending.drain(..take).collect::<Vec<u8>>());
            let end = offset + chunk.len() as u64 - 1;
            let headers = [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::CONTENT_RANGE, format!("{offset}-{end}")),
                (header::CONTENT_LENGTH, chunk.len().to_string()),
            ];
            let factory = || Ok(reqwest::Body::from(chunk.clone()));
            let response = self
                .send(Method::PATCH, &location, &scope, &headers, Some(&factory))
                .await?;
            if response.status() != StatusCode::ACCEPTED {
                return Err(self.fail(response, &format!("a chunk of `{digest}`")).await);
            }
            location = self.location(&response).await.unwrap_or(location);
            offset = end + 1;
        }
        let url = format!("{location}{}digest={digest}", separator(&location));
        let headers = [(header::CONTENT_LENGTH, "0".to_string())];
        let response = self.send(Method::PUT, &url, &scope, &headers, None).await?;
        if response.status() != StatusCode::CREATED {
            return Err(self
                .fail(response, &format!("the upload of `{digest}`"))
                .await);
        }
        Ok(())
    }

    /// Pushes manifest bytes unchanged under a tag or digest; returns the digest.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, Error> {
        let scope = Scope::push(repository, None);
        let body = Bytes::copy_from_slice(bytes);
        let factory = || Ok(reqwest::Body::from(body.clone()));
        let headers = [(header::CONTENT_TYPE, media_type.to_string())];
        let response = self
            .send(
                Method::PUT,
                &format!("{repository}/manifests/{reference}"),
                &scope,
                &headers,
                Some(&factory),
            )
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(self
                .fail(response, &format!("manifest `{repository}:{reference}`"))
                .await);
        }
        Ok(crate::image::digest::sha256(bytes))
    }
}
