//! The union filesystem across layers: decides whether a file seen in layer N is still visible
//! in the final image, or was deleted (whiteout, opaque directory) or replaced by a later layer.
//!
//! It works from the path changes each `LayerScan` recorded; it never re-reads a layer.

use crate::layer::{Change, LayerScan};
use std::collections::{HashMap, HashSet};

/// Per-layer path changes, indexed for lookups.
pub struct Overlay<'a> {
    layers: Vec<(HashMap<&'a str, Change>, HashSet<&'a str>)>,
}

impl<'a> Overlay<'a> {
    /// Indexes the layers, base first.
    pub fn new(scans: &[&'a LayerScan]) -> Self {
        let layers = scans
            .iter()
            .map(|scan| {
                let mut changes = HashMap::new();
                let mut opaque = HashSet::new();
                for (path, change) in &scan.changes {
                    if *change == Change::Opaque {
                        opaque.insert(path.as_str());
                    } else {
                        changes.insert(path.as_str(), *change);
                    }
                }
                (changes, opaque)
            })
            .collect();
        Self { layers }
    }

    /// Whether `path`, written by layer `index`, survives every later layer.
    pub fn visible(&self, index: usize, path: &str) -> bool {
        self.visible_through(index, path, self.layers.len())
    }

    /// Whether `path`, written by layer `index`, survives the later layers up to and including
    /// layer `top`: whether it is in the filesystem as it stood after layer `top`.
    pub fn visible_through(&self, index: usize, path: &str, top: usize) -> bool {
        let later = top.saturating_sub(index);
        for (changes, opaque) in self.layers.iter().skip(index + 1).take(later) {
            if changes.contains_key(path) || opaque.contains(path) {
                return false;
            }
            let mut ancestor = path;
            while let Some((parent, _)) = ancestor.rsplit_once('/') {
                let parent = if parent.is_empty() { "/" } else { parent };
                if opaque.contains(parent) {
                    return false;
                }
                if let Some(Change::Whiteout | Change::Entry) = changes.get(parent) {
                    return false;
                }
                if parent == "/" {
                    break;
                }
                ancestor = parent;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(changes: &[(&str, Change)]) -> LayerScan {
        LayerScan {
            changes: changes.iter().map(|(p, c)| (p.to_string(), *c)).collect(),
            ..LayerScan::default()
        }
    }

    #[test]
    fn whiteouts_opaque_dirs_and_replacements_hide_files() {
        let base = layer(&[
            ("/a/key.pem", Change::Entry),
            ("/b/c/key.pem", Change::Entry),
            ("/d/key", Change::Entry),
            ("/e/key", Change::Entry),
            ("/f/x", Change::Entry),
        ]);
        let top = layer(&[
            ("/a/key.pem", Change::Whiteout),
            ("/b", Change::Whiteout),
            ("/d", Change::Opaque),
            ("/e/key", Change::Entry),
            ("/f", Change::Directory),
        ]);
        let overlay = Overlay::new(&[&base, &top]);
        assert!(!overlay.visible(0, "/a/key.pem"));
        assert!(!overlay.visible(0, "/b/c/key.pem"));
        assert!(!overlay.visible(0, "/d/key"));
        assert!(!overlay.visible(0, "/e/key"));
        assert!(overlay.visible(0, "/f/x"));
        assert!(overlay.visible(1, "/e/key"));
        assert!(
            overlay.visible_through(0, "/a/key.pem", 0),
            "before the whiteout"
        );
        assert!(!overlay.visible_through(0, "/a/key.pem", 1));
    }
}
