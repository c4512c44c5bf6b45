//! Webhook payloads, one parser per source, as pure functions over the request body: which
//! images were pushed, and whether the sender proved it knows the secret.
//!
//! * CNCF distribution notifications (`registry:2`, and registries built on it): an envelope
//!   of events; only `push` events of a manifest or index with a digest name an image. The
//!   sender authenticates with a configured `Authorization: Bearer` header.
//! * Docker Hub: one push per payload, with a tag but no digest and no signature; the secret is
//!   in the URL, and the digest must be resolved with a registry `HEAD`.
//! * GitHub `package` events (GHCR): HMAC-SHA256 of the body in `X-Hub-Signature-256`.
//!
//! Nothing here decides whether a registry may be contacted (that is the allowlist in
//! `config`), enqueues, or talks to the network.

use crate::registry::Target;
use hmac::{Hmac, Mac as _};
use serde_json::Value;

/// An image a webhook says was pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The registry host as the sender named it (not yet checked against the allowlist).
    pub registry: String,
    pub repository: String,
    /// The manifest digest; `None` when the sender gives only a tag (Docker Hub).
    pub digest: Option<String>,
    pub tag: Option<String>,
}

impl Pushed {
    /// Checks the names with the reference grammar and normalises them the way Docker does
    /// (`docker.io/nginx` → `library/nginx`).
    fn validated(self) -> Result<Self, Error> {
        let mut text = format!("{}/{}", self.registry, self.repository);
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            if crate::image::digest::Digest::parse(digest).is_none() {
                return Err(Error::Invalid {
                    field: "digest",
                    reason: format!("`{digest}` is not a sha256 or sha512 digest"),
                });
            }
            text.push('@');
            text.push_str(digest);
        }
        let target = Target::parse(&text).map_err(|reason| Error::Invalid {
            field: "repository",
            reason: format!("`{text}` is not an image reference: {reason}"),
        })?;
        Ok(Self {
            registry: super::config::normalize_host(&target.registry),
            repository: target.repository,
            digest: target.digest,
            tag: target.tag.filter(|_| self.tag.is_some()),
        })
    }
}

/// A payload that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the body is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("the payload has no `{0}`")]
    Missing(&'static str),
    #[error("invalid `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The host of an `http(s)://host[:port]/…` URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split('/').next()?;
    (!host.is_empty()).then_some(host)
}

/// Images pushed according to a distribution notification envelope, and how many events
/// were ignored (pulls, blob pushes, deletes).
pub fn registry_events(body: &[u8]) -> Result<(Vec<Pushed>, usize), Error> {
    let envelope: Value = serde_json::from_slice(body).map_err(Error::NotJson)?;
    let events = envelope
        .get("events")
        .and_then(Value::as_array)
        .ok_or(Error::Missing("events"))?;
    let mut pushed = Vec::new();
    let mut ignored = 0;
    for event in events {
        let is_manifest_push = text(event, "/action") == Some("push")
            && text(event, "/target/mediaType").is_some_and(|t| MANIFEST_TYPES.contains(&t));
        let Some(digest) = text(event, "/target/digest").filter(|_| is_manifest_push) else {
            ignored += 1;
            continue;
        };
        let registry = text(event, "/request/host")
            .or_else(|| text(event, "/target/url").and_then(url_host))
            .ok_or(Error::Missing("request.host"))?;
        let repository =
            text(event, "/target/repository").ok_or(Error::Missing("target.repository"))?;
        pushed.push(
            Pushed {
                registry: registry.to_string(),
                repository: repository.to_string(),
                digest: Some(digest.to_string()),
                tag: text(event, "/target/tag").map(str::to_string),
            }
            .validated()?,
        );
    }
    Ok((pushed, ignored))
}

/// The image a Docker Hub repository webhook names (tag only). The `callback_url` is never
/// used: calling a URL from an unsigned payload would let anyone aim the service at any host.
pub fn dockerhub_event(body: &[u8]) -> Result<Pushed, Error> {
    let payload: Value = serde_json::from_slice(body).map_err(Error::NotJson)?;
    let repository = text(&payload, "/repository/repo_name")
        .map(str::to_string)
        .or_else(|| {
            let namespace = text(&payload, "/repository/namespace")?;
            let name = text(&payload, "/repository/name")?;
            Some(format!("{namespace}/{name}"))
        })
        .ok_or(Error::Missing("repository.repo_name"))?;
    let tag = text(&payload, "/push_data/tag").unwrap_or("latest");
    Pushed {
        registry: "docker.io".into(),
        repository,
        digest: None,
        tag: Some(tag.to_string()),
    }
    .validated()
}

/// The image a GitHub `package` (or legacy `registry_package`) event names, or `None` for
/// events that push no container image (other ecosystems, deletions, `ping`).
pub fn github_event(event: &str, body: &[u8]) -> Result<Option<Pushed>, Error> {
    if !matches!(event, "package" | "registry_package") {
        return Ok(None);
    }
    let payload: Value = serde_json::from_slice(body).map_err(Error::NotJson)?;
    if !matches!(text(&payload, "/action"), Some("published" | "updated")) {
        return Ok(None);
    }
    let package = payload.get(event).ok_or(Error::Missing("package"))?;
    let kind = text(package, "/package_type")
        .or_else(|| text(package, "/ecosystem"))
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !matches!(kind.as_str(), "container" | "docker") {
        return Ok(None);
    }
    let name = text(package, "/name").ok_or(Error::Missing("package.name"))?;
    let namespace = text(package, "/namespace")
        .or_else(|| text(package, "/owner/login"))
        .ok_or(Error::Missing("package.namespace"))?;
    let registry = text(package, "/registry/url")
        .and_then(url_host)
        .unwrap_or("ghcr.io");
    let version = package.get("package_version").unwrap_or(&Value::Null);
    let digest = text(version, "/container_metadata/tag/digest")
        .or_else(|| text(version, "/version").filter(|v| v.starts_with("sha256:")))
        .or_else(|| text(version, "/name").filter(|v| v.starts_with("sha256:")));
    let tag = text(version, "/container_metadata/tag/name");
    if digest.is_none() && tag.is_none() {
        return Err(Error::Missing(
            "package.package_version.container_metadata.tag",
        ));
    }
    Pushed {
        registry: registry.to_string(),
        // GHCR names are the lowercase owner and package.
        repository: format!("{namespace}/{name}").to_ascii_lowercase(),
        digest: digest.map(str::to_string),
        tag: tag.map(str::to_string),
    }
    .validated()
    .map(Some)
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`, compared in
/// constant time.
pub fn github_signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(signature) = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// `sha256=<hex>` HMAC-SHA256 of `body`, as GitHub sends it and as notifications are signed.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // Infallible: HMAC accepts keys of any length.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        crate::test_fixtures::fixture(&format!("webhooks/{name}"))
    }

    const DIGEST: &str = "sha256:4039eae5bb01d163c6c571327860b577082a5682aefc27a47aacca4a2df42c9a";

    #[test]
    fn registry_notification_names_the_pushed_manifest() {
        let (pushed, ignored) = registry_events(&fixture("registry-notification.json")).unwrap();
        assert_eq!(ignored, 0);
        assert_eq!(
            pushed,
            [Pushed {
                registry: "127.0.0.1:5001".into(),
                repository: "test/notify".into(),
                digest: Some(DIGEST.into()),
                tag: Some("v1".into()),
            }]
        );
    }

    #[test]
    fn registry_notifications_skip_blobs_pulls_and_deletes() {
        let body = serde_json::json!({"events": [
            {"action": "pull", "target": {"mediaType": "application/octet-stream", "digest": DIGEST, "repository": "a/b"}},
            {"action": "push", "target": {"mediaType": "application/octet-stream", "digest": DIGEST, "repository": "a/b"}},
            {"action": "delete", "target": {"repository": "a/b", "tag": "v1"}},
            {"action": "push", "target": {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": DIGEST,
             "repository": "a/b", "url": "http://reg.example:5000/v2/a/b/manifests/x"}, "request": {}},
        ]});
        let (pushed, ignored) = registry_events(body.to_string().as_bytes()).unwrap();
        assert_eq!(ignored, 3);
        assert_eq!(pushed[0].registry, "reg.example:5000");
        assert_eq!(pushed[0].tag, None);
    }

    #[test]
    fn hostile_names_are_refused() {
        for (repository, digest) in [
            ("../../etc", DIGEST),
            ("UPPER/case", DIGEST),
            ("a/b", "sha256:../../x"),
            ("a/b", "md5:abc"),
        ] {
            let body = serde_json::json!({"events": [{"action": "push",
                "target": {"mediaType": MANIFEST_TYPES[0], "digest": digest, "repository": repository},
                "request": {"host": "reg.example"}}]});
            assert!(
                registry_events(body.to_string().as_bytes()).is_err(),
                "{repository} {digest}"
            );
        }
        assert!(matches!(
            registry_events(b"not json"),
            Err(Error::NotJson(_))
        ));
    }

    #[test]
    fn dockerhub_payload_names_a_tag() {
        let pushed = dockerhub_event(&fixture("dockerhub.json")).unwrap();
        assert_eq!(
            pushed,
            Pushed {
                registry: "docker.io".into(),
                repository: "exampleorg/webapp".into(),
                digest: None,
                tag: Some("1.4.2".into()),
            }
        );
        let official = serde_json::json!({"push_data": {"tag": "1.27", "pushed_at": 1.417566161e9},
            "repository": {"repo_name": "nginx"}});
        assert_eq!(
            dockerhub_event(official.to_string().as_bytes())
                .unwrap()
                .repository,
            "library/nginx"
        );
    }

    #[test]
    fn github_package_event_names_digest_and_tag() {
        let body = fixture("github-package.json");
        let pushed = github_event("package", &body).unwrap().unwrap();
        assert_eq!(
            pushed,
            Pushed {
                registry: "ghcr.io".into(),
                repository: "exampleorg/webapp".into(),
                digest: Some(DIGEST.into()),
                tag: Some("1.4.2".into()),
            }
        );
        assert_eq!(github_event("ping", b"{}").unwrap(), None);
        let npm = String::from_utf8(body)
            .unwrap()
            .replace("\"CONTAINER\"", "\"npm\"");
        assert_eq!(github_event("package", npm.as_bytes()).unwrap(), None);
    }

    #[test]
    fn github_signatures_are_checked() {
        let body = fixture("github-package.json");
        let good = sign(b"topsecret", &body);
        assert!(github_signature_valid(b"topsecret", &body, Some(&good)));
        assert!(!github_signature_valid(b"other", &body, Some(&good)));
        assert!(!github_signature_valid(b"topsecret", b"{}", Some(&good)));
        assert!(!github_signature_valid(b"topsecret", &body, None));
        assert!(!github_signature_valid(
            b"topsecret",
            &body,
            Some("sha1=00")
        ));
    }

    #[test]
    fn bearer_tokens_are_extracted() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
    }
}
