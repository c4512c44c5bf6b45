//! The on-disk layer cache: scan results keyed by layer digest, ruleset version and the
//! options that change detection, so a re-scan only reads layers it has not seen.
//!
//! Entries are JSON files written to a temporary name and renamed into place, so two processes
//! sharing the directory never see a half-written entry; a damaged entry is ignored and
//! rewritten. The cache trusts that a digest names fixed content: it is keyed only by digests
//! that were verified when the entry was written.

use crate::detect::{Options, RULESET_VERSION};
use crate::layer::LayerScan;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// Why the cache directory is unusable.
#[derive(Debug, thiserror::Error)]
#[error("cannot use cache directory `{dir}`")]
pub struct Error {
    dir: PathBuf,
    #[source]
    source: std::io::Error,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Cache {
    /// Opens (creating) a cache directory.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        // Cached layer results are findings of possibly private images: 0700 and 0600.
        let layers = dir.join("layers");
        crate::private::dir(dir)
            .and_then(|()| crate::private::dir(&layers))
            .map_err(|source| Error {
                dir: dir.to_path_buf(),
                source,
            })?;
        Ok(Self { dir: layers })
    }

    /// The cache a scan uses: none when `disabled`, else `dir` or the default directory. One
    /// that cannot be opened is a warning, and the scan runs without a cache.
    pub fn choose(disabled: bool, dir: Option<&Path>) -> Option<Self> {
        if disabled {
            return None;
        }
        let dir = dir.map(Path::to_path_buf).or_else(Self::default_dir)?;
        match Self::open(&dir) {
            Ok(cache) => Some(cache),
            Err(error) => {
                tracing::warn!(error = %error, "scanning without a layer cache");
                None
            }
        }
    }

    /// `$XDG_CACHE_HOME/ocicert`, else `~/.cache/ocicert`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .map(|base| base.join("ocicert"))
    }

    /// The entry name for a layer under the given options.
    pub fn key(digest: &str, options: &Options) -> String {
        let mut hasher = Sha256::new();
        hasher.update(RULESET_VERSION.as_bytes());
        hasher.update([0]);
        hasher.update(digest.as_bytes());
        hasher.update([0]);
        hasher.update(format!(
            "{}|{}|{}|{}",
            options.max_archive_depth,
            options.max_entry_bytes,
            options.max_total_inflated,
            options.max_ratio
        ));
        let mut passwords = options.keystore_passwords.clone();
        passwords.sort();
        for password in passwords {
            hasher.update([0]);
            hasher.update(password.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    /// A cached scan, if present and readable.
    pub fn get(&self, key: &str) -> Option<LayerScan> {
        let bytes = fs_err::read(self.dir.join(format!("{key}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Stores a scan; failures are logged, never fatal (the cache is an optimisation).
    pub fn put(&self, key: &str, scan: &LayerScan) {
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temporary = self
            .dir
            .join(format!(".{key}.{}.{unique}.tmp", std::process::id()));
        let result = serde_json::to_vec(scan)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::private::write_new(&temporary, &bytes))
            .and_then(|()| fs_err::rename(&temporary, self.dir.join(format!("{key}.json"))));
        if let Err(error) = result {
            let _ = fs_err::remove_file(&temporary);
            tracing::warn!(%error, "could not write the layer cache");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Change;

    #[test]
    fn round_trips_and_keys_depend_on_options() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let options = Options::default();
        let key = Cache::key("sha256:abc", &options);
        assert!(cache.get(&key).is_none());
        let scan = LayerScan {
            changes: vec![("/a".into(), Change::Whiteout)],
            files: 3,
            ..LayerScan::default()
        };
        cache.put(&key, &scan);
        let back = cache.get(&key).unwrap();
        assert_eq!((back.files, back.changes), (3, scan.changes));
        let other = Options {
            keystore_passwords: vec!["x".into()],
            ..Options::default()
        };
        assert_ne!(Cache::key("sha256:abc", &other), key);
        fs_err::write(
            dir.path().join("layers").join(format!("{key}.json")),
            b"{broken",
        )
        .unwrap();
        assert!(cache.get(&key).is_none(), "a damaged entry is a miss");
    }
}
