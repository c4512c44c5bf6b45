//! One scan as both `ocicert scan` and `ocicert serve` run it: the scan settings made from the
//! caller's choices and the policy (the policy's keystore passwords and expiry window apply
//! unless the caller overrides them), the images scanned, and the policy applied. It does not
//! open images, show progress, judge `--fail-on` or write reports: the callers do.

use crate::analyze::Context;
use crate::cache::Cache;
use crate::detect::Options;
use crate::image::{BlobStore, Image};
use crate::policy::{ExpiredException, Policy};
use crate::report::ImageReport;
use crate::scan::{self, Settings};
use std::path::Path;

/// The expiry window when neither the caller nor the policy sets one.
pub const DEFAULT_EXPIRY_WARN_DAYS: u32 = 30;

/// What a caller asks of a scan, besides the images.
pub struct Request<'a> {
    /// The instant certificates are judged at (Unix seconds).
    pub now: i64,
    pub policy: Option<&'a Policy>,
    /// Keystore passwords to try, before the policy's.
    pub keystore_passwords: Vec<String>,
    /// The expiry window; `None` takes the policy's, else `DEFAULT_EXPIRY_WARN_DAYS`.
    pub expiry_warn_days: Option<u32>,
    pub max_archive_depth: u32,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    pub cache: Option<Cache>,
    /// When the scan must give up (`detect::Options::deadline`).
    pub deadline: Option<std::time::Instant>,
    /// The process memory past which it must give up (`detect::Options::memory_limit`).
    pub memory_limit: Option<u64>,
}

impl<'a> Request<'a> {
    /// A request with the library's defaults: every core, no cache.
    pub fn new(now: i64, policy: Option<&'a Policy>) -> Self {
        Self {
            now,
            policy,
            keystore_passwords: Vec::new(),
            expiry_warn_days: None,
            max_archive_depth: Options::default().max_archive_depth,
            threads: 0,
            cache: None,
            deadline: None,
            memory_limit: None,
        }
    }

    /// The scan settings: the caller's choices, then the policy's, then the defaults.
    pub fn settings(&self) -> Settings {
        let mut keystore_passwords = self.keystore_passwords.clone();
        if let Some(policy) = self.policy {
            keystore_passwords.extend(policy.keystore_passwords.iter().cloned());
        }
        let expiry_warn = self
            .expiry_warn_days
            .or(self.policy.and_then(|p| p.expiry_warn_days))
            .unwrap_or(DEFAULT_EXPIRY_WARN_DAYS);
        Settings {
            options: Options {
                keystore_passwords,
                max_archive_depth: self.max_archive_depth,
                deadline: self.deadline,
                memory_limit: self.memory_limit,
                ..Options::default()
            },
            context: Context {
                now: self.now,
                expiry_warn_days: i64::from(expiry_warn),
                public_origins: self
                    .policy
                    .map(|p| p.public_origins.clone())
                    .unwrap_or_default(),
                trusted_roots: self
                    .policy
                    .map(|p| p.trusted_roots.clone())
                    .unwrap_or_default(),
                injected_cas: Vec::new(),
            },
            threads: self.threads,
            cache: self.cache.clone(),
        }
    }

    fn apply_policy(&self, mut images: Vec<ImageReport>) -> Scanned {
        let expired = match self.policy {
            Some(policy) => policy.apply(&mut images, self.now),
            None => Vec::new(),
        };
        Scanned { images, expired }
    }
}

/// A finished scan: the images with the policy applied, and the policy's exceptions that have
/// expired (for the caller to warn about).
pub struct Scanned {
    pub images: Vec<ImageReport>,
    pub expired: Vec<ExpiredException>,
}

/// Scans `images` from `store`; `on_layer` is told of each layer scanned (digest, bytes).
pub fn scan_images(
    store: &dyn BlobStore,
    images: &[Image],
    request: &Request<'_>,
    on_layer: &(dyn Fn(&str, u64) + Sync),
) -> Result<Scanned, scan::Error> {
    let images = scan::scan_images(store, images, &request.settings(), on_layer)?;
    Ok(request.apply_policy(images))
}

/// Scans a directory tree as one image.
pub fn scan_directory(root: &Path, request: &Request<'_>) -> Result<Scanned, scan::Error> {
    let image = scan::scan_directory(root, &request.settings())?;
    Ok(request.apply_policy(vec![image]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        crate::policy::parse("test.toml", text).unwrap()
    }

    #[test]
    fn the_callers_choices_win_over_the_policy_and_the_policy_over_the_defaults() {
        let request = Request::new(0, None);
        assert_eq!(request.settings().context.expiry_warn_days, 30);
        assert!(request.settings().options.keystore_passwords.is_empty());

        let policy = policy("expiry_warn_days = 90\nkeystore_passwords = [\"from-policy\"]\n");
        let mut request = Request::new(0, Some(&policy));
        assert_eq!(request.settings().context.expiry_warn_days, 90);
        request.expiry_warn_days = Some(7);
        request.keystore_passwords = vec!["from-flag".into()];
        let settings = request.settings();
        assert_eq!(settings.context.expiry_warn_days, 7);
        assert_eq!(
            settings.options.keystore_passwords,
            ["from-flag", "from-policy"]
        );
    }
}
