//! Owners across the layers of one image: the package index of the filesystem as it stood
//! after a given layer, built from the database files each layer recorded and the overlay's
//! view of which of them were still there. A file in the final image is judged against the
//! final databases; a file a later layer deleted, against the databases of its own layer.

use super::{FileDigests, Index, Owner};
use crate::layer::LayerScan;
use crate::overlay::Overlay;
use std::cell::RefCell;
use std::collections::HashMap;

/// Package indexes of one image, built on first use per layer.
pub struct Provenance<'a> {
    scans: &'a [&'a LayerScan],
    overlay: &'a Overlay<'a>,
    indexes: RefCell<HashMap<usize, Index>>,
}

impl<'a> Provenance<'a> {
    pub fn new(scans: &'a [&'a LayerScan], overlay: &'a Overlay<'a>) -> Self {
        Self {
            scans,
            overlay,
            indexes: RefCell::new(HashMap::new()),
        }
    }

    /// The owner of `path`, written by layer `index`, judged as of the final image when the
    /// file is still in it; when it has none, the package whose own directory holds it.
    pub fn lookup(
        &self,
        index: usize,
        path: &str,
        in_final_image: bool,
    ) -> (Option<Owner>, Option<String>) {
        let top = if in_final_image {
            self.scans.len().saturating_sub(1)
        } else {
            index
        };
        let digests = self.digests(index, path);
        let mut indexes = self.indexes.borrow_mut();
        let package_index = indexes.entry(top).or_insert_with(|| self.build(top));
        package_index.lookup(path, digests, |source| self.latest_digests(source, top))
    }

    fn digests(&self, layer: usize, path: &str) -> Option<&'a FileDigests> {
        let scan: &'a LayerScan = self.scans.get(layer)?;
        scan.digests
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, digests)| digests)
    }

    /// The digests of `path` as it stood after layer `top`.
    fn latest_digests(&self, path: &str, top: usize) -> Option<&'a FileDigests> {
        (0..=top)
            .rev()
            .filter(|layer| self.overlay.visible_through(*layer, path, top))
            .find_map(|layer| self.digests(layer, path))
    }

    /// The database files of the final image that could not be read: (layer, path, why).
    pub fn unreadable(&self) -> Vec<(usize, String, String)> {
        let top = self.scans.len().saturating_sub(1);
        let mut out = Vec::new();
        for (layer, scan) in self.scans.iter().enumerate() {
            for (path, text) in &scan.package_files {
                if let Some(why) = super::unreadable(path, text)
                    && self.overlay.visible_through(layer, path, top)
                {
                    out.push((layer, path.clone(), why));
                }
            }
        }
        out
    }

    /// The index of the filesystem after layer `top`.
    fn build(&self, top: usize) -> Index {
        let mut files: HashMap<&str, &str> = HashMap::new();
        for (layer, scan) in self.scans.iter().enumerate().take(top + 1) {
            for (path, text) in &scan.package_files {
                if self.overlay.visible_through(layer, path, top) {
                    files.insert(path, text);
                }
            }
        }
        Index::build(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Change;

    const STATUS: &str = "Package: app\nStatus: install ok installed\nVersion: 1\n";

    fn layer(files: &[(&str, &str)], changes: &[(&str, Change)]) -> LayerScan {
        LayerScan {
            package_files: files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
            changes: changes.iter().map(|(p, c)| (p.to_string(), *c)).collect(),
            ..LayerScan::default()
        }
    }

    #[test]
    fn byte_code_names_its_source() {
        use crate::packages::compiled_source;
        assert_eq!(
            compiled_source(
                "/usr/lib/python3/dist-packages/twisted/test/__pycache__/keydata.cpython-311.pyc"
            )
            .as_deref(),
            Some("/usr/lib/python3/dist-packages/twisted/test/keydata.py")
        );
        assert_eq!(
            compiled_source("/a/__pycache__/m.cpython-311.opt-1.pyc").as_deref(),
            Some("/a/m.py")
        );
        // Python 2, and `compileall -b`: the byte code beside its source.
        assert_eq!(compiled_source("/a/m.pyc").as_deref(), Some("/a/m.py"));
        assert_eq!(compiled_source("/a/m.pyo").as_deref(), Some("/a/m.py"));
        assert_eq!(compiled_source("/a/__pycache__/m.pyc"), None);
        assert_eq!(compiled_source("/a/.pyc"), None);
    }

    #[test]
    fn a_deleted_file_is_judged_by_its_own_layer_and_a_final_one_by_the_last() {
        let base = layer(
            &[
                ("/var/lib/dpkg/status", STATUS),
                ("/var/lib/dpkg/info/app.list", "/opt/app/key.pem\n"),
            ],
            &[("/var/lib/dpkg/info/app.list", Change::Entry)],
        );
        // The package is removed: its list is deleted and the status no longer names it.
        let top = layer(
            &[("/var/lib/dpkg/status", "")],
            &[
                ("/var/lib/dpkg/info/app.list", Change::Whiteout),
                ("/var/lib/dpkg/status", Change::Entry),
            ],
        );
        let scans = [&base, &top];
        let overlay = Overlay::new(&scans);
        let provenance = Provenance::new(&scans, &overlay);
        let owner = provenance.lookup(0, "/opt/app/key.pem", false).0;
        assert_eq!(owner.map(|o| o.name), Some("app".to_string()));
        assert!(provenance.lookup(0, "/opt/app/key.pem", true).0.is_none());
    }
}
