//! Pushing to a registry: each blob is checked with `HEAD`, mounted across repositories on the
//! same registry where it can be, else uploaded; manifests go last, so a tag never points at
//! missing blobs.

use super::super::source::Opened;
use super::{ManifestOut, blobs};
use crate::registry::{self, Target, push::ByteStream};
use anyhow::{Context as _, anyhow};
use futures_util::StreamExt as _;
use std::io::Read;
use std::sync::Arc;

/// Streams a blob of the source, whatever kind of store it is.
async fn blob_stream(opened: &Opened, digest: &str) -> anyhow::Result<ByteStream> {
    if let Some(bytes) = opened.store.in_memory(digest) {
        let chunk: Result<bytes::Bytes, std::io::Error> = Ok(bytes::Bytes::from(bytes));
        return Ok(Box::pin(futures_util::stream::iter([chunk])));
    }
    if let Some((client, target)) = &opened.remote {
        return Ok(Box::pin(
            client.blob_stream(&target.repository, digest).await?,
        ));
    }
    let store = opened.store.clone();
    let digest = digest.to_string();
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = match store.open(&digest) {
            Ok(reader) => reader,
            Err(e) => {
                let _ = sender.blocking_send(Err(std::io::Error::other(e)));
                return;
            }
        };
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => {
                    if sender
                        .blocking_send(Ok(bytes::Bytes::copy_from_slice(&buffer[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = sender.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Ok(Box::pin(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    )))
}

pub(crate) async fn push(
    opened: &Opened,
    manifests: &[ManifestOut],
    client: Arc<registry::Client>,
    target: &Target,
    chunk: u64,
) -> anyhow::Result<String> {
    let repository = &target.repository;
    let mount_from = opened
        .remote
        .as_ref()
        .filter(|(source, _)| source.host() == client.host())
        .map(|(_, source)| source.repository.clone());
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(blobs(opened))
        .map(|(digest, size)| {
            let client = client.clone();
            let mount_from = mount_from.clone();
            async move {
                if client.blob_exists(repository, &digest).await? {
                    tracing::debug!(blob = %digest, "already present");
                    return Ok(());
                }
                let from = mount_from
                    .as_deref()
                    .filter(|from| *from != repository.as_str());
                if let Some(from) = from
                    && client.mount(repository, &digest, from).await?
                {
                    tracing::debug!(blob = %digest, from, "mounted");
                    return Ok(());
                }
                let size = match size {
                    Some(size) => Some(size),
                    None => opened.store.size(&digest),
                };
                let stream = blob_stream(opened, &digest).await?;
                client
                    .upload(repository, &digest, size, stream, chunk)
                    .await
                    .with_context(|| format!("failed to upload `{digest}`"))
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let (last, children) = manifests
        .split_last()
        .ok_or_else(|| anyhow!("the source has no image"))?;
    for child in children {
        client
            .put_manifest(repository, &child.digest, &child.media_type, &child.bytes)
            .await?;
    }
    let reference = target
        .tag
        .clone()
        .or_else(|| target.digest.clone())
        .unwrap_or_else(|| last.digest.clone());
    client
        .put_manifest(repository, &reference, &last.media_type, &last.bytes)
        .await?;
    Ok(last.digest.clone())
}
