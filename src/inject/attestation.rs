//! What ocicert's injection attestation says (its in-toto predicate): the base of each platform,
//! the injected CAs, the enrollment stub, and the scan summary of the result. Signing and
//! attaching it are `sign::remote`'s.

use super::plan::Ca;
use crate::image::{BlobStore, Image};
use serde_json::{Value, json};

/// The predicate type of ocicert's injection attestation.
pub const PREDICATE_TYPE: &str = "https://ocicert.dev/attestation/inject/v1";

/// The predicate for the injected `images` (blobs in `store`), scanned as of `now`.
pub fn predicate(
    store: &dyn BlobStore,
    images: &[Image],
    reference: &str,
    cas: &[Ca],
    stub: Option<&Value>,
    cache: Option<&crate::cache::Cache>,
    now: i64,
) -> Result<Value, crate::scan::Error> {
    let request = crate::pipeline::Request {
        cache: cache.cloned(),
        ..crate::pipeline::Request::new(now, None)
    };
    let scanned = crate::pipeline::scan_images(store, images, &request, &|_, _| {})?;
    let report = crate::report::Report::new(reference, now, scanned.images);
    let bases: Vec<Value> = images
        .iter()
        .map(|image| {
            json!({
                "platform": image.platform.as_ref().map(ToString::to_string),
                "name": image.config.pointer("/config/Labels/org.opencontainers.image.base.name"),
                "digest": image.config.pointer("/config/Labels/org.opencontainers.image.base.digest"),
            })
        })
        .collect();
    Ok(json!({
        "base": bases,
        "cas": cas.iter().map(|ca| json!({"subject": ca.info.subject, "fingerprint": ca.info.fingerprint})).collect::<Vec<_>>(),
        "stub": stub,
        "scan": report.summary,
    }))
}
