//! A registry repository as a `BlobStore`, so the synchronous scan engine reads registry blobs
//! exactly like local ones.
//!
//! This is the one bridge between async and sync: each blob is an HTTP body stream turned into
//! a blocking `Read` (tokio-util's `SyncIoBridge`), consumed on the engine's worker threads,
//! never on the runtime's. The digest is verified by the layer walker while it streams.

use super::{Client, Target};
use crate::image::{self, BlobStore};
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// Blobs and manifests of one repository.
pub struct Store {
    client: Arc<Client>,
    repository: String,
    handle: tokio::runtime::Handle,
    manifests: Mutex<HashMap<String, Vec<u8>>>,
}

impl Store {
    /// A store for `target`'s repository; `handle` runs the HTTP requests.
    pub fn new(client: Arc<Client>, target: &Target, handle: tokio::runtime::Handle) -> Self {
        Self {
            client,
            repository: target.repository.clone(),
            handle,
            manifests: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers a manifest already fetched (by tag), so it is not fetched again by digest.
    pub fn remember(&self, digest: &str, bytes: Vec<u8>) {
        if let Ok(mut manifests) = self.manifests.lock() {
            manifests.insert(digest.to_string(), bytes);
        }
    }
}

impl BlobStore for Store {
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send + '_>, image::Error> {
        // A registry that stops sending or trickles mid-layer is cut off with an error naming it.
        let stream = self
            .handle
            .block_on(self.client.blob_stream(&self.repository, digest))
            .map_err(|e| image::Error::Blob {
                digest: digest.to_string(),
                source: std::io::Error::other(e),
            })?;
        let reader = tokio_util::io::StreamReader::new(Box::pin(stream));
        Ok(Box::new(tokio_util::io::SyncIoBridge::new_with_handle(
            reader,
            self.handle.clone(),
        )))
    }

    fn manifest(&self, digest: &str) -> Result<Vec<u8>, image::Error> {
        if let Some(bytes) = self
            .manifests
            .lock()
            .ok()
            .and_then(|m| m.get(digest).cloned())
        {
            return Ok(bytes);
        }
        let (bytes, _, _) = self
            .handle
            .block_on(self.client.manifest(&self.repository, digest))
            .map_err(|e| image::Error::Blob {
                digest: digest.to_string(),
                source: std::io::Error::other(e),
            })?;
        self.remember(digest, bytes.clone());
        Ok(bytes)
    }

    fn parallelism(&self) -> Option<usize> {
        Some(4)
    }
}
